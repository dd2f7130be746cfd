"""The float model in other frameworks, timed beside the bundle's TFLite variants.

Three peers, each used only if its framework is installed:

- ``keras``: the training model itself (Keras 3 on JAX, built from the model config),
  called with ``predict_on_batch`` - Keras' fastest call for one batch (compiled once,
  no ``predict`` loop overhead), so the comparison does not flatter TFLite.
- ``onnxruntime``: the same network written as an ONNX graph with ONNX's own ``LSTM``
  op (built here from the weights; no converter involved), run by ONNX Runtime.
- ``torch``: the PyTorch reference-style model (``nn.LSTM``, soft attention,
  ``BatchNorm1d``, ``Linear``), as in the paper's public code.

All three load the canonical NumPy weights (:mod:`sertiny.models.weights`) and return
probabilities for ``(T, F)`` normalised features, checked against
:func:`sertiny.models.weights.forward` in the tests. When the bundle's float weights
cannot be found, seeded random weights of the same shapes are used: timing does not
depend on the values, and the report says so.
"""

import time
from pathlib import Path

import numpy as np

from ..models.weights import BN_EPSILON

PEERS = ("keras", "onnxruntime", "torch")
SUPPORTED_FAMILIES = ("lstm_sa", "res_lstm_sa", "res_lstm_sa_stats")


def _statistics(weights):
    """The frame statistics a joined model's head reads beside the attention context (its
    ``bn_out`` is wider than the context), else (); see sertiny.models.res_lstm_sa_stats."""
    from ..models.stats_linear_spec import STATISTICS

    return STATISTICS if weights["bn_out/gamma"].shape[0] > weights["lstm2/recurrent_kernel"].shape[0] else ()


def find_weights(bundle):
    """``(weights dict, source text)`` of the bundle's float weights, or ``(None, reason)``.

    Looked for as ``weights.npz`` in the bundle, then in the training run the bundle names
    (``source_run`` + ``weights``: ``seedS_foldK`` or a ``deploy`` model).
    """
    from ..models.weights import load_weights

    from ..errors import ParameterError
    from ..training.rundir import RunDir

    candidates = [bundle.path / "weights.npz"]
    run, which = bundle.manifest.get("source_run"), bundle.manifest.get("weights")
    if isinstance(run, str) and isinstance(which, str):
        try:
            candidates.append(RunDir(run).weights_dir(which) / "weights.npz")
        except ParameterError:  # not a run's model name: look for it beside the run
            pass
        candidates += [Path(run) / f"{which}.npz"]
    for path in candidates:
        if path.is_file():
            return load_weights(path), str(path)
    return None, "bundle float weights not found (looked in " + ", ".join(str(c) for c in candidates) + ")"


def random_weights(model, seed=0):
    """Seeded canonical weights with the shapes of ``model`` (a ModelConfig dict)."""
    rng = np.random.default_rng(seed)
    f, h, c = model["n_features"], model["hidden"], model["n_classes"]

    def normal(*shape, scale=None):
        return (rng.standard_normal(shape) * (scale or 1.0 / np.sqrt(shape[0]))).astype(np.float32)

    w = {}
    layers = [("lstm2", f, h)]
    if model["family"] in ("res_lstm_sa", "res_lstm_sa_stats"):
        layers.insert(0, ("lstm1", f, f))
    head = h + (3 * f if model["family"] == "res_lstm_sa_stats" else 0)  # mean, std, delta_rms beside
    for name, n_in, units in layers:
        w[f"{name}/kernel"] = normal(n_in, 4 * units)
        w[f"{name}/recurrent_kernel"] = normal(units, 4 * units)
        w[f"{name}/bias"] = np.zeros(4 * units, np.float32)
    for name, width in (("bn_in", f), ("bn_out", head)):
        if name == "bn_in" and "lstm1/kernel" not in w:
            continue
        w[f"{name}/gamma"] = np.ones(width, np.float32)
        w[f"{name}/beta"] = np.zeros(width, np.float32)
        w[f"{name}/moving_mean"] = normal(width, scale=0.1)
        w[f"{name}/moving_variance"] = np.ones(width, np.float32)
    # The generic weight format (the joined family's) keeps Keras' (H, 1) attention vector.
    w["attention/u"] = normal(h) if head == h else normal(h, 1, scale=1 / np.sqrt(h))
    w["dense/kernel"] = normal(head, c)
    w["dense/bias"] = np.zeros(c, np.float32)
    return w


class Peer:
    """A loaded peer: ``predict((T, F)) -> (C,)``, with its load time and versions."""

    def __init__(self, name, predict, load_s, version, threads):
        self.name, self.predict, self.load_s, self.version, self.threads = name, predict, load_s, version, threads


def load_peer(name, model, weights, *, threads=1):
    """Build peer ``name`` for a ModelConfig dict ``model`` with canonical ``weights``.

    ``load_s`` covers importing the framework (if this process has not yet), building the
    model and its first call (graph compilation), i.e. what a fresh script would pay.
    """
    builders = {"keras": _keras_peer, "onnxruntime": _onnx_peer, "torch": _torch_peer}
    start = time.perf_counter()
    predict, version, used_threads = builders[name](model, weights, threads)
    predict(np.zeros((model["seq_len"], model["n_features"]), np.float32))
    return Peer(name, predict, time.perf_counter() - start, version, used_threads)


# --- Keras ---------------------------------------------------------------------------------


def _keras_peer(model, weights, threads):
    from ..models import model_config
    from ..models.weights import model_with_weights

    # By name, so the registry registers its built-in families before checking the config.
    extra = {k: v for k, v in model.items() if k not in ("family", "hidden")}
    net = model_with_weights(model_config(f"{model['family']}_h{model['hidden']}", **extra), weights)
    import keras

    def predict(x):
        return np.asarray(net.predict_on_batch(x[None]))[0]

    return predict, f"keras {keras.__version__} ({keras.backend.backend()})", "framework default"


# --- ONNX Runtime --------------------------------------------------------------------------

# Keras gate order (i, f, c, o) -> ONNX's (i, o, f, c).
_ONNX_GATES = (0, 3, 1, 2)


def build_onnx_model(weights):
    """An ONNX ModelProto of LSTM-SA / ResLSTM-SA: input ``x`` (1, T, F) -> ``probs`` (1, C)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes, inits = [], []

    def const(name, value):
        inits.append(numpy_helper.from_array(np.asarray(value, np.float32), name))
        return name

    def lstm(prefix, x_name):
        kernel, rec, bias = (weights[f"{prefix}/{k}"] for k in ("kernel", "recurrent_kernel", "bias"))
        units = rec.shape[0]
        order = np.concatenate([np.arange(g * units, (g + 1) * units) for g in _ONNX_GATES])
        const(f"{prefix}_W", kernel[:, order].T[None])
        const(f"{prefix}_R", rec[:, order].T[None])
        const(f"{prefix}_B", np.concatenate([bias[order], np.zeros_like(bias)])[None])
        nodes.append(helper.make_node("LSTM", [x_name, f"{prefix}_W", f"{prefix}_R", f"{prefix}_B"],
                                      [f"{prefix}_Y"], hidden_size=units))
        # Y is (T, directions=1, batch=1, units): drop the directions axis.
        nodes.append(helper.make_node("Squeeze", [f"{prefix}_Y", "axis1"], [f"{prefix}_h"]))
        return f"{prefix}_h"  # (T, 1, units)

    def batch_norm(prefix, x_name):
        scale = weights[f"{prefix}/gamma"] / np.sqrt(weights[f"{prefix}/moving_variance"] + BN_EPSILON)
        shift = weights[f"{prefix}/beta"] - weights[f"{prefix}/moving_mean"] * scale
        nodes.append(helper.make_node("Mul", [x_name, const(f"{prefix}_s", scale)], [f"{prefix}_m"]))
        nodes.append(helper.make_node("Add", [f"{prefix}_m", const(f"{prefix}_b", shift)], [f"{prefix}_out"]))
        return f"{prefix}_out"

    inits.append(numpy_helper.from_array(np.array([1], np.int64), "axis1"))
    inits.append(numpy_helper.from_array(np.array([0], np.int64), "axis0"))
    nodes.append(helper.make_node("Transpose", ["x"], ["x_t"], perm=[1, 0, 2]))  # (T, 1, F)
    seq = "x_t"
    if "lstm1/kernel" in weights:
        h1 = lstm("lstm1", seq)
        nodes.append(helper.make_node("Add", [h1, seq], ["residual"]))
        seq = batch_norm("bn_in", "residual")
    h = lstm("lstm2", seq)
    nodes.append(helper.make_node("MatMul", [h, const("u", weights["attention/u"].reshape(-1, 1))], ["scores"]))
    nodes.append(helper.make_node("Softmax", ["scores"], ["alpha"], axis=0))
    nodes.append(helper.make_node("Mul", ["alpha", h], ["weighted"]))
    nodes.append(helper.make_node("ReduceSum", ["weighted", "axis0"], ["context"], keepdims=0))  # (1, H)
    statistics = _statistics(weights)
    if statistics:  # the joined model: the frames' statistics beside the context
        _onnx_statistics(helper, nodes, inits, numpy_helper, statistics)
        nodes.append(helper.make_node("Concat", ["context"] + [f"stat_{s}" for s in statistics], ["pooled"], axis=-1))
    context = batch_norm("bn_out", "pooled" if statistics else "context")
    nodes.append(helper.make_node("Gemm", [context, const("dense_W", weights["dense/kernel"]),
                                           const("dense_b", weights["dense/bias"])], ["logits"]))
    nodes.append(helper.make_node("Softmax", ["logits"], ["probs"], axis=-1))
    n_features, n_classes = weights["lstm2/kernel"].shape[0], weights["dense/kernel"].shape[1]
    graph = helper.make_graph(
        nodes, "sertiny_lstm_sa",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, None, n_features])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, [1, n_classes])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8  # readable by every ONNX Runtime since 1.10
    onnx.checker.check_model(model)
    return model


def _onnx_statistics(helper, nodes, inits, numpy_helper, statistics):
    """Nodes computing ``stat_<name>`` (1, F) of the frames ``x_t`` (T, 1, F)."""
    from ..models.stats_linear_spec import SQRT_EPSILON

    inits.append(numpy_helper.from_array(np.array(SQRT_EPSILON, np.float32), "sqrt_eps"))
    for name, value in (("starts", 1), ("ends", np.iinfo(np.int64).max), ("starts0", 0), ("ends_last", -1)):
        inits.append(numpy_helper.from_array(np.array([value], np.int64), name))

    def soft_sqrt(v, out):  # v / sqrt(v + eps), as the model computes it
        nodes.append(helper.make_node("Add", [v, "sqrt_eps"], [f"{out}_ve"]))
        nodes.append(helper.make_node("Sqrt", [f"{out}_ve"], [f"{out}_root"]))
        nodes.append(helper.make_node("Div", [v, f"{out}_root"], [out]))

    nodes.append(helper.make_node("ReduceMean", ["x_t"], ["mean_k"], axes=[0], keepdims=1))  # (1, 1, F)
    nodes.append(helper.make_node("ReduceMean", ["x_t"], ["stat_mean"], axes=[0], keepdims=0))  # (1, F)
    nodes.append(helper.make_node("Sub", ["x_t", "mean_k"], ["centred"]))
    nodes.append(helper.make_node("Mul", ["centred", "centred"], ["centred_sq"]))
    nodes.append(helper.make_node("ReduceMean", ["centred_sq"], ["variance"], axes=[0], keepdims=0))
    soft_sqrt("variance", "stat_std")
    nodes.append(helper.make_node("Slice", ["x_t", "starts", "ends", "axis0"], ["later"]))
    nodes.append(helper.make_node("Slice", ["x_t", "starts0", "ends_last", "axis0"], ["earlier"]))
    nodes.append(helper.make_node("Sub", ["later", "earlier"], ["delta"]))
    nodes.append(helper.make_node("Mul", ["delta", "delta"], ["delta_sq"]))
    nodes.append(helper.make_node("ReduceMean", ["delta_sq"], ["delta_ms"], axes=[0], keepdims=0))
    soft_sqrt("delta_ms", "stat_delta_rms")


def _onnx_peer(model, weights, threads):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(build_onnx_model(weights).SerializeToString(), options,
                                   providers=["CPUExecutionProvider"])

    def predict(x):
        return session.run(["probs"], {"x": np.asarray(x, np.float32)[None]})[0][0]

    return predict, f"onnxruntime {ort.__version__}", threads


# --- PyTorch -------------------------------------------------------------------------------


def build_torch_model(weights):
    """The reference-style PyTorch module, weights loaded, in eval mode."""
    import torch
    from torch import nn

    from ..models.stats_linear_spec import SQRT_EPSILON

    residual = "lstm1/kernel" in weights
    n_features, hidden = weights["lstm2/kernel"].shape[0], weights["lstm2/recurrent_kernel"].shape[0]
    n_classes, head = weights["dense/kernel"].shape[1], weights["dense/kernel"].shape[0]
    statistics = _statistics(weights)

    class LstmSA(nn.Module):
        def __init__(self):
            super().__init__()
            if residual:
                self.lstm1 = nn.LSTM(n_features, n_features, batch_first=True)
                self.bn_in = nn.BatchNorm1d(n_features, eps=BN_EPSILON)
            self.lstm2 = nn.LSTM(n_features, hidden, batch_first=True)
            self.u = nn.Parameter(torch.zeros(hidden))
            self.bn_out = nn.BatchNorm1d(head, eps=BN_EPSILON)
            self.dropout = nn.Dropout(0.3)
            self.fc = nn.Linear(head, n_classes)

        def forward(self, x):
            x_in = x
            if residual:
                r, _ = self.lstm1(x)
                x = self.bn_in((r + x).transpose(1, 2)).transpose(1, 2)
            h, _ = self.lstm2(x)
            alpha = torch.softmax(h @ self.u, dim=1)
            context = (alpha.unsqueeze(-1) * h).sum(dim=1)
            if statistics:  # the joined model: the frames' statistics beside the context
                soft_sqrt = lambda v: v / torch.sqrt(v + SQRT_EPSILON)
                stats = {"mean": x_in.mean(dim=1), "std": soft_sqrt(x_in.var(dim=1, unbiased=False)),
                         "delta_rms": soft_sqrt(((x_in[:, 1:] - x_in[:, :-1]) ** 2).mean(dim=1))}
                context = torch.cat([context] + [stats[s] for s in statistics], dim=-1)
            return torch.softmax(self.fc(self.dropout(self.bn_out(context))), dim=-1)

    net = LstmSA().eval()
    t = {k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32)) for k, v in weights.items()}
    with torch.no_grad():
        for name in ("lstm1", "lstm2") if residual else ("lstm2",):
            layer = getattr(net, name)
            # PyTorch gate order (i, f, g, o) equals Keras'; PyTorch has a second bias, zeroed.
            layer.weight_ih_l0.copy_(t[f"{name}/kernel"].T)
            layer.weight_hh_l0.copy_(t[f"{name}/recurrent_kernel"].T)
            layer.bias_ih_l0.copy_(t[f"{name}/bias"])
            layer.bias_hh_l0.zero_()
        for name in ("bn_in", "bn_out") if residual else ("bn_out",):
            bn = getattr(net, name)
            bn.weight.copy_(t[f"{name}/gamma"])
            bn.bias.copy_(t[f"{name}/beta"])
            bn.running_mean.copy_(t[f"{name}/moving_mean"])
            bn.running_var.copy_(t[f"{name}/moving_variance"])
        net.u.copy_(t["attention/u"].reshape(-1))
        net.fc.weight.copy_(t["dense/kernel"].T)
        net.fc.bias.copy_(t["dense/bias"])
    return net


def _torch_peer(model, weights, threads):
    import torch

    torch.set_num_threads(threads)
    net = build_torch_model(weights)

    def predict(x):
        with torch.inference_mode():
            return net(torch.from_numpy(np.asarray(x, np.float32)[None])).numpy()[0]

    return predict, f"torch {torch.__version__}", threads
