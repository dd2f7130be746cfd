"""Simulate capping the int8 range of the LSTM cell state (results/export.md, "Capping the cell-state range").

    python export/cell_range_sim.py runs/table1/paper/res_lstm_sa_h64 [--caps 8,6,4,3,2] [--calib-clips 200]

For every fold model of the run's first seed: NumPy recurrence (export/int8_simulation.py)
with min/max ranges from the calibration clips, c and f*c ranges capped at +-cap; prints top-1 agreement with float on the held-out speakers, with every tensor int8
and with only the cell state int8.
"""

import argparse
import sys
from pathlib import Path

import numpy as np

from int8_simulation import simulate  # export/int8_simulation.py, beside this file


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--caps", type=lambda s: [float(x) for x in s.split(",")], default=[8, 6, 4, 3, 2])
    parser.add_argument("--calib-clips", type=int, default=200)
    args = parser.parse_args()

    from sertiny.export import calibration
    from sertiny.export.graph import fold_weights
    from sertiny.export.run import fold_data, load_run, load_table, load_weight_set
    from sertiny.features.frames import fit_to_length

    run = load_run(args.run)
    table = load_table(run)
    caps = [None, *args.caps]
    agree = {(cap, scope): [] for cap in caps for scope in ("all", "c")}
    for fold in run.folds:
        weight_set = load_weight_set(run, f"seed{run.seeds[0]}_fold{fold.index}")
        data = fold_data(run, table, weight_set, fold)
        fw = fold_weights(weight_set.weights, run.model_config)

        def stack(clips):
            return np.stack([fit_to_length(c, run.seq_len) for c in clips]).astype(np.float64)

        calib = stack([data.train_clips[i] for i in calibration.pick_clips(data.train_labels, args.calib_clips)])
        ranges = {}
        simulate(fw, calib, record=ranges)
        test = stack(data.test_clips)
        reference = simulate(fw, test)
        for cap in caps:
            capped = {k: (max(lo, -cap), min(hi, cap)) if cap and k.lstrip("12") in ("c", "fc") else (lo, hi)
                      for k, (lo, hi) in ranges.items()}
            agree[cap, "all"].append(simulate(fw, test, {"*"}, capped, 8) == reference)
            agree[cap, "c"].append(simulate(fw, test, {"c", "fc"}, capped, 8) == reference)
        print(f"fold {fold.index} done", file=sys.stderr, flush=True)
    print("| cap on c | " + " | ".join("none" if c is None else f"±{c:g}" for c in caps) + " |")
    print("|---|" + "---:|" * len(caps))
    for scope, label in (("all", "everything int8"), ("c", "only c (and f·c) int8")):
        print(f"| {label} | " + " | ".join(f"{np.concatenate(agree[c, scope]).mean():.1%}" for c in caps) + " |")


if __name__ == "__main__":
    main()
