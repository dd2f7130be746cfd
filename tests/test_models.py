"""Every registered model: shapes, parameter counts, initialisation, gradients, and
agreement with the NumPy reference recurrence that export and firmware implement."""

import numpy as np
import pytest

pytest.importorskip("jax", reason="model tests need the [train] extra (Keras 3 + JAX)")

from sertiny.errors import ParameterError  # noqa: E402
from sertiny.models import create_model, list_models, model_config  # noqa: E402
from sertiny.models.weights import forward, get_weights, model_with_weights, set_weights  # noqa: E402

# Trainable parameters as the paper counts them (PyTorch: two bias vectors per LSTM).
PAPER_PARAMS = {
    "lstm_sa_h32": 10_600,
    "lstm_sa_h64": 28_300,
    "lstm_sa_h128": 91_600,
    "res_lstm_sa_h32": 27_988,
    "res_lstm_sa_h64": 46_772,
    "res_lstm_sa_h128": 108_916,
}
# The paper's 28.3 k for LSTM-SA-h64 does not follow from its own architecture: with
# F = 46, H = 64, C = 8 it has 4H(F + H + 2) + H + 2H + (H + 1)C = 29,384 in PyTorch
# (the other rows agree). We test against the architecture and record the discrepancy.
PAPER_TYPO = {"lstm_sa_h64": 29_384}


def _count(model):
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


def _torch_count(name, keras_count):
    family, hidden = name.rsplit("_h", 1)
    lstm_units = [int(hidden)] + ([46] if family == "res_lstm_sa" else [])
    return keras_count + sum(4 * u for u in lstm_units)  # PyTorch's second bias vector


# The two families of the ResLSTM-SA paper (the NumPy reference and export implement
# these); the other papers' baselines are tested in test_baselines.py.
PAPER_MODELS = sorted(PAPER_PARAMS)


def test_registry_lists_the_paper_models():
    assert list_models("*lstm_sa_h*") == PAPER_MODELS
    assert set(PAPER_MODELS) < set(list_models())
    assert list_models("res_lstm_sa_h*") == ["res_lstm_sa_h128", "res_lstm_sa_h32", "res_lstm_sa_h64"]


def test_unknown_model_name_says_what_exists():
    with pytest.raises(ParameterError, match="Known models: .*res_lstm_sa_h64"):
        model_config("transformer_h64")


@pytest.mark.parametrize("name", PAPER_MODELS)
def test_parameter_count_matches_paper(name):
    torch_count = _torch_count(name, _count(create_model(name, seq_len=20)))
    expected = PAPER_TYPO.get(name, PAPER_PARAMS[name])
    # Where the paper gives only 0.1 k (x00), allow one rounding step.
    assert abs(torch_count - expected) <= (0 if expected % 100 else 100)


@pytest.mark.parametrize("name", PAPER_MODELS)
def test_forward_shapes_probabilities_and_reference(name):
    model = create_model(name, seq_len=15)
    x = np.random.default_rng(0).standard_normal((3, 15, 46)).astype(np.float32)
    probs = np.asarray(model(x, training=False))
    assert probs.shape == (3, 8)
    assert np.all(np.isfinite(probs))
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(probs, forward(get_weights(model), x), atol=1e-5)


@pytest.mark.parametrize("name", list_models())
def test_gradients_are_finite_and_nonzero(name):
    import jax

    # 34 frames: cnn_lstm pools time by 16 and its LSTM needs >= 2 steps (here 3) for its
    # recurrent kernel to get a gradient.
    model = create_model(name, seq_len=34)
    x = np.random.default_rng(1).standard_normal((4, 34, 46)).astype(np.float32)
    y = np.array([0, 1, 2, 3])
    tv = [v.value for v in model.trainable_variables]
    ntv = [v.value for v in model.non_trainable_variables]

    def loss(tv):
        probs, _ = model.stateless_call(tv, ntv, x, training=True)
        return -jax.numpy.mean(jax.numpy.log(probs[jax.numpy.arange(4), y]))

    grads = jax.grad(loss)(tv)
    for g in grads:
        assert np.all(np.isfinite(g))
    assert all(float(np.abs(g).max()) > 0 for g in grads)


def test_initialisation_follows_the_paper():
    model = create_model("res_lstm_sa_h64", seq_len=10)
    w = get_weights(model)
    for layer, units in (("lstm1", 46), ("lstm2", 64)):
        bias = w[f"{layer}/bias"]
        np.testing.assert_array_equal(bias[units : 2 * units], 2.0)  # forget gate: 1 + 1 (two PyTorch biases)
        np.testing.assert_array_equal(np.delete(bias, np.s_[units : 2 * units]), 0.0)
        recurrent = w[f"{layer}/recurrent_kernel"]  # (H, 4H): orthonormal rows
        np.testing.assert_allclose(recurrent @ recurrent.T, np.eye(units), atol=1e-4)
        kernel = w[f"{layer}/kernel"]
        glorot_std = np.sqrt(2.0 / sum(kernel.shape))
        assert 0.8 * glorot_std < kernel.std() < 1.2 * glorot_std
    np.testing.assert_array_equal(w["dense/bias"], 0.0)
    limit = np.sqrt(6.0 / sum(w["dense/kernel"].shape))  # Glorot uniform
    assert np.abs(w["dense/kernel"]).max() <= limit


def test_same_seed_same_weights_other_seed_other_weights():
    a = get_weights(create_model("lstm_sa_h32", seq_len=5, seed=3))
    b = get_weights(create_model("lstm_sa_h32", seq_len=5, seed=3))
    c = get_weights(create_model("lstm_sa_h32", seq_len=5, seed=4))
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
    assert not np.array_equal(a["lstm2/kernel"], c["lstm2/kernel"])


@pytest.mark.parametrize("name", ["lstm_sa_h8", "bilstm_att_h8"])
def test_building_leaves_global_random_state_alone(name):
    import random

    random.seed(12345)
    np.random.seed(999)
    python_state, numpy_state = random.getstate(), np.random.get_state()[1].copy()
    a = get_weights(create_model(name, seq_len=5, seed=3))
    assert random.getstate() == python_state
    np.testing.assert_array_equal(np.random.get_state()[1], numpy_state)
    random.seed(1)  # the weights do not depend on it either
    b = get_weights(create_model(name, seq_len=5, seed=3))
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])


def test_attention_starts_where_it_did_when_builds_reseeded_keras():
    # The values models had when every build called keras.utils.set_random_seed(seed):
    # runs and recorded results stay reproducible (see lstm_sa.legacy_seed).
    kw = {"n_features": 46, "seq_len": 32, "n_classes": 8, "seed": 3}
    lstm_sa = get_weights(create_model("lstm_sa_h8", **kw))
    np.testing.assert_allclose(lstm_sa["attention/u"].ravel()[:3], [0.41598171, -0.54452115, -0.10467337], rtol=1e-6)
    bilstm = get_weights(create_model("bilstm_att_h8", **kw))
    np.testing.assert_allclose(bilstm["attention/v"].ravel()[:2], [0.22266135, -0.05433007], rtol=1e-6)
    np.testing.assert_allclose(bilstm["attention/kernel"].ravel()[:2], [-0.36446810, -0.49392676], rtol=1e-6)


def test_masked_model_ignores_padding_and_matches_packed_reference():
    zeros = create_model("res_lstm_sa_h32", seq_len=20)
    masked = create_model("res_lstm_sa_h32", seq_len=20, padding="masked")
    set_weights(masked, get_weights(zeros))
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 20, 46)).astype(np.float32)
    x[0, 12:] = 0.0  # a 12-frame clip padded to 20
    lengths = np.array([12, 20])
    probs = np.asarray(masked(x, training=False))
    np.testing.assert_allclose(probs, forward(get_weights(zeros), x, lengths=lengths), atol=1e-5)
    # The same clip padded to a different length gives the same answer.
    longer = create_model("res_lstm_sa_h32", seq_len=30, padding="masked")
    set_weights(longer, get_weights(zeros))
    x30 = np.zeros((1, 30, 46), np.float32)
    x30[0, :12] = x[0, :12]
    np.testing.assert_allclose(np.asarray(longer(x30, training=False))[0], probs[0], atol=1e-5)


@pytest.mark.parametrize("name", ["lstm_sa_h8", "bilstm_att_h8"])  # the named and the generic weight format
def test_model_with_weights_rebuilds_a_model_from_its_config_and_weights(name):
    source = create_model(name, seq_len=10, seed=1)
    config = model_config(name, seq_len=10, seed=2)  # another seed: the weights, not the init, must decide
    rebuilt = model_with_weights(config, get_weights(source))
    x = np.random.default_rng(0).standard_normal((2, 10, 46)).astype(np.float32)
    np.testing.assert_array_equal(np.asarray(rebuilt(x, training=False)), np.asarray(source(x, training=False)))
