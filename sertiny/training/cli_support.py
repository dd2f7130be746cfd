"""Glue between the ``train`` command's options and the training stage's configs."""

from pathlib import Path

from .._io import read_json
from .config import TrainConfig

# Keys of best_params.json (sertiny tune) and of the reference notebook's Optuna study.
_PARAM_ALIASES = {"wd": "weight_decay", "dropout_rate": "dropout", "t_0_loop": "t0"}


def build_train_config(config_file, params_file, flags):
    """defaults < --config file < --params file < explicit flags."""
    values = {}
    if config_file:
        values.update(read_json(config_file))
    if params_file:
        params = read_json(params_file)
        params = params.get("params", params)
        values.update({_PARAM_ALIASES.get(k, k): v for k, v in params.items()})
    values.update({k: v for k, v in flags.items() if v is not None})
    return TrainConfig.from_dict(values)


def data_spec_and_table(data_dir, features_npz, dataset, preset, backend, *, progress=True):
    from ..features import get_preset
    from .data import DataSpec, load_table

    if features_npz:
        spec = DataSpec(kind="paper_npz", path=str(Path(features_npz).resolve()))
        return spec, load_table(spec, progress=progress)
    spec = DataSpec(kind="audio", path=str(Path(data_dir).resolve()), dataset=dataset, backend=backend)
    return spec, load_table(spec, get_preset(preset), progress=progress)


def print_summary(metrics, out_dir):
    import click

    from .report import uar_summary

    click.echo(f"\n{metrics['model']}: {uar_summary(metrics)}, {metrics['trainable_params']:,} trainable parameters")
    recalls = ", ".join(f"{k} {v:.2f}" for k, v in metrics["per_class_recall_mean"].items())
    click.echo(f"per-class recall: {recalls}")
    for task, aux in metrics.get("auxiliary", {}).items():
        click.echo(f"auxiliary head {task} (training aid, not exported): UAR {aux['uar_mean']:.4f}, "
                   f"accuracy {aux['accuracy_mean']:.4f}")
    if "deploy" in metrics:
        click.echo(f"deployment model: {metrics['deploy']['epochs']} epochs on all speakers -> {out_dir}/deploy/")
    click.echo(f"written to {out_dir}/ (metrics.json, confusion.png, learning_curves.png)")
