"""Feature-level augmentation of training batches (NumPy, applied before each train step).

All of it acts on normalised features, where 0 is the training mean, so a masked span
looks like an average frame rather than silence. Every draw comes from the fold's
``numpy.random.Generator``, so a seed reproduces the same batches.
"""

from pathlib import Path

import numpy as np


def soft_targets(labels, n_classes, smoothing=0.0):
    """One-hot rows of ``labels`` with ``smoothing`` of the mass spread evenly over all classes."""
    targets = np.full((len(labels), n_classes), smoothing / n_classes, dtype=np.float32)
    targets[np.arange(len(labels)), labels] += 1.0 - smoothing
    return targets


def mask_spans(x, rng, *, n_masks, max_width, axis):
    """Zero ``n_masks`` random spans of 1..``max_width`` positions along ``axis`` (1 = time,
    2 = features) of each example of a ``(batch, T, F)`` array; returns a masked copy."""
    x = np.array(x, dtype=np.float32, copy=True)
    size = x.shape[axis]
    for i in range(len(x)):
        for _ in range(n_masks):
            width = int(rng.integers(1, min(max_width, size) + 1))
            start = int(rng.integers(0, size - width + 1))
            if axis == 1:
                x[i, start:start + width, :] = 0.0
            else:
                x[i, :, start:start + width] = 0.0
    return x


def mixup(x, targets, rng, alpha):
    """Mix each example with a random partner of the batch: weight ``lam ~ Beta(alpha, alpha)``
    per example, folded to >= 0.5 so each keeps mostly its own content."""
    lam = rng.beta(alpha, alpha, size=len(x)).astype(np.float32)
    lam = np.maximum(lam, 1.0 - lam)
    partner = rng.permutation(len(x))
    x = lam[:, None, None] * x + (1.0 - lam[:, None, None]) * x[partner]
    targets = lam[:, None] * targets + (1.0 - lam[:, None]) * targets[partner]
    return x.astype(np.float32), targets.astype(np.float32)


def augment_batch(x, labels, config, n_classes, rng, teacher_probs=None):
    """The training batch a :class:`~sertiny.training.TrainConfig` asks for: ``(x, targets)``
    with ``targets`` int labels, or ``(batch, n_classes)`` distributions when the config uses
    soft targets (label smoothing, mixup, distillation towards ``teacher_probs``, the
    batch's (batch, n_classes) teacher probabilities, or a function giving them for the
    augmented batch itself, which is then called after masks and mixup)."""
    if config.time_masks:
        x = mask_spans(x, rng, n_masks=config.time_masks, max_width=config.time_mask_frames, axis=1)
    if config.feature_masks:
        x = mask_spans(x, rng, n_masks=config.feature_masks, max_width=config.feature_mask_width, axis=2)
    if not config.uses_soft_targets:
        return x, labels
    from .distill import blend_targets

    targets = soft_targets(labels, n_classes, config.label_smoothing)
    on_batch = callable(teacher_probs)
    if config.distill_weight > 0 and not on_batch:
        targets = blend_targets(targets, teacher_probs, config.distill_weight)
    if config.mixup_alpha > 0:
        x, targets = mixup(x, targets, rng, config.mixup_alpha)
    if config.distill_weight > 0 and on_batch:
        targets = blend_targets(targets, teacher_probs(x), config.distill_weight)
    return x, targets


class CopyLoader:
    """Base of the perturbing ``load_audio`` callables below. A subclass whose copies change
    sets a higher ``generation``, so they are cached apart from the old ones (see
    :func:`copy_cache_name`)."""

    generation = 1


class SpeedPerturbedLoader(CopyLoader):
    """``load_audio`` for :func:`~sertiny.features.compute_features` that plays each clip
    ``factor`` times faster (tempo and pitch together, Kaldi's speed perturbation): the clip
    is resampled to ``rate / factor`` and read back at ``rate``. Picklable, so feature
    workers can use it."""

    def __init__(self, factor):
        self.factor = float(factor)

    def __call__(self, path, target_sr):
        import soxr

        from ..data.audio import load_audio

        y = load_audio(path, target_sr)
        return soxr.resample(y, target_sr, target_sr / self.factor, quality="HQ").astype(np.float32)


class GainLoader(CopyLoader):
    """``load_audio`` that scales each clip by ``db`` decibels and clips at full scale, as a
    louder or quieter recording stored in 16-bit or float would be. Picklable."""

    def __init__(self, db):
        self.db = float(db)

    def __call__(self, path, target_sr):
        from ..data.audio import load_audio

        y = load_audio(path, target_sr) * np.float32(10.0 ** (self.db / 20.0))
        return np.clip(y, -1.0, 1.0).astype(np.float32)


class NoiseLoader(CopyLoader):
    """``load_audio`` that adds white noise at ``snr_db`` below the clip's mean power. The
    noise of a clip is seeded by its file name, so every run and worker makes the same copy.
    Picklable."""

    def __init__(self, snr_db):
        self.snr_db = float(snr_db)

    def __call__(self, path, target_sr):
        import zlib

        from ..data.audio import load_audio

        y = load_audio(path, target_sr)
        rng = np.random.default_rng(zlib.crc32(Path(path).name.encode()))
        power = float(np.mean(np.square(y, dtype=np.float64))) if len(y) else 0.0
        noise = rng.standard_normal(len(y)) * np.sqrt(power / 10.0 ** (self.snr_db / 10.0))
        return np.clip(y + noise, -1.0, 1.0).astype(np.float32)


class PitchShiftLoader(CopyLoader):
    """``load_audio`` that moves each clip's pitch by ``semitones`` at the same tempo and
    length (librosa's phase vocoder + resampling). Picklable."""

    def __init__(self, semitones):
        self.semitones = float(semitones)

    def __call__(self, path, target_sr):
        import librosa

        from ..data.audio import load_audio

        y = load_audio(path, target_sr)
        shifted = librosa.effects.pitch_shift(y, sr=target_sr, n_steps=self.semitones, res_type="soxr_hq")
        return np.clip(shifted, -1.0, 1.0).astype(np.float32)


class RoomLoader(CopyLoader):
    """``load_audio`` that plays each clip through a random microphone and, with ``rt60`` > 0,
    a random room with that reverberation time (seconds): the recording conditions a user's
    own device adds and a studio corpus lacks. Picklable; each clip's room and microphone are
    seeded by its file name, so every run and worker makes the same copy.

    The microphone is a smooth random response: gains drawn in [-6, 6] dB at octave-spaced
    frequencies from 125 Hz up, linear in dB between them on a log-frequency axis. The room
    is a synthetic impulse response: the direct sound, then exponentially decaying Gaussian
    noise (60 dB down after ``rt60`` seconds, the statistical model of a diffuse late field)
    from a 2-8 ms pre-delay, with a direct-to-reverberant ratio drawn in [0, 10] dB. Both are
    applied as one product in the frequency domain; the copy keeps the clip's length and its
    RMS level (level changes are ``gain_perturb``'s job) and is clipped at full scale."""

    def __init__(self, rt60):
        self.rt60 = float(rt60)

    def __call__(self, path, target_sr):
        import zlib

        from ..data.audio import load_audio

        y = load_audio(path, target_sr)
        rng = np.random.default_rng(zlib.crc32(f"{Path(path).name}|room {self.rt60:g}".encode()))
        return room_colour(y, target_sr, self.rt60, rng)


def room_colour(y, sample_rate, rt60, rng):
    """``y`` through a random microphone and, with ``rt60`` > 0, a random room drawn from
    ``rng`` (:class:`RoomLoader` says which), at the same length and RMS level, float32."""
    # room for the tail, and for the zero-phase microphone's short response before t = 0,
    # which the circular product wraps to the end of the buffer
    n = _fft_size(len(y) + int((rt60 + 0.05) * sample_rate))
    spectrum = np.fft.rfft(y, n) * microphone_response(rng, sample_rate, n)
    if rt60 > 0:
        spectrum *= np.fft.rfft(room_impulse_response(rng, sample_rate, rt60), n)
    coloured = np.fft.irfft(spectrum, n)[: len(y)]
    rms, coloured_rms = (float(np.sqrt(np.mean(np.square(v, dtype=np.float64)))) for v in (y, coloured))
    if coloured_rms > 0:
        coloured *= rms / coloured_rms
    return np.clip(coloured, -1.0, 1.0).astype(np.float32)


def _fft_size(n):
    return 1 << max(1, int(np.ceil(np.log2(max(n, 2)))))


def microphone_response(rng, sample_rate, n_fft):
    """Gains (linear, ``n_fft // 2 + 1`` bins) of a random smooth microphone response: see
    :class:`RoomLoader`."""
    nyquist = sample_rate / 2
    centres = 125.0 * 2.0 ** np.arange(int(np.log2(nyquist / 125.0)) + 1)
    gains_db = rng.uniform(-6.0, 6.0, size=len(centres))
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    log_f = np.log2(np.maximum(freqs, 1.0))
    return 10.0 ** (np.interp(log_f, np.log2(centres), gains_db) / 20.0)


def room_impulse_response(rng, sample_rate, rt60):
    """A random synthetic room impulse response (direct sound + exponential noise tail) with
    reverberation time ``rt60`` seconds: see :class:`RoomLoader`."""
    delay = int(rng.uniform(0.002, 0.008) * sample_rate)
    length = max(int(rt60 * sample_rate), delay + 1)  # a room shorter than its pre-delay still has a tail sample
    t = np.arange(length - delay) / sample_rate
    tail = rng.standard_normal(len(t)) * np.exp(-3.0 * np.log(10.0) * t / rt60)  # -60 dB (1e-3) at rt60
    drr_db = rng.uniform(0.0, 10.0)
    tail *= np.sqrt(10.0 ** (-drr_db / 10.0) / np.sum(np.square(tail)))  # reverberant energy vs a unit direct
    response = np.zeros(length)
    response[0] = 1.0
    response[delay:] += tail
    return response


def waveform_copies(config):
    """``[(cache folder name, loader), ...]``: one perturbed copy of every training clip per
    speed factor, gain, noise level, pitch shift and room of a :class:`~sertiny.training.TrainConfig`."""
    copies = ([(f"speed_{f:g}", SpeedPerturbedLoader(f)) for f in config.speed_perturb]
              + [(f"gain_{db:+g}dB", GainLoader(db)) for db in config.gain_perturb]
              + [(f"noise_{snr:g}dB_snr", NoiseLoader(snr)) for snr in config.noise_snr]
              + [(f"pitch_{st:+g}st", PitchShiftLoader(st)) for st in config.pitch_shift]
              + [(f"room_{rt60:g}s", RoomLoader(rt60)) for rt60 in config.room_rt60])
    return [(copy_cache_name(name, loader), loader) for name, loader in copies]


def copy_cache_name(name, loader):
    """The cache folder of ``loader``'s copies. The feature cache keys on the clip and the front
    end, not on how a copy was made, so a loader whose copies change bumps its ``generation``
    and its new copies go to a new folder instead of reusing the old ones. Generation 1 keeps
    the plain name the caches had before generations were counted, so they stay valid."""
    return name if loader.generation == 1 else f"{name}.g{loader.generation}"
