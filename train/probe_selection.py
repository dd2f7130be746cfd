"""How much choosing the epoch on the test speakers would inflate Table I's UAR.

    python train/probe_selection.py [--model res_lstm_sa_h64] [--input paper] [--seed 0] [--jobs 2]

Trains each of the paper's five folds exactly as Table I's run does (same recipe, same seeds,
so the same initialisation and batch order), except that the epoch is kept by its UAR on the
fold's *test* speakers instead of its two validation speakers. The pooled out-of-fold UAR of
those epochs is an upper bound of what selection on test data can add; beside it, the honest
figure of the same seed from ``runs/table1``. Nothing is written except the printed table
(and ``--out``, a JSON of the per-fold figures).
"""

import argparse
import json
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

import table1  # train/table1.py: Table I's recipe, runs and data loading


def _fold(model, input_name, seed, fold_index):
    from sertiny.training import TrainConfig
    from sertiny.training.loop import train_fold
    from sertiny.models import ModelConfig
    from sertiny.training.protocol import fold_inputs, fold_seed
    from sertiny.training.rundir import RunDir

    _, table = table1.load_input(input_name)
    run = RunDir(table1.run_dir(input_name, model))
    # Read, never rewrite, the Table I run: its T, model config, folds and recipe.
    info = run.info()
    config = TrainConfig.from_dict(run.train_config())
    fold = next(f for f in run.folds() if f.index == fold_index)
    data = fold_inputs(table, fold, info["seq_len"], config.normalization)
    x_tr, y_tr, x_te, y_te = data.x_train, data.y_train, data.x_test, data.y_test
    seed_value = fold_seed(seed, fold.index)
    mcfg = ModelConfig.from_dict(info["model_config"]).replace(seed=seed_value)
    result, trainer = train_fold(mcfg, config, x_tr, y_tr, x_te, y_te, seed=seed_value)
    predicted = trainer.predict(x_te).argmax(1)
    return {"fold": fold_index, "oracle_epoch": result.best_epoch + 1, "oracle_test_uar": result.best_val_uar,
            "y": y_te.tolist(), "predicted": predicted.tolist(), "n_classes": mcfg.n_classes}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="res_lstm_sa_h64", choices=table1.MODELS)
    parser.add_argument("--input", default="paper", choices=list(table1.INPUTS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    import multiprocessing

    from sertiny.metrics import uar
    from sertiny.training.rundir import RunDir

    with ProcessPoolExecutor(args.jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [pool.submit(_fold, args.model, args.input, args.seed, k) for k in range(1, 6)]
        folds = [f.result() for f in futures]
    y = np.concatenate([f["y"] for f in folds])
    p = np.concatenate([f["predicted"] for f in folds])
    oracle = uar(y, p, folds[0]["n_classes"])
    run = RunDir(table1.run_dir(args.input, args.model))
    honest = json.loads((run.seed_dir(args.seed) / "metrics.json").read_text())
    print(f"{args.model} on {args.input}, seed {args.seed}")
    print("| fold | epoch kept on validation speakers | its test UAR | epoch kept on test speakers | its test UAR |")
    print("|---|---|---|---|---|")
    for f in folds:
        info = run.read_fold(args.seed, f["fold"])
        print(f"| {f['fold']} | {info['best_epoch']} | {info['test_uar']:.4f} | {f['oracle_epoch']} | {f['oracle_test_uar']:.4f} |")
    print(f"pooled UAR: validation-selected {honest['uar']:.4f}, test-selected {oracle:.4f} "
          f"({100 * (oracle - honest['uar']):+.1f} pp)")
    if args.out:
        args.out.write_text(json.dumps({"model": args.model, "input": args.input, "seed": args.seed,
                                        "pooled_validation_selected": honest["uar"], "pooled_test_selected": oracle,
                                        "folds": [{k: v for k, v in f.items() if k not in ("y", "predicted")} for f in folds]},
                                       indent=1))


if __name__ == "__main__":
    main()
