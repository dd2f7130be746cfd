"""TensorFlow graph of the ``vit`` family (:mod:`sertiny.models.vit`), built from its generic weights.

Nothing recurs, so the graph is the Keras model op for op, written with raw TensorFlow ops
as every export graph is (:mod:`sertiny.export.graph` says why Keras is not used). What
reaches the TFLite file, and why:

* Every LayerNorm's gamma and beta are folded into the FULLY_CONNECTED after it (qkv, mlp1,
  the classifier): ``(x̂ γ + β) W + b = x̂ (diag(γ) W) + (β W + b)``, exact.
* The residual stream is kept centred, so LayerNorm needs no mean: every term added to it
  (position embedding, patch embedding, attention projection, mlp2) has its output columns
  centred at export, ``W (I - 11ᵀ/D)`` and ``b (I - 11ᵀ/D)``. A sum of zero-mean vectors
  is zero-mean, so each token's mean is 0 (up to rounding) before every LayerNorm, and the
  mean of the tokens before the last one; a pre-LN transformer is exactly a pre-RMSNorm one
  then. What remains of each LayerNorm is ``x * rsqrt(mean(x²) + eps)``: MUL, MEAN, ADD,
  RSQRT, MUL, five ops instead of seven (no MEAN / SUB for the centre), all run by TFLite
  Micro in int8 (it has no LAYER_NORM op), and one rounding fewer in int8.
* The attention scale 1/sqrt(d) is folded into the query columns of the qkv kernel and bias,
  and the patch embedding's bias into the position embedding.
* The heads are one reshape (N, 3D) -> (N, 3H, d), one TRANSPOSE to (3H, N, d) and one
  SPLIT into q, k, v of (H, N, d): each attention product is ONE BATCH_MATMUL over the H
  heads (q kᵀ with ``adj_y``, no transpose of k), and one TRANSPOSE + RESHAPE puts the heads
  back side by side for the output projection. Per-head FULLY_CONNECTED ops would need
  three times as many ops at H = 4.
* The MLP's ReLU fuses into its FULLY_CONNECTED; TFLite Micro has no GELU kernel, which is
  why the family uses ReLU at all.
* Zero padding of T to a multiple of the patch length is one PAD (int8: the zero point).

Dropout is the identity at inference; full profile only (one invoke per clip).
"""

import dataclasses

import numpy as np

from ..errors import ArtifactError, ParameterError
from ..models.vit_spec import DEPTH, HEADS, LN_EPSILON, MLP_RATIO, PATCH_FRAMES, n_tokens

VIT_FAMILY = "vit"


@dataclasses.dataclass(frozen=True, eq=False)
class VitBlock:
    """One encoder layer with its LayerNorms folded in (float32): ``qkv`` (D, 3D) with the
    query columns scaled by 1/sqrt(d), ``proj`` (D, D), ``mlp1`` (D, rD), ``mlp2`` (rD, D),
    each a ``(kernel, bias)`` pair; ``proj`` and ``mlp2`` write centred rows."""

    qkv: tuple
    proj: tuple
    mlp1: tuple
    mlp2: tuple


@dataclasses.dataclass(frozen=True, eq=False)
class VitWeights:
    """A vit model as export consumes it: LayerNorms folded, biases merged, float32."""

    patch_kernel: np.ndarray  # (PATCH_FRAMES * F, D), centred output columns
    position: np.ndarray  # (N, D): position embedding + patch-embedding bias, centred
    blocks: tuple  # of VitBlock
    dense_kernel: np.ndarray  # (D, C), the final LayerNorm folded in
    dense_bias: np.ndarray  # (C,)
    family: str = VIT_FAMILY

    @property
    def n_features(self):
        return self.patch_kernel.shape[0] // PATCH_FRAMES

    @property
    def hidden(self):
        return self.patch_kernel.shape[1]

    @property
    def n_classes(self):
        return self.dense_bias.shape[0]

    @property
    def tokens(self):
        return self.position.shape[0]


def expected_shapes(hidden, n_features, n_classes, seq_len):
    """``{key: shape}`` of every array of a vit's generic weight dict (Keras' shapes)."""
    d, wide = hidden, MLP_RATIO * hidden
    shapes = {"patch_embed/kernel": (PATCH_FRAMES * n_features, d), "patch_embed/bias": (d,),
              "pos_embed/embedding": (n_tokens(seq_len), d)}
    dense = {"qkv": (d, 3 * d), "proj": (d, d), "mlp1": (d, wide), "mlp2": (wide, d)}
    for block in range(1, DEPTH + 1):
        for norm in ("ln1", "ln2"):
            shapes.update({f"block{block}_{norm}/gamma": (d,), f"block{block}_{norm}/beta": (d,)})
        for name, shape in dense.items():
            shapes.update({f"block{block}_{name}/kernel": shape, f"block{block}_{name}/bias": shape[1:]})
    shapes.update({"norm/gamma": (d,), "norm/beta": (d,), "dense/kernel": (d, n_classes), "dense/bias": (n_classes,)})
    return shapes


def fold_vit(weights, model_config=None):
    """Generic weight dict -> :class:`VitWeights` (folding in float64, stored float32).

    :func:`sertiny.export.baseline_graphs.fold_baseline` calls it after checking every key
    and shape, and the family and sizes against ``model_config``; the number of patches is
    checked against the run's T here.
    """
    w = {k: np.asarray(v, dtype=np.float64) for k, v in weights.items()}
    tokens, hidden = w["pos_embed/embedding"].shape
    if model_config is not None and tokens != n_tokens(model_config.seq_len):
        raise ArtifactError(
            f"The vit weights hold {tokens} position embeddings but the run's T = {model_config.seq_len} "
            f"frames make {n_tokens(model_config.seq_len)} patches: they belong to a model of another length."
        )
    if hidden % HEADS:
        raise ArtifactError(f"The vit weights are {hidden} wide, not a multiple of its {HEADS} heads.")
    f32 = lambda a: np.ascontiguousarray(a, dtype=np.float32)

    def after_norm(norm, dense):
        # LayerNorm(x) @ W + b = x̂ @ (diag(gamma) W) + (beta @ W + b)
        kernel, bias = w[f"{dense}/kernel"], w[f"{dense}/bias"]
        return w[f"{norm}/gamma"][:, None] * kernel, w[f"{norm}/beta"] @ kernel + bias

    centre = np.eye(hidden) - 1.0 / hidden  # x @ centre subtracts each row's mean
    query_scale = np.r_[np.full(hidden, 1 / np.sqrt(hidden // HEADS)), np.ones(2 * hidden)]
    blocks = []
    for block in range(1, DEPTH + 1):
        name = f"block{block}"
        qkv_kernel, qkv_bias = after_norm(f"{name}_ln1", f"{name}_qkv")
        mlp1 = after_norm(f"{name}_ln2", f"{name}_mlp1")
        blocks.append(VitBlock(
            qkv=(f32(qkv_kernel * query_scale), f32(qkv_bias * query_scale)),
            proj=(f32(w[f"{name}_proj/kernel"] @ centre), f32(w[f"{name}_proj/bias"] @ centre)),
            mlp1=(f32(mlp1[0]), f32(mlp1[1])),
            mlp2=(f32(w[f"{name}_mlp2/kernel"] @ centre), f32(w[f"{name}_mlp2/bias"] @ centre)),
        ))
    dense_kernel, dense_bias = after_norm("norm", "dense")
    position = (w["pos_embed/embedding"] + w["patch_embed/bias"]) @ centre
    return VitWeights(f32(w["patch_embed/kernel"] @ centre), f32(position), tuple(blocks), f32(dense_kernel),
                      f32(dense_bias))


# --------------------------------------------------------------------------- graph


def _normalized(tf, x):
    """LayerNorm over the last axis of rows whose mean is 0 (the centred residual stream),
    without gamma and beta (folded into the next matmul)."""
    variance = tf.reduce_mean(x * x, axis=-1, keepdims=True)
    return x * tf.math.rsqrt(variance + LN_EPSILON)


def _affine(tf, x, pair):
    kernel, bias = pair
    return tf.matmul(x, tf.constant(kernel)) + tf.constant(bias)


def _attention(tf, qkv, tokens, hidden):
    """(N, 3D) packed projections -> (N, D): all heads in one BATCH_MATMUL per product."""
    head_dim = hidden // HEADS
    heads = tf.transpose(tf.reshape(qkv, (tokens, 3 * HEADS, head_dim)), (1, 0, 2))  # (3H, N, d)
    q, k, v = tf.split(heads, 3, axis=0)  # (H, N, d) each; q already scaled by 1/sqrt(d)
    weights = tf.nn.softmax(tf.matmul(q, k, transpose_b=True), axis=-1)  # (H, N, N)
    context = tf.matmul(weights, v)  # (H, N, d)
    return tf.reshape(tf.transpose(context, (1, 0, 2)), (tokens, hidden))


def vit_graph(tf, fw, x, schedule=None):
    """(T, F) normalised frames -> (1, C) probabilities. ``schedule`` is unused (no recurrence)."""
    steps = x.shape[0]
    tokens, hidden = fw.tokens, fw.hidden
    if n_tokens(steps) != tokens:
        raise ParameterError(f"This vit has {tokens} position embeddings, for T = {(tokens - 1) * PATCH_FRAMES + 1}.."
                             f"{tokens * PATCH_FRAMES} frames; got T = {steps}.")
    if tokens * PATCH_FRAMES != steps:
        x = tf.pad(x, [[0, tokens * PATCH_FRAMES - steps], [0, 0]])  # zero frames, as in training
    patches = tf.reshape(x, (tokens, PATCH_FRAMES * fw.n_features))
    x = tf.matmul(patches, tf.constant(fw.patch_kernel)) + tf.constant(fw.position)
    for block in fw.blocks:
        qkv = _affine(tf, _normalized(tf, x), block.qkv)
        x = x + _affine(tf, _attention(tf, qkv, tokens, hidden), block.proj)
        x = x + _affine(tf, tf.nn.relu(_affine(tf, _normalized(tf, x), block.mlp1)), block.mlp2)
    pooled = tf.reduce_mean(x, axis=0, keepdims=True)  # (1, D)
    logits = tf.matmul(_normalized(tf, pooled), tf.constant(fw.dense_kernel)) + tf.constant(fw.dense_bias)
    return tf.nn.softmax(logits, axis=-1)
