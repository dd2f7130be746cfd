"""Build the bundle shipped inside the package: sertiny/assets/default_bundle/.

    python tools/build_default_bundle.py [--run DIR] [--jobs 2]

ResLSTM-SA-h64 on the edge16k front end (any audio, any sample rate), trained on all 24
RAVDESS speakers with the accuracy work's final recipe (``FINAL_RECIPE`` in
train/accuracy.py, chosen on validation speakers; train/accuracy_recipes.json). The
cross-validation (three seeds, the paper's five folds) is that recipe's run in
runs/accuracy/edge16k/res_lstm_sa_h64/<recipe>, resumed if it is already there; it gives the
card's held-out UAR, and seed 0's fold models the int8 parity. Exported as the chunked profile
only (K = 1: int8 and float32), with no C arrays, so the wheel carries about a hundred KB.
The card also shows the baselines beside the model (results/baselines.json and the
stats_linear floor's run, when present).
"""

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "train"))
import accuracy  # noqa: E402  (the final recipe, its run directory and the data loading)

TARGET = ROOT / "sertiny" / "assets" / "default_bundle"
MODEL = "res_lstm_sa_h64"
PRESET = "edge16k"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, default=accuracy.run_dir(PRESET, MODEL, accuracy.FINAL_RECIPE),
                        help="training run (cross-validation + deploy model); resumed if present")
    parser.add_argument("--out", type=Path, default=TARGET)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--card-only", action="store_true",
                        help="only rewrite the shipped bundle's notes and card (e.g. once a baseline has run)")
    args = parser.parse_args()
    if args.card_only:
        _portable(args.out, args.run)
        print(f"rewrote the notes and card of {args.out}")
        return

    from sertiny.export import ExportConfig, export_run
    from sertiny.training import train

    if (args.run / "deploy" / "deploy.json").is_file():
        print(f"reusing {args.run} and its deploy model")
    else:
        spec, table = accuracy.load_input(PRESET)
        args.run = Path(args.run).resolve()
        os.chdir(accuracy.ROOT)  # a distilling recipe names its teacher relative to the repository root
        config = accuracy.train_config(accuracy.FINAL_RECIPE, MODEL, PRESET, (0, 1, 2))
        metrics = train(table, config, args.run, data_spec=spec, jobs=args.jobs, deploy=True)
        print(f"cross-validated UAR: {metrics['uar_mean']:.4f} ± {metrics['uar_std']:.4f}; "
              f"deploy: {metrics['deploy']['epochs']} epochs")

    export = ExportConfig(full=False, chunks=(1,), c_arrays=False, weights="deploy", parity_seed=0)
    with tempfile.TemporaryDirectory() as tmp:
        bundle = Path(tmp) / "bundle"
        manifest = export_run(args.run, bundle, export, progress=print)
        _portable(bundle, args.run)
        if args.out.exists():
            shutil.rmtree(args.out)
        shutil.copytree(bundle, args.out)
    sizes = {p.name: p.stat().st_size for p in sorted(args.out.iterdir())}
    print(f"wrote {args.out}: {sizes} ({sum(sizes.values()):,} bytes)")
    print(f"held-out float UAR {manifest['metrics']['float_uar']:.4f}, int8 {manifest['metrics']['int8_uar']:.4f}")


def _portable(bundle, run):
    """The manifest records absolute paths of this machine; in a package they would only
    mislead, so keep their last parts (corpus and run names)."""
    from sertiny._io import atomic_write_text, read_json
    from sertiny.export.model_card import model_card
    from sertiny.runtime.bundle import write_manifest

    manifest = read_json(bundle / "sertiny.json")
    for key in ("source_run", "source_data"):
        manifest[key] = "/".join(Path(manifest[key]).parts[-3:])
    deploy = read_json(Path(run) / "deploy" / "deploy.json")
    manifest["notes"] = [
        f"The deployment model trained {deploy['epochs']} epochs on all 24 speakers: the median best epoch of "
        f"{len(deploy['from_best_epochs'])} cross-validation fold models (no speaker is left to choose an epoch with).",
        (f"The recipe is `{accuracy.FINAL_RECIPE}` of `train/accuracy_recipes.json` ({_recipe_text()}), chosen on "
         "the folds' validation speakers among the ablations of `results/accuracy.md`; the accuracy above is its "
         "cross-validated UAR on held-out speakers."),
        "Rebuild with `python tools/build_default_bundle.py`.",
    ]
    cv = read_json(Path(run) / "metrics.json")
    if cv.get("n_seeds", 1) > 1:
        manifest["notes"].insert(2, (
            f"Over {cv['n_seeds']} seeds the recipe's cross-validated float UAR is {cv['uar_mean']:.4f} ± "
            f"{cv['uar_std']:.4f} (the figures above are seed 0's, whose folds the int8 parity was measured on)."))
    manifest["notes"] += _baseline_notes(cv)
    manifest = write_manifest(bundle, manifest)  # edited above: sealed again
    atomic_write_text(bundle / "MODEL_CARD.md", model_card(manifest))
    for path in bundle.iterdir():  # the atomic writers' files are private; package data must be readable
        path.chmod(0o644)


def _versus_stats(cv, systems):
    stats = systems.get(f"{PRESET}_stats")
    if stats is None:
        return ""
    side = "below" if cv["uar_mean"] < stats["pooled_test_uar"] else "above"
    return f" This model ({cv['uar_mean']:.3f}) is {side} the linear model on clip statistics of its own features."


def _recipe_text():
    recipe = accuracy.load_recipes()[accuracy.FINAL_RECIPE]
    return ", ".join(f"{k} {v}" for k, v in recipe.items())


def _baseline_notes(cv):
    """The floors beside the model, same folds: sertiny's stats_linear family and the classical ones."""
    import json

    notes = []
    floor = accuracy.floor_row(accuracy.collect(), PRESET)  # its recipe chosen on validation speakers
    for metrics_file in [] if floor is None else [accuracy.run_dir(PRESET, floor["model"], floor["recipe"]) / "metrics.json"]:
        m = json.loads(metrics_file.read_text())
        delta = 100 * (cv["uar_mean"] - m["uar_mean"])
        verdict = ("does not beat it" if delta <= 0 else f"is {delta:.1f} pp above it"
                   + (", inside the ~2 pp seed noise: not a resolved win" if delta < 2 else ""))
        notes.append(f"Baseline, same front end and folds: `{m['model']}` (statistics pooling + one dense layer, "
                     f"recipe `{metrics_file.parent.name}`) scores {m['uar_mean']:.4f} ± {m['uar_std']:.4f} "
                     f"({m['n_seeds']} seeds; `python train/accuracy.py run --models {m['model']} "
                     f"--recipes {metrics_file.parent.name}`); this model {verdict}.")
    classical = ROOT / "results" / "baselines.json"
    if classical.is_file():
        systems = json.loads(classical.read_text())["systems"]
        named = ", ".join(f"{k} {v['pooled_test_uar']:.3f}" for k, v in systems.items())
        notes.append(f"Classical baselines on the same folds (StandardScaler + LogisticRegression, C chosen on "
                     f"validation speakers; `python benchmarks/classical_baselines.py`, results/baselines.md): "
                     f"{named}." + _versus_stats(cv, systems))
    return notes


if __name__ == "__main__":
    main()
