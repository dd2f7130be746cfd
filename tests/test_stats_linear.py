"""stats_linear, the linear floor: its pooling maths (Keras against NumPy), its export (float
TFLite against Keras, int8 under LiteRT and TFLite Micro), its weight checks and its refusals.

Sizes: F = 46 features, C = 8 classes, T = 21 frames (clips of 9 and 30 frames are
zero-padded and centre-cropped to it). Tests/test_families.py covers training and every
profile's conversion the same way as for every other family.
"""

import numpy as np
import pytest

pytest.importorskip("jax", reason="the model needs the [train] extra (Keras 3 + JAX)")
tf = pytest.importorskip("tensorflow", reason="export needs the [train] extra (TensorFlow)")

from export_helpers import C, F, clips, float_tensors_used  # noqa: E402

from sertiny.errors import ArtifactError, ParameterError  # noqa: E402
from sertiny.features.frames import fit_to_length  # noqa: E402
from sertiny.models import create_model, model_config  # noqa: E402
from sertiny.models.stats_linear_spec import SQRT_EPSILON, STATISTICS  # noqa: E402

T = 21
NAME = "stats_linear_h1"


def _batch(seed=4, lengths=(9, 21, 30, 2)):
    """(n, T, F) clips as the model gets them: normalised-scale frames, zero-padded or cropped."""
    return np.stack([fit_to_length(c, T) for c in clips(len(lengths), seed=seed, lengths=lengths)])


def _numpy_statistics(x):
    """The statistics by their definitions, in float64: (n, T, F) -> (n, 3F)."""
    x = x.astype(np.float64)
    soft_sqrt = lambda v: v / np.sqrt(v + SQRT_EPSILON)
    stats = {"mean": x.mean(1), "std": soft_sqrt(x.var(1)),
             "delta_rms": soft_sqrt((np.diff(x, axis=1) ** 2).mean(1))}
    return np.concatenate([stats[s] for s in STATISTICS], axis=-1)


def _weights(seed=3):
    """Random weights with the model's shapes and a BatchNorm away from identity (so folding it is tested)."""
    from sertiny.export.stats_linear_graph import expected_shapes

    rng = np.random.default_rng(seed)
    w = {}
    for key, shape in expected_shapes(F, C).items():
        positive = key.endswith(("gamma", "moving_variance"))
        w[key] = rng.uniform(0.5, 1.5, shape) if positive else rng.normal(0, 0.3, shape)
    return {k: v.astype(np.float32) for k, v in w.items()}


def _keras_model(weights):
    from sertiny.models.weights import set_weights

    model = create_model(NAME, seq_len=T)
    set_weights(model, weights)
    return model


# ----------------------------------------------------------------------------- model


def test_pooling_computes_each_statistic_over_all_t_frames():
    from sertiny.models.stats_linear import StatisticsPooling

    x = _batch()
    got = np.asarray(StatisticsPooling(name="pool")(x))
    np.testing.assert_allclose(got, _numpy_statistics(x), rtol=1e-5, atol=1e-6)
    # Zero padding counts: a 9-frame clip's mean over T = 21 frames is 9/21 of its own.
    assert np.allclose(got[0, :F], x[0, :9].mean(0) * 9 / T, atol=1e-6)
    mean_only = np.asarray(StatisticsPooling(("mean",))(x))
    np.testing.assert_allclose(mean_only, x.mean(1), atol=1e-6)


def test_soft_square_root_is_the_standard_deviation_where_features_vary():
    from sertiny.models.stats_linear import StatisticsPooling

    x = _batch(lengths=(21, 30, 40))  # no padding: per-feature variances around 1
    std = np.asarray(StatisticsPooling(("std",))(x))
    exact = x.std(1)
    assert exact.min() > 0.05 ** 0.5
    np.testing.assert_allclose(std, exact, rtol=1e-3)


def test_model_is_pooling_batchnorm_and_one_dense_layer():
    model = create_model(NAME, seq_len=T)
    assert [layer.name for layer in model.layers] == ["features", "pool", "bn", "dropout", "dense"]
    width = len(STATISTICS) * F
    assert tuple(model.get_layer("dense").kernel.shape) == (width, C)
    assert model.count_params() == 4 * width + width * C + C  # BN's 4 vectors, the dense layer


def test_n_is_unused_every_size_builds_the_same_model():
    from sertiny.models.weights import get_weights

    one, eight = (get_weights(create_model(f"stats_linear_h{n}", seq_len=T)) for n in (1, 8))
    assert one.keys() == eight.keys() and all(np.array_equal(one[k], eight[k]) for k in one)


def test_too_short_a_clip_length_is_refused():
    with pytest.raises(ParameterError, match="'seq_len' parameter of ModelConfig must be >= 2"):
        create_model(NAME, seq_len=1)
    with pytest.raises(ParameterError, match="'padding' parameter of ModelConfig"):
        model_config(NAME, padding="masked")


# ----------------------------------------------------------------------------- export


def _float_function(weights):
    from sertiny.export.graph import fold_weights, full_unroll_function

    return full_unroll_function(fold_weights(weights, model_config(NAME, seq_len=T)), T)


def test_float_tflite_matches_the_keras_model_with_batchnorm_folded():
    from sertiny.export.convert import convert
    from sertiny.export.flatbuffer import compact, describe
    from sertiny.export.variants import predict_full
    from sertiny.runtime.tflite import load_interpreter

    weights = _weights()
    model = compact(convert(_float_function(weights)))
    test = clips(4, seed=4, lengths=(9, 21, 30, 2))
    expected = np.asarray(_keras_model(weights)(_batch(), training=False))
    np.testing.assert_allclose(predict_full(load_interpreter(model), test, T), expected, atol=1e-5)
    ops = describe(model)["op_types"]
    # One TRANSPOSE, one MEAN, a BATCH_MATMUL and an RSQRT (not the float-only SQRT) per
    # root mean square, the statistics CONCATENATED into one FULLY_CONNECTED; no BatchNorm op.
    assert ops["TRANSPOSE"] == ops["MEAN"] == ops["CONCATENATION"] == ops["FULLY_CONNECTED"] == 1
    assert ops["BATCH_MATMUL"] == ops["RSQRT"] == 2 and "SQRT" not in ops
    assert sum(ops.values()) < 30


def test_int8_model_is_full_integer_close_to_float_and_runs_under_tflm():
    from sertiny.export import tflm
    from sertiny.export.convert import convert, io_details
    from sertiny.export.flatbuffer import compact
    from sertiny.export.variants import predict_full
    from sertiny.runtime.tflite import load_interpreter, quantize

    function = _float_function(_weights())
    samples = [[fit_to_length(c, T)[None]] for c in clips(24, seed=2, lengths=(9, 15, 21, 30))]
    raw = convert(function, "int8", representative=samples, clip_groups=[[s] for s in samples], range_percentile=90.0)
    model, io = compact(raw), io_details(raw, function)
    assert io["inputs"][0]["dtype"] == io["outputs"][0]["dtype"] == "int8"
    assert not float_tensors_used(model)
    test = clips(8, seed=5, lengths=(9, 15, 21, 30))
    expected = np.concatenate([function(tf.constant(fit_to_length(c, T)[None]))["probabilities"].numpy() for c in test])
    lite = predict_full(load_interpreter(model), test, T)
    assert np.abs(lite - expected).max() < 0.1
    arena = tflm.arena_size(model, io)
    assert 0 < arena < 64 << 10
    detail = load_interpreter(model).get_input_details()[0]
    worst, _ = tflm.op_conformance(model, [quantize(fit_to_length(test[0], T)[None], detail)])
    assert worst <= 1
    micro = predict_full(tflm.MicroAsLite(model, arena), test, T)
    assert np.abs(micro - lite).max() < 0.02


def test_weights_of_another_family_or_feature_set_fail_clearly():
    from export_helpers import baseline_weights

    from sertiny.export.stats_linear_graph import fold_stats_linear

    weights = _weights()
    with pytest.raises(ArtifactError, match="different model or feature set"):
        fold_stats_linear(weights, model_config(NAME, n_features=40, seq_len=T))
    with pytest.raises(ArtifactError, match="not those of a stats_linear model"):
        fold_stats_linear(baseline_weights("dual_lstm", 8), model_config(NAME, seq_len=T))
    with pytest.raises(ArtifactError, match=r"missing \['bn/beta'\]"):
        fold_stats_linear({k: v for k, v in weights.items() if k != "bn/beta"})
    with pytest.raises(ArtifactError, match="bn/gamma has shape"):
        fold_stats_linear(dict(weights, **{"bn/gamma": np.ones(3, np.float32)}))


def test_the_chunked_profile_is_refused():
    from sertiny.export.graph import chunk_function, fold_weights

    with pytest.raises(ParameterError, match="chunked profile is implemented for lstm_sa/res_lstm_sa/res_lstm_sa_stats only"):
        chunk_function(fold_weights(_weights(), model_config(NAME, seq_len=T)), 1)
