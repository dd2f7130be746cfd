"""``stats_linear``: per-clip statistics of the frames and one linear layer, the deployable floor.

Issue 14 measured a logistic regression on per-clip statistics of the paper's 46 features
(UAR 0.47) above every sertiny sequence model (0.36-0.42); this family is that classical
baseline trained, exported and shipped by sertiny's own protocol and tools, so every model
table can show the floor a sequence model has to beat on the same front end, folds and
recipe machinery:

1. :class:`StatisticsPooling`: each clip's (T, F) normalised frames -> per feature the
   statistics of :data:`~sertiny.models.stats_linear_spec.STATISTICS` (mean, standard
   deviation, RMS of the frame-to-frame difference) over all T frames, as the exported graph
   sees them: clips shorter than T end in zero frames (zero padding after normalisation,
   :func:`sertiny.features.frames.fit_to_length`), and those frames count.
2. BatchNormalization of the pooled (S F,) vector (named ``bn``): the statistics have very
   different scales (a mean near 0, a deviation near 1), and this puts them on one without a
   second fitted normaliser. At inference it is affine: export folds its shift into the
   dense layer's bias and keeps its gain as one multiply, both exact
   (:mod:`sertiny.export.stats_linear_graph` says why not all of it is folded).
3. Dropout -> ONE Dense softmax layer ``dense`` (:func:`sertiny.models.lstm_sa.classifier`).

``hidden`` (the N of ``stats_linear_hN``) is unused: every N builds the same model, and the
registry lists it once, as ``stats_linear_h1``. The registry's naming rule ``<family>_h<N>``
is formatted and parsed by every stage (``ModelConfig.name``, run and bundle names, model
cards, benchmark peers) and every family must build at any N (``tests/test_families.py``
trains each at one small N); a size-less family would need an exception to that rule in each
of those places, while an unused N needs none. No N would mean something clean here: the
model's only width is S F, fixed by the front end and the statistics.

Zero padding only: the statistics are defined over the T frames the device runs on.
Layer names fix the keys of the generic weight format (:mod:`sertiny.models.weights`):
``bn/gamma``, ``bn/beta``, ``bn/moving_mean``, ``bn/moving_variance`` (S F,),
``dense/kernel`` (S F, C), ``dense/bias`` (C,); the pooling has no weights.
"""

from .._keras import import_keras
from ..errors import ParameterError
from . import stats_linear_spec as spec
from .lstm_sa import BN_ARGS, classifier, model_inputs

keras = import_keras("jax")
ops = keras.ops


def _soft_sqrt(v):
    # v / sqrt(v + eps): sqrt with a finite gradient at 0, and int8-friendly at export (spec).
    return v * ops.rsqrt(v + spec.SQRT_EPSILON)


@keras.saving.register_keras_serializable("sertiny")
class StatisticsPooling(keras.layers.Layer):
    """(batch, T, F) -> (batch, S F): per feature the ``statistics`` over all T frames.

    ``statistics`` is a sequence of names from
    :data:`~sertiny.models.stats_linear_spec.STATISTICS`; the output holds one block of F
    values per statistic, in the order given.
    """

    def __init__(self, statistics=spec.STATISTICS, **kwargs):
        super().__init__(**kwargs)
        unknown = [s for s in statistics if s not in spec.STATISTICS]
        if unknown or not statistics:
            raise ParameterError(f"StatisticsPooling takes a non-empty list of {spec.STATISTICS}; got {statistics!r}.")
        self.statistics = tuple(statistics)

    def call(self, x):
        mean = ops.mean(x, axis=1)
        blocks = {"mean": mean}
        if "std" in self.statistics:
            centred = x - mean[:, None, :]
            blocks["std"] = _soft_sqrt(ops.mean(centred * centred, axis=1))
        if "delta_rms" in self.statistics:
            delta = x[:, 1:] - x[:, :-1]
            blocks["delta_rms"] = _soft_sqrt(ops.mean(delta * delta, axis=1))
        return ops.concatenate([blocks[s] for s in self.statistics], axis=-1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], len(self.statistics) * input_shape[-1])

    def get_config(self):
        return {**super().get_config(), "statistics": list(self.statistics)}


def build_stats_linear(config):
    """Statistics pooling -> BatchNorm -> Dropout -> Dense softmax (see the module docstring)."""
    if "delta_rms" in spec.STATISTICS and config.seq_len < 2:
        raise ParameterError("The 'seq_len' parameter of ModelConfig must be >= 2 for the 'stats_linear' family "
                             f"(its frame-to-frame differences need two frames). Got {config.seq_len} instead.")
    features, x = model_inputs(config)
    pooled = StatisticsPooling(spec.STATISTICS, name="pool")(x)
    pooled = keras.layers.BatchNormalization(name="bn", **BN_ARGS)(pooled)
    return keras.Model(features, classifier(pooled, config), name=config.name)
