"""Export of the baseline families (bilstm_att, dual_lstm, cnn_lstm, vit): the unrolled float
graphs against the Keras models built from the same weights, full-integer int8 models under
LiteRT and TFLite Micro, a run exported end to end and inferred from, and the chunked refusal.

Models are tiny (hidden 8/16, T = 21: odd, so cnn_lstm's 'same' pooling pads, and not a
multiple of vit's 10-frame patches, so its time padding is tested) with random weights; the
weights come from tests/export_helpers.py, Keras only builds the reference.
"""

import json

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
pytest.importorskip("tflite_micro")

from export_helpers import C, baseline_weights, clips, float_tensors_used, write_run

from sertiny.errors import ArtifactError, ParameterError
from sertiny.export import ExportConfig
from sertiny.export.baseline_graphs import BASELINE_FAMILIES, BaselineWeights
from sertiny.export.convert import convert, io_details
from sertiny.export.flatbuffer import compact, describe, integer_islands
from sertiny.export.graph import chunk_function, fold_weights, full_unroll_function
from sertiny.features.frames import fit_to_length
from sertiny.runtime.tflite import load_interpreter, quantize

T = 21
HIDDEN = {"bilstm_att": 8, "dual_lstm": 16, "cnn_lstm": 16, "vit": 16}


def _fit(clip):
    return fit_to_length(clip, T)


def _float_model(family, schedule="wavefront"):
    weights = baseline_weights(family, HIDDEN[family], seed=3, seq_len=T)
    function = full_unroll_function(fold_weights(weights), T, schedule=schedule)
    return weights, function, compact(convert(function))


@pytest.mark.parametrize(("family", "schedule"), [(f, "wavefront") for f in BASELINE_FAMILIES]
                         + [("bilstm_att", "sequential"), ("dual_lstm", "sequential")])
def test_float_tflite_matches_the_keras_model(family, schedule):
    pytest.importorskip("jax", reason="the Keras reference needs the [train] extra (Keras 3 + JAX)")
    from sertiny.models import create_model
    from sertiny.models.weights import set_weights

    weights, _, model = _float_model(family, schedule)
    keras_model = create_model(f"{family}_h{HIDDEN[family]}", seq_len=T)
    set_weights(keras_model, weights)
    x = np.stack([_fit(c) for c in clips(3, seed=4, lengths=(9, 21, 30))])
    expected = np.asarray(keras_model(x, training=False))
    assert np.abs(_invoke_each(load_interpreter(model), x) - expected).max() <= 1e-5


def _invoke_each(interpreter, x):
    """(n, T, F) -> (n, C): one invoke per clip of a full-unroll model."""
    got = []
    for xi in x:
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"], xi[None])
        interpreter.invoke()
        got.append(interpreter.get_tensor(interpreter.get_output_details()[0]["index"])[0])
    return np.stack(got)


def test_vit_model_and_export_read_the_same_sizes():
    pytest.importorskip("jax", reason="reads sertiny.models.vit, which needs Keras 3 + JAX")
    from sertiny.export import vit_graph
    from sertiny.models import vit

    for name in ("PATCH_FRAMES", "DEPTH", "HEADS", "MLP_RATIO", "LN_EPSILON"):
        assert getattr(vit_graph, name) == getattr(vit, name), name


def test_vit_graph_is_built_from_ops_tflite_micro_runs_in_int8():
    from sertiny.export.vit_graph import DEPTH

    ops = describe(_float_model("vit")[2])["op_types"]
    # No LAYER_NORM, GELU or other op TFLite Micro lacks; LayerNorm is MUL, MEAN, ADD, RSQRT,
    # MUL on the centred stream (no SUB), 2 per layer + the final one.
    assert set(ops) == {"PAD", "RESHAPE", "FULLY_CONNECTED", "ADD", "MUL", "MEAN", "RSQRT", "TRANSPOSE", "SPLIT",
                        "BATCH_MATMUL", "SOFTMAX"}
    norms = 2 * DEPTH + 1
    assert ops["RSQRT"] == norms and ops["MUL"] == 2 * norms and ops["MEAN"] == norms + 1  # + the token mean
    # One BATCH_MATMUL per attention product over all heads, one SPLIT into q, k, v.
    assert ops["BATCH_MATMUL"] == 2 * DEPTH and ops["SPLIT"] == DEPTH and ops["TRANSPOSE"] == 2 * DEPTH
    # 6 FULLY_CONNECTED per layer (ReLU fused into the first MLP one) + patch embedding + classifier.
    assert ops["FULLY_CONNECTED"] == 4 * DEPTH + 2 and ops["SOFTMAX"] == DEPTH + 1 and ops["PAD"] == 1
    assert sum(ops.values()) == 109


def test_graphs_use_plain_ops_and_unroll_every_step():
    ops = {family: describe(_float_model(family)[2])["op_types"] for family in BASELINE_FAMILIES}
    sequential = describe(_float_model("bilstm_att", "sequential")[2])
    # 2 layers x 2 directions x T steps, or 2 layers x T ticks with both directions paired.
    assert sequential["op_types"]["LOGISTIC"] == 4 * T and sequential["op_types"]["CONCATENATION"] == 2
    assert ops["bilstm_att"]["LOGISTIC"] == 2 * T and ops["bilstm_att"]["REVERSE_V2"] == 4
    assert sum(ops["bilstm_att"].values()) < 0.55 * sequential["ops"]
    assert ops["dual_lstm"]["LOGISTIC"] == T + 1  # T + 1 ticks of the fused two-layer cell
    assert sum(ops["dual_lstm"].values()) < 0.55 * describe(_float_model("dual_lstm", "sequential")[2])["ops"]
    # 21 -> 11 -> 6 -> 3 -> 2 LSTM steps after four 'same' poolings.
    assert ops["cnn_lstm"]["LOGISTIC"] == 2 and ops["cnn_lstm"]["CONV_2D"] == ops["cnn_lstm"]["MAX_POOL_2D"] == 4
    # BN folded into the convolutions, their bias fused into CONV_2D: the only ADDs are the
    # second LSTM step's (recurrent term, cell state).
    assert ops["cnn_lstm"]["ADD"] == 2


def test_weights_of_another_family_or_size_fail_clearly():
    from sertiny.models.registry import model_config

    weights = baseline_weights("dual_lstm", 8)
    assert isinstance(fold_weights(weights), BaselineWeights)
    with pytest.raises(ArtifactError, match="different model or feature set"):
        fold_weights(weights, model_config("dual_lstm_h16", seq_len=T))
    with pytest.raises(ArtifactError, match="different model or feature set"):
        fold_weights(weights, model_config("bilstm_att_h8", seq_len=T))
    with pytest.raises(ArtifactError, match="lstm_b/bias has shape"):
        fold_weights(dict(weights, **{"lstm_b/bias": np.zeros(3, np.float32)}))
    vit = baseline_weights("vit", 8, seq_len=T)  # T = 21: 3 patches
    with pytest.raises(ArtifactError, match="different model or feature set"):
        fold_weights(vit, model_config("dual_lstm_h8", seq_len=T))
    with pytest.raises(ArtifactError, match="different model or feature set"):
        fold_weights(weights, model_config("vit_h8", seq_len=T))
    with pytest.raises(ArtifactError, match="3 position embeddings but the run's T = 31 frames make 4 patches"):
        fold_weights(vit, model_config("vit_h8", seq_len=31))
    with pytest.raises(ArtifactError, match=r"missing \['block4_mlp2/bias'\]"):
        fold_weights({k: v for k, v in vit.items() if k != "block4_mlp2/bias"})


@pytest.fixture(scope="module")
def int8_models():
    """Each family's int8 model, calibrated on 16 clips with the exporter's percentile ranges."""
    models = {}
    for family in BASELINE_FAMILIES:
        function = full_unroll_function(fold_weights(baseline_weights(family, HIDDEN[family], seed=3, seq_len=T)), T)
        samples = [[_fit(c)[None]] for c in clips(16, seed=2)]
        raw = integer_islands(convert(function, "int8", representative=samples, clip_groups=[[s] for s in samples],
                                      range_percentile=90.0))
        models[family] = (compact(raw), io_details(raw, function), function)
    return models


@pytest.mark.parametrize("family", BASELINE_FAMILIES)
def test_int8_model_is_full_integer_close_to_float_and_runs_under_tflm(family, int8_models):
    from sertiny.export import tflm
    from sertiny.export.variants import predict_full

    model, io, function = int8_models[family]
    assert io["inputs"][0]["dtype"] == io["outputs"][0]["dtype"] == "int8"
    assert not float_tensors_used(model)  # cnn_lstm's ELU included
    test = clips(6, seed=5)
    expected = np.concatenate([function(tf.constant(_fit(c)[None]))["probabilities"].numpy() for c in test])
    lite = predict_full(load_interpreter(model), test, T)
    assert np.abs(lite - expected).max() < 0.15
    arena = tflm.arena_size(model, io)
    assert 0 < arena < 1 << 20
    detail = load_interpreter(model).get_input_details()[0]
    worst, _ = tflm.op_conformance(model, [quantize(_fit(test[0])[None], detail)])
    assert worst <= 1
    micro = predict_full(tflm.MicroAsLite(model, arena), test, T)
    assert np.abs(micro - lite).max() < 0.05


@pytest.mark.parametrize("family", ["dual_lstm", "vit"])
def test_chunked_profile_is_refused_with_the_families_that_have_it(family):
    fw = fold_weights(baseline_weights(family, 8))
    with pytest.raises(ParameterError, match="chunked profile is implemented for lstm_sa/res_lstm_sa/res_lstm_sa_stats only"):
        chunk_function(fw, 1)


# ---------------------------------------------------------------------------- run -> bundle -> infer


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    from sertiny.export import export_run

    root = tmp_path_factory.mktemp("baseline_export")
    run = write_run(root, family="cnn_lstm", seq_len=T)  # its ELUs need integer_islands
    out = root / "bundle"
    return out, export_run(run, out, ExportConfig(calib_clips=8))


def test_baseline_run_exports_a_full_profile_bundle(bundle):
    out, _ = bundle
    on_disk = json.loads((out / "sertiny.json").read_text())
    assert on_disk["model"]["family"] == "cnn_lstm" and set(on_disk["variants"]) == {"f32", "int8"}
    int8 = on_disk["variants"]["int8"]
    assert int8["profile"] == "full" and int8["schedule"] == "sequential"
    assert int8["input"]["dtype"] == int8["output"]["dtype"] == "int8"
    assert "DEQUANTIZE" not in int8["op_types"] and not float_tensors_used((out / int8["file"]).read_bytes())
    assert int8["arena_bytes"] > 0 and int8["tflm"]["max_op_lsb_vs_litert"] <= 1
    assert len(on_disk["metrics"]["per_fold"]) == 2 and 0 <= on_disk["metrics"]["int8_agreement"] <= 1
    assert (out / "model_int8.cc").is_file() and "cnn_lstm_h8" in (out / "MODEL_CARD.md").read_text()


def test_baseline_bundle_infers_a_clip(bundle, write_audio):
    from click.testing import CliRunner

    from sertiny.cli import main
    from sertiny.runtime.bundle import Bundle
    from sertiny.runtime.runner import load_runner

    out, _ = bundle
    clip = _fit(clips(1, seed=8)[0])
    probs = load_runner(Bundle.load(out), "int8").predict(clip)
    assert probs.shape == (C,) and abs(probs.sum() - 1) < 0.05
    audio = write_audio("clip.wav", sr=48_000)  # the paper front end's rate
    result = CliRunner().invoke(main, ["infer", str(out), str(audio), "--json"])
    assert result.exit_code == 0, result.output
    answer = json.loads(result.output.strip().splitlines()[-1])
    assert answer["label"] in json.loads((out / "sertiny.json").read_text())["labels"], answer


@pytest.mark.parametrize(("family", "options", "kwargs", "match"), [
    ("dual_lstm", ["--chunk", "1"], {}, "chunked profile is implemented for lstm_sa/res_lstm_sa/res_lstm_sa_stats only"),
    ("vit", ["--chunk", "1"], {}, "chunked profile is implemented for lstm_sa/res_lstm_sa/res_lstm_sa_stats only"),
    ("dual_lstm", [], {"padding": "masked"}, "zero-padding models only"),
])
def test_cli_refuses_what_a_baseline_run_cannot_export(tmp_path, family, options, kwargs, match):
    from click.testing import CliRunner

    from sertiny.cli import main

    run = write_run(tmp_path, family=family, seq_len=T, **kwargs)
    out = tmp_path / "bundle"
    result = CliRunner().invoke(main, ["export", str(run), "--out", str(out), "--quiet", *options])
    assert result.exit_code == 2 and match in " ".join(result.output.split()), result.output
    assert "Traceback" not in result.output and not out.exists()


# ---------------------------------------------------------------------------- multi-task runs

AUX_HEADS = (("intensity", 2), ("sex", 2))


def test_multitask_weights_fold_to_the_emotion_head_only():
    from sertiny.models.registry import model_config

    weights = baseline_weights("bilstm_att", 8, aux_heads=AUX_HEADS)
    multitask = model_config("bilstm_att_h8", seq_len=T, aux_heads=AUX_HEADS)
    folded = fold_weights(weights, multitask)
    plain = fold_weights({k: v for k, v in weights.items() if not k.startswith("dense_")})
    np.testing.assert_array_equal(folded.dense_kernel, plain.dense_kernel)
    assert folded.n_classes == C
    assert fold_weights(weights).n_classes == C  # no config: every dense_<name> head is auxiliary
    # A single-task run whose weights carry heads it never declared is inconsistent.
    with pytest.raises(ArtifactError, match=r"unexpected \['dense_intensity/bias'"):
        fold_weights(weights, model_config("bilstm_att_h8", seq_len=T))


def test_multitask_run_exports_the_emotion_head_matching_keras(tmp_path):
    pytest.importorskip("jax", reason="the Keras reference needs the [train] extra (Keras 3 + JAX)")
    from sertiny.export import export_run
    from sertiny.models import create_model
    from sertiny.models.weights import load_weights, set_weights

    # Clip names are not RAVDESS names: export needs no auxiliary labels.
    run = write_run(tmp_path, family="bilstm_att", seq_len=T, aux_heads=AUX_HEADS)
    out = tmp_path / "bundle"
    manifest = export_run(run, out, ExportConfig(int8=False, parity=False, tflm=False, c_arrays=False))
    assert set(manifest["variants"]) == {"f32"}
    assert "aux_heads" not in manifest["model"] and manifest["model"]["n_classes"] == C
    assert "auxiliary heads intensity, sex" in (out / "MODEL_CARD.md").read_text()
    keras_model = create_model("bilstm_att_h8", seq_len=T, aux_heads=AUX_HEADS)
    set_weights(keras_model, load_weights(run / "deploy" / "weights.npz"))  # every head, aux included
    x = np.stack([_fit(c) for c in clips(3, seed=4, lengths=(9, 21, 30))])
    expected = np.asarray(keras_model(x, training=False)["emotion"])
    interpreter = load_interpreter((out / "model_f32.tflite").read_bytes())
    assert len(interpreter.get_output_details()) == 1
    assert np.abs(_invoke_each(interpreter, x) - expected).max() <= 1e-5


@pytest.fixture(scope="module")
def vit_bundle(tmp_path_factory):
    from sertiny.export import export_run

    root = tmp_path_factory.mktemp("vit_export")
    run = write_run(root, family="vit", hidden=16, seq_len=T)
    out = root / "bundle"
    return out, export_run(run, out, ExportConfig(calib_clips=8))


def test_vit_run_exports_a_full_profile_int8_bundle(vit_bundle):
    out, manifest = vit_bundle
    assert manifest["model"]["family"] == "vit" and set(manifest["variants"]) == {"f32", "int8"}
    int8 = manifest["variants"]["int8"]
    assert int8["profile"] == "full" and int8["input"]["dtype"] == int8["output"]["dtype"] == "int8"
    assert "DEQUANTIZE" not in int8["op_types"] and not float_tensors_used((out / int8["file"]).read_bytes())
    assert int8["arena_bytes"] > 0 and int8["tflm"]["max_op_lsb_vs_litert"] <= 1
    metrics = manifest["metrics"]
    assert len(metrics["per_fold"]) == 2 and 0 <= metrics["int8_agreement"] <= 1
    assert "(34 MFCC + 12 chroma, front end in" in (out / "MODEL_CARD.md").read_text()


def test_a_run_whose_front_end_does_not_fit_the_model_is_refused(tmp_path):
    from sertiny.export.run import load_run
    from sertiny.features import get_preset

    run = write_run(tmp_path, family="vit", seq_len=T)
    (run / "feature_config.json").write_text(json.dumps(get_preset("logmel16k").to_dict()))
    with pytest.raises(ArtifactError, match="the front end makes 40 log-mel bands features per frame but the model "
                                            "takes 46"):
        load_run(run)
