"""Audio in, emotion out: the whole device path for one clip.

decode (soundfile) -> resample (soxr) -> MFCC + chroma or log-mel (NumPy front end) -> normalise
with the bundle's statistics -> windows of T frames -> TFLite -> combined probabilities.

Windows. A clip of at most T frames is one window, zero-padded at the end exactly as in
training (:func:`sertiny.features.frames.fit_to_length`, applied by the runner). A longer
clip is cut into windows of T frames that overlap by half (the last one ends at the clip's end), each
window is classified, and the clip's probabilities are the mean of the windows'
probabilities (soft voting). Silent windows are left out of that mean, so a pause in a
long recording does not dilute the speech around it.

Long files. A file longer than :data:`BLOCK_DECODE_SECONDS` is decoded and scored block
by block (:func:`sertiny.data.audio.iter_audio_blocks`): each window's features are computed
from that window's audio plus the front end's context on either side, so memory stays flat
with duration. For a frame-local front end (``edge16k``, ``logmel16k``: fixed tuning, no
clip-level ``top_db``, no running peak, no deltas; :attr:`FeatureConfig.frame_local`) the features,
and so the answer, are exactly those of the whole file. A front end with clip-level steps (``paper``:
tuning estimate, ``top_db``; ``edge16k_peak``: the running peak; ``deltas``: a window's first frame
has no frame before it, as a training clip's had none) takes them per window, as
``sertiny listen`` does and as each training clip did, whether the clip is long or not: every
window of T frames is then a clip of its own (its running peak starts at its first frame, so
a loud moment early in a recording does not attenuate the rest of it), and a long file gives
the same answer decoded in blocks or whole.

Bandwidth. Audio recorded at a rate whose Nyquist frequency is far below the highest
frequency the front end analyses (8 kHz audio into a 16 kHz front end) is upsampled, but the
band above its Nyquist stays empty; the prediction carries a note saying so.

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

from ..data.audio import audio_info, iter_audio_blocks, load_audio
from ..errors import AudioError
from ..features import extract
from .bundle import Bundle
from .runner import load_runner

DEFAULT_SILENCE_DB = -55.0
# Hop between windows of a long clip, as a fraction of T: half-overlapping windows score
# every frame at least once away from a window edge.
WINDOW_HOP_FRACTION = 0.5
# Files longer than this are decoded and scored in blocks; shorter ones at once (a minute of
# 16 kHz audio with its features is about 35 MB).
BLOCK_DECODE_SECONDS = 60.0
# A recording whose Nyquist frequency is below this share of the front end's highest analysed
# frequency misses a band the model was trained with (8 kHz audio into a 16 kHz front end: half).
MIN_BANDWIDTH_SHARE = 0.9


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
        notes: warnings about the input that make the answer less reliable (e.g. a band
            the front end analyses is missing from the recording).
    """

    label: str | None
    probabilities: np.ndarray
    labels: tuple
    silent: bool
    level_db: float
    windows: int
    duration: float
    source: str | None = None
    notes: tuple = ()

    @property
    def confidence(self):
        """Probability of ``label`` (0.0 when silent)."""
        return 0.0 if self.silent else float(np.max(self.probabilities))

    def to_dict(self):
        """JSON-able form: one object per clip, as ``sertiny infer --json`` prints it
        (``notes`` only when there are any)."""
        data = {
            "file": self.source,
            "label": self.label,
            "silent": self.silent,
            "confidence": round(self.confidence, 6),
            "probabilities": {k: round(float(p), 6) for k, p in zip(self.labels, self.probabilities)},
            "level_dbfs": round(self.level_db, 2),
            "windows": self.windows,
            "duration_s": round(self.duration, 3),
        }
        if self.notes:
            data["notes"] = list(self.notes)
        return data


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
        """Classify one audio file; see :meth:`classify` (long files: the module docstring)."""
        info = audio_info(path)
        try:
            if info.duration > BLOCK_DECODE_SECONDS:
                prediction = self._classify_blocks(path, info)
            else:
                prediction = self.classify(self.load(path))
        except AudioError:
            raise
        except ValueError as exc:  # a front end that cannot frame the clip, e.g. center=False
            raise AudioError(path, f"cannot be analysed ({exc})") from None
        notes = bandwidth_notes(info.samplerate, self.bundle.feature_config)
        return dataclasses.replace(prediction, source=str(path), notes=notes)

    def _classify_blocks(self, path, info):
        """:meth:`classify` of a long file, one window of audio in memory at a time."""
        n_samples = int(math.ceil(info.frames * (float(self.sample_rate) / info.samplerate)))
        return self._classify_windows(iter_audio_blocks(path, self.sample_rate), n_samples)

    def _classify_windows(self, blocks, n_samples):
        """Each window's features from its own audio (plus the front end's context)."""
        config = self.bundle.feature_config
        starts = window_starts(config.n_frames(n_samples), self.bundle.seq_len)
        windows = WindowAudio(config, self.bundle.seq_len, n_samples)
        # Each window's frames from its own padded audio, without the front end's own centring.
        frames_config = dataclasses.replace(config, center=False)
        probs, levels = [], []
        for context, audio in windows.cut(blocks, starts):
            levels.append(block_level_db(audio, config.hop_length))
            if not self._is_silent(levels[-1]):
                x = self.bundle.norm.apply(extract(context, frames_config, backend="numpy"))
                probs.append(self.runner.predict(x))
        return self._combine(probs, max(levels), n_samples / self.sample_rate)

    def classify(self, y):
        """Classify mono float32 audio at :attr:`sample_rate`; returns a :class:`Prediction`."""
        y = np.asarray(y, dtype=np.float32)
        config = self.bundle.feature_config
        if not config.frame_local and config.n_frames(y.size) > self.bundle.seq_len:
            return self._classify_windows([y], y.size)  # clip-level steps per window (module docstring)
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


class WindowAudio:
    """Cut a stream of audio blocks into the audio of each model window.

    The whole-file front end pads the clip (``n_fft // 2`` samples each side when
    ``center``) and frames that; here the same padded signal is held only from the next
    window's first sample on. For window start ``s`` (a frame index) :meth:`cut` yields

    - ``context``: the padded signal from frame ``s``'s first sample to frame
      ``s + T - 1``'s last, which a ``center=False`` front end turns into exactly the T
      frames the whole file has there (for a frame-local front end);
    - ``audio``: the clip's samples ``[s * hop, (s + T) * hop)``, whose level decides silence.
    """

    def __init__(self, config, seq_len, n_samples):
        self.hop = config.hop_length
        self.pad = config.n_fft // 2 if config.center else 0
        self.edge = config.pad_mode == "edge"
        self.n_samples = n_samples
        self.context_len = (seq_len - 1) * self.hop + config.n_fft
        self.audio_len = seq_len * self.hop
        # Padded-signal samples a window needs from its start: its context, its audio.
        self.span = max(self.context_len, self.pad + self.audio_len)

    def cut(self, blocks, starts):
        """Yield ``(context, audio)`` per start in ``starts`` (ascending)."""
        buffer, offset = np.zeros(0, np.float32), 0  # offset: padded-signal index of buffer[0]
        pending = list(starts)
        for block, last in _with_last(self._padded(blocks)):
            buffer = np.concatenate([buffer, block])
            while pending and (last or offset + buffer.size >= pending[0] * self.hop + self.span):
                begin = pending.pop(0) * self.hop - offset
                audio_end = min(begin + self.pad + self.audio_len, self.pad + self.n_samples - offset)
                yield buffer[begin : begin + self.context_len], buffer[begin + self.pad : audio_end]
            # Keep only what the next window needs (nothing once all are cut; the rest of the
            # file is still read, so a decoding error at its end is reported).
            drop = pending[0] * self.hop - offset if pending else buffer.size
            buffer, offset = buffer[drop:], offset + drop

    def _padded(self, blocks):
        """The blocks with the front end's padding before the first and after the last."""
        first = True
        block = np.zeros(0, np.float32)
        for block in blocks:
            if first and self.pad:
                yield np.full(self.pad, block[0] if self.edge and block.size else 0.0, np.float32)
            first = False
            yield block
        if self.pad:
            yield np.full(self.pad, block[-1] if self.edge and block.size else 0.0, np.float32)


def _with_last(items):
    """``(item, is_last)`` pairs."""
    iterator = iter(items)
    try:
        previous = next(iterator)
    except StopIteration:
        return
    for item in iterator:
        yield previous, False
        previous = item
    yield previous, True


def bandwidth_notes(native_rate, config):
    """Warnings for audio recorded at ``native_rate`` Hz when the front end ``config`` analyses
    frequencies above its Nyquist frequency (empty tuple when nothing is missing)."""
    top = config.fmax or config.sample_rate / 2
    nyquist = native_rate / 2
    if nyquist >= MIN_BANDWIDTH_SHARE * top:
        return ()
    return (
        f"recorded at {native_rate} Hz, so it holds nothing above {nyquist / 1000:g} kHz, but the model's front "
        f"end analyses up to {top / 1000:g} kHz; the missing band makes the answer less reliable. Record at "
        f"{config.sample_rate} Hz or more.",
    )


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
