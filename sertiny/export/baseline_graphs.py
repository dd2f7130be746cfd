"""TensorFlow graphs of the baseline families (``bilstm_att``, ``dual_lstm``, ``cnn_lstm``, ``vit``).

The same approach as :mod:`sertiny.export.graph`, with the same LSTM pieces
(:mod:`sertiny.export.lstm_ops`): the generic weight dict (:mod:`sertiny.models.weights`) is folded into constant
matrices and every recurrence is unrolled with plain ops, one invoke per clip, full profile
only (the chunked profile's host-side head is LSTM-SA's soft attention):

* Every LSTM step is :func:`~sertiny.export.lstm_ops.lstm_cell` (gates reordered to (i, f, o, g): 11 ops, fewer
  at the first step), and all steps' input projections are one FULLY_CONNECTED.
* ``bilstm_att``, ``schedule="sequential"``: each direction is its own unrolled LSTM; the
  backward one uses the rows of its input projection from the last frame to the first and
  its outputs are put back in time order, which unrolled costs no op. The two (T, H)
  sequences are joined by one CONCATENATION. ``schedule="wavefront"`` (the default, as for
  ResLSTM-SA) runs forward step k and backward step T-1-k as ONE cell of 2H units over the
  reversed-and-masked projection (:func:`_paired_bidirectional`): half the ops, twice the
  recurrent weights (zero blocks). Attention is tanh(h W + b) v over all frames in two
  FULLY_CONNECTED, a SOFTMAX over time and one matmul for the weighted sum.
* ``dual_lstm``: LSTM a over all frames, then LSTM b, whose last state feeds the classifier;
  ``schedule="wavefront"`` runs LSTM a step t and LSTM b step t-1 as one cell, as
  :func:`graph.wavefront_recurrence` does for ResLSTM-SA (half the ops, zero blocks).
* ``cnn_lstm``: each block is CONV_2D (the conv1d as a 1 x 3 convolution over a (1, 1, T,
  C) tensor) with the BatchNorm folded into its kernel and bias (exact: inference BN is
  affine), MAX_POOL_2D, then ELU. Pooling before ELU is exact because ELU is increasing
  (max(elu a, elu b) = elu(max(a, b))) and halves the ELU's work. 'same' pooling
  matches Keras: the odd last frame is pooled alone.

* ``vit``: no recurrence; :mod:`sertiny.export.vit_graph` builds it, and this module checks
  its weights and hands them over (:func:`fold_baseline`).

Each family's graph (:func:`bilstm_att_graph`, :func:`dual_lstm_graph`,
:func:`cnn_lstm_graph`) is its ``Family.export_graph``, which
:func:`sertiny.export.graph.full_unroll_function` wraps into a ``tf.function``.

Dropout is the identity at inference, and a multi-task model's auxiliary heads are left out
(:func:`fold_baseline`): only the emotion head is exported. Zero padding only:
:func:`sertiny.export.export_run` refuses masked-padding runs before any of this runs.
"""

import dataclasses

import numpy as np

from ..errors import ArtifactError, ParameterError
from ..models.cnn_lstm_spec import CNN_BLOCKS, CNN_KERNEL, CNN_POOL
from ..models.weights import batch_norm_affine, check_generic_weights, without_aux_heads
from .lstm_ops import (
    Lstm,
    cell_steps,
    fused_two_layer_matrices,
    interleave_gates,
    lstm_steps,
    project,
    reorder_gates,
    split_rows,
    stack_rows,
    wavefront_ticks,
)
from .vit_graph import PATCH_FRAMES, VIT_FAMILY, fold_vit
from .vit_graph import expected_shapes as vit_shapes

# The families whose generic weights fold_baseline reads.
BASELINE_FAMILIES = ("bilstm_att", "dual_lstm", "cnn_lstm", VIT_FAMILY)

# Layer names of each family's LSTMs, in the order they run (the generic weight format).
_LSTMS = {
    "bilstm_att": ("bilstm1/forward", "bilstm1/backward", "bilstm2/forward", "bilstm2/backward"),
    "dual_lstm": ("lstm_a", "lstm_b"),
    "cnn_lstm": ("lstm",),
}


@dataclasses.dataclass(frozen=True, eq=False)
class BaselineWeights:
    """A baseline model as export consumes it: LSTM gates reordered, BatchNorms folded, float32.

    ``lstms`` maps the weight format's layer name (``bilstm1/forward``, ``lstm_a``, ...) to
    an :class:`~sertiny.export.lstm_ops.Lstm`. ``convs`` (cnn_lstm) holds each block's
    ``(kernel (1, 3, C_in, C_out), bias (C_out,))`` with its BatchNorm folded in;
    ``attention`` (bilstm_att) is ``(W (2H, H), b (H,), v (H, 1))``.
    """

    family: str
    lstms: dict
    dense_kernel: np.ndarray  # (D, C)
    dense_bias: np.ndarray  # (C,)
    convs: tuple = ()
    attention: tuple | None = None

    @property
    def n_features(self):
        first = self.convs[0][0] if self.convs else self.lstms[_LSTMS[self.family][0]].kernel
        return first.shape[-2]

    @property
    def hidden(self):
        return self.lstms[_LSTMS[self.family][0]].units

    @property
    def n_classes(self):
        return self.dense_bias.shape[0]


def expected_shapes(family, hidden, n_features, n_classes, seq_len=None):
    """``{key: shape}`` of every array of a family's generic weight dict (Keras' shapes).

    ``seq_len`` (frames T) matters only to ``vit``, whose position embedding has one row per patch.
    """
    if family == VIT_FAMILY:
        if seq_len is None:
            raise ParameterError("The vit family's weight shapes depend on seq_len; pass it.")
        return vit_shapes(hidden, n_features, n_classes, seq_len)
    h = hidden
    shapes = {}

    def lstm(name, n_in):
        shapes.update({f"{name}/kernel": (n_in, 4 * h), f"{name}/recurrent_kernel": (h, 4 * h),
                       f"{name}/bias": (4 * h,)})

    if family == "bilstm_att":
        for direction in ("forward", "backward"):
            lstm(f"bilstm1/{direction}", n_features)
            lstm(f"bilstm2/{direction}", 2 * h)
        shapes.update({"attention/kernel": (2 * h, h), "attention/bias": (h,), "attention/v": (h, 1),
                       "dense/kernel": (2 * h, n_classes)})
    elif family == "dual_lstm":
        lstm("lstm_a", n_features)
        lstm("lstm_b", h)
        shapes["dense/kernel"] = (h, n_classes)
    elif family == "cnn_lstm":
        for block in range(1, CNN_BLOCKS + 1):
            shapes[f"conv{block}/kernel"] = (CNN_KERNEL, n_features if block == 1 else h, h)
            shapes.update({f"bn{block}/{k}": (h,) for k in ("gamma", "beta", "moving_mean", "moving_variance")})
        lstm("lstm", h)
        shapes["dense/kernel"] = (h, n_classes)
    else:
        raise ParameterError(f"family must be one of {BASELINE_FAMILIES}; got {family!r}.")
    shapes["dense/bias"] = (n_classes,)
    return shapes


def _describe(w):
    """(family, hidden, n_features, n_classes) read off a generic weight dict's own arrays."""
    if "patch_embed/kernel" in w and "pos_embed/embedding" in w:
        d_in, hidden = w["patch_embed/kernel"].shape
        return VIT_FAMILY, hidden, d_in // PATCH_FRAMES, w["dense/bias"].shape[0] if "dense/bias" in w else 0
    if "bilstm1/forward/kernel" in w:
        family, first = "bilstm_att", "bilstm1/forward"
    elif "lstm_a/kernel" in w:
        family, first = "dual_lstm", "lstm_a"
    elif "conv1/kernel" in w and "lstm/kernel" in w:
        family, first = "cnn_lstm", "lstm"
    else:
        raise ArtifactError(f"The model weights ({sorted(w)[:4]}...) are not those of a {'/'.join(BASELINE_FAMILIES)} "
                            "model; they come from another family.")
    hidden = w[f"{first}/recurrent_kernel"].shape[0]
    n_features = w["conv1/kernel"].shape[1] if family == "cnn_lstm" else w[f"{first}/kernel"].shape[0]
    n_classes = w["dense/bias"].shape[0] if "dense/bias" in w else 0
    return family, hidden, n_features, n_classes


def _check_shapes(w, config):
    described = _describe(w)
    # A vit's position embedding has one row per patch: the T its weights were made for.
    seq_len = w["pos_embed/embedding"].shape[0] * PATCH_FRAMES if described[0] == VIT_FAMILY else None
    check_generic_weights(w, expected_shapes(*described, seq_len), described[0])
    if config is not None:
        want = (config.family, config.hidden, config.n_features, config.n_classes)
        if described != want:
            raise ArtifactError(
                f"The weights are a (family, hidden, n_features, n_classes) = {described} model but the run "
                f"says {want}: the weights were trained on a different model or feature set."
            )
    return described[0]


def fold_baseline(weights, model_config=None):
    """Generic weight dict -> :class:`BaselineWeights` (folding in float64, stored float32),
    or a :class:`~sertiny.export.vit_graph.VitWeights` for a vit's weights or run.

    Checks every key and shape, and the family and sizes against ``model_config`` if given.
    A multi-task model's auxiliary heads (``model_config.aux_heads``; without a config, every
    ``dense_<name>`` layer) are dropped: they are training aids, the graph is the emotion head's.
    """
    aux_heads = None if model_config is None else model_config.aux_heads
    w = {k: np.asarray(v, dtype=np.float64) for k, v in without_aux_heads(weights, aux_heads).items()}
    family = _check_shapes(w, model_config)
    if family == VIT_FAMILY:
        return fold_vit(w, model_config)
    f32 = lambda a: np.ascontiguousarray(a, dtype=np.float32)
    lstms = {name: Lstm(*(f32(reorder_gates(w[f"{name}/{k}"])) for k in ("kernel", "recurrent_kernel", "bias")))
             for name in _LSTMS[family]}
    convs, attention = [], None
    block = 1
    while f"conv{block}/kernel" in w:
        scale, shift = batch_norm_affine(w, f"bn{block}")
        # BN(conv(x)) = conv(x) * scale + shift: scale each output channel of the kernel.
        kernel = w[f"conv{block}/kernel"] * scale
        convs.append((f32(kernel[None]), f32(shift)))
        block += 1
    if family == "bilstm_att":
        attention = (f32(w["attention/kernel"]), f32(w["attention/bias"]), f32(w["attention/v"]))
    return BaselineWeights(family, lstms, f32(w["dense/kernel"]), f32(w["dense/bias"]), tuple(convs), attention)


# --------------------------------------------------------------------------- graphs


def _classify(tf, fw, features):
    """(1, D) -> (1, C) probabilities: the dense softmax (dropout is the identity)."""
    return tf.nn.softmax(tf.matmul(features, tf.constant(fw.dense_kernel)) + tf.constant(fw.dense_bias), axis=-1)


def _bidirectional(tf, x, forward, backward):
    """Sequential schedule: each direction its own unrolled LSTM -> (T, 2H)."""
    forward, _, _ = lstm_steps(tf, x, forward)
    backward, _, _ = lstm_steps(tf, x, backward, reverse=True)
    return tf.concat([stack_rows(tf, forward), stack_rows(tf, backward)], axis=-1)


def paired_matrices(forward, backward):
    """The fused cell that runs forward step k and backward step T-1-k as one: an
    :class:`~sertiny.export.lstm_ops.Lstm` of 2H units with gates [i_f i_b | f_f f_b | ...],
    state [h_f, h_b], a block-diagonal recurrent matrix (2H, 8H), and the 0/1 mask of its
    backward gate columns."""
    h = forward.units
    zeros = np.zeros((h, 4 * h), np.float32)
    recurrent = np.concatenate([interleave_gates(forward.recurrent, zeros), interleave_gates(zeros, backward.recurrent)])
    fused = Lstm(interleave_gates(forward.kernel, backward.kernel).astype(np.float32), recurrent.astype(np.float32),
                 interleave_gates(forward.bias, backward.bias).astype(np.float32))
    return fused, np.tile(np.r_[np.zeros(h), np.ones(h)], 4).astype(np.float32)


def _paired_bidirectional(tf, x, forward, backward):
    """Wavefront schedule: both directions in one cell, T ticks -> (T, 2H).

    Tick k takes the forward gate columns of frame k's projection and the backward ones of
    frame T-1-k's: one REVERSE_V2 of the projection and two 0/1 masks, once. Tick k's state
    is [h_f(k), h_b(T-1-k)], so the backward half of the stacked states is reversed back the
    same way. Half the ops of the sequential schedule, for a recurrent matrix with zero
    blocks (twice the recurrent weights).
    """
    fused, backward_cols = paired_matrices(forward, backward)
    proj = project(tf, x, fused)  # (T, 8H): both directions' input projections, one FULLY_CONNECTED
    z_all = proj * tf.constant(1.0 - backward_cols[None]) + tf.reverse(proj, [0]) * tf.constant(backward_cols[None])
    ticks, _, _ = cell_steps(tf, split_rows(tf, z_all), tf.constant(fused.recurrent))
    states = stack_rows(tf, ticks)  # (T, 2H)
    backward_half = np.r_[np.zeros(forward.units), np.ones(forward.units)][None].astype(np.float32)
    return states * tf.constant(1.0 - backward_half) + tf.reverse(states, [0]) * tf.constant(backward_half)


def bilstm_att_graph(tf, fw, x, schedule):
    bidirectional = _paired_bidirectional if schedule == "wavefront" else _bidirectional
    for layer in ("bilstm1", "bilstm2"):
        x = bidirectional(tf, x, fw.lstms[f"{layer}/forward"], fw.lstms[f"{layer}/backward"])  # (T, 2H)
    kernel, bias, v = fw.attention
    energy = tf.tanh(tf.matmul(x, tf.constant(kernel)) + tf.constant(bias))  # (T, H)
    scores = tf.reshape(tf.matmul(energy, tf.constant(v)), (1, -1))  # (1, T)
    context = tf.matmul(tf.nn.softmax(scores, axis=-1), x)  # (1, 2H)
    return _classify(tf, fw, context)


def dual_lstm_graph(tf, fw, x, schedule):
    lstm_a, lstm_b = fw.lstms["lstm_a"], fw.lstms["lstm_b"]
    if schedule == "wavefront":  # ResLSTM-SA's fused cell, without the frame's share in LSTM b
        frame_kernel = np.zeros((lstm_a.kernel.shape[0], 4 * lstm_b.units), np.float32)
        ticks = wavefront_ticks(tf, x, *fused_two_layer_matrices(lstm_a, lstm_b, frame_kernel))
        h = ticks[-1][:, lstm_a.units:]  # tick T holds LSTM b's last step
    else:
        outputs, _, _ = lstm_steps(tf, x, lstm_a)
        _, h, _ = lstm_steps(tf, stack_rows(tf, outputs), lstm_b)
    return _classify(tf, fw, h)


def cnn_lstm_graph(tf, fw, x, schedule):
    steps = x.shape[0]
    y = tf.reshape(x, (1, 1, steps, x.shape[1]))  # NHWC with H = 1: conv1d as conv2d
    for kernel, bias in fw.convs:
        y = tf.nn.conv2d(y, tf.constant(kernel), strides=1, padding="SAME") + tf.constant(bias)
        y = tf.nn.elu(tf.nn.max_pool2d(y, (1, CNN_POOL), (1, CNN_POOL), "SAME"))
        steps = -(-steps // CNN_POOL)
    _, h, _ = lstm_steps(tf, tf.reshape(y, (steps, y.shape[-1])), fw.lstms["lstm"])
    return _classify(tf, fw, h)
