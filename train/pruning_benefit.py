#!/usr/bin/env python
"""What fold-level pruning buys ``sertiny tune``: trials per hour and best UAR after a fixed time.

Runs one study per pruner (``none``, ``median``, ``halving``) on the same reduced problem,
all at the same time so they share the machine alike, each for the same wall-clock
budget; then reads the studies and prints a markdown table for results/tuning.md.

The reduced problem keeps what pruning acts on (the paper's 5 speaker folds on all 24
RAVDESS actors, the paper's space) and shrinks the cost of a trial: a smaller model,
fewer epochs, batch size pinned (one set of compiled shapes). Only trials that finished
within the budget count; the one each study was running at the deadline does not.

All studies share the TPE seed, so they propose the same configurations for as long as
their histories agree. That pairs them: "folds / trial" is the compute a decided trial
cost, independent of how busy the machine was, and a trial pruned in one study but run
to the end in the unpruned one shows whether pruning threw away a would-be best.

    python train/pruning_benefit.py --minutes 11
    python train/pruning_benefit.py --minutes 11 --analyse-only   # re-read the studies
"""

import argparse
import datetime
import os
import platform
import subprocess
import sys
from pathlib import Path

STARTUP_TRIALS = 10  # TuneConfig.tpe_startup_trials, the default `sertiny tune` runs with
DEFAULT_FEATURES = Path(__file__).resolve().parents[2] / "shared" / "data" / "ravdess48k_paper_features.npz"


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--features", type=Path, default=DEFAULT_FEATURES, help="the paper's feature npz")
    parser.add_argument("--out", type=Path, default=Path("runs/pruning_benefit"), help="one study per pruner in here")
    parser.add_argument("--minutes", type=float, default=11.0, help="wall-clock budget of every study")
    parser.add_argument("--model", default="lstm_sa_h16")
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--pruners", default="none,median,halving")
    parser.add_argument("--seed", type=int, default=0, help="TPE seed, the same for every study")
    parser.add_argument("--analyse-only", action="store_true", help="only read the studies already in --out")
    return parser.parse_args()


def tune_command(args, pruner):
    return [sys.executable, "-c", "from sertiny.cli import main; main()", "tune",
            "--features", str(args.features), "--out", str(args.out / pruner), "--model", args.model,
            "--epochs", str(args.epochs), "--fix", f"batch_size={args.batch_size}", "--pruner", pruner,
            "--seed", str(args.seed), "--n-trials", "100000", "--timeout", f"{args.minutes}m", "--quiet"]


def run_studies(args, pruners):
    """Start every study at once and wait for all of them."""
    env = dict(os.environ, KERAS_BACKEND="jax")
    procs = {p: subprocess.Popen(tune_command(args, p), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                 text=True) for p in pruners}
    for pruner, proc in procs.items():
        _, stderr = proc.communicate()
        if proc.returncode != 0:
            sys.exit(f"the '{pruner}' study failed:\n{stderr[-3000:]}")


def finished_in_budget(args, pruner):
    """The study's trials that finished (complete or pruned) within the budget, and its start.

    The budget runs from the study's first trial, as --timeout does: process start-up and
    data loading are not part of it.
    """
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = f"sqlite:///{(args.out / pruner / 'study.db').resolve()}"
    trials = optuna.load_study(study_name=f"{args.model}-paper-test", storage=storage).get_trials()
    first = min(t.datetime_start for t in trials if t.datetime_start is not None)
    cutoff = first + datetime.timedelta(minutes=args.minutes)
    done = [t for t in trials if t.state.name in ("COMPLETE", "PRUNED") and t.datetime_complete <= cutoff]
    return sorted(done, key=lambda t: t.datetime_complete), first


def measure(args, pruner, done, unpruned_values):
    """Throughput and outcome of one study.

    ``unpruned_values`` maps a parameter set to its full-protocol value in the study
    without pruning. All studies share the TPE seed, so they propose the same
    configurations as long as their histories agree; a pruned trial whose configuration
    the unpruned study ran to the end shows whether pruning threw away a new best.
    """
    complete = [t for t in done if t.state.name == "COMPLETE"]
    hours = args.minutes / 60
    folds = sum(len(t.intermediate_values) for t in done)
    best_so_far, lost, judged = float("-inf"), 0, 0
    for t in done:  # in order of finishing
        if t.state.name == "COMPLETE":
            best_so_far = max(best_so_far, t.value)
            continue
        full = unpruned_values.get(_key(t))
        if full is not None:
            judged += 1
            lost += full > best_so_far
    # TPE's random start-up trials are the same configurations in every study: the
    # cleanest paired timing there is.
    startup = [t for t in done if t.number < STARTUP_TRIALS]
    startup_seconds = (sum((t.datetime_complete - t.datetime_start).total_seconds() for t in startup)
                       if len(startup) == STARTUP_TRIALS else float("nan"))
    return {
        "pruner": pruner,
        "trials": len(done),
        "startup_seconds": startup_seconds,
        "pruned": len(done) - len(complete),
        "trials_per_hour": len(done) / hours,
        "folds_per_trial": folds / max(len(done), 1),
        "best_uar": max((t.value for t in complete), default=float("nan")),
        "best_trial": max(complete, key=lambda t: t.value).number if complete else None,
        "lost": f"{lost} of {judged}" if judged else "–",
    }


def _key(trial):
    return tuple(sorted(trial.params.items()))


def machine(load=None):
    from sertiny.machine import cpu_model

    text = f"{cpu_model()}, {os.cpu_count()} logical CPUs, Python {platform.python_version()}"
    return text + (f", load average at the end {load} (the machine is shared)" if load else "")


def report(args, rows, started, load):
    when = started.strftime("%Y-%m-%d %H:%M")
    lines = [
        f"- Measured {when} on {machine(load)}.",
        (f"- Command: `python train/pruning_benefit.py --minutes {args.minutes:g} --model {args.model} "
         f"--epochs {args.epochs} --batch-size {args.batch_size} --seed {args.seed}`"),
        (f"- Problem: {args.model}, {args.epochs} epochs per fold, batch size {args.batch_size} pinned, paper space "
         "for lr / weight decay / dropout / T0, paper folds on all 24 actors, pooled test UAR; "
         f"{len(rows)} studies run side by side for {args.minutes:g} min each."),
        "",
        ("| pruner | trials finished | of which pruned | trials / hour | folds / trial "
         f"| s for the first {STARTUP_TRIALS} trials | best UAR (trial) | pruned trials that would have been a new best |"),
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['pruner']} | {r['trials']} | {r['pruned']} | {r['trials_per_hour']:.0f} | "
                     f"{r['folds_per_trial']:.1f} | {r['startup_seconds']:.0f} | {r['best_uar']:.4f} ({r['best_trial']}) "
                     f"| {r['lost']} |")
    return "\n".join(lines)


def main():
    args = parse_args()
    pruners = [p.strip() for p in args.pruners.split(",") if p.strip()]
    load = None
    if not args.analyse_only:
        if not args.features.exists():
            sys.exit(f"{args.features} not found; pass --features")
        if args.out.exists() and any(args.out.iterdir()):
            sys.exit(f"{args.out} is not empty; pass another --out (the studies would resume, not start afresh)")
        print(f"running {', '.join(pruners)} side by side for {args.minutes:g} min ...", file=sys.stderr)
        run_studies(args, pruners)
        from sertiny.machine import load_average

        averages = load_average()
        if averages is not None:
            load = " / ".join(f"{x:.1f}" for x in averages)
    studies = {p: finished_in_budget(args, p) for p in pruners}
    unpruned = {_key(t): t.value for t in studies["none"][0]} if "none" in studies else {}
    rows = [measure(args, p, done, unpruned) for p, (done, _) in studies.items()]
    print(report(args, rows, min(first for _, first in studies.values()), load))


if __name__ == "__main__":
    main()
