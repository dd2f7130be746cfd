"""Reading audio files into float32 sample arrays.

This module is on the device path (``sertiny infer`` on a Raspberry Pi), so it imports only
numpy, soundfile and soxr. It reads what libsndfile reads (WAV with any extra RIFF chunks,
FLAC, OGG/Vorbis; 16/24/32-bit integer or float PCM; any channel count and rate) and
returns samples exactly as ``librosa.load(path, sr=target_sr, mono=True)`` would: the
same float32 decode, the same channel mean, the same soxr "HQ" resampler and the same
output length. That way the numpy front end and the librosa reference front end see
bit-identical input.
"""

import dataclasses
import math
import os
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from .._config import check_float, check_int
from ..errors import AudioError

#: File extensions the dataset loaders pick up (compared case-insensitively).
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg")

# Everything soundfile raises for a file it cannot parse. LibsndfileError subclasses
# RuntimeError; OSError covers permissions and vanished files.
_READ_ERRORS = (sf.SoundFileError, RuntimeError, OSError)


@dataclasses.dataclass(frozen=True)
class AudioInfo:
    """Header facts about one audio file, read without decoding the samples.

    Attributes:
        samplerate: sampling rate in Hz.
        channels: number of channels.
        frames: number of samples per channel.
        duration: ``frames / samplerate`` in seconds.
        format: container, as libsndfile names it (``"WAV"``, ``"FLAC"``, ``"OGG"``).
        subtype: sample encoding (``"PCM_16"``, ``"PCM_24"``, ``"FLOAT"``, ``"VORBIS"``).
    """

    samplerate: int
    channels: int
    frames: int
    duration: float
    format: str
    subtype: str


def audio_info(path):
    """Read the header of ``path`` (cheap: no samples are decoded).

    Returns:
        AudioInfo.

    Raises:
        AudioError: the file is missing, empty, or not a format libsndfile can read.
    """
    _check_is_nonempty_file(path)
    try:
        info = sf.info(str(path))
    except _READ_ERRORS as exc:
        raise AudioError(path, _unreadable_reason(exc)) from None
    return AudioInfo(
        samplerate=int(info.samplerate),
        channels=int(info.channels),
        frames=int(info.frames),
        duration=float(info.duration),
        format=str(info.format),
        subtype=str(info.subtype),
    )


def load_audio(path, target_sr, *, min_duration=0.25, mono=True):
    """Decode ``path`` to float32 samples in [-1, 1] at ``target_sr`` Hz.

    Args:
        path: a WAV, FLAC or OGG file (anything libsndfile reads).
        target_sr: output sampling rate in Hz; the file is resampled with soxr "HQ"
            when its own rate differs.
        min_duration: shortest accepted clip, in seconds of the original file. A clip
            shorter than a few analysis frames gives features that are mostly padding.
        mono: average all channels into one (as librosa does).

    Returns:
        ``(n_samples,)`` float32 if ``mono``, else ``(n_channels, n_samples)`` float32
        (librosa's layout). Digital silence (all zeros) is returned as is: it is valid
        audio, and whether it is a useful training clip is the caller's decision.

    Raises:
        ParameterError: ``target_sr`` or ``min_duration`` is out of range.
        AudioError: the file is missing, unreadable, not audio, has no samples, is
            shorter than ``min_duration``, or contains NaN/inf samples.
    """
    check_int("load_audio", "target_sr", target_sr, min_value=1)
    check_float("load_audio", "min_duration", min_duration, min_value=0.0)

    samples, native_sr = _read_samples(path)  # (frames, channels)
    _check_length(path, samples.shape[0], native_sr, min_duration)
    if not np.isfinite(samples).all():
        raise AudioError(
            path,
            "contains NaN or infinite samples; the file is corrupt or was written from "
            "unscaled float data. Re-export it as 16-bit PCM.",
        )
    # librosa's layout (channels, samples); mean over channels in float32 like librosa.to_mono.
    samples = samples.T
    if mono:
        samples = samples.mean(axis=0)
    return _resample(samples, native_sr, target_sr)


def _read_samples(path):
    """Decode every frame as float32, always 2-D ``(frames, channels)``."""
    _check_is_nonempty_file(path)
    try:
        with sf.SoundFile(str(path)) as f:
            samples = f.read(dtype="float32", always_2d=True)
            native_sr = f.samplerate
    except _READ_ERRORS as exc:
        raise AudioError(path, _unreadable_reason(exc)) from None
    return samples, native_sr


def _check_is_nonempty_file(path):
    """Give a precise reason for the cases libsndfile reports only as 'not recognised'."""
    path = Path(path)
    if not path.exists():
        raise AudioError(path, "file not found; check the path (and the dataset folder layout)")
    if path.is_dir():
        raise AudioError(path, "is a directory, not an audio file")
    if os.path.getsize(path) == 0:
        raise AudioError(path, "is an empty file (0 bytes); the copy or download was probably interrupted")


def _check_length(path, n_frames, samplerate, min_duration):
    if n_frames == 0:
        raise AudioError(path, "contains no audio samples (0 frames); the recording is empty")
    duration = n_frames / samplerate
    if duration < min_duration:
        raise AudioError(
            path,
            f"is {duration:.3f} s long, shorter than the minimum of {min_duration:g} s; "
            "remove the clip or lower min_duration",
        )


def _unreadable_reason(exc):
    # libsndfile's own text ("Format not recognised", "No 'data' chunk marker") is terse
    # but it is the only clue to what is wrong with the bytes, so keep it.
    detail = getattr(exc, "error_string", None) or str(exc)
    return (
        f"cannot be read as audio (libsndfile: {detail.strip().rstrip('.')}); the file is "
        "corrupt, truncated, or not WAV/FLAC/OGG. Re-copy or re-export it"
    )


def _resample(samples, orig_sr, target_sr):
    """Resample along the last axis exactly as ``librosa.resample(res_type="soxr_hq")``."""
    if orig_sr == target_sr:
        return np.ascontiguousarray(samples, dtype=np.float32)
    # librosa resamples each channel separately, then pads/trims to ceil(n * ratio)
    # computed in floating point; doing the same keeps the sample counts identical.
    n_out = int(math.ceil(samples.shape[-1] * (float(target_sr) / orig_sr)))
    rows = np.atleast_2d(samples)
    out = np.zeros((rows.shape[0], n_out), dtype=np.float32)
    for row, channel in zip(out, rows):
        resampled = soxr.resample(channel, orig_sr, target_sr, quality="HQ")
        n = min(n_out, resampled.shape[0])
        row[:n] = resampled[:n]
    return out[0] if samples.ndim == 1 else out
