"""TensorFlow Lite for Microcontrollers checks: arena size, op support, agreement with LiteRT.

TFLite Micro itself is not cross-compiled here; the ``tflite-micro`` Python package wraps
the same C++ interpreter, kernels and memory planner a firmware links, so what fits its
arena here fits on a device (plus the firmware's own stack and globals).
"""

import contextlib
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from .._io import silenced_stderr_fd
from ..errors import SertinyError, require

ARENA_SEARCH_LIMIT = 64 << 20  # a model needing more than 64 MB is not a microcontroller model
ARENA_METHOD = ("the smallest tensor arena with which TFLite Micro (host build) allocates the model and "
                "invokes it once, found by bisection")
# The child imports this sertiny, whatever the caller's working directory holds.
_PACKAGE_PARENT = Path(__file__).resolve().parents[2]


def _runtime():
    return require("tflite_micro.python.tflite_micro.runtime", "train")


def micro_interpreter(model_bytes, arena_size):
    """A TFLite Micro interpreter with ``arena_size`` bytes of tensor arena."""
    return _runtime().Interpreter.from_bytes(bytes(model_bytes), arena_size=int(arena_size))


class _Probe:
    """Asks a child process (:mod:`._tflm_probe`) whether the model fits in N bytes.

    A too-small arena can crash TFLite Micro; a crash counts as "does not fit" and the next
    question goes to a new child. A child process rather than a fork, because the caller
    may be running JAX's threads.
    """

    def __init__(self, model_path, n_inputs):
        self._command = [sys.executable, "-m", "sertiny.export._tflm_probe", str(model_path), str(int(n_inputs))]
        self._child = None

    def fits(self, arena_size):
        """``(fits, TFLite Micro's messages when it does not)``."""
        if self._child is None:
            self._child = subprocess.Popen(self._command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                           stderr=subprocess.DEVNULL, text=True, cwd=_PACKAGE_PARENT)
        try:
            self._child.stdin.write(f"{int(arena_size)}\n")
            self._child.stdin.flush()
            answer = self._child.stdout.readline()
        except BrokenPipeError:
            answer = ""
        if not answer:  # the child died on this arena
            self.close()
            return False, f"TFLite Micro crashed with a {arena_size}-byte arena"
        return answer.startswith("fits"), answer.partition(" ")[2].strip()

    def close(self):
        if self._child is not None:
            with contextlib.suppress(OSError):  # a child that crashed has closed its end
                self._child.stdin.close()
            self._child.stdout.close()
            self._child.wait()
            self._child = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def arena_size(model_bytes, io):
    """The TFLite Micro tensor arena (bytes) the model needs: :data:`ARENA_METHOD`.

    The one measurement of the arena in sertiny: the exporter records it in the bundle
    (``arena_bytes``, the C header's ``#define``), and the benchmark reports that figure
    or, for a variant without one, calls this. ``io["inputs"]`` lists the model's inputs
    (each is set to its zero point).

    Raises :class:`~sertiny.errors.SertinyError` naming the cause when the model does not
    run under TFLite Micro at all (an unsupported op or op configuration).
    """
    with tempfile.TemporaryDirectory(prefix="sertiny-tflm-") as tmp:
        path = Path(tmp) / "model.tflite"
        path.write_bytes(bytes(model_bytes))
        with _Probe(path, len(io["inputs"])) as probe:
            high = 16 << 10
            while not (answer := probe.fits(high))[0]:
                if high >= ARENA_SEARCH_LIMIT:
                    raise SertinyError(f"The model does not run under TFLite Micro: {answer[1] or 'unknown failure'}")
                high *= 2
            low = 0  # invariant: low fails (or is 0), high fits
            while high - low > 1:
                mid = (low + high) // 2
                if probe.fits(mid)[0]:
                    high = mid
                else:
                    low = mid
    return high


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
