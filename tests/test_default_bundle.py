"""The bundle shipped inside the package: present, small, honest, and used when no bundle is given."""

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from sertiny.runtime.bundle import DEFAULT_BUNDLE, Bundle, default_bundle_path

ROOT = Path(__file__).resolve().parents[1]
# Hundreds of KB, not MB, in the wheel: the chunked int8 (43 KB), int16x8 (44 KB) and float32 (159 KB) models and the
# manifest (75 KB: the host head's constants are in it once per variant; a joined model's, with
# its statistics, take 127 KB).
MAX_BUNDLE_BYTES = 400_000


def test_default_bundle_loads_and_is_small():
    bundle = Bundle.load(None)
    assert bundle.path == default_bundle_path() == DEFAULT_BUNDLE
    assert set(bundle.variants) == {"f32_chunk1", "int8_chunk1", "int16x8_chunk1"}
    assert bundle.default_variant == "int16x8_chunk1"  # int8 rounding flips labels; 16-bit activations keep them
    from sertiny.features import get_preset

    # Rebuilt on edge16k with its quiet-frame floors, levels held below the running peak and
    # deltas (issue 14, results/accuracy.md).
    assert bundle.feature_config == get_preset("edge16k_peak_deltas")
    assert bundle.manifest["weights"] == "deploy"
    assert sum(p.stat().st_size for p in DEFAULT_BUNDLE.iterdir()) < MAX_BUNDLE_BYTES
    assert not [p for p in DEFAULT_BUNDLE.iterdir() if p.suffix in (".cc", ".h", ".npz")]
    # No path of the machine that built it.
    assert not any(str(v).startswith("/") for v in (bundle.manifest["source_run"], bundle.manifest["source_data"]))


def test_shipped_integer_models_are_integer_throughout():
    pytest.importorskip("tensorflow", reason="reading the flatbuffer needs TensorFlow's schema")
    from export_helpers import float_tensors_used

    for name in ("model_int8_chunk1.tflite", "model_int16x8_chunk1.tflite"):
        assert float_tensors_used((DEFAULT_BUNDLE / name).read_bytes()) == []


def test_model_card_states_data_licence_and_cross_validated_uar():
    card = (DEFAULT_BUNDLE / "MODEL_CARD.md").read_text()
    manifest = json.loads((DEFAULT_BUNDLE / "sertiny.json").read_text())
    assert "CC BY-NC-SA 4.0" in card and "non-commercial" in card
    assert manifest["metrics"]["per_fold"] and len(manifest["metrics"]["per_fold"]) == 5
    assert f"float32 UAR {manifest['metrics']['float_uar']:.4f}" in card
    assert f"int8 UAR {manifest['metrics']['int8_uar']:.4f}" in card
    assert f"int16x8 UAR {manifest['metrics']['int16x8_uar']:.4f}" in card


def test_model_card_names_only_files_the_bundle_ships_and_gives_its_arena():
    import re

    card = (DEFAULT_BUNDLE / "MODEL_CARD.md").read_text()
    manifest = json.loads((DEFAULT_BUNDLE / "sertiny.json").read_text())
    named = set(re.findall(r"`(model_\w+\.\w+)`", card))
    assert named and named <= {p.name for p in DEFAULT_BUNDLE.iterdir()} and "<K>" not in card
    recorded = {n: v["arena_bytes"] for n, v in manifest["variants"].items() if "arena_bytes" in v}
    assert recorded and all(f"| {arena:,} |" in card for arena in recorded.values())
    assert "found by bisection" in card


def test_infer_and_bench_need_no_bundle_argument(shared_data, tmp_path):
    from sertiny.cli import main

    clips = sorted((shared_data / "ravdess16k" / "Actor_01").glob("*.flac"))[:2]
    result = CliRunner().invoke(main, ["infer", *map(str, clips), "--json"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.output.splitlines()]
    assert [r["variant"] for r in rows] == ["int16x8_chunk1"] * 2 and all(r["label"] for r in rows)
    bench = CliRunner().invoke(main, ["bench", "--runs", "3", "--warmup", "1", "--threads", "1", "--no-peers",
                                      "--no-cold-start", "--no-tflm", "--out", str(tmp_path / "b")])
    assert bench.exit_code == 0, bench.output
    assert "int16x8_chunk1" in bench.output and (tmp_path / "b" / "bench.json").is_file()
    # its Cortex-M estimate is marked: the s16 kernels are not modelled
    result = json.loads((tmp_path / "b" / "bench.json").read_text())
    marked = {v["name"]: "int16_activations" in v["mcu_estimate"] for v in result["variants"]}
    assert marked == {"f32_chunk1": False, "int8_chunk1": False, "int16x8_chunk1": True}
    assert "| int16x8_chunk1 |" in (tmp_path / "b" / "bench.md").read_text() and "*" in (
        tmp_path / "b" / "bench.md").read_text().split("| int16x8_chunk1 |")[1].splitlines()[0]


def test_infer_with_only_a_bundle_asks_for_audio():
    from sertiny.cli import main

    result = CliRunner().invoke(main, ["infer", str(DEFAULT_BUNDLE)])
    assert result.exit_code == 2 and "give the audio" in result.output


def test_wheel_carries_the_bundle(tmp_path):
    from importlib import metadata

    # Build in this environment when it has the build backend pyproject.toml asks for (fast,
    # offline); else let pip fetch it into an isolated one.
    try:
        recent = int(metadata.version("setuptools").split(".")[0]) >= 68
    except metadata.PackageNotFoundError:
        recent = False
    isolation = ["--no-build-isolation"] if recent else []
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", *isolation, "-q",
                    "-w", str(tmp_path)], check=True, capture_output=True)
    (wheel,) = tmp_path.glob("sertiny-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    shipped = {Path(n).name for n in names if "/assets/default_bundle/" in n}
    assert shipped == {p.name for p in DEFAULT_BUNDLE.iterdir()}
    assert wheel.stat().st_size < 1_000_000


def test_missing_default_bundle_says_what_to_do(monkeypatch, tmp_path):
    from sertiny.errors import ArtifactError
    from sertiny.runtime import bundle as bundle_module

    monkeypatch.setattr(bundle_module, "DEFAULT_BUNDLE", tmp_path / "absent")
    with pytest.raises(ArtifactError, match="Pass a bundle directory"):
        Bundle.load(None)
