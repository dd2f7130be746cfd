"""Seconds per training epoch of ResLSTM-SA-h64: sertiny (Keras 3 on JAX) vs a PyTorch loop
in the style of the paper's reference code, side by side in one run.

Both train the same network on the same clips (the paper's RAVDESS features, the largest
training split of the paper's folds, batch 32) and both validate every epoch, as the
protocol does. Compilation / warm-up epochs are excluded and reported separately.

    python benchmarks/train_speed.py [--epochs 5] [--out results/train_speed.md]

The PyTorch side needs torch (``pip install torch==2.13.0``); it is skipped if absent.
"""

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
NPZ = ROOT.parent / "shared" / "data" / "ravdess48k_paper_features.npz"


def load_split():
    """Fold 5 of the paper (test 1,4,9,22; validation 2,5): the largest training set."""
    from sertiny.data.splits import fold_indices, ravdess_paper_folds
    from sertiny.features.normalize import fit_norm_stats
    from sertiny.features.table import load_paper_features

    table = load_paper_features(NPZ)
    fold = ravdess_paper_folds()[4]
    train_idx, val_idx, _ = fold_indices(table.speakers, fold)
    norm = fit_norm_stats([table.features[i] for i in train_idx])
    clips = lambda idx: [norm.apply(table.features[i]) for i in idx]  # noqa: E731
    return clips(train_idx), table.labels[train_idx], clips(val_idx), table.labels[val_idx]


def time_sertiny(train, y_train, val, y_val, epochs, batch_size=32):
    from sertiny.models import model_config
    from sertiny.training.config import TrainConfig
    from sertiny.training.inputs import choose_seq_len, stack_clips
    from sertiny.training.loop import train_fold

    seq_len = choose_seq_len([len(c) for c in train + val])
    x_tr, _ = stack_clips(train, seq_len)
    x_va, _ = stack_clips(val, seq_len)
    stamps = []
    config = TrainConfig(epochs=epochs + 1, batch_size=batch_size, lr=2e-4)
    mcfg = model_config("res_lstm_sa_h64", seq_len=seq_len)
    start = time.perf_counter()
    train_fold(mcfg, config, x_tr, y_train.astype(np.int32), x_va, y_val.astype(np.int32), seed=0,
               progress=lambda epoch, row: stamps.append(time.perf_counter()))
    first = stamps[0] - start  # includes jit compilation
    per_epoch = np.diff(stamps)  # epochs 2..N+1, compiled
    return {"first_epoch_s": first, "epoch_s": float(np.median(per_epoch)), "seq_len": seq_len}


def time_torch(train, y_train, val, y_val, epochs, batch_size=32):
    """The reference-style PyTorch loop (benchmarks/torch_reference.py), same clips and batch."""
    import torch

    sys.path.insert(0, str(Path(__file__).parent))
    from torch_reference import ReferenceTrainer

    trainer = ReferenceTrainer(lr=2e-4, weight_decay=1e-4, batch_size=batch_size)
    as_t = lambda clips: [torch.from_numpy(np.ascontiguousarray(c, dtype=np.float32)) for c in clips]  # noqa: E731
    train_t, val_t, y_train_t = as_t(train), as_t(val), torch.from_numpy(np.asarray(y_train))
    stamps = [time.perf_counter()]
    for _ in range(epochs + 1):
        trainer.epoch(train_t, y_train_t)
        trainer.predict(val_t)  # the protocol validates every epoch
        stamps.append(time.perf_counter())
    per_epoch = np.diff(stamps)
    return {"first_epoch_s": float(per_epoch[0]), "epoch_s": float(np.median(per_epoch[1:])),
            "threads": torch.get_num_threads()}


def machine():
    from sertiny.machine import cpu_model

    return f"{platform.machine()}, {os.cpu_count()} cores, {cpu_model()}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5, help="timed epochs per system (after one warm-up)")
    parser.add_argument("--out", type=Path, help="append a Markdown report here")
    args = parser.parse_args()
    train, y_train, val, y_val = load_split()
    print(f"ResLSTM-SA-h64, {len(train)} training clips, {len(val)} validation clips, batch 32")
    rows = {"sertiny (Keras 3 + JAX, fixed T)": time_sertiny(train, y_train, val, y_val, args.epochs)}
    try:
        rows["PyTorch reference style (packed sequences)"] = time_torch(train, y_train, val, y_val, args.epochs)
    except ImportError:
        print("torch not installed: PyTorch side skipped (pip install torch==2.13.0)")
    base = rows.get("PyTorch reference style (packed sequences)")
    lines = ["| system | s/epoch (median) | first epoch incl. compile (s) | speed-up vs PyTorch |", "|---|---|---|---|"]
    for name, r in rows.items():
        ratio = f"{base['epoch_s'] / r['epoch_s']:.2f}x" if base else "n/a"
        lines.append(f"| {name} | {r['epoch_s']:.3f} | {r['first_epoch_s']:.2f} | {ratio} |")
    table = "\n".join(lines)
    print(table)
    if args.out:
        stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        text = (f"\n## Training speed ({stamp})\n\nMachine: {machine()}. "
                f"{len(train)} training clips, {len(val)} validation clips per epoch, batch 32, "
                f"{args.epochs} timed epochs each.\n\nCommand: `python benchmarks/train_speed.py --epochs {args.epochs} "
                f"--out {args.out}`\n\n{table}\n")
        with open(args.out, "a") as f:
            f.write(text)


if __name__ == "__main__":
    main()
