"""res_lstm_sa_stats: ResLSTM-SA with the clip's frame statistics beside attention.

Its model is ResLSTM-SA's recurrence plus stats_linear's pooling; tests/test_families.py
trains it one step and checks every profile (full and chunked, float and int8) against the
Keras model. Here: the host's running statistics against the pooling's definition whatever
the chunking, the head a bundle carries, and the weight checks.
"""

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from sertiny.errors import ArtifactError, ParameterError
from sertiny.runtime.chunked import OnlineStatistics

F, H, C, T = 6, 8, 3, 12
C_REFERENCE = Path(__file__).resolve().parents[1] / "firmware_bench" / "c_reference"
EPS = 1e-4


def _definition(x):
    """mean, std, delta_rms of (T, F) frames by their definitions (stats_linear_spec)."""
    soft_sqrt = lambda v: v / np.sqrt(v + EPS)
    x = x.astype(np.float64)
    return np.concatenate([x.mean(0), soft_sqrt(x.var(0)), soft_sqrt((np.diff(x, axis=0) ** 2).mean(0))])


@pytest.mark.parametrize("chunks", [(12,), (1,) * 12, (5, 5, 2), (0, 7, 0, 5)])
def test_running_statistics_equal_the_pooling_whatever_the_chunking(chunks):
    x = np.random.default_rng(0).normal(size=(T, F)).astype(np.float32) * 2 + 0.5
    stats = OnlineStatistics(("mean", "std", "delta_rms"), EPS, F)
    start = 0
    for n in chunks:
        stats.add(x[start : start + n])
        start += n
    np.testing.assert_allclose(stats.values(), _definition(x), rtol=1e-9, atol=1e-12)


def test_statistics_follow_the_heads_order_and_one_frame_has_no_motion():
    x = np.arange(2 * F, dtype=np.float32).reshape(2, F)
    stats = OnlineStatistics(("delta_rms", "mean"), EPS, F)
    stats.add(x[:1])
    assert np.all(stats.values()[:F] == 0)  # one frame: no frame-to-frame difference yet
    stats.add(x[1:])
    np.testing.assert_allclose(stats.values()[F:], x.mean(0))


def test_unknown_statistics_and_an_empty_clip_fail_clearly():
    with pytest.raises(ArtifactError, match="Update sertiny or re-export"):
        OnlineStatistics(("mean", "kurtosis"), EPS, F)
    with pytest.raises(ParameterError, match="at least one frame"):
        OnlineStatistics(("mean",), EPS, F).values()


# ----------------------------------------------------------------------------- export

jax = pytest.importorskip("jax", reason="the model needs the [train] extra (Keras 3 + JAX)")


def _weights(seed=0):
    from sertiny.models import create_model
    from sertiny.models.weights import get_weights

    w = get_weights(create_model("res_lstm_sa_stats_h8", n_features=F, n_classes=C, seq_len=T, seed=seed))
    rng = np.random.default_rng(seed)
    for key in ("bn_out/moving_mean", "bn_out/beta"):  # away from identity, so folding is tested
        w[key] = rng.normal(0, 0.3, w[key].shape).astype(np.float32)
    return w


def test_the_head_reads_the_context_then_the_statistics():
    from sertiny.export.graph import fold_weights
    from sertiny.models import model_config

    fw = fold_weights(_weights(), model_config("res_lstm_sa_stats_h8", n_features=F, n_classes=C, seq_len=T))
    head = fw.head_dict()
    assert fw.family == "res_lstm_sa_stats" and fw.residual
    assert len(head["attention_u"]) == H and head["statistics"] == ["mean", "std", "delta_rms"]
    assert np.asarray(head["dense_kernel"]).shape == (H + 3 * F, C) and len(head["bn_scale"]) == H + 3 * F
    assert head["sqrt_epsilon"] == EPS


def test_weights_of_another_family_or_size_fail_clearly():
    from export_helpers import random_weights

    from sertiny.export.res_lstm_sa_stats_graph import fold_res_lstm_sa_stats
    from sertiny.models import model_config

    weights = _weights()
    with pytest.raises(ArtifactError, match="different model or feature set"):
        fold_res_lstm_sa_stats(weights, model_config("res_lstm_sa_stats_h16", n_features=F, n_classes=C, seq_len=T))
    with pytest.raises(ArtifactError, match="expected 26"):  # a plain ResLSTM-SA's head: H rows only
        fold_res_lstm_sa_stats(random_weights("res_lstm_sa", hidden=H) | {"lstm1/kernel": weights["lstm1/kernel"]})
    with pytest.raises(ArtifactError, match="not those of a res_lstm_sa_stats model"):
        fold_res_lstm_sa_stats({k: v for k, v in weights.items() if k != "attention/u"})


@pytest.fixture(scope="module")
def int8_chunked():
    """The int8 K = 3 variant of a small res_lstm_sa_stats model (T = 12: a partial last chunk)."""
    pytest.importorskip("tensorflow", reason="export needs the [train] extra (TensorFlow)")
    from sertiny.export import ExportConfig
    from sertiny.export.graph import fold_weights
    from sertiny.export.variants import build_variants
    from sertiny.models import model_config

    config = model_config("res_lstm_sa_stats_h8", n_features=F, n_classes=C, seq_len=T)
    rng = np.random.default_rng(1)
    clips = [rng.normal(size=(n, F)).astype(np.float32) for n in rng.integers(6, 20, 12)]
    variants = build_variants(fold_weights(_weights(), config), config,
                              ExportConfig(full=False, chunks=(3,), calib_clips=12, chunk_calib_samples=100),
                              clips, np.arange(12) % C)
    return variants["int8_chunk3"]


@pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc is not installed; the C reference cannot be built")
def test_c_reference_keeps_the_statistics_as_the_python_host_does(int8_chunked, tmp_path):
    from sertiny.export.creference import write_host_trace
    from sertiny.export.variants import chunked_runner

    binary = tmp_path / "replay_trace"
    subprocess.run(["gcc", "-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-o", str(binary),
                    str(C_REFERENCE / "replay_trace.c"), str(C_REFERENCE / "sertiny_host.c"), "-lm"], check=True)
    rng = np.random.default_rng(6)
    for i, length in enumerate((8, 17)):  # a padded tail chunk; a cropped clip
        trace = tmp_path / f"clip{i}.trace"
        write_host_trace(trace, chunked_runner(int8_chunked), rng.normal(size=(length, F)).astype(np.float32))
        assert trace.read_text().startswith("sertiny-host-trace 2")
        result = subprocess.run([str(binary), str(trace)], capture_output=True, text=True, check=False)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "mismatches 0" in result.stdout


def test_c_arrays_declare_the_statistics_the_head_reads(int8_chunked, tmp_path):
    from sertiny.export.carray import write_c_array

    write_c_array(tmp_path, "model_int8_chunk3", int8_chunked.model, int8_chunked.meta)
    header = next(tmp_path.glob("*.h")).read_text()
    assert f"_HIDDEN {H}\n" in header and f"_HEAD_INPUTS {H + 3 * F}\n" in header
    assert "_STATISTICS {0, 1, 2}" in header and f"bn_scale[{H + 3 * F}]" in header
