"""Audio in, emotion out: the whole device path for one clip.

decode (soundfile) -> resample (soxr) -> MFCC + chroma or log-mel (NumPy front end) -> normalise
with the bundle's statistics -> windows of T frames -> TFLite -> combined probabilities.

Windows. A clip of at most T frames is one window, zero-padded at the end exactly as in
training (:func:`sertiny.features.frames.fit_to_length`, applied by the runner). A longer
clip is cut into windows of T frames that overlap by half (the last one ends at the clip's end), each
window is classified, and the clip's probabilities are the mean of the windows'
probabilities (soft voting). Silent windows are left out of that mean, so a pause in a
long recording does not dilute the speech around it.

Silence. A window whose loudest 1-hop block has an RMS level below ``silence_db``
(dB relative to digital full scale) is silent. A clip with only silent windows is
reported as silence with no emotion: a model trained on speech has no meaningful answer
for it. The default of -55 dBFS is 8 dB below the quietest RAVDESS take (loudest block
-47 dBFS) and well above its gated background (about -108 dBFS).

numpy, soundfile, soxr and a TFLite runtime only: this module is on the device path.
"""

import dataclasses
import math

import numpy as np

from ..data.audio import load_audio
from ..errors import AudioError
from ..features import extract
from .bundle import Bundle
from .runner import load_runner

DEFAULT_SILENCE_DB = -55.0
# Hop between windows of a long clip, as a fraction of T: half-overlapping windows score
# every frame at least once away from a window edge.
WINDOW_HOP_FRACTION = 0.5


@dataclasses.dataclass(frozen=True)
class Prediction:
    """The result for one clip (or one live window).

    Attributes:
        label: the most probable class, or None when ``silent``.
        probabilities: ``(C,)`` float32, in ``labels`` order (all zeros when ``silent``).
        labels: the bundle's class names.
        silent: the audio's level stayed below the silence threshold.
        level_db: RMS level of the loudest hop-long block, dBFS.
        windows: windows scored (0 when silent); more than 1 for clips longer than T.
        duration: seconds of audio at the front end's rate.
        source: the file name, or None for live audio.
    """

    label: str | None
    probabilities: np.ndarray
    labels: tuple
    silent: bool
    level_db: float
    windows: int
    duration: float
    source: str | None = None

    @property
    def confidence(self):
        """Probability of ``label`` (0.0 when silent)."""
        return 0.0 if self.silent else float(np.max(self.probabilities))

    def to_dict(self):
        """JSON-able form: one object per clip, as ``sertiny infer --json`` prints it."""
        return {
            "file": self.source,
            "label": self.label,
            "silent": self.silent,
            "confidence": round(self.confidence, 6),
            "probabilities": {k: round(float(p), 6) for k, p in zip(self.labels, self.probabilities)},
            "level_dbfs": round(self.level_db, 2),
            "windows": self.windows,
            "duration_s": round(self.duration, 3),
        }


class Classifier:
    """A bundle and one of its variants, ready to classify audio.

    Example::

        clf = Classifier.from_path("bundles/res_lstm_sa_h64")
        print(clf.classify_file("clip.wav").label)

    Args:
        bundle: a :class:`~sertiny.runtime.bundle.Bundle`.
        variant: variant name (default: ``int8`` when the bundle has it).
        num_threads: TFLite interpreter threads (None: the runtime's default).
        runtime: force a TFLite runtime by module name (see :mod:`sertiny.runtime.tflite`).
        silence_db: windows quieter than this (dBFS) are silence; None disables the check.
        kernels: ``"optimized"`` (default) or ``"reference"`` TFLite kernels, the latter
            bit-identical across CPUs for one runtime version (for cross-device checks).
    """

    def __init__(self, bundle, variant=None, *, num_threads=None, runtime=None, silence_db=DEFAULT_SILENCE_DB,
                 kernels="optimized"):
        self.bundle = bundle
        self.variant = bundle.variant(variant)
        self.runner = load_runner(bundle, self.variant.name, num_threads=num_threads, runtime=runtime,
                                  kernels=kernels)
        self.silence_db = silence_db

    @classmethod
    def from_path(cls, path, variant=None, **kwargs):
        """Load the bundle at ``path`` (None: the one shipped in the package) and build a
        classifier for ``variant``."""
        return cls(Bundle.load(path), variant, **kwargs)

    @property
    def sample_rate(self):
        return self.bundle.feature_config.sample_rate

    @property
    def labels(self):
        return self.bundle.labels

    def load(self, path):
        """Decode and resample a file to the front end's rate (raises AudioError naming it)."""
        return load_audio(path, self.sample_rate)

    def features(self, y):
        """``(n,)`` mono audio -> ``(frames, F)`` normalised features."""
        return self.bundle.norm.apply(extract(y, self.bundle.feature_config, backend="numpy"))

    def classify_file(self, path):
        """Classify one audio file; see :meth:`classify`."""
        y = self.load(path)
        try:
            return dataclasses.replace(self.classify(y), source=str(path))
        except AudioError:
            raise
        except ValueError as exc:  # a front end that cannot frame the clip, e.g. center=False
            raise AudioError(path, f"cannot be analysed ({exc})") from None

    def classify(self, y):
        """Classify mono float32 audio at :attr:`sample_rate`; returns a :class:`Prediction`."""
        y = np.asarray(y, dtype=np.float32)
        return self.classify_features(self.features(y), y)

    def classify_features(self, x, y):
        """Classify normalised features ``x`` of audio ``y`` (``y`` gives the silence levels)."""
        hop = self.bundle.feature_config.hop_length
        seq_len = self.bundle.seq_len
        starts = window_starts(len(x), seq_len)
        levels = [block_level_db(y[s * hop : (s + seq_len) * hop], hop) for s in starts]
        loud = [s for s, level in zip(starts, levels) if not self._is_silent(level)]
        # Windows go to the runner unpadded: a full model pads them as training did, a
        # chunked one may instead mask the missing frames.
        probs = [self.runner.predict(x[s : s + seq_len]) for s in loud]
        return self._combine(probs, max(levels), len(y) / self.sample_rate)

    def _is_silent(self, level_db):
        return self.silence_db is not None and level_db < self.silence_db

    def _combine(self, window_probs, level_db, duration):
        n_classes = len(self.labels)
        if not window_probs:
            return Prediction(None, np.zeros(n_classes, np.float32), self.labels, True, level_db, 0, duration)
        probs = np.mean(window_probs, axis=0).astype(np.float32)
        label = self.labels[int(np.argmax(probs))]
        return Prediction(label, probs, self.labels, False, level_db, len(window_probs), duration)


def window_starts(n_frames, seq_len, hop_fraction=WINDOW_HOP_FRACTION):
    """First frame of each window of ``seq_len`` frames covering ``n_frames`` frames.

    One window (start 0) when the clip fits; otherwise evenly spaced windows, at most
    ``hop_fraction * seq_len`` apart, the first at 0 and the last ending at the clip's end.
    """
    if n_frames <= seq_len:
        return [0]
    span = n_frames - seq_len
    count = math.ceil(span / max(1, int(seq_len * hop_fraction))) + 1
    return sorted({round(i * span / (count - 1)) for i in range(count)})


def block_level_db(y, block):
    """RMS level (dBFS) of the loudest ``block``-sample block of ``y``; -inf for empty/zero."""
    y = np.asarray(y, dtype=np.float32)
    if y.size == 0:
        return -math.inf
    n_blocks = max(1, math.ceil(y.size / block))
    padded = np.zeros(n_blocks * block, dtype=np.float64)
    padded[: y.size] = y
    loudest = float(np.sqrt(np.square(padded.reshape(n_blocks, block)).mean(axis=1)).max())
    return 20.0 * math.log10(loudest) if loudest > 0 else -math.inf
