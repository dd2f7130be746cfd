"""Bad input and faults: each gets a clear ``Error:`` (or a warning), never a confident wrong
answer, a traceback or a half-written output (issue 15; the table is results/reliability.md).

The device cases use the bundle shipped in the package, so they need no TensorFlow.
"""

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from click.testing import CliRunner

from bundle_helpers import edited_copy, set_field
from sertiny.errors import ArtifactError, AudioError
from sertiny.runtime.bundle import DEFAULT_BUNDLE, Bundle, write_manifest

SR = 16000


def _voice(seconds, sr=SR, *, seed=0, level=0.3):
    """Voiced-like audio: a tone with vibrato, pauses and a little noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    f0 = 140 + 15 * np.sin(2 * np.pi * 3 * t)
    voiced = level * np.sin(2 * np.pi * np.cumsum(f0) / sr) * (np.sin(2 * np.pi * 0.3 * t) > -0.5)
    return (voiced + 0.01 * rng.standard_normal(t.size)).astype(np.float32)


def _cli(*args):
    from sertiny.cli import main

    return CliRunner().invoke(main, [str(a) for a in args])


def _sertiny(*args, **kwargs):
    """The real CLI in a fresh process (exit status, stdout, stderr as the user sees them)."""
    code = "import sys; from sertiny.cli import main; sys.argv[0] = 'sertiny'; main()"
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True,
                          timeout=kwargs.pop("timeout", 300), **kwargs)


def _assert_clean_error(proc, *needles):
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    error = [line for line in proc.stderr.splitlines() if line.startswith("Error:")]
    assert error, proc.stderr
    for needle in needles:
        assert needle in proc.stderr, (needle, proc.stderr)


@pytest.fixture
def clip(write_audio):
    return write_audio("clip.wav", _voice(3), sr=SR, subtype="PCM_16")


@pytest.fixture
def bundle_copy(tmp_path):
    """Factory: a copy of the built-in bundle with its manifest edited, sealed again or not."""

    def make(edit, *, seal=True):
        return edited_copy(DEFAULT_BUNDLE, tmp_path / "bundle", edit, seal=seal)

    return make


# --- audio that would give a confident wrong answer ---------------------------------------


def test_truncated_wav_is_unreadable_everywhere(write_audio, tmp_path):
    from sertiny.data import audio_info, load_audio, load_dataset
    from sertiny.data.summary import summarize

    good = write_audio("corpus/happy/s1_a.wav", _voice(2), subtype="PCM_16")
    cut = write_audio("corpus/happy/s1_b.wav", _voice(2), subtype="PCM_16")
    cut.write_bytes(cut.read_bytes()[: cut.stat().st_size // 2])
    write_audio("corpus/sad/s1_c.wav", _voice(2, seed=1), subtype="PCM_16")
    for read in (audio_info, lambda p: load_audio(p, SR)):
        with pytest.raises(AudioError, match="truncated: its data chunk declares 64000 bytes"):
            read(cut)
    assert audio_info(good).frames == 2 * SR
    summary = summarize(load_dataset(tmp_path / "corpus", "folder"), progress=False)
    assert summary.n_clips == 2 and [p for p, _ in summary.problems] == [str(cut)]
    # Headers only: still found (the check reads the RIFF chunk sizes, not the samples).
    summary = summarize(load_dataset(tmp_path / "corpus", "folder"), check_audio=False, progress=False)
    assert [p for p, _ in summary.problems] == [str(cut)]
    result = _cli("infer", cut, "--json")
    assert result.exit_code == 1 and "truncated" in json.loads(result.stdout.splitlines()[0])["error"]


@pytest.mark.parametrize("fmt, subtype", [("OGG", "VORBIS"), ("FLAC", "PCM_16")])
def test_truncated_compressed_audio_is_a_clear_error(tmp_path, fmt, subtype):
    import soundfile as sf

    from sertiny.data import load_audio

    path = tmp_path / f"clip.{fmt.lower()}"
    sf.write(path, _voice(2), SR, format=fmt, subtype=subtype)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    try:
        y = load_audio(path, SR)
    except AudioError as exc:
        assert "truncated" in str(exc) or "corrupt" in str(exc)
    else:  # a decoder that stops at the cut must at least not invent the missing half
        assert len(y) < 2 * SR


def test_float_wav_far_outside_full_scale_is_refused(write_audio):
    from sertiny.data import load_audio

    loud = write_audio("unscaled.wav", _voice(2) * 32768, subtype="FLOAT")
    with pytest.raises(AudioError, match=r"samples up to \d{4,}.*far outside the \[-1, 1\].*32768"):
        load_audio(loud, SR)
    result = _cli("infer", loud, "--json")
    assert result.exit_code == 1 and "label" not in result.stdout
    # A float file a little over full scale (a hot mix) is audio, and is read as it is.
    hot = write_audio("hot.wav", _voice(2) * 4, subtype="FLOAT")
    assert np.abs(load_audio(hot, SR)).max() > 1


def test_audio_far_below_the_front_ends_rate_gets_a_warning(write_audio, clip):
    narrow = write_audio("phone.wav", _voice(3, sr=8000), sr=8000, subtype="PCM_16")
    result = _cli("infer", narrow, "--json")
    assert result.exit_code == 0
    row = json.loads(result.stdout.splitlines()[0])
    assert row["label"] and "nothing above 4 kHz" in row["notes"][0] and "up to 8 kHz" in row["notes"][0]
    assert "Warning:" in result.stderr and "phone.wav" in result.stderr
    plain = json.loads(_cli("infer", clip, "--json").stdout.splitlines()[0])
    assert "notes" not in plain
    # 44.1 kHz into the 48 kHz paper front end misses only 22.05-24 kHz: no warning.
    from sertiny.features import get_preset
    from sertiny.runtime.classifier import bandwidth_notes

    assert bandwidth_notes(44100, get_preset("paper")) == ()
    assert bandwidth_notes(8000, get_preset("logmel16k"))  # up to 7.6 kHz analysed


def test_a_runtime_built_for_numpy_1_is_a_clear_error(monkeypatch):
    """What a Pi's tflite-runtime 2.14 did beside numpy 2: a SystemError from inside the
    runtime, with no word of what to do."""
    from sertiny.errors import MissingDependencyError
    from sertiny.runtime import tflite

    class Interpreter:
        __module__ = "tflite_runtime.interpreter"

        def __init__(self, **kwargs):
            raise SystemError("<built-in method CreateWrapperFromBuffer> returned a result with an exception set")

    monkeypatch.setattr(tflite, "interpreter_class", lambda prefer=None: (Interpreter, "tflite_runtime"))
    monkeypatch.setattr(tflite.np, "__version__", "2.4.6")
    with pytest.raises(MissingDependencyError, match=r'cannot run with numpy 2.4.6.*pip install "numpy<2"'):
        tflite.load_interpreter(b"model")


# --- a first argument meant as a bundle -------------------------------------------------------


@pytest.mark.parametrize(("first", "message"), [
    ("bundles/typo", "no such bundle"),
    ("model", "no such bundle"),
    (DEFAULT_BUNDLE / "model_int8_chunk1.tflite", "belongs to the bundle"),
    ("empty_folder", "not a sertiny bundle"),
])
def test_infer_never_falls_back_to_the_builtin_model(first, message, clip, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "empty_folder").mkdir()
    result = _cli("infer", first, clip)
    assert result.exit_code == 2, result.output
    assert message in result.output and "Error:" in result.output
    assert "angry" not in result.output and "neutral" not in result.output  # no label at all


def test_infer_folder_without_audio_is_reported(clip, tmp_path):
    (tmp_path / "no_audio").mkdir()
    (tmp_path / "no_audio" / "notes.txt").write_text("x")
    result = _cli("infer", clip, tmp_path / "no_audio")
    assert result.exit_code == 1 and "holds no audio files" in result.output
    assert str(clip) in result.output  # the clip itself was classified


# --- bundle manifests ---------------------------------------------------------------------------


@pytest.mark.parametrize("edit", [
    set_field(["feature_config", "hop_length"], 320),
    set_field(["feature_config", "sample_rate"], 8000),
    set_field(["feature_config", "n_mels"], 64),
    set_field(["norm", "mean", 0], 0.0),
    set_field(["labels", 0], "calm"),
], ids=["hop", "rate", "mel bands", "normalisation", "labels"])
def test_a_manifest_edited_after_export_is_refused(bundle_copy, edit):
    path = bundle_copy(edit, seal=False)
    with pytest.raises(ArtifactError, match="edited after export") as info:
        Bundle.load(path)
    assert str(path / "sertiny.json") in str(info.value)


@pytest.mark.parametrize("file", ["../model_int8_chunk1.tflite", "/tmp/model.tflite", "sub/../../x.tflite"])
def test_manifest_files_must_lie_inside_the_bundle(bundle_copy, file, tmp_path):
    shutil.copy(DEFAULT_BUNDLE / "model_int8_chunk1.tflite", tmp_path / "model_int8_chunk1.tflite")
    path = bundle_copy(set_field(["variants", "int8_chunk1", "file"], file))
    with pytest.raises(ArtifactError, match="not inside the bundle directory"):
        Bundle.load(path)


def test_manifest_file_linked_out_of_the_bundle_is_refused(bundle_copy, tmp_path):
    path = bundle_copy(set_field(["variants", "int8_chunk1", "file"], "linked.tflite"))
    (path / "linked.tflite").symlink_to(tmp_path / "elsewhere.tflite")
    with pytest.raises(ArtifactError, match="not inside the bundle directory"):
        Bundle.load(path)


def test_the_builtin_bundle_is_sealed_and_loads():
    manifest = json.loads((DEFAULT_BUNDLE / "sertiny.json").read_text())
    assert manifest["format_version"] == 2 and len(manifest["manifest_sha256"]) == 64
    assert set(Bundle.load(None).variants) == {"f32_chunk1", "int8_chunk1", "int16x8_chunk1"}


def test_profile_less_variant_names(bundle_copy, clip):
    bundle = Bundle.load(None)
    assert bundle.variant("f32").name == "f32_chunk1" and bundle.variant("int8").name == "int8_chunk1"
    assert bundle.variant("int16x8").name == "int16x8_chunk1"
    result = _cli("infer", clip, "--variant", "f32", "--json")
    assert result.exit_code == 0 and json.loads(result.stdout)["variant"] == "f32_chunk1"

    def two_chunked(manifest):
        manifest["variants"]["f32_chunk4"] = dict(manifest["variants"]["f32_chunk1"], chunk=4)
    ambiguous = Bundle.load(bundle_copy(two_chunked))
    with pytest.raises(ArtifactError, match=r"no variant 'f32'; this bundle has f32_chunk1, int8_chunk1, "
                                            r"int16x8_chunk1, f32_chunk4 \(name one of them\)"):
        ambiguous.variant("f32")


def test_non_utf8_manifest_is_an_error_naming_it(tmp_path, clip):
    bundle = tmp_path / "bundle"
    shutil.copytree(DEFAULT_BUNDLE, bundle)
    (bundle / "sertiny.json").write_bytes(b'{"format": "sertiny-bundle\xff\xfe"}')
    proc = _sertiny("infer", bundle, clip)
    _assert_clean_error(proc, str(bundle / "sertiny.json"), "not UTF-8")


# --- long files ---------------------------------------------------------------------------------


def test_long_file_scored_in_blocks_equals_the_whole_file(write_audio):
    from sertiny.data import load_audio
    from sertiny.runtime import Classifier
    from sertiny.runtime.classifier import BLOCK_DECODE_SECONDS

    path = write_audio("long.flac", _voice(BLOCK_DECODE_SECONDS + 15, sr=48000), sr=48000)
    clf = Classifier.from_path(None)
    blocks = clf.classify_file(path)  # longer than BLOCK_DECODE_SECONDS: decoded in blocks
    whole = clf.classify(load_audio(path, SR))
    assert blocks.windows == whole.windows > 20
    np.testing.assert_array_equal(blocks.probabilities, whole.probabilities)
    assert blocks.level_db == whole.level_db and blocks.duration == whole.duration


@pytest.mark.slow
def test_infer_memory_stays_flat_with_duration(tmp_path):
    import soundfile as sf

    def peak_rss_mb(minutes):
        path = tmp_path / f"{minutes}min.wav"
        with sf.SoundFile(path, "w", SR, 1, subtype="PCM_16") as f:
            for second in range(int(minutes * 60)):
                f.write(_voice(1, seed=second))
        code = ("import resource, sys; from sertiny.cli import main\n"
                "try:\n    main()\nexcept SystemExit as e:\n    assert e.code in (0, None), e.code\n"
                "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, file=sys.stderr)")
        proc = subprocess.run([sys.executable, "-c", code, "infer", str(path), "--json"], capture_output=True,
                              text=True, timeout=900)
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert json.loads(proc.stdout)["duration_s"] == minutes * 60
        return float(proc.stderr.strip().splitlines()[-1])

    short, long = peak_rss_mb(2), peak_rss_mb(12)
    # Whole-file decoding grew by ~33 MB per minute (330 MB here); in blocks it stays put.
    assert long - short < 25, (short, long)


# --- bench ------------------------------------------------------------------------------------


def test_bench_skips_and_lists_unreadable_clips(tmp_path, write_audio):
    write_audio("clips/a.wav", _voice(2), subtype="PCM_16")
    (tmp_path / "clips" / "b.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEbroken")
    write_audio("clips/c.wav", _voice(2, seed=1), subtype="PCM_16")
    result = _cli("bench", "--clips", tmp_path / "clips", "--runs", 2, "--warmup", 0, "--threads", 1,
                  "--no-peers", "--no-cold-start", "--no-tflm", "--out", tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert "Skipped (not timed):" in result.stderr and "b.wav" in result.stderr
    clips = json.loads((tmp_path / "out" / "bench.json").read_text())["clips"]
    assert clips["files"] == ["a.wav", "c.wav"] and clips["skipped"][0]["file"].endswith("b.wav")


# --- training faults ------------------------------------------------------------------------------

TINY = dict(model="lstm_sa_h8", epochs=1, batch_size=16, folds="kfold", n_folds=2, n_val_speakers=1, seq_len=40)


def test_resuming_a_run_on_other_data_is_refused(small_table, tmp_path):
    pytest.importorskip("jax", reason="training needs the [train] extra")
    from sertiny.training import TrainConfig
    from sertiny.training.protocol import prepare_run

    config = TrainConfig(**TINY)
    first = small_table.subset(small_table.speakers != "06")
    prepare_run(first, config, tmp_path / "run")
    prepare_run(first, config, tmp_path / "run")  # the same data resumes
    other = small_table.subset(small_table.speakers != "05")  # same size, labels and count of speakers
    with pytest.raises(ArtifactError, match="holds a run on other data"):
        prepare_run(other, config, tmp_path / "run")
    relabelled = first.subset(np.arange(len(first)))
    relabelled.labels = np.roll(relabelled.labels, 1)
    with pytest.raises(ArtifactError, match="other labels"):
        prepare_run(relabelled, config, tmp_path / "run")
    # A run from before the fingerprint: its clip count and speakers still tell.
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    del info["data_fingerprint"]
    (tmp_path / "run" / "run.json").write_text(json.dumps(info))
    with pytest.raises(ArtifactError, match="holds a run on other data"):
        prepare_run(small_table, config, tmp_path / "run")


def test_a_second_train_on_one_out_is_refused_while_the_first_runs(small_table, tmp_path):
    pytest.importorskip("jax", reason="training needs the [train] extra")
    from sertiny._io import directory_lock
    from sertiny.training import TrainConfig, train

    out = tmp_path / "run"
    with directory_lock(out, "'sertiny train'"):  # what a first 'sertiny train' holds while it runs
        with pytest.raises(ArtifactError, match=rf"{out} is in use by another 'sertiny train' \(process {os.getpid()}\)"):
            train(small_table, TrainConfig(**TINY), out, progress=False)
    assert not (out / "run.json").exists()
    train(small_table, TrainConfig(**TINY), out, progress=False)  # released: it runs
    assert (out / "metrics.json").is_file()


def test_a_refused_train_leaves_no_run_directory(small_table, tmp_path):
    pytest.importorskip("jax", reason="training needs the [train] extra")
    from sertiny.errors import ParameterError
    from sertiny.training import TrainConfig, train

    with pytest.raises(ParameterError):
        train(small_table.subset([]), TrainConfig(**TINY), tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_killing_train_jobs_2_ends_its_workers(small_npz, tmp_path):
    psutil = pytest.importorskip("psutil")
    pytest.importorskip("jax", reason="training needs the [train] extra")
    proc = subprocess.Popen([sys.executable, "-c", "from sertiny.cli import main; main()", "train", "--features",
                             str(small_npz), "--model", "lstm_sa_h8", "--epochs", "200", "--folds", "kfold",
                             "--n-folds", "3", "--jobs", "2", "--quiet", "--out", str(tmp_path / "run")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    parent = psutil.Process(proc.pid)
    deadline = time.time() + 180
    workers = []
    while len(workers) < 2 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.5)
        # The spawn pool's workers (the resource tracker is a child too, and ends by itself).
        workers = [p for p in parent.children() if "spawn_main" in " ".join(p.cmdline())]
    assert len(workers) == 2, "the pool never started"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    gone, alive = psutil.wait_procs(workers, timeout=20)
    for p in alive:
        p.kill()
    assert not alive, f"workers outlived their killed parent: {alive}"


def _csv_corpus(tmp_path, write_audio):
    lines = ["path,label,speaker"]
    for speaker in ("s1", "s2", "s3"):
        for label, seed in (("calm", 0), ("angry", 7)):
            for take in range(2):
                path = write_audio(f"corpus/{speaker}_{label}_{take}.wav", _voice(1.5, seed=seed + take),
                                   subtype="PCM_16")
                lines.append(f"{path.name},{label},{speaker}")
    manifest = tmp_path / "corpus" / "manifest.csv"
    manifest.write_text("\n".join(lines) + "\n")
    return manifest


def test_train_accepts_a_csv_manifest_path(tmp_path, write_audio, monkeypatch):
    pytest.importorskip("jax", reason="training needs the [train] extra")
    monkeypatch.setenv("SERTINY_CACHE", str(tmp_path / "cache"))
    manifest = _csv_corpus(tmp_path, write_audio)
    result = _cli("train", manifest, "--out", tmp_path / "run", "--model", "lstm_sa_h8", "--epochs", 1,
                  "--folds", "kfold", "--n-folds", 3, "--val-speakers", 1, "--quiet")
    assert result.exit_code == 0, result.output
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert info["n_clips"] == 12 and info["label_names"] == ["angry", "calm"]


# --- output the file system refuses --------------------------------------------------------------


@contextlib.contextmanager
def _tmpfs(path, options):
    """A tmpfs mounted at ``path`` (root only); skips when this machine does not allow it."""
    path.mkdir()
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("mounting a test file system needs root")
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True, text=True)
    if proc.returncode:
        pytest.skip(f"cannot mount a tmpfs here ({proc.stderr.strip()})")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


@pytest.fixture
def read_only_dir(tmp_path):
    if os.geteuid() != 0:  # permissions stop anyone but root
        path = tmp_path / "read_only"
        path.mkdir(mode=0o555)
        yield path
        path.chmod(0o755)
        return
    with _tmpfs(tmp_path / "read_only", "ro,size=1m") as path:
        yield path


@pytest.fixture
def full_dir(tmp_path):
    with _tmpfs(tmp_path / "full", "size=96k") as path:
        yield path


def test_train_out_in_proc_is_an_error_naming_the_path(small_npz):
    pytest.importorskip("jax", reason="training needs the [train] extra")
    proc = _sertiny("train", "--features", small_npz, "--out", "/proc/x", "--quiet", "--epochs", 1)
    _assert_clean_error(proc, "/proc/x")


def test_read_only_output_directory_is_an_error_naming_the_path(read_only_dir, small_npz, clip):
    pytest.importorskip("jax", reason="training needs the [train] extra")
    proc = _sertiny("train", "--features", small_npz, "--out", read_only_dir / "run", "--quiet", "--epochs", 1)
    _assert_clean_error(proc, str(read_only_dir / "run"))
    proc = _sertiny("bench", "--runs", 1, "--warmup", 0, "--threads", 1, "--no-peers", "--no-cold-start",
                    "--no-tflm", "--out", read_only_dir / "bench")
    _assert_clean_error(proc, str(read_only_dir / "bench"))
    assert not list(read_only_dir.iterdir())


def test_full_disk_is_an_error_naming_the_file_and_leaves_nothing_half_written(full_dir, small_npz):
    pytest.importorskip("jax", reason="training needs the [train] extra")
    out = full_dir / "run"
    proc = _sertiny("train", "--features", small_npz, "--model", "res_lstm_sa_h64", "--folds", "kfold",
                    "--n-folds", 3, "--epochs", 1, "--quiet", "--out", out)
    _assert_clean_error(proc, str(out), "disk is full")
    error = next(line for line in proc.stderr.splitlines() if line.startswith("Error:"))
    assert ".tmp" not in error, error  # the file's own name, not the temporary one it was written as
    assert not list(full_dir.rglob("*.tmp*")) and not list(full_dir.rglob("fold_*"))
