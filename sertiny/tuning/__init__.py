"""Hyperparameter search with the paper's protocol: Optuna TPE, fold-level pruning, resumable.

    from sertiny.tuning import TuneConfig, tune
    from sertiny.training import TrainConfig
    summary = tune(table, TuneConfig(train=TrainConfig(model="res_lstm_sa_h64"), n_trials=50), "runs/tune_h64")
    summary["best"]["params"]   # also in runs/tune_h64/best_params.json, for `sertiny train --params`

Optuna is imported when :func:`tune` runs, not with this package.
"""

from .config import TuneConfig
from .space import SPACES, TUNED_FIELDS


def tune(table, config, out_dir, *, data_spec=None, progress=True):
    """Run, resume or join the study ``config`` describes; write its outputs to ``out_dir``.

    Returns the summary dict (best trial, counts, files). Full documentation:
    :func:`sertiny.tuning.run.tune`.
    """
    from .run import tune as _tune

    return _tune(table, config, out_dir, data_spec=data_spec, progress=progress)


__all__ = ["SPACES", "TUNED_FIELDS", "TuneConfig", "tune"]
