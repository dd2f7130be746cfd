"""Reproduce the paper's Table I: six models, the paper protocol, N seeds, two front ends.

    python train/table1.py run    [--models ...] [--inputs paper,edge16k] [--seeds 0,1,2] [--jobs 2]
    python train/table1.py run    --tuned --models res_lstm_sa_h64 --inputs paper --seeds 1,2
    python train/table1.py report [--out results/table1.md]

``run`` trains every (input, model) into ``runs/table1/<input>/<model>`` with the recipe in
``train/table1_recipe.json`` (resumable: rerun the same command after an interruption).
``run --tuned`` trains with the best parameters of the model's Optuna study instead
(``sertiny tune ... --out runs/tune/<model>_<input>``) into ``runs/table1/<input>_tuned/<model>``.
``report`` reads whatever runs have finished and writes the table with the paper's figures
beside ours, the recipe, the commands, date and machine. Unfinished rows are listed as such.
"""

import argparse
import json
import os
import platform
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
RUNS = ROOT / "runs" / "table1"
RECIPE = Path(__file__).with_name("table1_recipe.json")
TUNE = ROOT / "runs" / "tune"
MODELS = ["lstm_sa_h32", "lstm_sa_h64", "lstm_sa_h128", "res_lstm_sa_h32", "res_lstm_sa_h64", "res_lstm_sa_h128"]
INPUTS = {
    "paper": "the paper's own features (librosa, original 48 kHz audio)",
    "edge16k": "sertiny's NumPy front end, edge16k preset, on the 16 kHz FLAC copy",
}
# Table I of the paper (and PAPER_FACTS.md): mean, std, max UAR over 10 seeds; parameters.
PAPER = {
    "lstm_sa_h32": (0.5352, 0.0123, 0.5547, "10.6 k"),
    "lstm_sa_h64": (0.5751, 0.0108, 0.5996, "28.3 k"),
    "lstm_sa_h128": (0.5895, 0.0076, 0.6022, "91.6 k"),
    "res_lstm_sa_h32": (0.6130, 0.0111, 0.6315, "28.0 k"),
    "res_lstm_sa_h64": (0.6232, 0.0119, 0.6517, "46.8 k"),
    "res_lstm_sa_h128": (0.6107, 0.0134, 0.6348, "108.9 k"),
}


def recipe_for(model, input_name=None, tuned=False):
    if tuned:
        best = tune_dir(model, input_name) / "best_params.json"
        if not best.exists():
            raise SystemExit(f"{best}: missing. Tune first: sertiny tune ... --model {model} --out {best.parent}")
        return json.loads(best.read_text())["params"]
    recipe = json.loads(RECIPE.read_text())
    params = dict(recipe["default"])  # "why" documents the choice; not a TrainConfig field
    params.update(recipe.get("per_model", {}).get(model, {}))
    return params


def load_input(name, feature_config=None, *, progress=True, say=print):
    """``(DataSpec, FeatureTable)`` of an input: the paper's feature file, or the 16 kHz
    RAVDESS copy through preset ``name`` (or ``feature_config``, a variant of it)."""
    from sertiny.features import get_preset
    from sertiny.training.data import DataSpec, load_table

    if name == "paper":
        spec = DataSpec(kind="paper_npz", path=str(DATA / "ravdess48k_paper_features.npz"))
        return spec, load_table(spec)
    spec = DataSpec(kind="audio", path=str(DATA / "ravdess16k"), dataset="ravdess")
    return spec, load_table(spec, feature_config or get_preset(name), progress=progress, say=say)


def run(args):
    from sertiny.training import TrainConfig, train

    for input_name in args.inputs:
        spec, table = load_input(input_name)
        for model in args.models:
            params = recipe_for(model, input_name, args.tuned)
            config = TrainConfig(model=model, seeds=tuple(args.seeds), padding=args.padding, **params)
            out = run_dir(input_name, model, args.padding, args.tuned)
            print(f"== {input_name} / {model} -> {out}", flush=True)
            metrics = train(table, config, out, data_spec=spec, jobs=args.jobs, progress=not args.quiet)
            print(f"   UAR {metrics['uar_mean']:.4f} ± {metrics['uar_std']:.4f} (max {metrics['uar_max']:.4f})", flush=True)


def run_dir(input_name, model, padding="zeros", tuned=False):
    # Zero padding and the fixed recipe are Table I's; other paddings and tuned recipes are kept apart.
    variant = "".join(suffix for suffix, on in (("_tuned", tuned), (f"_{padding}", padding != "zeros")) if on)
    return RUNS / f"{input_name}{variant}" / model


def tune_dir(model, input_name):
    return TUNE / f"{model}_{input_name}"


def machine_text():
    from sertiny.machine import cpu_model

    return f"{platform.machine()}, {os.cpu_count()} cores, {cpu_model()}"


def _row(input_name, model):
    path = RUNS / input_name / model / "metrics.json"
    paper_mean, paper_std, paper_max, paper_params = PAPER[model]
    if not path.exists():
        return f"| {model} | not run yet | | | {paper_mean:.4f} ± {paper_std:.4f} | {paper_max:.4f} | {paper_params} |"
    m = json.loads(path.read_text())
    delta = 100 * (m["uar_mean"] - paper_mean)
    return (f"| {model} | {m['uar_mean']:.4f} ± {m['uar_std']:.4f} ({m['n_seeds']} seed{'s' if m['n_seeds'] != 1 else ''}) | {m['uar_max']:.4f} | "
            f"{delta:+.1f} pp | {paper_mean:.4f} ± {paper_std:.4f} | {paper_max:.4f} | "
            f"{m['trainable_params']:,} Keras ({paper_params} paper) |")


def _padding_section():
    """Zero padding (the paper's, and what the device runs) against masked padding, per seed."""
    rows = []
    for input_name in INPUTS:
        for model in MODELS:
            zeros, masked = (run_dir(input_name, model, p) / "metrics.json" for p in ("zeros", "masked"))
            if not (zeros.exists() and masked.exists()):
                continue
            z, m = json.loads(zeros.read_text()), json.loads(masked.read_text())
            seeds = sorted(set(z["uar_per_seed"]) & set(m["uar_per_seed"]), key=int)
            diffs = [100 * (z["uar_per_seed"][s] - m["uar_per_seed"][s]) for s in seeds]
            rows.append(f"| {input_name} | {model} | {len(seeds)} | {z['uar_mean']:.4f} ± {z['uar_std']:.4f} | "
                        f"{m['uar_mean']:.4f} ± {m['uar_std']:.4f} | {', '.join(f'{d:+.1f}' for d in diffs)} |")
    return _section(
        "Padding: zero frames (as deployed) vs masked",
            ("Short clips are zero-padded at the end to T frames after normalisation (the network runs over "
             "them, exactly as the exported fixed-length graph does); longer ones are centre-cropped. "
             "`--padding masked` instead carries the LSTM state over padded frames and masks them out of "
             "the attention, like PyTorch packed sequences. Same recipe and seeds; runs made with "
             "`python train/table1.py run --padding masked --models ...`."),
        ["input", "model", "seeds", "zeros: UAR mean ± std", "masked: UAR mean ± std", "zeros - masked per seed (pp)"],
        rows)


def _tuning_section():
    """Per-model Optuna studies: the best trial (selected on the pooled test UAR, as the paper
    does) beside the fixed recipe on the same seed, and the tuned parameters on fresh seeds."""
    import csv

    rows = []
    for input_name in INPUTS:
        for model in MODELS:
            best_file = tune_dir(model, input_name) / "best_params.json"
            if not best_file.exists():
                continue
            best = json.loads(best_file.read_text())
            trials = list(csv.DictReader((best_file.parent / "trials.csv").open()))
            done = [t for t in trials if t["state"] == "COMPLETE"]
            pruned = sum(t["state"] == "PRUNED" for t in trials)
            study = json.loads((best_file.parent / "tune_config.json").read_text())
            selected_on = str(study["train_seed"])
            fixed = json.loads((run_dir(input_name, model) / "metrics.json").read_text())["uar_per_seed"]
            tuned_path = run_dir(input_name, model, tuned=True) / "metrics.json"
            tuned = json.loads(tuned_path.read_text())["uar_per_seed"] if tuned_path.exists() else {}
            fresh = [s for s in tuned if s != selected_on]
            p = best["params"]
            params = (f"lr {p['lr']:.2e}, wd {p['weight_decay']:.2e}, dropout {p['dropout']:.2f}, "
                      f"T0 {p['t0']}, batch {p['batch_size']}")
            rows.append(f"| {input_name} | {model} | {len(done)} + {pruned} pruned ({study['pruner']}) | "
                        f"{best['value']:.4f} (trial {best['trial']}, seed {selected_on}) | {_uar(fixed, [selected_on])} | {_uar(tuned, fresh)} | {_uar(fixed, fresh)} | {params} |")
    return _section(
        "Per-model tuning (Optuna TPE over the paper's search space)",
            ("Each trial trains the full protocol (5 folds x 100 epochs, one training seed) and scores the pooled "
             "out-of-fold test UAR, the paper's objective, so the best trial is selected on the test speakers; "
             "the same parameters on fresh training seeds say what that selection was worth. Study: "
             "`sertiny tune --features ../shared/data/ravdess48k_paper_features.npz --model MODEL --space paper "
             "--workers 2 --out runs/tune/MODEL_paper`; fresh seeds: "
             "`python train/table1.py run --tuned --models MODEL --inputs paper --seeds 1,2`."),
        ["input", "model", "trials", "best trial: test UAR", "fixed recipe, same seed", "tuned, fresh seeds",
         "fixed recipe, same seeds", "best parameters"],
        rows)


def _uar(per_seed, seeds):
    """Mean ± std of the given seeds' UARs, naming the seeds; blank if any is missing."""
    import numpy as np

    if not seeds or any(s not in per_seed for s in seeds):
        return ""
    values = [per_seed[s] for s in seeds]
    if len(values) == 1:
        return f"{values[0]:.4f}"
    return f"{np.mean(values):.4f} ± {np.std(values):.4f} (seeds {', '.join(seeds)})"


def _section(title, intro, header, rows):
    """A report section with a table, or nothing while no run behind it has finished."""
    if not rows:
        return []
    return [f"## {title}", "", intro, "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header), *rows, ""]


def report(args):
    lines = [
        "# Table I reproduced",
        "",
        f"Written by `python train/table1.py report` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
        f"machine: {machine_text()}. Runs made with `python train/table1.py run` (see the per-run `train_config.json` "
        "under `runs/table1/`).",
        "",
        "Recipe of the rows below (a documented fixed choice, the same for every model; per-model tuning has its "
        "own section; `train/table1_recipe.json`):",
        "",
        "```json",
        RECIPE.read_text().strip(),
        "```",
        "",
    ]
    for input_name, description in INPUTS.items():
        lines += [f"## Input: {input_name} — {description}", "",
                  "| model | UAR mean ± std (ours) | UAR max | vs paper mean | paper mean ± std | paper max | params |",
                  "|---|---|---|---|---|---|---|"]
        lines += [_row(input_name, m) for m in MODELS]
        lines.append("")
    lines += _padding_section()
    lines += _tuning_section()
    text = "\n".join(lines) + "\n" + (args.notes.read_text() if args.notes and args.notes.exists() else "")
    from sertiny._io import atomic_write_text

    atomic_write_text(args.out, text)
    print(text)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_run = sub.add_parser("run")
    p_run.add_argument("--models", nargs="+", default=MODELS, choices=MODELS)
    p_run.add_argument("--inputs", nargs="+", default=list(INPUTS), choices=list(INPUTS))
    p_run.add_argument("--seeds", type=lambda s: [int(x) for x in s.split(",")], default=[0, 1, 2])
    p_run.add_argument("--jobs", type=int, default=1)
    p_run.add_argument("--padding", choices=["zeros", "masked"], default="zeros",
                       help="masked runs go to runs/table1/<input>_masked/ for the padding comparison")
    p_run.add_argument("--tuned", action="store_true",
                       help="train with runs/tune/<model>_<input>/best_params.json into runs/table1/<input>_tuned/")
    p_run.add_argument("--quiet", action="store_true")
    p_rep = sub.add_parser("report")
    p_rep.add_argument("--out", type=Path, default=ROOT / "results" / "table1.md")
    p_rep.add_argument("--notes", type=Path, default=ROOT / "results" / "table1_notes.md",
                       help="hand-written findings appended below the table")
    args = parser.parse_args()
    run(args) if args.command == "run" else report(args)


if __name__ == "__main__":
    main()
