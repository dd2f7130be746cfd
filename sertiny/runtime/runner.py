"""Run one bundle variant: normalised ``(T, F)`` features in, ``(C,)`` probabilities out.

:func:`load_runner` hides the difference between the two model profiles a bundle may
hold. A ``"full"`` model takes the whole ``(1, T, F)`` window in one invoke; a
``"chunked"`` model is stepped through the window by the exporter's
:class:`~sertiny.runtime.chunked.ChunkedRunner`. Both check the model's tensors against
the bundle at load time, so a model that does not belong to its manifest fails at start-up
with the file's name instead of producing labels for the wrong classes.

numpy + a TFLite runtime only: this module is on the device path.
"""

import numpy as np

from ..errors import ArtifactError
from ..features.frames import fit_to_length
from .bundle import check_variant_file
from .tflite import dequantize, interpreter_class, load_interpreter, quantize


class FullRunner:
    """A ``"full"`` profile model: input ``(1, T, F)``, output ``(1, C)``.

    Attributes:
        interpreter: the allocated TFLite interpreter (benchmarks time ``invoke`` on it).
        input_detail, output_detail: its tensor details (dtype, shape, quantisation).
    """

    def __init__(self, interpreter, variant, bundle):
        self.interpreter = interpreter
        self.input_detail = interpreter.get_input_details()[0]
        self.output_detail = interpreter.get_output_details()[0]
        self.seq_len = bundle.seq_len
        _check_full_shapes(variant, self.input_detail, self.output_detail, bundle)

    def predict(self, x_norm):
        """``(frames, F)`` normalised features -> ``(C,)`` float32 probabilities.

        Other lengths than T are centre-cropped or zero-padded at the end, as in training.
        """
        self.set_input(fit_to_length(x_norm, self.seq_len))
        self.interpreter.invoke()
        return self.get_output()

    def set_input(self, x_norm):
        q = quantize(np.asarray(x_norm, dtype=np.float32)[None], self.input_detail)
        self.interpreter.set_tensor(self.input_detail["index"], q)

    def get_output(self):
        return dequantize(self.interpreter.get_tensor(self.output_detail["index"]), self.output_detail)[0]


def _check_full_shapes(variant, input_detail, output_detail, bundle):
    want_in = (1, bundle.seq_len, bundle.n_features)
    want_out = (1, len(bundle.labels))
    got_in, got_out = tuple(input_detail["shape"]), tuple(output_detail["shape"])
    if got_in != want_in:
        raise ArtifactError(
            f"{variant.path}: the model takes input of shape {got_in} but the bundle's manifest "
            f"says (1, T={bundle.seq_len}, F={bundle.n_features}); the file belongs to another export. "
            "Re-export the bundle."
        )
    if got_out != want_out:
        raise ArtifactError(
            f"{variant.path}: the model outputs {got_out[-1]} classes but the bundle lists "
            f"{len(bundle.labels)} labels ({', '.join(bundle.labels)}). Re-export the bundle."
        )


class _ChunkedAdapter:
    """Gives the exporter's ChunkedRunner the same face as :class:`FullRunner`."""

    def __init__(self, interpreter, variant):
        try:
            from .chunked import ChunkedRunner
        except ImportError as exc:  # the exporter ships it; an old install may lack it
            raise ArtifactError(
                f"{variant.path}: a 'chunked' variant needs sertiny.runtime.chunked, which this "
                "install lacks. Upgrade sertiny or choose another --variant."
            ) from exc
        self.interpreter = interpreter
        self._runner = ChunkedRunner(interpreter, variant.meta)

    def predict(self, x_norm):
        """Same contract as :meth:`FullRunner.predict`; the runner crops/pads (and may mask)."""
        return np.asarray(self._runner.predict(np.asarray(x_norm, dtype=np.float32)), dtype=np.float32)


def load_runner(bundle, variant=None, *, num_threads=None, runtime=None, kernels="optimized"):
    """A runner for one of ``bundle``'s variants, checked against the manifest.

    Args:
        bundle: a :class:`~sertiny.runtime.bundle.Bundle`.
        variant: variant name; default ``bundle.default_variant`` (``int16x8``, else ``int8``, when present).
        num_threads: interpreter threads (None: the runtime's default).
        runtime: ``"ai_edge_litert"``, ``"tflite_runtime"`` or ``"tensorflow"``; None picks
            the lightest installed.
        kernels: ``"optimized"`` or ``"reference"`` (see :func:`~sertiny.runtime.tflite.load_interpreter`).

    Returns:
        An object with ``predict(x_norm (frames, F) float32) -> (C,) float32`` (windows
        of other lengths than T are fitted to T as in training) and ``interpreter``.

    Raises:
        ArtifactError: the file is missing, truncated, not TFLite, or does not fit the bundle.
    """
    v = bundle.variant(variant)
    data = check_variant_file(v)
    interpreter = load_interpreter(data, num_threads=num_threads, prefer=runtime, source=v.path, kernels=kernels)
    if v.profile == "chunked":
        return _ChunkedAdapter(interpreter, v)
    return FullRunner(interpreter, v, bundle)


def runtime_name(prefer=None):
    """Name of the TFLite runtime :func:`load_runner` would use."""
    return interpreter_class(prefer)[1]
