"""Open (or create) a study, check it is the same search, and count its budget.

A study records what its trial values mean (the training protocol, space, objective,
seed and a hash of the data) as user attributes. Every later run, on any machine, must
match them to resume or join; otherwise two different searches would silently mix in
one TPE model.
"""

import dataclasses
import json

from ..errors import ParameterError
from . import recovery
from .sampler import make_pruner, make_sampler
from .storage import open_storage

_SPEC_ATTR = "sertiny_objective"
_DATA_ATTR = "sertiny_data"


def open_study(config, spec, table_hash):
    """The study for ``config`` in storage ``spec``, created if missing.

    Raises
    ------
    ParameterError
        The study exists but was made for a different search or different data.
    """
    import optuna

    storage = open_storage(
        spec,
        heartbeat_interval=config.heartbeat_interval,
        grace_period=config.grace_period,
        on_stale_trial=lambda study, trial: recovery.enqueue_retry(study, trial, max_retries=config.max_retries),
    )
    study = optuna.create_study(
        study_name=config.name,
        storage=storage,
        sampler=make_sampler(config),
        pruner=make_pruner(config),
        direction="maximize",
        load_if_exists=True,
    )
    _check_or_record_identity(study, config, spec, table_hash)
    return study


def _check_or_record_identity(study, config, spec, table_hash):
    wanted = json.loads(json.dumps(config.objective_spec()))  # JSON-normalised, like the stored copy
    stored, stored_data = study.user_attrs.get(_SPEC_ATTR), study.user_attrs.get(_DATA_ATTR)
    if stored is None:
        if study.get_trials(deepcopy=False):
            raise ParameterError(
                f"Study '{config.name}' in {spec} has trials but was not made by 'sertiny tune'. "
                "Choose another --study-name."
            )
        # Data first: a worker starting at this moment takes the spec as the sign that the
        # study is recorded, and must then find the data hash beside it.
        study.set_user_attr(_DATA_ATTR, table_hash)
        study.set_user_attr(_SPEC_ATTR, wanted)
        return
    changes = _differences(stored, wanted)
    if stored_data != table_hash:
        changes.append("the data (clips, labels or features differ)")
    if changes:
        raise ParameterError(
            f"Study '{config.name}' in {spec} was made for a different search: "
            + "; ".join(changes)
            + ". Resume it with the same settings, or start a new study with another --study-name or --out."
        )


def _differences(stored, wanted, prefix=""):
    changes = []
    for key in sorted(set(stored) | set(wanted)):
        old, new = stored.get(key), wanted.get(key)
        if isinstance(old, dict) and isinstance(new, dict):
            changes += _differences(old, new, f"{prefix}{key}.")
        elif old != new:
            changes.append(f"{prefix}{key} was {old!r}, now {new!r}")
    return changes


@dataclasses.dataclass(frozen=True)
class Budget:
    """Trial counts of a study against its ``n_trials`` budget.

    Killed trials are FAIL and come back as WAITING copies, so FAIL never counts; RUNNING
    and WAITING trials do, because they will finish. A rerun therefore completes the
    budget instead of starting another one.
    """

    n_trials: int
    complete: int
    pruned: int
    running: int
    waiting: int
    failed: int

    @property
    def finished(self):
        return self.complete + self.pruned

    @property
    def claimed(self):
        return self.finished + self.running + self.waiting

    @property
    def can_start(self):
        """A queued retry is always run; a new trial only while the budget is not claimed."""
        return self.waiting > 0 or self.claimed < self.n_trials


def budget(study, n_trials):
    from optuna.trial import TrialState

    counts = {state: 0 for state in TrialState}
    for trial in study.get_trials(deepcopy=False):
        counts[trial.state] += 1
    return Budget(
        n_trials=n_trials,
        complete=counts[TrialState.COMPLETE],
        pruned=counts[TrialState.PRUNED],
        running=counts[TrialState.RUNNING],
        waiting=counts[TrialState.WAITING],
        failed=counts[TrialState.FAIL],
    )
