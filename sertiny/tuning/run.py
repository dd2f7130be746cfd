"""``tune()``: run a study to its budget with one or more worker processes, then report.

Every worker, whether spawned here or started by the same command on another machine,
runs the same loop against the shared storage::

    reclaim trials whose process died -> start a trial if the budget allows
    -> otherwise wait for the trials still running -> stop

so the workers need no coordinator: the storage is the only shared state. Waiting for
the last running trials means every command returns with the whole budget done (its
outputs then describe the finished study), and it is what runs the retry of a trial
whose process dies meanwhile, on this machine or, via the heartbeat, on another.
"""

import contextlib
import os
import sys
import time
from pathlib import Path

from ..errors import SertinyError, require
from ..features.table import table_fingerprint
from . import recovery
from .report import write_outputs
from .storage import resolve_storage
from .study import budget, open_study

# How often an idle worker re-checks the running trials it waits for: on this machine a
# dead process is seen at once; elsewhere only after the heartbeat's grace period anyway.
_LOCAL_POLL_SECONDS = 2
_REMOTE_POLL_SECONDS = 15


def tune(table, config, out_dir, *, data_spec=None, progress=True):
    """Run (or resume, or join) the study ``config`` describes; write and return its results.

    Parameters
    ----------
    table : FeatureTable
        The clips every trial trains and tests on.
    config : TuneConfig
    out_dir : str or Path
        Gets ``tune_config.json``, the default ``study.db``, the trials' scratch runs and
        the outputs of :func:`sertiny.tuning.report.write_outputs`.
    data_spec : DataSpec, optional
        Where ``table`` came from; recorded in the outputs.
    progress : bool
        One line per trial (and fold events) on stderr.

    Returns
    -------
    dict
        The summary :func:`~sertiny.tuning.report.write_outputs` returns: best value and
        parameters, trial counts, output paths.
    """
    optuna = require("optuna", "train")
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # our own one line per event instead
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    spec = resolve_storage(config.storage, out_dir)
    table_hash = table_fingerprint(table)
    study = open_study(config, spec, table_hash)  # creates it, or refuses a mismatched one
    config.redacted().save(out_dir / "tune_config.json")
    deadline = time.time() + config.timeout if config.timeout else None
    log = _logger("", progress)
    log(f"study '{config.name}' in {spec}: {_budget_line(budget(study, config.n_trials))}")
    args = (table, config, spec, table_hash, out_dir, data_spec, deadline, progress)
    try:
        if config.workers == 1:
            _worker(*args)
        else:
            _run_worker_processes(args, config.workers, log)
    finally:
        # Queue the trials of workers that died or were stopped, so the next run retries
        # them at once.
        study = open_study(config, spec, table_hash)
        recovery.reclaim_orphans(study, max_retries=config.max_retries)
    with contextlib.suppress(OSError):
        (out_dir / "trials").rmdir()  # only if empty: kept runs and killed trials' folds stay
    return write_outputs(study, config, out_dir, storage=str(spec), data_spec=data_spec)


def run_trials(study, objective, config, *, heartbeat=False, deadline=None, stop=None, log=print):
    """The worker loop: run trials until the budget is done or time is up.

    ``objective`` is any ``study.optimize`` objective (tests pass cheap ones).
    ``heartbeat``: the storage fails trials of dead processes on other machines, so
    waiting for those trials ends. ``stop()`` returning True ends the loop between
    trials. Returns the number of trials this worker started.
    """
    started = 0
    while not (deadline is not None and time.time() >= deadline) and not (stop and stop()):
        _recover(study, config, heartbeat, log)
        if budget(study, config.n_trials).can_start:
            _run_one_trial(study, objective, config, log)
            started += 1
            continue
        poll = _wait_seconds(study, config, heartbeat)
        if poll is None:
            break
        time.sleep(poll)
    return started


def _recover(study, config, heartbeat, log):
    for number, owner in recovery.reclaim_orphans(study, max_retries=config.max_retries):
        log(f"trial {number} was left running by process {owner.get('pid')}, which is gone; "
            "its parameters are queued again")
    if heartbeat:
        recovery.fail_stale_trials(study)


def _wait_seconds(study, config, heartbeat):
    """How long to sleep before looking again, or None when no running trial is worth waiting for.

    A running trial ends (finished, or failed and queued again) if its process is alive
    here, or if it runs elsewhere on a heartbeat storage. Without a heartbeat, a trial of
    another machine might be orphaned for good, so it is not waited for; nor is a trial
    without an owner record (its process died before writing one, and before its first
    heartbeat, which Optuna never calls stale).
    """
    from optuna.trial import TrialState

    owners = [t.user_attrs.get(recovery.OWNER_ATTR)
              for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))]
    statuses = {recovery.owner_status(owner) for owner in owners if owner}
    if heartbeat and "unknown" in statuses:
        return min(config.heartbeat_interval, _REMOTE_POLL_SECONDS)
    if statuses & {"alive", "dead"}:  # dead: reclaimed by the next _recover
        return _LOCAL_POLL_SECONDS
    return None


def _run_one_trial(study, objective, config, log):
    """One trial through ``study.optimize`` (heartbeat, pruning, tell).

    Compiled JAX functions are deliberately kept between trials: clearing them
    (``jax.clear_caches()``) made the first fold of every trial recompile Keras' small
    eager ops, 2x slower here and far worse under load, and a pruned trial is mostly a
    first fold. Kept, memory grew ~300 MB over 40 trials and then flattened, since the
    compiled shapes are bounded by batch sizes x folds.
    """
    try:
        study.optimize(objective, n_trials=1, catch=(), gc_after_trial=True)
    except KeyboardInterrupt:
        # Optuna marks an interrupted trial FAIL, which is not retried by the dead-process
        # checks; queue it here so Ctrl-C, like kill -9, loses no trial.
        number = getattr(objective, "last_trial", None)
        if number is not None:
            trial = study.get_trials(deepcopy=False)[number]
            if trial.state.name == "FAIL" and recovery.enqueue_retry(study, trial, max_retries=config.max_retries):
                log(f"trial {number} interrupted; its parameters are queued for the next run")
        raise


def _worker(table, config, spec, table_hash, out_dir, data_spec, deadline, progress, rank=None, parent_pid=None):
    """One worker: open the study and run trials. ``rank`` is set in spawned processes."""
    import optuna

    from .objective import TrialObjective

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # our own one line per event instead
    log = _logger("" if rank is None else f"[worker {rank}] ", progress)
    study = open_study(config, spec, table_hash)
    objective = TrialObjective(table, config, out_dir, data_spec=data_spec, log=log)
    # A worker whose parent was killed finishes its trial, then stops: the rerun's
    # workers take over, and none of them needs to know about this one.
    stop = None if parent_pid is None else (lambda: os.getppid() != parent_pid)
    return run_trials(study, objective, config, heartbeat=spec.kind == "rdb", deadline=deadline, stop=stop, log=log)


def _worker_process(args, rank, parent_pid, errors):
    """Entry point of a spawned worker; reports a failure through ``errors``."""
    from ..training.run import pin_single_thread

    pin_single_thread()
    try:
        _worker(*args, rank=rank, parent_pid=parent_pid)
    except KeyboardInterrupt:
        sys.exit(130)
    except SertinyError as exc:
        errors.put((rank, str(exc)))
        sys.exit(1)
    except Exception:  # a bug: hand the parent the whole traceback, not just the message
        import traceback

        errors.put((rank, traceback.format_exc()))
        sys.exit(1)


def _run_worker_processes(args, n, log):
    """Spawn ``n`` workers on the same storage and wait; fail fast if one of them fails."""
    import multiprocessing as mp
    from multiprocessing.connection import wait

    context = mp.get_context("spawn")  # JAX's thread pools do not survive fork
    errors = context.SimpleQueue()
    workers = [context.Process(target=_worker_process, args=(args, rank, os.getpid(), errors), daemon=False)
               for rank in range(1, n + 1)]
    for worker in workers:
        worker.start()
    try:
        pending = list(workers)
        while pending:
            wait([w.sentinel for w in pending])
            for worker in [w for w in pending if w.exitcode is not None]:
                pending.remove(worker)
                if worker.exitcode not in (0, 130):
                    _stop(pending)  # tune() then queues their running trials again
                    raise SertinyError(_failure_message(errors, worker.exitcode))
    except KeyboardInterrupt:
        for worker in workers:  # they got the same SIGINT; let them queue their retries
            worker.join(timeout=30)
        raise


def _stop(workers):
    for worker in workers:
        worker.terminate()
    for worker in workers:
        worker.join(timeout=30)


def _failure_message(errors, exitcode):
    messages = []
    while not errors.empty():
        rank, text = errors.get()
        messages.append(f"worker {rank}: {text.strip()}")
    detail = "\n".join(messages) or f"a worker exited with code {exitcode} (killed by the OS?)"
    return f"A tuning worker failed, so the others were stopped.\n{detail}\nFix the cause and run the same command again; finished trials are kept."


def _budget_line(b):
    return (f"{b.finished}/{b.n_trials} trials finished ({b.complete} complete, {b.pruned} pruned)"
            + (f", {b.running} running" if b.running else "")
            + (f", {b.waiting} queued" if b.waiting else ""))


def _logger(prefix, enabled):
    def log(message):
        if enabled:
            print(f"{prefix}{message}", file=sys.stderr, flush=True)

    return log
