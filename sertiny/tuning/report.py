"""A study's outputs: best_params.json, the trials table, history and importance plots.

Everything here reads the study only, so any machine that can reach the storage can
(re)write the outputs, and they always describe the whole study, every worker's trials.
"""

import warnings
from pathlib import Path

from .._io import atomic_path, atomic_write_json, atomic_write_text, csv_text
from .recovery import OWNER_ATTR
from .space import TUNED_FIELDS

_OBJECTIVE_TEXT = {
    "test": "UAR of the pooled out-of-fold test predictions (the paper's number)",
    "val": "mean best-epoch validation UAR over folds",
}
_HEADERS = {"lr": "lr", "weight_decay": "weight decay", "dropout": "dropout", "t0": "T0", "batch_size": "batch"}


def write_outputs(study, config, out_dir, *, storage, data_spec=None, top=10):
    """Write every output file into ``out_dir`` and return a summary dict.

    Files: ``trials.csv`` (every trial), ``top_trials.md``, ``history.png``,
    ``importance.png`` (from 2 finished trials on), and once a trial has finished:
    ``best_params.json`` (what ``sertiny train --params`` reads) and
    ``best_train_config.json`` (the full TrainConfig of the best trial, for ``--config``).
    """
    out_dir = Path(out_dir)
    rows = trial_rows(study)
    atomic_write_text(out_dir / "trials.csv", _csv(rows))
    complete = sorted((r for r in rows if r["state"] == "COMPLETE"), key=lambda r: -r["value"])
    atomic_write_text(out_dir / "top_trials.md", top_trials_markdown(complete[:top], config))
    title = f"{config.train.model}, {config.space} space: {config.objective} UAR"
    files = ["trials.csv", "top_trials.md"]
    if rows:
        plot_history(out_dir / "history.png", rows, title)
        files.append("history.png")
    searched = [k for k in TUNED_FIELDS if k not in config.fixed]
    importances = param_importances(study, searched, seed=config.sampler_seed) if len(complete) >= 2 else None
    if importances:
        plot_importances(out_dir / "importance.png", importances, title)
        files.append("importance.png")
    summary = {
        "study_name": config.name,
        "storage": storage,
        "model": config.train.model,
        "space": config.space,
        "objective": _OBJECTIVE_TEXT[config.objective],
        "n_trials": config.n_trials,
        "trials": _counts(rows),
        "importances": importances,
        "best": None,
    }
    if complete:
        best = complete[0]
        summary["best"] = {"trial": best["number"], "value": best["value"],
                           "params": {k: best[k] for k in TUNED_FIELDS},
                           "fold_test_uar": best["fold_test_uar"], "fold_val_uar": best["fold_val_uar"]}
        atomic_write_json(out_dir / "best_params.json", _best_params(summary, data_spec))
        config.trial_train_config(summary["best"]["params"]).save(out_dir / "best_train_config.json")
        files += ["best_params.json", "best_train_config.json"]
    summary["files"] = files
    return summary


def _best_params(summary, data_spec):
    best = summary["best"]
    doc = {
        "params": best["params"],
        "value": best["value"],
        "objective": summary["objective"],
        "trial": best["trial"],
        "fold_test_uar": best["fold_test_uar"],
        "model": summary["model"],
        "space": summary["space"],
        "study_name": summary["study_name"],
        "storage": summary["storage"],
        "trials": summary["trials"],
        "train_config": "best_train_config.json",
    }
    if data_spec is not None:
        doc["data"] = data_spec.to_dict()
    return doc


def trial_rows(study):
    """One flat dict per trial: number, state, value, the five parameters, fold UARs, timing."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        owner = t.user_attrs.get(OWNER_ATTR) or {}
        seconds = (t.datetime_complete - t.datetime_start).total_seconds() if t.datetime_complete and t.datetime_start else None
        rows.append({
            "number": t.number,
            "state": t.state.name,
            "value": t.value,
            **{k: t.params.get(k) for k in TUNED_FIELDS},
            "folds_done": len(t.intermediate_values),
            "fold_test_uar": t.user_attrs.get("fold_test_uar"),
            "fold_val_uar": t.user_attrs.get("fold_val_uar"),
            "seconds": None if seconds is None else round(seconds, 1),
            "retry_of": t.system_attrs.get("failed_trial"),
            "host": owner.get("host"),
            "pid": owner.get("pid"),
        })
    return rows


def _counts(rows):
    states = [r["state"].lower() for r in rows]
    return {state: states.count(state) for state in ("complete", "pruned", "fail", "running", "waiting")}


def _csv(rows):
    return csv_text([{k: _cell(v) for k, v in row.items()} for row in rows])


def _cell(value):
    if isinstance(value, list):
        return " ".join(f"{v:.4f}" for v in value)
    return "" if value is None else value


def top_trials_markdown(best_first, config):
    """A markdown table of the best finished trials."""
    head = ["rank", "trial", f"{config.objective} UAR", *(_HEADERS[k] for k in TUNED_FIELDS), "fold test UARs", "min"]
    lines = [
        f"# Top trials: {config.name}",
        "",
        (f"Objective: {_OBJECTIVE_TEXT[config.objective]}. Model {config.train.model}, "
         f"{config.space} space, {config.train.epochs} epochs per fold, training seed {config.train_seed}."),
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for rank, r in enumerate(best_first, start=1):
        folds = " ".join(f"{v:.3f}" for v in r["fold_test_uar"] or [])
        minutes = "" if r["seconds"] is None else f"{r['seconds'] / 60:.1f}"
        cells = [rank, r["number"], f"{r['value']:.4f}", f"{r['lr']:.2e}", f"{r['weight_decay']:.2e}",
                 f"{r['dropout']:.3f}", r["t0"], r["batch_size"], folds, minutes]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    if not best_first:
        lines.append("| " + " | ".join(["–"] * len(head)) + " |")
    return "\n".join(lines) + "\n"


def param_importances(study, params, *, seed=0):
    """fANOVA importances of ``params`` over finished trials, or None if undefined."""
    import optuna

    evaluator = optuna.importance.FanovaImportanceEvaluator(seed=seed)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            importances = optuna.importance.get_param_importances(study, evaluator=evaluator, params=params)
    except (RuntimeError, ValueError):  # e.g. every finished trial has the same parameters
        return None
    return {k: float(v) for k, v in importances.items()}


def plot_history(path, rows, title):
    """Objective per trial (pruned: value at the fold it stopped) and the best so far."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.5))
    done = [r for r in rows if r["state"] == "COMPLETE"]
    pruned = [r for r in rows if r["state"] == "PRUNED" and r["value"] is not None]
    ax.scatter([r["number"] for r in done], [r["value"] for r in done], s=18, color="tab:blue", label="complete")
    ax.scatter([r["number"] for r in pruned], [r["value"] for r in pruned], s=22, marker="x", color="0.6",
               label="pruned (value at its last fold)")
    best, xs, ys = float("-inf"), [], []
    for r in sorted(done, key=lambda r: r["number"]):
        best = max(best, r["value"])
        xs.append(r["number"])
        ys.append(best)
    if xs:
        ax.step(xs + [max(r["number"] for r in rows)], ys + ys[-1:], where="post", color="tab:red", label="best so far")
    ax.set(xlabel="trial", ylabel="UAR", title=f"Optimisation history: {title}")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    _save(fig, path)


def plot_importances(path, importances, title):
    plt = _pyplot()
    names = list(importances)[::-1]  # largest on top
    fig, ax = plt.subplots(figsize=(6.5, 3.2))
    ax.barh([_HEADERS.get(n, n) for n in names], [importances[n] for n in names], color="tab:blue")
    for y, n in enumerate(names):
        ax.text(importances[n], y, f" {importances[n]:.2f}", va="center", fontsize=8)
    ax.set(xlabel="fANOVA importance (share of the objective's variance)", xlim=(0, 1.1))
    ax.set_title(f"Parameter importance: {title}", fontsize=9)
    fig.tight_layout()
    _save(fig, path)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path):
    import matplotlib.pyplot as plt

    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120)
    plt.close(fig)
