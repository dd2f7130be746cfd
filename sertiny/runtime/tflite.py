"""Find a TFLite interpreter and move tensors in and out of int8.

Runtimes are tried lightest-first: ``ai_edge_litert`` (LiteRT, the maintained successor),
``tflite_runtime`` (the last release, 2.14, still the one that runs on Raspberry Pi OS
Bookworm under qemu in CI), then ``tensorflow.lite`` on a training machine.
"""

import numpy as np

from ..errors import ArtifactError, MissingDependencyError

# Runtime name -> the module holding its Interpreter, lightest first.
_INTERPRETER_MODULES = {
    "ai_edge_litert": "ai_edge_litert.interpreter",
    "tflite_runtime": "tflite_runtime.interpreter",
    "tensorflow": "tensorflow.lite",
}
RUNTIMES = tuple(_INTERPRETER_MODULES)


def interpreter_class(prefer=None):
    """``(Interpreter class, runtime name)`` of the first importable runtime."""
    import importlib

    names = [r for r in _INTERPRETER_MODULES.items() if prefer is None or r[0] == prefer]
    for name, module in names:
        try:
            mod = importlib.import_module(module)
        except ImportError:
            continue
        return mod.Interpreter, name
    wanted = prefer or "ai-edge-litert or tflite-runtime"
    raise MissingDependencyError(
        f"No TFLite runtime found ({wanted}). Install one with: pip install \"sertiny[pi]\""
    )


KERNELS = ("optimized", "reference")


def load_interpreter(model, *, num_threads=None, prefer=None, source=None, kernels="optimized"):
    """An allocated interpreter for a .tflite path or model bytes; clear error if truncated.

    ``source`` names the file in error messages when ``model`` is bytes read from it.
    ``kernels="reference"`` selects TFLite's portable reference kernels (no XNNPACK, no
    SIMD paths): slower, but for a given runtime version they compute the same bits on every
    CPU, which cross-device checks need. The optimized kernels of different builds round
    int8 requantisation differently in the last bit, and an int8 LSTM carries such a bit
    through every step.
    """
    from .._config import check_choice
    from .._native_logs import quiet_native_logs

    check_choice("load_interpreter", "kernels", kernels, KERNELS)
    cls, _ = interpreter_class(prefer)
    kwargs = {"num_threads": num_threads} if num_threads else {}
    if kernels == "reference":
        import sys

        kwargs["experimental_op_resolver_type"] = sys.modules[cls.__module__].OpResolverType.BUILTIN_REF
    is_bytes = isinstance(model, (bytes, bytearray))
    try:
        with quiet_native_logs():  # the runtime announces its XNNPACK delegate on fd 2
            if is_bytes:
                interpreter = cls(model_content=bytes(model), **kwargs)
            else:
                interpreter = cls(model_path=str(model), **kwargs)
            interpreter.allocate_tensors()
    except SystemError as exc:  # the runtime's C extension itself failed, not the model
        raise MissingDependencyError(_broken_runtime_message(cls, exc)) from None
    except (ValueError, RuntimeError) as exc:
        where = str(source) if source is not None else ("model bytes" if is_bytes else str(model))
        raise ArtifactError(
            f"{where}: not a valid TFLite model ({str(exc).strip()}); it may be truncated. "
            "Copy or re-export the bundle."
        ) from None
    return interpreter


def _broken_runtime_message(cls, exc):
    """Why an installed runtime cannot create an interpreter, and what to install instead."""
    name = cls.__module__.split(".")[0]
    if int(np.__version__.split(".")[0]) >= 2 and name == "tflite_runtime":
        # tflite-runtime (<= 2.14, the last release) was built against the NumPy 1.x ABI.
        return (f"the TFLite runtime tflite-runtime {runtime_version(name)} cannot run with numpy {np.__version__}: "
                "it was built for NumPy 1.x. Install numpy 1.x beside it: pip install \"numpy<2\" (sertiny[pi] "
                "asks for it).")
    return (f"the TFLite runtime {name} {runtime_version(name)} failed to create an interpreter ({exc}). "
            "Reinstall it: pip install --force-reinstall \"sertiny[pi]\"")


def runtime_version(name):
    """Version string of an installed runtime (``interpreter_class()[1]``), or "unknown"."""
    from importlib import metadata

    dist = {"ai_edge_litert": "ai-edge-litert", "tflite_runtime": "tflite-runtime", "tensorflow": "tensorflow"}
    for candidate in (dist.get(name, name), "tensorflow-cpu"):
        try:
            return metadata.version(candidate)
        except metadata.PackageNotFoundError:
            continue
    return "unknown"


def quantize(x, detail):
    """Float array -> the tensor's dtype using its (scale, zero_point); float tensors pass through."""
    dtype = detail["dtype"]
    if not np.issubdtype(dtype, np.integer):
        return np.asarray(x, dtype=dtype)
    scale, zero_point = detail["quantization"]
    info = np.iinfo(dtype)
    q = np.round(np.asarray(x, dtype=np.float64) / scale) + zero_point
    return np.clip(q, info.min, info.max).astype(dtype)


def dequantize(q, detail):
    """Tensor values -> float32 using the tensor's (scale, zero_point)."""
    if not np.issubdtype(detail["dtype"], np.integer):
        return np.asarray(q, dtype=np.float32)
    scale, zero_point = detail["quantization"]
    return ((np.asarray(q, dtype=np.float32) - zero_point) * scale).astype(np.float32)
