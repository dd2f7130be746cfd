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
"""

import numpy as np

_LAYER_WEIGHTS = {
    "lstm1": ("kernel", "recurrent_kernel", "bias"),
    "lstm2": ("kernel", "recurrent_kernel", "bias"),
    "bn_in": ("gamma", "beta", "moving_mean", "moving_variance"),
    "bn_out": ("gamma", "beta", "moving_mean", "moving_variance"),
    "attention": ("u",),
    "dense": ("kernel", "bias"),
}
BN_EPSILON = 1e-5


def get_weights(model):
    """Canonical weight dict of a Keras LSTM-SA / ResLSTM-SA model."""
    out = {}
    for layer in model.layers:
        names = _LAYER_WEIGHTS.get(layer.name)
        if names is None:
            continue
        values = [np.asarray(w) for w in layer.get_weights()]
        for key, value in zip(names, values):
            out[f"{layer.name}/{key}"] = value.reshape(-1) if key == "u" else value.astype(np.float32)
    return {k: v.astype(np.float32) for k, v in out.items()}


def set_weights(model, weights):
    """Load a canonical weight dict into a Keras model built from the same config."""
    for layer in model.layers:
        names = _LAYER_WEIGHTS.get(layer.name)
        if names is None:
            continue
        current = layer.get_weights()
        new = [np.asarray(weights[f"{layer.name}/{k}"]).reshape(c.shape) for k, c in zip(names, current)]
        layer.set_weights(new)


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


def batch_norm(x, w, prefix):
    scale = w[f"{prefix}/gamma"] / np.sqrt(w[f"{prefix}/moving_variance"] + BN_EPSILON)
    return (x - w[f"{prefix}/moving_mean"]) * scale + w[f"{prefix}/beta"]


def forward(weights, x, *, lengths=None):
    """NumPy reference inference: (B, T, F) normalised features -> (B, C) probabilities.

    ``lengths`` gives masked-padding semantics; without it every frame counts (zero padding).
    """
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
