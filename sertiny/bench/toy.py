"""A tiny stand-in bundle, for tests, CI and trying the device path without a trained run.

The model is deliberately not an LSTM (a per-frame dense layer, a mean over time and a
softmax classifier with seeded random weights): it converts in a second, and the device
path must not care how a bundle was made. Its predictions mean nothing; the
normalisation statistics and the int8 calibration come from the NumPy front end run on
the audio given (or on synthetic tones and noise), so int8 inputs span their range and
different clips get different answers, which is what parity tests need.

Needs TensorFlow (host only; never imported by the device path).
"""

import hashlib
import warnings

import numpy as np

from .._io import atomic_directory
from ..runtime.bundle import BUNDLE_FORMAT, BUNDLE_FORMAT_VERSION, write_manifest
from ..features import extract, fit_norm_stats
from ..features.config import get_preset
from ..features.frames import fit_to_length

RAVDESS_LABELS = ("neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised")


def make_toy_bundle(out_dir, *, audio=(), seq_len=100, hidden=16, feature_preset="edge16k",
                    labels=RAVDESS_LABELS, seed=0, overwrite=True):
    """Write a bundle with ``f32`` and full-integer ``int8`` variants to ``out_dir``.

    Args:
        out_dir: bundle directory to create.
        audio: mono float32 arrays at the preset's rate to calibrate on (default: synthetic).
        seq_len: frames per model input (T).
        hidden: width of the per-frame dense layer.
        feature_preset: front-end preset name (see :func:`sertiny.features.list_presets`).
        labels: class names.
        seed: weights and synthetic-audio seed.

    Returns:
        The bundle directory (a :class:`pathlib.Path`).
    """
    config = get_preset(feature_preset)
    rng = np.random.default_rng(seed)
    clips = list(audio) or _synthetic_audio(rng, config.sample_rate)
    feats = [extract(np.asarray(y, np.float32), config) for y in clips]
    norm = fit_norm_stats(feats)
    windows = [fit_to_length(norm.apply(f), seq_len) for f in feats]
    f32, int8, quant = _convert(rng, windows, seq_len, config.n_features, hidden, len(labels))
    manifest = {
        "format": BUNDLE_FORMAT,
        "format_version": BUNDLE_FORMAT_VERSION,
        "model": {"family": "toy_dense_mean", "hidden": hidden, "n_features": config.n_features,
                  "n_classes": len(labels), "seq_len": seq_len},
        "labels": list(labels),
        "feature_config": config.to_dict(),
        "norm": norm.to_dict(),
        "seq_len": seq_len,
        "variants": {
            "f32": _variant_meta("model_f32.tflite", f32),
            "int8": {**_variant_meta("model_int8.tflite", int8), **quant},
        },
        "metrics": {},
        "weights": f"toy_seed{seed}",
        "source_run": None,
        "created": None,
        "sertiny_version": None,
    }
    with atomic_directory(out_dir, overwrite=overwrite) as tmp:
        (tmp / "model_f32.tflite").write_bytes(f32)
        (tmp / "model_int8.tflite").write_bytes(int8)
        write_manifest(tmp, manifest)
    return out_dir


def _synthetic_audio(rng, sr, n=6):
    """Tones with vibrato plus noise at several levels: enough spread for calibration."""
    clips = []
    for i in range(n):
        t = np.arange(int(sr * (2.0 + 0.5 * i))) / sr
        f0 = 120.0 + 40.0 * i + 10.0 * np.sin(2 * np.pi * 3 * t)
        y = 0.3 * np.sin(2 * np.pi * np.cumsum(f0) / sr) + 0.02 * (i + 1) * rng.standard_normal(t.size)
        clips.append(y.astype(np.float32))
    return clips


def _convert(rng, windows, seq_len, n_features, hidden, n_classes):
    """(f32 bytes, int8 bytes, {"input": .., "output": ..} quantisation of the int8 model)."""
    import tensorflow as tf

    w1 = tf.constant(rng.normal(0, 1.0 / np.sqrt(n_features), (n_features, hidden)).astype(np.float32))
    b1 = tf.constant(rng.normal(0, 0.1, hidden).astype(np.float32))
    w2 = tf.constant(rng.normal(0, 3.0 / np.sqrt(hidden), (hidden, n_classes)).astype(np.float32))

    @tf.function(input_signature=[tf.TensorSpec([1, seq_len, n_features], tf.float32)])
    def model(x):
        h = tf.tanh(tf.matmul(tf.reshape(x, [-1, n_features]), w1) + b1)
        pooled = tf.reduce_mean(tf.reshape(h, [1, seq_len, hidden]), axis=1)
        return tf.nn.softmax(tf.matmul(pooled, w2))

    concrete = model.get_concrete_function()
    f32 = tf.lite.TFLiteConverter.from_concrete_functions([concrete], model).convert()
    converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete], model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    calibration = list(windows) + [rng.standard_normal((seq_len, n_features)).astype(np.float32)]
    converter.representative_dataset = lambda: ([w[None].astype(np.float32)] for w in calibration)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    with warnings.catch_warnings():  # "statistics for quantized inputs": the calibration gives them
        warnings.simplefilter("ignore", UserWarning)
        int8 = converter.convert()
    return f32, int8, _quantization(int8)


def _quantization(model_bytes):
    from ..runtime.tflite import load_interpreter

    interpreter = load_interpreter(model_bytes)
    (inp,), (out,) = interpreter.get_input_details(), interpreter.get_output_details()
    return {
        "input": {"scale": float(inp["quantization"][0]), "zero_point": int(inp["quantization"][1])},
        "output": {"scale": float(out["quantization"][0]), "zero_point": int(out["quantization"][1])},
    }


def _variant_meta(file_name, data):
    return {"file": file_name, "profile": "full", "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
