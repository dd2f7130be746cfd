"""`sertiny quickstart` end to end on four real RAVDESS actors with a tiny epoch budget."""

import json

import pytest

pytest.importorskip("jax", reason="quickstart trains: needs the [train] extra")
pytest.importorskip("tensorflow", reason="quickstart exports: needs the [train] extra")

ACTORS = ("Actor_01", "Actor_02", "Actor_03", "Actor_04")


def run_quickstart(shared_data, tmp_path, *options):
    """``sertiny quickstart`` on four actors, one epoch; returns its output directory."""
    from click.testing import CliRunner

    from sertiny.cli import main

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for actor in ACTORS:
        (corpus / actor).symlink_to(shared_data / "ravdess16k" / actor, target_is_directory=True)
    out = tmp_path / "qs"
    result = CliRunner().invoke(main, ["quickstart", str(corpus), "--out", str(out), "--epochs", "1",
                                       "--jobs", "1", "--quiet", *options], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return out


@pytest.mark.slow
def test_quickstart_writes_every_artifact_it_promises(shared_data, tmp_path):
    from sertiny.runtime.bundle import Bundle
    from sertiny.runtime.classifier import Classifier

    out = run_quickstart(shared_data, tmp_path)
    for name in ("quickstart_config.json", "quickstart_report.json", "REPORT.md", "run/metrics.json",
                 "run/confusion.png", "run/deploy/weights.npz", "bundle/sertiny.json", "bundle/model_int8.tflite",
                 "bundle/model_f32.tflite", "bundle/model_int8.h", "bundle/model_int8.cc", "bundle/MODEL_CARD.md",
                 "bench/bench.json", "bench/bench.md"):
        assert (out / name).exists(), name
    bundle = Bundle.load(out / "bundle")
    assert any(v.get("profile") == "chunked" for v in json.loads((out / "bundle/sertiny.json").read_text())["variants"].values())
    assert len(bundle.labels) == 8
    report = json.loads((out / "quickstart_report.json").read_text())
    # The demo: fold 1's model on one clip per emotion of the speaker it was tested on.
    test_speakers = json.loads((out / "run/run.json").read_text())["folds"][0]["test_speakers"]
    predictions = report["predictions"]
    assert len(predictions) == 8 and len({p["true"] for p in predictions}) == 8
    assert all(p["speaker"] in test_speakers for p in predictions)
    markdown = (out / "REPORT.md").read_text()
    assert "Time per stage: summary" in markdown and "{" not in markdown
    assert "never heard" in markdown and "found by bisection" in markdown
    assert "Command: `sertiny quickstart " in (out / "bench/bench.md").read_text()
    manifest = json.loads((out / "bundle/sertiny.json").read_text())
    assert {n: v["arena_bytes"] for n, v in report["variants"].items()} == \
        {n: v["arena_bytes"] for n, v in manifest["variants"].items()}
    assert all(isinstance(v["arena_bytes"], int) for v in report["variants"].values())  # float too
    clip = next((shared_data / "ravdess16k" / "Actor_01").glob("*.flac"))
    assert Classifier.from_path(out / "bundle").classify_file(clip).label in bundle.labels


@pytest.mark.slow
def test_quickstart_with_a_family_that_does_not_stream_exports_the_full_profile_only(shared_data, tmp_path):
    out = run_quickstart(shared_data, tmp_path, "--model", "cnn_lstm_h8")
    variants = json.loads((out / "bundle/sertiny.json").read_text())["variants"]
    assert {v["profile"] for v in variants.values()} == {"full"} and "int8" in variants
    assert (out / "bench/bench.json").exists()
