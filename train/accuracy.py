"""Issue 14's accuracy ablations: named recipes x seeds on the paper's speaker-independent folds.

    python train/accuracy.py run    --recipes base,utt_mean [--models res_lstm_sa_h64] [--input edge16k] [--seeds 0,1,2]
    python train/accuracy.py export --recipe base [--models res_lstm_sa_h64] [--input edge16k]
    python train/accuracy.py report [--out results/accuracy.md]

``run`` trains each recipe of ``train/accuracy_recipes.json`` into
``runs/accuracy/<input>/<model>/<recipe>`` (a normal, resumable run directory: rerun the same
command after an interruption). Start one process per core with different ``--recipes``.

``export`` exports a finished run to int8 (``runs/accuracy_bundles/...``): the streaming K = 1
profile for LSTM-SA families, the full unroll for the others, with float-vs-int8 UAR and
agreement measured on seed 0's five fold models' held-out speakers.

``report`` reads every finished run and writes ``results/accuracy.md`` and
``results/accuracy.json`` with the command, date and machine. Recipes are *compared on the
validation speakers*: the column ``late val UAR`` is the mean validation UAR over each fold's
last ``t0`` epochs (one full cosine cycle), averaged over folds and seeds. It does not depend
on which epoch a recipe keeps, so it is comparable between ``best_val`` and ``last``
selection, and it never looks at a test speaker. The pooled test UAR is printed beside it
for the record; it chooses nothing.
"""

import argparse
import csv
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
RUNS = ROOT / "runs" / "accuracy"
RECIPES = Path(__file__).with_name("accuracy_recipes.json")
INPUTS = ("edge16k", "paper", "logmel16k")


def load_recipes(path=RECIPES):
    """``{name: TrainConfig fields}`` with ``extends`` chains resolved."""
    raw = json.loads(Path(path).read_text())["recipes"]

    def resolve(name, seen=()):
        if name in seen:
            raise SystemExit(f"{path}: recipe {name!r} extends itself")
        spec = dict(raw[name])
        parent = spec.pop("extends", None)
        return {**(resolve(parent, seen + (name,)) if parent else {}), **spec}

    return {name: resolve(name) for name in raw}


def load_input(name):
    from sertiny.features import get_preset
    from sertiny.training.data import DataSpec, load_table

    if name == "paper":
        spec = DataSpec(kind="paper_npz", path=str(DATA / "ravdess48k_paper_features.npz"))
        return spec, load_table(spec)
    spec = DataSpec(kind="audio", path=str(DATA / "ravdess16k"), dataset="ravdess")
    return spec, load_table(spec, get_preset(name), progress=False)


def run_dir(input_name, model, recipe):
    return RUNS / input_name / model / recipe


def run(args):
    from sertiny.training import TrainConfig, train
    from sertiny.training.run import pin_single_thread

    pin_single_thread()  # one process per core
    recipes = load_recipes()
    unknown = [r for r in args.recipes if r not in recipes]
    if unknown:
        raise SystemExit(f"unknown recipe(s) {unknown}; known: {sorted(recipes)}")
    spec, table = load_input(args.input)
    for name in args.recipes:
        for model in args.models:
            config = TrainConfig(model=model, seeds=tuple(args.seeds), **recipes[name])
            out = run_dir(args.input, model, name)
            print(f"== {args.input} / {model} / {name} -> {out}  ({time.strftime('%H:%M:%S')})", flush=True)
            metrics = train(table, config, out, data_spec=spec, progress=not args.quiet)
            print(f"   test UAR {metrics['uar_mean']:.4f} ± {metrics['uar_std']:.4f}", flush=True)


def bundle_dir(input_name, model, recipe):
    return ROOT / "runs" / "accuracy_bundles" / input_name / model / recipe


def export(args):
    from sertiny.export import ExportConfig, export_run
    from sertiny.models.registry import parse_model_name
    from sertiny.models.weights import LSTM_SA_FAMILIES

    for model in args.models:
        run = run_dir(args.input, model, args.recipe)
        streaming = parse_model_name(model)[0] in LSTM_SA_FAMILIES
        config = ExportConfig(full=not streaming, chunks=(1,) if streaming else (), c_arrays=False,
                              weights="seed0_fold1", parity_seed=0)
        out = bundle_dir(args.input, model, args.recipe)
        print(f"== export {run} -> {out}", flush=True)
        manifest = export_run(run, out, config, overwrite=True, progress=lambda m: print("  ", m, flush=True))
        m = manifest["metrics"]
        print(f"   float {m['float_uar']:.4f}, {m.get('int8_variant')} {m.get('int8_uar', float('nan')):.4f}, "
              f"agreement {m.get('int8_agreement', float('nan')):.4f}", flush=True)


def int8_metrics(input_name, model, recipe):
    manifest = bundle_dir(input_name, model, recipe) / "sertiny.json"
    if not manifest.is_file():
        return {}
    m = json.loads(manifest.read_text())["metrics"]
    return {"uar_int8": m.get("int8_uar"), "int8_variant": m.get("int8_variant"),
            "int8_agreement": m.get("int8_agreement"), "uar_float_seed0_bundle": m.get("float_uar")}


def late_val_uar(run, config):
    """Mean validation UAR over the last ``t0`` epochs of every fold and seed (see module doc)."""
    values = []
    for history in sorted(run.glob("seed_*/fold_*/history.csv")):
        with open(history, newline="") as f:
            rows = list(csv.DictReader(f))
        values += [float(r["val_uar"]) for r in rows[-config["t0"]:]]
    return sum(values) / len(values) if values else float("nan")


def collect():
    """One row per finished run under runs/accuracy."""
    rows = []
    for metrics_file in sorted(RUNS.glob("*/*/*/metrics.json")):
        run = metrics_file.parent
        m = json.loads(metrics_file.read_text())
        config = json.loads((run / "train_config.json").read_text())
        input_name, model, recipe = run.relative_to(RUNS).parts
        rows.append({
            "model": model, "front_end": input_name, "recipe": recipe, "seeds": config["seeds"],
            "speaker_adaptive": config.get("normalization") == "speaker",
            "late_val_uar": late_val_uar(run, config),
            "kept_val_uar": _mean([json.loads(f.read_text())["val_uar"] for f in run.glob("seed_*/fold_*/fold.json")]),
            "uar_float_mean": m["uar_mean"], "uar_float_std": m["uar_std"],
            "uar_per_seed": m["uar_per_seed"], "params": m.get("trainable_params"),
            **int8_metrics(input_name, model, recipe),
        })
    return rows


def _mean(values):
    return sum(values) / len(values) if values else float("nan")


def report(args):
    sys.path.insert(0, str(ROOT))
    from sertiny.features._report import machine_info, machine_lines

    rows = collect()
    recipes = json.loads(RECIPES.read_text())
    lines = [
        "# Accuracy on unseen speakers: ablations",
        "",
        f"Written by `python train/accuracy.py report` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.",
        *machine_lines(machine_info()),
        "",
        "Runs: `python train/accuracy.py run --recipes NAME [--model M] [--input I] --seeds 0,1,2` "
        "(recipes in `train/accuracy_recipes.json`). Every row: the paper's five speaker-independent "
        "RAVDESS folds, pooled out-of-fold test UAR per seed, mean ± std over seeds.",
        "",
        "**Selection rule.** Recipes are compared on *late val UAR*: the validation speakers' UAR averaged "
        "over each fold's last `t0` epochs (one cosine cycle) and over folds and seeds. The test UAR "
        "beside it is reported, never used to choose.",
        "",
        "| input | model | recipe | changes vs base | seeds | late val UAR | test UAR mean ± std | per seed |",
        "|---|---|---|---|---|---|---|---|",
    ]
    base = load_recipes().get("base", {})
    for r in sorted(rows, key=lambda r: (r["front_end"], r["model"], -r["late_val_uar"])):
        spec = load_recipes().get(r["recipe"], {})
        changes = ", ".join(f"{k}={v}" for k, v in spec.items() if base.get(k) != v) or "—"
        per_seed = ", ".join(f"{v:.3f}" for v in r["uar_per_seed"].values())
        lines.append(f"| {r['front_end']} | {r['model']} | {r['recipe']} | {changes} | {len(r['seeds'])} | "
                     f"{r['late_val_uar']:.4f} | {r['uar_float_mean']:.4f} ± {r['uar_float_std']:.4f} | {per_seed} |")
    lines += ["", f"Why these recipes: {recipes['why']}", ""]
    out = Path(args.out)
    out.write_text("\n".join(lines) + "\n")
    out.with_suffix(".json").write_text(json.dumps({"rows": rows}, indent=1) + "\n")
    print(f"wrote {out} and {out.with_suffix('.json')} ({len(rows)} runs)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("run")
    p.add_argument("--recipes", type=lambda s: s.split(","), required=True)
    p.add_argument("--models", type=lambda s: s.split(","), default=["res_lstm_sa_h64"])
    p.add_argument("--input", choices=INPUTS, default="edge16k")
    p.add_argument("--seeds", type=lambda s: [int(x) for x in s.split(",")], default=[0, 1, 2])
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=run)
    p = sub.add_parser("export")
    p.add_argument("--recipe", required=True)
    p.add_argument("--models", type=lambda s: s.split(","), default=["res_lstm_sa_h64"])
    p.add_argument("--input", choices=INPUTS, default="edge16k")
    p.set_defaults(func=export)
    p = sub.add_parser("report")
    p.add_argument("--out", default=str(ROOT / "results" / "accuracy.md"))
    p.set_defaults(func=report)
    args = parser.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
