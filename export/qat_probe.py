"""Probe (results/export.md): fine-tune each fold model with a fake-quantised LSTM cell state.

    python export/qat_probe.py runs/table1/paper/res_lstm_sa_h64 /tmp/qat_run --cap 4 --epochs 8 --lr 5e-5
    sertiny export /tmp/qat_run --out /tmp/qat_bundle --chunk 1 --cell-range 4 --no-tflm

Copies RUN to OUT_RUN and replaces seed 0's fold weights with weights fine-tuned for a few
epochs on the fold's training speakers, with the cell state c clipped to +-cap and rounded
to the int8 step (straight-through gradient) at every frame. The export of OUT_RUN then
measures whether a model trained to tolerate that rounding agrees better with its int8
version. An experiment, not a product feature: the LSTM layers are swapped for a
Keras RNN of a subclassed LSTMCell, whose weights have the same names and shapes.
"""

import argparse
import os
import shutil
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "jax")
import numpy as np

ap = argparse.ArgumentParser()
ap.add_argument("run", type=Path)
ap.add_argument("out", type=Path)
ap.add_argument("--cap", type=float, default=4.0)
ap.add_argument("--epochs", type=int, default=8)
ap.add_argument("--lr", type=float, default=5e-5)
ap.add_argument("--folds", default="1,2,3,4,5")
args = ap.parse_args()

import keras
from keras import ops
import sertiny.models.lstm_sa as lsa
from sertiny.models import create_model
from sertiny.models.weights import get_weights, set_weights, save_weights
from sertiny.export.run import load_run, load_table, load_weight_set, fold_data
from sertiny.training.loop import Trainer, shuffled_batches
from sertiny.training.rundir import RunDir
from sertiny.features.frames import fit_to_length

CAP = args.cap
STEP = 2 * CAP / 255


class FQCell(keras.layers.LSTMCell):
    def _compute_carry_and_output_fused(self, z, c_tm1):
        c, o = super()._compute_carry_and_output_fused(z, c_tm1)
        cq = ops.clip(c, -CAP, CAP)
        cq = cq + ops.stop_gradient(ops.round(cq / STEP) * STEP - cq)
        return cq, o


def fq_lstm(units, return_sequences=True, go_backwards=False, name=None, **kw):
    cell = FQCell(units, **kw)
    return keras.layers.RNN(cell, return_sequences=return_sequences, go_backwards=go_backwards, name=name)


lsa.keras.layers.LSTM = fq_lstm  # the probe's only change to the model: the cell

run = load_run(args.run)
table = load_table(run)
if args.out.exists():
    shutil.rmtree(args.out)
shutil.copytree(args.run, args.out, ignore=shutil.ignore_patterns("*.png"))
for k in [int(x) for x in args.folds.split(",")]:
    fold = run.fold(k)
    name = f"seed{run.seeds[0]}_fold{k}"
    ws = load_weight_set(run, name)
    data = fold_data(run, table, ws, fold)
    model = create_model(run.model_config)
    set_weights(model, ws.weights)
    x = np.stack([fit_to_length(c, run.seq_len) for c in data.train_clips])
    y = data.train_labels.astype(np.int32)
    tr = Trainer(model, 1e-2)
    tr.set_lr(args.lr)
    rng = np.random.default_rng(k)
    for e in range(args.epochs):
        losses = [float(tr.step(x[i], y[i])) for i in shuffled_batches(len(x), 8, rng)]
        print(f"fold {k} epoch {e + 1} loss {np.mean(losses):.4f}", flush=True)
    tr.sync_to_model()
    save_weights(RunDir(args.out).fold_dir(run.seeds[0], k) / "weights.npz", get_weights(model))
