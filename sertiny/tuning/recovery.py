"""Trials whose process died: find them, fail them, retry their parameters exactly once.

A ``kill -9`` (or a crash, or the OOM killer) leaves its trial RUNNING forever. Two ways
to tell that nobody is working on it any more:

* Same machine, any storage, immediately: every trial records the process that runs it
  (machine key, pid, process start time). If that process is gone, the trial is orphaned.
  This is what makes "kill -9, run the same command again" continue at once.
* Another machine, SQL storages: Optuna's heartbeat. A trial silent for the grace period
  is failed by whichever worker notices first (see :mod:`sertiny.tuning.storage`).

Either way the trial is marked FAIL and a WAITING copy with the same parameters is added.
Failing is a compare-and-set on the trial's state in the storage, so when several workers
notice the same orphan only one of them wins and adds the copy: no duplicate.
"""

import contextlib
import functools
import hashlib
import os
import socket
from pathlib import Path

OWNER_ATTR = "worker"


@functools.lru_cache(maxsize=1)
def machine_key():
    """Identifies this machine *and* PID namespace, so pids are comparable only within it.

    Host name alone is not enough: containers on one host can share it, and two machines
    cloned from one image can share /etc/machine-id. The boot id changes on every boot,
    and the PID-namespace inode separates containers on one kernel.
    """
    parts = [socket.gethostname()]
    with contextlib.suppress(OSError):
        parts.append(Path("/proc/sys/kernel/random/boot_id").read_text().strip())
    with contextlib.suppress(OSError):
        parts.append(os.readlink("/proc/self/ns/pid"))
    if len(parts) == 1:  # not Linux: fall back on the boot time
        with contextlib.suppress(Exception):
            import psutil

            parts.append(str(psutil.boot_time()))
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def _process_start_time(pid):
    """Start time of ``pid`` (seconds since the epoch), or None if there is no such process."""
    try:
        import psutil
    except ImportError:
        return _start_time_without_psutil(pid)
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:  # killed, not yet reaped: dead
            return None
        return process.create_time()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None


def _start_time_without_psutil(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass  # exists, owned by someone else
    return 0.0  # alive; start time unknown, so pid reuse goes undetected


def this_process():
    """The owner record stamped on every trial this process runs."""
    pid = os.getpid()
    return {"host": socket.gethostname(), "machine": machine_key(), "pid": pid, "started": _process_start_time(pid)}


def owner_status(owner):
    """``alive``, ``dead`` or ``unknown`` (another machine, or a trial without a record)."""
    if not isinstance(owner, dict) or owner.get("machine") != machine_key():
        return "unknown"
    started = _process_start_time(int(owner["pid"]))
    if started is None:
        return "dead"
    recorded = owner.get("started")
    # A different start time means the pid was reused by a new process.
    if recorded and started and abs(started - recorded) > 1.0:
        return "dead"
    return "alive"


def enqueue_retry(study, trial, *, max_retries):
    """Queue a WAITING copy of failed ``trial`` (same parameters) unless retried too often.

    Uses Optuna's ``failed_trial`` / ``retry_history`` system attributes, so
    ``RetryHeartbeatStaleTrialCallback.retried_trial_number`` works on our retries too.
    Returns True if a copy was queued.
    """
    import optuna

    history = list(trial.system_attrs.get("retry_history", [])) + [trial.number]
    if len(history) > max_retries:
        return False
    study.add_trial(
        optuna.trial.create_trial(
            state=optuna.trial.TrialState.WAITING,
            params=trial.params,
            distributions=trial.distributions,
            system_attrs={"failed_trial": history[0], "retry_history": history},
        )
    )
    return True


def fail_and_retry(study, trial, *, max_retries):
    """Mark RUNNING ``trial`` FAIL and queue its retry; False if another worker got there first."""
    import optuna

    try:
        study.tell(trial.number, state=optuna.trial.TrialState.FAIL)
    except (optuna.exceptions.UpdateFinishedTrialError, ValueError):
        return False  # already finished: its owner finished it, or another worker reclaimed it
    enqueue_retry(study, trial, max_retries=max_retries)
    return True


def reclaim_orphans(study, *, max_retries):
    """Fail and retry every RUNNING trial whose process on this machine has died.

    Returns ``[(trial number, owner record), ...]`` for the trials this call reclaimed.
    """
    from optuna.trial import TrialState

    reclaimed = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        owner = trial.user_attrs.get(OWNER_ATTR)
        if owner_status(owner) == "dead" and fail_and_retry(study, trial, max_retries=max_retries):
            reclaimed.append((trial.number, owner))
    return reclaimed


def fail_stale_trials(study):
    """Run Optuna's heartbeat check (SQL storages); a no-op for storages without heartbeat."""
    import warnings

    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)
