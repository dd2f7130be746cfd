"""LSTM-SA (Mirsamadi et al., 2017) and ResLSTM-SA (Krasnoproshin & Vashkevich, 2026) in Keras 3.

Layer names are part of the format: :func:`sertiny.models.weights.get_weights` reads
them to produce backend-free NumPy weights that export and the C reference consume.
"""

import random

from .._keras import import_keras

keras = import_keras("jax")
ops = keras.ops

# PyTorch BatchNorm1d defaults (momentum 0.1 on the new batch, eps 1e-5); Keras' own
# (0.99, 1e-3) would change both the running statistics and the normalisation.
BN_ARGS = {"momentum": 0.9, "epsilon": 1e-5}


@keras.saving.register_keras_serializable("sertiny")
class SoftAttention(keras.layers.Layer):
    """Soft attention pooling over time: e_t = u·h_t, alpha = softmax_t(e), c = sum_t alpha_t h_t.

    Input (batch, T, H) -> output (batch, H). With a mask, masked steps get zero weight.
    ``seed`` seeds the initial attention vector (None: Keras picks one).
    """

    def __init__(self, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True
        self.seed = seed

    def build(self, input_shape):
        # Xavier-normal on an (H, 1) vector, as the reference code initialises it.
        self.u = self.add_weight(name="u", shape=(input_shape[-1], 1),
                                 initializer=keras.initializers.GlorotNormal(seed=self.seed))

    def scores(self, h):
        """Unnormalised attention score e_t of every step: (B, T, H) -> (B, T)."""
        return ops.squeeze(ops.matmul(h, self.u), -1)

    def call(self, h, mask=None):
        scores = self.scores(h)
        if mask is not None:
            scores = ops.where(mask, scores, ops.full_like(scores, -1e9))
        alpha = ops.softmax(scores, axis=-1)
        return ops.sum(h * alpha[..., None], axis=1)

    def compute_mask(self, inputs, mask=None):
        return None

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[-1])

    def get_config(self):
        return {**super().get_config(), "seed": self.seed}


@keras.saving.register_keras_serializable("sertiny")
class _ForgetBias(keras.initializers.Initializer):
    """Zero bias except the forget gate (Keras gate order i, f, c, o)."""

    def __init__(self, units, value):
        self.units, self.value = units, value

    def __call__(self, shape, dtype=None):
        bias = ops.zeros(shape, dtype=dtype)
        return ops.slice_update(bias, (self.units,), ops.full((self.units,), self.value, dtype=dtype))

    def get_config(self):
        return {"units": self.units, "value": self.value}


def model_inputs(config):
    features = keras.Input(shape=(config.seq_len, config.n_features), name="features")
    x = features
    if config.padding == "masked":
        # Padded frames are exactly zero after normalisation; real frames never are.
        x = keras.layers.Masking(mask_value=0.0, name="mask")(x)
    return features, x


def _head(h, config, draw):
    context = SoftAttention(seed=legacy_seed(config, draw), name="attention")(h)
    context = keras.layers.BatchNormalization(name="bn_out", **BN_ARGS)(context)
    return classifier(context, config)


def classifier(x, config):
    """Dropout -> Dense softmax over ``config.n_classes``: the last two layers of every family.

    With ``config.aux_heads``, one more Dense softmax ``dense_<name>`` per auxiliary head
    reads the same dropout output, and the result is ``{"emotion": ..., name: ...}``. The
    emotion head's layers, names and initial weights are the same either way.
    """
    seed = config.seed
    x = keras.layers.Dropout(config.dropout, seed=seed, name="dropout")(x)
    emotion = _softmax_dense(x, config.n_classes, seed + 7, "dense")
    if not config.aux_heads:
        return emotion
    aux = {name: _softmax_dense(x, n, seed * 100 + 80 + k, f"dense_{name}")
           for k, (name, n) in enumerate(config.aux_heads, start=1)}
    return {"emotion": emotion, **aux}


def _softmax_dense(x, units, seed, name):
    return keras.layers.Dense(
        units,
        activation="softmax",
        kernel_initializer=keras.initializers.GlorotUniform(seed=seed),
        bias_initializer="zeros",
        name=name,
    )(x)


def build_lstm_sa(config):
    """LSTM(F->H) -> soft attention -> BatchNorm -> Dropout -> Dense softmax."""
    features, x = model_inputs(config)
    h = seeded_lstm(config.hidden, config, "lstm2", 2)(x)
    return keras.Model(features, _head(h, config, draw=1), name=config.name)


def build_res_lstm_sa(config):
    """LSTM1(F->F) + input (residual) -> BatchNorm -> LSTM2(F->H) -> the LSTM-SA head."""
    features, x = model_inputs(config)
    return keras.Model(features, _head(res_lstm_recurrence(x, config), config, draw=2), name=config.name)


def res_lstm_recurrence(x, config):
    """ResLSTM-SA's two LSTMs: LSTM1(F->F) + x -> BatchNorm -> LSTM2(F->H); (B, T, F) -> (B, T, H)."""
    r = seeded_lstm(config.n_features, config, "lstm1", 1)(x)
    r = keras.layers.Add(name="residual")([r, x])
    r = keras.layers.BatchNormalization(name="bn_in", **BN_ARGS)(r)
    return seeded_lstm(config.hidden, config, "lstm2", 2)(r)


def legacy_seed(config, draw):
    """The seed of an initialiser that sertiny once left unseeded, as Keras drew it then.

    Builders used to start with ``keras.utils.set_random_seed(config.seed)``, which reseeds
    Python's, NumPy's and Keras' global generators on every build (a parameter count
    included), under whoever called it. An unseeded initialiser then took its seed as the
    next ``randint(1, 10**9)`` of Python's generator, after one draw per LSTM layer built
    before it (``draw`` says how many). Drawing the same number from a private generator
    gives every model the weights it had before, without touching global state.
    """
    rng = random.Random(config.seed)
    for _ in range(draw):
        rng.randint(1, int(1e9))
    return rng.randint(1, int(1e9))


def seeded_lstm(units, config, name, index, *, return_sequences=True, go_backwards=False):
    """An LSTM with the reference initialisation, seeded by ``config.seed`` and a per-layer ``index``."""
    seed = config.seed * 100 + index * 10
    return keras.layers.LSTM(
        units,
        return_sequences=return_sequences,
        go_backwards=go_backwards,
        kernel_initializer=keras.initializers.GlorotNormal(seed=seed),
        recurrent_initializer=keras.initializers.Orthogonal(seed=seed + 1),
        bias_initializer=_ForgetBias(units, config.forget_bias),
        unit_forget_bias=False,
        seed=seed + 2,  # its dropout's generator (unused at dropout 0), else drawn from Python's global one
        name=name,
    )
