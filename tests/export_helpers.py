"""Tiny random-weight models and run directories for the export tests (test_export.py,
test_baseline_export.py): canonical weights, clips, and a run in the training layout."""

import json

import numpy as np

F, H, C, T = 46, 8, 8, 13  # T = 13: not a multiple of the chunk sizes 3 and 5


def random_weights(family="res_lstm_sa", hidden=H, seed=0):
    """Canonical weights with the training initialisation's shapes and rough scales."""
    rng = np.random.default_rng(seed)
    w = {}

    def lstm(name, n_in, units):
        w[f"{name}/kernel"] = rng.normal(0, np.sqrt(2 / (n_in + 4 * units)), (n_in, 4 * units))
        w[f"{name}/recurrent_kernel"] = np.linalg.qr(rng.normal(size=(4 * units, units)))[0].T
        w[f"{name}/bias"] = np.r_[np.zeros(units), np.full(units, 2.0), np.zeros(2 * units)] + rng.normal(0, 0.1, 4 * units)

    def bn(name, n):
        w[f"{name}/gamma"], w[f"{name}/beta"] = rng.uniform(0.5, 1.5, n), rng.normal(0, 0.1, n)
        w[f"{name}/moving_mean"], w[f"{name}/moving_variance"] = rng.normal(0, 0.2, n), rng.uniform(0.2, 1.0, n)

    if family == "res_lstm_sa":
        lstm("lstm1", F, F)
        bn("bn_in", F)
    lstm("lstm2", F, hidden)
    w["attention/u"] = rng.normal(0, 1.0, hidden)
    bn("bn_out", hidden)
    w["dense/kernel"], w["dense/bias"] = rng.uniform(-1, 1, (hidden, C)), rng.normal(0, 0.1, C)
    return {k: np.asarray(v, np.float32) for k, v in w.items()}


def clips(n, seed=1, lengths=(7, 13, 20)):
    rng = np.random.default_rng(seed)
    return [rng.normal(size=(lengths[i % len(lengths)], F)).astype(np.float32) for i in range(n)]


def padded(clip):
    from sertiny.features.frames import fit_to_length

    return fit_to_length(clip, T)


def baseline_weights(family, hidden=H, seed=0, aux_heads=(), seq_len=T):
    """Generic weights of a baseline family (Keras' shapes and gate order) at roughly the
    training initialisation's scales, with BatchNorm statistics, LayerNorm gains and biases
    away from their initial values so that folding them is tested. ``aux_heads``
    ((name, n_classes), ...) adds a multi-task model's ``dense_<name>`` heads; ``seq_len``
    sizes a vit's position embedding."""
    from sertiny.export.baseline_graphs import expected_shapes

    rng = np.random.default_rng(seed)
    w = {}
    shapes = expected_shapes(family, hidden, F, C, seq_len)
    for name, n in aux_heads:
        shapes.update({f"dense_{name}/kernel": (shapes["dense/kernel"][0], n), f"dense_{name}/bias": (n,)})
    for key, shape in shapes.items():
        name = key.rsplit("/", 1)[-1]
        if name == "recurrent_kernel":
            w[key] = np.linalg.qr(rng.normal(size=(shape[1], shape[0])))[0].T
        elif name in ("kernel", "v"):
            fan_in = int(np.prod(shape[:-1]))
            w[key] = rng.normal(0, np.sqrt(2 / (fan_in + shape[-1])), shape)
        elif name in ("gamma", "moving_variance"):
            w[key] = rng.uniform(0.5, 1.5, shape)
        else:  # bias, beta, moving_mean, a vit's position embedding
            w[key] = rng.normal(0, 0.2, shape)
    return {k: np.asarray(v, np.float32) for k, v in w.items()}


def model_weights(family, hidden=H, seed=0, aux_heads=(), seq_len=T):
    """Random weights of any family: :func:`random_weights` for the named format (LSTM-SA,
    ResLSTM-SA), else :func:`baseline_weights`."""
    from sertiny.models import get_family

    if get_family(family).weight_format == "named":
        return random_weights(family, hidden, seed)
    return baseline_weights(family, hidden, seed, aux_heads, seq_len)


def write_run(root, *, family="res_lstm_sa", hidden=H, seq_len=T, padding="zeros", format_version=None,
              weights_family=None, norm_width=F, empty_train_fold=False, aux_heads=()):
    """A tiny run directory in the layout of sertiny.training.protocol, with random weights
    (of ``weights_family``, default ``family``) and paper-format features of 3 actors x 8
    emotions x 2 clips. ``aux_heads`` makes it a multi-task run (auxiliary heads in the
    model config and the weights)."""
    from sertiny.features.config import get_preset
    from sertiny.models.weights import save_weights

    rng = np.random.default_rng(7)
    actors = np.repeat([1, 2, 3], 16)
    emotion = np.tile(np.repeat(np.arange(1, 9), 2), 3)
    lengths = rng.integers(8, 18, size=actors.size)
    data = root / "features.npz"
    np.savez(data, features=rng.normal(size=(lengths.sum(), F)).astype(np.float32),
             offsets=np.r_[0, np.cumsum(lengths)], names=np.array([f"clip{i}" for i in range(actors.size)]),
             emotion=emotion, actor=actors)
    run = root / "run"
    # Two of the three speaker folds: enough to pool parity over folds, and quicker.
    folds = [{"index": i + 1, "train_speakers": [s for s in ("01", "02", "03") if s not in (t, v)],
              "val_speakers": [v], "test_speakers": [t]} for i, (t, v) in enumerate([("01", "02"), ("02", "03")])]
    if empty_train_fold:
        folds[0] = {"index": 1, "train_speakers": [], "val_speakers": ["02"], "test_speakers": ["01", "03"]}
    model = {"family": family, "hidden": hidden, "n_features": F, "n_classes": C, "seq_len": seq_len, "dropout": 0.3,
             "forget_bias": 2.0, "padding": padding, "seed": 0}
    train_config = {"model": f"{family}_h{hidden}", "seeds": [0]}
    if aux_heads:
        model["aux_heads"] = [list(head) for head in aux_heads]
        train_config.update(multitask=True, aux_tasks=[name for name, _ in aux_heads])
    info = {"sertiny_version": "0.1.0", "label_names": ["neutral", "calm", "happy", "sad", "angry", "fearful",
                                                        "disgust", "surprised"],
            "seq_len": seq_len, "model_config": model, "source": str(data), "folds": folds,
            "data": {"kind": "paper_npz", "path": str(data), "dataset": "auto", "backend": "numpy",
                     "cache_dir": None, "strict": False}}
    if format_version is not None:
        info["format_version"] = format_version
    run.mkdir()
    (run / "run.json").write_text(json.dumps(info))
    (run / "feature_config.json").write_text(json.dumps(get_preset("paper").to_dict()))
    (run / "train_config.json").write_text(json.dumps(train_config))
    norm = {"mean": [0.0] * norm_width, "std": [1.0] * norm_width}
    for i, directory in enumerate([run / "deploy"] + [run / "seed_0" / f"fold_{f['index']}" for f in folds]):
        directory.mkdir(parents=True)
        save_weights(directory / "weights.npz", model_weights(weights_family or family, hidden, seed=i,
                                                              aux_heads=aux_heads, seq_len=seq_len))
        (directory / "norm.json").write_text(json.dumps(norm))
        (directory / "fold.json").write_text(json.dumps({"val_uar": 0.1 * i}))
    return run


def float_tensors_used(model):
    """Float32 tensors any op reads or writes (none in a model that is integer throughout)."""
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    graph = flatbuffer_utils.convert_bytearray_to_object(bytearray(model)).subgraphs[0]
    used = {t for op in graph.operators for t in list(op.inputs) + list(op.outputs) if t >= 0}
    return sorted(t for t in used if graph.tensors[t].type == schema.TensorType.FLOAT32)
