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
:func:`lstm_sa_chunk_function`), built from the LSTM pieces of :mod:`sertiny.export.lstm_ops`;
the baseline families (``bilstm_att``, ``dual_lstm``, ``cnn_lstm``) are built from the same
pieces by :mod:`sertiny.export.baseline_graphs`, ``vit`` by :mod:`sertiny.export.vit_graph`
and ``stats_linear`` by :mod:`sertiny.export.stats_linear_graph`.
"""

import dataclasses

import numpy as np

from ..errors import ArtifactError, ParameterError
from ..models.registry import families, get_family
from ..models.weights import batch_norm_affine
from .lstm_ops import (
    Lstm,
    fused_two_layer_matrices,
    reorder_gates,
    run_lstm,
    stack_rows,
    tensorflow,
    wavefront_ticks,
)

SCHEDULES = ("sequential", "wavefront")


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
            "attention_u": float32_list(self.attention),
            "bn_scale": float32_list(self.bn_scale),
            "bn_shift": float32_list(self.bn_shift),
            "dense_kernel": float32_list(self.dense_kernel),
            "dense_bias": float32_list(self.dense_bias),
        }


def float32_list(array):
    """A float32 array as nested lists of the shortest decimals that read back as the same
    float32 values: half the characters of float64 reprs in sertiny.json (the head of a
    joined model is ~2,000 numbers per variant)."""
    array = np.asarray(array, dtype=np.float32)
    if array.ndim == 0:
        return float(str(array))
    return [float32_list(row) for row in array] if array.ndim > 1 else [float(str(v)) for v in array]


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
    kernel2, bias2 = reorder_gates(w["lstm2/kernel"]), reorder_gates(w["lstm2/bias"])
    if "lstm1/kernel" in w:
        lstm1 = Lstm(*(f32(reorder_gates(w[f"lstm1/{k}"])) for k in ("kernel", "recurrent_kernel", "bias")))
        scale, shift = batch_norm_affine(w, "bn_in")
        # BN(r + x) @ K + b = (r + x) @ (diag(scale) K) + (shift @ K + b)
        kernel2, bias2 = scale[:, None] * kernel2, shift @ kernel2 + bias2
    lstm2 = Lstm(f32(kernel2), f32(reorder_gates(w["lstm2/recurrent_kernel"])), f32(bias2))
    bn_scale, bn_shift = batch_norm_affine(w, "bn_out")
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


def sequential_recurrence(tf, fw, x):
    """(T, F) -> LSTM2 outputs (T, H): LSTM1 over all steps, then LSTM2 over all steps."""
    if fw.residual:
        h1, _, _ = run_lstm(tf, x, fw.lstm1)
        x = h1 + x
    h2, _, _ = run_lstm(tf, x, fw.lstm2)
    return h2


def wavefront_matrices(fw):
    """Input and recurrent matrices of the fused (LSTM1 step t, LSTM2 step t-1) cell.

    The fused cell's gate vector is laid out [i1 i2 | f1 f2 | o1 o2 | g1 g2] so that its
    state is simply [h1, h2] and [c1, c2]. Returns ``(kernel (F, 4(F+H)), bias, recurrent
    (F+H, 4(F+H)), layer2_columns (bool mask))``: ``x @ kernel + bias`` holds LSTM1's input
    projection of a frame in the layer-1 columns and the frame's share of LSTM2's input
    projection (the residual's ``x``, through folded BN) in the layer-2 columns.
    """
    return fused_two_layer_matrices(fw.lstm1, fw.lstm2, fw.lstm2.kernel)


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
    states = stack_rows(tf, outputs[1:])  # (T, F + H)
    return states[:, f:]


def attention_context(tf, fw, h2):
    """(T, H) LSTM2 outputs -> (1, H) soft-attention context."""
    scores = tf.reshape(tf.matmul(h2, tf.constant(fw.attention[:, None])), (1, -1))  # (1, T)
    alpha = tf.nn.softmax(scores, axis=-1)
    return tf.matmul(alpha, h2)


def attention_head(tf, fw, h2):
    """(T, H) LSTM2 outputs -> (1, C) probabilities: soft attention, folded BN + dense, softmax."""
    context = attention_context(tf, fw, h2)
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
    tf = tensorflow()
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
    tf = tensorflow()
    inputs, _ = chunk_io(fw, chunk)
    specs = [tf.TensorSpec(shape, tf.float32, name=name) for name, shape in inputs]

    @tf.function(input_signature=specs, autograph=False)
    def model(frames, *states):
        state = dict(zip([n for n, _ in inputs[1:]], states))
        x = frames
        out = {}
        if fw.residual:
            h1, out["h1"], out["c1"] = run_lstm(tf, x, fw.lstm1, state["h1"], state["c1"])
            x = h1 + x
        out["h2_seq"], _, out["c2"] = run_lstm(tf, x, fw.lstm2, state["h2"], state["c2"])
        return out

    return model
