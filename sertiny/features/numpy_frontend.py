"""MFCC + chroma, or log-mel, in numpy alone: the device front end.

This module imports only numpy (no librosa, numba or scipy), so it runs on a Raspberry Pi
with the base install. It replicates librosa 0.11's ``feature.mfcc``,
``feature.chroma_stft`` and ``power_to_db(feature.melspectrogram(...))`` step by step - same windows, padding, filterbanks, tuning estimate
and normalisation, in the same floating-point precision where that decides a result - so
features computed here can feed a model trained on librosa features.

Shapes follow librosa: spectrogram-like arrays are ``(bins, frames)``. Only :func:`extract`
returns the model's layout, ``(frames, n_features)``.

No step calls BLAS. The filterbank products are small (a few MFLOP per clip), and a
multi-threaded BLAS spends more on starting and joining threads than on the arithmetic -
on a busy machine far more (measured >10x slower per clip on 2 shared cores). The mel
product exploits the filterbank's band structure instead, and the chroma and DCT products
use ``np.einsum``'s own loops, so the cost per clip does not depend on the BLAS build or
its thread settings.
"""

import functools
import warnings

import numpy as np

from ..errors import ParameterError
from .config import as_config

# librosa.feature.chroma_stft estimates the tuning with piptrack's defaults, which it does
# not let callers change; they are constants of the feature, not of the config.
_PIPTRACK_FMIN = 150.0  # Hz
_PIPTRACK_FMAX = 4000.0  # Hz
_PIPTRACK_THRESHOLD = 0.1  # peaks must exceed this fraction of the frame's maximum
_TUNING_RESOLUTION = 0.01  # fractions of a chroma bin

_WINDOW_ALPHA = {"hann": 0.5, "hamming": 0.54}


# ---------------------------------------------------------------------------------------
# Spectrogram


def get_window(name, n_fft):
    """Periodic analysis window, bit-identical to ``scipy.signal.get_window(name, n_fft)``.

    Parameters
    ----------
    name : {"hann", "hamming"}
    n_fft : int > 0

    Returns
    -------
    w : np.ndarray [shape=(n_fft,), dtype=float64], read-only
    """
    return _window(name, n_fft)


@functools.lru_cache(maxsize=16)
def _window(name, n_fft):
    if name not in _WINDOW_ALPHA:
        raise ParameterError(f"window must be one of {sorted(_WINDOW_ALPHA)}. Got {name!r} instead.")
    alpha = _WINDOW_ALPHA[name]
    # scipy's generalised cosine window, built symmetric over n_fft + 1 points and truncated
    # (the "periodic" / DFT-even window); written as scipy does so every bit agrees.
    fac = np.linspace(-np.pi, np.pi, n_fft + 1)
    w = np.zeros(n_fft + 1)
    w += alpha * np.cos(0 * fac)
    w += (1.0 - alpha) * np.cos(1 * fac)
    return _read_only(w[:-1])


def frame_signal(y, *, n_fft, hop_length, center=True, pad_mode="constant"):
    """Cut a signal into overlapping frames (a strided view, no copy unless padded).

    Parameters
    ----------
    y : np.ndarray [shape=(n,)]
        Mono signal.
    n_fft : int
        Frame length (samples).
    hop_length : int
        Samples between frame starts.
    center : bool
        Pad ``n_fft // 2`` samples on both sides first, so frame ``t`` is centred on
        sample ``t * hop_length``.
    pad_mode : {"constant", "edge"}
        Fill of the centre padding.

    Returns
    -------
    frames : np.ndarray [shape=(n_frames, n_fft)]
        ``n_frames = 1 + n // hop_length`` if ``center`` else ``1 + (n - n_fft) // hop_length``.
    """
    if center:
        y = np.pad(y, n_fft // 2, mode=pad_mode)
    if y.shape[0] < n_fft:
        raise ParameterError(
            f"The signal has {y.shape[0]} samples, fewer than n_fft={n_fft}; "
            "use center=True or a longer clip."
        )
    n_frames = 1 + (y.shape[0] - n_fft) // hop_length
    return np.lib.stride_tricks.as_strided(
        y, shape=(n_frames, n_fft), strides=(hop_length * y.strides[0], y.strides[0]), writeable=False
    )


def power_spectrogram(y, *, n_fft, hop_length, window="hann", center=True, pad_mode="constant"):
    """Power spectrogram ``|STFT|^2``, as ``np.abs(librosa.stft(y, ...)) ** 2``.

    Parameters
    ----------
    y : np.ndarray [shape=(n,), dtype=float32]
        Mono signal (any amplitude scale; RAVDESS audio is in [-1, 1]).
    n_fft, hop_length, center, pad_mode
        See :func:`frame_signal`.
    window : {"hann", "hamming"}
        Periodic analysis window of length ``n_fft``.

    Returns
    -------
    S : np.ndarray [shape=(1 + n_fft // 2, n_frames), dtype=float32]
        Power per FFT bin (squared amplitude units, not normalised by the window).
        Bin ``k`` is centred on ``k * sample_rate / n_fft`` Hz.
    """
    frames = frame_signal(y, n_fft=n_fft, hop_length=hop_length, center=center, pad_mode=pad_mode)
    # librosa multiplies the float32 frames by a float64 window, so the FFT runs in float64
    # and is rounded to complex64 afterwards; doing the same keeps S bit-identical, which
    # matters for the tuning estimate (a histogram: one flipped bin can move the argmax).
    spectrum = np.fft.rfft(frames * _window(window, n_fft), axis=-1).astype(np.complex64)
    magnitude = np.abs(spectrum)
    return np.square(magnitude, out=magnitude).T


# ---------------------------------------------------------------------------------------
# MFCC


def hz_to_mel(frequencies, *, htk=False):
    """Hz -> mel (Slaney's linear-below-1-kHz scale, or HTK's). Array in, array out."""
    frequencies = np.asanyarray(frequencies, dtype=np.float64)
    if htk:
        return 2595.0 * np.log10(1.0 + frequencies / 700.0)
    f_sp = 200.0 / 3
    mels = frequencies / f_sp
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = np.log(6.4) / 27.0
    return np.where(
        frequencies >= min_log_hz,
        min_log_mel + np.log(np.maximum(frequencies, min_log_hz) / min_log_hz) / logstep,
        mels,
    )


def mel_to_hz(mels, *, htk=False):
    """Mel -> Hz, the inverse of :func:`hz_to_mel`."""
    mels = np.asanyarray(mels, dtype=np.float64)
    if htk:
        return 700.0 * (10.0 ** (mels / 2595.0) - 1.0)
    f_sp = 200.0 / 3
    freqs = f_sp * mels
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = np.log(6.4) / 27.0
    return np.where(mels >= min_log_mel, min_log_hz * np.exp(logstep * (mels - min_log_mel)), freqs)


@functools.lru_cache(maxsize=16)
def mel_filterbank(*, sample_rate, n_fft, n_mels=128, fmin=0.0, fmax=None, htk=False, norm="slaney"):
    """Triangular mel filterbank, as ``librosa.filters.mel``.

    Parameters
    ----------
    sample_rate : int
        Hz.
    n_fft : int
        FFT size the filterbank is applied after.
    n_mels : int
        Number of bands.
    fmin, fmax : float
        Lowest and highest band edge (Hz); ``fmax=None`` is ``sample_rate / 2``.
    htk : bool
        HTK mel formula instead of Slaney's.
    norm : "slaney" or None
        "slaney" divides each triangle by its width in Hz / 2 (constant energy per band).

    Returns
    -------
    M : np.ndarray [shape=(n_mels, 1 + n_fft // 2), dtype=float32], read-only
        ``M @ S`` maps a power spectrogram to mel-band power.
    """
    if fmax is None:
        fmax = float(sample_rate) / 2
    fft_freqs = np.fft.rfftfreq(n=n_fft, d=1.0 / sample_rate)
    mel_f = mel_to_hz(np.linspace(hz_to_mel(fmin, htk=htk), hz_to_mel(fmax, htk=htk), n_mels + 2), htk=htk)
    fdiff = np.diff(mel_f)
    ramps = np.subtract.outer(mel_f, fft_freqs)
    lower = -ramps[:-2] / fdiff[:-1, np.newaxis]
    upper = ramps[2:] / fdiff[1:, np.newaxis]
    weights = np.maximum(0, np.minimum(lower, upper)).astype(np.float32)
    if norm == "slaney":
        # Scaling after the float32 cast, in float64, as librosa does (its in-place `*=`).
        weights *= 2.0 / (mel_f[2 : n_mels + 2] - mel_f[:n_mels])[:, np.newaxis]
    elif norm is not None:
        raise ParameterError(f"mel norm must be 'slaney' or None. Got {norm!r} instead.")
    if not np.all((mel_f[:-2] == 0) | (weights.max(axis=1) > 0)):
        warnings.warn(
            "Empty filters detected in the mel filterbank: some bands will always be zero. "
            "Raise the sample rate (and fmax) or reduce n_mels.",
            stacklevel=2,
        )
    return _read_only(weights)


@functools.lru_cache(maxsize=16)
def dct_matrix(*, n_mfcc, n_mels):
    """Orthonormal DCT-II basis, as ``scipy.fft.dct(x, type=2, norm="ortho", axis=0)[:n_mfcc]``.

    Returns
    -------
    D : np.ndarray [shape=(n_mfcc, n_mels), dtype=float64], read-only
        float64 on purpose: the product with a float32 log-mel spectrogram then sums in
        float64, 8x closer to the exact DCT than scipy's float32 DCT (and so than librosa),
        at no measurable cost.
    """
    n = np.arange(n_mels)
    k = np.arange(n_mfcc)[:, np.newaxis]
    basis = np.cos(np.pi * k * (2 * n + 1) / (2 * n_mels)) * np.sqrt(2.0 / n_mels)
    basis[0] *= np.sqrt(0.5)
    return _read_only(basis)


def power_to_db(S, *, amin=1e-10, top_db=80.0):
    """Power -> decibels re 1.0, as ``librosa.power_to_db(S, ref=1.0, amin, top_db)``.

    Parameters
    ----------
    S : np.ndarray [shape=(..., n_bands, n_frames), dtype=float32]
        Non-negative power.
    amin : float > 0
        Floor (power units) applied before the log, so silence maps to ``10 * log10(amin)`` dB.
    top_db : float >= 0 or None
        Raise everything to at least ``S_db.max() - top_db``; the max is over the WHOLE
        array, so the result depends on the loudest frame of the clip.

    Returns
    -------
    S_db : np.ndarray [shape=S.shape, dtype=float32]
    """
    S_db = 10.0 * np.log10(np.maximum(amin, S))
    if top_db is not None:
        S_db = np.maximum(S_db, S_db.max() - top_db)
    return S_db


def mel_spectrogram(*, S, sample_rate, n_mels=128, fmin=0.0, fmax=None, htk=False, norm="slaney"):
    """Mel-band power, as ``librosa.feature.melspectrogram(S=S, ...)``.

    Parameters
    ----------
    S : np.ndarray [shape=(1 + n_fft // 2, n_frames), dtype=float32]
        Power spectrogram (:func:`power_spectrogram`); ``n_fft`` is inferred from its height.
    sample_rate : int
        Hz.
    n_mels, fmin, fmax, htk, norm
        Filterbank, see :func:`mel_filterbank`.

    Returns
    -------
    M : np.ndarray [shape=(n_mels, n_frames), dtype=float32]
        ``mel_filterbank(...) @ S``, summed in float64 (so within float32 rounding of the
        exact product; librosa's float32 BLAS product differs from it by a few ulps).
    """
    bands = _mel_bands(sample_rate, 2 * (S.shape[0] - 1), n_mels, fmin, fmax, htk, norm)
    return bands.apply(S)


def running_peak_gain(mel, *, amin, running_peak_db):
    """Per-frame attenuation of the ``running_peak_db`` level normalisation (see FeatureConfig).

    Parameters
    ----------
    mel : np.ndarray [shape=(n_mels, n_frames)]
        Mel-band power of the clip's frames (:func:`mel_spectrogram`).
    amin : float > 0
        The log's power floor.
    running_peak_db : float > 0
        dB between ``amin`` and the level the running peak is held at.

    Returns
    -------
    gain : np.ndarray [shape=(n_frames,), dtype=float32]
        ``ceiling / max(ceiling, running max of the frames' mean band power)``, ``ceiling =
        amin * 10**(running_peak_db / 10)``: at most 1, and frame ``t``'s depends on frames
        ``<= t`` only (one running maximum of state, so a stream computes it frame by frame).
    """
    loudness = np.asarray(mel, dtype=np.float64).mean(axis=0)
    ceiling = amin * 10.0 ** (running_peak_db / 10.0)
    running_peak = np.maximum.accumulate(np.maximum(loudness, ceiling))
    return (ceiling / running_peak).astype(np.float32)


def log_mel_spectrogram(*, S, sample_rate, n_mels=128, fmin=0.0, fmax=None, htk=False, mel_norm="slaney",
                        amin=1e-10, top_db=80.0):
    """Log-mel spectrogram (dB re 1.0), as ``librosa.power_to_db(librosa.feature.melspectrogram(S=S, ...))``.

    Parameters
    ----------
    S : np.ndarray [shape=(1 + n_fft // 2, n_frames), dtype=float32]
        Power spectrogram (:func:`power_spectrogram`); ``n_fft`` is inferred from its height.
    sample_rate, n_mels, fmin, fmax, htk, mel_norm, amin, top_db
        As for :func:`mfcc`, which takes its cepstrum from this spectrogram.

    Returns
    -------
    M : np.ndarray [shape=(n_mels, n_frames), dtype=float32]
        ``10 * log10(max(amin, mel power))`` per band and frame, in dB; with ``top_db`` at
        least the clip's maximum minus ``top_db``.
    """
    mel = mel_spectrogram(S=S, sample_rate=sample_rate, n_mels=n_mels, fmin=fmin, fmax=fmax, htk=htk, norm=mel_norm)
    return power_to_db(mel, amin=amin, top_db=top_db)


def mfcc(*, S, sample_rate, n_mfcc=20, n_mels=128, fmin=0.0, fmax=None, htk=False, mel_norm="slaney",
         amin=1e-10, top_db=80.0):
    """MFCCs from a power spectrogram, as ``librosa.feature.mfcc`` (DCT-II ortho, no lifter).

    Parameters
    ----------
    S : np.ndarray [shape=(1 + n_fft // 2, n_frames), dtype=float32]
        Power spectrogram (:func:`power_spectrogram`); ``n_fft`` is inferred from its height.
    sample_rate : int
        Hz.
    n_mfcc : int
        Coefficients returned.
    n_mels, fmin, fmax, htk, mel_norm
        Mel filterbank, see :func:`mel_filterbank`.
    amin, top_db
        Log compression, see :func:`power_to_db`.

    Returns
    -------
    M : np.ndarray [shape=(n_mfcc, n_frames), dtype=float32]
        Cepstral coefficients of the log-mel spectrum (dB units; ``M[0]`` is
        ``sqrt(n_mels)`` times the mean log-mel level).
    """
    log_mel = log_mel_spectrogram(S=S, sample_rate=sample_rate, n_mels=n_mels, fmin=fmin, fmax=fmax, htk=htk,
                                  mel_norm=mel_norm, amin=amin, top_db=top_db)
    # Frames-major float64 operands let einsum run contiguous dot products (2x faster here).
    frames_major = np.ascontiguousarray(log_mel.T, dtype=np.float64)
    return np.einsum("tm,km->tk", frames_major, dct_matrix(n_mfcc=n_mfcc, n_mels=n_mels)).T.astype(np.float32)


class _AdjacentBands:
    """A filterbank in which every FFT bin feeds at most two adjacent bands, applied without BLAS.

    Mel triangles overlap only their neighbours: a bin on the rising edge of band ``m`` is on
    the falling edge of band ``m - 1`` and nowhere else. Grouping the bins by the highest
    band they feed turns the product into two weighted segment sums (``np.add.reduceat``),
    O(bins x frames) instead of O(bands x bins x frames).
    """

    def __init__(self, weights):
        n_bands, n_bins = weights.shape
        feeds = weights > 0
        bins = np.arange(n_bins)
        top = np.where(feeds.any(axis=0), n_bands - 1 - np.argmax(feeds[::-1], axis=0), -1)
        has_lower = top >= 1
        self.rise = np.where(top >= 0, weights[np.maximum(top, 0), bins], 0).astype(np.float64)
        self.fall = np.where(has_lower, weights[np.maximum(top - 1, 0), bins], 0).astype(np.float64)
        explained = np.zeros_like(feeds)
        explained[top[top >= 0], bins[top >= 0]] = True
        explained[top[has_lower] - 1, bins[has_lower]] = True
        # Bins that feed no band may join any group (their weights are 0), which keeps the
        # groups contiguous; bins that do feed a band must already be in band order.
        grouped = np.maximum.accumulate(top)
        self.dense = None
        if (feeds & ~explained).any() or (grouped[top >= 0] != top[top >= 0]).any():
            self.dense = np.asarray(weights)  # not banded: plain (einsum) product
            return
        starts = np.searchsorted(grouped, np.arange(n_bands), side="left")
        stops = np.searchsorted(grouped, np.arange(n_bands), side="right")
        self.groups = np.flatnonzero(stops > starts)
        self.starts = starts[self.groups]
        self.n_bands = n_bands

    def apply(self, S):
        """``weights @ S`` for ``S`` of shape (bins, frames); float32 result, float64 sums."""
        if self.dense is not None:
            return np.einsum("mf,ft->mt", self.dense, S)
        S = S.astype(np.float64)
        # reduceat sums rows starts[k]:starts[k + 1] (the last group runs to the end).
        rise = np.add.reduceat(S * self.rise[:, np.newaxis], self.starts, axis=0)
        fall = np.add.reduceat(S * self.fall[:, np.newaxis], self.starts, axis=0)
        out = np.zeros((self.n_bands, S.shape[1]))
        out[self.groups] += rise
        lower = self.groups >= 1
        out[self.groups[lower] - 1] += fall[lower]
        return out.astype(np.float32)


@functools.lru_cache(maxsize=16)
def _mel_bands(sample_rate, n_fft, n_mels, fmin, fmax, htk, norm):
    return _AdjacentBands(mel_filterbank(sample_rate=sample_rate, n_fft=n_fft, n_mels=n_mels, fmin=fmin,
                                         fmax=fmax, htk=htk, norm=norm))


# ---------------------------------------------------------------------------------------
# Chroma


@functools.lru_cache(maxsize=256)
def chroma_filterbank(*, sample_rate, n_fft, n_chroma=12, tuning=0.0, ctroct=5.0, octwidth=2.0, norm=2,
                      base_c=True):
    """Chroma filterbank, as ``librosa.filters.chroma``.

    Each FFT bin contributes a Gaussian bump (one chroma bin wide, wider at low frequencies
    where FFT bins span more than a semitone) around its pitch class, columns normalised to
    unit ``norm``, then weighted by a Gaussian over octaves centred on ``ctroct``.

    Parameters
    ----------
    sample_rate : int
        Hz.
    n_fft : int
        FFT size the filterbank is applied after.
    n_chroma : int
        Bins per octave.
    tuning : float
        Offset of the reference A440 in fractions of a chroma bin.
    ctroct, octwidth : float
        Centre and width (octaves above 27.5 Hz) of the octave weighting; ``octwidth=None``
        disables it.
    norm : float > 0, np.inf or None
        Norm each column (FFT bin) is normalised to before the octave weighting.
    base_c : bool
        Row 0 is C (else A).

    Returns
    -------
    C : np.ndarray [shape=(n_chroma, 1 + n_fft // 2), dtype=float32], read-only
        ``C @ S`` maps a power spectrogram to chroma energy.
    """
    frequencies = np.linspace(0, sample_rate, n_fft, endpoint=False)[1:]
    frqbins = n_chroma * _hz_to_octs(frequencies, tuning=tuning, bins_per_octave=n_chroma)
    # 0 Hz has no pitch: place it 1.5 octaves below bin 1 (so its bump is broad and centred
    # half a chroma turn away), as Ellis' chromagram_E does.
    frqbins = np.concatenate(([frqbins[0] - 1.5 * n_chroma], frqbins))
    binwidthbins = np.concatenate((np.maximum(frqbins[1:] - frqbins[:-1], 1.0), [1]))
    D = np.subtract.outer(frqbins, np.arange(0, n_chroma, dtype="d")).T
    half = np.round(float(n_chroma) / 2)
    # Distance to each chroma bin, wrapped into [-n_chroma/2, n_chroma/2); the 10 * n_chroma
    # offset keeps the remainder's argument positive.
    D = np.remainder(D + half + 10 * n_chroma, n_chroma) - half
    weights = np.exp(-0.5 * (2 * D / np.tile(binwidthbins, (n_chroma, 1))) ** 2)
    weights = _normalize(weights, norm=norm, axis=0)
    if octwidth is not None:
        weights *= np.tile(np.exp(-0.5 * (((frqbins / n_chroma - ctroct) / octwidth) ** 2)), (n_chroma, 1))
    if base_c:
        weights = np.roll(weights, -3 * (n_chroma // 12), axis=0)
    return _read_only(np.ascontiguousarray(weights[:, : int(1 + n_fft / 2)], dtype=np.float32))


def estimate_tuning(*, S, sample_rate, bins_per_octave=12, resolution=_TUNING_RESOLUTION):
    """Tuning offset of a clip, as ``librosa.estimate_tuning(S=S, sr=sample_rate, ...)``.

    Spectral peaks between 150 Hz and 4 kHz that exceed 10 % of their frame's maximum are
    located to sub-bin precision (parabolic interpolation); the stronger half of them vote
    in a histogram of their deviation from the nearest equal-tempered pitch.

    Parameters
    ----------
    S : np.ndarray [shape=(1 + n_fft // 2, n_frames), dtype=float32]
        Power spectrogram (librosa's chroma_stft passes power, not magnitude, here too).
    sample_rate : int
        Hz.
    bins_per_octave : int
        Pitch classes per octave the deviation is measured against.
    resolution : float
        Histogram bin width, in fractions of a pitch class.

    Returns
    -------
    tuning : float in [-0.5, 0.5)
        Offset in fractions of a pitch class; 0.0 if the clip has no usable peak.
    """
    pitches, magnitudes = _spectral_peaks(S, sample_rate)
    voiced = pitches > 0
    if not voiced.any():
        return 0.0
    threshold = np.median(magnitudes[voiced])
    return pitch_tuning(pitches[voiced & (magnitudes >= threshold)], resolution=resolution,
                        bins_per_octave=bins_per_octave)


def pitch_tuning(frequencies, *, resolution=_TUNING_RESOLUTION, bins_per_octave=12):
    """Most common deviation of ``frequencies`` (Hz) from equal temperament, as ``librosa.pitch_tuning``.

    Returns
    -------
    tuning : float in [-0.5, 0.5)
        Left edge of the fullest histogram bin, in fractions of a pitch class; 0.0 if
        ``frequencies`` holds no positive value.
    """
    frequencies = np.atleast_1d(frequencies)
    frequencies = frequencies[frequencies > 0]
    if not frequencies.size:
        return 0.0
    residual = np.mod(bins_per_octave * _hz_to_octs(frequencies), 1.0)
    # A residual of 0.95 is a deviation of -0.05 from the next pitch up.
    residual[residual >= 0.5] -= 1.0
    edges = np.linspace(-0.5, 0.5, int(np.ceil(1.0 / resolution)) + 1)
    counts, _ = np.histogram(residual, edges)
    return float(edges[np.argmax(counts)])


def chroma(*, S, sample_rate, n_chroma=12, tuning=None, ctroct=5.0, octwidth=2.0, base_c=True, floor=None):
    """Chromagram from a power spectrogram, as ``librosa.feature.chroma_stft(S=S, ...)``.

    Parameters
    ----------
    S : np.ndarray [shape=(1 + n_fft // 2, n_frames), dtype=float32]
        Power spectrogram; ``n_fft`` is inferred from its height.
    sample_rate : int
        Hz.
    n_chroma : int
        Bins per octave.
    tuning : float or None
        Fixed tuning (fractions of a bin); None estimates it from ``S`` (:func:`estimate_tuning`).
    ctroct, octwidth, base_c
        Filterbank shape, see :func:`chroma_filterbank`.
    floor : float > 0 or None
        Power floor per FFT bin (units of ``S``): the chroma (and the tuning estimate) is
        taken from ``np.maximum(S, floor)``, as ``librosa.feature.chroma_stft(S=np.maximum(S,
        floor))``, so a frame lying wholly below it gets a constant chroma. None: no floor.

    Returns
    -------
    C : np.ndarray [shape=(n_chroma, n_frames), dtype=float32]
        Chroma energy, each frame scaled so its largest bin is 1 (frames whose largest bin
        is below the float32 ``tiny`` are left as they are: all-zero stays zero).
    """
    n_fft = 2 * (S.shape[0] - 1)
    if floor is not None:
        S = np.maximum(S, np.float32(floor))
    if tuning is None:
        tuning = estimate_tuning(S=S, sample_rate=sample_rate, bins_per_octave=n_chroma)
    basis = chroma_filterbank(sample_rate=sample_rate, n_fft=n_fft, n_chroma=n_chroma, tuning=tuning,
                              ctroct=ctroct, octwidth=octwidth, base_c=base_c)
    return _normalize(np.einsum("cf,ft->ct", basis, S), norm=np.inf, axis=0)


# ---------------------------------------------------------------------------------------
# The whole front end


def check_signal(y, config):
    """Validate a mono signal for ``config``; return it as a float32 1-D array.

    Raises :class:`~sertiny.errors.ParameterError` (before any heavy work) for a signal
    that is not 1-D, not floating point, empty, not finite, or - with ``center=False`` -
    shorter than ``n_fft``. With ``center=True`` any non-empty clip gives at least one frame
    (as librosa, which only warns): a clip shorter than ``n_fft`` is analysed zero-padded.
    """
    y = np.asarray(y)
    if y.ndim != 1:
        raise ParameterError(f"Expected a mono signal of shape (n_samples,); got shape {y.shape}. "
                             "Downmix first (mean over channels).")
    if not np.issubdtype(y.dtype, np.floating):
        raise ParameterError(f"Expected floating-point samples in [-1, 1]; got dtype {y.dtype}.")
    if y.size == 0:
        raise ParameterError("The signal is empty.")
    if not config.center and y.size < config.n_fft:
        raise ParameterError(f"The signal has {y.size} samples, fewer than n_fft={config.n_fft}, "
                             "and center=False gives no frame for it.")
    y = y.astype(np.float32, copy=False)
    if not np.isfinite(y).all():
        raise ParameterError("The signal contains NaN or infinite samples.")
    return y


def extract(y, config):
    """Features of one clip: MFCC + chroma, or log-mel (``config.kind``).

    Parameters
    ----------
    y : np.ndarray [shape=(n_samples,), dtype=float32]
        Mono audio at ``config.sample_rate`` (float64 is accepted and rounded to float32).
    config : FeatureConfig or str
        The front end, or a preset name.

    Returns
    -------
    features : np.ndarray [shape=(n_frames, config.n_features), dtype=float32]
        Per frame ``n_mfcc`` MFCCs (dB-scaled cepstrum) then ``n_chroma`` chroma values in
        [0, 1]; or, for ``kind="log_mel"``, the ``n_mels`` log-mel values (dB); with
        ``config.pitch``, then voicing and F0 (:func:`pitch`); with ``config.deltas``, then
        the causal first difference of each (:func:`with_deltas`).
        ``n_frames = config.n_frames(n_samples)``.

    Notes
    -----
    Filterbanks, window and DCT basis are built on the first call for a config and cached
    (``functools.lru_cache`` on their arguments), so a clip costs one STFT, the tuning
    estimate if ``config.tuning`` is None, and three small products (one for log-mel).
    """
    config = as_config(config)
    y = check_signal(y, config)
    S = power_spectrogram(y, n_fft=config.n_fft, hop_length=config.hop_length, window=config.window,
                          center=config.center, pad_mode=config.pad_mode)
    if config.running_peak_db is not None:
        mel = mel_spectrogram(S=S, sample_rate=config.sample_rate, n_mels=config.n_mels, fmin=config.fmin,
                              fmax=config.fmax, htk=config.htk, norm=config.mel_norm)
        S = S * running_peak_gain(mel, amin=config.amin, running_peak_db=config.running_peak_db)
    if config.kind == "log_mel":
        return with_deltas(with_pitch(np.ascontiguousarray(log_mel_spectrogram(
            S=S, sample_rate=config.sample_rate, n_mels=config.n_mels, fmin=config.fmin, fmax=config.fmax,
            htk=config.htk, mel_norm=config.mel_norm, amin=config.amin, top_db=config.top_db,
        ).T, dtype=np.float32), S, config), config)
    features = np.empty((S.shape[1], config.n_mfcc + config.n_chroma), dtype=np.float32)
    features[:, : config.n_mfcc] = mfcc(
        S=S, sample_rate=config.sample_rate, n_mfcc=config.n_mfcc, n_mels=config.n_mels, fmin=config.fmin,
        fmax=config.fmax, htk=config.htk, mel_norm=config.mel_norm, amin=config.amin, top_db=config.top_db,
    ).T
    features[:, config.n_mfcc :] = chroma(
        S=S, sample_rate=config.sample_rate, n_chroma=config.n_chroma, tuning=config.tuning,
        ctroct=config.chroma_ctroct, octwidth=config.chroma_octwidth, base_c=config.chroma_base_c,
        floor=config.chroma_floor,
    ).T
    return with_deltas(with_pitch(features, S, config), config)


# F0 and voicing (FeatureConfig.pitch): Boersma's autocorrelation method (Proc. Institute of
# Phonetic Sciences 17, 1993; Praat's "To Pitch (ac)"), frame by frame and without its
# path finder, which looks ahead. Praat's defaults where it has them.
PITCH_FMIN, PITCH_FMAX = 60.0, 600.0  # Hz: low male speech to high-arousal female speech
VOICING_THRESHOLD = 0.45  # Praat's voicing threshold on the normalised autocorrelation peak
OCTAVE_COST = 0.01  # Praat's: per octave of lag, favours the higher of two near-equal candidates
F0_REFERENCE_HZ = 27.5  # openSMILE's F0semitoneFrom27.5Hz: unvoiced 0 lies below every voiced value


def pitch(*, S, sample_rate, n_fft, window="hann"):
    """Voicing strength and F0 of each frame, from its power spectrum.

    The autocorrelation of a windowed frame is the inverse FFT of its power spectrum
    (Wiener-Khinchin), so this costs one inverse FFT per frame on top of the front end's
    STFT. Divided by the window's own autocorrelation (Boersma's correction), its highest
    peak between lags ``sample_rate / PITCH_FMAX`` and ``sample_rate / PITCH_FMIN`` is the
    period; the peak's height is how periodic the frame is. Both are unchanged by a gain.

    Parameters
    ----------
    S : np.ndarray [shape=(1 + n_fft // 2, frames)]
        Power spectrogram ``|STFT|^2``.
    sample_rate, n_fft : int
    window : {"hann", "hamming"}

    Returns
    -------
    voicing_f0 : np.ndarray [shape=(2, frames), dtype=float32]
        Row 0: the normalised autocorrelation peak in [0, 1] (0: no peak, or a silent frame).
        Row 1: F0 in semitones above 27.5 Hz where that peak reaches
        :data:`VOICING_THRESHOLD`, else 0.
    """
    lags, window_r, bonus = _pitch_lags(sample_rate, n_fft, window)
    r = np.fft.irfft(np.asarray(S, dtype=np.float64), n=n_fft, axis=0)
    energy = r[0]
    with np.errstate(divide="ignore", invalid="ignore"):
        strength = np.where(energy > 0, r[lags] / energy, 0.0) / window_r[:, None]
    # Every interior local maximum, its height and lag refined by a parabola through its
    # neighbours (at short lags the integer lags straddle a narrow peak: compared unrefined,
    # the peak at twice the period would often win).
    prev, here, nxt = strength[:-2], strength[1:-1], strength[2:]
    peak = (here > prev) & (here >= nxt)
    curvature = prev - 2.0 * here + nxt
    with np.errstate(divide="ignore", invalid="ignore"):
        offset = np.where(peak & (curvature < 0), 0.5 * (prev - nxt) / curvature, 0.0)
    heights = here - 0.25 * (prev - nxt) * offset
    score = np.where(peak, heights + bonus[1:-1, None], -np.inf)
    best = np.argmax(score, axis=0)
    frames = np.arange(strength.shape[1])
    found = np.isfinite(score[best, frames])
    height = np.where(found, heights[best, frames], 0.0)
    voicing = np.clip(height, 0.0, 1.0)
    period = lags[1:-1][best] + offset[best, frames]
    voiced = found & (voicing >= VOICING_THRESHOLD)
    with np.errstate(divide="ignore", invalid="ignore"):
        f0 = np.where(voiced, 12.0 * np.log2(sample_rate / period / F0_REFERENCE_HZ), 0.0)
    return np.stack([voicing, f0]).astype(np.float32)


@functools.lru_cache(maxsize=16)
def _pitch_lags(sample_rate, n_fft, window):
    """``(lags, the window's normalised autocorrelation at them, octave bonus)`` for :func:`pitch`:
    the lags of the F0 range plus one on each side, so a peak at either end can be told
    from a slope."""
    low = max(1, int(np.floor(sample_rate / PITCH_FMAX)) - 1)
    high = min(n_fft // 2, int(np.ceil(sample_rate / PITCH_FMIN)) + 1)
    lags = np.arange(low, high + 1)
    w = get_window(window, n_fft)
    window_r = np.fft.irfft(np.abs(np.fft.rfft(w)) ** 2, n=n_fft)
    bonus = OCTAVE_COST * np.log2(sample_rate / (PITCH_FMIN * lags))
    return _read_only(lags), _read_only(window_r[lags] / window_r[0]), _read_only(bonus)


def with_pitch(static, S, config):
    """``static`` (frames, n) with, if ``config.pitch``, the frames' voicing and F0
    (:func:`pitch`) appended (both back ends call this)."""
    if not config.pitch:
        return static
    voicing_f0 = pitch(S=S, sample_rate=config.sample_rate, n_fft=config.n_fft, window=config.window)
    return np.ascontiguousarray(np.concatenate([static, voicing_f0.T], axis=1), dtype=np.float32)


def with_deltas(static, config):
    """``static`` (frames, n_static) with, if ``config.deltas``, each value's causal first
    difference appended (frame t minus frame t - 1, zeros for frame 0): what a stream can
    compute with one frame of state (both back ends call this)."""
    if not config.deltas:
        return static
    deltas = np.zeros_like(static)
    np.subtract(static[1:], static[:-1], out=deltas[1:])
    return np.ascontiguousarray(np.concatenate([static, deltas], axis=1), dtype=np.float32)


# ---------------------------------------------------------------------------------------
# Helpers replicating librosa.util / librosa.core.pitch internals


def _spectral_peaks(S, sample_rate):
    """Interpolated spectral peaks in the tuning band: librosa.piptrack's non-zero entries.

    Returns ``(pitches, magnitudes)``, 1-D float32 arrays with one entry per peak (Hz, and
    the parabola's peak value in the units of ``S``).
    """
    n_bins = S.shape[0]
    n_fft = 2 * (n_bins - 1)
    band = _tuning_band(sample_rate, n_fft)
    if band.stop <= band.start:
        empty = np.zeros(0, dtype=np.float32)
        return empty, empty
    # Look at the band plus one neighbour bin each side (piptrack's stencils reach one bin
    # away); a slice edge is only treated as an array edge where it really is one.
    lo, hi = max(band.start - 1, 0), min(band.stop + 1, n_bins)
    sub = S[lo:hi]
    above = sub * (sub > _PIPTRACK_THRESHOLD * S.max(axis=0))
    is_peak = _local_max(above)
    is_peak[: band.start - lo] = False
    is_peak[band.stop - lo :] = False
    rows, cols = np.nonzero(is_peak)
    # Interpolate at the peaks only. A peak is never in row 0 (see _local_max); it can be in
    # the last row only if that is the top FFT bin, where piptrack's shift is 0 and
    # np.gradient takes a one-sided difference.
    at_top = rows == sub.shape[0] - 1
    prev, here, nxt = sub[rows - 1, cols], sub[rows, cols], sub[np.where(at_top, rows, rows + 1), cols]
    shift = np.where(at_top, np.float32(0), _parabolic_shift(prev, here, nxt))
    slope = np.where(at_top, here - prev, (nxt - prev) / 2.0)
    magnitudes = here + 0.5 * slope * shift
    pitches = ((rows + lo) + shift) * float(sample_rate) / n_fft
    return pitches.astype(np.float32), magnitudes


@functools.lru_cache(maxsize=16)
def _tuning_band(sample_rate, n_fft):
    freqs = np.fft.rfftfreq(n=n_fft, d=1.0 / sample_rate)
    fmax = min(_PIPTRACK_FMAX, float(sample_rate) / 2)
    inside = np.flatnonzero((freqs >= _PIPTRACK_FMIN) & (freqs < fmax))
    return slice(int(inside[0]), int(inside[-1]) + 1) if inside.size else slice(0, 0)


def _local_max(x):
    """librosa.util.localmax along axis 0: ``x[k] > x[k-1] and x[k] >= x[k+1]``.

    The first row is never a maximum; the last is one if it exceeds the row before.
    """
    out = np.zeros(x.shape, dtype=bool)
    out[1:-1] = (x[1:-1] > x[:-2]) & (x[1:-1] >= x[2:])
    if x.shape[0] > 1:
        out[-1] = x[-1] > x[-2]
    return out


def _parabolic_shift(prev, here, nxt):
    """Vertex offset (bins) of the parabola through three neighbouring values (float32 arrays).

    librosa's piptrack stencil: 0 wherever the vertex would lie more than one bin away.
    The arithmetic mirrors its numba code, where the integer constants promote to float64.
    """
    a = (nxt + prev) - 2 * here.astype(np.float64)
    b = (nxt - prev).astype(np.float64) / 2
    near = np.abs(b) < np.abs(a)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(near, -b / a, 0.0).astype(np.float32)


def _hz_to_octs(frequencies, *, tuning=0.0, bins_per_octave=12):
    """Octaves above A0 (= A440 / 16, shifted by ``tuning`` bins), as librosa.hz_to_octs."""
    a440 = 440.0 * 2.0 ** (tuning / bins_per_octave)
    return np.log2(np.asanyarray(frequencies) / (float(a440) / 16))


def _normalize(S, *, norm, axis):
    """librosa.util.normalize with its default threshold and fill=None.

    Vectors whose norm is below the smallest normal number of S's dtype are left unscaled.
    """
    magnitude = np.abs(S).astype(np.float64)
    if norm == np.inf:
        length = np.max(magnitude, axis=axis, keepdims=True)
    elif norm is None:
        return S
    else:
        length = np.sum(magnitude**norm, axis=axis, keepdims=True) ** (1.0 / norm)
    length[length < np.finfo(S.dtype).tiny] = 1.0
    return (S / length).astype(S.dtype, copy=False)


def _read_only(array):
    array.flags.writeable = False
    return array
