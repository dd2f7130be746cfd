"""The sampler (TPE, reseeded per trial) and the pruner of a study."""

import warnings

import numpy as np
import optuna


def trial_seed(seed, trial_number):
    """The sampler seed of one trial: a hash of the study seed and the trial number."""
    return int(np.random.SeedSequence([int(seed), int(trial_number)]).generate_state(1)[0])


class PerTrialSeededSampler(optuna.samplers.BaseSampler):
    """TPE whose random state is derived from ``(seed, trial number)`` for every trial.

    A plain ``TPESampler(seed=s)`` draws from one random stream per *process*. A study
    resumed after a kill, or run by several workers, would then replay the stream from
    its start and propose the same random start-up trials again. Keyed on the trial
    number (unique in the study), every trial gets its own stream: a single worker's
    study is reproducible however often it is interrupted, and workers never collide.
    """

    def __init__(self, seed, **tpe_kwargs):
        self._seed = int(seed)
        self._tpe_kwargs = tpe_kwargs
        self._sampler = self._make(self._seed)

    def _make(self, seed):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # constant_liar
            return optuna.samplers.TPESampler(seed=seed, **self._tpe_kwargs)

    def before_trial(self, study, trial):
        self._sampler = self._make(trial_seed(self._seed, trial.number))
        self._sampler.before_trial(study, trial)

    def infer_relative_search_space(self, study, trial):
        return self._sampler.infer_relative_search_space(study, trial)

    def sample_relative(self, study, trial, search_space):
        return self._sampler.sample_relative(study, trial, search_space)

    def sample_independent(self, study, trial, param_name, param_distribution):
        return self._sampler.sample_independent(study, trial, param_name, param_distribution)

    def after_trial(self, study, trial, state, values):
        self._sampler.after_trial(study, trial, state, values)

    def reseed_rng(self):
        self._sampler.reseed_rng()


def make_sampler(config):
    """TPE over the config's space; ``constant_liar`` keeps parallel workers apart.

    With constant liar, TPE treats running trials as bad results, so a worker does not
    sample right next to a point another worker is still training; with one worker there
    is never a running trial to consider and it changes nothing.
    """
    return PerTrialSeededSampler(config.sampler_seed, n_startup_trials=config.tpe_startup_trials, constant_liar=True)


def make_pruner(config):
    """The pruner; steps are folds (1..n_folds).

    ``median``: prune when the objective so far is below the median of finished trials at
    the same fold, after ``pruner_startup_trials`` finished trials and
    ``pruner_warmup_folds`` folds. ``halving``: asynchronous successive halving with folds
    as the resource (rungs after 1, 2, 4 folds), no start-up phase.
    """
    if config.pruner == "none":
        return optuna.pruners.NopPruner()
    if config.pruner == "halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=config.pruner_warmup_folds, reduction_factor=2)
    return optuna.pruners.MedianPruner(
        n_startup_trials=config.pruner_startup_trials, n_warmup_steps=config.pruner_warmup_folds
    )
