"""TFLite conversion of the export graphs: float, float16, dynamic-range and integer models.

Integer models are calibrated on representative samples; with ``range_percentile < 100``
or ``cell_range`` the activation ranges are set here (:func:`robust_ranges`,
:func:`cell_state_tensors`) before the converter's own quantiser runs. The flatbuffer
edits that shrink and fix up the result live in :mod:`sertiny.export.flatbuffer`;
:func:`io_details` records each input's and output's role while the names that identify
them are still in the model (:func:`~sertiny.export.flatbuffer.compact` removes them).
"""

import warnings

import numpy as np

from .._io import silenced_stderr_fd
from ..errors import ArtifactError, ParameterError, require
from ..runtime.variant import INTEGER_MODES, MODES
from .flatbuffer import all_tensors_interpreter, has_range, integer_islands, opcode_name, read_model, set_ranges



def _tf():
    return require("tensorflow", "train")


def convert(function, mode="f32", *, representative=None, per_channel=False, clip_groups=None, range_percentile=100.0,
            cell_range=None):
    """Convert a ``tf.function`` with a fixed input signature to TFLite model bytes.

    Args:
        function: from :mod:`sertiny.export.graph`.
        mode: ``f32``; ``int8`` (full integer: int8 weights, activations, inputs and
            outputs, calibrated on ``representative``); ``int16x8`` (the same with int16
            activations, inputs and outputs); ``float16`` (float16 weights);
            ``dynamic`` (int8 weights, float activations).
        representative: for integer modes, a list of samples, each a list of float32
            arrays in the function's input order.
        per_channel: int8 weights with one scale per output channel. Off by default:
            TFLite Micro then keeps a multiplier and shift per channel per op in its arena,
            which in an unrolled graph costs more than the whole weight set.
        clip_groups, range_percentile: for ``int8`` with ``range_percentile < 100``, each
            activation's int8 range is not the min/max over all samples but the
            ``range_percentile``-th percentile of its per-clip maxima (and the mirrored one
            of its per-clip minima); ``clip_groups`` lists each calibration clip's samples.
            See :func:`robust_ranges`.
        cell_range: for ``int8``, cap the LSTM cell state's range at +-``cell_range``
            (see :func:`cell_state_tensors`); None keeps the calibrated range.
    """
    tf = _tf()
    if mode not in MODES:
        raise ParameterError(f"mode must be one of {MODES}; got {mode!r}.")
    converter = tf.lite.TFLiteConverter.from_concrete_functions([function.get_concrete_function()], function)
    robust = mode == "int8" and (range_percentile < 100 or cell_range is not None)
    if mode == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif mode == "dynamic":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    elif mode in INTEGER_MODES:
        if not representative:
            raise ArtifactError("The representative set for integer calibration is empty: no clips to calibrate on.")
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: iter(representative)
        wide = mode == "int16x8"
        converter.target_spec.supported_ops = [
            tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8 if wide
            else tf.lite.OpsSet.TFLITE_BUILTINS_INT8
        ]
        converter.inference_input_type = converter.inference_output_type = tf.int16 if wide else tf.int8
        converter._experimental_disable_per_channel = not per_channel
        converter._experimental_calibrate_only = robust
    with silenced_stderr_fd(), warnings.catch_warnings():
        # Integer inputs need no input statistics here: they come from calibration.
        warnings.filterwarnings("ignore", message="Statistics for quantized inputs were expected")
        model = bytes(converter.convert())
        if robust:
            ranges = robust_ranges(model, clip_groups, range_percentile)
            if cell_range is not None:
                for index in cell_state_tensors(model):
                    low, high = ranges[index]
                    ranges[index] = (max(low, -cell_range), min(high, cell_range))
            model = _quantize_calibrated(set_ranges(model, ranges), per_channel)
    if mode == "int8":
        model = integer_islands(model)  # a no-op unless the converter left float ops behind
    return model


def robust_ranges(calibrated, clip_groups, percentile):
    """Per-tensor activation ranges that ignore a few extreme clips.

    The converter's calibration keeps the min and max of every activation over all
    samples, so one unusual clip widens a range, and with it the int8 step, for every
    clip; in a recurrence the coarser step of the cell state then adds rounding noise at
    every frame. Here each clip contributes its own min and max, and the range is the
    ``percentile``-th percentile of the clips' maxima (and the ``100 - percentile``-th of
    their minima); values beyond it saturate. ``calibrated`` is the converter's
    calibrate-only output (a float model), run here with every tensor kept.
    """
    if not clip_groups:
        raise ArtifactError("The representative set for integer calibration is empty: no clips to calibrate on.")
    interpreter = all_tensors_interpreter(calibrated)
    model = read_model(calibrated)
    tracked = [i for i, t in enumerate(model.subgraphs[0].tensors) if has_range(t)]
    inputs = interpreter.get_input_details()
    lows, highs = np.empty((len(clip_groups), len(tracked))), np.empty((len(clip_groups), len(tracked)))
    for g, samples in enumerate(clip_groups):
        low, high = np.full(len(tracked), np.inf), np.full(len(tracked), -np.inf)
        for sample in samples:
            for detail, value in zip(inputs, sample):
                interpreter.set_tensor(detail["index"], value)
            interpreter.invoke()
            values = [interpreter.get_tensor(i) for i in tracked]
            low = np.minimum(low, [v.min() for v in values])
            high = np.maximum(high, [v.max() for v in values])
        lows[g], highs[g] = low, high
    return dict(zip(tracked, zip(np.percentile(lows, 100 - percentile, axis=0),
                                 np.percentile(highs, percentile, axis=0))))


def cell_state_tensors(calibrated):
    """Indices of the LSTM cell-state tensors of a calibrated model: every ``f * c``
    (named ``cell_decay`` by :mod:`sertiny.export.graph`) and the ``ADD`` that sums it
    with ``i * g``.

    The cell state is the one tensor whose int8 rounding error the recurrence integrates
    over every frame (results/export.md), and a wide range makes that step coarse; but
    ``h = o * tanh(c)`` barely changes for |c| beyond 3-4, so capping its range trades
    rare saturation for a finer step on every frame.
    """
    model = read_model(calibrated)
    graph = model.subgraphs[0]
    names = [t.name.decode() if isinstance(t.name, bytes) else (t.name or "") for t in graph.tensors]
    decay = {i for i, n in enumerate(names) if n.split("/")[-1].split(";")[0].startswith("cell_decay")}
    cells = set(decay)
    for op in graph.operators:
        if opcode_name(model, op) == "ADD" and decay & set(op.inputs):
            cells.update(op.outputs)
    return sorted(i for i in cells if has_range(graph.tensors[i]))


def _quantize_calibrated(calibrated, per_channel):
    """The converter's own last step (MLIR quantiser) on a model with recorded ranges."""
    tf = _tf()
    from tensorflow.lite.python.convert import (
        mlir_quantize,  # what TFLiteConverter calls after calibration
    )

    return bytes(mlir_quantize(calibrated, not per_channel, input_data_type=tf.int8, output_data_type=tf.int8))


def output_keys(function):
    """Converted output tensor name -> the function's output key.

    The converter names outputs after the graph's ``Identity`` nodes; the concrete
    function's structured outputs say which key each of them is.
    """
    outputs = function.get_concrete_function().structured_outputs
    return {tensor.name.split(":")[0]: key for key, tensor in outputs.items()}


def io_details(model_bytes, function=None):
    """Inputs and outputs of subgraph 0 in the model's order, with names and quantisation.

    Each entry: ``{"name", "position", "shape", "dtype"}`` plus ``"scale"`` and
    ``"zero_point"`` for integer tensors. Inputs keep their ``TensorSpec`` names; outputs
    are renamed to the ``function``'s output keys. Call it on the uncompacted model:
    :func:`~sertiny.export.flatbuffer.compact` removes the names.
    """
    from ..runtime.tflite import load_interpreter

    interpreter = load_interpreter(model_bytes)
    rename = output_keys(function) if function is not None else {}
    out = {}
    for kind, details in (("inputs", interpreter.get_input_details()), ("outputs", interpreter.get_output_details())):
        out[kind] = [_entry(position, d, rename.get(d["name"], d["name"])) for position, d in enumerate(details)]
    return out


def _entry(position, detail, name):
    entry = {"name": name, "position": position, "shape": [int(s) for s in detail["shape"]],
             "dtype": np.dtype(detail["dtype"]).name}
    if np.issubdtype(detail["dtype"], np.integer):
        scale, zero_point = detail["quantization"]
        entry.update(scale=float(scale), zero_point=int(zero_point))
    return entry
