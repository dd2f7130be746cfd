"""LSTM pieces of the export graphs, shared by every recurrent family's graph builder.

Export writes each recurrence out step by step with raw TensorFlow ops (why:
:mod:`sertiny.export.graph`). The pieces here are what LSTM-SA / ResLSTM-SA
(:mod:`sertiny.export.graph`) and the baseline families
(:mod:`sertiny.export.baseline_graphs`) have in common:

* :class:`Lstm` and :func:`reorder_gates`: Keras' gate columns (i, f, c, o) reordered to
  (i, f, o, g), so one LOGISTIC covers the three sigmoid gates and one TANH the candidate:
  11 ops per LSTM step (fewer at a clip's first step, whose state is zero).
* :func:`project`: the input projections of all steps as one FULLY_CONNECTED.
* :func:`lstm_steps`, :func:`cell_steps`, :func:`run_lstm`: the unrolled recurrence.
* :func:`fused_two_layer_matrices`, :func:`wavefront_ticks`, :func:`interleave_gates`: two
  recurrences fused into one cell (the ``wavefront`` schedule).
"""

import dataclasses

import numpy as np

from ..errors import require

# Keras gate order (i, f, c, o) -> export order (i, f, o, c): the sigmoid gates first.
GATE_ORDER = (0, 1, 3, 2)


@dataclasses.dataclass(frozen=True, eq=False)
class Lstm:
    """One LSTM layer, gates in export order (i, f, o, g); ``kernel`` may have BN folded in."""

    kernel: np.ndarray  # (F_in, 4U)
    recurrent: np.ndarray  # (U, 4U)
    bias: np.ndarray  # (4U,)

    @property
    def units(self):
        return self.recurrent.shape[0]


def reorder_gates(a):
    """Permute the last axis of a Keras gate-stacked array from (i, f, c, o) to (i, f, o, c)."""
    blocks = np.split(np.asarray(a, dtype=np.float64), 4, axis=-1)
    return np.concatenate([blocks[k] for k in GATE_ORDER], axis=-1)


def tensorflow():
    """The ``tensorflow`` module, or an error naming the extra that installs it."""
    return require("tensorflow", "train")


def lstm_cell(tf, z_in, recurrent, h, c):
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


def project(tf, x, lstm):
    """All steps' input projections in one FULLY_CONNECTED: (steps, F_in) -> (steps, 4U)."""
    return tf.matmul(x, tf.constant(lstm.kernel)) + tf.constant(lstm.bias)


def split_rows(tf, a):
    """Split (steps, n) into ``steps`` tensors of shape (1, n) with one op (UNPACK)."""
    if a.shape[0] == 1:
        return [a]
    return [tf.expand_dims(r, 0) for r in tf.unstack(a, axis=0)]


def stack_rows(tf, rows):
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
    rows = split_rows(tf, project(tf, x, lstm))
    outputs, h, c = cell_steps(tf, rows[::-1] if reverse else rows, recurrent, h, c)
    return (outputs[::-1] if reverse else outputs), h, c


def cell_steps(tf, rows, recurrent, h=None, c=None):
    """:func:`lstm_cell` over gate pre-activation rows in the order given; returns every step's
    h and the final (h, c)."""
    outputs = []
    for z in rows:
        h, c = lstm_cell(tf, z, recurrent, h, c)
        outputs.append(h)
    return outputs, h, c


def run_lstm(tf, x, lstm, h=None, c=None):
    """Run ``lstm`` over (steps, F_in); returns the (steps, U) outputs and the final (h, c)."""
    outputs, h, c = lstm_steps(tf, x, lstm, h, c)
    return stack_rows(tf, outputs), h, c


def interleave_gates(a1, a2):
    """Gate-stacked arrays of two LSTMs (last axis (i, f, o, g) each) -> the last axis of
    their fused cell, [i1 i2 | f1 f2 | o1 o2 | g1 g2], whose state is [h1, h2], [c1, c2]."""
    g1, g2 = np.split(a1, 4, axis=-1), np.split(a2, 4, axis=-1)
    return np.concatenate([b for pair in zip(g1, g2) for b in pair], axis=-1)


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


def wavefront_ticks(tf, x, kernel, bias, recurrent, layer2):
    """The T + 1 ticks of a fused two-layer cell (:func:`fused_two_layer_matrices`) over
    (T, F); returns each tick's state [h1, h2] (1, F + H)."""
    proj = tf.matmul(x, tf.constant(kernel)) + tf.constant(bias)  # (T, 4n)
    current = tf.pad(proj, [[0, 1], [0, 0]])  # row k = frame k (zeros at k = T)
    previous = tf.pad(proj, [[1, 0], [0, 0]])  # row k = frame k-1 (zeros at k = 0)
    # Column select as two 0/1 masks rather than SELECT_V2, which the 16x8 quantiser lacks.
    layer2 = layer2[None, :].astype(np.float32)
    z_all = current * tf.constant(1.0 - layer2) + previous * tf.constant(layer2)
    outputs, _, _ = cell_steps(tf, split_rows(tf, z_all), tf.constant(recurrent))
    return outputs
