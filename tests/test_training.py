"""The training protocol on a few real RAVDESS actors (the paper's own features)."""

import json
import math
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

pytest.importorskip("jax", reason="training tests need the [train] extra (Keras 3 + JAX)")

from sertiny.errors import ArtifactError, ParameterError  # noqa: E402
from sertiny.training import TrainConfig, train  # noqa: E402
from sertiny.training.loop import epoch_learning_rate  # noqa: E402

TINY = dict(model="lstm_sa_h8", epochs=2, batch_size=16, folds="kfold", n_folds=3, n_val_speakers=1, seq_len=40)


def test_learning_rate_is_pytorch_cosine_warm_restarts_stepped_per_epoch():
    lr, floor = 1e-3, 0.01
    eta_min = lr * floor
    rates = [epoch_learning_rate(e, lr=lr, t0=4, floor=floor) for e in range(9)]
    expected_cycle = [eta_min + (lr - eta_min) * (1 + math.cos(math.pi * t / 4)) / 2 for t in range(4)]
    np.testing.assert_allclose(rates, expected_cycle * 2 + expected_cycle[:1])
    # T0 = 1: the reference code restarts every epoch, so the rate never decays.
    assert {epoch_learning_rate(e, lr=lr, t0=1, floor=floor) for e in range(5)} == {lr}


def test_uar_summary_shows_a_spread_only_over_several_seeds():
    from sertiny.training.report import uar_summary

    assert uar_summary({"n_seeds": 1, "uar_mean": 0.4, "uar_std": 0.0, "uar_max": 0.4}) == "UAR 0.4000 (1 seed)"
    assert uar_summary({"n_seeds": 3, "uar_mean": 0.419, "uar_std": 0.015, "uar_max": 0.435}) == \
        "UAR 0.4190 ± 0.0150 over 3 seeds (max 0.4350)"


def test_config_errors_name_the_parameter():
    with pytest.raises(ParameterError, match="The 'lr' parameter of TrainConfig must be a float > 0.0. Got 0"):
        TrainConfig(lr=0)
    with pytest.raises(ParameterError, match="Unknown model"):
        TrainConfig(model="gru_h64")


def test_training_reduces_loss_and_writes_every_artifact(small_table, tmp_path):
    out = tmp_path / "run"
    metrics = train(small_table, TrainConfig(**TINY, lr=3e-3), out, deploy=True, progress=False)
    for name in ("run.json", "train_config.json", "feature_config.json", "metrics.json", "confusion.png",
                 "learning_curves.png", "seed_0/metrics.json", "seed_0/oof_predictions.csv", "deploy/weights.npz"):
        assert (out / name).exists(), name
    for fold in (1, 2, 3):
        history = (out / f"seed_0/fold_{fold}/history.csv").read_text().splitlines()
        losses = [float(line.split(",")[2]) for line in history[1:]]
        assert losses[-1] < losses[0], f"fold {fold}: {losses}"
    assert 0.0 <= metrics["uar_mean"] <= 1.0
    assert metrics["trainable_params"] > 0
    # Pooled out-of-fold predictions cover every clip exactly once.
    oof = (out / "seed_0/oof_predictions.csv").read_text().splitlines()[1:]
    assert sorted(line.split(",")[0] for line in oof) == sorted(small_table.names)
    # Rerunning the finished run retrains nothing, the deployment model included.
    stamp = (out / "deploy/weights.npz").stat().st_mtime_ns
    again = train(small_table, TrainConfig(**TINY, lr=3e-3), out, deploy=True, progress=False)
    assert again["deploy"] == metrics["deploy"] and (out / "deploy/weights.npz").stat().st_mtime_ns == stamp


def test_no_speaker_is_in_two_roles_and_tests_only_its_test_speakers(small_table, tmp_path):
    out = tmp_path / "run"
    train(small_table, TrainConfig(**dict(TINY, epochs=1)), out, progress=False)
    folds = json.loads((out / "run.json").read_text())["folds"]
    for fold in folds:
        roles = [set(fold["train_speakers"]), set(fold["val_speakers"]), set(fold["test_speakers"])]
        assert not (roles[0] & roles[1] or roles[0] & roles[2] or roles[1] & roles[2])
        predicted = (out / f"seed_0/fold_{fold['index']}/predictions.csv").read_text().splitlines()[1:]
        assert {line.split(",")[1] for line in predicted} == roles[2]


def test_same_config_same_numbers(small_table, tmp_path):
    config = TrainConfig(**dict(TINY, epochs=1, folds="kfold", n_folds=2))
    a = train(small_table, config, tmp_path / "a", progress=False)
    b = train(small_table, config, tmp_path / "b", progress=False)
    assert a["uar_per_seed"] == b["uar_per_seed"]
    wa = np.load(tmp_path / "a/seed_0/fold_1/weights.npz")
    wb = np.load(tmp_path / "b/seed_0/fold_1/weights.npz")
    for key in wa.files:
        np.testing.assert_array_equal(wa[key], wb[key])


def test_a_run_dir_with_another_config_is_not_silently_reused(small_table, tmp_path):
    train(small_table, TrainConfig(**dict(TINY, epochs=1, n_folds=2)), tmp_path / "run", progress=False)
    with pytest.raises(ArtifactError, match="different training or feature config"):
        train(small_table, TrainConfig(**dict(TINY, epochs=1, n_folds=2, lr=1e-2)), tmp_path / "run", progress=False)


def test_killed_run_resumes_without_redoing_finished_folds(small_npz, tmp_path):
    """SIGKILL the CLI after its first fold, rerun the same command, check it continues."""
    out = tmp_path / "run"
    # Six actors, three folds: the paper folds need all 24, so kfold.
    script = (
        "from sertiny.features.table import load_paper_features\n"
        "from sertiny.training import TrainConfig, train\n"
        f"t = load_paper_features({str(small_npz)!r})\n"
        f"train(t, TrainConfig(**{dict(TINY, epochs=3)!r}), {str(out)!r}, progress=False)\n"
    )
    env = dict(os.environ, KERAS_BACKEND="jax")
    proc = subprocess.Popen([sys.executable, "-c", script], env=env, start_new_session=True)
    first = out / "seed_0" / "fold_1" / "fold.json"
    deadline = time.time() + 240
    while not first.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert first.exists(), "the first fold never finished"
    finished_before = sorted(p.parent.name for p in out.glob("seed_0/fold_*/fold.json"))
    assert finished_before and len(finished_before) < 3, "kill came too late to test a resume"
    stamps = {p: p.stat().st_mtime_ns for p in out.glob("seed_0/fold_*/weights.npz")}
    subprocess.run([sys.executable, "-c", script], env=env, check=True, timeout=300)
    assert sorted(p.parent.name for p in out.glob("seed_0/fold_*/fold.json")) == ["fold_1", "fold_2", "fold_3"]
    for path, stamp in stamps.items():
        assert path.stat().st_mtime_ns == stamp, f"{path} was retrained"
    assert not list(out.rglob("*.tmp*")), "a temporary file was left behind"
    assert json.loads((out / "metrics.json").read_text())["n_seeds"] == 1


def test_adding_seeds_to_a_run_keeps_the_seeds_already_trained(small_table, tmp_path):
    recipe = dict(TINY, epochs=1, n_folds=2)
    train(small_table, TrainConfig(**recipe, seeds=(0,)), tmp_path / "run", progress=False)
    stamp = (tmp_path / "run/seed_0/fold_1/weights.npz").stat().st_mtime_ns
    metrics = train(small_table, TrainConfig(**recipe, seeds=(0, 1)), tmp_path / "run", progress=False)
    assert (tmp_path / "run/seed_0/fold_1/weights.npz").stat().st_mtime_ns == stamp
    assert sorted(metrics["uar_per_seed"]) == ["0", "1"]
