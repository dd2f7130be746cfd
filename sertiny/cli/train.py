"""``sertiny train``: parse options, build the configs, call :func:`sertiny.training.train`."""

import click

from ..models.registry import families, multitask_families
from ._options import data_dir_argument, data_source_options, protocol_options

_MODELS_HELP = "<family>_h<N> (any N) with family " + ", ".join(
    f.name + (f" ({f.note})" if f.note else "") for f in families())


def _seed_list(ctx, param, value):
    if value is None:
        return None
    try:
        seeds = [int(s) for s in value.split(",") if s.strip()]
    except ValueError:
        raise click.BadParameter("give comma-separated non-negative ints, e.g. 0,1,2") from None
    if not seeds or min(seeds) < 0:
        raise click.BadParameter("give comma-separated non-negative ints, e.g. 0,1,2")
    return seeds


@click.command("train")
@data_dir_argument(required=False)
@click.option("--features", "features_npz", type=click.Path(exists=True, dir_okay=False),
              help="Train on precomputed features instead of audio (the paper's ravdess48k_paper_features.npz).")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Run directory to write (resumed if it exists).")
@click.option("--model", default=None, help=f"Model name: {_MODELS_HELP}. [default: res_lstm_sa_h64]")
@click.option("--config", "config_file", type=click.Path(exists=True, dir_okay=False),
              help="TrainConfig JSON (another run's train_config.json, or best_train_config.json from 'sertiny tune').")
@click.option("--params", "params_file", type=click.Path(exists=True, dir_okay=False),
              help="Tuned hyperparameters (best_params.json from 'sertiny tune'); override --config.")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), help="Peak learning rate.")
@click.option("--weight-decay", type=click.FloatRange(min=0), help="Coupled L2 weight decay.")
@click.option("--dropout", type=click.FloatRange(0, 0.95), help="Dropout before the classifier.")
@click.option("--t0", type=click.IntRange(min=1), help="Cosine warm-restart period in epochs.")
@click.option("--batch-size", type=click.IntRange(min=2), help="Batch size.")
@click.option("--seeds", callback=_seed_list, help="Comma-separated seeds, one cross-validation each. [default: 0]")
@click.option("--multitask/--no-multitask", default=None,
              help=f"BiLSTM-ATT-MTL's multi-task training ({', '.join(multitask_families())}; RAVDESS clip "
                   "names only): auxiliary heads for emotional intensity and speaker sex, read off the clip names, on "
                   "the same context vector; loss = emotion + 0.3 x each auxiliary cross-entropy. Epoch "
                   "selection, metrics and the exported model stay on the emotion head; the auxiliary heads' "
                   "out-of-fold accuracy and UAR are reported beside. [default: off]")
@protocol_options
@data_source_options
@click.option("--jobs", default=1, show_default=True, type=click.IntRange(min=1), help="Folds trained in parallel processes.")
@click.option("--deploy/--no-deploy", default=False, show_default=True,
              help="Also train the model to ship, on all speakers (for 'sertiny export').")
@click.option("--overwrite", is_flag=True, help="Delete an existing run in --out and start again.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def train_command(data_dir, features_npz, out_dir, config_file, params_file, jobs, deploy, overwrite, quiet,
                  dataset, preset, backend, **flags):
    """Train and cross-validate a model with the ResLSTM-SA paper's protocol.

    DATA_DIR is a corpus folder (RAVDESS, EMO-DB, one folder per label, or a CSV manifest);
    or pass --features with the paper's precomputed features instead.

    \b
    Examples:
      sertiny train ../shared/data/ravdess16k --out runs/h64 --seeds 0,1,2 --jobs 2
      sertiny train --features ravdess48k_paper_features.npz --model lstm_sa_h128 --out runs/lstm128
      sertiny train --features ravdess48k_paper_features.npz --model bilstm_att_h128 --multitask --out runs/mtl
    """
    from ..training import train
    from ..training.cli_support import build_train_config, data_spec_and_table, print_summary

    if bool(data_dir) == bool(features_npz):
        raise click.UsageError("Give either DATA_DIR (audio) or --features NPZ, not both or neither.")
    config = build_train_config(config_file, params_file, flags)
    spec, table = data_spec_and_table(data_dir, features_npz, dataset, preset, backend, progress=not quiet)
    metrics = train(table, config, out_dir, data_spec=spec, jobs=jobs, deploy=deploy, overwrite=overwrite,
                    progress=not quiet)
    print_summary(metrics, out_dir)


@click.command("join")
@click.argument("recurrent_run", type=click.Path(exists=True, file_okay=False))
@click.argument("stats_run", type=click.Path(exists=True, file_okay=False))
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Run directory to write (resumed if it exists).")
@click.option("--weight", default=0.5, show_default=True, type=click.FloatRange(0, 1),
              help="The ResLSTM-SA's share of the joined logits (the statistics model has the rest).")
@click.option("--quiet", is_flag=True, help="No progress lines.")
def join_command(recurrent_run, stats_run, out_dir, weight, quiet):
    """Join a ResLSTM-SA run and a stats_linear run into one res_lstm_sa_stats run.

    Both runs must be finished and trained on the same data, front end, folds and seeds.
    Every fold model (and the deploy model, if both runs have one) becomes one model that
    multiplies the two experts' probabilities; the result is a normal run: its metrics are
    measured on the held-out speakers, and 'sertiny export' takes it, streaming profile
    included.

    \b
    Example:
      sertiny train DATA --model res_lstm_sa_h64 --seeds 0,1,2 --deploy --out runs/res
      sertiny train DATA --model stats_linear_h1 --seeds 0,1,2 --deploy --out runs/stats
      sertiny join runs/res runs/stats --out runs/joined
      sertiny export runs/joined --chunk 1 --out bundles/joined
    """
    from ..training.experts import JoinConfig, join_runs
    from ..training.report import uar_summary

    metrics = join_runs(JoinConfig(recurrent_run, stats_run, weight), out_dir,
                        progress=None if quiet else click.echo)
    click.echo(f"\n{metrics['model']} (joined): {uar_summary(metrics)}, {metrics['trainable_params']:,} parameters")
    click.echo(f"written to {out_dir}/ (metrics.json, confusion.png); export it with 'sertiny export {out_dir}'")


COMMANDS = [train_command, join_command]
