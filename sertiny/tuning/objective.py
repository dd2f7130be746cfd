"""One trial: sample the hyperparameters, run the training protocol fold by fold, report.

The value reported after fold k is the objective over folds 1..k (for ``test``: the UAR
of the pooled test predictions so far), so the last report equals the trial's value and
the pruner compares trials on the same folds at the same step. Each trial trains in
``trials/<config digest>/`` with the training stage's own resumable layout: a retried
trial (same parameters, hence same digest) picks up the folds its killed predecessor
finished instead of training them again.
"""

import shutil
import time
from pathlib import Path

import numpy as np

from . import recovery
from .space import suggest


class TrialObjective:
    """Callable ``objective(trial) -> float`` for ``study.optimize``.

    Parameters
    ----------
    table : FeatureTable
        The clips every trial trains and tests on.
    config : TuneConfig
    out_dir : path
        The tuning output directory; trial runs go to ``out_dir/trials/``.
    data_spec : DataSpec, optional
        Recorded in each trial run's ``run.json``.
    log : callable, optional
        ``log(message)`` for one line per fold and per trial.
    """

    def __init__(self, table, config, out_dir, *, data_spec=None, log=None):
        self.table = table
        self.config = config
        self.trials_dir = Path(out_dir) / "trials"
        self.data_spec = data_spec
        self.log = log or (lambda message: None)
        self.last_trial = None  # number of the latest trial started, for interrupt handling

    def __call__(self, trial):
        import optuna

        from ..training.protocol import prepare_run, read_fold, run_fold

        self.last_trial = trial.number
        trial.set_user_attr(recovery.OWNER_ATTR, recovery.this_process())
        params = suggest(trial, self.config.space, self.config.fixed)
        train_config = self.config.trial_train_config(params)
        run_dir = self.trials_dir / train_config.digest()
        ctx = prepare_run(self.table, train_config, run_dir, data_spec=self.data_spec)
        seed, started, summaries = train_config.seeds[0], time.time(), []
        self.log(f"trial {trial.number} started: {_format_params(params)}")
        try:
            for step, fold in enumerate(ctx.folds, start=1):
                summaries.append(read_fold(run_dir, seed, fold) or run_fold(ctx, seed, fold))
                value = self._value(run_dir, seed, ctx.folds[:step], summaries)
                trial.report(value, step)
                trial.set_user_attr("fold_test_uar", [s["test_uar"] for s in summaries])
                trial.set_user_attr("fold_val_uar", [s["val_uar"] for s in summaries])
                # Pruning at the last fold would save nothing and hide a finished result.
                if step < len(ctx.folds) and trial.should_prune():
                    self.log(f"trial {trial.number} pruned after fold {step}/{len(ctx.folds)}: "
                             f"{self.config.objective} UAR so far {value:.4f}")
                    raise optuna.TrialPruned(f"pruned after fold {step}: {value:.4f}")
        except optuna.TrialPruned:
            self._discard(run_dir)
            raise
        # Any other exception leaves run_dir in place: the trial's retry resumes from it.
        trial.set_user_attr("seconds", round(time.time() - started, 1))
        self.log(f"trial {trial.number} finished: {self.config.objective} UAR {value:.4f} "
                 f"in {time.time() - started:.0f} s")
        self._discard(run_dir)
        return value

    def _discard(self, run_dir):
        if not self.config.keep_trial_runs:
            shutil.rmtree(run_dir, ignore_errors=True)

    def _value(self, run_dir, seed, folds, summaries):
        """The objective over the finished folds."""
        if self.config.objective == "val":
            return float(np.mean([s["val_uar"] for s in summaries]))
        return pooled_test_uar(run_dir, seed, folds, self.table.label_names)


def pooled_test_uar(run_dir, seed, folds, label_names):
    """UAR of the pooled test predictions of ``folds``: the paper's number when all folds."""
    from ..metrics import uar
    from ..training.protocol import read_predictions

    index = {name: i for i, name in enumerate(label_names)}
    rows = [row for fold in folds for row in read_predictions(run_dir, seed, fold)]
    y_true = np.array([index[r["label"]] for r in rows])
    y_pred = np.array([index[r["predicted"]] for r in rows])
    return uar(y_true, y_pred, len(label_names))


def _format_params(params):
    return ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())
