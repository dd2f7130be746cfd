"""The other papers' systems as sertiny families (bilstm_att, dual_lstm, cnn_lstm, vit): shapes,
parameter counts, padding, the generic weight format, training, and what export reads and refuses."""

import numpy as np
import pytest

pytest.importorskip("jax", reason="model tests need the [train] extra (Keras 3 + JAX)")

from sertiny.errors import ArtifactError, ParameterError  # noqa: E402
from sertiny.models import create_model, list_models, model_config  # noqa: E402
from sertiny.models.weights import forward, get_weights, set_weights  # noqa: E402

FAMILIES = ("bilstm_att", "dual_lstm", "cnn_lstm", "vit")
MASKABLE = ("bilstm_att", "dual_lstm")
F, C = 46, 8

# Trainable parameters at h64 (H = 64), counted by hand. A Keras LSTM(n_in -> H) has
# 4H(n_in + H + 1): kernel, recurrent kernel, one bias.
PARAMS_H64 = {
    # 2 BiLSTM layers, 2 directions each: 2*4H(F+H+1) + 2*4H(2H+H+1)  = 56,832 + 98,816
    # additive attention: W (2H, H) + b (H) + v (H)                  =  8,320
    # dense: 2H*C + C                                                =  1,032
    "bilstm_att": 56_832 + 98_816 + 8_320 + 1_032,  # 165,000
    # LSTM(F->H) + LSTM(H->H) + dense: 4H(F+H+1) + 4H(2H+1) + H*C + C = 28,416 + 33,024 + 520
    "dual_lstm": 28_416 + 33_024 + 520,  # 61,960
    # conv1 3*F*H + conv2..4 3*3*H*H (no bias) + 4 BatchNorms' gamma, beta (2H each)
    # + LSTM(H->H) + dense                                 = 8,832 + 36,864 + 512 + 33,024 + 520
    "cnn_lstm": 8_832 + 36_864 + 512 + 33_024 + 520,  # 79,752
    # At T = 24: 3 patches of 10 frames x F. Patch embedding 10F*H + H, position 3H;
    # 4 layers of 2 LayerNorms (2H each) + qkv H*3H + 3H + proj H*H + H
    # + MLP H*2H + 2H + 2H*H + H; final LayerNorm 2H; dense H*C + C
    #                                     = 29,504 + 192 + 4 * 33,472 + 128 + 520
    "vit": 29_504 + 192 + 4 * 33_472 + 128 + 520,  # 164,232
}


def _count(model):
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


def _x(n=3, t=24, seed=0):
    return np.random.default_rng(seed).standard_normal((n, t, F)).astype(np.float32)


def test_registered_under_the_family_h_hidden_scheme():
    for family in FAMILIES:
        assert list_models(f"{family}_*") == [f"{family}_h128", f"{family}_h32", f"{family}_h64"]
        assert model_config(f"{family}_h48").hidden == 48  # any hidden size, as for lstm_sa


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("hidden", (32, 64))
def test_output_is_a_softmax_per_clip(family, hidden):
    probs = np.asarray(create_model(f"{family}_h{hidden}", seq_len=24)(_x(), training=False))
    assert probs.shape == (3, C)
    assert np.all(np.isfinite(probs)) and np.all(probs >= 0)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize("family", FAMILIES)
def test_trainable_parameters_at_h64_match_the_hand_count(family):
    assert _count(create_model(f"{family}_h64", seq_len=24)) == PARAMS_H64[family]


def test_cnn_lstm_shrinks_time_by_16_and_accepts_any_length():
    model = create_model("cnn_lstm_h16", seq_len=110)
    assert [model.get_layer(f"pool{b}").output.shape[1] for b in range(1, 5)] == [55, 28, 14, 7]
    assert np.asarray(create_model("cnn_lstm_h16", seq_len=5)(_x(t=5), training=False)).shape == (3, C)


@pytest.mark.parametrize("family", MASKABLE)
def test_masked_padding_gives_the_unpadded_clips_answer(family):
    # A 12-frame clip padded to 20 and to 30 frames, against the same weights run on the
    # bare 12 frames: masking must make all three agree (both BiLSTM directions included).
    bare = create_model(f"{family}_h16", seq_len=12, padding="masked")
    weights = get_weights(bare)
    clip = _x(n=1, t=12, seed=4)
    expected = np.asarray(bare(clip, training=False))
    for seq_len in (20, 30):
        padded = np.zeros((1, seq_len, F), np.float32)
        padded[:, :12] = clip
        model = create_model(f"{family}_h16", seq_len=seq_len, padding="masked")
        set_weights(model, weights)
        np.testing.assert_allclose(np.asarray(model(padded, training=False)), expected, atol=1e-5)
    # With zero padding the zeros are real frames and change the answer.
    zeros = create_model(f"{family}_h16", seq_len=20)
    set_weights(zeros, weights)
    padded = np.zeros((1, 20, F), np.float32)
    padded[:, :12] = clip
    assert np.abs(np.asarray(zeros(padded, training=False)) - expected).max() > 1e-4


@pytest.mark.parametrize("family", ("cnn_lstm", "vit"))
def test_zero_padding_only_families_refuse_masked_padding_by_name(family):
    with pytest.raises(ParameterError, match=rf"'padding' parameter of ModelConfig must be one of \['zeros'\] for "
                                             rf"the '{family}' family\. Got 'masked' instead"):
        model_config(f"{family}_h32", padding="masked")


def test_vit_cuts_patches_of_10_frames_over_all_bands_and_pads_time():
    from sertiny.models import vit

    model = create_model("vit_h32", seq_len=110, n_features=40)  # the logmel16k preset's frames
    assert model.get_layer("patches").output.shape == (None, 11, 400)
    assert model.get_layer("pos_embed").embedding.shape == (11, 32)
    assert [n for n in (layer.name for layer in model.layers) if n.endswith("_attention")] == [
        f"block{b}_attention" for b in range(1, vit.DEPTH + 1)]
    short = create_model("vit_h32", seq_len=21)  # padded to 30 frames: 3 patches
    assert short.get_layer("pad").output.shape == (None, 30, F)
    assert np.asarray(short(_x(t=21), training=False)).shape == (3, C)
    # A patch is its 10 frames one after the other: frame 13 is the 4th frame of patch 2.
    x = np.zeros((1, 21, F), np.float32)
    x[0, 13, 5] = 1.0
    patches = np.asarray(short.get_layer("patches")(short.get_layer("pad")(x)))
    assert patches[0, 1, 3 * F + 5] == 1.0 and patches.sum() == 1.0
    with pytest.raises(ParameterError, match="'hidden' parameter of ModelConfig must be a multiple of 4"):
        create_model("vit_h30", seq_len=10)


def test_vit_attention_matches_a_per_head_reference():
    from sertiny.models.vit import SelfAttention

    rng = np.random.default_rng(0)
    qkv = rng.normal(size=(2, 5, 3 * 8)).astype(np.float32)  # D = 8, 4 heads of 2
    got = np.asarray(SelfAttention(4)(qkv))
    q, k, v = np.split(qkv.astype(np.float64), 3, axis=-1)
    for h in range(4):
        cols = slice(2 * h, 2 * h + 2)
        scores = q[..., cols] @ np.swapaxes(k[..., cols], 1, 2) / np.sqrt(2)
        weights = np.exp(scores - scores.max(-1, keepdims=True))
        weights /= weights.sum(-1, keepdims=True)
        np.testing.assert_allclose(got[..., cols], weights @ v[..., cols], atol=1e-5)


@pytest.mark.parametrize("family", FAMILIES)
def test_weights_round_trip_reproduces_predictions(family):
    source = create_model(f"{family}_h16", seq_len=24, seed=1)
    weights = get_weights(source)
    assert all(v.dtype == np.float32 for v in weights.values())
    target = create_model(f"{family}_h16", seq_len=24, seed=2)
    x = _x()
    assert np.abs(np.asarray(target(x, training=False)) - np.asarray(source(x, training=False))).max() > 1e-4
    set_weights(target, weights)
    np.testing.assert_array_equal(np.asarray(target(x, training=False)), np.asarray(source(x, training=False)))
    got = get_weights(target)
    assert sorted(got) == sorted(weights)
    for key in weights:
        np.testing.assert_array_equal(got[key], weights[key])


def test_generic_weight_names_and_their_errors():
    weights = get_weights(create_model("bilstm_att_h8", seq_len=6))
    lstm_keys = {f"bilstm{i}/{d}/{v}" for i in (1, 2) for d in ("forward", "backward")
                 for v in ("kernel", "recurrent_kernel", "bias")}
    assert set(weights) == lstm_keys | {"attention/kernel", "attention/bias", "attention/v", "dense/kernel", "dense/bias"}
    assert weights["bilstm2/forward/kernel"].shape == (16, 32)  # 2H in, 4H gates
    assert not np.array_equal(weights["bilstm1/forward/kernel"], weights["bilstm1/backward/kernel"])
    assert "bn1/moving_variance" in get_weights(create_model("cnn_lstm_h8", seq_len=6))  # non-trainable kept
    with pytest.raises(ArtifactError, match=r"missing \['attention/v'\]"):
        set_weights(create_model("bilstm_att_h8", seq_len=6), {k: v for k, v in weights.items() if k != "attention/v"})
    with pytest.raises(ArtifactError, match="another model family or size"):
        set_weights(create_model("dual_lstm_h8", seq_len=6), weights)
    with pytest.raises(ArtifactError, match="attention/v has shape"):
        set_weights(create_model("bilstm_att_h8", seq_len=6), dict(weights, **{"attention/v": np.zeros((9, 1))}))
    with pytest.raises(ParameterError, match="NumPy reference of the LSTM-SA"):
        forward(weights, _x(t=6))


@pytest.mark.parametrize("family", FAMILIES)
def test_two_epochs_of_train_fold_reduce_the_training_loss(family, small_table):
    from sertiny.features.normalize import fit_norm_stats
    from sertiny.training import TrainConfig
    from sertiny.training.inputs import stack_clips
    from sertiny.training.loop import train_fold

    idx = np.arange(0, len(small_table.features), 4)[:80]  # 80 clips of six actors
    clips = [small_table.features[i] for i in idx]
    x, _ = stack_clips(clips, 40, fit_norm_stats(clips))
    y = small_table.labels[idx].astype(np.int32)
    config = TrainConfig(model=f"{family}_h16", epochs=2, batch_size=16, lr=3e-3)
    mcfg = model_config(config.model, seq_len=40)
    result, trainer = train_fold(mcfg, config, x, y, x[:16], y[:16], seed=0)
    losses = [row["train_loss"] for row in result.history]
    assert losses[1] < losses[0], losses
    # What train_fold keeps is what set_weights loads: the trainer's predictions come back.
    model = create_model(mcfg)
    set_weights(model, result.weights)
    np.testing.assert_allclose(np.asarray(model(x[:16], training=False)), trainer.predict(x[:16]), atol=1e-5)


def test_export_reads_a_baseline_run_and_refuses_only_its_chunked_profile(small_table, tmp_path):
    from click.testing import CliRunner

    from sertiny.cli import main
    from sertiny.export.run import load_run
    from sertiny.training import TrainConfig
    from sertiny.training.protocol import prepare_run

    run = tmp_path / "run"
    # The run's configs are all export reads before refusing; no training needed.
    prepare_run(small_table, TrainConfig(model="dual_lstm_h16", seq_len=40, folds="kfold", n_folds=3), run)
    assert load_run(run).model_config.name == "dual_lstm_h16"
    result = CliRunner().invoke(main, ["export", str(run), "--out", str(tmp_path / "bundle"), "--chunk", "1",
                                       "--quiet"])
    assert result.exit_code == 2
    assert "chunked profile is implemented for lstm_sa/res_lstm_sa/res_lstm_sa_stats only" in " ".join(result.output.split())
    assert "Traceback" not in result.output and not (tmp_path / "bundle").exists()
