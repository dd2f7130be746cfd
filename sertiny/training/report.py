"""Metrics over a finished run (scikit-learn) and its plots (matplotlib)."""

import numpy as np

from .._io import atomic_path, atomic_write_json, atomic_write_text
from ..metrics import per_class_recall
from .protocol import _csv, read_fold, read_predictions


def seed_metrics(out_dir, seed, folds, label_names, aux_tasks=()):
    """Pooled out-of-fold UAR (the paper's number), per-fold and per-class recall, confusion.

    ``aux_tasks``: a multi-task run's auxiliary heads, whose pooled out-of-fold accuracy and
    UAR go to ``metrics["auxiliary"]`` (extra information; the UAR above is the emotion head's).
    """
    from sklearn.metrics import confusion_matrix

    rows = [row for fold in folds for row in read_predictions(out_dir, seed, fold)]
    index = {name: i for i, name in enumerate(label_names)}
    y_true = np.array([index[r["label"]] for r in rows])
    y_pred = np.array([index[r["predicted"]] for r in rows])
    labels = list(range(len(label_names)))
    per_class = per_class_recall(y_true, y_pred, len(label_names))
    fold_info = [read_fold(out_dir, seed, fold) for fold in folds]
    metrics = {
        "seed": seed,
        "uar": float(per_class.mean()),
        "accuracy": float((y_true == y_pred).mean()),
        "per_class_recall": {n: float(r) for n, r in zip(label_names, per_class)},
        "per_fold": [{k: f[k] for k in ("fold", "test_uar", "val_uar", "best_epoch", "seconds")} for f in fold_info],
        "confusion": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
    }
    if aux_tasks:
        metrics["auxiliary"] = {task: _aux_metrics(rows, task) for task in aux_tasks}
    seed_dir = out_dir / f"seed_{seed}"
    atomic_write_json(seed_dir / "metrics.json", metrics)
    atomic_write_text(seed_dir / "oof_predictions.csv", _csv(rows))
    return metrics


def _aux_metrics(rows, task):
    from ..data.auxiliary import AUX_TASKS

    names = AUX_TASKS[task]
    y_true = np.array([names.index(r[task]) for r in rows])
    y_pred = np.array([names.index(r[f"predicted_{task}"]) for r in rows])
    per_class = per_class_recall(y_true, y_pred, len(names))
    return {"uar": float(per_class.mean()), "accuracy": float((y_true == y_pred).mean()),
            "per_class_recall": {n: float(r) for n, r in zip(names, per_class)}}


def run_metrics(out_dir, per_seed, label_names, n_params, model_name, *, aux_head_params=0):
    """The run's metrics over seeds; a multi-task run's auxiliary heads (``aux_head_params``
    trainable parameters, not counted in ``trainable_params``, the shipped model's) are
    summarised under ``auxiliary``."""
    uars = np.array([m["uar"] for m in per_seed])
    confusion = np.sum([m["confusion"] for m in per_seed], axis=0)
    metrics = {
        "model": model_name,
        "trainable_params": int(n_params),
        "n_seeds": len(per_seed),
        "uar_mean": float(uars.mean()),
        "uar_std": float(uars.std()),  # population std over seeds, as the reference notebook
        "uar_max": float(uars.max()),
        "uar_per_seed": {str(m["seed"]): m["uar"] for m in per_seed},
        "per_class_recall_mean": {
            n: float(np.mean([m["per_class_recall"][n] for m in per_seed])) for n in label_names
        },
        "confusion_all_seeds": confusion.tolist(),
        "seconds_total": float(sum(f["seconds"] for m in per_seed for f in m["per_fold"])),
    }
    if "auxiliary" in per_seed[0]:
        metrics["aux_head_params"] = int(aux_head_params)
        metrics["auxiliary"] = {task: _over_seeds([m["auxiliary"][task] for m in per_seed], per_seed)
                                for task in per_seed[0]["auxiliary"]}
    atomic_write_json(out_dir / "metrics.json", metrics)
    return metrics


def uar_summary(metrics):
    """``UAR 0.4190 ± 0.0150 over 3 seeds (max 0.4350)``, or ``UAR 0.4190 (1 seed)``: one
    seed has no spread to show."""
    if metrics["n_seeds"] == 1:
        return f"UAR {metrics['uar_mean']:.4f} (1 seed)"
    return (f"UAR {metrics['uar_mean']:.4f} ± {metrics['uar_std']:.4f} over {metrics['n_seeds']} seeds "
            f"(max {metrics['uar_max']:.4f})")


def _over_seeds(per_seed_task, per_seed):
    uars = np.array([m["uar"] for m in per_seed_task])
    return {"uar_mean": float(uars.mean()), "uar_std": float(uars.std()),
            "accuracy_mean": float(np.mean([m["accuracy"] for m in per_seed_task])),
            "uar_per_seed": {str(s["seed"]): m["uar"] for s, m in zip(per_seed, per_seed_task)}}


def plot_confusion(path, confusion, label_names, title):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    confusion = np.asarray(confusion, dtype=float)
    recall = confusion / np.maximum(confusion.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    im = ax.imshow(recall, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(label_names)):
        for j in range(len(label_names)):
            ax.text(j, i, f"{recall[i, j]:.2f}", ha="center", va="center", fontsize=7,
                    color="white" if recall[i, j] > 0.5 else "black")
    ax.set_xticks(range(len(label_names)), label_names, rotation=45, ha="right")
    ax.set_yticks(range(len(label_names)), label_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=10)
    fig.colorbar(im, ax=ax, label="recall")
    fig.tight_layout()
    _save(fig, path)


def plot_learning_curves(path, histories, title):
    """histories: {fold label: list of history rows}; loss and validation UAR per epoch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_loss, ax_uar) = plt.subplots(1, 2, figsize=(11, 4))
    for label, rows in histories.items():
        epochs = [r["epoch"] for r in rows]
        # a multi-task run's train_loss is the weighted sum; its emotion part is what val_loss is
        train = [r.get("train_loss_emotion", r["train_loss"]) for r in rows]
        line, = ax_loss.plot(epochs, train, label=f"{label} train")
        ax_loss.plot(epochs, [r["val_loss"] for r in rows], ls="--", color=line.get_color())
        ax_uar.plot(epochs, [r["val_uar"] for r in rows], color=line.get_color(), label=label)
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy (solid train, dashed val)")
    ax_uar.set(xlabel="epoch", ylabel="validation UAR")
    ax_uar.legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    _save(fig, path)


def _save(fig, path):
    import matplotlib.pyplot as plt

    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120)
    plt.close(fig)
