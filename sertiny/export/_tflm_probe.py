"""Child-process entry point: does a model allocate and invoke under TFLite Micro in N bytes?

    python -m sertiny.export._tflm_probe MODEL.tflite N_INPUTS

reads one arena size (bytes) per line on stdin and answers each on one line of stdout:
``fits``, or ``fails <TFLite Micro's messages>``; it exits at the end of its input. Every
input is set to its zero point (the quantised zero).

Why a separate process: with some too-small arenas TFLite Micro's failure path crashes the
process (seen with per-channel models, and with vit models whose memory planner runs out of
room) instead of returning an error. :func:`sertiny.export.tflm.arena_size` counts a crash
as "does not fit" and starts a new probe; the exporter itself must survive, and, running
JAX's threads, must not fork.

Imports numpy, tflite-micro and :mod:`sertiny._io` only.
"""

import sys


def fits(model_bytes, arena_size, n_inputs):
    """``(True, "")`` when the model allocates and invokes, else ``(False, error text)``."""
    import tempfile

    import numpy as np
    from tflite_micro.python.tflite_micro import runtime

    from .._io import stderr_fd_to

    with tempfile.TemporaryFile() as log:
        try:
            with stderr_fd_to(log):  # TFLite Micro explains a failure on fd 2
                interpreter = runtime.Interpreter.from_bytes(bytes(model_bytes), arena_size=int(arena_size))
                for position in range(n_inputs):
                    detail = interpreter.get_input_details(position)
                    zero_points = detail["quantization_parameters"]["zero_points"]
                    zero = int(zero_points[0]) if len(zero_points) else 0  # float inputs: no quantisation
                    interpreter.set_input(np.full(detail["shape"], zero, dtype=detail["dtype"]), position)
                interpreter.invoke()
        except (RuntimeError, ValueError) as exc:
            log.seek(0)
            messages = log.read().decode("utf-8", "replace").split("\n") + [str(exc)]
            return False, "; ".join(m.strip() for m in messages if m.strip())
    return True, ""


def main(argv):
    import faulthandler

    faulthandler.disable()  # an expected crash here is an answer, not a traceback to print
    with open(argv[0], "rb") as f:
        model = f.read()
    n_inputs = int(argv[1])
    for line in sys.stdin:
        ok, error = fits(model, int(line), n_inputs)
        print("fits" if ok else f"fails {error}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
