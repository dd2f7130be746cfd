"""TFLite flatbuffer tools: read, edit and look inside converted models.

The converter's output carries what a device never reads: a name string per tensor (most
of a naive unrolled model's bytes), a signature table, conversion metadata, and one empty
buffer entry per activation tensor. :func:`compact` removes all of it; the model's input and
output order is unchanged, so callers record each tensor's role *before* compacting
(:func:`sertiny.export.convert.io_details`), because the names that identify them are gone
afterwards. The other edits: :func:`integer_islands` (float islands of an int8 model run in
int8), :func:`tie_quantization` (a chunked model's state input takes its output's scale),
:func:`set_ranges` (calibrated activation ranges). For measuring: :func:`op_counts`,
:func:`describe`, :func:`opcode_name`, :func:`single_op_model` (one op cut out as a model)
and :func:`all_tensor_values` (every intermediate tensor of one LiteRT invoke).

Used by conversion (:mod:`sertiny.export.convert`) and the TFLite Micro checks
(:mod:`sertiny.export.tflm`). Needs TensorFlow's flatbuffer schema (the ``train`` extra).
"""

import collections
import copy

import numpy as np

from ..errors import require


def flatbuffer_utils():
    """TensorFlow's flatbuffer reader and writer (``tensorflow.lite.tools.flatbuffer_utils``)."""
    return require("tensorflow.lite.tools.flatbuffer_utils", "train")


def read_model(model_bytes):
    """Model bytes -> the schema's mutable object tree (``ModelT``)."""
    return flatbuffer_utils().convert_bytearray_to_object(bytearray(model_bytes))


def write_model(model):
    """A ``ModelT`` -> model bytes."""
    return bytes(flatbuffer_utils().convert_object_to_bytearray(model))


def opcode_name(model, operator):
    """The operator's name (``FULLY_CONNECTED``, or a custom op's own name)."""
    from tensorflow.lite.python import schema_py_generated as schema

    code = model.operatorCodes[operator.opcodeIndex]
    builtin = max(code.builtinCode, code.deprecatedBuiltinCode)
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    return names.get(builtin, f"BUILTIN_{builtin}") if code.customCode is None else code.customCode.decode()


def op_counts(model_bytes):
    """``Counter`` of operator names over all subgraphs (read from the flatbuffer, not an
    interpreter, so delegate nodes are not counted)."""
    model = read_model(model_bytes)
    return collections.Counter(opcode_name(model, op) for sg in model.subgraphs for op in sg.operators)


def describe(model_bytes):
    """Size, op count and op histogram of a model (what the bundle and report record)."""
    counts = op_counts(model_bytes)
    return {"bytes": len(model_bytes), "ops": sum(counts.values()), "op_types": dict(sorted(counts.items()))}


def compact(model_bytes):
    """Strip names, signatures, descriptions and metadata; share one empty buffer.

    Every activation tensor of a converted model points at its own empty buffer entry;
    the schema reserves buffer 0 as "no data", so they can all point there. Constant data
    and the input/output order are untouched.
    """
    model = read_model(model_bytes)
    flatbuffer_utils().strip_strings(model)
    model.metadata = None
    model.metadataBuffer = None
    _share_empty_buffers(model)
    return write_model(model)


def tie_quantization(model_bytes, pairs):
    """Give input tensors the quantisation of output tensors: ``pairs`` of (input position,
    output position) in subgraph 0's input/output lists.

    A chunked model's state input and state output are calibrated separately on the same
    values, so their scales differ by a few percent and every hand-over between invokes
    would round once more. With the output's quantisation on the input the hand-over is a
    plain copy. Safe for the consumers here (MUL, and FULLY_CONNECTED without bias, whose
    multipliers are derived from tensor scales when the interpreter prepares the op).
    """
    model = read_model(model_bytes)
    subgraph = model.subgraphs[0]
    for input_position, output_position in pairs:
        source = subgraph.tensors[subgraph.outputs[output_position]]
        subgraph.tensors[subgraph.inputs[input_position]].quantization = copy.deepcopy(source.quantization)
    return write_model(model)


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


# Ops the int8 quantiser can leave in float between a DEQUANTIZE and QUANTIZE pair, and the
# TFLite op version of their int8 kernel. ELU has an int8 kernel (a lookup table built from
# its own input and output scales) that the MLIR quantiser does not use; SPLIT / SPLIT_V
# are left in float when one output is unused (an LSTM's first step ignores its forget gate).
ISLAND_OPS = {"ELU": 1, "SPLIT": 2, "SPLIT_V": 2}


def integer_islands(model_bytes):
    """Run the float islands of an int8 model in int8: ``int8 -> DEQUANTIZE -> op (float)
    -> QUANTIZE -> int8`` becomes ``int8 -> op (int8) -> int8`` for the ops of
    ``ISLAND_OPS``, so the model is integer throughout (a microcontroller without an FPU
    runs it, and TFLite Micro links no float kernel for it).

    ELU takes the QUANTIZE's output as its own (its kernel requantises). SPLIT and SPLIT_V
    copy values, so their outputs take the input's quantisation and the QUANTIZE ops stay
    as int8 -> int8 requantisations. Returns ``model_bytes`` unchanged when there is no
    island. The float tensors the islands used are removed.
    """
    from tensorflow.lite.python import schema_py_generated as schema

    model = read_model(model_bytes)
    graph = model.subgraphs[0]
    tensors = graph.tensors
    names = [opcode_name(model, op) for op in graph.operators]
    producer = {t: i for i, op in enumerate(graph.operators) for t in op.outputs}
    consumers = collections.defaultdict(list)
    for i, op in enumerate(graph.operators):
        for t in op.inputs:
            consumers[t].append(i)
    is_int8 = lambda t: tensors[t].type == schema.TensorType.INT8
    dropped, bumped = set(), {}
    for i, op in enumerate(graph.operators):
        if names[i] not in ISLAND_OPS:
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
        bumped[op.opcodeIndex] = ISLAND_OPS[names[i]]
    if not bumped:
        return model_bytes
    for index, version in bumped.items():
        model.operatorCodes[index].version = max(model.operatorCodes[index].version, version)
    graph.operators = [op for i, op in enumerate(graph.operators) if i not in dropped]
    _drop_unused_tensors(graph)
    return write_model(model)


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


def has_range(tensor):
    """Whether a calibrated model recorded one (min, max) range for the tensor."""
    q = tensor.quantization
    return q is not None and q.min is not None and len(q.min) == 1


def set_ranges(calibrated, ranges):
    """Write ``{tensor index: (min, max)}`` into a calibrated model's recorded ranges."""
    model = read_model(calibrated)
    tensors = model.subgraphs[0].tensors
    for index, (low, high) in ranges.items():
        tensors[index].quantization.min = np.array([min(low, 0.0)], np.float32)
        tensors[index].quantization.max = np.array([max(high, 0.0)], np.float32)
    return write_model(model)


def single_op_model(model, subgraph, op):
    """A one-op model computing ``op`` of ``model``: its non-constant inputs become the
    model's inputs, its outputs the model's outputs; constants keep their buffers.
    Returns ``(ModelT, the original indices of its input tensors)``."""
    from tensorflow.lite.python import schema_py_generated as schema

    used = [t for t in list(op.inputs) + list(op.outputs) if t >= 0]
    index = {t: i for i, t in enumerate(dict.fromkeys(used))}
    buffers = [schema.BufferT()]
    tensors = []
    for t in index:
        tensor = copy.copy(subgraph.tensors[t])
        data = model.buffers[tensor.buffer].data if tensor.buffer else None
        if data is not None and len(data):
            buffers.append(model.buffers[tensor.buffer])
            tensor.buffer = len(buffers) - 1
        else:
            tensor.buffer = 0
        tensors.append(tensor)
    is_const = lambda t: tensors[index[t]].buffer != 0
    new_op = copy.copy(op)
    new_op.inputs = [index[t] if t >= 0 else -1 for t in op.inputs]
    new_op.outputs = [index[t] for t in op.outputs]
    sub = schema.SubGraphT()
    sub.tensors = tensors
    sub.operators = [new_op]
    sub.inputs = [index[t] for t in dict.fromkeys(op.inputs) if t >= 0 and not is_const(t)]
    sub.outputs = [index[t] for t in op.outputs]
    out = schema.ModelT()
    out.version = model.version
    out.operatorCodes = model.operatorCodes
    out.buffers = buffers
    out.subgraphs = [sub]
    return out, [t for t in dict.fromkeys(op.inputs) if t >= 0 and not is_const(t)]


def all_tensors_interpreter(model_bytes):
    """A LiteRT interpreter that keeps every intermediate tensor (delegates off)."""
    try:
        from ai_edge_litert.interpreter import Interpreter, OpResolverType
    except ImportError:  # a training machine without LiteRT: TensorFlow's own interpreter
        from tensorflow.lite import Interpreter
        from tensorflow.lite.experimental import OpResolverType

    interpreter = Interpreter(model_content=bytes(model_bytes), experimental_preserve_all_tensors=True,
                              experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    interpreter.allocate_tensors()
    return interpreter


def all_tensor_values(model_bytes, inputs):
    """Every tensor's value after one LiteRT invoke."""
    interpreter = all_tensors_interpreter(model_bytes)
    for detail, value in zip(interpreter.get_input_details(), inputs):
        interpreter.set_tensor(detail["index"], np.ascontiguousarray(value))
    interpreter.invoke()
    values = {}
    for detail in interpreter.get_tensor_details():
        try:
            values[detail["index"]] = interpreter.get_tensor(detail["index"])
        except ValueError:  # tensors without data (optional inputs)
            continue
    return values
