"""TensorFlow graphs of LSTM-SA / ResLSTM-SA built from the backend-free NumPy weights.

Training runs Keras on JAX, and Keras fixes its backend per process, so export never goes
through Keras: it folds the canonical weight dict (:mod:`sertiny.models.weights`) into a
few constant matrices and writes the recurrence out step by step with raw TensorFlow ops.
That also decides what the TFLite flatbuffer contains, which is what a microcontroller pays
for (every op and every tensor costs flash and arena):

* Gate columns are reordered from Keras' (i, f, c, o) to (i, f, o, g), so one LOGISTIC
  covers the three sigmoid gates and one TANH the candidate: 11 ops per LSTM step.
* BatchNorm is folded into the next affine op: ``bn_in`` into LSTM2's input kernel,
  ``bn_out`` into the classifier. Inference-mode BatchNorm is affine, so this is exact.
* The input projections of all steps are one matmul (a single FULLY_CONNECTED over
  (steps, F)) instead of one per step.
* ``schedule="wavefront"`` (ResLSTM only) runs LSTM1 at step t together with LSTM2 at step
  t-1 as ONE cell over the concatenated state [h1, h2]: LSTM2's input at t-1 depends only on
  h1 at t-1, so both fit one block matmul. That halves the ops of the unrolled graph at
  the price of a zero block in the recurrent matrix (more weight bytes).

Two graph families are built:

* full unroll: (1, T, F) normalised features -> (1, C) probabilities, one invoke per clip.
* chunked: K frames plus the LSTM states in, the next states and LSTM2's K outputs out.
  Attention pooling, BatchNorm and the classifier run on the host between invokes (see
  :mod:`sertiny.runtime.chunked`), where an online softmax accumulates them exactly.

:func:`fold_weights`, :func:`full_unroll_function` and :func:`chunk_function` serve every
family: they ask the model registry for the family's export builders
(:class:`~sertiny.models.registry.Family`: ``export_fold``, ``export_graph``,
``export_chunk``). LSTM-SA's are here (:func:`fold_lstm_sa`, :func:`lstm_sa_graph`,
:func:`lstm_sa_chunk_function`); the baseline families (``bilstm_att``, ``dual_lstm``,
``cnn_lstm``) are built from the same LSTM pieces by :mod:`sertiny.export.baseline_graphs`,
``vit`` by :mod:`sertiny.export.vit_graph` and ``stats_linear`` by
:mod:`sertiny.export.stats_linear_graph`.
"""

import dataclasses

import numpy as np

from ..errors import ArtifactError, ParameterError
from ..models.registry import families, get_family
from ..models.weights import BN_EPSILON

SCHEDULES = ("sequential", "wavefront")

# Keras gate order (i, f, c, o) -> export order (i, f, o, c): the sigmoid gates first.
_GATE_ORDER = (0, 1, 3, 2)


@dataclasses.dataclass(frozen=True, eq=False)
class Lstm:
    """One LSTM layer, gates in export order (i, f, o, g); ``kernel`` may have BN folded in."""

    kernel: np.ndarray  # (F_in, 4U)
    recurrent: np.ndarray  # (U, 4U)
    bias: np.ndarray  # (4U,)

    @property
    def units(self):
        return self.recurrent.shape[0]


@dataclasses.dataclass(frozen=True, eq=False)
class FoldedWeights:
    """The model as export consumes it: gates reordered, BatchNorms folded, float32.

    ``lstm1`` is None for LSTM-SA. For ResLSTM-SA, ``lstm2.kernel``/``bias`` already include
    ``bn_in``, so LSTM2's input projection is ``(h1 + x) @ kernel + bias``.
    ``bn_scale``/``bn_shift`` is ``bn_out`` as one affine map and ``head_kernel``/``head_bias``
    the classifier with it folded in (``context @ head_kernel + head_bias`` = logits).
    """

    lstm1: Lstm | None
    lstm2: Lstm
    attention: np.ndarray  # (H,)
    bn_scale: np.ndarray  # (H,)
    bn_shift: np.ndarray  # (H,)
    dense_kernel: np.ndarray  # (H, C)
    dense_bias: np.ndarray  # (C,)

    @property
    def residual(self):
        return self.lstm1 is not None

    @property
    def family(self):
        return "res_lstm_sa" if self.residual else "lstm_sa"

    @property
    def n_features(self):
        return self.lstm2.kernel.shape[0]

    @property
    def hidden(self):
        return self.lstm2.units

    @property
    def n_classes(self):
        return self.dense_bias.shape[0]

    @property
    def head_kernel(self):
        return (self.bn_scale[:, None] * self.dense_kernel).astype(np.float32)

    @property
    def head_bias(self):
        return (self.bn_shift @ self.dense_kernel + self.dense_bias).astype(np.float32)

    def head_dict(self):
        """The host-side head (attention vector, BatchNorm as scale/shift, classifier), JSON-able."""
        return {
            "attention_u": self.attention.tolist(),
            "bn_scale": self.bn_scale.tolist(),
            "bn_shift": self.bn_shift.tolist(),
            "dense_kernel": self.dense_kernel.tolist(),
            "dense_bias": self.dense_bias.tolist(),
        }


def _reorder_gates(a):
    """Permute the last axis of a Keras gate-stacked array from (i, f, c, o) to (i, f, o, c)."""
    blocks = np.split(np.asarray(a, dtype=np.float64), 4, axis=-1)
    return np.concatenate([blocks[k] for k in _GATE_ORDER], axis=-1)


def _bn_affine(w, prefix):
    scale = w[f"{prefix}/gamma"] / np.sqrt(w[f"{prefix}/moving_variance"] + BN_EPSILON)
    return scale, w[f"{prefix}/beta"] - w[f"{prefix}/moving_mean"] * scale


def check_generic_weights(w, expected, family):
    """A generic weight dict holds exactly the keys of ``expected`` (``{key: shape}``, what
    ``family``'s model has), each with its shape; else :class:`ArtifactError` names the odd ones."""
    missing, unexpected = sorted(set(expected) - set(w)), sorted(set(w) - set(expected))
    if missing or unexpected:
        raise ArtifactError(f"The {family} weights are incomplete: missing {missing or 'none'}, "
                            f"unexpected {unexpected or 'none'}.")
    for key, shape in expected.items():
        if tuple(w[key].shape) != shape:
            raise ArtifactError(f"Weight {key} has shape {w[key].shape}, expected {shape}: the weights are inconsistent.")


def fold_weights(weights, model_config=None):
    """A weight dict -> the folded weights its family's export graphs are built from.

    With ``model_config``, its family's ``export_fold`` (:class:`FoldedWeights` for LSTM-SA,
    :class:`~sertiny.export.baseline_graphs.BaselineWeights` or
    :class:`~sertiny.export.vit_graph.VitWeights` for the others) checks the shapes against
    each other and against the config, so a weights file from another architecture or
    feature set fails with a clear message. Without, the arrays say which it is: LSTM-SA's
    named format (``lstm2/...``) or a baseline family's generic one.
    """
    if model_config is not None:
        return get_family(model_config.family).resolve("export_fold")(weights, model_config)
    if "lstm2/kernel" in weights:
        return fold_lstm_sa(weights)
    from .baseline_graphs import fold_baseline

    return fold_baseline(weights)


def fold_lstm_sa(weights, model_config=None):
    """LSTM-SA / ResLSTM-SA's named weight dict -> :class:`FoldedWeights` (folding in float64,
    stored float32), shapes checked (see :func:`fold_weights`)."""
    w = {k: np.asarray(v, dtype=np.float64) for k, v in weights.items()}
    _check_shapes(w, model_config)
    f32 = lambda a: np.ascontiguousarray(a, dtype=np.float32)
    lstm1 = None
    kernel2, bias2 = _reorder_gates(w["lstm2/kernel"]), _reorder_gates(w["lstm2/bias"])
    if "lstm1/kernel" in w:
        lstm1 = Lstm(*(f32(_reorder_gates(w[f"lstm1/{k}"])) for k in ("kernel", "recurrent_kernel", "bias")))
        scale, shift = _bn_affine(w, "bn_in")
        # BN(r + x) @ K + b = (r + x) @ (diag(scale) K) + (shift @ K + b)
        kernel2, bias2 = scale[:, None] * kernel2, shift @ kernel2 + bias2
    lstm2 = Lstm(f32(kernel2), f32(_reorder_gates(w["lstm2/recurrent_kernel"])), f32(bias2))
    bn_scale, bn_shift = _bn_affine(w, "bn_out")
    return FoldedWeights(
        lstm1=lstm1,
        lstm2=lstm2,
        attention=f32(w["attention/u"].reshape(-1)),
        bn_scale=f32(bn_scale),
        bn_shift=f32(bn_shift),
        dense_kernel=f32(w["dense/kernel"]),
        dense_bias=f32(w["dense/bias"]),
    )


_REQUIRED = ("lstm2/kernel", "lstm2/recurrent_kernel", "lstm2/bias", "attention/u",
             "bn_out/gamma", "bn_out/beta", "bn_out/moving_mean", "bn_out/moving_variance",
             "dense/kernel", "dense/bias")
_RESIDUAL = ("lstm1/kernel", "lstm1/recurrent_kernel", "lstm1/bias",
             "bn_in/gamma", "bn_in/beta", "bn_in/moving_mean", "bn_in/moving_variance")


def _check_shapes(w, config):
    residual = "lstm1/kernel" in w
    missing = [k for k in _REQUIRED + (_RESIDUAL if residual else ()) if k not in w]
    if missing:
        raise ArtifactError(f"The model weights lack {missing}; they do not come from an LSTM-SA/ResLSTM-SA run.")
    n_features, four_h = w["lstm2/kernel"].shape
    hidden = four_h // 4
    expected = {
        "lstm2/recurrent_kernel": (hidden, 4 * hidden),
        "lstm2/bias": (4 * hidden,),
        "attention/u": (hidden,),
        "dense/kernel": (hidden, w["dense/bias"].shape[0]),
    }
    if residual:
        expected.update({"lstm1/kernel": (n_features, 4 * n_features),
                         "lstm1/recurrent_kernel": (n_features, 4 * n_features),
                         "lstm1/bias": (4 * n_features,), "bn_in/gamma": (n_features,)})
    for key, shape in expected.items():
        if tuple(w[key].reshape(-1).shape if key == "attention/u" else w[key].shape) != shape:
            raise ArtifactError(f"Weight {key} has shape {w[key].shape}, expected {shape}: the weights are inconsistent.")
    if config is not None:
        got = ("res_lstm_sa" if residual else "lstm_sa", hidden, n_features, w["dense/bias"].shape[0])
        want = (config.family, config.hidden, config.n_features, config.n_classes)
        if got != want:
            raise ArtifactError(
                f"The weights are a (family, hidden, n_features, n_classes) = {got} model but the run "
                f"says {want}: the weights were trained on a different model or feature set."
            )


# --------------------------------------------------------------------------- TF graph pieces


def _tf():
    from ..errors import require

    return require("tensorflow", "train")


def _cell(tf, z_in, recurrent, h, c):
    """One LSTM step on gate pre-activations ``z_in`` (input projection + bias).

    ``h``/``c`` None means a zero state (the first step of a clip): the recurrent matmul
    and the forget product are then skipped rather than computed on zeros.
    """
    z = z_in if h is None else z_in + tf.matmul(h, recurrent)
    units = z.shape[-1] // 4
    sigm, g = tf.split(z, [3 * units, units], axis=-1)
    i, f, o = tf.split(tf.sigmoid(sigm), 3, axis=-1)
    # Named so the int8 calibration can find the cell state (see ``convert.CELL_STATE_NAMES``).
    ig = i * tf.tanh(g)
    c_new = tf.identity(ig, name="cell_state") if c is None else tf.add(
        tf.multiply(f, c, name="cell_decay"), ig, name="cell_state")
    return o * tf.tanh(c_new), c_new


def _project(tf, x, lstm):
    """All steps' input projections in one FULLY_CONNECTED: (steps, F_in) -> (steps, 4U)."""
    return tf.matmul(x, tf.constant(lstm.kernel)) + tf.constant(lstm.bias)


def _rows(tf, a):
    """Split (steps, n) into ``steps`` tensors of shape (1, n) with one op (UNPACK)."""
    if a.shape[0] == 1:
        return [a]
    return [tf.expand_dims(r, 0) for r in tf.unstack(a, axis=0)]


def _stack(tf, rows):
    """(1, n) rows -> (steps, n). PACK, not CONCATENATION: TFLite Micro's concatenation
    takes at most 10 inputs, its pack any number."""
    if len(rows) == 1:
        return rows[0]
    return tf.reshape(tf.stack(rows, axis=0), (len(rows), rows[0].shape[-1]))


def lstm_steps(tf, x, lstm, h=None, c=None, *, reverse=False):
    """Run ``lstm`` over (steps, F_in); returns the (1, U) output of every step, in time
    order, and the final (h, c). ``reverse`` runs the steps from the last frame to the
    first (a backward LSTM: unrolled, the reversal is only the order the rows are used in)."""
    recurrent = tf.constant(lstm.recurrent)
    rows = _rows(tf, _project(tf, x, lstm))
    outputs, h, c = cell_steps(tf, rows[::-1] if reverse else rows, recurrent, h, c)
    return (outputs[::-1] if reverse else outputs), h, c


def cell_steps(tf, rows, recurrent, h=None, c=None):
    """:func:`_cell` over gate pre-activation rows in the order given; returns every step's
    h and the final (h, c)."""
    outputs = []
    for z in rows:
        h, c = _cell(tf, z, recurrent, h, c)
        outputs.append(h)
    return outputs, h, c


def _run_lstm(tf, x, lstm, h=None, c=None):
    """Run ``lstm`` over (steps, F_in); returns the (steps, U) outputs and the final (h, c)."""
    outputs, h, c = lstm_steps(tf, x, lstm, h, c)
    return _stack(tf, outputs), h, c


def sequential_recurrence(tf, fw, x):
    """(T, F) -> LSTM2 outputs (T, H): LSTM1 over all steps, then LSTM2 over all steps."""
    if fw.residual:
        h1, _, _ = _run_lstm(tf, x, fw.lstm1)
        x = h1 + x
    h2, _, _ = _run_lstm(tf, x, fw.lstm2)
    return h2


def interleave_gates(a1, a2):
    """Gate-stacked arrays of two LSTMs (last axis (i, f, o, g) each) -> the last axis of
    their fused cell, [i1 i2 | f1 f2 | o1 o2 | g1 g2], whose state is [h1, h2], [c1, c2]."""
    g1, g2 = np.split(a1, 4, axis=-1), np.split(a2, 4, axis=-1)
    return np.concatenate([b for pair in zip(g1, g2) for b in pair], axis=-1)


def wavefront_matrices(fw):
    """Input and recurrent matrices of the fused (LSTM1 step t, LSTM2 step t-1) cell.

    The fused cell's gate vector is laid out [i1 i2 | f1 f2 | o1 o2 | g1 g2] so that its
    state is simply [h1, h2] and [c1, c2]. Returns ``(kernel (F, 4(F+H)), bias, recurrent
    (F+H, 4(F+H)), layer2_columns (bool mask))``: ``x @ kernel + bias`` holds LSTM1's input
    projection of a frame in the layer-1 columns and the frame's share of LSTM2's input
    projection (the residual's ``x``, through folded BN) in the layer-2 columns.
    """
    return fused_two_layer_matrices(fw.lstm1, fw.lstm2, fw.lstm2.kernel)


def fused_two_layer_matrices(l1, l2, frame_kernel2):
    """:func:`wavefront_matrices` for any two stacked LSTMs: ``frame_kernel2`` (F, 4H) is what
    a frame adds to LSTM2's input projection (ResLSTM: ``lstm2.kernel``, through the
    residual; a plain stack: zeros)."""
    f, h = l1.units, l2.units
    kernel = interleave_gates(l1.kernel, frame_kernel2)
    bias = interleave_gates(l1.bias, l2.bias)
    top = interleave_gates(l1.recurrent, l2.kernel)  # h1 drives LSTM1's recurrence and LSTM2's input
    bottom = interleave_gates(np.zeros((h, 4 * f), np.float32), l2.recurrent)
    recurrent = np.concatenate([top, bottom], axis=0)
    layer2 = np.tile(np.r_[np.zeros(f, bool), np.ones(h, bool)], 4)
    return kernel.astype(np.float32), bias.astype(np.float32), recurrent.astype(np.float32), layer2


def wavefront_recurrence(tf, fw, x):
    """(T, F) -> LSTM2 outputs (T, H) with the fused two-layer cell, T + 1 ticks.

    Tick k runs LSTM1 step k and LSTM2 step k-1. Its input pre-activations take the layer-1
    columns of frame k's projection and the layer-2 columns of frame k-1's, a one-row shift
    done once for all ticks (two PADs, two masking MULs, one ADD). The padding rows are zeros,
    bias included, so at tick 0 LSTM2's candidate is tanh(0) = 0 and its state stays zero,
    and the unused LSTM1 half of the last tick sees zeros.
    """
    if not fw.residual:
        raise ParameterError("The wavefront schedule fuses two LSTM layers; LSTM-SA has one. Use 'sequential'.")
    f = fw.lstm1.units
    outputs = wavefront_ticks(tf, x, *wavefront_matrices(fw))
    # Tick k's state holds h2 at step k-1: ticks 1..T give LSTM2's T outputs.
    states = _stack(tf, outputs[1:])  # (T, F + H)
    return states[:, f:]


def wavefront_ticks(tf, x, kernel, bias, recurrent, layer2):
    """The T + 1 ticks of a fused two-layer cell (:func:`fused_two_layer_matrices`) over
    (T, F); returns each tick's state [h1, h2] (1, F + H)."""
    proj = tf.matmul(x, tf.constant(kernel)) + tf.constant(bias)  # (T, 4n)
    current = tf.pad(proj, [[0, 1], [0, 0]])  # row k = frame k (zeros at k = T)
    previous = tf.pad(proj, [[1, 0], [0, 0]])  # row k = frame k-1 (zeros at k = 0)
    # Column select as two 0/1 masks rather than SELECT_V2, which the 16x8 quantiser lacks.
    layer2 = layer2[None, :].astype(np.float32)
    z_all = current * tf.constant(1.0 - layer2) + previous * tf.constant(layer2)
    outputs, _, _ = cell_steps(tf, _rows(tf, z_all), tf.constant(recurrent))
    return outputs


def attention_head(tf, fw, h2):
    """(T, H) LSTM2 outputs -> (1, C) probabilities: soft attention, folded BN + dense, softmax."""
    scores = tf.reshape(tf.matmul(h2, tf.constant(fw.attention[:, None])), (1, -1))  # (1, T)
    alpha = tf.nn.softmax(scores, axis=-1)
    context = tf.matmul(alpha, h2)  # (1, H)
    logits = tf.matmul(context, tf.constant(fw.head_kernel)) + tf.constant(fw.head_bias)
    return tf.nn.softmax(logits, axis=-1)


# --------------------------------------------------------------------------- public builders


def effective_schedule(fw, schedule):
    """The schedule a model is built with: ``wavefront`` fuses two recurrences into one cell
    where the family has two to fuse (``Family.wavefront``: ResLSTM-SA's and dual_lstm's two
    layers, bilstm_att's two directions), else ``sequential``."""
    return schedule if get_family(fw.family).wavefront else "sequential"


def lstm_sa_graph(tf, fw, x, schedule):
    """LSTM-SA / ResLSTM-SA's full-unroll graph: (T, F) -> (1, C) probabilities."""
    recurrence = wavefront_recurrence if schedule == "wavefront" else sequential_recurrence
    return attention_head(tf, fw, recurrence(tf, fw, x))


def full_unroll_function(fw, seq_len, *, schedule="wavefront"):
    """A ``tf.function`` (1, T, F) float32 -> {"probabilities": (1, C)}, every recurrence
    unrolled: the family's ``export_graph`` over one clip."""
    tf = _tf()
    if schedule not in SCHEDULES:
        raise ParameterError(f"schedule must be one of {SCHEDULES}; got {schedule!r}.")
    graph = get_family(fw.family).resolve("export_graph")
    schedule = effective_schedule(fw, schedule)
    spec = tf.TensorSpec((1, seq_len, fw.n_features), tf.float32, name="features")

    @tf.function(input_signature=[spec], autograph=False)
    def model(features):
        return {"probabilities": graph(tf, fw, tf.reshape(features, (seq_len, fw.n_features)), schedule)}

    return model


def chunk_io(fw, chunk):
    """Names and shapes of the chunked graph's inputs and outputs, in the model's order.

    Inputs: ``frames`` (K, F) normalised features, then the state of each LSTM entering the
    chunk. Outputs: ``h2_seq`` (K, H) LSTM2's output at every frame of the chunk (its last
    row is the h2 state to feed back), then the other states leaving the chunk.
    """
    h, f = fw.hidden, fw.n_features
    states = ([("h1", (1, f)), ("c1", (1, f))] if fw.residual else []) + [("h2", (1, h)), ("c2", (1, h))]
    inputs = [("frames", (chunk, f))] + states
    outputs = [("h2_seq", (chunk, h))] + [s for s in states if s[0] != "h2"]
    return inputs, outputs


def chunk_refusal():
    """Why a family without a streaming profile cannot export ``--chunk``: the start of the message."""
    streaming = "/".join(family.name for family in families() if family.streaming)
    return f"The chunked profile is implemented for {streaming} only"


def chunk_function(fw, chunk):
    """A ``tf.function`` for the chunked (streaming) profile: the family's ``export_chunk``."""
    family = get_family(fw.family)
    if not family.streaming:
        raise ParameterError(f"{chunk_refusal()}; export this {fw.family} model with the full profile (no --chunk).")
    return family.resolve("export_chunk")(fw, chunk)


def lstm_sa_chunk_function(fw, chunk):
    """LSTM-SA / ResLSTM-SA's chunked graph (see :func:`chunk_io` for its signature).

    The recurrence is unrolled over K frames with states in and out; it is always the
    sequential schedule (the wavefront's one-frame lag would have to be carried across
    invokes too, and at small K the fused cell's zero block costs more flash than it saves).
    """
    tf = _tf()
    inputs, _ = chunk_io(fw, chunk)
    specs = [tf.TensorSpec(shape, tf.float32, name=name) for name, shape in inputs]

    @tf.function(input_signature=specs, autograph=False)
    def model(frames, *states):
        state = dict(zip([n for n, _ in inputs[1:]], states))
        x = frames
        out = {}
        if fw.residual:
            h1, out["h1"], out["c1"] = _run_lstm(tf, x, fw.lstm1, state["h1"], state["c1"])
            x = h1 + x
        out["h2_seq"], _, out["c2"] = _run_lstm(tf, x, fw.lstm2, state["h2"], state["c2"])
        return out

    return model
