"""Train a few folds of the paper protocol with one recipe: a cheap probe before full runs.

    python train/probe_recipe.py NAME '{"batch_size": 8, "lr": 1e-4}' [--folds 1,2] [--model res_lstm_sa_h64]

Writes runs/probe/NAME (a normal run directory) and prints each fold's test UAR.
"""

import argparse
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NPZ = ROOT.parent / "shared" / "data" / "ravdess48k_paper_features.npz"


def main():
    from sertiny.features.table import load_paper_features
    from sertiny.training import TrainConfig
    from sertiny.training.protocol import prepare_run, run_fold

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name")
    parser.add_argument("params", type=json.loads, help="TrainConfig fields as JSON")
    parser.add_argument("--folds", default="1,2")
    parser.add_argument("--model", default="res_lstm_sa_h64")
    args = parser.parse_args()
    table = load_paper_features(NPZ)
    ctx = prepare_run(table, TrainConfig(model=args.model, **args.params), ROOT / "runs" / "probe" / args.name)
    wanted = {int(f) for f in args.folds.split(",")}
    for fold in ctx.folds:
        if fold.index in wanted:
            summary = ctx.run_dir.read_fold(0, fold.index) or run_fold(ctx, 0, fold)
            print(f"{args.name} fold {fold.index}: best epoch {summary['best_epoch']}, "
                  f"val UAR {summary['val_uar']:.3f}, test UAR {summary['test_uar']:.3f}", flush=True)


if __name__ == "__main__":
    main()
