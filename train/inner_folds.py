"""Choose between accuracy recipes on inner speaker folds of each outer fold's training speakers.

    python train/inner_folds.py run    --recipes reg_all,reg_all_light [--models res_lstm_sa_h64]
                                       [--input edge16k_peak40] [--seeds 0] [--inner-folds 4] [--outer 1,2]
    python train/inner_folds.py report [--out results/inner_folds.md]

Why: train/accuracy.py compares recipes on each paper fold's two validation speakers (ten
speakers in all). Several recipes now sit within 2 pp there, which those ten speakers cannot
rank, and the test speakers must not. Here each outer (paper) fold's non-test speakers are cut
into ``--inner-folds`` speaker-independent folds (one validation speaker each, for the history
only: the recipes keep their last epoch), and every recipe is trained and tested on them. A
recipe's *inner UAR* for outer fold k is the pooled out-of-fold UAR over all of fold k's
non-test speakers (mean over seeds); no outer test speaker is ever heard or scored.

``run`` trains into ``runs/accuracy_inner/<input>/<model>/<recipe>/outer_<k>``: normal,
resumable run directories (rerun the command after an interruption; start one process per core
with different ``--recipes`` or ``--outer``). Every inner run uses the outer run's clip length
T, so its model is the one train/accuracy.py trains. A distilling recipe's teacher is the
teacher recipe's inner run of the same outer fold (train it first): a teacher from the outer
run would have heard the inner test speakers.

``report`` writes ``results/inner_folds.md`` and ``.json`` with the command, date and machine:
each recipe's inner UAR per outer fold, the recipe the inner folds choose (highest mean inner
UAR) and, from the outer runs in runs/accuracy, the *nested* test UAR: each outer fold's test
speakers scored by the models of the recipe that fold's own inner folds chose. That figure
involves no choice made on a test speaker.
"""

import argparse
import csv
import dataclasses
import json
import os
import time
from pathlib import Path

import numpy as np

import accuracy  # train/accuracy.py, beside this file: the recipes, inputs and outer runs

ROOT = accuracy.ROOT
INNER_RUNS = ROOT / "runs" / "accuracy_inner"
# One validation speaker per inner fold: the recipes compared keep their last epoch, so it only
# fills the history, and every speaker it takes is one fewer to train on.
INNER_VAL_SPEAKERS = 1


def inner_run_dir(input_name, model, recipe, outer):
    return INNER_RUNS / input_name / model / recipe / f"outer_{outer}"


def inner_table(table, outer_fold):
    """The clips of ``table`` whose speaker is not one of ``outer_fold``'s test speakers."""
    return table.subset(~np.isin(table.speakers, list(outer_fold.test_speakers)))


def inner_config(recipe, model, input_name, seeds, outer, n_inner, seq_len):
    """``recipe``'s TrainConfig for the inner folds of outer fold ``outer``: speaker k-fold on the
    remaining speakers, the outer run's T, and a teacher from the same outer fold's inner run."""
    config = accuracy.train_config(recipe, model, input_name, seeds)
    changes = {"folds": "kfold", "n_folds": n_inner, "n_val_speakers": INNER_VAL_SPEAKERS, "seq_len": seq_len}
    teacher = accuracy.teacher_of(recipe, model)
    if config.teacher and teacher is None:
        raise SystemExit(f"{recipe}: its teacher file ({config.teacher}) was fitted on the outer folds' training "
                         "speakers, which include the inner test speakers; inner folds need a teacher run "
                         "(teacher_recipe) that they can train per outer fold.")
    if teacher is not None:
        teacher_model, teacher_recipe = teacher
        changes["teacher"] = inner_run_dir(input_name, teacher_model, teacher_recipe, outer).relative_to(ROOT).as_posix()
    return dataclasses.replace(config, **changes)


def run(args):
    from sertiny.training import train
    from sertiny.training.inputs import choose_seq_len
    from sertiny.training.protocol import resolve_folds
    from sertiny.training.run import pin_single_thread

    os.chdir(ROOT)  # teachers are named relative to the repository root
    if args.jobs == 1:
        pin_single_thread()
    recipes = accuracy.load_recipes()
    unknown = [r for r in args.recipes if r not in recipes]
    if unknown:
        raise SystemExit(f"unknown recipe(s) {unknown}; known: {sorted(recipes)}")
    spec, table = accuracy.load_input(args.input)
    for name in args.recipes:
        for model in args.models:
            outer_config = accuracy.train_config(name, model, args.input, args.seeds)
            seq_len = outer_config.seq_len or choose_seq_len(table.lengths, outer_config.seq_len_percentile)
            for fold in resolve_folds(table, outer_config):
                if args.outer and fold.index not in args.outer:
                    continue
                config = inner_config(name, model, args.input, args.seeds, fold.index, args.inner_folds, seq_len)
                out = inner_run_dir(args.input, model, name, fold.index)
                print(f"== {args.input} / {model} / {name} / outer fold {fold.index} -> {out}  "
                      f"({time.strftime('%H:%M:%S')})", flush=True)
                metrics = train(inner_table(table, fold), config, out, data_spec=spec, jobs=args.jobs,
                                progress=not args.quiet)
                print(f"   inner UAR {metrics['uar_mean']:.4f} ± {metrics['uar_std']:.4f}", flush=True)


def collect(inner_runs=INNER_RUNS):
    """``{(input, model): {recipe: {outer: inner UAR}}}`` of every finished inner run."""
    found = {}
    for metrics_file in sorted(Path(inner_runs).glob("*/*/*/outer_*/metrics.json")):
        front_end, model, recipe, outer = metrics_file.parent.relative_to(inner_runs).parts
        uar = json.loads(metrics_file.read_text())["uar_mean"]
        found.setdefault((front_end, model), {}).setdefault(recipe, {})[int(outer.removeprefix("outer_"))] = uar
    return found


def complete_recipes(per_recipe):
    """The recipes with an inner UAR on every outer fold any recipe has, and those folds."""
    outers = sorted({k for folds in per_recipe.values() for k in folds})
    return {r: folds for r, folds in per_recipe.items() if sorted(folds) == outers}, outers


def chosen_per_fold(per_recipe, outers):
    """``{outer: recipe}``: each outer fold's highest inner UAR (ties: the first name)."""
    return {k: max(sorted(per_recipe), key=lambda r: per_recipe[r][k]) for k in outers}


def nested_test_uar(outer_runs, chosen, outer_folds):
    """Pooled test UAR per seed when outer fold k's test speakers are scored by the fold-k
    models of ``chosen[k]``'s outer run (``outer_runs[recipe]``: its run directory).

    ``outer_folds``: ``{k: test speakers}``. Only seeds every chosen run has are scored.
    Returns ``{seed: UAR}``.
    """
    from sertiny.metrics import uar

    runs = {k: Path(outer_runs[chosen[k]]) for k in chosen}
    seeds = set.intersection(*({p.parent.name for p in run.glob("seed_*/oof_predictions.csv")}
                               for run in runs.values()))
    scores = {}
    for seed in sorted(seeds):
        y_true, y_pred, labels = [], [], None
        for k, run in runs.items():
            with open(run / seed / "oof_predictions.csv", newline="") as f:
                rows = [r for r in csv.DictReader(f) if r["speaker"] in outer_folds[k]]
            labels = labels or [c[2:] for c in rows[0] if c.startswith("p_")]
            y_true += [labels.index(r["label"]) for r in rows]
            y_pred += [labels.index(r["predicted"]) for r in rows]
        scores[int(seed.removeprefix("seed_"))] = uar(y_true, y_pred, len(labels))
    return scores


def _outer_folds(run):
    """``{k: test speakers}`` of an outer run (its run.json)."""
    return {f["index"]: set(f["test_speakers"]) for f in json.loads((Path(run) / "run.json").read_text())["folds"]}


def _outer_test(run):
    metrics = Path(run) / "metrics.json"
    return json.loads(metrics.read_text()) if metrics.is_file() else None


def report_lines(found, outer_run=accuracy.run_dir):
    """The markdown of the report and its JSON summary, from :func:`collect`'s ``found``."""
    lines, summary = [], []
    for (front_end, model), per_recipe in sorted(found.items()):
        per_recipe, outers = complete_recipes(per_recipe)
        if not per_recipe:
            continue
        ranked = sorted(per_recipe, key=lambda r: -_mean_uar(per_recipe[r]))
        chosen = chosen_per_fold(per_recipe, outers)
        lines += [f"## {model} on {front_end}", "",
                  "| recipe | " + " | ".join(f"inner UAR, outer fold {k}" for k in outers)
                  + " | mean | outer test UAR (runs/accuracy) |",
                  "|---|" + "---|" * (len(outers) + 2)]
        for recipe in ranked:
            test = _outer_test(outer_run(front_end, model, recipe))
            test_text = f"{test['uar_mean']:.4f} ± {test['uar_std']:.4f}" if test else "no outer run"
            lines.append(f"| {recipe} | " + " | ".join(f"{per_recipe[recipe][k]:.4f}" for k in outers)
                         + f" | {_mean_uar(per_recipe[recipe]):.4f} | {test_text} |")
        record = {"front_end": front_end, "model": model, "outer_folds": outers, "inner_uar": per_recipe,
                  "chosen": ranked[0], "chosen_per_fold": chosen}
        lines += ["", f"Chosen by the inner folds: **{ranked[0]}** (mean inner UAR "
                      f"{_mean_uar(per_recipe[ranked[0]]):.4f}"
                  + (f"; next {ranked[1]} {_mean_uar(per_recipe[ranked[1]]):.4f}" if len(ranked) > 1 else "")
                  + "). Per outer fold: " + ", ".join(f"{k}: {chosen[k]}" for k in outers) + "."]
        runs = {r: outer_run(front_end, model, r) for r in set(chosen.values())}
        if all(_outer_test(run) for run in runs.values()):
            nested = nested_test_uar(runs, chosen, _outer_folds(next(iter(runs.values()))))
            record["nested_test_uar_per_seed"] = nested
            values = list(nested.values())
            lines.append(f"Nested test UAR (each outer fold scored by the recipe its inner folds chose): "
                         f"**{np.mean(values):.4f} ± {np.std(values):.4f}** over seeds "
                         + ", ".join(f"{s}: {v:.4f}" for s, v in nested.items()) + ".")
        else:
            lines.append("Nested test UAR: not yet (an outer run of a chosen recipe is missing or unfinished).")
        lines.append("")
        summary.append(record)
    return lines, summary


def _mean_uar(per_fold):
    """Mean inner UAR over outer folds (``{outer: UAR}``)."""
    return accuracy._mean(list(per_fold.values()))


def report(args):
    from sertiny.machine import machine_info, machine_lines

    lines, summary = report_lines(collect())
    date = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    head = ["# Recipes chosen on inner speaker folds", "",
            "Written by `python train/inner_folds.py report`.", "", *machine_lines(machine_info()), "",
            "Each recipe's inner UAR is its pooled out-of-fold UAR on the inner speaker folds of one outer "
            "(paper) fold's non-test speakers, mean over seeds (train/inner_folds.py says how). No outer test "
            "speaker is heard or scored by the choice; the outer test UAR beside it is for the record.", ""]
    out = Path(args.out)
    out.write_text("\n".join(head + (lines or ["No finished inner runs yet.", ""])))
    out.with_suffix(".json").write_text(json.dumps(
        {"command": "python train/inner_folds.py report", "date": date, "machine": machine_info(),
         "models": summary}, indent=1) + "\n")
    print(f"wrote {out} and {out.with_suffix('.json')}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("run", help="train recipes on the inner speaker folds of the outer folds")
    p.add_argument("--recipes", type=lambda s: s.split(","), required=True,
                   help="comma-separated names from train/accuracy_recipes.json")
    p.add_argument("--models", type=lambda s: s.split(","), default=["res_lstm_sa_h64"])
    p.add_argument("--input", choices=accuracy.INPUTS, default=accuracy.SHIPPED_INPUT,
                   help="front end (default: the one the built-in bundle ships)")
    p.add_argument("--seeds", type=lambda s: [int(x) for x in s.split(",")], default=[0],
                   help="seeds per inner run (default 0: the many inner speakers, not seeds, carry the choice)")
    p.add_argument("--inner-folds", type=int, default=4, help="speaker folds of each outer fold's non-test speakers")
    p.add_argument("--outer", type=lambda s: [int(x) for x in s.split(",")], default=None,
                   help="only these outer folds (default: all)")
    p.add_argument("--jobs", type=int, default=1, help="folds trained in parallel processes")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=run)
    p = sub.add_parser("report", help="write results/inner_folds.md and .json")
    p.add_argument("--out", default=str(ROOT / "results" / "inner_folds.md"))
    p.set_defaults(func=report)
    args = parser.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
