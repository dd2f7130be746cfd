"""The reference front end: librosa's own ``feature.mfcc`` and ``feature.chroma_stft``, or
``power_to_db(feature.melspectrogram(...))`` for log-mel frames.

This is how the paper's features were made. It needs the ``train`` extra (librosa, and with
it numba and scipy), which is imported on first use, not when this module is imported.
The numpy back end (:mod:`sertiny.features.numpy_frontend`) is checked against it.
"""

import warnings

import numpy as np

from ..errors import require
from .config import as_config
from .numpy_frontend import check_signal, running_peak_gain, with_deltas, with_pitch

# librosa warns on clips shorter than n_fft and on clips without a pitched peak; sertiny
# documents both behaviours (zero-padded analysis, tuning 0.0), so the warnings are noise.
_EXPECTED_WARNINGS = (r"n_fft=\d+ is too large", r"Trying to estimate tuning from empty frequency set")


def extract(y, config):
    """Features of one clip (MFCC + chroma, or log-mel: ``config.kind``), computed by librosa.

    Parameters
    ----------
    y : np.ndarray [shape=(n_samples,), dtype=float32]
        Mono audio at ``config.sample_rate`` (float64 is accepted and rounded to float32).
    config : FeatureConfig or str
        The front end, or a preset name.

    Returns
    -------
    features : np.ndarray [shape=(n_frames, config.n_features), dtype=float32]
        ``np.concatenate([librosa.feature.mfcc(...), librosa.feature.chroma_stft(...)]).T``,
        or ``librosa.power_to_db(librosa.feature.melspectrogram(...), ref=1.0, ...).T``,
        with every argument taken from ``config``.
    """
    librosa = require("librosa", "train")
    config = as_config(config)
    y = check_signal(y, config)
    stft_args = dict(
        sr=config.sample_rate,
        n_fft=config.n_fft,
        hop_length=config.hop_length,
        window=config.window,
        center=config.center,
        pad_mode=config.pad_mode,
    )
    with warnings.catch_warnings():
        for message in _EXPECTED_WARNINGS:
            warnings.filterwarnings("ignore", message=message)
        audio = _level_normalised(librosa, y, config, stft_args)
        if config.kind == "log_mel":
            log_mel = np.ascontiguousarray(_log_mel(librosa, audio, config, stft_args).T, dtype=np.float32)
            return with_deltas(_with_pitch(librosa, log_mel, audio, config, stft_args), config)
        mfcc = _mfcc(librosa, audio, config, stft_args)
        chroma = librosa.feature.chroma_stft(
            **_chroma_input(librosa, audio, config, stft_args),
            n_chroma=config.n_chroma,
            tuning=config.tuning,
            ctroct=config.chroma_ctroct,
            octwidth=config.chroma_octwidth,
            base_c=config.chroma_base_c,
            **stft_args,
        )
    static = np.ascontiguousarray(np.concatenate([mfcc, chroma], axis=0).T, dtype=np.float32)
    return with_deltas(_with_pitch(librosa, static, audio, config, stft_args), config)


def _with_pitch(librosa, static, audio, config, stft_args):
    # librosa's pitch trackers (yin, pyin) differ from sertiny's; the frames' voicing and F0
    # come from librosa's own power spectrogram through the same numpy function.
    if not config.pitch:
        return static
    S = audio["S"] if "S" in audio else _power_spectrogram(librosa, audio["y"], stft_args)
    return with_pitch(static, S, config)


def _power_spectrogram(librosa, y, stft_args):
    """|STFT|^2: the same steps as the internal _spectrogram of librosa's feature functions."""
    return np.abs(librosa.stft(y, **{k: v for k, v in stft_args.items() if k != "sr"})) ** 2


def _level_normalised(librosa, y, config, stft_args):
    """What the features are taken from: ``{"y": y}``, or with ``running_peak_db`` the power
    spectrogram ``{"S": ...}`` attenuated frame by frame (librosa has no such step)."""
    if config.running_peak_db is None:
        return {"y": y}
    S = _power_spectrogram(librosa, y, stft_args)
    mel = librosa.feature.melspectrogram(S=S, sr=config.sample_rate, norm=config.mel_norm, **_mel_args(config))
    return {"S": S * running_peak_gain(mel, amin=config.amin, running_peak_db=config.running_peak_db)}


def _chroma_input(librosa, audio, config, stft_args):
    if config.chroma_floor is None:
        return audio  # chroma_stft's own spectrogram (from y): the paper's exact call
    # chroma_stft has no floor of its own; give it the floored power spectrogram.
    S = audio["S"] if "S" in audio else _power_spectrogram(librosa, audio["y"], stft_args)
    return {"S": np.maximum(S, config.chroma_floor)}


def _mel_args(config):
    return dict(n_mels=config.n_mels, fmin=config.fmin, fmax=config.fmax, htk=config.htk)


def _mfcc(librosa, audio, config, stft_args):
    if config.amin == 1e-10 and config.top_db == 80.0 and "y" in audio:
        # librosa.feature.mfcc's own log-mel: the paper's exact call.
        return librosa.feature.mfcc(**audio, n_mfcc=config.n_mfcc, mel_norm=config.mel_norm, **_mel_args(config),
                                    **stft_args)
    # mfcc() cannot pass amin/top_db to its power_to_db, so build the log-mel here.
    return librosa.feature.mfcc(S=_log_mel(librosa, audio, config, stft_args), n_mfcc=config.n_mfcc)


def _log_mel(librosa, audio, config, stft_args):
    mel = librosa.feature.melspectrogram(**audio, norm=config.mel_norm, **_mel_args(config), **stft_args)
    return librosa.power_to_db(mel, ref=1.0, amin=config.amin, top_db=config.top_db)
