"""``res_lstm_sa_stats``: ResLSTM-SA with the clip's frame statistics beside its attention pooling.

Issue 14 found a linear model on per-clip statistics of the frames (sertiny's
``stats_linear`` floor) about as accurate as ResLSTM-SA-h64 on unseen RAVDESS speakers, with
different errors, so the two together score well above either. This family is both in one
model, one int8 graph and one host head:

    features ─ LSTM1 (F->F) + residual ─ BatchNorm ─ LSTM2 (F->H) ─ soft attention ─┐
        └──────────── statistics pooling (mean, std, delta_rms per feature) ─────────┴─ concat
    concat ─ BatchNorm (``bn_out``) ─ Dropout ─ Dense softmax (``dense``)

The recurrence is ResLSTM-SA's, layer for layer (:func:`sertiny.models.lstm_sa.build_res_lstm_sa`);
the pooling is ``stats_linear``'s (:class:`sertiny.models.stats_linear.StatisticsPooling`, over
all T frames, zero padding included, as the device runs). The statistics cost no weights
beyond 3 F more rows of the classifier (138 x 8 for edge16k) and, on a streaming device,
three running sums per feature on the host beside the online attention
(:mod:`sertiny.runtime.chunked`).

How to get good weights for it: train the two parts apart, each with its own recipe, and
join them (``sertiny join``, :mod:`sertiny.training.experts`: the joined model multiplies the
two experts' probabilities). Trained as one model with one recipe (``sertiny train --model
res_lstm_sa_stats_h64``, which works), the statistics branch overfits and the model scores
below either part on the validation speakers (results/accuracy.md).

Zero padding only (the statistics are defined over the T frames the device runs on). Weights
use the generic format (``<layer>/<variable>``); ``bn_out`` and ``dense`` have H + 3 F rows,
the attention context first.
"""

from .._keras import import_keras
from . import stats_linear_spec as spec
from .lstm_sa import BN_ARGS, SoftAttention, classifier, legacy_seed, model_inputs, res_lstm_recurrence
from .stats_linear import StatisticsPooling

keras = import_keras("jax")


def build_res_lstm_sa_stats(config):
    """ResLSTM-SA's recurrence and attention, the frame statistics beside it (module docstring)."""
    features, x = model_inputs(config)
    h = res_lstm_recurrence(x, config)
    context = SoftAttention(seed=legacy_seed(config, 2), name="attention")(h)
    statistics = StatisticsPooling(spec.STATISTICS, name="pool")(features)
    pooled = keras.layers.Concatenate(name="concat")([context, statistics])
    pooled = keras.layers.BatchNormalization(name="bn_out", **BN_ARGS)(pooled)
    return keras.Model(features, classifier(pooled, config), name=config.name)
