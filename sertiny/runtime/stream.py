"""Live classification: audio blocks in (from a microphone callback), smoothed labels out.

The microphone callback runs on PortAudio's real-time thread, where anything slow drops
audio; :meth:`StreamClassifier.callback` therefore only copies the block into a queue.
:meth:`StreamClassifier.poll`, called from the main thread, drains the queue into a ring
buffer holding the last T frames of audio and, every ``hop_seconds`` of new audio,
classifies that window with the same :class:`~sertiny.runtime.classifier.Classifier` as
``sertiny infer``. The displayed probabilities are an exponential moving average of the
windows' probabilities; silent windows are shown as silence and do not move the average.

Tests feed file audio through :meth:`callback` exactly as sounddevice would, so the live
path is tested without a sound card.
"""

import dataclasses
import queue
import sys

import numpy as np

from .._config import check_float
from ..errors import MissingDependencyError

DEFAULT_HOP_SECONDS = 0.5
DEFAULT_SMOOTHING = 0.6


@dataclasses.dataclass(frozen=True)
class StreamUpdate:
    """One live result.

    Attributes:
        time: seconds of audio received when this window ended.
        prediction: this window's :class:`~sertiny.runtime.classifier.Prediction`.
        smoothed: the moving average of non-silent windows' probabilities, ``(C,)``.
        label: the label to display: the smoothed argmax, or None while silent.
    """

    time: float
    prediction: object
    smoothed: np.ndarray
    label: str | None


class StreamClassifier:
    """Sliding-window classification of a live audio stream.

    Args:
        classifier: a :class:`~sertiny.runtime.classifier.Classifier`.
        input_rate: sample rate of the blocks given to :meth:`callback` (None: the front
            end's own rate). Other rates are resampled with soxr's streaming resampler.
        hop_seconds: audio between two classifications.
        smoothing: weight of the previous average in the moving average, in [0, 1).
    """

    def __init__(self, classifier, *, input_rate=None, hop_seconds=DEFAULT_HOP_SECONDS, smoothing=DEFAULT_SMOOTHING):
        check_float("StreamClassifier", "hop_seconds", hop_seconds, min_value=0.0, min_inclusive=False)
        check_float("StreamClassifier", "smoothing", smoothing, min_value=0.0, max_value=0.99)
        self.classifier = classifier
        sr = classifier.sample_rate
        self.input_rate = input_rate or sr
        self.hop_samples = max(1, int(round(hop_seconds * sr)))
        self.smoothing = smoothing
        config = classifier.bundle.feature_config
        # The shortest audio that gives exactly T frames: what infer feeds the model at once.
        frames_span = (classifier.bundle.seq_len - 1) * config.hop_length
        self.window_samples = frames_span + (1 if config.center else config.n_fft)
        self._buffer = np.zeros(0, dtype=np.float32)
        self._queue = queue.SimpleQueue()
        self._resampler = None
        if self.input_rate != sr:
            import soxr

            self._resampler = soxr.ResampleStream(self.input_rate, sr, 1, dtype="float32")
        self._received = 0  # samples at the front end's rate
        self._since_last = 0
        self._smoothed = None
        self.overflows = 0

    def callback(self, indata, frames, time_info, status):
        """sounddevice ``InputStream`` callback: queue a mono copy of the block, nothing else."""
        if status:
            self.overflows += 1  # reported by the caller; printing here could drop audio
        block = np.asarray(indata, dtype=np.float32)
        self._queue.put(block.mean(axis=1) if block.ndim == 2 else block.copy())

    def poll(self, timeout=None):
        """Process queued audio; return the :class:`StreamUpdate` of each window due.

        Args:
            timeout: seconds to wait for the first block when none is queued (None: don't wait).
        """
        updates = []
        block = self._next_block(timeout)
        while block is not None:
            updates.extend(self._consume(block))
            block = self._next_block(None)
        return updates

    def _next_block(self, timeout):
        try:
            return self._queue.get(timeout=timeout) if timeout else self._queue.get_nowait()
        except queue.Empty:
            return None

    def _consume(self, block):
        if self._resampler is not None:
            block = self._resampler.resample_chunk(block)
        updates = []
        # Cut the block at hop boundaries, so a large block still yields one window per hop.
        while block.size:
            take = min(block.size, self.hop_samples - self._since_last)
            self._append(block[:take])
            block = block[take:]
            if self._since_last >= self.hop_samples:
                self._since_last = 0
                updates.append(self._classify_window())
        return updates

    def _append(self, samples):
        self._buffer = np.concatenate([self._buffer, samples])[-self.window_samples :]
        self._received += samples.size
        self._since_last += samples.size

    def _classify_window(self):
        prediction = self.classifier.classify(self._buffer)
        if not prediction.silent:
            p = prediction.probabilities
            self._smoothed = p if self._smoothed is None else self.smoothing * self._smoothed + (1 - self.smoothing) * p
        smoothed = self._smoothed if self._smoothed is not None else np.zeros(len(self.classifier.labels), np.float32)
        label = None if prediction.silent else self.classifier.labels[int(np.argmax(smoothed))]
        return StreamUpdate(self._received / self.classifier.sample_rate, prediction, smoothed, label)


def format_update(update, width=78):
    """One status line: time, label and smoothed confidence (or the silence level)."""
    if update.label is None:
        text = f"{update.time:7.1f}s  (silence, {update.prediction.level_db:.0f} dBFS)"
    else:
        p = float(np.max(update.smoothed))
        bar = "#" * int(round(p * 20))
        text = f"{update.time:7.1f}s  {update.label:<10} {p:4.2f} {bar}"
    return text[:width].ljust(width)


def import_sounddevice():
    """sounddevice, or a MissingDependencyError saying how to install it and PortAudio."""
    try:
        import sounddevice
    except ImportError as exc:
        raise MissingDependencyError(
            "'sertiny listen' needs the sounddevice package: pip install sounddevice"
        ) from exc
    except OSError as exc:  # sounddevice raises OSError when libportaudio is absent
        raise MissingDependencyError(
            f"'sertiny listen' needs the PortAudio library ({exc}). On Raspberry Pi OS / Debian: "
            "sudo apt-get install libportaudio2"
        ) from exc
    return sounddevice


def listen(classifier, *, device=None, input_rate=None, hop_seconds=DEFAULT_HOP_SECONDS,
           smoothing=DEFAULT_SMOOTHING, out=None):
    """Classify the microphone until Ctrl-C, rewriting one status line per window.

    Returns the number of windows classified. Ctrl-C ends it cleanly (stream closed,
    cursor on a fresh line).
    """
    sd = import_sounddevice()
    out = out or sys.stdout
    rate = input_rate or classifier.sample_rate
    from .classifier import bandwidth_notes

    for note in bandwidth_notes(rate, classifier.bundle.feature_config):  # as 'infer' warns for a file
        out.write(f"warning: {note}\n")
    stream = StreamClassifier(classifier, input_rate=rate, hop_seconds=hop_seconds, smoothing=smoothing)
    count = 0
    try:
        with sd.InputStream(device=device, channels=1, samplerate=rate, dtype="float32",
                            blocksize=max(1, int(rate * hop_seconds / 4)), callback=stream.callback):
            out.write(f"listening at {rate} Hz (Ctrl-C to stop)\n")
            while True:
                for update in stream.poll(timeout=0.1):
                    out.write("\r" + format_update(update))
                    out.flush()
                    count += 1
    except KeyboardInterrupt:
        pass
    except sd.PortAudioError as exc:
        from ..errors import SertinyError

        raise SertinyError(
            f"cannot open the audio input ({exc}). List devices with 'sertiny listen --list-devices' "
            "and pass one with --device; if the device rejects the rate, try --samplerate 48000."
        ) from None
    out.write("\n")
    if stream.overflows:
        out.write(f"note: {stream.overflows} input overflows (audio dropped); the machine was too busy\n")
    return count
