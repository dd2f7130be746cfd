"""Tests for sertiny.data: audio reading, corpus loaders, the summary report and its CLI."""

import json
import math
import os
import struct
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner
from conftest import tone

from sertiny.data import (
    EMODB_LABELS,
    RAVDESS_LABELS,
    audio_info,
    folds_for,
    format_summary,
    load_audio,
    load_dataset,
    parse_emodb_name,
    parse_ravdess_name,
    summarize,
)
from sertiny.errors import AudioError, ParameterError

# ------------------------------------------------------------------------------ load_audio


def test_48k_stereo_int16_is_averaged_and_resampled(write_audio):
    left, right = tone(1.0, 48000, channels=2).T
    path = write_audio("stereo.wav", np.stack([left, np.zeros_like(right)], axis=1), sr=48000, subtype="PCM_16")

    native = load_audio(path, 48000)
    at_16k = load_audio(path, 16000)

    assert native.dtype == np.float32 and native.ndim == 1
    np.testing.assert_allclose(native, left / 2, atol=1 / 32768)  # mean of the two channels
    assert at_16k.shape == (16000,)
    assert at_16k.dtype == np.float32


def test_mono_false_keeps_channels_first(write_audio):
    path = write_audio("five.wav", tone(0.5, 16000, channels=5))
    assert load_audio(path, 16000, mono=False).shape == (5, 8000)
    assert load_audio(path, 8000, mono=False).shape == (5, 4000)


def test_8k_mono_is_upsampled(write_audio):
    path = write_audio("low.wav", tone(0.5, 8000), sr=8000)
    y = load_audio(path, 16000)
    assert y.shape == (8000,)
    # A 440 Hz tone survives resampling: same RMS (0.5 / sqrt 2) away from the edges.
    assert math.isclose(np.sqrt(np.mean(y[1000:-1000] ** 2)), 0.5 / math.sqrt(2), rel_tol=0.01)


def test_44k1_float32_wav_is_read_exactly(write_audio):
    data = tone(0.5, 44100)
    path = write_audio("float.wav", data, sr=44100, subtype="FLOAT")
    np.testing.assert_array_equal(load_audio(path, 44100), data[:, 0])
    assert load_audio(path, 16000).shape == (math.ceil(len(data) * 16000 / 44100),)


def test_24bit_flac(write_audio):
    data = tone(0.5, 16000)
    path = write_audio("deep.flac", data, subtype="PCM_24")
    assert audio_info(path).subtype == "PCM_24"
    np.testing.assert_allclose(load_audio(path, 16000), data[:, 0], atol=2.0**-22)


@pytest.mark.skipif("OGG" not in sf.available_formats(), reason="this libsndfile build has no OGG support")
def test_ogg_vorbis(write_audio):
    path = write_audio("lossy.ogg", tone(0.5, 16000), subtype="VORBIS")
    y = load_audio(path, 16000)
    assert abs(len(y) - 8000) <= 64  # Vorbis may pad the last block
    assert np.isfinite(y).all()


def _wav_with_chunk_before_data(pcm_wav_bytes, chunk_id=b"FLLR", size=4044):
    """Insert a filler chunk between 'fmt ' and 'data', as the RAVDESS originals have."""
    data_at = pcm_wav_bytes.index(b"data")
    chunk = chunk_id + struct.pack("<I", size) + bytes(size)
    out = pcm_wav_bytes[:data_at] + chunk + pcm_wav_bytes[data_at:]
    return out[:4] + struct.pack("<I", len(out) - 8) + out[8:]  # fix the RIFF size


def test_wav_with_extra_riff_chunk(write_audio, tmp_path):
    plain = write_audio("plain.wav", tone(0.5, 16000), subtype="PCM_16")
    fancy = tmp_path / "fllr.wav"
    fancy.write_bytes(_wav_with_chunk_before_data(plain.read_bytes()))

    assert b"FLLR" in fancy.read_bytes()[:64]
    np.testing.assert_array_equal(load_audio(fancy, 16000), load_audio(plain, 16000))


def test_real_ravdess_wav_with_fllr_chunk(shared_data):
    path = shared_data / "ravdess48k_sample" / "Actor_01" / "03-01-02-01-01-02-01.wav"
    assert b"FLLR" in path.read_bytes()[:64]
    info = audio_info(path)
    assert (info.samplerate, info.channels, info.subtype) == (48000, 2, "PCM_16")
    y = load_audio(path, 16000)
    assert y.shape == (math.ceil(info.frames / 3),)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # audioread's stdlib imports, not ours
def test_matches_librosa_load_bit_for_bit(shared_data):
    librosa = pytest.importorskip("librosa", reason="librosa (the reference front end) is not installed")
    path = shared_data / "ravdess48k_sample" / "Actor_01" / "03-01-02-01-01-02-01.wav"  # stereo
    reference, _ = librosa.load(path, sr=16000)
    np.testing.assert_array_equal(load_audio(path, 16000), reference)


def test_digital_silence_is_not_an_error(write_audio):
    path = write_audio("silence.wav", np.zeros((8000, 1), np.float32))
    assert not load_audio(path, 16000).any()


def _write_bytes(tmp_path, name, data):
    path = tmp_path / name
    path.write_bytes(data)
    return path


BAD_FILES = {
    "zero_bytes": (lambda tmp, w: _write_bytes(tmp, "empty.wav", b""), "empty file"),
    "truncated_header": (
        lambda tmp, w: _write_bytes(tmp, "cut.wav", w("full.wav").read_bytes()[:30]),
        "cannot be read",
    ),
    "random_bytes": (
        lambda tmp, w: _write_bytes(tmp, "noise.wav", np.random.default_rng(0).bytes(4000)),
        "cannot be read",
    ),
    "text_file": (lambda tmp, w: _write_bytes(tmp, "notes.flac", b"not audio at all\n" * 50), "cannot be read"),
    "zero_frames": (lambda tmp, w: w("none.wav", np.zeros((0, 1), np.float32)), "no audio samples"),
    "too_short": (lambda tmp, w: w("blip.wav", tone(0.1, 16000)), "shorter than the minimum"),
    "nan_samples": (
        lambda tmp, w: w("nan.wav", np.where(np.arange(8000)[:, None] == 100, np.nan, tone()), subtype="FLOAT"),
        "NaN or infinite",
    ),
    "inf_samples": (
        lambda tmp, w: w("inf.wav", np.where(np.arange(8000)[:, None] == 5, np.inf, tone()), subtype="FLOAT"),
        "NaN or infinite",
    ),
    "missing": (lambda tmp, w: tmp / "absent.wav", "file not found"),
    "directory": (lambda tmp, w: tmp, "is a directory"),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_files_raise_audio_error_with_path_and_reason(case, tmp_path, write_audio):
    make, reason = BAD_FILES[case]
    path = make(tmp_path, write_audio)
    with pytest.raises(AudioError) as info:
        load_audio(path, 16000)
    assert info.value.path == str(path)
    assert reason in info.value.reason
    assert str(path) in str(info.value)


def test_audio_info_rejects_non_audio(tmp_path):
    path = _write_bytes(tmp_path, "x.wav", b"RIFF nonsense")
    with pytest.raises(AudioError, match="cannot be read"):
        audio_info(path)


@pytest.mark.parametrize("kwargs", [{"target_sr": 0}, {"target_sr": 16000.5}, {"target_sr": 16000, "min_duration": -1}])
def test_load_audio_parameters_are_checked_before_reading(tmp_path, kwargs):
    target_sr = kwargs.pop("target_sr")
    with pytest.raises(ParameterError, match="parameter of load_audio"):
        load_audio(tmp_path / "never-read.wav", target_sr, **kwargs)


def test_light_import():
    code = (
        "import sys, sertiny.data, sertiny.data.audio\n"
        "heavy = {'librosa', 'scipy', 'tensorflow', 'keras', 'jax', 'torch', 'optuna', 'sklearn', 'numba', 'tqdm'}\n"
        "print(sorted(heavy & {m.split('.')[0] for m in sys.modules}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# ------------------------------------------------------------------------------ RAVDESS


def test_parse_ravdess_name():
    parsed = parse_ravdess_name("03-01-05-02-01-02-12")
    assert parsed["label"] == "angry"
    assert parsed["speaker"] == "12"
    assert parsed["attributes"] == {
        "modality": "audio-only",
        "vocal_channel": "speech",
        "intensity": "strong",
        "statement": 1,
        "repetition": 2,
        "actor": 12,
        "sex": "female",
    }
    assert parse_ravdess_name("03-01-08-01-02-01-01")["label"] == "surprised"
    assert parse_ravdess_name("03-01-01-01-01-01-23")["attributes"]["sex"] == "male"


@pytest.mark.parametrize(
    "stem, reason",
    [
        ("03-01-09-01-01-01-01", "emotion code 09"),
        ("03-01-01-02-01-01-01", "does not exist for emotion 01"),
        ("03-01-05-01-01-01-25", "actor code 25"),
        ("03-03-05-01-01-01-01", "vocal channel code 03"),
        ("03-01-05-01-01-01", "not a RAVDESS name"),
        ("angry_01", "not a RAVDESS name"),
    ],
)
def test_parse_ravdess_name_rejects(stem, reason):
    with pytest.raises(ValueError, match=reason):
        parse_ravdess_name(stem)


def _short(write_audio, relpath):
    """A real but tiny (0.3 s, 8 kHz) clip: loaders only read names, the summary decodes."""
    return write_audio(relpath, tone(0.3, 8000), sr=8000)


def test_load_ravdess_actor_folders(tmp_path, write_audio):
    for name in ["Actor_02/03-01-05-01-01-01-02.wav", "Actor_01/03-01-01-01-01-01-01.wav",
                 "Actor_01/03-01-08-02-02-02-01.flac"]:
        _short(write_audio, name)
    _short(write_audio, "Actor_01/03-02-03-01-01-01-01.wav")  # song: skipped with a note
    _short(write_audio, "Actor_01/readme_take2.wav")  # not a RAVDESS name
    _short(write_audio, "Actor_01/03-01-04-01-01-01-07.wav")  # filed under the wrong actor
    _short(write_audio, "__MACOSX/Actor_01/._03-01-05-01-01-01-01.wav")  # macOS zip debris
    _short(write_audio, "Actor_02/03-01-05-01-01-01-02.flac")  # same clip twice

    ds = load_dataset(tmp_path)

    assert ds.name == "ravdess" and ds.label_names == RAVDESS_LABELS
    assert [(c.label, c.speaker) for c in ds.clips] == [("neutral", "01"), ("surprised", "01"), ("angry", "02")]
    assert ds.labels().tolist() == [0, 7, 4]
    problems = {os.path.basename(p): reason for p, reason in ds.problems}
    assert set(problems) == {"readme_take2.wav", "03-01-04-01-01-01-07.wav", "03-01-05-01-01-01-02.wav"}
    assert "not a RAVDESS name" in problems["readme_take2.wav"]
    assert "in folder Actor_01" in problems["03-01-04-01-01-01-07.wav"]
    assert "duplicate of" in problems["03-01-05-01-01-01-02.wav"]
    assert any("song" in note for note in ds.notes)
    assert any("hidden" in note for note in ds.notes)


def test_load_ravdess_flat_folder_orders_by_actor(tmp_path, write_audio):
    for name in ["03-01-05-01-01-01-02.flac", "03-01-01-01-01-01-01.flac", "03-01-06-01-01-01-01.flac"]:
        _short(write_audio, name)
    ds = load_dataset(tmp_path, kind="ravdess")
    assert [os.path.basename(c.path) for c in ds.clips] == [
        "03-01-01-01-01-01-01.flac", "03-01-06-01-01-01-01.flac", "03-01-05-01-01-01-02.flac",
    ]
    assert ds.speakers().tolist() == ["01", "01", "02"]


def test_ravdess_kind_on_other_corpus_says_what_to_do(tmp_path, write_audio):
    _short(write_audio, "angry/a.wav")
    with pytest.raises(ParameterError, match="could be loaded as RAVDESS.*'folder'"):
        load_dataset(tmp_path, kind="ravdess")


# ------------------------------------------------------------------------------ EMO-DB


def test_parse_emodb_name():
    assert parse_emodb_name("03a01Wa") == {
        "label": "anger", "speaker": "03", "attributes": {"text": "a01", "version": "a", "sex": "male"},
    }
    assert parse_emodb_name("16b10Tb")["label"] == "sadness"
    assert parse_emodb_name("16b10Tb")["attributes"]["sex"] == "female"


@pytest.mark.parametrize("layout", ["root", "root/wav"])
def test_load_emodb(tmp_path, write_audio, layout):
    names = ["03a01Wa", "16b10Tb", "08a02Fc", "11b03Nb", "09a05Ld", "13b09Ea", "10a07Aa"]
    for name in names:
        _short(write_audio, f"wav/{name}.wav")
    _short(write_audio, "wav/03x01Wa.wav")  # bad text code
    _short(write_audio, "wav/07a01Wa.wav")  # 07 is not an EMO-DB speaker
    (tmp_path / "lablaut").mkdir()  # EMO-DB ships label folders beside wav/

    ds = load_dataset(tmp_path if layout == "root" else tmp_path / "wav")

    assert ds.name == "emodb" and ds.label_names == EMODB_LABELS
    assert sorted(c.label for c in ds.clips) == sorted(EMODB_LABELS)
    first = ds.clips[0]
    assert (os.path.basename(first.path), first.speaker, first.attributes["sex"]) == ("03a01Wa.wav", "03", "male")
    problems = {os.path.basename(p): reason for p, reason in ds.problems}
    assert "not an EMO-DB name" in problems["03x01Wa.wav"]
    assert "speaker 07" in problems["07a01Wa.wav"]


# ------------------------------------------------------------------------------ folder and CSV


def test_folder_dataset_with_speaker_regex(tmp_path, write_audio):
    for label in ("happy", "angry"):
        for speaker in ("spk1", "spk2"):
            _short(write_audio, f"{label}/{speaker}_take1.wav")
    _short(write_audio, "stray.wav")
    _short(write_audio, "angry/unknown.wav")

    ds = load_dataset(tmp_path, speaker_regex=r"^(spk\d+)_")

    assert ds.name == "folder" and ds.label_names == ("angry", "happy")
    assert len(ds) == 4 and sorted(set(ds.speakers())) == ["spk1", "spk2"]
    problems = {os.path.basename(p): reason for p, reason in ds.problems}
    assert "label folder" in problems["stray.wav"]
    assert "does not match" in problems["unknown.wav"]


def test_folder_dataset_with_speaker_level(tmp_path, write_audio):
    _short(write_audio, "sad/alice/1.wav")
    _short(write_audio, "sad/bob/deep/2.flac")
    ds = load_dataset(tmp_path, kind="folder", speaker_level=1)
    assert ds.speakers().tolist() == ["alice", "bob"]


def test_folder_dataset_without_speakers_cannot_be_split_by_speaker(tmp_path, write_audio):
    _short(write_audio, "sad/1.wav")
    _short(write_audio, "calm/2.wav")
    ds = load_dataset(tmp_path)
    assert not ds.has_speakers
    with pytest.raises(ParameterError, match="speaker id for every clip.*speaker_regex"):
        folds_for(ds.name, ds.speakers())


def test_csv_manifest(tmp_path, write_audio):
    _short(write_audio, "audio/a.wav")
    _short(write_audio, "audio/b.flac")
    manifest = tmp_path / "manifest.csv"
    # A byte-order mark, an extra column and a row pointing at a missing file.
    manifest.write_text(
        "\ufeffpath,label,speaker,session\n"
        "audio/a.wav,happy,s1,x\n"
        "audio/b.flac,sad,s2,y\n"
        "audio/gone.wav,sad,s2,z\n",
        encoding="utf-8",
    )
    ds = load_dataset(tmp_path)  # a folder holding manifest.csv is auto-detected

    assert ds.name == "csv" and ds.label_names == ("happy", "sad")
    assert [(c.label, c.speaker, c.attributes) for c in ds.clips] == [
        ("happy", "s1", {"session": "x"}), ("sad", "s2", {"session": "y"}),
    ]
    assert ds.clips[0].path == str(tmp_path / "audio" / "a.wav")
    [(path, reason)] = ds.problems
    assert path.endswith("gone.wav") and "line 4" in reason and "does not exist" in reason


def test_csv_manifest_without_label_column(tmp_path):
    manifest = tmp_path / "clips.csv"
    manifest.write_text("file,emotion\na.wav,happy\n")
    with pytest.raises(ParameterError, match=r"lacks column\(s\) \['path', 'label'\]"):
        load_dataset(manifest)


def test_auto_detection_errors_say_what_to_pass(tmp_path, write_audio):
    with pytest.raises(ParameterError, match="does not exist"):
        load_dataset(tmp_path / "nope")
    with pytest.raises(ParameterError, match="No audio files"):
        load_dataset(tmp_path)
    _short(write_audio, "take1.wav")
    with pytest.raises(ParameterError, match="--dataset folder"):
        load_dataset(tmp_path)
    with pytest.raises(ParameterError, match="'kind' parameter of load_dataset"):
        load_dataset(tmp_path, kind="iemocap")


# ------------------------------------------------------------------------------ summary


@pytest.fixture
def ravdess_with_problems(tmp_path, write_audio):
    """Four good RAVDESS clips of two actors, plus a 0-byte file and a NaN file."""
    for name in ["Actor_01/03-01-01-01-01-01-01.wav", "Actor_01/03-01-05-02-01-01-01.wav",
                 "Actor_02/03-01-05-01-01-01-02.wav"]:
        _short(write_audio, name)
    write_audio("Actor_02/03-01-03-01-01-01-02.wav", tone(0.4, 48000, channels=2), sr=48000)
    (tmp_path / "Actor_02" / "03-01-04-01-01-01-02.wav").write_bytes(b"")
    nan = np.where(np.arange(2400)[:, None] == 7, np.nan, tone(0.3, 8000))
    write_audio("Actor_01/03-01-06-01-01-01-01.wav", nan, sr=8000, subtype="FLOAT")
    return tmp_path


def test_summary_counts_usable_clips_and_lists_problems(ravdess_with_problems):
    result = summarize(load_dataset(ravdess_with_problems), progress=False)

    assert result.n_clips == 4
    assert result.class_counts["angry"] == 2 and result.class_counts["sad"] == 0
    assert result.speaker_counts == {"01": 2, "02": 2}
    assert result.sample_rates == {8000: 3, 48000: 1}
    assert result.channels == {1: 3, 2: 1}
    assert result.duration["min"] == pytest.approx(0.3) and result.duration["max"] == pytest.approx(0.4)
    reasons = {os.path.basename(p): r for p, r in result.problems}
    assert "empty file" in reasons["03-01-04-01-01-01-02.wav"]
    assert "NaN" in reasons["03-01-06-01-01-01-01.wav"]

    text = format_summary(result)
    assert "4 usable, 2 problem file(s)" in text
    assert "Actor_02/03-01-04-01-01-01-02.wav: " in text
    assert json.loads(json.dumps(result.to_dict()))["sample_rates"] == {"8000": 3, "48000": 1}


def test_summary_headers_only_misses_nan_but_not_empty_files(ravdess_with_problems):
    result = summarize(load_dataset(ravdess_with_problems), check_audio=False, progress=False, n_jobs=1)
    assert [os.path.basename(p) for p, _ in result.problems] == ["03-01-04-01-01-01-02.wav"]


def test_summary_strict_raises_listing_every_problem(ravdess_with_problems):
    with pytest.raises(AudioError, match="2 file.*cannot be used") as info:
        summarize(load_dataset(ravdess_with_problems), strict=True, progress=False)
    assert "03-01-04-01-01-01-02.wav" in info.value.reason and "03-01-06-01-01-01-01.wav" in info.value.reason


# ------------------------------------------------------------------------------ CLI


@pytest.fixture
def ravdess_two_actors(shared_data, tmp_path):
    """Actors 01 and 02 of ravdess16k, linked (not copied) into a temporary corpus."""
    for actor in ("Actor_01", "Actor_02"):
        (tmp_path / actor).symlink_to(shared_data / "ravdess16k" / actor, target_is_directory=True)
    return tmp_path


def _run_cli(*args):
    from sertiny.cli import main

    return CliRunner().invoke(main, ["data", "summary", *map(str, args)])


def test_cli_summary_on_two_ravdess_actors(ravdess_two_actors):
    result = _run_cli(ravdess_two_actors)
    assert result.exit_code == 0, result.output
    assert "120 usable, 0 problem file(s)" in result.output
    assert "Speakers   2" in result.output and "Classes    8" in result.output

    result = _run_cli(ravdess_two_actors, "--json", "--no-check-audio")
    report = json.loads(result.output)
    assert report["n_clips"] == 120 and report["speaker_counts"] == {"01": 60, "02": 60}
    assert report["class_counts"]["neutral"] == 8 and report["sample_rates"] == {"16000": 120}


def test_cli_strict_fails_with_the_problem_list(ravdess_with_problems):
    result = _run_cli(ravdess_with_problems, "--strict")
    assert result.exit_code == 2
    assert "4 usable, 2 problem file(s)" in result.output  # the report is printed first
    assert "cannot be used (strict mode)" in result.output
