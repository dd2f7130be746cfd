"""Build the bundle shipped inside the package: sertiny/assets/default_bundle/.

    python tools/build_default_bundle.py [--jobs 2]

LSTM-SA-h64 on the edge16k_peak_deltas front end (any audio, any sample rate, any recording
level): the accuracy work's final recipe plus louder, quieter, noisy and microphone- and
room-coloured copies of the training clips, on edge16k with levels held below the running
peak and each value's causal first difference (``SHIPPED_INPUT``, ``SHIPPED_MODEL`` in
train/accuracy.py, which says how they were chosen).

The cross-validation (three seeds, the paper's five folds) is the run in
runs/accuracy/<input>/<model>/<recipe>, resumed if it is already there, with a deployment
model trained on all 24 speakers; it gives the card's held-out UAR, and seed 0's fold models
the integer models' parity. Exported as the chunked profile only (K = 1: int16x8, int8 and float32), with no C
arrays, so the wheel carries about a hundred KB. The card also shows the baselines beside the
model (results/baselines.json and the stats_linear floor's run on the same front end).
"""

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "train"))
import accuracy  # noqa: E402  (the recipes, their run directories and the data loading)

TARGET = ROOT / "sertiny" / "assets" / "default_bundle"
PRESET = accuracy.SHIPPED_INPUT
MODEL, RECIPE = accuracy.SHIPPED_MODEL
RUN = accuracy.run_dir(PRESET, MODEL, RECIPE)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=TARGET)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--card-only", action="store_true",
                        help="only rewrite the shipped bundle's notes and card (e.g. once a baseline has run)")
    args = parser.parse_args()
    os.chdir(accuracy.ROOT)  # runs are named relative to the repository root
    if args.card_only:
        _portable(args.out, RUN)
        print(f"rewrote the notes and card of {args.out}")
        return

    from sertiny.export import ExportConfig, export_run

    spec, table = accuracy.load_input(PRESET)
    _with_deploy(MODEL, RECIPE, spec, table, args.jobs)
    # int16x8 beside int8: 16-bit activations keep the labels int8 rounding flips, and the bundle
    # runs that model by default (sertiny.runtime.variant.default_variant).
    export = ExportConfig(full=False, chunks=(1,), int16x8=True, c_arrays=False, weights="deploy", parity_seed=0)
    with tempfile.TemporaryDirectory() as tmp:
        bundle = Path(tmp) / "bundle"
        manifest = export_run(RUN, bundle, export, progress=print)
        _portable(bundle, RUN)
        if args.out.exists():
            shutil.rmtree(args.out)
        shutil.copytree(bundle, args.out)
    sizes = {p.name: p.stat().st_size for p in sorted(args.out.iterdir())}
    print(f"wrote {args.out}: {sizes} ({sum(sizes.values()):,} bytes)")
    m = manifest["metrics"]
    print(f"held-out float UAR {m['float_uar']:.4f}, int8 {m['int8_uar']:.4f}, int16x8 {m['int16x8_uar']:.4f}")


def _with_deploy(model, recipe, spec, table, jobs):
    """The model's cross-validation and its deployment model (trained on all speakers), resumed."""
    from sertiny.training import train

    run = accuracy.run_dir(PRESET, model, recipe)
    if (run / "deploy" / "deploy.json").is_file():
        print(f"reusing {run} and its deploy model")
        return
    config = accuracy.train_config(recipe, model, PRESET, (0, 1, 2))
    metrics = train(table, config, run, data_spec=spec, jobs=jobs, deploy=True)
    print(f"{model} ({recipe}): cross-validated UAR {metrics['uar_mean']:.4f} ± {metrics['uar_std']:.4f}; "
          f"deploy: {metrics['deploy']['epochs']} epochs")


def _portable(bundle, run):
    """The manifest records absolute paths of this machine; in a package they would only
    mislead, so keep their last parts (corpus and run names)."""
    from sertiny._io import atomic_write_text, read_json
    from sertiny.export.model_card import model_card
    from sertiny.runtime.bundle import write_manifest

    manifest = read_json(bundle / "sertiny.json")
    for key in ("source_run", "source_data"):
        manifest[key] = "/".join(Path(manifest[key]).parts[-3:])
    manifest["notes"] = [
        (f"`{MODEL}` trained with recipe `{RECIPE}` of `train/accuracy_recipes.json` ({_recipe_text(RECIPE)}) on "
         f"`{PRESET}` ({_front_end_text(manifest['feature_config'])}); how front end and recipe were chosen: "
         "`SHIPPED_MODEL` in `train/accuracy.py` and `results/accuracy.md`."),
        _deploy_note(Path(run), MODEL),
        "Rebuild with `python tools/build_default_bundle.py`.",
    ]
    cv = read_json(Path(run) / "metrics.json")
    if cv.get("n_seeds", 1) > 1:
        manifest["notes"].insert(1, (
            f"Over {cv['n_seeds']} seeds the cross-validated float UAR is {cv['uar_mean']:.4f} ± "
            f"{cv['uar_std']:.4f} (the figures above are seed 0's, whose folds the integer models' parity was measured on)."))
    manifest["notes"] += _baseline_notes(cv)
    manifest = write_manifest(bundle, manifest)  # edited above: sealed again
    atomic_write_text(bundle / "MODEL_CARD.md", model_card(manifest))
    for path in bundle.iterdir():  # the atomic writers' files are private; package data must be readable
        path.chmod(0o644)


def _versus_stats(cv, systems):
    stats = systems.get(accuracy.stats_baseline(PRESET))
    if stats is None:
        return ""
    side = "below" if cv["uar_mean"] < stats["pooled_test_uar"] else "above"
    return (f" This model ({cv['uar_mean']:.3f}) is {side} the linear model on clip statistics of its own front end "
            f"({stats['pooled_test_uar']:.3f}).")


def _under_gain(systems):
    """What a gain of the test clips does to the classical baselines (classical_baselines.py --test-gains)."""
    scored = {k: v["under_gain"] for k, v in systems.items() if v.get("under_gain")}
    if not scored:
        return "; all of them were fitted and scored at RAVDESS's one recording level"
    gains = sorted(next(iter(scored.values())), key=float)
    named = ", ".join(f"{k} " + " / ".join(f"{g[x]['pooled_test_uar']:.3f}" for x in gains) for k, g in scored.items())
    return (f"; at a gain of {' / '.join(gains)} dB the same test clips score {named} (this model's recipe: "
            f"`{accuracy.SHIPPED_LABELS_KEPT}`)")


def _front_end_text(feature_config):
    peak = feature_config.get("running_peak_db")
    if peak is None:
        return "levels in fixed dBFS: the recording level moves the features"
    deltas = "; each value's causal first difference appended" if feature_config.get("deltas") else ""
    return (f"floors {peak:g} dB below the running peak, so a louder or quieter recording keeps its features "
            f"once the clip gets loud: `{accuracy.SHIPPED_LABELS_KEPT}` measures the labels kept{deltas}")


def _recipe_text(name):
    return ", ".join(f"{k} {v}" for k, v in accuracy.load_recipes()[name].items())


def _deploy_note(run, model):
    from sertiny._io import read_json

    deploy = read_json(run / "deploy" / "deploy.json")
    return (f"The deployed `{model}` trained {deploy['epochs']} epochs on all 24 speakers: the median best epoch of "
            f"{len(deploy['from_best_epochs'])} cross-validation fold models (no speaker is left to choose an epoch "
            "with).")


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
                     f"--recipes {metrics_file.parent.name} --input {PRESET}`); this model {verdict}.")
    classical = ROOT / "results" / "baselines.json"
    if classical.is_file():
        systems = json.loads(classical.read_text())["systems"]
        named = ", ".join(f"{k} {v['pooled_test_uar']:.3f}" for k, v in systems.items())
        notes.append(f"Classical baselines on the same folds (StandardScaler + LogisticRegression, C chosen on "
                     f"validation speakers; `python benchmarks/classical_baselines.py`, results/baselines.md): "
                     f"{named}" + _under_gain(systems) + "." + _versus_stats(cv, systems))
    return notes


if __name__ == "__main__":
    main()
