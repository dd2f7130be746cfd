"""Backend-free model weights: a flat dict of NumPy arrays with canonical names.

Export (TensorFlow graph), the NumPy reference forward pass and the C reference all read
this one format, so none of them depends on Keras or its backend. Names:

- ``lstm1/kernel`` (F, 4F), ``lstm1/recurrent_kernel`` (F, 4F), ``lstm1/bias`` (4F)
  — ResLSTM only; gate order i, f, c, o (Keras).
- ``bn_in/{gamma,beta,moving_mean,moving_variance}`` (F,) — ResLSTM only.
- ``lstm2/kernel`` (F, 4H), ``lstm2/recurrent_kernel`` (H, 4H), ``lstm2/bias`` (4H).
- ``attention/u`` (H,).
- ``bn_out/{gamma,beta,moving_mean,moving_variance}`` (H,).
- ``dense/kernel`` (H, C), ``dense/bias`` (C,).

A family's :class:`~sertiny.models.registry.Family` record says which format it uses
(``weight_format``): ``"named"`` is the format above (``lstm_sa``, ``res_lstm_sa``); every
other family (``bilstm_att``, ``dual_lstm``, ``cnn_lstm``, ``vit``, ``stats_linear``) uses a
generic format that Keras and its export graphs (e.g. :mod:`sertiny.export.baseline_graphs`)
read back:
``<layer name>/<variable name>`` for every variable of every layer (trainable or not), with
``<layer name>/forward/...`` and ``<layer name>/backward/...`` for a Bidirectional layer's
two LSTMs, e.g. ``bilstm1/forward/kernel``, ``conv1/kernel``, ``bn1/moving_mean``,
``block1_qkv/kernel``. Arrays keep Keras' own shapes and gate order. A multi-task model's
auxiliary heads are ``dense_<name>/kernel`` and ``dense_<name>/bias`` beside the emotion
head's ``dense/...``; :func:`without_aux_heads` drops them (export ships the emotion head only).
"""

import numpy as np

from .registry import families, get_family, parse_model_name

_LAYER_WEIGHTS = {
    "lstm1": ("kernel", "recurrent_kernel", "bias"),
    "lstm2": ("kernel", "recurrent_kernel", "bias"),
    "bn_in": ("gamma", "beta", "moving_mean", "moving_variance"),
    "bn_out": ("gamma", "beta", "moving_mean", "moving_variance"),
    "attention": ("u",),
    "dense": ("kernel", "bias"),
}
BN_EPSILON = 1e-5


def named_format_families():
    """Families whose weights use the named format (export's LSTM-SA graphs, :func:`forward`
    and the C reference read it)."""
    return [family.name for family in families() if family.weight_format == "named"]


def _uses_named_format(model):
    # A built model is named <family>_h<hidden> (Family.builder's contract).
    return get_family(parse_model_name(model.name)[0]).weight_format == "named"


def get_weights(model):
    """Canonical weight dict of a model built by :func:`sertiny.models.create_model`.

    The family's ``weight_format`` decides: the named format or the generic one.
    """
    if not _uses_named_format(model):
        return {key: np.asarray(var.numpy(), dtype=np.float32) for key, var in _generic_variables(model)}
    out = {}
    for layer in model.layers:
        names = _LAYER_WEIGHTS.get(layer.name)
        if names is None:
            continue
        values = [np.asarray(w) for w in layer.get_weights()]
        for key, value in zip(names, values):
            out[f"{layer.name}/{key}"] = value.reshape(-1) if key == "u" else value.astype(np.float32)
    return {k: v.astype(np.float32) for k, v in out.items()}


def model_with_weights(config, weights):
    """A new Keras model of ``config`` (a name or :class:`~sertiny.models.registry.ModelConfig`)
    holding ``weights``, a canonical weight dict (Keras is imported here, never on the device path)."""
    from .registry import create_model

    model = create_model(config)
    set_weights(model, weights)
    return model


def set_weights(model, weights):
    """Load a canonical weight dict into a Keras model built from the same config."""
    if not _uses_named_format(model):
        _set_generic(model, weights)
        return
    for layer in model.layers:
        names = _LAYER_WEIGHTS.get(layer.name)
        if names is None:
            continue
        current = layer.get_weights()
        new = [np.asarray(weights[f"{layer.name}/{k}"]).reshape(c.shape) for k, c in zip(names, current)]
        layer.set_weights(new)


def _generic_variables(model):
    """``(key, variable)`` of every variable of every layer, keyed as the generic format says."""
    seen = set()
    for layer in model.layers:
        if hasattr(layer, "forward_layer") and hasattr(layer, "backward_layer"):  # Bidirectional
            owners = [(f"{layer.name}/forward", layer.forward_layer), (f"{layer.name}/backward", layer.backward_layer)]
        else:
            owners = [(layer.name, layer)]
        for prefix, owner in owners:
            for var in owner.weights:
                key = f"{prefix}/{var.name}"
                if key in seen:  # a layer type whose variables need a naming rule of their own
                    raise ValueError(f"Layer {layer.name!r} has two variables named {var.name!r}; "
                                     "the generic weight format cannot name them apart.")
                seen.add(key)
                yield key, var


def _set_generic(model, weights):
    from ..errors import ArtifactError

    variables = dict(_generic_variables(model))
    missing = sorted(set(variables) - set(weights))
    unexpected = sorted(set(weights) - set(variables))
    if missing or unexpected:
        raise ArtifactError(
            f"The weights do not fit the {model.name} model: missing {missing or 'none'}, "
            f"unexpected {unexpected or 'none'}. They come from another model family or size."
        )
    for key, var in variables.items():
        value = np.asarray(weights[key])
        if tuple(value.shape) != tuple(var.shape):
            raise ArtifactError(
                f"Weight {key} has shape {value.shape} but the {model.name} model needs {tuple(var.shape)}; "
                "the weights come from another model size or feature set."
            )
        var.assign(value.astype(var.dtype))


def without_aux_heads(weights, aux_heads=None):
    """The weight dict without a multi-task model's auxiliary heads: the model export ships.

    ``aux_heads``: ``ModelConfig.aux_heads`` (``((name, n_classes), ...)``), whose
    ``dense_<name>/...`` arrays are dropped; None drops every ``dense_<name>/...`` array.
    """
    if aux_heads is None:
        return {k: v for k, v in weights.items() if not (k.startswith("dense_") and "/" in k)}
    prefixes = tuple(f"dense_{name}/" for name, _ in aux_heads)
    return {k: v for k, v in weights.items() if not (prefixes and k.startswith(prefixes))}


def save_weights(path, weights):
    from .._io import atomic_path

    with atomic_path(path) as tmp:
        np.savez(tmp, **weights)


def load_weights(path):
    from ..errors import ArtifactError

    try:
        with np.load(path) as data:
            return {k: data[k] for k in data.files}
    except (OSError, ValueError) as exc:
        raise ArtifactError(f"{path}: cannot read model weights ({exc}); the file may be truncated") from None


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def lstm_forward(x, kernel, recurrent_kernel, bias, lengths=None):
    """Run an LSTM over (B, T, F) input; returns hidden states (B, T, H), float64.

    With ``lengths``, steps at t >= length keep the previous state and output zeros,
    the semantics of Keras masking for post-padded sequences.
    """
    batch, steps, _ = x.shape
    units = recurrent_kernel.shape[0]
    h = np.zeros((batch, units))
    c = np.zeros((batch, units))
    projected = x @ kernel + bias  # all steps' input projections in one matmul
    out = np.zeros((batch, steps, units))
    for t in range(steps):
        z = projected[:, t] + h @ recurrent_kernel
        i, f, g, o = np.split(z, 4, axis=-1)
        c_new = _sigmoid(f) * c + _sigmoid(i) * np.tanh(g)
        h_new = _sigmoid(o) * np.tanh(c_new)
        if lengths is not None:
            live = (t < lengths)[:, None]
            c_new, h_new = np.where(live, c_new, c), np.where(live, h_new, h)
        h, c = h_new, c_new
        out[:, t] = h
    return out


def batch_norm_affine(w, prefix):
    """Inference-mode BatchNorm ``prefix`` of a weight dict as one affine map: ``(scale,
    shift)`` with ``BN(x) = x * scale + shift`` (what export folds into the next op)."""
    scale = w[f"{prefix}/gamma"] / np.sqrt(w[f"{prefix}/moving_variance"] + BN_EPSILON)
    return scale, w[f"{prefix}/beta"] - w[f"{prefix}/moving_mean"] * scale


def batch_norm(x, w, prefix):
    scale, _ = batch_norm_affine(w, prefix)
    return (x - w[f"{prefix}/moving_mean"]) * scale + w[f"{prefix}/beta"]


def check_generic_weights(w, expected, family):
    """A generic weight dict holds exactly the keys of ``expected`` (``{key: shape}``, what
    ``family``'s model has), each with its shape; else :class:`ArtifactError` names the odd ones."""
    from ..errors import ArtifactError

    missing, unexpected = sorted(set(expected) - set(w)), sorted(set(w) - set(expected))
    if missing or unexpected:
        raise ArtifactError(f"The {family} weights are incomplete: missing {missing or 'none'}, "
                            f"unexpected {unexpected or 'none'}.")
    for key, shape in expected.items():
        if tuple(w[key].shape) != shape:
            raise ArtifactError(f"Weight {key} has shape {w[key].shape}, expected {shape}: the weights are inconsistent.")


def forward(weights, x, *, lengths=None):
    """NumPy reference inference: (B, T, F) normalised features -> (B, C) probabilities.

    ``lengths`` gives masked-padding semantics; without it every frame counts (zero padding).
    """
    if "lstm2/kernel" not in weights:
        from ..errors import ParameterError

        raise ParameterError(
            "forward() is the NumPy reference of the LSTM-SA / ResLSTM-SA families, the named weight "
            f"format ({', '.join(named_format_families())}); these weights come from another family."
        )
    x = np.asarray(x, dtype=np.float64)
    w = {k: np.asarray(v, dtype=np.float64) for k, v in weights.items()}
    if "lstm1/kernel" in w:
        r = lstm_forward(x, w["lstm1/kernel"], w["lstm1/recurrent_kernel"], w["lstm1/bias"], lengths)
        x = batch_norm(r + x, w, "bn_in")
    h = lstm_forward(x, w["lstm2/kernel"], w["lstm2/recurrent_kernel"], w["lstm2/bias"], lengths)
    scores = h @ w["attention/u"]
    if lengths is not None:
        scores = np.where(np.arange(h.shape[1])[None] < lengths[:, None], scores, -np.inf)
    alpha = np.exp(scores - scores.max(axis=1, keepdims=True))
    alpha /= alpha.sum(axis=1, keepdims=True)
    context = batch_norm((alpha[..., None] * h).sum(axis=1), w, "bn_out")
    logits = context @ w["dense/kernel"] + w["dense/bias"]
    e = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)
