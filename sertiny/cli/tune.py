"""``sertiny tune``: parse options, build the TuneConfig, call :func:`sertiny.tuning.tune`."""

import re

import click

from ..tuning.config import OBJECTIVES, PRUNERS
from ..tuning.space import SPACES, TUNED_FIELDS
from ._options import PROTOCOL_FIELDS, data_dir_argument, data_source_options, protocol_options

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def _duration(ctx, param, value):
    if value is None:
        return None
    match = _DURATION.match(value)
    if not match or float(match.group(1)) <= 0:
        raise click.BadParameter("give a positive duration such as 3600, 90m or 2h")
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]


_INT_FIELDS = ("t0", "batch_size")


def _fixed_params(ctx, param, values):
    fixed = {}
    for item in values:
        name, _, text = item.partition("=")
        name = name.strip().replace("-", "_")
        if name not in TUNED_FIELDS or not text:
            raise click.BadParameter(f"give NAME=VALUE with NAME one of {', '.join(TUNED_FIELDS)}; got {item!r}")
        try:
            fixed[name] = int(text) if name in _INT_FIELDS else float(text)
        except ValueError:
            kind = "an int" if name in _INT_FIELDS else "a number"
            raise click.BadParameter(f"{name} must be {kind}; got {text!r}") from None
    return fixed


@click.command("tune")
@data_dir_argument(required=False)
@click.option("--features", "features_npz", type=click.Path(exists=True, dir_okay=False),
              help="Tune on precomputed features instead of audio (the paper's ravdess48k_paper_features.npz).")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Output directory: study.db (default storage), best_train_config.json, best_params.json, plots. "
                   "Resumed if it exists.")
@click.option("--model", default=None, help="Model to tune, e.g. res_lstm_sa_h64 (any _hN works). [default: res_lstm_sa_h64]")
@click.option("--space", default="paper", show_default=True, type=click.Choice(list(SPACES)),
              help="Search space: the paper's ranges, or the reference notebook's wider ones.")
@click.option("--fix", "fixed", multiple=True, callback=_fixed_params, metavar="NAME=VALUE",
              help="Pin a tuned parameter instead of searching it, e.g. --fix batch_size=32 (repeatable).")
@click.option("--objective", default="validation", show_default=True, type=click.Choice(["validation", *OBJECTIVES]),
              callback=lambda ctx, param, value: "val" if value == "validation" else value,
              help="validation (alias val) = mean validation-speaker UAR over folds: no test speaker is seen, "
                   "so the tuned recipe's test UAR is an honest estimate. test = pooled out-of-fold test UAR, "
                   "the paper's objective: only for reproducing the paper (it selects on the test speakers).")
@click.option("--n-trials", default=50, show_default=True, type=click.IntRange(min=0),
              help="Total trials of the study, over all runs and workers; rerun to finish, raise to extend.")
@click.option("--timeout", callback=_duration, help="Start no new trial after this long (e.g. 3600, 90m, 2h).")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(min=1),
              help="Trial processes on this machine, sharing the storage.")
@click.option("--storage", default=None,
              help="Study storage: a *.db path (SQLite), journal:PATH, or a database URL "
                   "(postgresql://user@host:5432/db) shared by several machines. [default: OUT/study.db]")
@click.option("--study-name", default=None, help="Study name in the storage. [default: MODEL-SPACE-OBJECTIVE]")
@click.option("--pruner", default="median", show_default=True, type=click.Choice(PRUNERS),
              help="Stop hopeless trials after a fold: median rule, successive halving, or never.")
@click.option("--pruner-startup-trials", default=5, show_default=True, type=click.IntRange(min=0),
              help="Finished trials before the median pruner may prune.")
@click.option("--seed", "sampler_seed", default=0, show_default=True, type=click.IntRange(min=0), help="TPE sampler seed.")
@click.option("--train-seed", default=0, show_default=True, type=click.IntRange(min=0),
              help="Training seed of every trial.")
@click.option("--config", "config_file", type=click.Path(exists=True, dir_okay=False),
              help="TrainConfig JSON for the protocol (its five tuned fields are ignored).")
@protocol_options
@data_source_options
@click.option("--keep-trial-runs", is_flag=True, help="Keep every trial's run directory under OUT/trials/.")
@click.option("--top", default=10, show_default=True, type=click.IntRange(min=1), help="Rows of top_trials.md.")
@click.option("--quiet", is_flag=True, help="No per-trial lines.")
def tune_command(data_dir, features_npz, out_dir, config_file, dataset, preset, backend, quiet, top, **options):
    """Search the five training hyperparameters with Optuna's TPE, as the paper did.

    Every trial runs the full training protocol (all folds) and scores the pooled
    out-of-fold UAR; hopeless trials are pruned after a fold. The study is stored
    (SQLite in OUT by default), so a killed run continues where it stopped: run the
    same command again. Finished: OUT/best_train_config.json (the best trial's whole
    TrainConfig, for 'sertiny train --config'), best_params.json (its five parameters, for
    'sertiny train --params' with your own protocol flags), top_trials.md, history.png,
    importance.png; then train the best parameters over 10 seeds for the paper's table.

    DATA_DIR is a corpus folder; or pass --features with the paper's precomputed features.

    \b
    Examples:
      sertiny tune --features ravdess48k_paper_features.npz --model res_lstm_sa_h64 \\
          --n-trials 100 --workers 2 --out runs/tune_h64
      sertiny train --features ravdess48k_paper_features.npz --config runs/tune_h64/best_train_config.json \\
          --seeds 0,1,2,3,4,5,6,7,8,9 --out runs/h64_best

    \b
    Several machines, one study (each runs the same command; the storage is shared):
      sertiny tune --features F.npz --model res_lstm_sa_h64 --workers 2 --out runs/tune_h64 \\
          --storage postgresql://sertiny@db-host:5432/sertiny
    """
    from ..training.cli_support import build_train_config, data_spec_and_table
    from ..tuning import TuneConfig, tune

    if bool(data_dir) == bool(features_npz):
        raise click.UsageError("Give either DATA_DIR (audio) or --features NPZ, not both or neither.")
    protocol = {k: options.pop(k) for k in ("model", *PROTOCOL_FIELDS)}
    train_config = build_train_config(config_file, None, protocol)
    config = TuneConfig(train=train_config, **options)
    spec, table = data_spec_and_table(data_dir, features_npz, dataset, preset, backend, progress=not quiet)
    summary = tune(table, config, out_dir, data_spec=spec, progress=not quiet)
    _print_summary(summary, out_dir, features_npz, config)


def _print_summary(summary, out_dir, features_npz, config):
    counts = summary["trials"]
    click.echo(f"\nstudy '{summary['study_name']}' ({summary['storage']}): {counts['complete']} complete, "
               f"{counts['pruned']} pruned, {counts['fail']} failed"
               + (f", {counts['running']} running elsewhere" if counts["running"] else ""))
    left = summary["n_trials"] - counts["complete"] - counts["pruned"] - counts["running"]
    if left > 0:
        click.echo(f"{left} trial(s) of the {summary['n_trials']}-trial budget are left "
                   "(time limit, or a worker died): run the same command again to finish them.")
    best = summary["best"]
    if best is None:
        click.echo("No trial has finished yet.")
        return
    params = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in best["params"].items())
    click.echo(f"best: trial {best['trial']}, UAR {best['value']:.4f} ({params})")
    click.echo(f"written to {out_dir}/: {', '.join(summary['files'])}")
    source = f"--features {features_npz}" if features_npz else "DATA_DIR"
    click.echo(f"next, the 10-seed estimate: sertiny train {source} --config {out_dir}/best_train_config.json "
               f"--seeds 0,1,2,3,4,5,6,7,8,9 --out runs/{config.train.model}_tuned")


COMMANDS = [tune_command]
