"""Other papers' SER systems as sertiny families, on the same 46-dim MFCC + chroma frames.

Each is a baseline for LSTM-SA / ResLSTM-SA trained through the unchanged protocol, so only
the part of each paper that fits that protocol is built here (our features, our optimiser);
the papers' own front ends are not. Every family here can add auxiliary heads
(``ModelConfig.aux_heads``, BiLSTM-ATT-MTL's multi-task classifiers; see
:func:`sertiny.models.lstm_sa.classifier` and :mod:`sertiny.data.auxiliary`). The ViT of the
CNN-LSTM/ViT study is :mod:`sertiny.models.vit`. ``hidden``
is the LSTM width, as in ``lstm_sa_h64``. Layer names fix the keys of the generic weight
format (:mod:`sertiny.models.weights`).

- ``bilstm_att`` (Li & Liu, BiLSTM-ATT-MTL): two stacked bidirectional LSTMs (``hidden``
  units per direction; the paper uses 128), additive attention e_t = vᵀ tanh(W h_t + b)
  with W: (2H, H), softmax over time, weighted sum, then dropout and a dense softmax; with
  ``aux_heads``, the paper's multi-task form: more dense softmax heads on the same context.
- ``dual_lstm`` (Dual-Layer LSTM, arXiv 2411.09189): LSTM(F->H) -> LSTM(H->H), last state,
  dropout, dense softmax.
- ``cnn_lstm`` (CNN-LSTM of the CNN-LSTM/ViT EMO-DB study): four blocks of Conv1D ->
  BatchNorm -> ELU -> MaxPool over time, LSTM(H), last state, dropout, dense softmax.
"""

from .._keras import import_keras
from .cnn_lstm_spec import CNN_BLOCKS, CNN_KERNEL, CNN_POOL
from .lstm_sa import BN_ARGS, SoftAttention, classifier, model_inputs, seeded_lstm

keras = import_keras("jax")
ops = keras.ops

@keras.saving.register_keras_serializable("sertiny")
class AdditiveAttention(SoftAttention):
    """Additive (Bahdanau) attention pooling: e_t = vᵀ tanh(W h_t + b), then as SoftAttention.

    Input (batch, T, D) -> output (batch, D). ``units`` is the width of W h_t (the BiLSTM
    paper does not give it; we use the per-direction ``hidden``).
    """

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = units

    def build(self, input_shape):
        self.w = self.add_weight(name="kernel", shape=(input_shape[-1], self.units), initializer="glorot_uniform")
        self.b = self.add_weight(name="bias", shape=(self.units,), initializer="zeros")
        self.v = self.add_weight(name="v", shape=(self.units, 1), initializer="glorot_normal")

    def scores(self, h):
        return ops.squeeze(ops.matmul(ops.tanh(ops.matmul(h, self.w) + self.b), self.v), -1)

    def get_config(self):
        return {**super().get_config(), "units": self.units}


def _bidirectional(config, name, index):
    # An explicit backward layer: Keras would otherwise clone the forward one from its
    # config, seeded initialisers included, and both directions would start identical.
    forward = seeded_lstm(config.hidden, config, f"{name}_forward", index)
    backward = seeded_lstm(config.hidden, config, f"{name}_backward", index + 5, go_backwards=True)
    return keras.layers.Bidirectional(forward, backward_layer=backward, name=name)


def build_bilstm_att(config):
    """BiLSTM(F->2H) -> BiLSTM(2H->2H) -> additive attention -> Dropout -> Dense softmax
    (+ one Dense softmax per ``config.aux_heads`` entry on the same dropout output)."""
    features, x = model_inputs(config)
    h = _bidirectional(config, "bilstm1", 1)(x)
    h = _bidirectional(config, "bilstm2", 2)(h)
    context = AdditiveAttention(config.hidden, name="attention")(h)
    return keras.Model(features, classifier(context, config), name=config.name)


def build_dual_lstm(config):
    """LSTM(F->H) -> LSTM(H->H), last state -> Dropout -> Dense softmax.

    Last state, not attention pooling: the paper's pipeline is LSTM 1 -> LSTM 2 -> dense
    layer -> output, with no attention or pooling, and it credits the second LSTM with
    summarising the sequence. With ``padding="masked"`` the last state is that of the
    clip's last real frame.
    """
    features, x = model_inputs(config)
    h = seeded_lstm(config.hidden, config, "lstm_a", 1)(x)
    h = seeded_lstm(config.hidden, config, "lstm_b", 2, return_sequences=False)(h)
    return keras.Model(features, classifier(h, config), name=config.name)


def build_cnn_lstm(config):
    """4 x [Conv1D(H, 3) -> BatchNorm -> ELU -> MaxPool(2)] -> LSTM(H), last state -> Dropout -> Dense.

    Zero padding only: convolution and pooling mix padded frames into real ones, so there
    is no mask to carry (ModelConfig rejects ``padding="masked"`` for this family). The
    convolutions have no bias; the BatchNorm after each one supplies the shift.
    """
    features, x = model_inputs(config)
    for block in range(1, CNN_BLOCKS + 1):
        x = keras.layers.Conv1D(
            config.hidden,
            CNN_KERNEL,
            padding="same",
            use_bias=False,
            kernel_initializer=keras.initializers.GlorotUniform(seed=config.seed * 100 + 50 + block),
            name=f"conv{block}",
        )(x)
        x = keras.layers.BatchNormalization(name=f"bn{block}", **BN_ARGS)(x)
        x = keras.layers.Activation("elu", name=f"elu{block}")(x)
        x = keras.layers.MaxPooling1D(CNN_POOL, padding="same", name=f"pool{block}")(x)
    h = seeded_lstm(config.hidden, config, "lstm", 1, return_sequences=False)(x)
    return keras.Model(features, classifier(h, config), name=config.name)
