"""Float vs int8 parity on held-out speakers: each fold's model, exported the same way.

The deployment model has no held-out speakers (it trained on all of them), so its int8
cost is estimated by exporting every fold model of one seed with the same settings and
scoring each on its fold's test speakers. Figures are given per fold and pooled (the
paper's protocol: one UAR over all out-of-fold predictions).
"""

import numpy as np

from ..metrics import uar
from .graph import fold_weights
from .run import fold_data, load_weight_set
from .variants import build_variants, predict


def fold_predictions(run, table, config, seed, fold, progress=None):
    """Build every variant for one fold model and predict its test speakers.

    Returns ``(labels (N,), {variant: probs (N, C)})``.
    """
    name = f"seed{seed}_fold{fold.index}"
    weight_set = load_weight_set(run, name)
    data = fold_data(run, table, weight_set, fold)
    fw = fold_weights(weight_set.weights, run.model_config)
    variants = build_variants(fw, run.model_config, config, data.train_clips, data.train_labels)
    probs = {}
    for vname, variant in variants.items():
        if progress:
            progress(f"{name}: predicting {len(data.test_clips)} held-out clips with {vname}")
        probs[vname] = predict(variant, data.test_clips, run.seq_len)
    return data.test_labels, probs


def measure(run, table, config, progress=None):
    """Per-fold and pooled float/int8 figures for every variant (see module docstring).

    Folds still training (no weights yet) are left out and the result says which were
    measured; returns None if no fold of the seed has finished.
    """
    seed = config.parity_seed if config.parity_seed is not None else run.seeds[0]
    available = set(run.available_weights())
    folds = [f for f in run.folds if f"seed{seed}_fold{f.index}" in available]
    if not folds:
        return None
    per_fold, labels, pooled = [], [], {}
    for fold in folds:
        if progress:
            progress(f"parity: seed {seed} fold {fold.index}: converting")
        y, probs = fold_predictions(run, table, config, seed, fold, progress)
        per_fold.append(summarize(y, probs, fold=fold.index))
        labels.append(y)
        for vname, p in probs.items():
            pooled.setdefault(vname, []).append(p)
    y_all = np.concatenate(labels)
    pooled_summary = summarize(y_all, {k: np.concatenate(v) for k, v in pooled.items()})
    return {"seed": seed, "n_clips": int(y_all.size), "folds": [f.index for f in folds], "n_folds": len(run.folds),
            "pooled": pooled_summary, "per_fold": per_fold}


def summarize(y, probs, fold=None):
    """UAR per variant; for each other variant, agreement with and UAR drop from ``f32``,
    and for float variants the largest probability difference to ``f32``."""
    reference = probs["f32"]
    ref_pred = reference.argmax(1)
    n_classes = reference.shape[1]
    out = {"n": len(y)} if fold is None else {"fold": fold, "n": len(y)}
    for name, p in probs.items():
        pred = p.argmax(1)
        entry = {"uar": uar(y, pred, n_classes)}
        if name != "f32":
            entry["agreement"] = float((pred == ref_pred).mean())
            entry["uar_drop_pp"] = 100.0 * (out["f32"]["uar"] - entry["uar"])
            if not name.startswith("int"):  # float variants: how close, not just top-1
                entry["max_abs_diff"] = float(np.abs(p - reference).max())
        out[name] = entry
    return out
