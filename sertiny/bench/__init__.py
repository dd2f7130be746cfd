"""sertiny.bench: latency, memory, size, arena and accuracy of a bundle's variants.

Importing this package is light (numpy): frameworks used by the peers (Keras, ONNX
Runtime, PyTorch) and matplotlib are imported only when a benchmark or a plot needs them,
so ``sertiny bench`` also runs on a Raspberry Pi with the light install.

    from sertiny.bench import BenchConfig, run_bench, save_results
    result = run_bench("bundles/x", ["clips/"], BenchConfig(runs=200))
    save_results(result, "results/bench/host")
"""

from .config import BenchConfig
from .report import compare, format_markdown, load_result, plot_pareto, save_results
from .run import run_bench

__all__ = ["BenchConfig", "compare", "format_markdown", "load_result", "plot_pareto", "run_bench", "save_results"]
