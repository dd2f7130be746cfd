"""Tests of sertiny.features: config, both back ends and their agreement, cache, tables, normalisation.

The agreement tests run on a handful of real RAVDESS clips from the shared data folder (the
full-corpus check is benchmarks/check_frontend_agreement.py) and skip if it is missing.
"""

import importlib.util
import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from sertiny.errors import ArtifactError, AudioError, ParameterError
from sertiny.features import (
    FeatureConfig,
    NormStats,
    compute_features,
    extract,
    fit_norm_stats,
    get_preset,
    list_presets,
    load_paper_features,
)
from sertiny.features import numpy_frontend as nf
from sertiny.features.numpy_frontend import F0_REFERENCE_HZ
from sertiny.features.table import RAVDESS_EMOTIONS, FeatureTable

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
PAPER_NPZ = DATA / "ravdess48k_paper_features.npz"
STEREO_ORIGINAL = "03-01-02-01-01-02-01"

needs_data = pytest.mark.skipif(not DATA.is_dir(), reason=f"shared RAVDESS data not found at {DATA}")
needs_librosa = pytest.mark.skipif(importlib.util.find_spec("librosa") is None,
                                   reason="librosa (the 'train' extra) is not installed")

# numpy vs librosa: per coefficient, max |diff| <= 1e-3 x that coefficient's std (the
# acceptance criterion of the front end, here over a small sample).
AGREEMENT_TOLERANCE = 1e-3
# librosa here vs the machine that made the paper's file: float32 rounding only.
PAPER_FILE_TOLERANCE = 1e-4


def tone(seconds=0.5, sample_rate=16_000, frequency=440.0, seed=0):
    """A float32 test signal: a tone plus a little noise (so every band has energy)."""
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    noise = np.random.default_rng(seed).normal(scale=0.01, size=t.size)
    return (0.5 * np.sin(2 * np.pi * frequency * t) + noise).astype(np.float32)


def max_diff_over_std(ours, reference):
    """Worst coefficient's max |ours - reference| in units of its std over ``reference``."""
    ours, reference = np.concatenate(ours), np.concatenate(reference)
    assert ours.shape == reference.shape
    return (np.abs(ours.astype(np.float64) - reference).max(axis=0) / reference.std(axis=0)).max()


def load(path, sample_rate):
    from sertiny.data.audio import load_audio

    return load_audio(path, sample_rate)


@pytest.fixture(scope="module")
def sample_clips():
    """6 ravdess16k clips (different actors and emotions) and 2 originals (one stereo)."""
    if not DATA.is_dir():
        pytest.skip(f"shared RAVDESS data not found at {DATA}")
    flacs = sorted((DATA / "ravdess16k").glob("Actor_*/*.flac"))[::241][:6]
    wavs = [DATA / "ravdess48k_sample" / "Actor_01" / f"{stem}.wav"
            for stem in ("03-01-05-02-01-01-01", STEREO_ORIGINAL)]
    return flacs, wavs


# ---------------------------------------------------------------------------------------
# Config and presets


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("hop_length", 0, "The 'hop_length' parameter of FeatureConfig must be an int >= 1. Got 0 instead."),
        ("n_fft", 1023, "The 'n_fft' parameter of FeatureConfig must be an even int. Got 1023 instead."),
        ("n_fft", 512.0, "The 'n_fft' parameter of FeatureConfig must be an int >= 16. Got 512.0 instead."),
        ("window", "hanning", "The 'window' parameter of FeatureConfig must be one of ['hamming', 'hann']. "
                              "Got 'hanning' instead."),
        ("pad_mode", "reflect", "The 'pad_mode' parameter of FeatureConfig must be one of ['constant', 'edge']. "
                                "Got 'reflect' instead."),
        ("n_mfcc", 200, "The 'n_mfcc' parameter of FeatureConfig must be an int in the range [1, 128]. "
                        "Got 200 instead."),
        ("top_db", -1.0, "The 'top_db' parameter of FeatureConfig must be a float >= 0.0. Got -1.0 instead."),
        ("tuning", 0.7, "The 'tuning' parameter of FeatureConfig must be a float in the range [-0.5, 0.5]. "
                        "Got 0.7 instead."),
        ("fmax", 9000.0, "The 'fmax' parameter of FeatureConfig must be a float in the range (0.0, 8000.0]. "
                         "Got 9000.0 instead."),
        ("mel_norm", "l2", "The 'mel_norm' parameter of FeatureConfig must be 'slaney' or None. Got 'l2' instead."),
        ("center", 1, "The 'center' parameter of FeatureConfig must be a bool. Got 1 instead."),
        ("kind", "mfcc", "The 'kind' parameter of FeatureConfig must be one of ['log_mel', 'mfcc_chroma']. "
                         "Got 'mfcc' instead."),
        ("chroma_floor", 0.0, "The 'chroma_floor' parameter of FeatureConfig must be a float > 0.0. "
                              "Got 0.0 instead."),
        ("running_peak_db", -3.0, "The 'running_peak_db' parameter of FeatureConfig must be a float > 0.0. "
                                  "Got -3.0 instead."),
    ],
)
def test_config_rejects_bad_values_with_sklearn_style_messages(field, value, message):
    with pytest.raises(ParameterError) as excinfo:
        FeatureConfig(**{"sample_rate": 16_000, "n_fft": 1024, "hop_length": 512, field: value})
    assert str(excinfo.value) == message


def test_config_is_keyword_only_frozen_and_round_trips(tmp_path):
    with pytest.raises(TypeError):
        FeatureConfig(16_000, 1024, 512)  # positional arguments are refused
    config = get_preset("edge16k")
    with pytest.raises(AttributeError):
        config.n_mfcc = 20
    path = tmp_path / "features.json"
    config.save(path)
    assert FeatureConfig.load(path) == config
    assert FeatureConfig.from_dict(json.loads(config.to_json())).digest() == config.digest()
    assert config.replace(n_mfcc=20).digest() != config.digest()
    with pytest.raises(ParameterError, match="unknown field"):
        FeatureConfig.from_dict({**config.to_dict(), "n_bark": 3})


def test_presets():
    assert list_presets() == ["edge16k", "edge16k_peak", "edge16k_peak_deltas", "logmel16k", "paper"]
    paper = get_preset("paper")
    # The paper's librosa call: everything but rate, FFT size, hop and n_mfcc at defaults.
    assert paper == FeatureConfig(sample_rate=48_000, n_fft=4096, hop_length=2048)
    assert (paper.n_mfcc, paper.n_chroma, paper.n_features) == (34, 12, 46)
    assert paper.tuning is None and paper.top_db == 80.0
    edge = get_preset("edge16k")
    assert (edge.sample_rate, edge.n_fft, edge.hop_length, edge.n_features) == (16_000, 1024, 640, 46)
    assert edge.frames_per_second == 25.0
    assert edge.tuning == 0.0 and edge.top_db is None  # streamable: no whole-clip statistics
    assert edge.feature_names[0] == "mfcc_0" and edge.feature_names[-1] == "chroma_11"
    assert paper.kind == edge.kind == "mfcc_chroma"
    # Fixed floors well above 16-bit quantisation noise (see the module docstring); the paper
    # keeps librosa's.
    assert (edge.amin, edge.chroma_floor) == (1e-7, 1e-4) and (paper.amin, paper.chroma_floor) == (1e-10, None)
    logmel = get_preset("logmel16k")
    # edge16k's audio path (rate, window, hop, streamable top_db, mel floor), 40 log-mel bands per frame.
    assert logmel == edge.replace(kind="log_mel", n_mels=40, fmin=50.0, fmax=7600.0, tuning=None, chroma_floor=None)
    assert (logmel.n_features, logmel.frames_per_second, logmel.top_db) == (40, 25.0, None)
    assert logmel.feature_names == tuple(f"mel_{i}" for i in range(40))
    assert (edge.description, logmel.description) == ("34 MFCC + 12 chroma", "40 log-mel bands")
    # Levels held below the running peak; the built-in model's front end adds deltas.
    assert get_preset("edge16k_peak") == edge.replace(running_peak_db=40.0)
    assert get_preset("edge16k_peak_deltas") == edge.replace(running_peak_db=40.0, deltas=True)
    assert get_preset("edge16k_peak_deltas").n_features == 92
    # Which give any stretch of a clip the frames the whole clip has there.
    assert [get_preset(name).frame_local for name in list_presets()] == [True, False, False, True, False]
    with pytest.raises(ParameterError, match="'name' parameter of get_preset"):
        get_preset("tiny")


def test_added_fields_keep_existing_digests_and_cache_keys(tmp_path):
    from sertiny.features.cache import cache_key

    # Digests computed before FeatureConfig had the 'kind' and 'chroma_floor' fields (commit
    # a71b933): feature caches, runs and tuning studies made with those configs must keep
    # matching. edge16k itself has floors since; its earlier values are the second config.
    edge_before_floors = get_preset("edge16k").replace(amin=1e-10, chroma_floor=None)
    assert edge_before_floors.digest() == "a0a7a86802a35bcc"
    assert get_preset("edge16k").digest() != edge_before_floors.digest()
    assert get_preset("paper").digest() == "5cb067e466f3884c"
    assert get_preset("logmel16k").digest() != get_preset("edge16k").replace(n_mels=40, fmin=50.0, fmax=7600.0).digest()
    # A cache entry's name, as that commit computed it (its to_json() had no 'kind').
    import hashlib

    from sertiny.features.config import FEATURE_CODE_VERSION

    audio = tmp_path / "clip.wav"
    audio.write_bytes(b"x")
    config = edge_before_floors
    old_json = json.dumps({k: v for k, v in config.to_dict().items()
                           if k not in ("kind", "chroma_floor", "running_peak_db", "deltas", "pitch")},
                          sort_keys=True)
    stat = audio.resolve().stat()
    parts = (old_json, "numpy", FEATURE_CODE_VERSION, str(audio.resolve()), str(stat.st_size), str(stat.st_mtime_ns))
    assert cache_key(audio, config, "numpy") == hashlib.sha256("\0".join(parts).encode()).hexdigest()
    assert cache_key(audio, config.replace(kind="log_mel"), "numpy") != cache_key(audio, config, "numpy")
    assert cache_key(audio, config.replace(chroma_floor=1e-4), "numpy") != cache_key(audio, config, "numpy")
    assert cache_key(audio, config.replace(top_db=None, running_peak_db=40.0), "numpy") != \
        cache_key(audio, config.replace(top_db=None), "numpy")
    assert cache_key(audio, config.replace(deltas=True), "numpy") != cache_key(audio, config, "numpy")
    assert cache_key(audio, config.replace(pitch=True), "numpy") != cache_key(audio, config, "numpy")


def test_log_mel_frames_ignore_the_cepstrum_fields():
    # n_mfcc may exceed n_mels when there is no cepstrum; the frames are the bands, in dB.
    config = FeatureConfig(sample_rate=16_000, n_fft=512, hop_length=256, kind="log_mel", n_mels=20, top_db=None)
    with pytest.raises(ParameterError, match="'n_mfcc' parameter"):
        config.replace(kind="mfcc_chroma")
    y = tone(seconds=0.3)
    features = extract(y, config)
    assert features.shape == (config.n_frames(y.size), 20) and features.dtype == np.float32
    S = nf.power_spectrogram(y, n_fft=512, hop_length=256)
    mel = nf.mel_filterbank(sample_rate=16_000, n_fft=512, n_mels=20).astype(np.float64) @ S
    np.testing.assert_allclose(features, 10 * np.log10(np.maximum(1e-10, mel)).T, atol=1e-4)
    assert np.array_equal(extract(y, config.replace(n_mfcc=5, n_chroma=3, tuning=0.2)), features)


# ---------------------------------------------------------------------------------------
# numpy building blocks against librosa's, piece by piece


@needs_librosa
def test_filterbanks_window_and_dct_are_librosas():
    import librosa
    import scipy.fft
    import scipy.signal

    for n_fft in (1024, 4096):
        assert np.array_equal(nf.get_window("hann", n_fft), scipy.signal.get_window("hann", n_fft))
        assert np.array_equal(nf.get_window("hamming", n_fft), scipy.signal.get_window("hamming", n_fft))
    for sr, n_fft, kwargs in [(48_000, 4096, {}), (16_000, 1024, {}), (16_000, 512, {"htk": True, "fmin": 50.0,
                                                                                     "fmax": 7000.0})]:
        ours = nf.mel_filterbank(sample_rate=sr, n_fft=n_fft, n_mels=64, **kwargs)
        np.testing.assert_array_equal(ours, librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=64, **kwargs))
    for tuning in (0.0, -0.37, 0.21):
        np.testing.assert_array_equal(nf.chroma_filterbank(sample_rate=48_000, n_fft=4096, tuning=tuning),
                                      librosa.filters.chroma(sr=48_000, n_fft=4096, tuning=tuning))
    identity = np.eye(128)
    np.testing.assert_allclose(nf.dct_matrix(n_mfcc=34, n_mels=128),
                               scipy.fft.dct(identity, type=2, norm="ortho", axis=0)[:34], atol=1e-12)


def test_banded_mel_product_equals_the_dense_product():
    S = np.random.default_rng(1).gamma(0.5, size=(513, 40)).astype(np.float32)
    for kwargs in ({}, {"fmin": 300.0, "fmax": 5000.0}, {"htk": True, "n_mels": 40}):
        dense = nf.mel_filterbank(sample_rate=16_000, n_fft=1024, **kwargs)
        ours = nf.mel_spectrogram(S=S, sample_rate=16_000, **kwargs)
        np.testing.assert_allclose(ours, dense.astype(np.float64) @ S, rtol=1e-6)
    # A filterbank that is not banded takes the plain product.
    weights = np.random.default_rng(2).random((8, 513)).astype(np.float32)
    bands = nf._AdjacentBands(weights)
    assert bands.dense is not None
    np.testing.assert_allclose(bands.apply(S), weights @ S, rtol=1e-5)


@needs_data
@needs_librosa
def test_spectrogram_and_tuning_estimate_are_librosas(sample_clips):
    import librosa

    flacs, wavs = sample_clips
    for path, sr, n_fft, hop in [(flacs[0], 16_000, 1024, 640), (wavs[0], 48_000, 4096, 2048)]:
        y = load(path, sr)
        S = nf.power_spectrogram(y, n_fft=n_fft, hop_length=hop)
        # Bit-identical: the tuning estimate is a histogram argmax that rounding could flip.
        np.testing.assert_array_equal(S, np.abs(librosa.stft(y, n_fft=n_fft, hop_length=hop)) ** 2)
        assert nf.estimate_tuning(S=S, sample_rate=sr) == librosa.estimate_tuning(S=S, sr=sr)
        # ... because the interpolated peaks are piptrack's, bit for bit.
        pitches, magnitudes = nf._spectral_peaks(S, sr)
        ref_pitches, ref_magnitudes = librosa.piptrack(S=S, sr=sr, n_fft=n_fft)
        voiced = ref_pitches > 0
        np.testing.assert_array_equal(np.sort(pitches), np.sort(ref_pitches[voiced]))
        np.testing.assert_array_equal(np.sort(magnitudes), np.sort(ref_magnitudes[voiced]))


# ---------------------------------------------------------------------------------------
# Whole front end: numpy vs librosa, librosa vs the paper's file


def test_running_peak_needs_top_db_off():
    with pytest.raises(ParameterError, match="either 'top_db' .* or 'running_peak_db'.*set top_db=None"):
        get_preset("paper").replace(running_peak_db=40.0)


@needs_data
@needs_librosa
@pytest.mark.parametrize(("preset", "changes"), [("edge16k", {}), ("edge16k", {"amin": 1e-10, "chroma_floor": None}),
                                                 ("edge16k", {"running_peak_db": 40.0}), ("paper", {})],
                         ids=["edge16k", "edge16k-no-floors", "edge16k-running-peak", "paper"])
def test_numpy_matches_librosa_on_ravdess16k(sample_clips, preset, changes):
    config = get_preset(preset).replace(**changes)
    clips = [load(path, config.sample_rate) for path in sample_clips[0]]  # paper: resampled to 48 kHz
    ours = [extract(y, config) for y in clips]
    reference = [extract(y, config, backend="librosa") for y in clips]
    assert all(x.dtype == np.float32 and x.shape[1] == 46 for x in ours)
    assert max_diff_over_std(ours, reference) <= AGREEMENT_TOLERANCE


@needs_data
@needs_librosa
@pytest.mark.parametrize(("top_db", "running_peak_db"), [(None, None), (80.0, None), (None, 40.0)])
def test_numpy_matches_librosa_on_log_mel_frames(sample_clips, top_db, running_peak_db):
    config = get_preset("logmel16k").replace(top_db=top_db, running_peak_db=running_peak_db)
    clips = [load(path, config.sample_rate) for path in sample_clips[0]]
    ours = [extract(y, config) for y in clips]
    reference = [extract(y, config, backend="librosa") for y in clips]
    assert all(x.dtype == np.float32 and x.shape[1] == 40 for x in ours)
    assert max_diff_over_std(ours, reference) <= AGREEMENT_TOLERANCE


@needs_data
@needs_librosa
def test_numpy_matches_librosa_on_48k_originals_including_stereo(sample_clips):
    config = get_preset("paper")
    clips = [load(path, 48_000) for path in sample_clips[1]]
    ours = [extract(y, config) for y in clips]
    reference = [extract(y, config, backend="librosa") for y in clips]
    assert max_diff_over_std(ours, reference) <= AGREEMENT_TOLERANCE


@needs_data
@needs_librosa
def test_librosa_backend_reproduces_the_paper_features(sample_clips):
    table = load_paper_features(PAPER_NPZ)
    std = np.concatenate(table.features).astype(np.float64).std(axis=0)
    for path in sample_clips[1]:
        reference = table.features[list(table.names).index(path.stem)]
        ours = extract(load(path, 48_000), "paper", backend="librosa")
        assert ours.shape == reference.shape, path.name
        assert (np.abs(ours.astype(np.float64) - reference).max(axis=0) / std).max() <= PAPER_FILE_TOLERANCE


# ---------------------------------------------------------------------------------------
# Floors on quiet frames: the same recording, requantised or perturbed, gives the same frames


def pcm16(y):
    """``y`` stored as 16-bit PCM and read back (what a corpus copy does to it).

    Rounded to the nearest step by hand: libsndfile 1.2's float -> PCM_16 writer rounds
    towards -inf (0.6 LSB -> 0, -0.4 LSB -> -1), which would add a -0.5 LSB DC offset.
    """
    return (np.clip(np.round(y * 32768.0), -32768, 32767) / 32768.0).astype(np.float32)


EDGE_WITHOUT_FLOORS = get_preset("edge16k").replace(amin=1e-10, chroma_floor=None)


@pytest.mark.parametrize("backend", ["numpy", pytest.param("librosa", marks=needs_librosa)])
def test_floors_make_near_silent_frames_immune_to_requantisation(backend):
    # Near-silence as a 48 kHz original resampled to 16 kHz holds it (float noise of a
    # fraction of an LSB), around a word-like tone; then the same audio stored as 16-bit.
    rng = np.random.default_rng(0)
    lsb = 1 / 32768
    y = rng.normal(scale=0.4 * lsb, size=24_000).astype(np.float32)
    y[8_000:16_000] += tone(seconds=0.5, frequency=220.0) * 0.1
    stored = pcm16(y)
    frames = slice(0, 10)  # wholly before the tone
    moved = {}
    for name, config in {"floors": get_preset("edge16k"), "no floors": EDGE_WITHOUT_FLOORS}.items():
        a, b = extract(y, config, backend=backend), extract(stored, config, backend=backend)
        diff = np.abs(a[frames].astype(np.float64) - b[frames])
        moved[name] = diff[:, :34].max(), diff[:, 34:].max()  # (MFCC dB units, chroma in [0, 1])
        # Frames of the tone barely move either way (by the cross term of signal and
        # quantisation noise in the weak bands between harmonics: a few tenths of a dB there).
        assert np.abs(a[14:24, :34] - b[14:24, :34]).max() < 0.5
    assert moved["floors"][0] < 0.01 and moved["floors"][1] < 1e-3, moved
    # Without floors the same quantisation moves them a lot (the built-in model's
    # normalisation stds: MFCC 8-260, chroma 0.32-0.36).
    assert moved["no floors"][0] > 10 and moved["no floors"][1] > 0.3, moved


def perturbed(y, perturbation, seed):
    if perturbation.startswith("gain"):
        return pcm16(y * 10 ** (float(perturbation.split()[1]) / 20))
    noise = np.random.default_rng(seed).normal(size=y.size) * np.sqrt(np.mean(np.square(y, dtype=np.float64)) / 1e4)
    return pcm16(y + noise.astype(np.float32))


def frame_shifts(sample_clips, config, perturbation):
    """Per frame of 10 of actor 01's clips, the largest |perturbed - copy| of any feature, in
    stds of the sample clips' features; "48 kHz original" reads the original WAV instead."""
    flacs, _ = sample_clips
    std = fit_norm_stats([extract(load(path, 16_000), config) for path in flacs]).std
    shifts = []
    for seed, original in enumerate(sorted((DATA / "ravdess48k_sample" / "Actor_01").glob("*.wav"))[::6]):
        y = load(DATA / "ravdess16k" / "Actor_01" / f"{original.stem}.flac", 16_000)
        other = load(original, 16_000)[: y.size] if perturbation == "48 kHz original" else \
            perturbed(y, perturbation, seed)
        shifts.append((np.abs(extract(other, config) - extract(y, config)) / std).max(axis=1))
    return np.concatenate(shifts)


@needs_data
@pytest.mark.parametrize("perturbation", ["48 kHz original", "gain -6 dB", "gain +6 dB", "noise 40 dB SNR"])
def test_floors_make_real_clips_move_less_under_requantisation_gain_and_noise(sample_clips, perturbation):
    moved = {name: np.mean(frame_shifts(sample_clips, config, perturbation) > 1.0)  # some feature moves > 1 std
             for name, config in {"floors": get_preset("edge16k"), "no floors": EDGE_WITHOUT_FLOORS}.items()}
    if perturbation == "48 kHz original":  # what the floors are for: requantisation of near-silence
        assert moved["floors"] <= 0.1 * moved["no floors"], moved
    elif perturbation == "noise 40 dB SNR":  # a real change of the silent frames; the floors soften it
        assert moved["floors"] < moved["no floors"], moved
    else:
        # A gain keeps near-silence's +-1 LSB samples (10 ** (-6 / 20) * 1 rounds to 1) and
        # shifts the log of the rest: few frames move either way; frames rising through the
        # floors cost the floored front end a little.
        assert moved["floors"] < 0.1 and moved["no floors"] < 0.1, moved


# ---------------------------------------------------------------------------------------
# Levels held below the running peak (running_peak_db): gain-invariant and streamable

RUNNING_PEAK = get_preset("edge16k_peak")


def lead_then_word(level):
    """Half a second of faint noise, then a word-like tone ``level`` (amplitude) loud, then noise."""
    rng = np.random.default_rng(1)
    y = rng.normal(scale=3e-4, size=32_000).astype(np.float32)
    y[8_000:20_000] += level * tone(seconds=0.75, frequency=180.0) / 0.5
    return y


@pytest.mark.parametrize("backend", ["numpy", pytest.param("librosa", marks=needs_librosa)])
@pytest.mark.parametrize("config", [RUNNING_PEAK, get_preset("logmel16k").replace(running_peak_db=40.0)],
                         ids=["mfcc_chroma", "log_mel"])
def test_running_peak_makes_frames_gain_invariant_once_the_peak_passes_its_level(backend, config):
    y = lead_then_word(0.3)
    reference = extract(y, config, backend=backend)
    plain = extract(y, config.replace(running_peak_db=None), backend=backend)
    # Before the word the running peak is below amin + 40 dB: frames are edge16k's own.
    np.testing.assert_array_equal(reference[:10], plain[:10])
    assert np.abs(reference[20:] - plain[20:]).max() > 10  # the word is loud: attenuated
    for gain in (0.5, 2.0, 0.1):
        louder = extract((y * gain).astype(np.float32), config, backend=backend)
        # From the word's first full frame on, the same frames whatever the gain (float
        # rounding of the attenuated power only).
        np.testing.assert_allclose(louder[14:], reference[14:], atol=1e-3)
    # A clip that never gets that loud is left as it is.
    quiet = lead_then_word(0.003)
    np.testing.assert_array_equal(extract(quiet, config, backend=backend),
                                  extract(quiet, config.replace(running_peak_db=None), backend=backend))


def test_running_peak_frames_depend_on_the_past_only():
    # What makes it streamable: a prefix of the clip gives the same frames (those whose
    # window lies inside it) as the whole clip, the word's later, louder part changes nothing before it.
    y = lead_then_word(0.05)
    y[14_000:20_000] *= 8  # the peak rises again late in the word
    whole = extract(y, RUNNING_PEAK)
    for n in (12_000, 16_000, 25_000):
        complete = (n - RUNNING_PEAK.n_fft // 2) // RUNNING_PEAK.hop_length + 1
        np.testing.assert_array_equal(extract(y[:n], RUNNING_PEAK)[:complete], whole[:complete])
    gain = nf.running_peak_gain(np.array([[1e-9, 1e-2, 1e-4, 1.0, 1e-3]]), amin=1e-7, running_peak_db=40.0)
    np.testing.assert_allclose(gain, [1.0, 0.1, 0.1, 1e-3, 1e-3], rtol=1e-6)


@needs_data
@pytest.mark.parametrize("perturbation", ["gain -6 dB", "gain +6 dB"])
def test_running_peak_keeps_real_clips_frames_under_gain(sample_clips, perturbation):
    shift = {}
    for name, config in {"floors": get_preset("edge16k"), "running peak": RUNNING_PEAK}.items():
        frames = frame_shifts(sample_clips, config, perturbation)
        shift[name] = float(np.median(frames)), float(np.mean(frames > 0.25))
    # Fixed floors: MFCC 0 follows the gain in every frame above them (about half a std). Below
    # the running peak only the frames before the clip reaches it, and bands near the floor
    # that 16-bit rounding of the gained samples reaches, can move (measured: median 0.004-0.015
    # std, 9-12 % of frames > 0.25 std, against 0.53 and 66-73 % with fixed floors).
    assert shift["floors"][0] > 0.3 and shift["floors"][1] > 0.5, shift
    assert shift["running peak"][0] < 0.05 and shift["running peak"][1] < 0.2, shift


# ---------------------------------------------------------------------------------------
# Signals at the edges


@pytest.mark.parametrize("backend", ["numpy", pytest.param("librosa", marks=needs_librosa)])
@pytest.mark.parametrize(("preset", "width"), [("edge16k", 46), ("logmel16k", 40)])
def test_clip_shorter_than_n_fft_gives_one_zero_padded_frame(backend, preset, width):
    config = get_preset(preset)
    y = tone(seconds=0.01)  # 160 samples < n_fft = 1024
    features = extract(y, config, backend=backend)
    assert features.shape == (config.n_frames(y.size), width) == (1, width)
    assert np.isfinite(features).all()


@needs_librosa
def test_short_and_silent_clips_agree_between_backends():
    config = get_preset("paper")
    for y in (tone(seconds=0.02, sample_rate=48_000), np.zeros(48_000, dtype=np.float32)):
        np.testing.assert_allclose(extract(y, config), extract(y, config, backend="librosa"), atol=2e-3, rtol=1e-5)


def test_uncentered_clip_shorter_than_n_fft_is_refused():
    config = get_preset("edge16k").replace(center=False)
    with pytest.raises(ParameterError, match="fewer than n_fft=1024"):
        extract(tone(seconds=0.01), config)
    assert extract(tone(seconds=0.1), config).shape == (config.n_frames(1600), 46) == (1, 46)


@pytest.mark.parametrize(
    ("signal", "message"),
    [
        (np.zeros(0, dtype=np.float32), "empty"),
        (np.zeros((2, 1600), dtype=np.float32), "Downmix first"),
        (np.zeros(1600, dtype=np.int16), "floating-point"),
        (np.full(1600, np.nan, dtype=np.float32), "NaN or infinite"),
    ],
)
def test_bad_signals_are_refused_before_any_work(signal, message):
    with pytest.raises(ParameterError, match=message):
        extract(signal, "edge16k")


def test_float64_input_and_unknown_backend():
    y = tone()
    np.testing.assert_array_equal(extract(y.astype(np.float64), "edge16k"), extract(y, "edge16k"))
    with pytest.raises(ParameterError, match="'backend' parameter"):
        extract(y, "edge16k", backend="torch")


def test_numpy_frontend_imports_neither_librosa_nor_scipy_nor_numba():
    code = (
        "import sys, numpy as np\n"
        "import sertiny.features.numpy_frontend as nf\n"
        "from sertiny.features import extract\n"
        "extract(np.random.default_rng(0).normal(size=16000).astype(np.float32), 'paper')\n"
        "heavy = sorted({m.split('.')[0] for m in sys.modules} & {'librosa', 'scipy', 'numba'})\n"
        "print(','.join(heavy))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert result.stdout.strip() == "", f"numpy front end imported {result.stdout.strip()}"


# ---------------------------------------------------------------------------------------
# Feature cache


class CountingLoader:
    """An injected loader that reads WAVs with soundfile and records every call."""

    def __init__(self):
        self.calls = []

    def __call__(self, path, target_sr):
        import soundfile as sf

        self.calls.append(Path(path).name)
        try:
            y, sr = sf.read(str(path), dtype="float32")
        except RuntimeError as exc:
            raise AudioError(path, f"cannot be read as audio ({exc})") from None
        assert sr == target_sr
        return y


def read_wav_16k(path, target_sr):
    """A module-level (picklable) loader for the process-pool test."""
    return CountingLoader()(path, target_sr)


@pytest.fixture
def wav_files(tmp_path):
    import soundfile as sf

    paths = []
    for i, frequency in enumerate((220.0, 440.0, 880.0)):
        path = tmp_path / "audio" / f"tone{i}.wav"
        path.parent.mkdir(exist_ok=True)
        sf.write(path, tone(frequency=frequency, seed=i), 16_000)
        paths.append(path)
    return paths


def test_cache_is_reused_and_invalidated(tmp_path, wav_files):
    config = get_preset("edge16k")
    cache_dir = tmp_path / "cache"
    loader = CountingLoader()
    first, problems = compute_features(wav_files, config, cache_dir=cache_dir, n_jobs=1, progress=False,
                                       load_audio=loader)
    assert problems == [] and len(loader.calls) == 3
    assert len(list((cache_dir / config.digest()).glob("*.npy"))) == 3
    assert FeatureConfig.load(cache_dir / config.digest() / "config.json") == config
    second, _ = compute_features(wav_files, config, cache_dir=cache_dir, n_jobs=1, progress=False,
                                 load_audio=loader)
    assert len(loader.calls) == 3  # every clip came from the cache
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b)
    # A new config, or a touched file, is recomputed.
    other = config.replace(n_mfcc=20)
    third, _ = compute_features(wav_files, other, cache_dir=cache_dir, n_jobs=1, progress=False, load_audio=loader)
    assert len(loader.calls) == 6 and third[0].shape[1] == 32
    stat = wav_files[0].stat()
    os.utime(wav_files[0], ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    compute_features(wav_files, config, cache_dir=cache_dir, n_jobs=1, progress=False, load_audio=loader)
    assert loader.calls[6:] == ["tone0.wav"]


def test_bad_files_are_reported_not_fatal(tmp_path, wav_files):
    garbage = tmp_path / "audio" / "garbage.wav"
    garbage.write_bytes(b"not audio at all")
    items = [wav_files[0], garbage, tmp_path / "missing.wav"]
    features, problems = compute_features(items, "edge16k", cache_dir=tmp_path / "cache", n_jobs=1,
                                          progress=False, load_audio=CountingLoader())
    assert features[0] is not None and features[1] is None and features[2] is None
    assert [Path(p).name for p, _ in problems] == ["garbage.wav", "missing.wav"]
    assert "cannot be read as audio" in problems[0][1]


def test_parallel_workers_match_serial(wav_files):
    serial, _ = compute_features(wav_files, "edge16k", n_jobs=1, progress=False, load_audio=read_wav_16k)
    parallel, problems = compute_features(wav_files, "edge16k", n_jobs=2, progress=False, load_audio=read_wav_16k)
    assert problems == []
    for a, b in zip(serial, parallel, strict=True):
        np.testing.assert_array_equal(a, b)


def test_compute_features_checks_its_arguments(wav_files):
    with pytest.raises(ParameterError, match="'n_jobs' parameter"):
        compute_features(wav_files, "edge16k", n_jobs=0, load_audio=read_wav_16k)
    with pytest.raises(ParameterError, match="'backend' parameter"):
        compute_features(wav_files, "edge16k", backend="torch", load_audio=read_wav_16k)


# ---------------------------------------------------------------------------------------
# Normalisation and feature tables


def test_norm_stats_fit_apply_and_json_round_trip():
    rng = np.random.default_rng(3)
    clips = [rng.normal(loc=[-300.0, 5.0, 0.5], scale=[80.0, 3.0, 0.0], size=(n, 3)).astype(np.float32)
             for n in (50, 80, 120)]
    stats = fit_norm_stats(clips)
    z = stats.apply(np.concatenate(clips))
    assert z.dtype == np.float32
    np.testing.assert_allclose(z.mean(axis=0), 0.0, atol=1e-4)
    np.testing.assert_allclose(z[:, :2].std(axis=0), 1.0, atol=1e-4)
    assert np.isfinite(z).all() and stats.std[2] > 0  # a constant feature does not divide by zero
    restored = NormStats.from_dict(json.loads(json.dumps(stats.to_dict())))
    np.testing.assert_array_equal(restored.mean, stats.mean)
    np.testing.assert_array_equal(restored.std, stats.std)
    with pytest.raises(ParameterError, match="last dimension 3"):
        stats.apply(np.zeros((4, 46)))
    with pytest.raises(ArtifactError):
        NormStats.from_dict({"mean": [0.0]})


@needs_data
def test_load_paper_features():
    table = load_paper_features(PAPER_NPZ)
    assert len(table) == 1440 and table.label_names == RAVDESS_EMOTIONS
    assert table.feature_config == get_preset("paper")
    assert table.lengths.min() >= 69 and table.lengths.max() <= 124
    assert np.bincount(table.labels).tolist() == [96] + [192] * 7
    assert sorted(set(table.speakers)) == [f"{a:02d}" for a in range(1, 25)]
    first = table.names[0]  # "03-01-01-..." : emotion code 01 -> neutral, actor 01
    assert table.label_names[table.labels[0]] == "neutral" and table.speakers[0] == first[-2:]
    held_out = table.subset(table.speakers == "01")
    assert len(held_out) == 60 and set(held_out.speakers) == {"01"}
    assert table.subset([5, 2]).names.tolist() == [table.names[5], table.names[2]]


def test_load_paper_features_refuses_incomplete_files(tmp_path):
    path = tmp_path / "broken.npz"
    np.savez(path, features=np.zeros((3, 46), np.float32), names=np.array(["a"]))
    with pytest.raises(ArtifactError, match=r"missing array\(s\) \['offsets', 'emotion', 'actor'\]"):
        load_paper_features(path)
    with pytest.raises(ArtifactError, match="file not found"):
        load_paper_features(tmp_path / "absent.npz")


def test_feature_table_validates_alignment():
    config = get_preset("edge16k")
    with pytest.raises(ParameterError, match="2 feature arrays but 1 labels"):
        FeatureTable(features=[np.zeros((3, 46))] * 2, labels=[0], speakers=["01", "02"], names=["a", "b"],
                     label_names=RAVDESS_EMOTIONS, feature_config=config)
    with pytest.raises(ParameterError, match=r"must be \(frames, 46\)"):
        FeatureTable(features=[np.zeros((3, 40))], labels=[0], speakers=["01"], names=["a"],
                     label_names=RAVDESS_EMOTIONS, feature_config=config)


def test_no_warnings_from_numpy_backend_on_short_or_silent_clips():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        extract(np.zeros(100, dtype=np.float32), "paper")
        extract(tone(seconds=0.01), "edge16k")


def test_a_field_added_later_keeps_old_caches_runs_and_studies_matching():
    import dataclasses

    from sertiny._config import Config, added_field

    @dataclasses.dataclass(frozen=True, kw_only=True)
    class Old(Config):
        a: int = 1

    @dataclasses.dataclass(frozen=True, kw_only=True)
    class New(Config):
        a: int = 1
        b: str = added_field("x")

    assert New().digest() == Old().digest()
    assert New(b="y").digest() != Old().digest()
    assert New.same_identity(Old().to_dict(), New())
    assert not New.same_identity(Old().to_dict(), New(b="y"))
    assert not New.same_identity({"a": 1, "zzz": 2}, New())  # from an unknown version
    assert New().to_dict() == {"a": 1, "b": "x"}  # saved files still hold every field


# Causal deltas (deltas=True): each value's first difference appended, one frame of state


@pytest.mark.parametrize("backend", ["numpy", pytest.param("librosa", marks=needs_librosa)])
@pytest.mark.parametrize("preset", ["edge16k_peak", "logmel16k"])
def test_deltas_append_each_values_causal_first_difference(backend, preset):
    static_config = get_preset(preset)
    config = static_config.replace(deltas=True)
    y = lead_then_word(0.3)
    static = extract(y, static_config, backend=backend)
    frames = extract(y, config, backend=backend)
    assert frames.dtype == np.float32 and frames.shape == (len(static), 2 * static_config.n_features)
    assert config.n_features == 2 * static_config.n_static == len(config.feature_names)
    np.testing.assert_array_equal(frames[:, : static.shape[1]], static)
    np.testing.assert_array_equal(frames[0, static.shape[1]:], 0.0)
    np.testing.assert_allclose(frames[1:, static.shape[1]:], np.diff(static, axis=0), atol=1e-5)
    # frame t depends on frames <= t only: a prefix of the clip gives the same frames (librosa's
    # STFT of another length rounds differently in the last float bits)
    n = 16_000
    complete = (n - config.n_fft // 2) // config.hop_length + 1
    np.testing.assert_allclose(extract(y[:n], config, backend=backend)[:complete], frames[:complete], atol=1e-3)


def test_a_delta_front_end_says_what_it_holds_and_is_not_frame_local():
    config = get_preset("edge16k").replace(deltas=True)
    assert config.description == "34 MFCC + 12 chroma + their deltas"
    assert config.feature_names[46] == "delta_mfcc_0" and config.feature_names[-1] == "delta_chroma_11"
    assert get_preset("edge16k").frame_local and not config.frame_local  # a window needs the frame before it
    assert "deltas" not in get_preset("edge16k").identity_dict()  # added later: old digests still match
    assert FeatureConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ParameterError, match="deltas"):
        get_preset("edge16k").replace(deltas="yes")


# Voicing and F0 (pitch=True): Boersma's autocorrelation method, frame by frame


def harmonic_tone(f0, seconds=1.0, sample_rate=16_000, level=0.3):
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    return (level * sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 6))).astype(np.float32)


@pytest.mark.parametrize("f0", [70.0, 123.0, 220.0, 440.0, 580.0])
def test_pitch_finds_the_f0_of_a_harmonic_tone(f0):
    config = get_preset("edge16k_peak").replace(pitch=True)
    frames = extract(harmonic_tone(f0), config)[3:-3]  # frames whose window lies inside the tone
    assert config.feature_names[-2:] == ("voicing", "f0_semitones") and frames.shape[1] == 48
    assert frames[:, -2].min() > 0.95
    found = F0_REFERENCE_HZ * 2.0 ** (frames[:, -1] / 12.0)
    np.testing.assert_allclose(found, f0, rtol=0.005)  # under a tenth of a semitone


def test_pitch_calls_noise_and_silence_unvoiced_and_ignores_the_level():
    config = get_preset("edge16k").replace(pitch=True)
    noise = np.random.default_rng(0).standard_normal(16_000).astype(np.float32) * 0.1
    frames = extract(noise, config)
    assert (frames[:, -1] == 0.0).all() and frames[:, -2].mean() < 0.3
    silent = extract(np.zeros(16_000, dtype=np.float32), config)
    np.testing.assert_array_equal(silent[:, -2:], 0.0)
    tone = harmonic_tone(180.0)
    # normalised autocorrelation: a gain leaves voicing and F0 as they were
    np.testing.assert_allclose(extract(tone * 0.05, config)[:, -2:], extract(tone, config)[:, -2:], atol=1e-4)


@needs_librosa
@pytest.mark.parametrize("preset", ["edge16k_peak", "logmel16k"])
def test_both_backends_give_the_same_pitch(preset):
    config = get_preset(preset).replace(pitch=True, deltas=True)
    y = lead_then_word(0.3)
    ours, reference = extract(y, config, backend="numpy"), extract(y, config, backend="librosa")
    assert ours.shape == reference.shape == (len(ours), 2 * (get_preset(preset).n_static + 2))
    n = config.n_static
    np.testing.assert_allclose(ours[:, n - 2: n], reference[:, n - 2: n], atol=1e-3)


def test_a_pitch_front_end_says_what_it_holds():
    config = get_preset("edge16k").replace(pitch=True)
    assert config.description == "34 MFCC + 12 chroma + voicing and F0"
    assert config.n_static == config.n_features == 48
    assert config.replace(deltas=True).feature_names[-1] == "delta_f0_semitones"
    assert config.frame_local  # each frame's own samples only
    assert "pitch" not in get_preset("edge16k").identity_dict()  # added later: old digests still match
    assert FeatureConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ParameterError, match="pitch"):
        get_preset("edge16k").replace(pitch=1)
