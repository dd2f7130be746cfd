"""TensorFlow graph of the ``stats_linear`` family (:mod:`sertiny.models.stats_linear`), from its generic weights.

What reaches the TFLite file, and why:

* The BatchNorm of the pooled vector is folded into the dense layer, ``(z s + t) W + b =
  z (diag(s) W) + (t W + b)`` (exact: inference BatchNorm is affine), and the folded kernel
  is split into one (F, C) block per statistic. Each statistic then feeds its own
  FULLY_CONNECTED and the logits are their sum: no CONCATENATION, which in int8 would force
  the mean, the deviation and the difference RMS onto one scale (requantising each).
* mean: one MEAN over time. std: SUB (the mean, broadcast over the frames), MUL (the
  square), MEAN, then ``v * rsqrt(v + eps)`` as ADD, RSQRT, MUL
  (:mod:`sertiny.models.stats_linear_spec`: TFLite Micro's SQRT has no int8 kernel, its
  RSQRT has). delta_rms: two STRIDED_SLICEs of the frames, SUB, MUL, MEAN and the same
  square root.
* Every op has an int8 kernel in LiteRT and TFLite Micro, so the full-integer model is
  integer throughout.

Full profile only (one invoke per clip). The statistics are streamable as running sums, but
sertiny's chunked profile is the LSTM-SA contract: the chunked model returns per-frame LSTM
outputs plus LSTM states, and the host (:mod:`sertiny.runtime.chunked`, the firmware's C
reference) pools them with attention and applies an affine head. Running sums would need
other state tensors and a host head with a square root, i.e. a second chunked runtime on
the host and in C; and an int8 state holding a sum of squares over up to T frames would
need a range T times wider than one frame's. The whole model is a few hundred operations
on one clip (see the bundle's ``ops``), so one invoke at the end of the clip costs a
microcontroller less than a streaming LSTM's per-frame invokes.
"""

import dataclasses

import numpy as np

from ..errors import ArtifactError
from ..models.stats_linear_spec import SQRT_EPSILON, STATISTICS
from .graph import _bn_affine, check_generic_weights

STATS_LINEAR_FAMILY = "stats_linear"


@dataclasses.dataclass(frozen=True, eq=False)
class StatsLinearWeights:
    """A stats_linear model as export consumes it: BatchNorm folded in, float32.

    ``kernels`` holds one (F, C) block of the folded dense kernel per statistic, in the
    order of ``statistics``; ``logits = sum_s stat_s @ kernels[s] + bias``.
    """

    kernels: tuple
    bias: np.ndarray  # (C,)
    statistics: tuple = STATISTICS
    family: str = STATS_LINEAR_FAMILY

    @property
    def n_features(self):
        return self.kernels[0].shape[0]

    @property
    def n_classes(self):
        return self.bias.shape[0]


def expected_shapes(n_features, n_classes):
    """``{key: shape}`` of every array of a stats_linear generic weight dict (Keras' shapes)."""
    width = len(STATISTICS) * n_features
    shapes = {f"bn/{k}": (width,) for k in ("gamma", "beta", "moving_mean", "moving_variance")}
    shapes.update({"dense/kernel": (width, n_classes), "dense/bias": (n_classes,)})
    return shapes


def _check_shapes(w, model_config):
    kernel = w.get("dense/kernel")
    if kernel is None or kernel.ndim != 2 or kernel.shape[0] % len(STATISTICS):
        raise ArtifactError(f"The model weights ({sorted(w)[:4]}...) are not those of a stats_linear model "
                            f"(a dense kernel of {len(STATISTICS)} x F rows); they come from another family.")
    n_features, n_classes = kernel.shape[0] // len(STATISTICS), kernel.shape[1]
    check_generic_weights(w, expected_shapes(n_features, n_classes), STATS_LINEAR_FAMILY)
    if model_config is not None:
        want = (model_config.family, model_config.n_features, model_config.n_classes)
        if want != (STATS_LINEAR_FAMILY, n_features, n_classes):
            raise ArtifactError(
                f"The weights are a stats_linear model of (n_features, n_classes) = ({n_features}, {n_classes}) "
                f"but the run says a {want[0]} model of {want[1:]}: the weights were trained on a different "
                "model or feature set."
            )


def fold_stats_linear(weights, model_config=None):
    """Generic weight dict -> :class:`StatsLinearWeights` (folding in float64, stored float32).

    Checks every key and shape, and the family and sizes against ``model_config`` if given.
    """
    w = {k: np.asarray(v, dtype=np.float64) for k, v in weights.items()}
    _check_shapes(w, model_config)
    scale, shift = _bn_affine(w, "bn")
    kernel = scale[:, None] * w["dense/kernel"]
    bias = shift @ w["dense/kernel"] + w["dense/bias"]
    blocks = np.split(kernel, len(STATISTICS), axis=0)
    f32 = lambda a: np.ascontiguousarray(a, dtype=np.float32)
    return StatsLinearWeights(tuple(f32(b) for b in blocks), f32(bias))


# --------------------------------------------------------------------------- graph


def _soft_sqrt(tf, v):
    return v * tf.math.rsqrt(v + SQRT_EPSILON)


def _mean_square(tf, x):
    return tf.reduce_mean(x * x, axis=0, keepdims=True)


def pooled_statistics(tf, x, statistics=STATISTICS):
    """(T, F) frames -> ``{statistic: (1, F)}`` over all T frames (the Keras layer's maths)."""
    mean = tf.reduce_mean(x, axis=0, keepdims=True)
    stats = {"mean": mean}
    if "std" in statistics:
        stats["std"] = _soft_sqrt(tf, _mean_square(tf, x - mean))
    if "delta_rms" in statistics:
        stats["delta_rms"] = _soft_sqrt(tf, _mean_square(tf, x[1:] - x[:-1]))
    return stats


def stats_linear_graph(tf, fw, x, schedule=None):
    """(T, F) normalised frames -> (1, C) probabilities. ``schedule`` is unused (no recurrence)."""
    stats = pooled_statistics(tf, x, fw.statistics)
    # The bias rides on the first FULLY_CONNECTED; the other statistics' logits are ADDed.
    logits = tf.matmul(stats[fw.statistics[0]], tf.constant(fw.kernels[0])) + tf.constant(fw.bias)
    for name, kernel in zip(fw.statistics[1:], fw.kernels[1:]):
        logits = logits + tf.matmul(stats[name], tf.constant(kernel))
    return tf.nn.softmax(logits, axis=-1)
