"""The Raspberry Pi OS stack under qemu, installed as a user installs it, works as the Pi
README says and gives the host's predictions (firmware_bench/emulated_pi).

Runs when ``qemu-aarch64-static`` is installed or ``SERTINY_EMULATED_PI=1`` (then a missing
qemu fails instead of skipping). The first run downloads and caches the arm64 stack and
resolves ``pip install "sertiny[pi]"`` on the emulated Python (a few minutes); later runs
reinstall only sertiny's wheel. ``SERTINY_EMULATED_PI_BUNDLE`` points it at a real bundle
(e.g. from ``sertiny export``); otherwise a small bundle is made here, calibrated on the
same RAVDESS clips so its int8 inputs span their range.
"""

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "firmware_bench" / "emulated_pi" / "run.sh"
FORCED = os.environ.get("SERTINY_EMULATED_PI") == "1"

pytestmark = pytest.mark.slow


def _require_qemu():
    if shutil.which("qemu-aarch64-static"):
        return
    if FORCED:
        pytest.fail("SERTINY_EMULATED_PI=1 but qemu-aarch64-static is missing: apt-get install qemu-user-static")
    pytest.skip("qemu-aarch64-static not installed (apt-get install qemu-user-static, or set SERTINY_EMULATED_PI=1)")


@pytest.fixture(scope="module")
def clips(shared_data):
    """Two clips per RAVDESS actor (48): every speaker, several emotions, a few seconds each."""
    actors = sorted((shared_data / "ravdess16k").glob("Actor_*"))
    picked = [f for actor in actors for f in sorted(actor.glob("*.flac"))[7::29][:2]]
    assert len(picked) == 2 * len(actors)
    return picked


@pytest.fixture(scope="module")
def bundle(clips, tmp_path_factory):
    given = os.environ.get("SERTINY_EMULATED_PI_BUNDLE")
    if given:
        return Path(given)
    pytest.importorskip("tensorflow", reason="making the test bundle needs TensorFlow")
    from sertiny.bench.toy import make_toy_bundle
    from sertiny.data.audio import load_audio

    audio = [load_audio(c, 16000) for c in clips[::4]]
    return make_toy_bundle(tmp_path_factory.mktemp("emulated") / "bundle", audio=audio, seq_len=110)


def test_emulated_pi_predictions_equal_the_hosts(bundle, clips, tmp_path):
    _require_qemu()
    out = tmp_path / "out"
    proc = subprocess.run(["bash", str(SCRIPT), "--out", str(out), str(bundle), *map(str, clips)],
                          capture_output=True, text=True, timeout=1200)
    log = proc.stderr
    assert proc.returncode == 0, log[-3000:]
    emulated = [json.loads(line) for line in (out / "emulated.jsonl").read_text().splitlines()]
    assert len(emulated) == len(clips) and all(r["label"] for r in emulated)
    # The CI check: one runtime version with its reference kernels on both machines.
    summary = json.loads((out / "comparison.json").read_text())
    assert summary["ok"] and summary["clips"] == len(clips), summary
    assert summary["same_label"] + len(summary["ties"]) == len(clips)
    # Default kernels of different runtime builds: reported, not required to agree.
    report = json.loads((out / "comparison_default_kernels.json").read_text())
    assert report["mode"] == "report" and report["clips"] == len(clips)
    # The script itself must never print emulated timings as if they were the Pi's.
    assert "meaningless" in log and " ms" not in log
    assert "tflite-runtime 2.14.0" in log and "aarch64" in log


def test_emulated_pi_runs_the_builtin_bundle(clips, tmp_path):
    """The bundle shipped in the package (chunked int16x8, its default, host loop in Python) on the Pi stack."""
    _require_qemu()
    from sertiny.runtime.bundle import DEFAULT_BUNDLE

    out = tmp_path / "out"
    picked = clips[::8]
    proc = subprocess.run(["bash", str(SCRIPT), "--out", str(out), str(DEFAULT_BUNDLE), *map(str, picked)],
                          capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stderr[-3000:]
    emulated = [json.loads(line) for line in (out / "emulated.jsonl").read_text().splitlines()]
    assert [r["variant"] for r in emulated] == ["int16x8_chunk1"] * len(picked)
    summary = json.loads((out / "comparison.json").read_text())
    assert summary["ok"] and summary["clips"] == len(picked), summary


def test_pi_readme_steps_as_written_end_with_a_label(clips, tmp_path):
    """The stack pip picks for ``sertiny[pi]`` on aarch64 / Python 3.11 (numpy 2 beside
    tflite-runtime 2.14 broke every infer), then the README's commands as printed, then
    the check setup.sh ends with."""
    _require_qemu()
    from sertiny.runtime.bundle import DEFAULT_BUNDLE

    out = tmp_path / "out"
    proc = subprocess.run(["bash", str(SCRIPT), "--readme", "--out", str(out), str(DEFAULT_BUNDLE),
                           *map(str, clips[::12])], capture_output=True, text=True, timeout=1200)
    log = proc.stderr
    assert proc.returncode == 0, log[-4000:]
    steps = json.loads((out / "readme_steps.json").read_text())
    ran = [s for s in steps if "returncode" in s]
    assert all(s["returncode"] == 0 for s in ran), ran
    commands = [s["command"] for s in ran]
    assert "sertiny infer clip.wav" in commands and "sertiny bench --no-peers" in commands
    assert "sertiny infer bundles/NAME clip.wav --variant f32" in commands
    labelled = [s for s in ran if s["command"].startswith("sertiny infer")]
    assert len(labelled) == 4 and all(s["labels"] for s in labelled)
    assert len(labelled[2]["labels"]) == len(clips[::12])  # clips/ --json > labels.jsonl: one per clip
    assert "numpy 1." in log and "tflite-runtime 2.14.0" in log and "aarch64" in log
    assert "check: the built-in model classified" in log
