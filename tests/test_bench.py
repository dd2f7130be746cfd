"""``sertiny bench``: cost counting, the MCU estimate, peers, the run, reports and compare."""

import copy
import json

import numpy as np
import pytest
from click.testing import CliRunner

from sertiny.errors import ArtifactError, ParameterError


@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory):
    pytest.importorskip("tensorflow", reason="building test bundles needs TensorFlow (host only)")
    from sertiny.bench.toy import make_toy_bundle

    bundle = make_toy_bundle(tmp_path_factory.mktemp("bundles") / "toy", seq_len=40)
    from sertiny.runtime.bundle import write_manifest

    manifest = json.loads((bundle / "sertiny.json").read_text())
    manifest["metrics"] = {"float_uar": 0.61, "int8_uar": 0.60}  # so the plot has points
    write_manifest(bundle, manifest)
    return bundle


@pytest.fixture(scope="module")
def result(bundle_dir):
    from sertiny.bench import BenchConfig, run_bench

    config = BenchConfig(runs=20, warmup=2, max_clips=2, peers=("onnxruntime",))
    return run_bench(bundle_dir, (), config, progress=False, command="pytest")


# --- static cost and the estimate ---------------------------------------------------------


def test_mac_counts_of_weight_ops():
    from sertiny.bench.graph import op_mac_count

    assert op_mac_count("FULLY_CONNECTED", [(100, 46), (64, 46), (64,)], [(100, 64)]) == 100 * 46 * 64
    assert op_mac_count("CONV_2D", [(1, 8, 8, 3), (16, 3, 3, 3)], [(1, 8, 8, 16)]) == 8 * 8 * 16 * 27
    lstm_in = [(1, 10, 46)] + [(32, 46)] * 4 + [(32, 32)] * 4
    assert op_mac_count("UNIDIRECTIONAL_SEQUENCE_LSTM", lstm_in, [(1, 10, 32)]) == 10 * 4 * 32 * (46 + 32)
    assert op_mac_count("TANH", [(1, 10)], [(1, 10)]) == 0


def test_model_cost_of_the_toy_model(bundle_dir):
    from sertiny.bench.graph import model_cost
    from sertiny.runtime import Bundle, load_runner

    cost = model_cost(load_runner(Bundle.load(bundle_dir), "int8").interpreter)
    # Dense 46 -> 16 over 40 frames, then 16 -> 8 classes; XNNPACK's DELEGATE node not counted.
    assert cost["macs"] == 40 * 46 * 16 + 16 * 8
    assert cost["op_types"]["FULLY_CONNECTED"] == 2 and "DELEGATE" not in cost["op_types"]
    assert cost["complete"] and cost["elements"]["transcendental"] > 0


def test_mcu_estimate_is_labelled_and_scales():
    from sertiny.bench.mcu import estimate

    cost = {"ops": 10, "macs": 1_000_000, "elements": {"arith": 1000, "transcendental": 100, "layout": 0}}
    int8 = estimate(cost, quantized=True)
    f32 = estimate(cost, quantized=False)
    m4, m7 = "Cortex-M4 @ 80 MHz", "Cortex-M7 @ 480 MHz"
    assert all(v["estimate"] for k, v in int8.items() if k != "cost_model")
    assert "estimate" in int8["cost_model"]
    assert int8[m4]["ms"] > int8[m7]["ms"] and f32[m4]["ms"] > int8[m4]["ms"]
    # 1 M int8 MACs at ~1 cycle/MAC on an 80 MHz M4 is ~12.5 ms plus overheads.
    assert 12.5 < int8[m4]["ms"] < 15


# --- peers --------------------------------------------------------------------------------


@pytest.mark.parametrize("family", ["lstm_sa", "res_lstm_sa"])
@pytest.mark.parametrize("peer", ["onnxruntime", "torch"])
def test_peers_match_the_numpy_reference(family, peer):
    pytest.importorskip(peer)
    pytest.importorskip("onnx") if peer == "onnxruntime" else None
    from sertiny.bench.peers import load_peer, random_weights
    from sertiny.models.weights import forward

    model = {"family": family, "hidden": 12, "n_features": 46, "n_classes": 8, "seq_len": 20}
    weights = random_weights(model, seed=3)
    x = np.random.default_rng(0).standard_normal((20, 46)).astype(np.float32)
    got = load_peer(peer, model, weights).predict(x)
    np.testing.assert_allclose(got, forward(weights, x[None])[0], atol=1e-5)


@pytest.mark.slow
def test_keras_peer_matches_the_numpy_reference():
    pytest.importorskip("keras")
    from sertiny.bench.peers import load_peer, random_weights
    from sertiny.models.weights import forward

    model = {"family": "res_lstm_sa", "hidden": 12, "n_features": 46, "n_classes": 8, "seq_len": 20}
    weights = random_weights(model, seed=3)
    x = np.random.default_rng(0).standard_normal((20, 46)).astype(np.float32)
    np.testing.assert_allclose(load_peer("keras", model, weights).predict(x), forward(weights, x[None])[0], atol=1e-5)


def test_peer_weights_are_found_in_the_source_run(tmp_path, bundle_dir):
    from sertiny.bench.peers import find_weights, random_weights
    from sertiny.models.weights import save_weights
    from sertiny.runtime import Bundle

    bundle = Bundle.load(bundle_dir)
    weights, reason = find_weights(bundle)
    assert weights is None and "not found" in reason
    model = {"family": "lstm_sa", "hidden": 4, "n_features": 46, "n_classes": 8, "seq_len": 40}
    (tmp_path / "run" / "seed_0" / "fold_3").mkdir(parents=True)
    save_weights(tmp_path / "run" / "seed_0" / "fold_3" / "weights.npz", random_weights(model))
    manifest = {**bundle.manifest, "source_run": str(tmp_path / "run"), "weights": "seed0_fold3"}
    weights, source = find_weights(type(bundle)(**{**bundle.__dict__, "manifest": manifest}))
    assert source.endswith("seed_0/fold_3/weights.npz") and weights["dense/kernel"].shape == (4, 8)


# --- the run and its reports ----------------------------------------------------------------


def test_run_bench_measures_every_variant(result):
    assert [v["name"] for v in result["variants"]] == ["f32", "int8"]
    for v in result["variants"]:
        assert v["file_bytes"] > 0 and v["ops"] >= 5 and v["macs"] > 0
        assert set(v["latency"]) == {"1", str(result["device"]["cores"])}
        assert 0 < v["latency"]["1"]["p50"] <= v["latency"]["1"]["p99"]
        e2e = v["e2e"]
        assert e2e["total_ms"] == pytest.approx(e2e["decode_ms"] + e2e["features_ms"] + e2e["inference_ms"], rel=1e-3)
        assert 0 < e2e["rtf"] < 1
        cold = v["cold_start"]
        assert cold["heavy_modules"] == [] and cold["cold_start_s"] > 0 and cold["peak_rss_mb"] > 10
        assert v["mcu_estimate"]["Cortex-M4 @ 80 MHz"]["estimate"] is True
    int8 = result["variants"][1]
    assert int8["uar"] == 0.60 and result["variants"][0]["uar"] == 0.61
    if "arena_bytes" in int8["tflm"]:
        assert int8["tflm"]["arena_bytes"] > 0
    assert result["clips"]["source"].startswith("synthetic")
    assert result["peers"] == [{"name": "onnxruntime", "skipped": result["peers"][0]["skipped"]}]
    assert "toy_dense_mean" in result["peers"][0]["skipped"]
    assert result["targets"]["device_path_imports_no_heavy_framework"] is True
    json.dumps(result)  # JSON-able as is


def test_save_results_writes_json_markdown_config_and_plot(result, tmp_path):
    from sertiny.bench import BenchConfig, load_result, save_results

    paths = save_results(result, tmp_path)
    assert sorted(p.name for p in paths) == ["bench.json", "bench.md", "bench_config.json", "pareto.png"]
    assert load_result(tmp_path / "bench.json") == json.loads(json.dumps(result))
    assert BenchConfig.load(tmp_path / "bench_config.json") == BenchConfig.from_dict(result["config"])
    md = (tmp_path / "bench.md").read_text()
    assert "| f32 |" in md and "| int8 |" in md and "estimates, not measurements" in md
    assert "Command: `pytest`" in md
    assert (tmp_path / "pareto.png").read_bytes()[:4] == b"\x89PNG"


def test_compare_hides_emulated_timings(result, tmp_path):
    from sertiny.bench import compare

    (tmp_path / "host.json").write_text(json.dumps(result))
    emulated = copy.deepcopy(result)
    emulated["device"].update(name="pi-under-qemu", emulated=True, emulator="qemu-aarch64-static")
    (tmp_path / "emu.json").write_text(json.dumps(emulated))
    written = compare([tmp_path / "host.json", tmp_path / "emu.json"], tmp_path / "out")
    md = written[1].read_text()
    emu_rows = [line for line in md.splitlines() if line.startswith("| pi-under-qemu")]
    assert len(emu_rows) == 2 and all("emulated" in row for row in emu_rows)
    host_rows = [line for line in md.splitlines() if line.startswith(f"| {result['device']['name']}")]
    assert len(host_rows) == 2 and not any("emulated" in row for row in host_rows)
    assert (tmp_path / "out" / "compare.png").exists()
    with pytest.raises(ArtifactError, match="not a sertiny bench result"):
        compare([tmp_path / "out" / "compare.json"], tmp_path / "x")


def test_emulated_run_does_not_claim_targets(result):
    from sertiny.bench.report import format_markdown
    from sertiny.bench.run import check_targets

    emulated = copy.deepcopy(result)
    emulated["device"]["emulated"] = True
    assert check_targets(emulated)["cold_start_s<=1.0"] is None
    md = format_markdown(emulated)
    assert "Emulated run" in md and "| f32 |" in md
    row = next(line for line in md.splitlines() if line.startswith("| int8 |"))
    assert "emulated" in row


def test_bench_config_validates():
    from sertiny.bench import BenchConfig

    assert BenchConfig(threads=[1, 2]).threads == (1, 2)
    with pytest.raises(ParameterError, match="'runs' parameter of BenchConfig"):
        BenchConfig(runs=0)
    with pytest.raises(ParameterError, match="'peers' parameter"):
        BenchConfig(peers=("tvm",))


def test_bench_cli_run_and_compare(bundle_dir, tmp_path, write_audio):
    from sertiny.cli import main

    clip = write_audio("clip.wav", (0.2 * np.sin(np.arange(32000) / 10)).astype(np.float32), sr=16000)
    runner = CliRunner()
    out = tmp_path / "host"
    res = runner.invoke(main, ["bench", str(bundle_dir), "--clips", str(clip), "--runs", "5", "--warmup", "1",
                               "--variant", "int8", "--threads", "1", "--no-peers", "--no-cold-start", "--no-tflm",
                               "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "| int8 |" in res.stdout and "| f32 |" not in res.stdout
    data = json.loads((out / "bench.json").read_text())
    assert data["command"].startswith("sertiny ") and data["clips"]["files"] == ["clip.wav"]
    res = runner.invoke(main, ["bench", "compare", str(out / "bench.json"), "--out", str(tmp_path / "cmp")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "cmp" / "compare.md").exists()


def test_e2e_target_reports_the_floor_set_by_the_shared_front_end():
    from sertiny.bench.run import check_targets

    def e2e(decode, features, inference):
        total = decode + features + inference
        return {"decode_ms": decode, "features_ms": features, "inference_ms": inference, "total_ms": total,
                "total": {"p50": total}}

    result = {"device": {}, "variants": [{"name": "int8_chunk1", "e2e": e2e(1.0, 5.0, 1.0), "cold_start": {}}],
              "peers": [{"name": "keras", "e2e": e2e(1.0, 5.0, 2.0)}]}
    targets = check_targets(result)
    assert targets["int8_e2e_over_keras_e2e"] == 0.875 and targets["int8_e2e<=0.5*keras_e2e"] is False
    assert targets["e2e_ratio_floor_shared_front_end"] == 0.75
