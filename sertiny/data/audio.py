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
import struct
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

# Largest accepted sample magnitude. Integer PCM decodes into [-1, 1]; float files may go a
# little over full scale, but no recording is 18 dB above it, while float data written
# unscaled (int16 values, +-32768) is 90 dB above: a model would give it a confident label.
MAX_SAMPLE_MAGNITUDE = 8.0


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
    _check_is_complete_file(path)
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
        AudioError: the file is missing, unreadable, not audio, truncated (a WAV data
            chunk shorter than its header says), has no samples, is shorter than
            ``min_duration``, or contains NaN/inf samples or samples far outside [-1, 1]
            (above :data:`MAX_SAMPLE_MAGNITUDE`: float data written unscaled).
    """
    check_int("load_audio", "target_sr", target_sr, min_value=1)
    check_float("load_audio", "min_duration", min_duration, min_value=0.0)

    samples, native_sr = _read_samples(path)  # (frames, channels)
    _check_length(path, samples.shape[0], native_sr, min_duration)
    _check_samples(path, samples)
    # librosa's layout (channels, samples); mean over channels in float32 like librosa.to_mono.
    samples = samples.T
    if mono:
        samples = samples.mean(axis=0)
    return _resample(samples, native_sr, target_sr)


def iter_audio_blocks(path, target_sr, *, block_seconds=10.0):
    """Decode ``path`` block by block: mono float32 at ``target_sr``, memory independent of duration.

    The blocks, joined, equal ``load_audio(path, target_sr)`` sample for sample: soxr's
    streaming resampler gives the one-shot result whatever the block boundaries, and the
    end is padded or trimmed to the same length. Each block is checked as
    :func:`load_audio` checks a whole file (no NaN, nothing far outside [-1, 1]).

    Yields:
        ``(n,)`` float32 arrays.

    Raises:
        AudioError: as :func:`load_audio`, or when the file decodes to fewer frames than
            its header declares.
    """
    check_int("iter_audio_blocks", "target_sr", target_sr, min_value=1)
    info = audio_info(path)
    _check_length(path, info.frames, info.samplerate, 0.0)
    native_sr = info.samplerate
    n_out = int(math.ceil(info.frames * (float(target_sr) / native_sr)))
    resampler = None if native_sr == target_sr else soxr.ResampleStream(native_sr, target_sr, 1, dtype="float32",
                                                                        quality="HQ")
    decoded = emitted = 0
    try:
        with sf.SoundFile(str(path)) as f:
            for block in f.blocks(blocksize=max(1, int(block_seconds * native_sr)), dtype="float32",
                                  always_2d=True):
                _check_samples(path, block)
                decoded += block.shape[0]
                mono = block.T.mean(axis=0)
                last = decoded >= info.frames
                out = mono if resampler is None else resampler.resample_chunk(mono, last=last)
                out = out[: n_out - emitted]
                emitted += out.size
                yield np.ascontiguousarray(out, dtype=np.float32)
    except _READ_ERRORS as exc:
        raise AudioError(path, _unreadable_reason(exc)) from None
    if decoded < info.frames:
        raise AudioError(path, f"decodes to {decoded} frames but its header declares {info.frames}; "
                               "the file is truncated. Re-copy or re-export it")
    if emitted < n_out:
        yield np.zeros(n_out - emitted, dtype=np.float32)


def _read_samples(path):
    """Decode every frame as float32, always 2-D ``(frames, channels)``."""
    _check_is_complete_file(path)
    try:
        with sf.SoundFile(str(path)) as f:
            samples = f.read(dtype="float32", always_2d=True)
            native_sr = f.samplerate
    except _READ_ERRORS as exc:
        raise AudioError(path, _unreadable_reason(exc)) from None
    return samples, native_sr


def _check_samples(path, samples):
    if not np.isfinite(samples).all():
        raise AudioError(
            path,
            "contains NaN or infinite samples; the file is corrupt or was written from "
            "unscaled float data. Re-export it as 16-bit PCM.",
        )
    peak = float(np.abs(samples).max()) if samples.size else 0.0
    if peak > MAX_SAMPLE_MAGNITUDE:
        raise AudioError(
            path,
            f"has samples up to {peak:.6g}, far outside the [-1, 1] of audio (float data written "
            "unscaled, e.g. 16-bit values). Divide it by its full scale (32768 for 16-bit values) "
            "or re-export it as 16-bit PCM.",
        )


def _check_is_complete_file(path):
    _check_is_nonempty_file(path)
    _check_wav_data_complete(path)


def _check_wav_data_complete(path):
    """A WAV file's data chunk must hold the bytes its header declares.

    libsndfile reads a data chunk cut short (an interrupted copy) without an error, as a
    shorter clip; only its log says "should be". Walking the RIFF chunks is cheap and
    exact, so a truncated WAV is reported like any other unreadable file.
    """
    try:
        with open(path, "rb") as f:
            header = f.read(12)
            if len(header) < 12 or header[:4] != b"RIFF" or header[8:12] != b"WAVE":
                return  # not a RIFF WAV (FLAC and OGG report truncation themselves)
            size = os.fstat(f.fileno()).st_size
            position = 12
            while position + 8 <= size:
                f.seek(position)
                chunk_id, length = struct.unpack("<4sI", f.read(8))
                if chunk_id == b"data":
                    available = size - position - 8
                    # 0 and 0xFFFFFFFF: a streaming writer that never went back to fill in the size.
                    if length not in (0, 0xFFFFFFFF) and length > available:
                        raise AudioError(
                            path,
                            f"is truncated: its data chunk declares {length} bytes but the file holds "
                            f"{available} ({available / length:.0%}); the copy or download was probably "
                            "interrupted. Re-copy it",
                        )
                    return
                position += 8 + length + (length & 1)  # chunks are padded to even sizes
    except OSError as exc:
        raise AudioError(path, _unreadable_reason(exc)) from None


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
