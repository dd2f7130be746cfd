"""TensorFlow graphs of ``res_lstm_sa_stats`` (:mod:`sertiny.models.res_lstm_sa_stats`).

The model is ResLSTM-SA with the clip's frame statistics joined to its attention context, so
its export is ResLSTM-SA's (:mod:`sertiny.export.graph`) plus ``stats_linear``'s pooling
(:mod:`sertiny.export.stats_linear_graph`):

* full unroll: the ResLSTM recurrence (either schedule), attention pooling, the statistics of
  the same (T, F) frames, one CONCATENATION of the context and the statistics, the
  BatchNorm's gain as one MUL (its shift folded into the bias) and one FULLY_CONNECTED. As
  for ``stats_linear``, the gain is not folded into the kernel: the statistics' gains spread
  over a factor of ~10, which would leave most of a per-tensor int8 kernel a few steps.
* chunked (streaming): exactly ResLSTM-SA's chunk graph, the recurrence over K frames with
  states in and out. The host pools as for ResLSTM-SA (online attention) and also keeps three
  running sums per feature of the normalised frames it feeds in
  (:class:`sertiny.runtime.chunked.OnlineStatistics`), in float64; the head in
  ``sertiny.json`` says which statistics and the square root's epsilon.
"""

import dataclasses

import numpy as np

from ..errors import ArtifactError
from ..models.stats_linear_spec import SQRT_EPSILON, STATISTICS
from ..models.weights import batch_norm_affine
from .graph import FoldedWeights, attention_context, fold_lstm_sa, sequential_recurrence, wavefront_recurrence
from .stats_linear_graph import pooled_statistics

FAMILY = "res_lstm_sa_stats"


@dataclasses.dataclass(frozen=True, eq=False)
class StatsFoldedWeights(FoldedWeights):
    """ResLSTM-SA's folded weights whose head reads ``[context (H), statistics (S F)]``:
    ``bn_scale``/``bn_shift``/``dense_kernel`` have H + S F rows, the context's first."""

    statistics: tuple = STATISTICS

    @property
    def family(self):
        return FAMILY

    def head_dict(self):
        return {**super().head_dict(), "statistics": list(self.statistics), "sqrt_epsilon": SQRT_EPSILON}


def fold_res_lstm_sa_stats(weights, model_config=None):
    """Generic weight dict -> :class:`StatsFoldedWeights`, every shape checked.

    The generic keys of the recurrence and attention are ResLSTM-SA's named ones, so the
    recurrence folds as ResLSTM-SA's (:func:`sertiny.export.graph.fold_lstm_sa`, with the
    context's rows of the head); the head keeps all H + S F rows.
    """
    w = {k: np.asarray(v, dtype=np.float64) for k, v in weights.items()}
    if "lstm1/kernel" not in w or "dense/kernel" not in w or "attention/u" not in w:
        raise ArtifactError(f"The model weights ({sorted(w)[:4]}...) are not those of a {FAMILY} model.")
    hidden = w["attention/u"].size
    n_features = w["lstm1/kernel"].shape[0]
    width = hidden + len(STATISTICS) * n_features
    head_keys = [f"bn_out/{k}" for k in ("gamma", "beta", "moving_mean", "moving_variance")] + ["dense/kernel"]
    for key in head_keys:
        if w[key].shape[0] != width:
            raise ArtifactError(f"Weight {key} has {w[key].shape[0]} rows, expected {width} (H {hidden} + "
                                f"{len(STATISTICS)} statistics x F {n_features}): the weights are inconsistent.")
    recurrent = {k: (v[:hidden] if k in head_keys else v) for k, v in w.items()}
    fw = fold_lstm_sa(recurrent)
    if model_config is not None:
        got = (FAMILY, fw.hidden, fw.n_features, fw.n_classes)
        want = (model_config.family, model_config.hidden, model_config.n_features, model_config.n_classes)
        if got != want:
            raise ArtifactError(
                f"The weights are a (family, hidden, n_features, n_classes) = {got} model but the run "
                f"says {want}: the weights were trained on a different model or feature set.")
    scale, shift = batch_norm_affine(w, "bn_out")
    f32 = lambda a: np.ascontiguousarray(a, dtype=np.float32)
    fields = {f.name: getattr(fw, f.name) for f in dataclasses.fields(FoldedWeights)}
    fields.update(bn_scale=f32(scale), bn_shift=f32(shift), dense_kernel=f32(w["dense/kernel"]))
    return StatsFoldedWeights(**fields)


def res_lstm_sa_stats_graph(tf, fw, x, schedule):
    """(T, F) normalised frames -> (1, C) probabilities (see the module docstring)."""
    recurrence = wavefront_recurrence if schedule == "wavefront" else sequential_recurrence
    context = attention_context(tf, fw, recurrence(tf, fw, x))  # (1, H)
    stats = pooled_statistics(tf, x, fw.statistics)
    pooled = tf.concat([context] + [stats[name] for name in fw.statistics], axis=-1) * tf.constant(fw.bn_scale[None])
    bias = fw.bn_shift @ fw.dense_kernel + fw.dense_bias
    return tf.nn.softmax(tf.matmul(pooled, tf.constant(fw.dense_kernel)) + tf.constant(bias), axis=-1)
