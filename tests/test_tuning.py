"""sertiny tune: search space, storage, dead-trial recovery, budget, outputs, kill -9 resume.

Most tests drive the real worker loop with a cheap objective (no training); two train
for real on six RAVDESS actors with the paper's own features and a tiny budget.
"""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

optuna = pytest.importorskip("optuna", reason="tuning needs the [train] extra (optuna)")
# Tests that ask() trials by hand, as a killed worker would have, on a heartbeat storage.
pytestmark = pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed to be used")

from sertiny.errors import ParameterError  # noqa: E402
from sertiny.training import TrainConfig  # noqa: E402
from sertiny.tuning import TuneConfig, recovery, tune  # noqa: E402
from sertiny.tuning.run import run_trials  # noqa: E402
from sertiny.tuning.space import SPACES, suggest  # noqa: E402
from sertiny.tuning.storage import redact_url, resolve_storage  # noqa: E402
from sertiny.tuning.study import budget, open_study  # noqa: E402

TINY_TRAIN = dict(model="lstm_sa_h8", epochs=1, folds="kfold", n_folds=3, n_val_speakers=1, seq_len=40)
QUIET = dict(log=lambda message: None)


def toy_objective(trial):
    """A cheap stand-in for training: smooth in the paper's parameters, best near lr 1e-4."""
    p = suggest(trial, "paper")
    return -((np.log10(p["lr"]) + 4) ** 2) - (p["dropout"] - 0.3) ** 2 - 0.01 * p["t0"]


def toy_study(tmp_path, **overrides):
    config = TuneConfig(**{"n_trials": 6, "tpe_startup_trials": 3, **overrides})
    spec = resolve_storage(overrides.get("storage"), tmp_path)
    return open_study(config, spec, "toy-data"), config


def finished_params(study):
    states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    return [tuple(sorted(t.params.items())) for t in study.get_trials(states=states)]


# ---------------------------------------------------------------- config and storage


def test_config_errors_name_the_parameter_and_the_fix():
    with pytest.raises(ParameterError, match=r"The 'space' parameter of TuneConfig must be one of \['paper', 'wide'\]"):
        TuneConfig(space="huge")
    with pytest.raises(ParameterError, match="The 'n_trials' parameter of TuneConfig must be an int >= 0. Got -1"):
        TuneConfig(n_trials=-1)
    with pytest.raises(ParameterError, match=r"names unknown field\(s\) \['momentum'\]"):
        TuneConfig(fixed={"momentum": 0.9})
    with pytest.raises(ParameterError, match="'batch_size' parameter of TrainConfig"):
        TuneConfig(fixed={"batch_size": 1})
    with pytest.raises(ParameterError, match="'grace_period' parameter of TuneConfig must be an int >= 61"):
        TuneConfig(heartbeat_interval=60, grace_period=60)


def test_config_round_trips_and_never_saves_a_password(tmp_path):
    config = TuneConfig(train=TrainConfig(model="lstm_sa_h8", epochs=3), fixed={"batch_size": 16},
                        storage="postgresql://tuner:s3cret@db:5432/sertiny", train_seed=4)
    assert config.train.seeds == (4,)  # the tuner owns the training seed
    assert TuneConfig.from_dict(json.loads(config.to_json())) == config
    config.redacted().save(tmp_path / "tune_config.json")
    saved = (tmp_path / "tune_config.json").read_text()
    assert "s3cret" not in saved and "postgresql://tuner:***@db:5432/sertiny" in saved
    assert redact_url("postgresql://tuner@db/sertiny") == "postgresql://tuner@db/sertiny"


def test_storage_argument_forms(tmp_path):
    assert resolve_storage(None, tmp_path).target == f"sqlite:///{tmp_path.resolve() / 'study.db'}"
    assert resolve_storage("x/s.db", tmp_path).target.endswith("/x/s.db")
    assert resolve_storage("journal:runs/s", tmp_path).kind == "journal"
    assert resolve_storage("s.log", tmp_path).kind == "journal"
    url = "postgresql+psycopg2://u@127.0.0.1:5432/d"
    assert resolve_storage(url, tmp_path).target == url
    with pytest.raises(ParameterError, match="Cannot tell what storage 'study' is"):
        resolve_storage("study", tmp_path)
    with pytest.raises(ParameterError, match="'redis' is not supported"):
        resolve_storage("redis://localhost", tmp_path)


def test_paper_space_is_the_papers():
    space = SPACES["paper"]
    assert (space["lr"].low, space["lr"].high) == (3e-5, 2e-4)
    assert (space["weight_decay"].low, space["weight_decay"].high) == (2e-5, 2e-2)
    assert (space["dropout"].low, space["dropout"].high) == (0.1, 0.5)
    assert space["t0"].values == (1, 2, 3, 5, 10) and space["batch_size"].values == (8, 16, 32, 64)


def test_a_study_refuses_a_different_search(tmp_path):
    toy_study(tmp_path, train=TrainConfig(epochs=5))
    with pytest.raises(ParameterError, match="train.epochs was 5, now 6.*another --study-name or --out"):
        toy_study(tmp_path, train=TrainConfig(epochs=6))
    config = TuneConfig(train=TrainConfig(epochs=5), n_trials=6, tpe_startup_trials=3)
    with pytest.raises(ParameterError, match="the data"):
        open_study(config, resolve_storage(None, tmp_path), "other-data")
    # Budget, pruner and workers may change between runs of one study.
    toy_study(tmp_path, train=TrainConfig(epochs=5), n_trials=60, pruner="none", workers=3)


# ---------------------------------------------------------------- sampler, budget, recovery


def test_tpe_is_reproducible_and_a_resumed_study_repeats_no_sample(tmp_path):
    straight, config = toy_study(tmp_path / "a")
    run_trials(straight, toy_objective, config, **QUIET)
    # The same study interrupted after 2 trials and resumed by a fresh process (new sampler).
    first, first_config = toy_study(tmp_path / "b", n_trials=2)
    run_trials(first, toy_objective, first_config, **QUIET)
    resumed, config = toy_study(tmp_path / "b")
    assert run_trials(resumed, toy_objective, config, **QUIET) == 4  # finishes the budget, no more
    assert finished_params(resumed) == finished_params(straight)
    assert len(set(finished_params(straight))) == 6


def test_a_dead_processs_trial_is_retried_exactly_once(tmp_path):
    study, config = toy_study(tmp_path)
    killed = study.ask()
    # Our own pid with another start time: how a pid reused after a kill -9 looks.
    dead = {**recovery.this_process(), "started": recovery.this_process()["started"] - 100}
    killed.set_user_attr(recovery.OWNER_ATTR, dead)
    suggest(killed, "paper")
    remote = study.ask()  # a trial running on another machine: left alone
    remote.set_user_attr(recovery.OWNER_ATTR, {**dead, "machine": "another-machine"})
    suggest(remote, "paper")

    assert [n for n, _ in recovery.reclaim_orphans(study, max_retries=2)] == [killed.number]
    assert recovery.reclaim_orphans(study, max_retries=2) == []  # a second worker finds nothing
    run_trials(study, toy_objective, config, **QUIET)

    trials = study.get_trials()
    assert trials[killed.number].state.name == "FAIL"
    retries = [t for t in trials if t.system_attrs.get("failed_trial") == killed.number]
    assert len(retries) == 1 and retries[0].state.name == "COMPLETE"
    assert retries[0].params == trials[killed.number].params
    b = budget(study, config.n_trials)
    # The remote trial still counts: it will finish on its machine.
    assert (b.finished, b.running, b.waiting, b.failed) == (5, 1, 0, 1)
    assert len(set(finished_params(study))) == 5


def test_a_trial_that_keeps_killing_its_process_is_given_up(tmp_path):
    study, _ = toy_study(tmp_path, max_retries=1)
    trial = study.ask()
    suggest(trial, "paper")
    study.tell(trial, state=optuna.trial.TrialState.FAIL)
    failed = study.get_trials()[-1]
    assert recovery.enqueue_retry(study, failed, max_retries=1)
    retry_of_retry = optuna.trial.create_trial(state=optuna.trial.TrialState.FAIL, params=failed.params,
                                               distributions=failed.distributions,
                                               system_attrs={"failed_trial": 0, "retry_history": [0]})
    assert not recovery.enqueue_retry(study, retry_of_retry, max_retries=1)


def test_ctrl_c_queues_the_interrupted_trial_again(tmp_path):
    study, config = toy_study(tmp_path)

    class Interrupting:
        last_trial = None

        def __call__(self, trial):
            self.last_trial = trial.number
            suggest(trial, "paper")
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_trials(study, Interrupting(), config, **QUIET)
    interrupted, retry = study.get_trials()
    assert interrupted.state.name == "FAIL" and retry.state.name == "WAITING"
    assert retry.params == interrupted.params


def test_workers_in_two_processes_share_a_journal_budget(tmp_path):
    """Two processes on one journal file: every trial runs once, the budget is met."""
    storage = f"journal:{tmp_path / 'study.log'}"
    script = textwrap.dedent(f"""
        import os, sys, time
        from pathlib import Path
        sys.path.insert(0, {os.path.dirname(__file__)!r})
        from test_tuning import toy_study, toy_objective, QUIET
        from sertiny.tuning.run import run_trials

        def slow_objective(trial):  # long enough for the two workers to interleave
            time.sleep(0.1)
            return toy_objective(trial)

        tmp = Path({str(tmp_path)!r})
        study, config = toy_study(tmp, n_trials=12, storage={storage!r})
        (tmp / f"ready_{{os.getpid()}}").touch()
        while not (tmp / "go").exists():
            time.sleep(0.05)
        print(run_trials(study, slow_objective, config, **QUIET))
    """)
    procs = [subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True) for _ in range(2)]
    deadline = time.time() + 120
    while len(list(tmp_path.glob("ready_*"))) < 2 and time.time() < deadline:
        time.sleep(0.05)
    (tmp_path / "go").touch()
    started = [int(p.communicate(timeout=120)[0].strip()) for p in procs]
    assert all(p.returncode == 0 for p in procs)
    study, _ = toy_study(tmp_path, n_trials=12, storage=storage)
    n = len(study.get_trials())
    # Both check the budget before creating a trial, so a tie at the very end can add one.
    assert 12 <= n <= 13 and sum(started) == n and min(started) >= 3
    assert len(set(finished_params(study))) == n


# ---------------------------------------------------------------- real training
# (small_table and small_npz: six actors of the paper features, from conftest.py)


def test_tune_end_to_end_scores_trials_with_the_training_protocol(small_table, tmp_path):
    from sertiny.training import train
    from sertiny.training.cli_support import build_train_config

    # The wide space reaches learning rates at which one epoch already separates trials.
    config = TuneConfig(train=TrainConfig(**TINY_TRAIN), space="wide", n_trials=4, fixed={"batch_size": 16},
                        pruner_startup_trials=1)
    summary = tune(small_table, config, tmp_path / "tune", progress=False)

    out = tmp_path / "tune"
    for name in ("best_params.json", "best_train_config.json", "trials.csv", "top_trials.md", "history.png",
                 "importance.png", "tune_config.json", "study.db"):
        assert (out / name).exists(), name
    assert not (out / "trials").exists(), "finished trials' scratch runs are deleted"
    assert summary["trials"]["complete"] + summary["trials"]["pruned"] == 4
    study = optuna.load_study(study_name=config.name, storage=f"sqlite:///{out / 'study.db'}")
    for t in study.get_trials():
        steps = sorted(t.intermediate_values)
        assert steps == list(range(1, len(steps) + 1)), "one report per fold"
        if t.state.name == "COMPLETE":
            assert steps[-1] == 3 and t.intermediate_values[3] == t.value
    # best_params.json feeds `sertiny train --params`, and training those parameters
    # reproduces the trial's value: the objective is the protocol's pooled UAR.
    best = json.loads((out / "best_params.json").read_text())
    train_config = build_train_config(None, out / "best_params.json", dict(TINY_TRAIN))
    assert train_config.hyperparameters() == best["params"]
    # best_train_config.json (`sertiny train --config`, as the README and tune's help say) is the same recipe.
    assert build_train_config(out / "best_train_config.json", None, {}) == train_config
    metrics = train(small_table, train_config, tmp_path / "check", progress=False)
    assert metrics["uar_mean"] == pytest.approx(best["value"], abs=1e-12)
    assert "| 1 | " in (out / "top_trials.md").read_text()


def _cli(npz, out, n_trials):
    return [sys.executable, "-c", "from sertiny.cli import main; main()", "tune", "--features", str(npz), "--out", str(out),
            "--model", "lstm_sa_h8", "--epochs", "2", "--folds", "kfold", "--n-folds", "3", "--seq-len", "40",
            "--fix", "batch_size=16", "--n-trials", str(n_trials), "--pruner", "none", "--quiet"]


def _wait_for(predicate, proc, timeout):
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        if predicate():
            return True
        time.sleep(0.2)
    return False


def test_kill_9_then_the_same_command_finishes_the_budget_without_loss_or_repeat(small_npz, tmp_path):
    out = tmp_path / "tune"
    storage = f"sqlite:///{out / 'study.db'}"
    name = "lstm_sa_h8-paper-val"  # the CLI tunes on validation speakers by default

    def _owned(number):
        from sertiny.tuning.recovery import OWNER_ATTR

        try:
            trials = optuna.load_study(study_name=name, storage=storage).get_trials()
        except Exception:
            return False
        return len(trials) > number and OWNER_ATTR in trials[number].user_attrs

    def states():
        try:
            return [t.state.name for t in optuna.load_study(study_name=name, storage=storage).get_trials()]
        except Exception:  # no study or no tables yet: any storage error means "not started"
            return []

    env = dict(os.environ, KERAS_BACKEND="jax")
    with open(tmp_path / "stderr.txt", "w") as stderr:
        proc = subprocess.Popen(_cli(small_npz, out, 3), env=env, start_new_session=True,
                                stdout=subprocess.DEVNULL, stderr=stderr)
        # Kill only once trial 1 has recorded its owner process: between Optuna creating a
        # trial and that record, a killed trial is left to the storage heartbeat instead.
        in_second = _wait_for(lambda: states()[:2] == ["COMPLETE", "RUNNING"] and _owned(1), proc, timeout=240)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    log = (tmp_path / "stderr.txt").read_text()[-2000:]
    assert in_second, f"never saw trial 1 running; states {states()}; stderr:\n{log}"

    subprocess.run(_cli(small_npz, out, 3), env=env, check=True, timeout=300, capture_output=True)

    trials = optuna.load_study(study_name=name, storage=storage).get_trials()
    by_state = {s: [t for t in trials if t.state.name == s] for s in ("COMPLETE", "FAIL", "RUNNING", "WAITING")}
    assert len(by_state["COMPLETE"]) == 3 and not by_state["RUNNING"] and not by_state["WAITING"]
    [killed] = by_state["FAIL"]
    assert killed.number == 1 and killed.user_attrs["worker"]["pid"] == proc.pid
    [retry] = [t for t in trials if t.system_attrs.get("failed_trial") == killed.number]
    assert retry.params == killed.params and retry.state.name == "COMPLETE"
    assert len({tuple(sorted(t.params.items())) for t in by_state["COMPLETE"]}) == 3, "a trial ran twice"
    assert json.loads((out / "best_params.json").read_text())["trials"]["complete"] == 3
