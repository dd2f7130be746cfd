"""``vit``: a small Vision Transformer on spectrogram patches (the ViT of the CNN-LSTM/ViT EMO-DB study).

The paper gives only "mel spectrograms, 8 transformer layers, 8 image patches, Adam". Here
the clip's (T, F) feature matrix is the image (the ``logmel16k`` preset's 40 log-mel bands
are what it was meant for, but any per-frame features work, e.g. the 46 MFCC + chroma):

1. Patches: non-overlapping tiles of :data:`PATCH_FRAMES` frames x ALL F bands (0.4 s at 25
   frames/s), flattened frame by frame: ``N = ceil(T / 10)`` tokens, 11 at T = 110, close
   to the paper's 8 patches. A tile spans the whole spectrum because a segment's spectral
   envelope (formants, tilt, energy) is what carries emotion, and few tokens make attention
   nearly free: at N = 11 its N x N products are ~5 % of the model's multiply-accumulates
   (tiles of 10 frames x 10 bands would make 44 tokens and 16 times as much). A clip whose
   T is not a multiple of 10 is zero-padded at the end first (the zeros of zero padding).
2. Patch embedding: one Dense (10 F -> D, ``D = hidden``), plus a learned position
   embedding (N, D).
3. :data:`DEPTH` pre-LN encoder layers: x += proj(MHSA(LN(x))); x += MLP(LN(x)), with
   :data:`HEADS` heads of D / 4 and an MLP of :data:`MLP_RATIO` D with ReLU.
4. Mean of the tokens -> LayerNorm -> Dropout -> Dense softmax.

Choices made for the edge (a microcontroller's flash, arena and int8 kernels):

- 4 layers, not the paper's 8, and an MLP twice (not four times) as wide as D: vit_h64
  then has ~165 k parameters (a 185 KB int8 TFLite file at T = 110), vit_h32 ~50 k
  (68 KB); 8 layers would nearly double both.
- ReLU instead of ViT's GELU: TFLite Micro has no GELU kernel, and ReLU fuses into the
  FULLY_CONNECTED before it (no op, exact in int8).
- Mean pooling, not a class token: no concatenation of a learned token in front of the
  patches (an int8 CONCATENATION must requantise its inputs to one scale) and one MEAN at
  the end, over all of the last layer's tokens.
- LayerNorm stays (pre-LN trains stably from scratch). TFLite Micro has no LAYER_NORM op;
  at export gamma and beta fold into the Dense after it and the residual stream is kept
  centred, leaving ``x * rsqrt(mean(x²) + eps)`` in MUL / MEAN / ADD / RSQRT, which TFLite
  Micro runs in int8 (see :mod:`sertiny.export.vit_graph`).

Zero padding only: patches and attention mix padded frames into real ones. Layer names fix
the keys of the generic weight format (:mod:`sertiny.models.weights`), e.g.
``patch_embed/kernel``, ``pos_embed/embedding``, ``block1_qkv/kernel``, ``block4_ln2/gamma``.
"""

import math

from .._keras import import_keras
from ..errors import ParameterError
from .lstm_sa import classifier, model_inputs
from .vit_spec import DEPTH, HEADS, LN_EPSILON, MLP_RATIO, PATCH_FRAMES, n_tokens

keras = import_keras("jax")
ops = keras.ops

POS_STDDEV = 0.02  # the ViT paper's position-embedding initialisation


@keras.saving.register_keras_serializable("sertiny")
class PositionEmbedding(keras.layers.Layer):
    """Adds a learned (N, D) embedding to (batch, N, D) tokens; its variable is ``embedding``."""

    def __init__(self, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.seed = seed

    def build(self, input_shape):
        self.embedding = self.add_weight(
            name="embedding", shape=tuple(input_shape[1:]),
            initializer=keras.initializers.TruncatedNormal(stddev=POS_STDDEV, seed=self.seed),
        )

    def call(self, x):
        return x + self.embedding

    def get_config(self):
        return {**super().get_config(), "seed": self.seed}


@keras.saving.register_keras_serializable("sertiny")
class SelfAttention(keras.layers.Layer):
    """Multi-head scaled dot-product attention over packed projections, no weights of its own.

    Input (batch, N, 3D): per token ``[q | k | v]``, each D wide with head ``h`` in columns
    ``h*D/heads .. (h+1)*D/heads`` (the layout of one Dense(3D) before it). Output (batch, N, D),
    heads side by side in the same order: ``softmax(q_h k_hᵀ / sqrt(D/heads)) v_h``.
    """

    def __init__(self, heads, **kwargs):
        super().__init__(**kwargs)
        self.heads = heads

    def call(self, qkv):
        tokens, width = qkv.shape[1], qkv.shape[2] // 3
        head_dim = width // self.heads
        # (batch, N, 3, heads, d) -> (3, batch, heads, N, d)
        qkv = ops.transpose(ops.reshape(qkv, (-1, tokens, 3, self.heads, head_dim)), (2, 0, 3, 1, 4))
        q, k, v = qkv[0], qkv[1], qkv[2]
        scores = ops.matmul(q, ops.swapaxes(k, -1, -2)) / math.sqrt(head_dim)
        context = ops.matmul(ops.softmax(scores, axis=-1), v)  # (batch, heads, N, d)
        return ops.reshape(ops.transpose(context, (0, 2, 1, 3)), (-1, tokens, width))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[1], input_shape[2] // 3)

    def get_config(self):
        return {**super().get_config(), "heads": self.heads}


def _dense(units, config, name, index, activation=None):
    return keras.layers.Dense(
        units, activation=activation, name=name,
        kernel_initializer=keras.initializers.GlorotUniform(seed=config.seed * 100 + index),
        bias_initializer="zeros",
    )


def _layer_norm(name):
    return keras.layers.LayerNormalization(epsilon=LN_EPSILON, name=name)


def build_vit(config):
    """Patches (10 frames x F) -> Dense(D) + position -> 4 pre-LN encoder layers -> mean -> LN -> Dropout -> Dense."""
    d = config.hidden
    if d % HEADS:
        raise ParameterError(
            f"The 'hidden' parameter of ModelConfig must be a multiple of {HEADS} for the 'vit' family "
            f"(its {HEADS} attention heads split the width). Got {d} instead."
        )
    features, x = model_inputs(config)
    tokens = n_tokens(config.seq_len)
    pad = tokens * PATCH_FRAMES - config.seq_len
    if pad:
        x = keras.layers.ZeroPadding1D((0, pad), name="pad")(x)
    x = keras.layers.Reshape((tokens, PATCH_FRAMES * config.n_features), name="patches")(x)
    x = _dense(d, config, "patch_embed", 1)(x)
    x = PositionEmbedding(seed=config.seed * 100 + 2, name="pos_embed")(x)
    for block in range(1, DEPTH + 1):
        seed = 10 * block
        y = _layer_norm(f"block{block}_ln1")(x)
        y = _dense(3 * d, config, f"block{block}_qkv", seed + 1)(y)
        y = SelfAttention(HEADS, name=f"block{block}_attention")(y)
        y = _dense(d, config, f"block{block}_proj", seed + 2)(y)
        x = keras.layers.Add(name=f"block{block}_add1")([x, y])
        y = _layer_norm(f"block{block}_ln2")(x)
        y = _dense(MLP_RATIO * d, config, f"block{block}_mlp1", seed + 3, activation="relu")(y)
        y = _dense(d, config, f"block{block}_mlp2", seed + 4)(y)
        x = keras.layers.Add(name=f"block{block}_add2")([x, y])
    x = keras.layers.GlobalAveragePooling1D(name="pool")(x)
    x = _layer_norm("norm")(x)
    return keras.Model(features, classifier(x, config), name=config.name)
