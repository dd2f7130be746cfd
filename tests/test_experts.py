"""Joining a ResLSTM-SA run and a stats_linear run into one res_lstm_sa_stats run (sertiny.training.experts).

The joined model must compute the product of the two experts' probabilities (weighted,
renormalised), fold by fold, and the joined run must be a normal run: metrics from its
predictions, exportable, resumable; runs that do not belong together are refused.
"""

import json

import numpy as np
import pytest

pytest.importorskip("jax", reason="the models need the [train] extra (Keras 3 + JAX)")

from export_helpers import C, F, H, T, random_weights, write_run  # noqa: E402

from sertiny.errors import ParameterError  # noqa: E402
from sertiny.models import create_model  # noqa: E402
from sertiny.models.weights import get_weights, save_weights, set_weights  # noqa: E402
from sertiny.training.experts import JoinConfig, join_runs, join_weights  # noqa: E402


def _stats_weights(seed):
    weights = get_weights(create_model("stats_linear_h1", n_features=F, n_classes=C, seq_len=T, seed=seed))
    rng = np.random.default_rng(seed)
    return {k: (v + rng.normal(0, 0.3, v.shape)).astype(np.float32) if not k.endswith("variance") else v
            for k, v in weights.items()}


def _probabilities(name, weights, x):
    model = create_model(name, n_features=F, n_classes=C, seq_len=T)
    set_weights(model, weights)
    return np.asarray(model(x, training=False), np.float64)


@pytest.mark.parametrize("weight", [0.5, 0.8])
def test_the_joined_model_is_the_weighted_product_of_the_two_experts(weight):
    recurrent, stats = random_weights("res_lstm_sa", H, seed=1), _stats_weights(2)
    x = np.random.default_rng(3).normal(size=(5, T, F)).astype(np.float32)
    p_a = _probabilities(f"res_lstm_sa_h{H}", recurrent, x)
    p_b = _probabilities("stats_linear_h1", stats, x)
    expected = p_a ** weight * p_b ** (1 - weight)
    expected /= expected.sum(1, keepdims=True)
    joined = _probabilities(f"res_lstm_sa_stats_h{H}", join_weights(recurrent, stats, weight), x)
    np.testing.assert_allclose(joined, expected, atol=1e-5)


def _finish(run, stats_run=False):
    """Give a write_run directory what a finished run has: metrics.json (and stats weights)."""
    if stats_run:
        info = json.loads((run / "run.json").read_text())
        info["model_config"].update(family="stats_linear", hidden=1)
        (run / "run.json").write_text(json.dumps(info))
        (run / "train_config.json").write_text(json.dumps({"model": "stats_linear_h1", "seeds": [0]}))
        for i, weights_file in enumerate(sorted(run.glob("**/weights.npz"))):
            save_weights(weights_file, _stats_weights(i))
    (run / "metrics.json").write_text(json.dumps({"uar_mean": 0.1}))
    return run


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("experts")
    (root / "a").mkdir()
    (root / "b").mkdir()
    recurrent = _finish(write_run(root / "a"))
    stats = _finish(write_run(root / "b"), stats_run=True)
    return recurrent, stats


def test_a_joined_run_is_a_normal_run_of_the_joined_family(runs, tmp_path):
    from sertiny.training.rundir import RunDir

    recurrent, stats = runs
    out = tmp_path / "joined"
    lines = []
    metrics = join_runs(JoinConfig(str(recurrent), str(stats)), out, progress=lines.append)
    run = RunDir(out)
    info = run.check()
    assert info["model_config"]["family"] == "res_lstm_sa_stats" and info["joined_from"]["weight"] == 0.5
    assert lines == ["joined seed0_fold1", "joined seed0_fold2", "joined deploy"]
    assert 0 <= metrics["uar_mean"] <= 1 and (out / "confusion.png").is_file()
    fold = run.read_fold(0, 1)
    assert {"val_uar", "test_uar"} <= set(fold) and len(run.read_predictions(0, 1)) == fold["n_test"]
    # the fold's weights are the two experts' joined
    weights, _ = run.read_model("seed0_fold1")
    expected = join_weights(RunDir(recurrent).read_model("seed0_fold1")[0], RunDir(stats).read_model("seed0_fold1")[0])
    assert all(np.array_equal(weights[k], expected[k]) for k in expected)
    # rerunning keeps what is written (resume); another pair in the same directory is refused
    assert join_runs(JoinConfig(str(recurrent), str(stats)), out, progress=lines.append)["uar_mean"] == metrics["uar_mean"]
    assert len(lines) == 3
    with pytest.raises(ParameterError, match="holds another run"):
        join_runs(JoinConfig(str(recurrent), str(stats), weight=0.7), out)


def test_the_joined_run_exports_with_the_streaming_profile(runs, tmp_path):
    pytest.importorskip("tensorflow", reason="export needs the [train] extra (TensorFlow)")
    from sertiny.export import ExportConfig, export_run

    recurrent, stats = runs
    join_runs(JoinConfig(str(recurrent), str(stats)), tmp_path / "joined")
    manifest = export_run(tmp_path / "joined", tmp_path / "bundle", ExportConfig(chunks=(1,), calib_clips=8))
    assert manifest["model"]["family"] == "res_lstm_sa_stats"
    assert manifest["variants"]["int8_chunk1"]["head"]["statistics"] == ["mean", "std", "delta_rms"]
    card = " ".join((tmp_path / "bundle" / "MODEL_CARD.md").read_text().split())
    assert "keeps the LSTM states and pools attention and running sums of the frames' statistics" in card


def test_runs_that_do_not_belong_together_are_refused(runs, tmp_path):
    recurrent, stats = runs
    with pytest.raises(ParameterError, match="joining takes a res_lstm_sa run and a stats_linear run"):
        join_runs(JoinConfig(str(stats), str(recurrent)), tmp_path / "x")
    other = _finish(write_run(tmp_path, seq_len=T + 2))
    with pytest.raises(ParameterError, match="differ in 'seq_len'"):
        join_runs(JoinConfig(str(other), str(stats)), tmp_path / "y")
    (tmp_path / "masked").mkdir()
    masked = _finish(write_run(tmp_path / "masked", padding="masked"))
    with pytest.raises(ParameterError, match="'masked' padding"):
        join_runs(JoinConfig(str(masked), str(stats)), tmp_path / "v")
    (tmp_path / "utt").mkdir()
    utt = _finish(write_run(tmp_path / "utt"))
    config = json.loads((utt / "train_config.json").read_text())
    (utt / "train_config.json").write_text(json.dumps(dict(config, utterance_norm="mean")))
    with pytest.raises(ParameterError, match="utterance_norm 'mean' and 'none'"):
        join_runs(JoinConfig(str(utt), str(stats)), tmp_path / "w")
    (other / "metrics.json").unlink()
    with pytest.raises(ParameterError, match="has not finished"):
        join_runs(JoinConfig(str(other), str(stats)), tmp_path / "z")
    with pytest.raises(ParameterError, match="'weight' parameter of JoinConfig"):
        JoinConfig(str(recurrent), str(stats), weight=1.5)


def test_the_cli_joins_and_says_how_to_export(runs, tmp_path):
    from click.testing import CliRunner

    from sertiny.cli import main

    recurrent, stats = runs
    result = CliRunner().invoke(main, ["join", str(recurrent), str(stats), "--out", str(tmp_path / "j"), "--quiet"])
    assert result.exit_code == 0, result.output
    assert "res_lstm_sa_stats_h8 (joined): UAR" in result.output and "sertiny export" in result.output
    result = CliRunner().invoke(main, ["join", str(stats), str(recurrent), "--out", str(tmp_path / "k")])
    assert result.exit_code == 2 and "joining takes a res_lstm_sa run" in " ".join(result.output.split())
