"""Scale-out for real: several ``sertiny tune`` worker processes on one PostgreSQL study.

The server comes from ``$SERTINY_TEST_POSTGRES_URL`` (CI exports it from
``.ci/postgres.sh start``) or is started here with that script: Debian's PostgreSQL on
127.0.0.1, in a temporary directory. Without one the test skips, saying why, except
under ``CI=true``, where it must run.
"""

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

optuna = pytest.importorskip("optuna", reason="tuning needs the [train] extra (optuna)")

ROOT = Path(__file__).resolve().parents[1]
IN_CI = os.environ.get("CI", "").lower() == "true"


def _unavailable(reason):
    if IN_CI:
        pytest.fail(f"CI=true, so the PostgreSQL test must run, but {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def postgres_url():
    import importlib.util

    # Either driver works (sertiny.tuning.storage picks the installed one); the train extra
    # installs psycopg 3.
    if not any(importlib.util.find_spec(name) for name in ("psycopg", "psycopg2")):
        _unavailable('no PostgreSQL driver is installed (pip install "psycopg[binary]")')
    url = os.environ.get("SERTINY_TEST_POSTGRES_URL")
    if url:
        yield url
        return
    script = ROOT / ".ci" / "postgres.sh"
    try:
        started = subprocess.run(["bash", str(script), "start"], check=False, capture_output=True, text=True, timeout=900)
    except (OSError, subprocess.TimeoutExpired) as exc:
        _unavailable(f"could not run {script}: {exc}")
    if started.returncode != 0:
        _unavailable(f"{script.name} could not start PostgreSQL (exit {started.returncode}): "
                     f"{started.stderr.strip()[-500:]}")
    values = dict(line.split("=", 1) for line in started.stdout.splitlines() if "=" in line)
    try:
        yield values["SERTINY_TEST_POSTGRES_URL"]
    finally:
        subprocess.run(["bash", str(script), "stop", values["SERTINY_PG_DIR"]], check=False, capture_output=True, timeout=120)


def _tune(npz, out, url, study, workers, n_trials):
    return [sys.executable, "-c", "from sertiny.cli import main; main()", "tune", "--features", str(npz),
            "--out", str(out), "--storage", url, "--study-name", study, "--workers", str(workers),
            "--n-trials", str(n_trials), "--model", "lstm_sa_h8", "--epochs", "1", "--folds", "kfold",
            "--n-folds", "2", "--seq-len", "40", "--fix", "batch_size=16", "--pruner", "none", "--quiet"]


@pytest.mark.slow
def test_two_commands_and_their_workers_run_every_trial_once(small_npz, postgres_url, tmp_path):
    """One command with --workers 2 and one more (another 'machine'), one study, one budget."""
    study_name = f"ci-{uuid.uuid4().hex[:8]}"
    n_trials = 6
    env = dict(os.environ, KERAS_BACKEND="jax")
    commands = [_tune(small_npz, tmp_path / "a", postgres_url, study_name, 2, n_trials),
                _tune(small_npz, tmp_path / "b", postgres_url, study_name, 1, n_trials)]
    logs = [tmp_path / f"tune_{i}.log" for i in range(len(commands))]
    procs = []
    for command, log in zip(commands, logs):
        with open(log, "w") as f:  # a file, not a pipe: nobody has to drain it meanwhile
            procs.append(subprocess.Popen(command, env=env, stdout=f, stderr=subprocess.STDOUT))
    for proc, log in zip(procs, logs):
        proc.wait(timeout=900)
        assert proc.returncode == 0, f"sertiny tune failed:\n{log.read_text()[-3000:]}"

    trials = optuna.load_study(study_name=study_name, storage=postgres_url).get_trials()
    assert {t.state.name for t in trials} == {"COMPLETE"}
    # Three workers check the budget before each trial; a tie at the very end can add
    # at most one trial per extra worker, never lose one.
    assert n_trials <= len(trials) <= n_trials + 2
    assert sorted(t.number for t in trials) == list(range(len(trials)))
    assert len({tuple(sorted(t.params.items())) for t in trials}) == len(trials), "a trial ran twice"
    workers = {(t.user_attrs["worker"]["host"], t.user_attrs["worker"]["pid"]) for t in trials}
    assert len(workers) >= 2, f"only one worker process ran trials: {workers}"
    # Each command waited for the other's last trials, so both report the whole study.
    best = [json.loads((tmp_path / d / "best_params.json").read_text()) for d in ("a", "b")]
    assert best[0] == best[1] and best[0]["trials"]["complete"] == len(trials)
