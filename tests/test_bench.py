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
    # int16x8: the int8 costs, marked as not modelling the s16 kernels (a lower bound)
    int16x8 = estimate(cost, quantized=True, activation_bits=16)
    assert int16x8[m4] == int8[m4] and int16x8["int16_activations"] == "not modelled"
    assert "int16_activations" not in int8 and "int16_activations" not in estimate(cost, quantized=False,
                                                                                    activation_bits=16)


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


@pytest.mark.parametrize("peer", ["onnxruntime", "torch", "keras"])
def test_peers_of_the_joined_family_match_its_keras_model(peer):
    pytest.importorskip(peer)
    pytest.importorskip("onnx") if peer == "onnxruntime" else None
    from sertiny.bench.peers import load_peer, random_weights
    from sertiny.models import create_model
    from sertiny.models.weights import set_weights

    model = {"family": "res_lstm_sa_stats", "hidden": 12, "n_features": 46, "n_classes": 8, "seq_len": 20}
    weights = random_weights(model, seed=3)  # the shapes bench uses when the bundle's weights are not found
    net = create_model("res_lstm_sa_stats_h12", n_features=46, n_classes=8, seq_len=20)
    set_weights(net, weights)
    x = np.random.default_rng(0).standard_normal((20, 46)).astype(np.float32)
    np.testing.assert_allclose(load_peer(peer, model, weights).predict(x), np.asarray(net(x[None]))[0], atol=1e-5)


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
    if "arena_bytes" in int8["tflm"]:  # the toy bundle records none: measured here, as the exporter would
        assert int8["tflm"]["arena_bytes"] > 0 and int8["tflm"]["source"] == "measured"
    assert result["clips"]["source"].startswith("synthetic")
    assert result["peers"] == [{"name": "onnxruntime", "skipped": result["peers"][0]["skipped"]}]
    assert "toy_dense_mean" in result["peers"][0]["skipped"]
    assert "targets" not in result
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


def test_emulated_run_shows_no_timings(result):
    from sertiny.bench.report import format_markdown

    emulated = copy.deepcopy(result)
    emulated["device"]["emulated"] = True
    md = format_markdown(emulated)
    assert "Emulated run" in md and "| f32 |" in md
    row = next(line for line in md.splitlines() if line.startswith("| int8 |"))
    assert "emulated" in row
    assert "against the float peers" not in md


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
    res = runner.invoke(main, ["bench", "--bundle", str(bundle_dir), "--clips", str(clip), "--runs", "5", "--warmup", "1",
                               "--variant", "int8", "--threads", "1", "--no-peers", "--no-cold-start", "--no-tflm",
                               "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "| int8 |" in res.stdout and "| f32 |" not in res.stdout
    data = json.loads((out / "bench.json").read_text())
    assert data["command"].startswith("sertiny ") and data["clips"]["files"] == ["clip.wav"]
    res = runner.invoke(main, ["bench", "compare", str(out / "bench.json"), "--out", str(tmp_path / "cmp")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "cmp" / "compare.md").exists()


def test_bench_help_shows_the_run_options_at_top_level(bundle_dir, tmp_path):
    from sertiny.cli import main

    res = CliRunner().invoke(main, ["bench", "--help"], prog_name="sertiny")
    assert res.exit_code == 0
    assert "Usage: sertiny bench [OPTIONS] [BUNDLE]" in res.output
    for option in ("--bundle", "--clips", "--out", "--runs", "--no-peers", "--no-tflm"):
        assert option in res.output, option
    assert "compare" in res.output
    res = CliRunner().invoke(main, ["bench", str(bundle_dir), "--bundle", str(tmp_path)])
    assert res.exit_code == 2 and "Two bundles given" in res.output


def _e2e(decode, features, inference):
    total = decode + features + inference
    return {"decode_ms": decode, "features_ms": features, "inference_ms": inference, "total_ms": total,
            "total": {"p50": total}}


def test_report_compares_integer_models_with_each_peer_without_pass_or_fail():
    """Ratios per window against every peer, the end-to-end split and the load; a K = 1 model
    slower than the peers is said to be so, beside the full-unroll int8 model."""
    from sertiny.bench.report import _against_peers

    def variant(name, profile, p50, invokes, inference):
        return {"name": name, "profile": profile, "quantized": True, "invokes_per_window": invokes,
                "latency": {"1": {"p50": p50}}, "e2e": _e2e(1.0, 5.0, inference)}

    def peer(name, p50, inference):
        return {"name": name, "latency": {"p50": p50}, "e2e": _e2e(1.0, 5.0, inference)}

    result = {"load_average": {"start": {"1min": 3.0, "cores": 2}, "end": {"1min": 2.5}},
              "variants": [variant("int8", "full", 0.4, 1, 0.5), variant("int8_chunk1", "chunked", 2.0, 119, 2.5)],
              "peers": [peer("keras", 0.5, 0.6), peer("onnxruntime", 0.2, 0.3)]}
    text = "\n".join(_against_peers(result, emulated=False))
    assert "| int8 (full unroll, 1 invoke per window) | 0.80 | 2.00 |" in text
    assert "| int8_chunk1 (chunked, 119 invokes per window) | 4.00 | 10.00 |" in text
    assert "| keras | 1.00 | 5.00 | 0.60 | 6.60 |" in text  # decode, features, inference, total
    assert "Machine load while timing: 1-min load average 3.0 at start, 2.5 at end, 2 cores" in text
    assert "`int8_chunk1` takes 2.000 ms per window: slower than keras, onnxruntime (0.200-0.500 ms)" in text
    assert "`int8` takes 0.400 ms per window: slower than onnxruntime (0.200 ms); faster than keras (0.500 ms)" in text
    assert "NOT met" not in text and "target" not in text.lower()
    chunked_only = {**result, "variants": result["variants"][1:]}
    assert "no full-unroll integer model" in "\n".join(_against_peers(chunked_only, emulated=False))


def test_pareto_axes_keep_a_small_uar_spread_small_and_label_only_major_latency_ticks():
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from sertiny.bench.report import MIN_UAR_RANGE, _honest_uar_range, _log_ms_axis

    fig, ax = plt.subplots()
    ax.scatter([0.3, 2.0], [0.4043, 0.4076])  # a 0.33 pp spread, as in the built-in bundle
    _log_ms_axis(ax)
    _honest_uar_range(ax, [0.4043, 0.4076])
    low, high = ax.get_ylim()
    assert high - low == pytest.approx(MIN_UAR_RANGE) and low < 0.4043 and 0.4076 < high
    fig.canvas.draw()
    minor = [t.get_text() for t in ax.xaxis.get_minorticklabels() if t.get_text()]
    major = [t.get_text() for t in ax.xaxis.get_majorticklabels() if t.get_text()]
    assert minor == [] and {"0.5", "1", "2"} <= set(major)
    plt.close(fig)
