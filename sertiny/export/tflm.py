"""TensorFlow Lite for Microcontrollers checks: arena size, op support, agreement with LiteRT.

TFLite Micro itself is not cross-compiled here; the ``tflite-micro`` Python package wraps
the same C++ interpreter, kernels and memory planner a firmware links, so what fits its
arena here fits on a device (plus the firmware's own stack and globals).
"""

import os

import numpy as np

from .._io import silenced_stderr_fd
from ..errors import require

ARENA_SEARCH_LIMIT = 64 << 20  # a model needing more than 64 MB is not a microcontroller model


def _runtime():
    return require("tflite_micro.python.tflite_micro.runtime", "train")


def micro_interpreter(model_bytes, arena_size):
    """A TFLite Micro interpreter with ``arena_size`` bytes of tensor arena."""
    return _runtime().Interpreter.from_bytes(bytes(model_bytes), arena_size=int(arena_size))


def _fits(model_bytes, arena_size, inputs):
    """True when the model allocates *and* invokes within ``arena_size`` bytes.

    Each probe runs in a forked child: with some too-small arenas TFLite Micro's failure
    path crashes the process (seen with per-channel models, and with vit models whose
    memory planner runs out of room) instead of returning an error, and a crash must count
    as "does not fit" rather than end the export.
    """
    if not hasattr(os, "fork"):  # pragma: no cover - Windows: probe in-process
        return _probe(model_bytes, arena_size, inputs)
    pid = os.fork()
    if pid == 0:  # child: report by exit status only, never return into the caller's stack
        import faulthandler

        faulthandler.disable()  # an expected crash here is an answer, not a traceback to print
        try:
            code = 0 if _probe(model_bytes, arena_size, inputs) else 1
        except BaseException:  # noqa: BLE001 - any failure means "does not fit"
            code = 1
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0


def _probe(model_bytes, arena_size, inputs):
    try:
        with silenced_stderr_fd():
            interpreter = micro_interpreter(model_bytes, arena_size)
            for position, value in enumerate(inputs):
                interpreter.set_input(value, position)
            interpreter.invoke()
        return True
    except (RuntimeError, ValueError):
        return False


def zero_inputs(io):
    """Zero-point-valued inputs (the quantised zero) for every model input of ``io``."""
    return [np.full(e["shape"], e.get("zero_point", 0), dtype=e["dtype"]) for e in io["inputs"]]


def arena_size(model_bytes, io):
    """The smallest tensor arena (bytes) the model needs under TFLite Micro, by bisection.

    Raises :class:`~sertiny.errors.SertinyError` naming the cause when the model does not
    run under TFLite Micro at all (an unsupported op or op configuration).
    """
    from ..errors import SertinyError

    inputs = zero_inputs(io)
    high = 16 << 10
    while not _fits(model_bytes, high, inputs):
        if high >= ARENA_SEARCH_LIMIT:
            raise SertinyError(f"The model does not run under TFLite Micro: {_failure(model_bytes, inputs)}")
        high *= 2
    low = 0  # invariant: low fails (or is 0), high fits
    while high - low > 1:
        mid = (low + high) // 2
        if _fits(model_bytes, mid, inputs):
            high = mid
        else:
            low = mid
    return high


def _failure(model_bytes, inputs):
    """The interpreter's own error message with a generous arena, for the exception text."""
    try:
        interpreter = micro_interpreter(model_bytes, ARENA_SEARCH_LIMIT)
        for position, value in enumerate(inputs):
            interpreter.set_input(value, position)
        interpreter.invoke()
    except (RuntimeError, ValueError) as exc:
        return str(exc)
    return "unknown failure"


def run_micro(model_bytes, inputs, arena, n_outputs):
    """Invoke once under TFLite Micro; returns the ``n_outputs`` outputs in model order."""
    with silenced_stderr_fd():
        interpreter = micro_interpreter(model_bytes, arena)
        for position, value in enumerate(inputs):
            interpreter.set_input(np.ascontiguousarray(value), position)
        interpreter.invoke()
    return [np.array(interpreter.get_output(i)) for i in range(n_outputs)]


def run_litert(model_bytes, inputs):
    """Invoke once under LiteRT (the Pi's runtime); returns the outputs in model order."""
    from ..runtime.tflite import load_interpreter

    interpreter = load_interpreter(model_bytes)
    for detail, value in zip(interpreter.get_input_details(), inputs):
        interpreter.set_tensor(detail["index"], np.ascontiguousarray(value))
    interpreter.invoke()
    return [np.array(interpreter.get_tensor(d["index"])) for d in interpreter.get_output_details()]


def max_lsb_difference(model_bytes, input_sets, arena):
    """Largest |TFLite Micro - LiteRT| output difference in LSBs over ``input_sets``.

    Both interpreters get the same integer inputs; the reference kernels of TFLite Micro
    and the optimised ones of LiteRT may round differently, by one LSB at most when both
    implement the TFLite quantisation spec.
    """
    worst = 0
    for inputs in input_sets:
        lite = run_litert(model_bytes, inputs)
        micro = run_micro(model_bytes, inputs, arena, len(lite))
        for m, r in zip(micro, lite):
            worst = max(worst, int(np.abs(m.astype(np.int32) - r.astype(np.int32)).max()))
    return worst


# --------------------------------------------------------------------------- per-op conformance


def _single_op_model(model, subgraph, op):
    """A one-op model computing ``op`` of ``model``: its non-constant inputs become the
    model's inputs, its outputs the model's outputs; constants keep their buffers."""
    import copy

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


def op_conformance(model_bytes, inputs):
    """Largest |TFLite Micro - LiteRT| difference, in LSBs, of any op given identical inputs.

    The whole model is run once under LiteRT (reference values for every intermediate
    tensor); then every op is cut out as a one-op model and run by both interpreters on
    those same int8 inputs. End to end the two may drift further apart than one LSB: in
    an unrolled recurrence a one-LSB rounding difference in one step's matmul reaches the
    next TANH, whose output scale (1/128) is finer than its input's. Per op, both must
    implement the TFLite quantisation spec to within one LSB.

    Returns ``(max_lsb, worst_op_name)``.
    """
    from tensorflow.lite.tools import flatbuffer_utils as fb

    from .convert import _opcode_name

    values = _all_tensors_litert(model_bytes, inputs)
    model = fb.convert_bytearray_to_object(bytearray(model_bytes))
    subgraph = model.subgraphs[0]
    worst, worst_op = 0, None
    for op in subgraph.operators:
        one, feeds = _single_op_model(model, subgraph, op)
        data = bytes(fb.convert_object_to_bytearray(one))
        op_inputs = [values[t] for t in feeds]
        lite = run_litert(data, op_inputs)
        micro = run_micro(data, op_inputs, _generous_arena(data), len(lite))
        for m, r in zip(micro, lite):
            diff = int(np.abs(m.astype(np.int64) - r.astype(np.int64)).max()) if m.size else 0
            if diff > worst:
                worst, worst_op = diff, _opcode_name(model, op)
    return worst, worst_op


def _generous_arena(model_bytes):
    """Room for any single op of these models (its tensors plus kernel scratch)."""
    return 4 << 20


def _litert_all_tensors_interpreter(model_bytes):
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


def _all_tensors_litert(model_bytes, inputs):
    """Every tensor's value after one LiteRT invoke."""
    interpreter = _litert_all_tensors_interpreter(model_bytes)
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


class MicroAsLite:
    """A TFLite Micro interpreter behind the slice of LiteRT's API the runners use
    (``get_input_details``, ``set_tensor``, ``invoke``, ``get_tensor``), so the same host
    code (:class:`~sertiny.runtime.chunked.ChunkedRunner`, full-model prediction) can run a
    model end to end under TFLite Micro for comparison with LiteRT."""

    def __init__(self, model_bytes, arena):
        from ..runtime.tflite import load_interpreter

        lite = load_interpreter(model_bytes)  # tensor shapes and quantisation, by position
        self._inputs = [dict(d, index=("in", i)) for i, d in enumerate(lite.get_input_details())]
        self._outputs = [dict(d, index=("out", i)) for i, d in enumerate(lite.get_output_details())]
        with silenced_stderr_fd():
            self._micro = micro_interpreter(model_bytes, arena)

    def get_input_details(self):
        return self._inputs

    def get_output_details(self):
        return self._outputs

    def set_tensor(self, index, value):
        _, position = index
        self._micro.set_input(np.ascontiguousarray(value), position)

    def invoke(self):
        self._micro.invoke()

    def get_tensor(self, index):
        _, position = index
        return np.array(self._micro.get_output(position))
