"""The device path: bundles, ``sertiny infer``, windows, silence, errors and the live path.

Bundles are made here with a tiny TensorFlow model (:mod:`sertiny.bench.toy`): the
runtime must not care how a bundle was made, and these tests must not wait for training.
"""

import json
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from bundle_helpers import edited_copy, set_field
from sertiny.errors import ArtifactError, AudioError, MissingDependencyError

SR = 16000


def _voice(seconds, *, seed=0, level=0.3):
    """Voiced-like test audio: a tone with vibrato and a little noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    f0 = 140 + 30 * seed + 15 * np.sin(2 * np.pi * 3 * t)
    y = level * np.sin(2 * np.pi * np.cumsum(f0) / SR) + 0.01 * rng.standard_normal(t.size)
    return y.astype(np.float32)


@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory):
    pytest.importorskip("tensorflow", reason="building test bundles needs TensorFlow (host only)")
    from sertiny.bench.toy import make_toy_bundle

    out = tmp_path_factory.mktemp("bundles") / "toy"
    return make_toy_bundle(out, audio=[_voice(3, seed=s) for s in range(4)], seq_len=50)


@pytest.fixture
def broken_bundle(bundle_dir, tmp_path):
    """Factory: a copy of the bundle with its manifest edited by ``edit(manifest)`` (sealed again)."""

    def make(edit=None, name="broken"):
        return edited_copy(bundle_dir, tmp_path / name, edit)

    return make


@pytest.fixture(scope="module")
def classifier(bundle_dir):
    from sertiny.runtime import Classifier

    return Classifier.from_path(bundle_dir)


def _cli(*args):
    from sertiny.cli import main

    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


# --- the device path ----------------------------------------------------------------------


def test_device_path_imports_no_heavy_framework(bundle_dir, write_audio):
    """`sertiny infer` end to end in a fresh process: no TF, Keras, JAX or librosa loaded."""
    clip = write_audio("clip.wav", _voice(2), sr=SR)
    code = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from sertiny.cli import main\n"
        f"result = CliRunner().invoke(main, ['infer', {str(bundle_dir)!r}, {str(clip)!r}, '--json'])\n"
        "assert result.exit_code == 0, result.output\n"
        "heavy = [m for m in ('tensorflow', 'keras', 'jax', 'librosa') if m in sys.modules]\n"
        "print(heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]"


def _infer_in_fresh_process(*args):
    """``sertiny infer ARGS`` as the console script runs it; returns the CompletedProcess."""
    import os

    env = {k: v for k, v in os.environ.items() if k != "SERTINY_FRAMEWORK_LOGS"}  # as a user's shell
    code = "import sys; from sertiny.cli import main; sys.argv[0] = 'sertiny'; main()"
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True,
                          timeout=120, env=env)


def test_infer_prints_no_framework_log_lines_unless_verbose(bundle_dir, write_audio):
    """The TFLite runtime announces its XNNPACK delegate on fd 2; the CLI hides that, and
    ``--verbose`` shows it again (which also shows the check would catch it)."""
    from sertiny.runtime.tflite import interpreter_class

    clip = write_audio("clip.wav", _voice(2), sr=SR)
    quiet = _infer_in_fresh_process("infer", bundle_dir, clip, "--variant", "f32")
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stderr == "", quiet.stderr
    verbose = _infer_in_fresh_process("--verbose", "infer", bundle_dir, clip, "--variant", "f32")
    assert verbose.returncode == 0 and verbose.stdout == quiet.stdout
    if interpreter_class()[1] == "ai_edge_litert":  # the runtime known to announce it
        assert "XNNPACK" in verbose.stderr


def test_framework_log_filter_keeps_errors_and_other_lines():
    from sertiny._native_logs import without_framework_logs

    text = ("WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
            "I0000 00:00:1796091767.892446    7388 port.cc:153] oneDNN custom operations are on.\n"
            "W0000 00:00:1796091767.9    7388 cpu.cc:1] slow\n"
            "2024-01-02 03:04:05.678901: I tensorflow/core/platform/cpu_feature_guard.cc:182] AVX2\n"
            "INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n"
            "E0000 00:00:1796091767.9    7388 op.cc:9] a real error\n"
            "my own line\n"
            "progress 50%\r")
    assert without_framework_logs(text) == ("E0000 00:00:1796091767.9    7388 op.cc:9] a real error\n"
                                            "my own line\nprogress 50%\r")


def test_classify_equals_the_training_pipeline(classifier):
    """decode -> numpy features -> normalise -> fit_to_length -> model, exactly as training."""
    from sertiny.features import extract
    from sertiny.training.inputs import stack_clips

    y = _voice(1.5, seed=1)
    batch, _ = stack_clips([extract(y, classifier.bundle.feature_config)], classifier.bundle.seq_len,
                           classifier.bundle.norm)
    expected = classifier.runner.predict(batch[0])
    got = classifier.classify(y)
    assert got.windows == 1 and not got.silent
    np.testing.assert_array_equal(got.probabilities, expected)
    assert got.label == classifier.labels[int(np.argmax(expected))]
    assert got.probabilities.sum() == pytest.approx(1.0, abs=0.05)  # int8 softmax, 1/256 steps


def test_int8_and_f32_variants_agree(bundle_dir):
    from sertiny.runtime import Classifier

    y = _voice(2, seed=2)
    p8 = Classifier.from_path(bundle_dir, "int8").classify(y).probabilities
    p32 = Classifier.from_path(bundle_dir, "f32").classify(y).probabilities
    np.testing.assert_allclose(p8, p32, atol=0.05)


@pytest.mark.parametrize(("frames", "expected"), [
    (10, [0]), (50, [0]), (51, [0, 1]), (75, [0, 25]), (120, [0, 23, 47, 70]),
])
def test_window_starts(frames, expected):
    from sertiny.runtime import window_starts

    starts = window_starts(frames, 50)
    assert starts == expected
    if frames > 50:
        assert starts[-1] + 50 == frames  # the last window ends with the clip
    assert all(b - a <= 25 for a, b in zip(starts, starts[1:]))  # half-overlapping at most


def test_long_clip_is_the_mean_of_its_windows(classifier):
    from sertiny.runtime import window_starts
    from sertiny.features.frames import fit_to_length

    y = np.concatenate([_voice(2.5, seed=0), _voice(2.5, seed=3)])
    x = classifier.features(y)
    starts = window_starts(len(x), classifier.bundle.seq_len)
    assert len(starts) > 2
    windows = [classifier.runner.predict(fit_to_length(x[s : s + classifier.bundle.seq_len], 50)) for s in starts]
    got = classifier.classify(y)
    assert got.windows == len(starts)
    np.testing.assert_allclose(got.probabilities, np.mean(windows, axis=0), atol=1e-6)


@pytest.mark.parametrize("level", [0.0, 10 ** (-75 / 20)])
def test_silence_and_near_silence_get_no_emotion(classifier, level):
    rng = np.random.default_rng(0)
    y = (level * rng.standard_normal(2 * SR)).astype(np.float32)
    p = classifier.classify(y)
    assert p.silent and p.label is None and p.windows == 0
    assert p.level_db < -55
    assert p.to_dict()["label"] is None


def test_silent_windows_are_left_out_of_a_long_clip(classifier):
    from sertiny.runtime import window_starts
    from sertiny.features.frames import fit_to_length

    speech = _voice(2, seed=1)
    y = np.concatenate([speech, np.zeros(6 * SR, np.float32)])
    x = classifier.features(y)
    hop, seq_len = classifier.bundle.feature_config.hop_length, classifier.bundle.seq_len
    with_speech = [s for s in window_starts(len(x), seq_len) if s * hop < speech.size]
    expected = np.mean([classifier.runner.predict(fit_to_length(x[s : s + seq_len], seq_len))
                        for s in with_speech], axis=0)
    p = classifier.classify(y)
    assert not p.silent and p.windows == len(with_speech) < len(window_starts(len(x), seq_len))
    np.testing.assert_allclose(p.probabilities, expected, atol=1e-6)


def test_infer_cli_text_and_json(bundle_dir, write_audio):
    a = write_audio("a.wav", _voice(2, seed=1), sr=SR)
    b = write_audio("sub/b.flac", _voice(3, seed=2), sr=48000)  # resampled to 16 kHz
    silent = write_audio("silent.wav", np.zeros(SR, np.float32), sr=SR)
    result = _cli("infer", bundle_dir, a, b, silent)
    assert result.exit_code == 0, result.output
    header, *lines = result.output.strip().splitlines()
    assert header == f"Bundle {bundle_dir}: toy_dense_mean_h16, variant int8"  # which model answered
    assert len(lines) == 3 and "silence" in lines[2]
    result = _cli("infer", bundle_dir, a.parent, "--json", "--variant", "f32")
    rows = [json.loads(line) for line in result.output.strip().splitlines()]
    assert [r["file"].rsplit("/", 1)[-1] for r in rows] == ["a.wav", "silent.wav", "b.flac"]
    labels = json.loads((bundle_dir / "sertiny.json").read_text())["labels"]
    assert rows[0]["variant"] == "f32" and list(rows[0]["probabilities"]) == labels
    assert rows[1]["silent"] and rows[1]["label"] is None
    assert rows[0]["label"] == max(rows[0]["probabilities"], key=rows[0]["probabilities"].get)


# --- errors that name the file --------------------------------------------------------------


def test_unreadable_clip_is_reported_and_the_rest_still_run(bundle_dir, write_audio, tmp_path):
    good = write_audio("good.wav", _voice(2), sr=SR)
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF\x00\x00\x00\x00WAVEnot really audio")
    result = CliRunner().invoke(__import__("sertiny.cli", fromlist=["main"]).main,
                                ["infer", str(bundle_dir), str(bad), str(good), "--json"])
    assert result.exit_code == 1
    rows = [json.loads(line) for line in result.stdout.strip().splitlines() if line.startswith("{")]
    assert rows[0]["file"] == str(bad) and "cannot be read as audio" in rows[0]["error"]
    assert rows[1]["file"] == str(good) and rows[1]["label"]
    with pytest.raises(AudioError, match="bad.wav"):
        from sertiny.runtime import Classifier

        Classifier.from_path(bundle_dir).classify_file(bad)


@pytest.mark.parametrize(("edit", "message"), [
    (set_field(["feature_config", "n_mfcc_new"], 3), "front-end config cannot be computed"),
    (set_field(["feature_config", "hop_length"], 0), "front-end config cannot be computed"),
    (set_field(["labels"], ["a", "b", "c"]), "n_classes=8"),
    (set_field(["labels"], ["a", "a"] * 4), "duplicates"),
    (set_field(["norm", "mean"], [0.0] * 10), "normalisation statistics"),
    (set_field(["format_version"], 99), "format_version 99 is not supported"),
    (set_field(["variants", "int8", "file"], "missing.tflite"), "missing.tflite: model file missing"),
])
def test_bad_manifest_is_a_clear_error_naming_the_file(broken_bundle, edit, message):
    from sertiny.runtime import Classifier

    path = broken_bundle(edit)
    with pytest.raises(ArtifactError, match=message) as info:
        Classifier.from_path(path)
    assert str(path) in str(info.value)


def test_label_set_not_matching_the_model_output(broken_bundle):
    """A manifest that agrees with itself but not with the .tflite file it ships."""
    from sertiny.runtime import Classifier

    def edit(manifest):
        manifest["labels"] = manifest["labels"][:6]
        manifest["model"]["n_classes"] = 6
    with pytest.raises(ArtifactError, match=r"model_int8.tflite: the model outputs 8 classes .* 6 labels"):
        Classifier.from_path(broken_bundle(edit))


@pytest.mark.parametrize("keep_size_record", [True, False])
def test_truncated_tflite_names_the_file(broken_bundle, keep_size_record):
    from sertiny.runtime import Classifier

    def edit(manifest):
        if not keep_size_record:
            manifest["variants"]["int8"].pop("bytes")
            manifest["variants"]["int8"].pop("sha256")
    path = broken_bundle(edit)
    model = path / "model_int8.tflite"
    model.write_bytes(model.read_bytes()[: model.stat().st_size // 2])
    match = "truncated" if keep_size_record else "not a valid TFLite model"
    with pytest.raises(ArtifactError, match=match) as info:
        Classifier.from_path(path)
    assert "model_int8.tflite" in str(info.value)


def test_variant_names_are_read_and_checked(broken_bundle):
    from sertiny.runtime import Bundle

    def rename(manifest):
        manifest["variants"]["f32_chunk1"] = manifest["variants"].pop("f32")
    with pytest.raises(ArtifactError, match="variant 'f32_chunk1' says profile 'full'; its name says chunked"):
        Bundle.load(broken_bundle(rename))

    def unknown(manifest):
        manifest["variants"]["custom"] = manifest["variants"].pop("f32")
    with pytest.raises(ArtifactError, match="'custom' is not a variant name"):
        Bundle.load(broken_bundle(unknown, name="unknown"))


def test_not_a_bundle_and_unknown_variant(tmp_path, bundle_dir):
    from sertiny.runtime import Bundle

    with pytest.raises(ArtifactError, match="not a sertiny bundle.*sertiny export"):
        Bundle.load(tmp_path)
    with pytest.raises(ArtifactError, match="no variant 'int4'; this bundle has f32, int8"):
        Bundle.load(bundle_dir).variant("int4")
    result = _cli("infer", tmp_path, tmp_path / "x.wav")
    assert result.exit_code == 2 and "not a sertiny bundle" in result.output


# --- the live path ----------------------------------------------------------------------


def _feed(stream, y, rate, block=1024):
    """Push ``y`` through the sounddevice callback in (frames, 1) blocks, as PortAudio would."""
    updates = []
    for start in range(0, len(y), block):
        chunk = y[start : start + block, None]
        stream.callback(chunk, len(chunk), None, None)
        updates += stream.poll()
    return updates


def test_listen_callback_path_matches_infer(classifier):
    from sertiny.runtime.stream import StreamClassifier

    stream = StreamClassifier(classifier, hop_seconds=0.5, smoothing=0.0)
    y = _voice(4, seed=1)
    updates = _feed(stream, y, SR)
    assert len(updates) == 8  # one window per 0.5 s of audio
    assert [round(u.time, 2) for u in updates] == [0.5 * (i + 1) for i in range(8)]
    last = updates[-1]
    # Without smoothing the last update is infer's answer for the last window of audio.
    expected = classifier.classify(y[-stream.window_samples :])
    np.testing.assert_array_equal(last.smoothed, expected.probabilities)
    assert last.label == expected.label


def test_listen_smooths_resamples_and_shows_silence(classifier):
    import soxr

    from sertiny.runtime.stream import StreamClassifier, format_update

    y48 = soxr.resample(_voice(3, seed=2), SR, 48000).astype(np.float32)
    stream = StreamClassifier(classifier, input_rate=48000, hop_seconds=1.0, smoothing=0.6)
    updates = _feed(stream, np.concatenate([y48, np.zeros(48000 * 5, np.float32)]), 48000, block=4800)
    assert len(updates) == 7 or len(updates) == 8  # the resampler holds back a few samples
    assert all(u.label for u in updates[:3])
    assert updates[-1].label is None and "silence" in format_update(updates[-1])
    # Silence does not move the average of the speech windows.
    np.testing.assert_array_equal(updates[-1].smoothed, updates[-2].smoothed)
    assert updates[0].label in format_update(updates[0])


def test_listen_takes_the_bundle_as_argument_or_option_not_both(bundle_dir, tmp_path):
    result = _cli("listen", bundle_dir, "--bundle", tmp_path)
    assert result.exit_code == 2 and "Two bundles given" in result.output
    assert "--bundle" in _cli("listen", "--help").output


def test_listen_without_portaudio_is_a_clear_error(bundle_dir, monkeypatch):
    from sertiny.runtime.stream import import_sounddevice

    monkeypatch.setitem(sys.modules, "sounddevice", None)  # import raises ImportError
    with pytest.raises(MissingDependencyError, match="pip install sounddevice"):
        import_sounddevice()
    result = _cli("listen", bundle_dir)
    assert result.exit_code == 2 and "sounddevice" in result.output


def test_listen_loop_updates_one_line_and_stops_cleanly_on_ctrl_c(classifier, monkeypatch):
    """The real listen() loop with a stand-in sounddevice whose stream plays a clip."""
    import io
    import types

    from sertiny.runtime import stream as stream_module

    y = _voice(3, seed=1)

    class FakeInputStream:
        def __init__(self, *, callback, samplerate, blocksize, **kwargs):
            self.callback, self.blocksize = callback, blocksize
            assert samplerate == SR and kwargs["channels"] == 1

        def __enter__(self):
            for start in range(0, len(y), self.blocksize):
                block = y[start : start + self.blocksize, None]
                self.callback(block, len(block), None, None)
            return self

        def __exit__(self, *exc):
            self.closed = True
            return False

    class CtrlCAfter(io.StringIO):
        """stdout that raises KeyboardInterrupt at the 4th status line, like Ctrl-C would."""

        def write(self, text):
            if text.startswith("\r") and self.getvalue().count("\r") == 3:
                raise KeyboardInterrupt
            return super().write(text)

    fake = types.SimpleNamespace(InputStream=FakeInputStream, PortAudioError=OSError)
    monkeypatch.setattr(stream_module, "import_sounddevice", lambda: fake)
    out = CtrlCAfter()
    count = stream_module.listen(classifier, hop_seconds=0.5, out=out)
    text = out.getvalue()
    assert count == 3 and text.count("\r") == 3 and text.endswith("\n")
    assert "\n" not in text.split("Ctrl-C to stop)\n", 1)[1].rstrip("\n")  # one updating line
    assert any(label in text for label in classifier.labels)


def test_reference_kernels_option(bundle_dir):
    """--kernels reference (for cross-device checks) runs the same model to within int8 rounding."""
    from sertiny.errors import ParameterError
    from sertiny.runtime import Classifier
    from sertiny.runtime.tflite import load_interpreter

    y = _voice(2, seed=3)
    optimized = Classifier.from_path(bundle_dir).classify(y).probabilities
    reference = Classifier.from_path(bundle_dir, kernels="reference").classify(y).probabilities
    np.testing.assert_allclose(reference, optimized, atol=3 / 256)
    with pytest.raises(ParameterError, match="'kernels' parameter"):
        load_interpreter(bundle_dir / "model_int8.tflite", kernels="fast")


def test_listen_at_a_rate_below_the_front_ends_band_warns_first(classifier, monkeypatch):
    import io
    import types

    from sertiny.runtime import stream as stream_module

    class NoAudio:
        def __init__(self, **kwargs):
            pass

        def __enter__(self):
            raise KeyboardInterrupt

        def __exit__(self, *exc):
            return False

    monkeypatch.setattr(stream_module, "import_sounddevice",
                        lambda: types.SimpleNamespace(InputStream=NoAudio, PortAudioError=OSError))
    out = io.StringIO()
    stream_module.listen(classifier, input_rate=8000, out=out)
    assert out.getvalue().startswith("warning: recorded at 8000 Hz")
    quiet = io.StringIO()
    stream_module.listen(classifier, out=quiet)
    assert "warning" not in quiet.getvalue()
