"""The whole pipeline in one call, with small defaults: summary -> train -> export -> bench -> infer.

    from sertiny.quickstart import quickstart
    report = quickstart("../shared/data/ravdess16k", "quickstart")

Every stage writes where a user would put it by hand (``OUT/run``, ``OUT/bundle``,
``OUT/bench``), so each can be rerun or continued with its own command afterwards.
"""

import contextlib
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
    infer_clips: clips classified at the end, as a user would with ``sertiny infer``: one per
        emotion, of speakers a fold model never heard.

    ``epochs`` and ``jobs`` differ from ``sertiny train``'s defaults (100, 1) on purpose: the
    quickstart is meant to finish in minutes on two free cores.
    """

    model: str = "res_lstm_sa_h64"
    epochs: int = 30
    seeds: tuple = (0,)
    jobs: int = 2
    dataset: str = "auto"
    preset: str = "edge16k"
    chunk: int = 1
    bench_runs: int = 50
    infer_clips: int = 8

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

    t = _stage(f"2/5 train {config.model} ({config.epochs} epoch{'s' if config.epochs > 1 else ''} per fold)")
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
    with _step_counter("export", progress) as say:
        export_run(run_dir, bundle_dir, ExportConfig(chunks=chunks), overwrite=True, progress=say)
    manifest = json.loads((bundle_dir / "sertiny.json").read_text())
    timings["export_s"] = time.time() - t

    t = _stage("4/5 bench")
    from .bench import BenchConfig, run_bench, save_results

    command = command_line(data_dir, out_dir, config)
    clips = [c.path for c in dataset.clips[:: max(1, len(dataset.clips) // 20)]]
    bench = run_bench(bundle_dir, clips, BenchConfig(runs=config.bench_runs, warmup=5, max_clips=10,
                                                     cold_start=False), progress=progress, command=command)
    save_results(bench, out_dir / "bench")
    timings["bench_s"] = time.time() - t

    t = _stage("5/5 infer: a fold model on speakers it never heard")
    predictions = _infer_held_out(run_dir, out_dir / "fold_bundle", dataset, config, progress)
    timings["infer_s"] = time.time() - t

    report = _report(out_dir, metrics, manifest, bench, predictions, timings, command)
    atomic_write_json(out_dir / "quickstart_report.json", report)
    atomic_write_text(out_dir / "REPORT.md", _markdown(report))
    print("\n" + _markdown(report))
    return report


def command_line(data_dir, out_dir, config):
    """The ``sertiny quickstart`` command that repeats a run with ``config``."""
    import shlex

    defaults = QuickstartConfig()
    words = ["sertiny", "quickstart", str(data_dir), "--out", str(out_dir)]
    for name in ("model", "epochs", "jobs", "dataset", "preset"):  # the command's options
        if getattr(config, name) != getattr(defaults, name):
            words += [f"--{name}", str(getattr(config, name))]
    return shlex.join(words)


@contextlib.contextmanager
def _step_counter(title, enabled):
    """A progress line for a stage that reports steps by name (the exporter's ``progress``)."""
    from tqdm.auto import tqdm

    with tqdm(desc=title, unit="step", disable=not enabled,
              bar_format="{desc}: step {n_fmt}, {elapsed}{postfix}") as bar:
        def say(message):
            bar.set_postfix_str(message, refresh=False)
            bar.update(1)

        yield say


def _infer_held_out(run_dir, bundle_dir, dataset, config, progress):
    """Classify one clip per emotion of a fold's test speakers with that fold's model,
    exported as a bundle of its own: the deployment model heard every speaker, so its
    answers on the corpus would show nothing."""
    from .export import ExportConfig, export_run
    from .export.run import load_run
    from .runtime.classifier import Classifier

    fold = load_run(run_dir).folds[0]
    weights = f"seed{config.seeds[0]}_fold{fold.index}"
    with _step_counter(f"export {weights}", progress) as say:
        export_run(run_dir, bundle_dir, ExportConfig(weights=weights, parity=False, tflm=False, c_arrays=False),
                   overwrite=True, progress=say)
    classifier = Classifier.from_path(bundle_dir)
    unheard = [c for c in dataset.clips if c.speaker in fold.test_speakers]
    picks = [next(c for c in unheard if c.label == label) for label in dataset.label_names
             if any(c.label == label for c in unheard)][: config.infer_clips]
    print(f"fold {fold.index} model ({bundle_dir}, variant {classifier.variant.name}); test speakers "
          f"{', '.join(fold.test_speakers)}:")
    predictions = []
    for clip in picks:
        p = classifier.classify_file(clip.path)
        predictions.append({"speaker": clip.speaker, "true": clip.label, "variant": classifier.variant.name,
                            **p.to_dict()})
        mark = "right" if p.label == clip.label else "wrong"
        print(f"  speaker {clip.speaker}  {Path(clip.path).name}: {p.label} {p.confidence:.2f} "
              f"(true: {clip.label}, {mark})")
    return predictions


def _report(out_dir, metrics, manifest, bench, predictions, timings, command):
    variants = manifest["variants"]
    return {
        "command": command,
        "out_dir": str(out_dir),
        "run_dir": str(out_dir / "run"),
        "bundle_dir": str(out_dir / "bundle"),
        "fold_bundle_dir": str(out_dir / "fold_bundle"),
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
    from .export.tflm import ARENA_METHOD

    m = report["bundle_metrics"]
    lines = [
        "# sertiny quickstart report",
        "",
        f"Command: `{report['command']}`",
        "",
        f"- cross-validated UAR (float, this short recipe): {report['cv_uar_float']:.4f}",
        f"- held-out float vs int8 UAR: {m.get('float_uar', float('nan')):.4f} vs {m.get('int8_uar', float('nan')):.4f}"
        f" (top-1 agreement {m.get('int8_agreement', float('nan')):.3f})",
        "",
        "| variant | file | bytes | TFLM arena (bytes) | ops | invoke p50 ms (1 thread, per window) |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for name, v in report["variants"].items():
        p50 = (report["latency"].get(name) or {}).get("p50")
        latency = f"{p50:.3f}" if p50 is not None else "n/a"
        arena = f"{v['arena_bytes']:,}" if v["arena_bytes"] is not None else "n/a"
        lines.append(f"| {name} | {v['file']} | {v['bytes']:,} | {arena} | {v['ops']:,} | {latency} |")
    lines += ["", f"TFLM arena: {ARENA_METHOD}; the bundle's model card and `bench.md` give the same figures.", ""]
    lines += _prediction_lines(report["predictions"], report["fold_bundle_dir"])
    lines += ["", f"Run: `{report['run_dir']}`; bundle: `{report['bundle_dir']}`; benchmark: `{report['bench_dir']}`.",
              "", f"Time per stage: {_timings_text(report['timings_s'])}."]
    return "\n".join(lines) + "\n"


def _prediction_lines(predictions, fold_bundle_dir):
    if not predictions:
        return []
    variant = predictions[0]["variant"]
    right = sum(p["label"] == p["true"] for p in predictions)
    lines = ["## A fold model on speakers it never heard", "",
             f"`sertiny infer` with the fold model's bundle (`{fold_bundle_dir}`, variant {variant}) on one clip per "
             f"emotion of its test speakers: {right} of {len(predictions)} right.", "",
             "| speaker | clip | true | predicted | confidence |", "|---|---|---|---|---:|"]
    for p in predictions:
        lines.append(f"| {p['speaker']} | {Path(p['file']).name} | {p['true']} | {p['label']} | {p['confidence']:.2f} |")
    return lines


def _timings_text(timings_s):
    parts = [f"{key.removesuffix('_s')} {_duration(seconds)}" for key, seconds in timings_s.items()]
    return ", ".join(parts) + f" (total {_duration(sum(timings_s.values()))})"


def _duration(seconds):
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest} s" if minutes else f"{seconds:.1f} s"
