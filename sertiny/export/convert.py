"""TFLite conversion of the export graphs, and flatbuffer surgery that shrinks the result.

The converter's output carries what a device never reads: a name string per tensor (most
of a naive unrolled model's bytes), a signature table, conversion metadata, and one empty
buffer entry per activation tensor. :func:`compact` removes all of it; the model's input and
output order is unchanged, so callers record each tensor's role *before* compacting
(:func:`io_details`), because the names that identify them are gone afterwards.
"""

import collections
import copy
import warnings

import numpy as np

from .._io import silenced_stderr_fd
from ..errors import ArtifactError, ParameterError, require

QUANT_MODES = ("f32", "int8", "int16x8", "float16", "dynamic")


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
    if mode not in QUANT_MODES:
        raise ParameterError(f"mode must be one of {QUANT_MODES}; got {mode!r}.")
    converter = tf.lite.TFLiteConverter.from_concrete_functions([function.get_concrete_function()], function)
    robust = mode == "int8" and (range_percentile < 100 or cell_range is not None)
    if mode == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif mode == "dynamic":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    elif mode in ("int8", "int16x8"):
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
    from .tflm import _litert_all_tensors_interpreter

    interpreter = _litert_all_tensors_interpreter(calibrated)
    model = _fb().convert_bytearray_to_object(bytearray(calibrated))
    tracked = [i for i, t in enumerate(model.subgraphs[0].tensors) if _has_range(t)]
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
    model = _fb().convert_bytearray_to_object(bytearray(calibrated))
    graph = model.subgraphs[0]
    names = [t.name.decode() if isinstance(t.name, bytes) else (t.name or "") for t in graph.tensors]
    decay = {i for i, n in enumerate(names) if n.split("/")[-1].split(";")[0].startswith("cell_decay")}
    cells = set(decay)
    for op in graph.operators:
        if _opcode_name(model, op) == "ADD" and decay & set(op.inputs):
            cells.update(op.outputs)
    return sorted(i for i in cells if _has_range(graph.tensors[i]))


def _has_range(tensor):
    q = tensor.quantization
    return q is not None and q.min is not None and len(q.min) == 1


def set_ranges(calibrated, ranges):
    """Write ``{tensor index: (min, max)}`` into a calibrated model's recorded ranges."""
    model = _fb().convert_bytearray_to_object(bytearray(calibrated))
    tensors = model.subgraphs[0].tensors
    for index, (low, high) in ranges.items():
        tensors[index].quantization.min = np.array([min(low, 0.0)], np.float32)
        tensors[index].quantization.max = np.array([max(high, 0.0)], np.float32)
    return bytes(_fb().convert_object_to_bytearray(model))


def _quantize_calibrated(calibrated, per_channel):
    """The converter's own last step (MLIR quantiser) on a model with recorded ranges."""
    tf = _tf()
    from tensorflow.lite.python.convert import (
        mlir_quantize,  # what TFLiteConverter calls after calibration
    )

    return bytes(mlir_quantize(calibrated, not per_channel, input_data_type=tf.int8, output_data_type=tf.int8))


# --------------------------------------------------------------------------- flatbuffer tools


# Ops the int8 quantiser can leave in float between a DEQUANTIZE and QUANTIZE pair, and the
# TFLite op version of their int8 kernel. ELU has an int8 kernel (a lookup table built from
# its own input and output scales) that the MLIR quantiser does not use; SPLIT / SPLIT_V
# are left in float when one output is unused (an LSTM's first step ignores its forget gate).
_ISLAND_OPS = {"ELU": 1, "SPLIT": 2, "SPLIT_V": 2}


def integer_islands(model_bytes):
    """Run the float islands of an int8 model in int8: ``int8 -> DEQUANTIZE -> op (float)
    -> QUANTIZE -> int8`` becomes ``int8 -> op (int8) -> int8`` for the ops of
    ``_ISLAND_OPS``, so the model is integer throughout (a microcontroller without an FPU
    runs it, and TFLite Micro links no float kernel for it).

    ELU takes the QUANTIZE's output as its own (its kernel requantises). SPLIT and SPLIT_V
    copy values, so their outputs take the input's quantisation and the QUANTIZE ops stay
    as int8 -> int8 requantisations. Returns ``model_bytes`` unchanged when there is no
    island. The float tensors the islands used are removed.
    """
    from tensorflow.lite.python import schema_py_generated as schema

    fb = _fb()
    model = fb.convert_bytearray_to_object(bytearray(model_bytes))
    graph = model.subgraphs[0]
    tensors = graph.tensors
    names = [_opcode_name(model, op) for op in graph.operators]
    producer = {t: i for i, op in enumerate(graph.operators) for t in op.outputs}
    consumers = collections.defaultdict(list)
    for i, op in enumerate(graph.operators):
        for t in op.inputs:
            consumers[t].append(i)
    is_int8 = lambda t: tensors[t].type == schema.TensorType.INT8
    dropped, bumped = set(), {}
    for i, op in enumerate(graph.operators):
        if names[i] not in _ISLAND_OPS:
            continue
        floats = [k for k, t in enumerate(op.inputs) if t >= 0 and tensors[t].type == schema.TensorType.FLOAT32]
        if len(floats) != 1 or producer.get(op.inputs[floats[0]]) is None:
            continue
        source_op = producer[op.inputs[floats[0]]]
        after = [c for t in op.outputs for c in consumers[t]]
        if (names[source_op] != "DEQUANTIZE" or not is_int8(graph.operators[source_op].inputs[0])
                or (names[i] == "ELU" and len(after) != 1)
                or any(names[c] != "QUANTIZE" or not is_int8(graph.operators[c].outputs[0]) for c in after)):
            continue
        dequantized = op.inputs[floats[0]]
        source = graph.operators[source_op].inputs[0]
        op.inputs[floats[0]] = source
        if names[i] == "ELU":
            (quantize,) = after
            op.outputs[0] = graph.operators[quantize].outputs[0]
            dropped.add(quantize)
        else:
            for t in op.outputs:
                tensors[t].type = schema.TensorType.INT8
                tensors[t].quantization = copy.deepcopy(tensors[source].quantization)
        if consumers[dequantized] == [i]:
            dropped.add(source_op)
        bumped[op.opcodeIndex] = _ISLAND_OPS[names[i]]
    if not bumped:
        return model_bytes
    for index, version in bumped.items():
        model.operatorCodes[index].version = max(model.operatorCodes[index].version, version)
    graph.operators = [op for i, op in enumerate(graph.operators) if i not in dropped]
    _drop_unused_tensors(graph)
    return bytes(fb.convert_object_to_bytearray(model))


def _drop_unused_tensors(graph):
    """Remove the tensors no op and no model input or output refers to (TFLite Micro would
    still plan arena space for them), renumbering the rest."""
    used = {t for op in graph.operators for t in list(op.inputs) + list(op.outputs) if t >= 0}
    used.update(graph.inputs)
    used.update(graph.outputs)
    keep = sorted(used)
    new_index = {old: new for new, old in enumerate(keep)}
    remap = lambda ids: [new_index[t] if t >= 0 else t for t in ids]
    for op in graph.operators:
        op.inputs, op.outputs = remap(op.inputs), remap(op.outputs)
        if op.intermediates is not None:
            op.intermediates = remap(op.intermediates)
    graph.inputs, graph.outputs = remap(graph.inputs), remap(graph.outputs)
    graph.tensors = [graph.tensors[t] for t in keep]



def _fb():
    return require("tensorflow.lite.tools.flatbuffer_utils", "train")


def _opcode_name(model, operator):
    from tensorflow.lite.python import schema_py_generated as schema

    code = model.operatorCodes[operator.opcodeIndex]
    builtin = max(code.builtinCode, code.deprecatedBuiltinCode)
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    return names.get(builtin, f"BUILTIN_{builtin}") if code.customCode is None else code.customCode.decode()


def op_counts(model_bytes):
    """``Counter`` of operator names over all subgraphs (read from the flatbuffer, not an
    interpreter, so delegate nodes are not counted)."""
    model = _fb().convert_bytearray_to_object(bytearray(model_bytes))
    return collections.Counter(_opcode_name(model, op) for sg in model.subgraphs for op in sg.operators)


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
    :func:`compact` removes the names.
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


def compact(model_bytes):
    """Strip names, signatures, descriptions and metadata; share one empty buffer.

    Every activation tensor of a converted model points at its own empty buffer entry;
    the schema reserves buffer 0 as "no data", so they can all point there. Constant data
    and the input/output order are untouched.
    """
    fb = _fb()
    model = fb.convert_bytearray_to_object(bytearray(model_bytes))
    fb.strip_strings(model)
    model.metadata = None
    model.metadataBuffer = None
    _share_empty_buffers(model)
    return bytes(fb.convert_object_to_bytearray(model))


def tie_quantization(model_bytes, pairs):
    """Give input tensors the quantisation of output tensors: ``pairs`` of (input position,
    output position) in subgraph 0's input/output lists.

    A chunked model's state input and state output are calibrated separately on the same
    values, so their scales differ by a few percent and every hand-over between invokes
    would round once more. With the output's quantisation on the input the hand-over is a
    plain copy. Safe for the consumers here (MUL, and FULLY_CONNECTED without bias, whose
    multipliers are derived from tensor scales when the interpreter prepares the op).
    """
    import copy

    fb = _fb()
    model = fb.convert_bytearray_to_object(bytearray(model_bytes))
    subgraph = model.subgraphs[0]
    for input_position, output_position in pairs:
        source = subgraph.tensors[subgraph.outputs[output_position]]
        subgraph.tensors[subgraph.inputs[input_position]].quantization = copy.deepcopy(source.quantization)
    return bytes(fb.convert_object_to_bytearray(model))


def _share_empty_buffers(model):
    def empty(buffer):
        return buffer is None or ((buffer.data is None or len(buffer.data) == 0) and not buffer.size)

    keep = [0]
    remap = {0: 0}
    for index, buffer in enumerate(model.buffers):
        if index == 0:
            continue
        if empty(buffer):
            remap[index] = 0
        else:
            remap[index] = len(keep)
            keep.append(index)
    for subgraph in model.subgraphs:
        for tensor in subgraph.tensors:
            tensor.buffer = remap[tensor.buffer]
    model.buffers = [model.buffers[i] for i in keep]


def sha256(data):
    import hashlib

    return hashlib.sha256(data).hexdigest()


def describe(model_bytes):
    """Size, op count and op histogram of a model (what the bundle and report record)."""
    counts = op_counts(model_bytes)
    return {"bytes": len(model_bytes), "ops": sum(counts.values()), "op_types": dict(sorted(counts.items()))}


