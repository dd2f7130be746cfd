"""Build every TFLite variant of one weight set, and run them over clips.

A variant is the compacted model bytes plus the manifest entry that says how to feed it.
The same code builds the shipped model and the per-fold models that measure parity, so
the figures in a bundle describe exactly the pipeline that made it.
"""

import dataclasses

import numpy as np

from . import calibration
from .convert import (
    compact,
    convert,
    describe,
    io_details,
    tie_quantization,
)
from .graph import (
    chunk_function,
    effective_schedule,
    full_unroll_function,
)

INTEGER_MODES = ("int8", "int16x8")  # ExportConfig flags, variant names and converter modes


@dataclasses.dataclass(eq=False)
class Variant:
    """One converted model. ``meta`` becomes its ``variants`` entry in ``sertiny.json``."""

    name: str
    model: bytes
    meta: dict

    @property
    def profile(self):
        return self.meta["profile"]

    @property
    def quantized(self):
        return self.meta["dtype"] in ("int8", "int16")


def build_variants(fw, model_config, config, train_clips, train_labels):
    """All variants ``config`` asks for, calibrated on ``train_clips`` -> {name: Variant}.

    Returns the float chunked models too (``f32_chunk<K>``): the int8 chunked models are
    calibrated on their traces, and parity compares against them.
    """
    seq_len = model_config.seq_len
    calib_idx = calibration.pick_clips(train_labels, config.calib_clips, strategy=config.calib_strategy,
                                       seed=config.calib_seed)
    calib_clips = [train_clips[i] for i in calib_idx]
    calib = {"clips": len(calib_idx), "strategy": config.calib_strategy, "seed": config.calib_seed}
    variants = {}
    full = full_unroll_function(fw, seq_len, schedule=config.schedule)
    common = {"schedule": effective_schedule(fw, config.schedule)}

    def add(name, function, mode, profile_meta, representative=None, groups=None):
        raw = convert(function, mode, representative=representative, per_channel=config.per_channel,
                      clip_groups=groups, range_percentile=config.range_percentile, cell_range=config.cell_range)
        io = io_details(raw, function)
        if mode in INTEGER_MODES and profile_meta["profile"] == "chunked":
            raw = tie_quantization(raw, _state_pairs(io))
            io = io_details(raw, function)
        model = compact(raw)
        dtype = {"int8": "int8", "int16x8": "int16"}.get(mode, "float32")
        meta = {**profile_meta, **common, "dtype": dtype, "quantization": mode}
        meta.update(_io_meta(io, profile_meta["profile"]))
        meta.update(describe(model))
        if mode in INTEGER_MODES:
            ranges = "min/max over the calibration samples" if mode != "int8" or config.range_percentile >= 100 else (
                f"percentile {config.range_percentile:g} of per-clip extremes")
            if mode == "int8" and config.cell_range is not None:
                ranges += f"; LSTM cell state capped at +-{config.cell_range:g}"
            meta.update(per_channel=config.per_channel, calibration=dict(calib, ranges=ranges))
        variants[name] = Variant(name, model, meta)
        return variants[name]

    integer_modes = [m for m in INTEGER_MODES if getattr(config, m)]
    full_meta = {"profile": "full"}
    add("f32", full, "f32", full_meta)  # always: parity measures every variant against it
    if config.full:
        if integer_modes:
            samples = calibration.full_samples(calib_clips, seq_len)
            for mode in integer_modes:
                add(mode, full, mode, full_meta, samples, [[s] for s in samples])
        if config.float16:
            add("float16", full, "float16", full_meta)
        if config.dynamic:
            add("dynamic", full, "dynamic", full_meta)
    for k in config.chunks:
        chunk_meta = {"profile": "chunked", "chunk": k, "seq_len": seq_len, "padding": model_config.padding,
                      "head": fw.head_dict()}
        function = chunk_function(fw, k)
        float_chunk = add(f"f32_chunk{k}", function, "f32", chunk_meta)
        if integer_modes:
            samples, groups = calibration.chunk_samples(chunked_runner(float_chunk), calib_clips,
                                                        config.chunk_calib_samples, seed=config.calib_seed)
        for mode in integer_modes:
            variant = add(f"{mode}_chunk{k}", function, mode, chunk_meta, samples, groups)
            variant.meta["calibration"]["samples"] = len(samples)
    return variants


def _state_pairs(io):
    """(input position, output position) of every state fed back between invokes."""
    from ..runtime.chunked import STATE_FEEDBACK

    outputs = {e["name"]: e["position"] for e in io["outputs"]}
    return [(e["position"], outputs[STATE_FEEDBACK[e["name"]]]) for e in io["inputs"] if e["name"] in STATE_FEEDBACK]


def _io_meta(io, profile):
    """Manifest fields describing the tensors: full models name input/output quantisation;
    chunked ones list every tensor with its position (the runner binds by position)."""
    if profile == "chunked":
        return {"inputs": io["inputs"], "outputs": io["outputs"]}
    meta = {}
    for key, entries in (("input", io["inputs"]), ("output", io["outputs"])):
        entry = entries[0]
        meta[key] = {"shape": entry["shape"], "dtype": entry["dtype"]}
        if "scale" in entry:
            meta[key].update(scale=entry["scale"], zero_point=entry["zero_point"])
    return meta


def chunked_runner(variant):
    """A LiteRT :class:`~sertiny.runtime.chunked.ChunkedRunner` for a chunked variant."""
    from ..runtime.chunked import ChunkedRunner
    from ..runtime.tflite import load_interpreter

    return ChunkedRunner(load_interpreter(variant.model), variant.meta)


def predict(variant, clips, seq_len, interpreter=None):
    """Probabilities (N, C) of a variant over normalised clips (any length each).

    ``interpreter`` defaults to LiteRT on the variant's bytes; pass another (e.g.
    :class:`~sertiny.export.tflm.MicroAsLite`) to run the same host code on it.
    """
    from ..runtime.tflite import load_interpreter

    interpreter = interpreter or load_interpreter(variant.model)
    if variant.profile == "chunked":
        from ..runtime.chunked import ChunkedRunner

        runner = ChunkedRunner(interpreter, variant.meta)
        return np.stack([runner.predict(c) for c in clips])
    return predict_full(interpreter, clips, seq_len)


def predict_full(interpreter, clips, seq_len):
    """A full-profile model over clips (each centre-cropped / zero-padded to T)."""
    from ..features.frames import fit_to_length
    from ..runtime.tflite import dequantize, quantize

    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    probs = []
    for clip in clips:
        interpreter.set_tensor(inp["index"], quantize(fit_to_length(clip, seq_len)[None], inp))
        interpreter.invoke()
        probs.append(dequantize(interpreter.get_tensor(out["index"]), out)[0])
    return np.stack(probs)
