"""sertiny.export: a training run -> a device bundle (TFLite for the Pi, C arrays for MCUs).

    from sertiny.export import ExportConfig, export_run
    manifest = export_run("runs/h64", "bundles/h64", ExportConfig(chunks=(1,)))

The graphs are built from the run's backend-free NumPy weights with raw TensorFlow ops
(:mod:`.graph`), never through Keras, so exporting works whatever backend trained the
model. Heavy imports (TensorFlow, tflite-micro) happen inside the functions.
"""

from .config import ExportConfig

__all__ = ["ExportConfig", "chunk_function", "export_run", "fold_weights", "full_unroll_function"]


def __getattr__(name):
    # Lazy: `import sertiny.export` must stay cheap for `sertiny --help`.
    if name == "export_run":
        from .bundle import export_run

        return export_run
    if name in ("fold_weights", "full_unroll_function", "chunk_function"):
        from . import graph

        return getattr(graph, name)
    raise AttributeError(f"module 'sertiny.export' has no attribute {name!r}")
