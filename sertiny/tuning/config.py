"""The tuning stage's config: search space, budget, pruner, sampler, storage, workers."""

import dataclasses

from .._config import Config, check_bool_fields, check_choice, check_float, check_int
from ..errors import ParameterError
from ..training.config import TrainConfig
from .space import SPACES, TUNED_FIELDS

PRUNERS = ("median", "halving", "none")
OBJECTIVES = ("test", "val")

# Fields that change what a trial's number means. A study may only be resumed or joined
# with the same values; budget, time, workers, pruner and storage may change between runs.
_OBJECTIVE_FIELDS = ("space", "fixed", "objective", "train_seed")


@dataclasses.dataclass(frozen=True, kw_only=True)
class TuneConfig(Config):
    """How ``sertiny tune`` searches (the paper's protocol by default).

    train: the training protocol every trial runs (model, epochs, folds, normalisation,
        ...). Its five tuned fields are replaced by each trial's sample; its seeds by
        ``train_seed``.
    space: ``paper`` (PAPER_FACTS.md) or ``wide`` (the reference notebook's ranges).
    fixed: tuned fields pinned to one value instead of searched, e.g. ``{"batch_size": 32}``
        (memory limits, or fewer compiled shapes in quick runs).
    objective: ``test`` = UAR of the pooled out-of-fold test predictions, the paper's
        number (and what it tuned on, so the 10-seed estimate that follows is slightly
        optimistic); ``val`` = mean best-epoch validation UAR over folds, which never
        looks at a test speaker.
    n_trials: total trials of the study (finished or pruned), counted across every run and
        worker: rerunning the same command finishes the budget, and a larger value extends
        it.
    timeout: seconds after which this invocation starts no new trial (``None``: no limit).
    pruner: ``median`` (Optuna's MedianPruner), ``halving`` (asynchronous successive
        halving) or ``none``. Folds are the pruning steps: the objective so far is
        reported after every fold.
    pruner_startup_trials: finished trials before the median pruner may prune.
    pruner_warmup_folds: folds a trial always runs before it may be pruned.
    sampler_seed: TPE seed. Each trial's sampler state is derived from it and the trial
        number, so a resumed or multi-worker study never repeats a sample.
    tpe_startup_trials: random trials before TPE starts modelling.
    train_seed: the training seed of every trial (weights init, shuffling).
    study_name: ``None`` = ``<model>-<space>-<objective>``.
    storage: Optuna storage. ``None`` = ``study.db`` (SQLite) in the output directory;
        a ``*.db`` path; any SQLAlchemy URL (``postgresql://user@host/db``); or
        ``journal:PATH`` / a ``*.log`` path for Optuna's journal file storage.
    workers: trial processes on this machine, all on the same storage.
    heartbeat_interval, grace_period: seconds. A trial whose process stops beating for
        ``grace_period`` is failed and retried (SQL storages; journal storage relies on the
        same-machine process check only).
    max_retries: how often one trial's parameters are retried after its process died.
    keep_trial_runs: keep each trial's run directory (weights, predictions) under
        ``trials/`` instead of deleting it when the trial ends.
    """

    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
    space: str = "paper"
    fixed: dict = dataclasses.field(default_factory=dict)
    objective: str = "test"
    n_trials: int = 50
    timeout: float | None = None
    pruner: str = "median"
    pruner_startup_trials: int = 5
    pruner_warmup_folds: int = 1
    sampler_seed: int = 0
    tpe_startup_trials: int = 10
    train_seed: int = 0
    study_name: str | None = None
    storage: str | None = None
    workers: int = 1
    heartbeat_interval: int = 60
    grace_period: int = 180
    max_retries: int = 2
    keep_trial_runs: bool = False

    def __post_init__(self):
        owner = "TuneConfig"
        check_bool_fields(self)
        if not isinstance(self.train, TrainConfig):
            raise ParameterError(f"The 'train' parameter of {owner} must be a TrainConfig. Got {self.train!r} instead.")
        check_choice(owner, "space", self.space, set(SPACES))
        self._check_fixed(owner)
        check_choice(owner, "objective", self.objective, set(OBJECTIVES))
        check_int(owner, "n_trials", self.n_trials, min_value=0)
        if self.timeout is not None:
            check_float(owner, "timeout", self.timeout, min_value=0.0, min_inclusive=False)
        check_choice(owner, "pruner", self.pruner, set(PRUNERS))
        check_int(owner, "pruner_startup_trials", self.pruner_startup_trials, min_value=0)
        check_int(owner, "pruner_warmup_folds", self.pruner_warmup_folds, min_value=1)
        check_int(owner, "sampler_seed", self.sampler_seed, min_value=0)
        check_int(owner, "tpe_startup_trials", self.tpe_startup_trials, min_value=0)
        check_int(owner, "train_seed", self.train_seed, min_value=0)
        if self.study_name is not None and (not isinstance(self.study_name, str) or not self.study_name.strip()):
            raise ParameterError(f"The 'study_name' parameter of {owner} must be a non-empty str or None. "
                                 f"Got {self.study_name!r} instead.")
        if self.storage is not None and (not isinstance(self.storage, str) or not self.storage.strip()):
            raise ParameterError(f"The 'storage' parameter of {owner} must be a non-empty str or None. "
                                 f"Got {self.storage!r} instead.")
        check_int(owner, "workers", self.workers, min_value=1)
        check_int(owner, "heartbeat_interval", self.heartbeat_interval, min_value=1)
        check_int(owner, "grace_period", self.grace_period, min_value=self.heartbeat_interval + 1)
        check_int(owner, "max_retries", self.max_retries, min_value=0)
        # The training seeds are the tuner's choice; showing the base config's would mislead.
        if self.train.seeds != (self.train_seed,):
            object.__setattr__(self, "train", self.train.replace(seeds=(self.train_seed,)))

    def _check_fixed(self, owner):
        if not isinstance(self.fixed, dict):
            raise ParameterError(f"The 'fixed' parameter of {owner} must be a dict. Got {self.fixed!r} instead.")
        unknown = sorted(set(self.fixed) - set(TUNED_FIELDS))
        if unknown:
            raise ParameterError(f"The 'fixed' parameter of {owner} names unknown field(s) {unknown}; "
                                 f"the tuned fields are {list(TUNED_FIELDS)}.")
        self.train.replace(**self.fixed)  # TrainConfig validates the values
        object.__setattr__(self, "fixed", {k: self.fixed[k] for k in TUNED_FIELDS if k in self.fixed})

    @property
    def name(self):
        """The study name: explicit, or derived from what the trials optimise."""
        return self.study_name or f"{self.train.model}-{self.space}-{self.objective}"

    def trial_train_config(self, params):
        """The TrainConfig one trial runs: the protocol with the trial's hyperparameters."""
        unknown = sorted(set(params) - set(TUNED_FIELDS))
        if unknown:
            raise ParameterError(f"Unknown tuned parameter(s) {unknown}; tuned are {list(TUNED_FIELDS)}.")
        return self.train.replace(**params)

    def objective_spec(self):
        """What a trial's value means: everything but the tuned fields, budget and plumbing.

        Stored with the study; a later run must match it to resume or join the study.
        TrainConfig fields added since (at their defaults) are left out, so older studies match.
        """
        train = {k: v for k, v in self.train.identity_dict().items() if k not in TUNED_FIELDS}
        return {"train": train, **{k: getattr(self, k) for k in _OBJECTIVE_FIELDS}}

    def to_dict(self):
        d = super().to_dict()
        d["train"] = self.train.to_dict()
        return d

    @classmethod
    def from_dict(cls, data):
        data = dict(data)
        if isinstance(data.get("train"), dict):
            data["train"] = TrainConfig.from_dict(data["train"])
        return super().from_dict(data)

    def redacted(self):
        """A copy safe to write to disk: no database password in ``storage``."""
        from .storage import redact_url

        return self if self.storage is None else self.replace(storage=redact_url(self.storage))
