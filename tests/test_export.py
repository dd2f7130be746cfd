"""Tests for sertiny.export: graphs vs the NumPy reference, chunked = full, int8 under LiteRT
and TFLite Micro, the firmware C reference, bad inputs, and the bundle round trip.

Models are tiny (hidden 8, T = 13) with random weights, so the whole file runs in about a
minute; the real ResLSTM-SA-h64 figures come from export/export_report.py.
"""

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
pytest.importorskip("tflite_micro")

from export_helpers import C, T, clips, float_tensors_used, padded, random_weights, write_run

from sertiny.errors import ArtifactError, ParameterError, SertinyError
from sertiny.export import ExportConfig
from sertiny.export.convert import convert, io_details
from sertiny.export.flatbuffer import compact, describe
from sertiny.export.graph import chunk_function, fold_weights, full_unroll_function
from sertiny.models.weights import forward
from sertiny.runtime.chunked import ChunkedRunner, OnlineAttention
from sertiny.runtime.tflite import load_interpreter

C_REFERENCE = Path(__file__).resolve().parents[1] / "firmware_bench" / "c_reference"


def chunk_meta(fw, k, io):
    return {"profile": "chunked", "chunk": k, "seq_len": T, "padding": "zeros", "head": fw.head_dict(), **io}


def chunk_runner(fw, k, mode="f32", representative=None):
    function = chunk_function(fw, k)
    raw = convert(function, mode, representative=representative)
    io = io_details(raw, function)
    return ChunkedRunner(load_interpreter(compact(raw)), chunk_meta(fw, k, io)), compact(raw), io


# ---------------------------------------------------------------------------- float graphs


@pytest.mark.parametrize(("family", "schedule"), [("res_lstm_sa", "wavefront"), ("res_lstm_sa", "sequential"),
                                                  ("lstm_sa", "sequential")])
def test_unrolled_float_graph_matches_numpy_reference(family, schedule):
    weights = random_weights(family)
    fw = fold_weights(weights)
    x = np.stack([padded(c) for c in clips(3)])
    reference = forward(weights, x)
    function = full_unroll_function(fw, T, schedule=schedule)
    got_tf = np.concatenate([function(tf.constant(xi[None]))["probabilities"].numpy() for xi in x])
    interpreter = load_interpreter(compact(convert(function)))
    got_lite = []
    for xi in x:
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"], xi[None])
        interpreter.invoke()
        got_lite.append(interpreter.get_tensor(interpreter.get_output_details()[0]["index"])[0])
    assert np.abs(got_tf - reference).max() <= 1e-5
    assert np.abs(np.stack(got_lite) - reference).max() <= 1e-5


def test_wavefront_halves_the_ops():
    fw = fold_weights(random_weights())
    ops = {s: describe(convert(full_unroll_function(fw, T, schedule=s)))["ops"] for s in ("wavefront", "sequential")}
    assert ops["wavefront"] < 0.6 * ops["sequential"]


@pytest.mark.parametrize("k", [1, 3, 5])
def test_chunked_float_equals_full_unroll(k):
    weights = random_weights()
    runner, _, _ = chunk_runner(fold_weights(weights), k)
    for clip in clips(3):  # shorter than, equal to and longer than T
        expected = forward(weights, padded(clip)[None])[0]
        assert np.abs(runner.predict(clip) - expected).max() <= 1e-5


def test_online_attention_is_exact_for_any_split():
    rng = np.random.default_rng(0)
    u, h = rng.normal(size=4), rng.normal(size=(11, 4)) * 5
    scores = h @ u
    alpha = np.exp(scores - scores.max())
    expected = (alpha / alpha.sum()) @ h
    for sizes in ([11], [1] * 11, [3, 3, 3, 2], [5, 6]):
        pool = OnlineAttention(u)
        for part in np.split(h, np.cumsum(sizes)[:-1]):
            pool.add(part)
        np.testing.assert_allclose(pool.context(), expected, rtol=1e-12)


# ---------------------------------------------------------------------------- integer models


@pytest.fixture(scope="module")
def int8_models():
    """Full and K = 3 chunked int8 models of one random ResLSTM, calibrated on 16 clips."""
    weights = random_weights()
    fw = fold_weights(weights)
    calib = clips(16, seed=2)
    full = full_unroll_function(fw, T)
    raw = convert(full, "int8", representative=[[padded(c)[None]] for c in calib])
    float_runner, _, _ = chunk_runner(fw, 3)
    trace = []
    for c in calib:
        float_runner.predict(c, trace=trace)
    chunked, chunk_bytes, chunk_io = chunk_runner(fw, 3, "int8", [inputs for inputs, _ in trace])
    return {"weights": weights, "full": compact(raw), "full_io": io_details(raw, full),
            "chunked": chunked, "chunk_bytes": chunk_bytes, "chunk_io": chunk_io}


def test_int8_models_are_full_integer_and_close_to_float(int8_models):
    from sertiny.export.variants import predict_full

    interpreter = load_interpreter(int8_models["full"])
    assert interpreter.get_input_details()[0]["dtype"] == np.int8
    assert interpreter.get_output_details()[0]["dtype"] == np.int8
    assert all(e["dtype"] == "int8" for e in int8_models["chunk_io"]["inputs"])
    # Integer throughout, even with the converter's own min/max ranges (percentile 100).
    assert float_tensors_used(int8_models["full"]) == [] and float_tensors_used(int8_models["chunk_bytes"]) == []
    test = clips(6, seed=3)
    expected = np.stack([forward(int8_models["weights"], padded(c)[None])[0] for c in test])
    full = predict_full(interpreter, test, T)
    chunked = np.stack([int8_models["chunked"].predict(c) for c in test])
    assert np.abs(full - expected).max() < 0.15
    assert np.abs(chunked - expected).max() < 0.15


def test_tflm_runs_int8_models_within_one_lsb_of_litert(int8_models, tmp_path):
    from sertiny.export import tflm

    arena = tflm.arena_size(int8_models["full"], int8_models["full_io"])
    assert 0 < arena < 1 << 20
    (tmp_path / "model.tflite").write_bytes(int8_models["full"])
    with tflm._Probe(tmp_path / "model.tflite", len(int8_models["full_io"]["inputs"])) as probe:
        assert not probe.fits(arena - 1)[0]
        assert not probe.fits(64)[0]  # may crash TFLite Micro's child: still an answer
        assert probe.fits(arena)[0]  # asked of a new child if the last one died
    x = load_interpreter(int8_models["full"]).get_input_details()[0]
    from sertiny.runtime.tflite import quantize

    worst, _ = tflm.op_conformance(int8_models["full"], [quantize(padded(clips(1)[0])[None], x)])
    assert worst <= 1
    trace = []
    int8_models["chunked"].predict(clips(1, seed=4)[0], trace=trace)
    worst, _ = tflm.op_conformance(int8_models["chunk_bytes"], trace[1][0])
    assert worst <= 1
    chunk_arena = tflm.arena_size(int8_models["chunk_bytes"], int8_models["chunk_io"])
    micro = ChunkedRunner(tflm.MicroAsLite(int8_models["chunk_bytes"], chunk_arena), int8_models["chunked"].meta)
    clip = clips(1, seed=5)[0]
    assert np.abs(micro.predict(clip) - int8_models["chunked"].predict(clip)).max() < 0.05


def test_percentile_ranges_tighten_int8_steps():
    from sertiny.export.variants import predict_full

    weights = random_weights()
    function = full_unroll_function(fold_weights(weights), T)
    samples = [[padded(c)[None]] for c in clips(12, seed=9)]
    samples[0][0][0, :3] *= 6  # one unusual clip widens every min/max range it touches
    scales = {}
    for percentile in (100, 75):
        model = convert(function, "int8", representative=samples, clip_groups=[[s] for s in samples],
                        range_percentile=percentile)
        interpreter = load_interpreter(model)
        scales[percentile] = interpreter.get_input_details()[0]["quantization"][0]
        test = clips(4, seed=10)
        expected = np.stack([forward(weights, padded(c)[None])[0] for c in test])
        assert np.abs(predict_full(interpreter, test, T) - expected).max() < 0.2
    assert scales[75] < scales[100]


def test_cell_range_caps_only_the_cell_state():
    fw = fold_weights(random_weights())
    function = chunk_function(fw, 1)
    runner, _, _ = chunk_runner(fw, 1)
    trace = []
    for c in clips(8, seed=11):
        runner.predict(c, trace=trace)
    samples = [inputs for inputs, _ in trace]
    groups = [[s] for s in samples]
    calibrated = convert(function, "int8", representative=samples, clip_groups=groups, range_percentile=100,
                         cell_range=None)
    capped = convert(function, "int8", representative=samples, clip_groups=groups, range_percentile=100,
                     cell_range=0.5)
    # States are outputs of the chunked model: c1 and c2 and their f*c products.
    for model in (calibrated, capped):
        io = {e["name"]: e for e in io_details(model, function)["outputs"]}
        assert {"c1", "c2", "h1"} <= set(io)
    plain = {e["name"]: e for e in io_details(calibrated, function)["outputs"]}
    tight = {e["name"]: e for e in io_details(capped, function)["outputs"]}
    for name in ("c1", "c2"):
        assert tight[name]["scale"] <= 1.0 / 255 + 1e-9 < plain[name]["scale"]
    assert tight["h1"]["scale"] == pytest.approx(plain["h1"]["scale"])
    with pytest.raises(ParameterError, match="cell_range"):
        ExportConfig(cell_range=0.0)


def test_cell_state_tensors_are_found_in_both_profiles():
    import tensorflow as tf

    from sertiny.export.convert import cell_state_tensors

    fw = fold_weights(random_weights())
    for function, expected in ((chunk_function(fw, 1), 4), (full_unroll_function(fw, T), None)):
        concrete = function.get_concrete_function()
        shapes = [[d or 1 for d in spec.shape] for spec in concrete.structured_input_signature[0]]
        converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete], function)
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: iter([[np.ones(s, np.float32) for s in shapes]])
        converter._experimental_calibrate_only = True
        found = cell_state_tensors(converter.convert())
        # K = 1: c and f*c of both LSTMs; full wavefront unroll: c and f*c of the fused cell at every tick
        # but the first (no f*c from a zero state).
        assert len(found) == (expected if expected is not None else 2 * T)


@pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc is not installed; the C reference cannot be built")
def test_c_reference_matches_python_host_loop(int8_models, tmp_path):
    from sertiny.export.creference import write_host_trace

    binary = tmp_path / "replay_trace"
    subprocess.run(["gcc", "-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-o", str(binary),
                    str(C_REFERENCE / "replay_trace.c"), str(C_REFERENCE / "sertiny_host.c"), "-lm"], check=True)
    for i, clip in enumerate(clips(2, seed=6, lengths=(8, 17))):  # padded tail chunk; cropped clip
        trace = tmp_path / f"clip{i}.trace"
        write_host_trace(trace, int8_models["chunked"], clip)
        result = subprocess.run([str(binary), str(trace)], capture_output=True, text=True, check=False)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "mismatches 0" in result.stdout


# ---------------------------------------------------------------------------- run -> bundle


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    from sertiny.export import export_run

    root = tmp_path_factory.mktemp("export")
    out = root / "bundle"
    manifest = export_run(write_run(root), out, ExportConfig(chunks=(1,), calib_clips=8))
    return out, manifest


def test_bundle_round_trips(bundle):
    out, _ = bundle
    on_disk = json.loads((out / "sertiny.json").read_text())
    assert on_disk["format"] == "sertiny-bundle" and on_disk["format_version"] == 2
    assert on_disk["weights"] == "deploy" and on_disk["seq_len"] == T
    assert set(on_disk["variants"]) == {"f32", "int8", "int8_chunk1"}
    for entry in on_disk["variants"].values():
        data = (out / entry["file"]).read_bytes()
        assert len(data) == entry["bytes"] and hashlib.sha256(data).hexdigest() == entry["sha256"]
    int8 = on_disk["variants"]["int8"]
    assert int8["arena_bytes"] > 0 and int8["tflm"]["max_op_lsb_vs_litert"] <= 1
    assert {"scale", "zero_point"} <= set(int8["input"])
    header = (out / "model_int8_chunk1.h").read_text()
    assert f"ARENA_BYTES {on_disk['variants']['int8_chunk1']['arena_bytes']}" in header
    assert "alignas(16)" in (out / "model_int8.cc").read_text()
    metrics = on_disk["metrics"]
    assert {"float_uar", "int8_uar", "int8_agreement"} <= set(metrics) and len(metrics["per_fold"]) == 2
    card = (out / "MODEL_CARD.md").read_text()
    assert card.count("deploy") >= 1
    assert "C arrays `model_int8_chunk1.h`, `model_int8_chunk1.cc`" in card  # the files it ships


def test_arena_is_one_figure_in_bundle_card_and_bench(bundle):
    """One measurement (tflm.arena_size) gives the arena of every variant, float included:
    the manifest, the model card, the C header and the benchmark all show that figure."""
    from sertiny.bench import BenchConfig, format_markdown, run_bench
    from sertiny.export import tflm

    out, manifest = bundle
    card = (out / "MODEL_CARD.md").read_text()
    config = BenchConfig(runs=2, warmup=1, max_clips=1, threads=(1,), peers=(), cold_start=False)
    result = run_bench(out, (), config, progress=False)
    bench = {v["name"]: v for v in result["variants"]}
    bench_md = format_markdown(result)
    for name, entry in manifest["variants"].items():
        arena = entry["arena_bytes"]
        assert isinstance(arena, int) and arena > 0, name
        assert any(line.startswith(f"| {name} |") and f"| {arena:,} |" in line for line in card.splitlines()), name
        assert bench[name]["tflm"] == {"arena_bytes": arena, "source": "bundle"}
        assert any(line.startswith(f"| {name} |") and f"| {arena:,} |" in line for line in bench_md.splitlines())
    assert "found by bisection" in card and "found by bisection" in bench_md  # how it was measured
    int8 = manifest["variants"]["int8"]
    io = {"inputs": [int8["input"]]}
    assert tflm.arena_size((out / int8["file"]).read_bytes(), io) == int8["arena_bytes"]  # measured again


def test_bundle_loads_in_the_device_runtime(bundle):
    from sertiny.runtime.bundle import Bundle
    from sertiny.runtime.runner import load_runner

    out, _ = bundle
    loaded = Bundle.load(out)
    clip = clips(1, seed=8)[0]
    full = load_runner(loaded, "int8").predict(padded(clip))
    chunked = load_runner(loaded, "int8_chunk1").predict(padded(clip))
    assert full.shape == chunked.shape == (C,)
    assert abs(full.sum() - 1) < 0.05 and abs(chunked.sum() - 1) < 1e-5


def test_c_array_compiles(bundle, tmp_path):
    gxx = shutil.which("g++")
    if gxx is None:
        pytest.skip("g++ is not installed")
    out, _ = bundle
    subprocess.run([gxx, "-std=c++11", "-c", str(out / "model_int8_chunk1.cc"), "-I", str(out),
                    "-o", str(tmp_path / "m.o")], check=True)


@pytest.mark.parametrize(("case", "error", "match"), [
    ("missing_weights", ArtifactError, "weights.npz: missing"),
    ("other_format", ArtifactError, "format_version 99"),
    ("other_features", ArtifactError, "trained on other features"),
    ("other_model", ArtifactError, "different model or feature set"),
    ("empty_representative", ArtifactError, "representative set is empty"),
])
def test_bad_inputs_fail_clearly_and_write_nothing(tmp_path, case, error, match):
    from sertiny.export import export_run

    kwargs = {"other_format": {"format_version": 99}, "other_features": {"norm_width": 40},
              "other_model": {"weights_family": "lstm_sa"}, "empty_representative": {"empty_train_fold": True}}
    run = write_run(tmp_path, **kwargs.get(case, {}))
    if case == "missing_weights":
        (run / "deploy" / "weights.npz").unlink()
    weights = "seed0_fold1" if case == "empty_representative" else "deploy"
    out = tmp_path / "bundle"
    with pytest.raises(error, match=match):
        export_run(run, out, ExportConfig(weights=weights, parity=False, tflm=False))
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".bundle")]


def test_existing_bundle_is_kept_without_overwrite(tmp_path):
    from sertiny.export import export_run

    out = tmp_path / "bundle"
    out.mkdir()
    with pytest.raises(SertinyError, match="already exists"):
        export_run(write_run(tmp_path), out, ExportConfig(parity=False, tflm=False))


def test_config_rejects_bad_values():
    with pytest.raises(ParameterError):
        ExportConfig(chunks=(0,))
    with pytest.raises(ParameterError):
        ExportConfig(calib_clips=0)


def test_cli_exports_and_reports_errors(tmp_path):
    from click.testing import CliRunner

    from sertiny.cli import main

    run = write_run(tmp_path)
    out = tmp_path / "bundle"
    result = CliRunner().invoke(main, ["export", str(run), "--out", str(out), "--chunk", "2", "--no-parity",
                                       "--no-tflm", "--quiet"])
    assert result.exit_code == 0, result.output
    assert "int8_chunk2" in result.output and (out / "model_int8_chunk2.tflite").is_file()
    again = CliRunner().invoke(main, ["export", str(run), "--out", str(out), "--quiet"])
    assert again.exit_code == 2 and "already exists" in again.output


def test_chunked_only_bundle_ships_float_and_int8_chunks_without_c_arrays(tmp_path):
    from sertiny.export import export_run
    from sertiny.runtime.bundle import Bundle
    from sertiny.runtime.runner import load_runner

    out = tmp_path / "bundle"
    manifest = export_run(write_run(tmp_path), out, ExportConfig(chunks=(1,), full=False, c_arrays=False,
                                                                 calib_clips=8, tflm=False))
    assert set(manifest["variants"]) == {"f32_chunk1", "int8_chunk1"}
    assert sorted(p.name for p in out.iterdir()) == ["MODEL_CARD.md", "model_f32_chunk1.tflite",
                                                     "model_int8_chunk1.tflite", "sertiny.json"]
    metrics = manifest["metrics"]
    assert metrics["int8_variant"] == "int8_chunk1" and 0 <= metrics["int8_agreement"] <= 1
    assert "CC BY-NC-SA" in manifest["data_terms"]  # the paper's feature format is RAVDESS's
    card = (out / "MODEL_CARD.md").read_text()
    assert "model_int8_chunk1.h" not in card and "`model_int8_chunk1.tflite` (this bundle ships no C arrays" in card
    loaded = Bundle.load(out)
    assert loaded.default_variant == "int8_chunk1"
    clip = padded(clips(1, seed=8)[0])
    f32, int8 = (load_runner(loaded, name).predict(clip) for name in ("f32_chunk1", "int8_chunk1"))
    assert abs(f32.sum() - 1) < 1e-5 and np.abs(f32 - int8).max() < 0.25


def test_int16x8_bundle_reports_its_own_accuracy_and_runs_it_by_default(tmp_path):
    from sertiny.export import export_run
    from sertiny.runtime.bundle import Bundle
    from sertiny.runtime.runner import load_runner

    out = tmp_path / "bundle"
    manifest = export_run(write_run(tmp_path), out, ExportConfig(chunks=(1,), full=False, c_arrays=False, int16x8=True,
                                                                 calib_clips=8, tflm=False))
    assert set(manifest["variants"]) == {"f32_chunk1", "int8_chunk1", "int16x8_chunk1"}
    metrics = manifest["metrics"]
    assert metrics["int8_variant"] == "int8_chunk1" and metrics["int16x8_variant"] == "int16x8_chunk1"
    assert metrics["int16x8_uar"] == metrics["variants"]["int16x8_chunk1"]["uar"]
    card = (out / "MODEL_CARD.md").read_text()
    assert "- int16x8 UAR " in card and "- int8 UAR " in card and "runs `int16x8_chunk1` unless `--variant`" in card
    loaded = Bundle.load(out)
    assert loaded.default_variant == "int16x8_chunk1" and loaded.uar("int16x8_chunk1") == metrics["int16x8_uar"]
    clip = padded(clips(1, seed=8)[0])
    f32, int16 = (load_runner(loaded, name).predict(clip) for name in ("f32_chunk1", "int16x8_chunk1"))
    assert np.abs(f32 - int16).max() < 0.02  # 16-bit activations: far finer than int8's 0.25 bound above


def test_chunked_only_needs_chunks():
    with pytest.raises(ParameterError, match="chunks"):
        ExportConfig(full=False)


def test_model_card_states_ravdess_terms():
    from sertiny.export.bundle import data_terms

    assert "CC BY-NC-SA 4.0" in data_terms({"data": {"kind": "audio", "dataset": "ravdess"}})
    assert "check" in data_terms({"data": {"kind": "audio", "dataset": "folder"}})
