"""TensorFlow graph of the ``stats_linear`` family (:mod:`sertiny.models.stats_linear`), from its generic weights.

The graph computes what the Keras model computes, arranged for full-integer int8. What
reaches the TFLite file, and why (top-1 agreement of int8 with float, measured as
``sertiny export``'s parity does: seed 0's five fold models of stats_linear_h1 trained on
edge16k with the ``linear`` recipe of ``train/accuracy_recipes.json``, 1,440 held-out clips;
the same order held on the edge16k front end before its quiet-frame floors):

* One TRANSPOSE of the (T, F) frames to (F, T): every statistic is then a reduction over
  the last axis of one row per feature.
* mean: one MEAN. std and delta_rms: the sum of squares of each row (the frames minus
  their mean, a SUB; or the frame-to-frame differences, two STRIDED_SLICEs and a SUB) is a
  BATCH_MATMUL of the (F, 1, n) rows with themselves (``adj_y``, so TFLite Micro needs no
  transposed copy). In int8 the products are summed in int32 and rounded once; a MUL that
  squares and a MEAN would round every one of the F n squares to the wide int8 step of the
  largest (agreement 92.2 % -> 93.8 % with the BatchNorm gain folded).
* The square root of the mean square ``S / n`` is ``soft_sqrt(S / n) = S * rsqrt(S + eps n)
  / sqrt(n)`` (:mod:`sertiny.models.stats_linear_spec`): ADD, RSQRT, MUL, MUL. TFLite
  Micro's SQRT has no int8 kernel; its RSQRT has.
* The statistics are joined by one CONCATENATION into the (1, S F) pooled vector (their
  ranges are alike, so its shared int8 scale costs little) feeding one FULLY_CONNECTED:
  one FULLY_CONNECTED per statistic with their logits ADDed rounds the logits three times
  more (agreement 84.0 % instead of 92.2 %).
* The BatchNorm, ``z s + t``: its shift is folded into the dense bias, ``(z s + t) W + b =
  (z s) W + (t W + b)``, exactly; its gain ``s`` stays one MUL on the pooled vector.
  Folding the gain into the kernel too, ``diag(s) W``, would be exact in float, but the
  gains spread over a factor of ~10 (a statistic that varies little between clips gets a
  large one), so the kernel's rows would too and its one per-tensor int8 scale would leave
  most weights a few steps: agreement 93.8 % folded, 94.8 % with the MUL.

Every op has an int8 kernel in LiteRT and TFLite Micro: the int8 model is integer throughout.

Full profile only (one invoke per clip). The statistics are streamable as running sums, but
sertiny's chunked profile is the LSTM-SA contract: the chunked model returns per-frame LSTM
outputs plus LSTM states, and the host (:mod:`sertiny.runtime.chunked`, the firmware's C
reference) pools them with attention and applies an affine head. Running sums would need
other state tensors and a host head with a square root, i.e. a second chunked runtime on
the host and in C; and an int8 state holding a sum of squares over up to T frames would
need a range T times wider than one frame's. The whole model is ~25 operations on one clip,
so one invoke at the end of the clip costs a microcontroller less than a streaming LSTM's
per-frame invokes.
"""

import dataclasses

import numpy as np

from ..errors import ArtifactError
from ..models.stats_linear_spec import SQRT_EPSILON, STATISTICS
from ..models.weights import batch_norm_affine, check_generic_weights

STATS_LINEAR_FAMILY = "stats_linear"


@dataclasses.dataclass(frozen=True, eq=False)
class StatsLinearWeights:
    """A stats_linear model as export consumes it, float32: ``logits = (z * gain) @ kernel + bias``
    for the pooled vector ``z`` (one block of F values per statistic, in the order of
    ``statistics``), i.e. the BatchNorm's gain and the dense kernel, with the BatchNorm's shift
    folded into the bias."""

    gain: np.ndarray  # (S F,)
    kernel: np.ndarray  # (S F, C)
    bias: np.ndarray  # (C,)
    statistics: tuple = STATISTICS
    family: str = STATS_LINEAR_FAMILY

    @property
    def n_features(self):
        return self.kernel.shape[0] // len(self.statistics)

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
    gain, shift = batch_norm_affine(w, "bn")
    bias = shift @ w["dense/kernel"] + w["dense/bias"]
    f32 = lambda a: np.ascontiguousarray(a, dtype=np.float32)
    return StatsLinearWeights(f32(gain), f32(w["dense/kernel"]), f32(bias))


# --------------------------------------------------------------------------- graph


def _root_mean_square(tf, rows):
    """(F, n) -> (1, F): ``soft_sqrt(sum(rows², axis=1) / n)``, the sum as one BATCH_MATMUL."""
    features, n = rows.shape
    rows = tf.reshape(rows, (features, 1, n))
    sums = tf.reshape(tf.matmul(rows, rows, transpose_b=True), (1, features))
    # soft_sqrt(S / n) = (S / n) / sqrt(S / n + eps) = S * rsqrt(S + eps n) / sqrt(n)
    return sums * tf.math.rsqrt(sums + SQRT_EPSILON * n) * np.float32(1 / np.sqrt(n))


def pooled_statistics(tf, x, statistics=STATISTICS):
    """(T, F) frames -> ``{statistic: (1, F)}`` over all T frames (the Keras layer's maths)."""
    steps, features = x.shape
    rows = tf.transpose(x)  # (F, T)
    mean = tf.reduce_mean(rows, axis=1, keepdims=True)  # (F, 1)
    stats = {"mean": tf.reshape(mean, (1, features))}
    if "std" in statistics:
        stats["std"] = _root_mean_square(tf, rows - mean)
    if "delta_rms" in statistics:
        stats["delta_rms"] = _root_mean_square(tf, rows[:, 1:] - rows[:, :-1])
    return stats


def stats_linear_graph(tf, fw, x, schedule=None):
    """(T, F) normalised frames -> (1, C) probabilities. ``schedule`` is unused (no recurrence)."""
    stats = pooled_statistics(tf, x, fw.statistics)
    pooled = tf.concat([stats[name] for name in fw.statistics], axis=-1) * tf.constant(fw.gain[None])
    return tf.nn.softmax(tf.matmul(pooled, tf.constant(fw.kernel)) + tf.constant(fw.bias), axis=-1)
