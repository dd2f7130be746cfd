"""Host loop of a chunked (streaming) model: state hand-over and online attention pooling.

A ``"chunked"`` bundle variant holds only the recurrence of LSTM-SA / ResLSTM-SA, unrolled
over K frames. Everything between invokes runs here (and, identically, in the firmware's C
reference, ``firmware_bench/c_reference``):

1. **Invoke** with K normalised frames and the LSTM states entering the chunk.

   ======== ========= =============================================================
   input    shape     meaning
   ======== ========= =============================================================
   frames   (K, F)    normalised features (quantised with the input's scale/zero point)
   h1, c1   (1, F)    LSTM1 hidden/cell state (ResLSTM-SA only)
   h2, c2   (1, H)    LSTM2 hidden/cell state
   ======== ========= =============================================================

   ======== ========= =============================================================
   output   shape     meaning
   ======== ========= =============================================================
   h2_seq   (K, H)    LSTM2 output at each frame; its last row is the next h2 state
   h1, c1   (1, F)    LSTM1 states leaving the chunk (ResLSTM-SA only)
   c2       (1, H)    LSTM2 cell state leaving the chunk
   ======== ========= =============================================================

   The tensors' order in the model is given by ``position`` in the variant's
   ``inputs``/``outputs`` lists of ``sertiny.json`` (the model carries no names).
2. **Hand the states over**: an output state becomes the next input state. sertiny's
   exporter gives both tensors the same scale and zero point, so this is a copy; for a
   model where they differ the value is requantised:
   ``q_in = clip(round((q_out - zp_out) * s_out / s_in) + zp_in)``.
3. **Pool**: score every frame ``e_t = u . h2_t`` and keep a running max ``m``, a running
   sum ``s = sum exp(e_t - m)`` and ``acc = sum exp(e_t - m) h2_t``, rescaling both when
   the max grows (an online softmax). After the last frame, ``context = acc / s`` equals
   the full model's attention pooling exactly, whatever the chunk boundaries.
4. **Classify**: BatchNorm (``bn_scale * context + bn_shift``), the dense layer, softmax.
   A head with ``statistics`` (``res_lstm_sa_stats``) classifies ``[context, statistics]``:
   the clip's per-feature statistics of the normalised frames fed in, kept as running sums
   (:class:`OnlineStatistics`) and joined after the context.

Clip length: a model trained with ``padding="zeros"`` ran over exactly T frames (clips
centre-cropped or zero-padded), so :meth:`ChunkedRunner.predict` does the same; with
``"masked"`` only the real frames count. When the frames do not fill the last chunk, it is
padded and the padded steps' outputs are left out of the pooling; as the LSTM is causal
and nothing runs after it, the result is exact.

numpy + a TFLite interpreter only: this module is on the device path.
"""

import numpy as np

from ..errors import ArtifactError, ParameterError
from ..features.frames import fit_to_length
from ..models.stats_linear_spec import STATISTICS  # Keras-free: the names the statistics go by
from .tflite import dequantize, quantize

# Output state -> the input it feeds at the next invoke. "h2" is h2_seq's last row.
STATE_FEEDBACK = {"h1": "h1", "c1": "c1", "h2": "h2_seq", "c2": "c2"}


class OnlineAttention:
    """Soft attention pooling accumulated frame by frame (an online softmax), float64."""

    def __init__(self, u):
        self.u = np.asarray(u, dtype=np.float64)
        self.max = -np.inf
        self.sum = 0.0
        self.acc = np.zeros(self.u.shape[0])
        self.count = 0

    def add(self, h):
        """Add LSTM2 outputs ``h`` (n, H) to the pool."""
        h = np.asarray(h, dtype=np.float64)
        if h.shape[0] == 0:
            return
        scores = h @ self.u
        new_max = max(self.max, float(scores.max()))
        rescale = np.exp(self.max - new_max)  # exp(-inf) = 0 before the first frame
        weights = np.exp(scores - new_max)
        self.sum = self.sum * rescale + weights.sum()
        self.acc = self.acc * rescale + weights @ h
        self.max = new_max
        self.count += h.shape[0]

    def context(self):
        if self.count == 0:
            raise ParameterError("No frames were pooled: a clip needs at least one frame.")
        return self.acc / self.sum


class OnlineStatistics:
    """Per-feature statistics of the frames seen so far, kept as running sums (float64).

    ``mean``, ``std`` and ``delta_rms`` as ``stats_linear``'s pooling defines them
    (:mod:`sertiny.models.stats_linear_spec`) over every frame added, so a model whose head
    reads them (``res_lstm_sa_stats``) streams with three sums per feature besides the last
    frame. ``std`` is the population deviation and both roots are ``v / sqrt(v + eps)``.
    """

    def __init__(self, statistics, sqrt_epsilon, n_features):
        unknown = [s for s in statistics if s not in STATISTICS]
        if unknown or not statistics:
            raise ArtifactError(f"The bundle's head asks for statistics {list(statistics)}; this runtime knows "
                                f"{list(STATISTICS)}. Update sertiny or re-export the bundle.")
        self.statistics = tuple(statistics)
        self.eps = float(sqrt_epsilon)
        self.count = 0
        self.sum, self.sum_sq, self.delta_sum_sq = (np.zeros(n_features) for _ in range(3))
        self.last = None

    def add(self, frames):
        """Add (n, F) normalised frames."""
        x = np.asarray(frames, dtype=np.float64)
        if x.shape[0] == 0:
            return
        self.sum += x.sum(0)
        self.sum_sq += (x * x).sum(0)
        previous = x if self.last is None else np.concatenate([self.last[None], x])
        self.delta_sum_sq += (np.diff(previous, axis=0) ** 2).sum(0)
        self.last = x[-1]
        self.count += x.shape[0]

    def values(self):
        """The statistics' blocks of F values, joined in the head's order: (S F,)."""
        if self.count == 0:
            raise ParameterError("No frames were pooled: a clip needs at least one frame.")
        mean = self.sum / self.count
        blocks = {"mean": mean, "std": self._soft_sqrt(np.maximum(self.sum_sq / self.count - mean * mean, 0.0)),
                  "delta_rms": self._soft_sqrt(self.delta_sum_sq / max(self.count - 1, 1))}
        return np.concatenate([blocks[s] for s in self.statistics])

    def _soft_sqrt(self, v):
        return v / np.sqrt(v + self.eps)


def classify(context, head):
    """BatchNorm (as scale/shift), dense layer and softmax on a pooled context (H,) -> (C,)."""
    x = np.asarray(context, dtype=np.float64) * np.asarray(head["bn_scale"]) + np.asarray(head["bn_shift"])
    logits = x @ np.asarray(head["dense_kernel"], dtype=np.float64) + np.asarray(head["dense_bias"])
    e = np.exp(logits - logits.max())
    return e / e.sum()


class ChunkedRunner:
    """Runs a ``"chunked"`` bundle variant over a clip; see the module docstring.

    Args:
        interpreter: an allocated TFLite interpreter of the variant's model.
        variant_meta: the variant's entry in ``sertiny.json`` (``chunk``, ``seq_len``,
            ``padding``, ``inputs``, ``outputs``, ``head``).
    """

    def __init__(self, interpreter, variant_meta):
        self.interpreter = interpreter
        self.meta = variant_meta
        try:
            self.chunk = int(variant_meta["chunk"])
            self.seq_len = int(variant_meta["seq_len"])
            self.padding = variant_meta.get("padding", "zeros")
            self.head = variant_meta["head"]
            self.inputs = self._bind(variant_meta["inputs"], interpreter.get_input_details(), "input")
            self.outputs = self._bind(variant_meta["outputs"], interpreter.get_output_details(), "output")
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise ArtifactError(
                f"Chunked variant {variant_meta.get('file')!r}: incomplete metadata ({exc!r}). Re-export the bundle."
            ) from None

    def _bind(self, entries, details, kind):
        """name -> live tensor detail, matched by position and checked by shape."""
        bound = {}
        for entry in entries:
            detail = details[entry["position"]]
            if list(detail["shape"]) != list(entry["shape"]):
                raise ArtifactError(
                    f"Chunked variant {self.meta.get('file')!r}: {kind} {entry['name']!r} has shape "
                    f"{list(detail['shape'])} in the model but {entry['shape']} in sertiny.json; "
                    "the file belongs to another export. Re-export the bundle."
                )
            bound[entry["name"]] = detail
        return bound

    def state_copied(self, name):
        """True when input state ``name`` and the output feeding it share dtype, scale and
        zero point, so the hand-over is a plain copy of the raw tensor."""
        source = self.outputs[STATE_FEEDBACK[name]]
        target = self.inputs[name]
        return source["dtype"] == target["dtype"] and tuple(source["quantization"]) == tuple(target["quantization"])

    @property
    def n_features(self):
        return self.inputs["frames"]["shape"][-1]

    def predict(self, x_norm, *, trace=None):
        """(frames, F) normalised features -> (C,) float32 probabilities.

        ``trace``, if a list, receives one ``(inputs, outputs)`` pair of raw tensor lists
        (model order) per invoke, e.g. to calibrate or to test another runtime against this.
        """
        stream = self.stream(trace=trace)
        stream.push(fit_to_length(x_norm, self.seq_len, pad=self.padding == "zeros"))
        return stream.result()

    def stream(self, *, trace=None):
        """A :class:`ChunkedStream` for frames arriving over time."""
        return ChunkedStream(self, trace)


class ChunkedStream:
    """Feed frames as they arrive; invoke whenever K are buffered; classify at the end."""

    def __init__(self, runner, trace=None):
        self.runner = runner
        self.trace = trace
        self.pool = OnlineAttention(runner.head["attention_u"])
        # A head that also reads the clip's frame statistics (res_lstm_sa_stats).
        self.stats = (OnlineStatistics(runner.head["statistics"], runner.head["sqrt_epsilon"], runner.n_features)
                      if runner.head.get("statistics") else None)
        self.buffer = np.zeros((0, runner.n_features), np.float32)
        # The zero state, as each input tensor represents it.
        self.state = {name: quantize(np.zeros(d["shape"], np.float32), d)
                      for name, d in runner.inputs.items() if name != "frames"}
        self.copied = {name: runner.state_copied(name) for name in self.state}

    def push(self, frames):
        """Append (n, F) normalised frames; runs every complete chunk."""
        frames = np.asarray(frames, dtype=np.float32).reshape(-1, self.runner.n_features)
        if self.stats is not None:
            self.stats.add(frames)
        self.buffer = np.concatenate([self.buffer, frames])
        k = self.runner.chunk
        n = self.buffer.shape[0] // k * k
        if n:
            # Quantise every complete chunk at once: per-invoke NumPy calls dominate the
            # host loop's time at K = 1.
            quantized = quantize(self.buffer[:n], self.runner.inputs["frames"])
            for start in range(0, n, k):
                self._invoke(quantized[start : start + k], k)
            self.buffer = self.buffer[n:]

    def result(self):
        """Run the partial last chunk (padded; its padded steps are not pooled) and classify."""
        valid = self.buffer.shape[0]
        if valid:
            pad = np.zeros((self.runner.chunk - valid, self.runner.n_features), np.float32)
            self._invoke(quantize(np.concatenate([self.buffer, pad]), self.runner.inputs["frames"]), valid)
            self.buffer = self.buffer[:0]
        pooled = self.pool.context()
        if self.stats is not None:
            pooled = np.concatenate([pooled, self.stats.values()])
        return classify(pooled, self.runner.head).astype(np.float32)

    def _invoke(self, frames, valid):
        """One invoke on K frames already in the input tensor's dtype."""
        runner, interp = self.runner, self.runner.interpreter
        values = dict(self.state, frames=frames)
        for name, detail in runner.inputs.items():
            interp.set_tensor(detail["index"], values[name])
        interp.invoke()
        raw = {name: interp.get_tensor(d["index"]) for name, d in runner.outputs.items()}
        if self.trace is not None:
            self.trace.append(([values[n] for n in _ordered(runner, "inputs")],
                               [raw[n] for n in _ordered(runner, "outputs")]))
        h2_seq = dequantize(raw["h2_seq"], runner.outputs["h2_seq"])
        self.pool.add(h2_seq[:valid])
        self._hand_over(raw)

    def _hand_over(self, raw):
        """Each output state, requantised to its input tensor's scale and zero point."""
        for name in self.state:
            source = STATE_FEEDBACK[name]
            value = raw[source][-1:] if source == "h2_seq" else raw[source]
            if self.copied[name]:
                self.state[name] = value.copy()  # get_tensor may return a view of the arena
            else:
                self.state[name] = quantize(dequantize(value, self.runner.outputs[source]), self.runner.inputs[name])


def _ordered(runner, kind):
    """Tensor names of ``kind`` in the model's order (their ``position`` in the metadata)."""
    entries = runner.meta[kind]
    return [e["name"] for e in sorted(entries, key=lambda e: e["position"])]

