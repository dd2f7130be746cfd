"""Every sertiny model family on one table: the one a user reads to pick a model for a device.

    python train/models_table.py train  [--models ...] [--seeds 0,1,2] [--jobs 2]
    python train/models_table.py export [--models ...]
    python train/models_table.py bench  [--models ...]
    python train/models_table.py report [--out results/models.md]

Each stage is resumable and reads what the one before left:

- ``train``: the paper protocol (five speaker-independent RAVDESS folds, pooled UAR, seeds)
  with Table I's fixed recipe (``train/table1_recipe.json``) for every family, into
  ``runs/models/<entry>``. LSTM-SA / ResLSTM-SA rows reuse Table I's edge16k runs.
- ``export``: ``sertiny export --int8`` of each run (full-unroll profile; LSTM-SA families also
  the K = 1 streaming profile), into ``bundles/models/<entry>``; int8 UAR and agreement are
  the exporter's parity check on seed 0's held-out folds, the arena its TFLite Micro probe.
- ``bench``: all bundles timed one after another in one process, same clips, same settings,
  so their latencies compare (``results/models/bench/<entry>.json``). Run it on a quiet machine.
- ``report``: ``results/models.md`` and ``results/models_pareto.png``.
"""

import argparse
import dataclasses
import functools
import json
import time
from pathlib import Path

import table1  # train/table1.py: the recipe, data loading and machine description shared with Table I

ROOT = table1.ROOT
RUNS = ROOT / "runs" / "models"
BUNDLES = ROOT / "bundles" / "models"
BENCH = ROOT / "results" / "models" / "bench"
BENCH_CLIPS = table1.DATA / "ravdess16k" / "Actor_01"


@dataclasses.dataclass(frozen=True)
class Entry:
    """One row: a registered model on a front end, with any training options beyond the recipe."""

    name: str
    model: str
    preset: str = "edge16k"
    train_options: tuple = ()  # extra TrainConfig fields, as (name, value) pairs
    paper: str = ""
    chunked: bool = False  # also export the K = 1 streaming profile

    @property
    def run(self):
        if self.model.startswith(("lstm_sa", "res_lstm_sa")) and self.preset == "edge16k" and not self.train_options:
            return table1.run_dir("edge16k", self.model)  # Table I's run, same recipe and folds
        return RUNS / self.name

    @property
    def bundle(self):
        return BUNDLES / self.name


ENTRIES = [
    Entry("lstm_sa_h64", "lstm_sa_h64", paper="ResLSTM-SA paper (LSTM-SA)", chunked=True),
    Entry("res_lstm_sa_h32", "res_lstm_sa_h32", paper="ResLSTM-SA paper", chunked=True),
    Entry("res_lstm_sa_h64", "res_lstm_sa_h64", paper="ResLSTM-SA paper", chunked=True),
    Entry("dual_lstm_h64", "dual_lstm_h64", paper="Dual-layer LSTM"),
    Entry("cnn_lstm_h64", "cnn_lstm_h64", paper="CNN-LSTM (CNN-LSTM / ViT study)"),
    Entry("bilstm_att_h32", "bilstm_att_h32", paper="BiLSTM-ATT (single task)"),
    Entry("bilstm_att_h32_mtl", "bilstm_att_h32", train_options=(("multitask", True),),
          paper="BiLSTM-ATT-MTL (+ intensity, speaker sex heads)"),
    Entry("vit_h64", "vit_h64", preset="logmel16k", paper="ViT on log-mel (CNN-LSTM / ViT study)"),
]
BY_NAME = {e.name: e for e in ENTRIES}
REFERENCE = "res_lstm_sa_h64"  # latency ratios are against this row


def _selected(args):
    return [BY_NAME[n] for n in args.models]


@functools.lru_cache(maxsize=None)
def _load(preset):
    from sertiny.features import get_preset
    from sertiny.training.data import DataSpec, load_table

    spec = DataSpec(kind="audio", path=str(table1.DATA / "ravdess16k"), dataset="ravdess")
    return spec, load_table(spec, get_preset(preset), say=print)


def train_stage(args):
    from sertiny.training import TrainConfig, train

    for entry in _selected(args):
        spec, table = _load(entry.preset)
        config = TrainConfig(model=entry.model, seeds=tuple(args.seeds), **table1.recipe_for(entry.model),
                             **dict(entry.train_options))
        print(f"== train {entry.name} -> {entry.run}", flush=True)
        metrics = train(table, config, entry.run, data_spec=spec, jobs=args.jobs, progress=not args.quiet)
        print(f"   UAR {metrics['uar_mean']:.4f} ± {metrics['uar_std']:.4f}", flush=True)


def export_stage(args):
    from sertiny.export import ExportConfig, export_run

    for entry in _selected(args):
        if (entry.bundle / "sertiny.json").is_file() and not args.overwrite:
            print(f"== export {entry.name}: {entry.bundle} exists (--overwrite to redo)")
            continue
        config = ExportConfig(chunks=(1,) if entry.chunked else (), c_arrays=False, parity_seed=0)
        print(f"== export {entry.name} -> {entry.bundle}", flush=True)
        export_run(entry.run, entry.bundle, config, overwrite=True, progress=None if args.quiet else print)


def bench_stage(args):
    from sertiny._io import atomic_write_json
    from sertiny.bench import BenchConfig, run_bench

    # Same settings for every bundle, in one process, back to back: the latencies compare.
    config = BenchConfig(runs=args.runs, warmup=20, max_clips=10, threads=(1,), peers=(), cold_start=False, tflm=False)
    BENCH.mkdir(parents=True, exist_ok=True)
    for entry in _selected(args):
        print(f"== bench {entry.name}", flush=True)
        result = run_bench(entry.bundle, [BENCH_CLIPS], config, progress=not args.quiet,
                           command=f"python train/models_table.py bench --models {entry.name}")
        atomic_write_json(BENCH / f"{entry.name}.json", result)


def _row(entry):
    metrics_path, manifest_path = entry.run / "metrics.json", entry.bundle / "sertiny.json"
    if not metrics_path.is_file():
        return None
    m = json.loads(metrics_path.read_text())
    row = {"entry": entry, "params": m["trainable_params"], "n_seeds": m["n_seeds"],
           "uar_mean": m["uar_mean"], "uar_std": m["uar_std"], "aux": m.get("auxiliary")}
    if manifest_path.is_file():
        manifest = json.loads(manifest_path.read_text())
        variants, metrics = manifest["variants"], manifest["metrics"]["variants"]
        for name in ("int8", "int8_chunk1"):
            if name in variants:
                row[name] = {"bytes": variants[name]["bytes"], "ops": variants[name]["ops"],
                             "arena": variants[name].get("arena_bytes"), "uar": metrics[name]["uar"],
                             "agreement": metrics[name]["agreement"], "f32_uar": metrics["f32"]["uar"]}
    bench_path = BENCH / f"{entry.name}.json"
    if bench_path.is_file():
        bench = json.loads(bench_path.read_text())
        for v in bench["variants"]:
            if v["name"] in ("int8", "int8_chunk1") and v["name"] in row:
                row[v["name"]]["invoke_ms"] = _window_ms(v)
                row[v["name"]]["e2e_ms"] = v["e2e"]["total"]["p50"]
        row["bench"] = {"created": bench["created"], "load": bench["load_average"]["start"].get("1min"),
                        "runs": bench["config"]["runs"]}
    return row


def _window_ms(variant):
    # The bench times one utterance's window: one invoke for the full profile, the host loop
    # over every frame's invoke for K = 1.
    return variant["latency"]["1"]["p50"]


def _fmt(value, spec, unit=""):
    return "–" if value is None else format(value, spec) + unit


def report(args):
    rows = [r for r in (_row(e) for e in ENTRIES) if r is not None]
    ref = next((r for r in rows if r["entry"].name == REFERENCE and "int8" in r), None)
    ref_ms = ref["int8"].get("invoke_ms") if ref else None
    runs = sorted({r["bench"]["runs"] for r in rows if "bench" in r}) or ["?"]
    lines = [
        "# Models: accuracy, size, memory and speed",
        "",
        f"Written by `python train/models_table.py report` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
        f"machine: {table1.machine_text()}.",
        "",
        "Made with, in order (each resumable):",
        "",
        "```",
        "python train/models_table.py train --seeds 0,1,2 --jobs 2",
        "python train/models_table.py export",
        "python train/models_table.py bench",
        "python train/models_table.py report",
        "```",
        "",
        "All rows: RAVDESS (1440 clips, 16 kHz copy), the paper's five speaker-independent folds, pooled "
        "out-of-fold UAR, the same fixed recipe (`train/table1_recipe.json`: Adam with coupled L2, "
        "cosine restarts, 100 epochs, best-validation epoch per fold), untuned per model. Float UAR is mean ± std "
        "over seeds; int8 UAR and top-1 agreement with float come from the exporter's parity check (seed 0's five "
        "fold models, each converted with the same settings, on their held-out speakers), with those float models' "
        "pooled UAR in brackets. Size is the `.tflite` file; arena is "
        "TFLite Micro's, found by bisection; latency is LiteRT on this host, 1 thread, p50 of "
        f"{'/'.join(map(str, runs))} invokes after warm-up, all bundles timed back to back in one process "
        "(`results/models/bench/`); 'x ref' is that latency over ResLSTM-SA-h64's.",
        "",
        "| model | front end | params | float UAR | int8 UAR (float, same models) | agreement | int8 size | arena | ops | latency / utterance | x ref | source |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        e = r["entry"]
        for variant in ("int8", "int8_chunk1"):
            v = r.get(variant)
            if variant == "int8_chunk1" and v is None:
                continue
            label = e.name if variant == "int8" else f"{e.name} (K = 1 stream)"
            ms = v.get("invoke_ms") if v else None
            ratio = _fmt(ms / ref_ms if ms and ref_ms else None, ".2f")
            lines.append(
                f"| {label} | {e.preset} | {r['params']:,} | {r['uar_mean']:.4f} ± {r['uar_std']:.4f} ({r['n_seeds']}) | "
                f"{_fmt(v and v['uar'], '.4f')} ({_fmt(v and v['f32_uar'], '.4f')}) | {_fmt(v and 100 * v['agreement'], '.1f', ' %')} | "
                f"{_fmt(v and v['bytes'] / 1024, ',.0f', ' KB')} | {_fmt(v and v['arena'] and v['arena'] / 1024, ',.0f', ' KB')} | "
                f"{_fmt(v and v['ops'], ',')} | {_fmt(ms, '.2f', ' ms')} | {ratio} | {e.paper} |")
    benches = sorted((r["bench"]["created"], r["bench"]["load"]) for r in rows if "bench" in r)
    if benches:
        lines += ["", f"Timed from {benches[0][0]} to {benches[-1][0]} (1-minute load average "
                      f"{min(b[1] for b in benches)}-{max(b[1] for b in benches)} on 2 cores at the start of each bundle)."]
    aux = [r for r in rows if r["aux"]]
    if aux:
        lines += ["", "Auxiliary heads (multi-task rows; out-of-fold, all seeds):", ""]
        for r in aux:
            lines.append(f"- {r['entry'].name}: " + ", ".join(
                f"{task} UAR {info['uar_mean']:.3f} ± {info['uar_std']:.3f}" for task, info in r["aux"].items()))
    missing = [e.name for e in ENTRIES if e.name not in {r["entry"].name for r in rows}]
    if missing:
        lines += ["", f"Not trained yet: {', '.join(missing)}."]
    lines += ["", "![UAR against int8 size, TFLite Micro arena and host latency](models_pareto.png)", ""]
    text = "\n".join(lines) + "\n" + (args.notes.read_text() if args.notes.exists() else "")
    from sertiny._io import atomic_write_text

    atomic_write_text(args.out, text)
    _pareto_plot(rows, args.out.with_name("models_pareto.png"))
    print(text)


def pareto_front(points):
    """Indices of the points no other point beats on both cost (lower) and UAR (higher)."""
    return [i for i, (cost, uar) in enumerate(points)
            if not any(c <= cost and u >= uar and (c, u) != (cost, uar) for c, u in points)]


def _pareto_plot(rows, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from matplotlib.ticker import NullFormatter, ScalarFormatter

    panels = [("bytes", "int8 model size (KB)"), ("arena", "TFLite Micro arena (KB)"),
              ("invoke_ms", "int8 latency per utterance (ms, host)")]
    fig, axes = plt.subplots(1, len(panels), figsize=(16, 4.8))
    for ax, (key, label) in zip(axes, panels):
        points, names = [], []
        for r in rows:
            for variant in ("int8", "int8_chunk1"):
                v = r.get(variant)
                if v and v.get(key):
                    cost = v[key] if key == "invoke_ms" else v[key] / 1024
                    points.append((cost, r["uar_mean"]))
                    names.append(r["entry"].name + (" K=1" if variant == "int8_chunk1" else ""))
        if not points:
            continue
        front = set(pareto_front(points))
        for i, ((x, y), name) in enumerate(zip(points, names)):
            ax.scatter(x, y, color="tab:red" if i in front else "tab:gray", zorder=3)
            ax.annotate(name, (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
        xs = sorted(points[i] for i in front)
        ax.plot([p[0] for p in xs], [p[1] for p in xs], color="tab:red", lw=1, ls="--")
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel(label)
        ax.set_ylabel("float UAR, mean over seeds")
        ax.grid(alpha=0.3)
    fig.suptitle("RAVDESS, speaker-independent: red = Pareto front")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("train", "export", "bench", "report"):
        p = sub.add_parser(name)
        p.add_argument("--models", nargs="+", default=[e.name for e in ENTRIES], choices=list(BY_NAME))
        p.add_argument("--quiet", action="store_true")
        p.add_argument("--runs", type=int, default=500, help="timed invokes per bundle (bench)")
    sub.choices["train"].add_argument("--seeds", type=lambda s: [int(x) for x in s.split(",")], default=[0, 1, 2])
    sub.choices["train"].add_argument("--jobs", type=int, default=2)
    sub.choices["export"].add_argument("--overwrite", action="store_true")
    sub.choices["report"].add_argument("--out", type=Path, default=ROOT / "results" / "models.md")
    sub.choices["report"].add_argument("--notes", type=Path, default=ROOT / "results" / "models_notes.md",
                                       help="hand-written findings appended below the table")
    args = parser.parse_args()
    {"train": train_stage, "export": export_stage, "bench": bench_stage, "report": report}[args.command](args)


if __name__ == "__main__":
    main()
