"""The whole pipeline in one call, with small defaults: summary -> train -> export -> bench -> infer.

    from sertiny.quickstart import quickstart
    report = quickstart("../shared/data/ravdess16k", "quickstart")

Every stage writes where a user would put it by hand (``OUT/run``, ``OUT/bundle``,
``OUT/bench``), so each can be rerun or continued with its own command afterwards.
"""

import dataclasses
import json
import time
from pathlib import Path

from ._config import Config, check_int
from ._io import atomic_write_json, atomic_write_text


@dataclasses.dataclass(frozen=True, kw_only=True)
class QuickstartConfig(Config):
    """Small defaults that finish in minutes on a 2-core machine.

    model / epochs / seeds / jobs: the training recipe (``sertiny train`` for the rest).
    dataset / preset: corpus layout and front end.
    chunk: chunk size of the microcontroller (streaming) profile exported beside the full one
        (families with a streaming profile only, ``Family.streaming``: LSTM-SA / ResLSTM-SA).
    bench_runs: timed invokes per variant in the benchmark.
    infer_clips: clips classified at the end, as a user would with ``sertiny infer``.
    """

    model: str = "res_lstm_sa_h64"
    epochs: int = 30
    seeds: tuple = (0,)
    jobs: int = 2
    dataset: str = "auto"
    preset: str = "edge16k"
    chunk: int = 1
    bench_runs: int = 50
    infer_clips: int = 3

    def __post_init__(self):
        object.__setattr__(self, "seeds", tuple(self.seeds))
        for name in ("epochs", "jobs", "chunk", "bench_runs", "infer_clips"):
            check_int("QuickstartConfig", name, getattr(self, name), min_value=1)


def _stage(title):
    print(f"\n== {title}", flush=True)
    return time.time()


def quickstart(data_dir, out_dir, config=None, *, progress=True):
    """Run every stage on ``data_dir`` into ``out_dir``; return (and write) a short report."""
    from .data import load_dataset
    from .data.summary import format_summary, summarize
    from .export import ExportConfig, export_run
    from .features import get_preset
    from .training import TrainConfig, train
    from .training.data import DataSpec, load_table

    config = config or QuickstartConfig()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    config.save(out_dir / "quickstart_config.json")
    timings = {}

    t = _stage("1/5 data summary")
    dataset = load_dataset(data_dir, config.dataset)
    summary = summarize(dataset, progress=progress)
    print(format_summary(summary))
    timings["summary_s"] = time.time() - t

    t = _stage(f"2/5 train {config.model} ({config.epochs} epochs per fold)")
    spec = DataSpec(kind="audio", path=str(Path(data_dir).resolve()), dataset=config.dataset)
    table = load_table(spec, get_preset(config.preset), progress=progress)
    train_config = TrainConfig(model=config.model, epochs=config.epochs, seeds=config.seeds)
    run_dir = out_dir / "run"
    metrics = train(table, train_config, run_dir, data_spec=spec, jobs=config.jobs, deploy=True, progress=progress)
    timings["train_s"] = time.time() - t

    # Families without a streaming (chunked) profile export the full unroll only.
    from .models.registry import get_family, parse_model_name

    chunks = (config.chunk,) if get_family(parse_model_name(config.model)[0]).streaming else ()
    t = _stage("3/5 export int8 (full unroll" + (f" + chunk {config.chunk})" if chunks else ")"))
    bundle_dir = out_dir / "bundle"
    export_run(run_dir, bundle_dir, ExportConfig(chunks=chunks), overwrite=True)
    manifest = json.loads((bundle_dir / "sertiny.json").read_text())
    timings["export_s"] = time.time() - t

    t = _stage("4/5 bench")
    from .bench import BenchConfig, run_bench, save_results

    clips = [c.path for c in dataset.clips[:: max(1, len(dataset.clips) // 20)]]
    bench = run_bench(bundle_dir, clips, BenchConfig(runs=config.bench_runs, warmup=5, max_clips=10,
                                                     cold_start=False), progress=progress)
    save_results(bench, out_dir / "bench")
    timings["bench_s"] = time.time() - t

    t = _stage("5/5 infer")
    from .runtime.classifier import Classifier

    classifier = Classifier.from_path(bundle_dir)
    predictions = []
    for clip in dataset.clips[: config.infer_clips]:
        p = classifier.classify_file(clip.path)
        predictions.append({"file": clip.path, "true": clip.label, **p.to_dict()})
        print(f"{Path(clip.path).name}: {p.label} (true: {clip.label})")
    timings["infer_s"] = time.time() - t

    report = _report(out_dir, metrics, manifest, bench, predictions, timings)
    atomic_write_json(out_dir / "quickstart_report.json", report)
    atomic_write_text(out_dir / "REPORT.md", _markdown(report))
    print("\n" + _markdown(report))
    return report


def _report(out_dir, metrics, manifest, bench, predictions, timings):
    variants = manifest["variants"]
    return {
        "out_dir": str(out_dir),
        "run_dir": str(out_dir / "run"),
        "bundle_dir": str(out_dir / "bundle"),
        "bench_dir": str(out_dir / "bench"),
        "cv_uar_float": metrics["uar_mean"],
        "bundle_metrics": manifest.get("metrics", {}),
        "variants": {n: {k: v.get(k) for k in ("file", "bytes", "arena_bytes", "ops")} for n, v in variants.items()},
        "latency": _latencies(bench),
        "predictions": predictions,
        "timings_s": {k: round(v, 1) for k, v in timings.items()},
    }


def _latencies(bench):
    """Invoke latency percentiles (ms, one thread) per variant from a run_bench result."""
    return {v["name"]: v.get("latency", {}).get("1") for v in bench.get("variants", [])}


def _markdown(report):
    m = report["bundle_metrics"]
    lines = [
        "# sertiny quickstart report",
        "",
        f"- cross-validated UAR (float, this short recipe): {report['cv_uar_float']:.4f}",
        f"- held-out float vs int8 UAR: {m.get('float_uar', float('nan')):.4f} vs {m.get('int8_uar', float('nan')):.4f}"
        f" (top-1 agreement {m.get('int8_agreement', float('nan')):.3f})",
        "",
        "| variant | file | bytes | TFLM arena | ops | invoke p50 ms (1 thread, per window) |",
        "|---|---|---|---|---|---|",
    ]
    for name, v in report["variants"].items():
        p50 = (report["latency"].get(name) or {}).get("p50")
        latency = f"{p50:.3f}" if p50 is not None else "n/a"
        arena = v["arena_bytes"] if v["arena_bytes"] is not None else "n/a"  # float models: no TFLM
        lines.append(f"| {name} | {v['file']} | {v['bytes']} | {arena} | {v['ops']} | {latency} |")
    lines += ["", f"Run: `{report['run_dir']}`; bundle: `{report['bundle_dir']}`; benchmark: `{report['bench_dir']}`; "
              f"timings (s): {report['timings_s']}"]
    return "\n".join(lines) + "\n"
