"""``export_run``: a training run -> a device bundle (see the ``sertiny.json`` format below).

Steps, each checked before the next: read and check the run (configs, weights, norm,
features); measure parity on every fold's held-out speakers; build the shipped model's
variants; measure the TFLite Micro arena and check every op against LiteRT; write the
bundle into a temporary directory that is renamed into place only when complete.

``sertiny.json`` (format_version 1)::

    {"format": "sertiny-bundle", "format_version": 1,
     "model": <ModelConfig>, "labels": [...], "feature_config": <FeatureConfig>,
     "norm": {"mean": [...], "std": [...]}, "seq_len": T,
     "variants": {"f32":  {"file": "model_f32.tflite", "profile": "full", "bytes", "sha256", "ops", ...},
                  "int8": {..., "input": {"scale", "zero_point"}, "output": {...}, "arena_bytes"},
                  "int8_chunk1": {"profile": "chunked", "chunk": 1, "inputs": [...], "outputs": [...],
                                  "head": {...}, ...}},
     "metrics": {"float_uar", "int8_uar", "int8_agreement", "variants": {...}, "per_fold": [...]},
     "weights": "deploy" | "seed0_fold3", "source_run", "created", "sertiny_version"}
"""

import datetime
from pathlib import Path

import numpy as np

from .. import __version__
from .._io import (
    atomic_directory,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
)
from ..errors import ArtifactError, ParameterError, SertinyError
from ..models.registry import get_family
from ..runtime.bundle import primary_int8
from . import tflm
from .carray import write_c_array
from .config import ExportConfig
from .convert import sha256
from .graph import chunk_refusal, fold_weights
from .parity import measure
from .run import (
    DEPLOY,
    choose_weights,
    fold_data,
    front_end_config,
    load_run,
    load_table,
    load_weight_set,
    parse_weights_name,
)
from .variants import build_variants, predict

BUNDLE_FORMAT = "sertiny-bundle"
BUNDLE_FORMAT_VERSION = 1
MICRO_CHECK_CLIPS = 8  # clips run end to end under TFLite Micro and LiteRT


def export_run(run_dir, out_dir, config=None, *, overwrite=False, progress=None):
    """Export a training run to a bundle directory; returns the manifest dict.

    Raises :class:`~sertiny.errors.SertinyError` subclasses for every bad input (missing
    or inconsistent run files, weights of another model, features of another front end,
    an empty representative set); nothing is written then.
    """
    config = config or ExportConfig()
    say = progress or (lambda message: None)
    out_dir = Path(out_dir)
    if out_dir.exists() and not overwrite:
        raise ArtifactError(f"{out_dir} already exists; choose another --out or pass --overwrite.")
    run = load_run(run_dir)
    if run.model_config.padding != "zeros":
        raise ParameterError(
            f"{run.path}: the model was trained with padding={run.model_config.padding!r}; this exporter "
            "builds zero-padding models only (train with --padding zeros, the default)."
        )
    if config.chunks and not get_family(run.model_config.family).streaming:
        raise ParameterError(
            f"{chunk_refusal()}; {run.path} trained {run.model_config.name}. Export it without --chunk "
            "(the full profile: one invoke per clip)."
        )
    name, reason = choose_weights(run, config.weights)
    weight_set = load_weight_set(run, name)
    say(f"loading the run's features ({run.info.get('source', '?')})")
    table = load_table(run)
    fold = None if name == DEPLOY else run.fold(parse_weights_name(name)[1])
    data = fold_data(run, table, weight_set, fold)
    fw = fold_weights(weight_set.weights, run.model_config)

    parity = None
    if config.parity and run.folds:
        parity = measure(run, table, config, progress=say)
    say(f"converting the shipped model ({name})")
    variants = build_variants(fw, run.model_config, config, data.train_clips, data.train_labels)
    shipped = {k: v for k, v in variants.items() if _ships(k, config)}
    if config.tflm:
        for variant in shipped.values():
            if variant.quantized:
                say(f"TFLite Micro: arena and op check for {variant.name}")
                variant.meta["tflm"] = micro_report(variant, data.train_clips[:MICRO_CHECK_CLIPS], run.seq_len)
                variant.meta["arena_bytes"] = variant.meta["tflm"]["arena_bytes"]
            else:  # float models: the arena only (there is no integer rounding to compare)
                say(f"TFLite Micro: arena for {variant.name}")
                _float_arena(variant)
    manifest = _manifest(run, weight_set, name, reason, shipped, parity, config)
    with atomic_directory(out_dir, overwrite=overwrite) as tmp:
        for variant in shipped.values():
            _write_variant(tmp, variant, manifest["variants"][variant.name], config.c_arrays)
        atomic_write_json(tmp / "sertiny.json", manifest)
        atomic_write_text(tmp / "MODEL_CARD.md", model_card(manifest))
        _shareable(tmp)
    say(f"wrote {out_dir}")
    return manifest


def _shareable(directory):
    """Give the bundle the usual umask permissions: the atomic writers' temporary files are
    private (0600, directory 0700), but a bundle is copied to devices and other users."""
    import os

    umask = os.umask(0)
    os.umask(umask)
    os.chmod(directory, 0o777 & ~umask)
    for path in directory.iterdir():
        os.chmod(path, 0o666 & ~umask)


def _ships(name, config):
    """Full-profile models ship unless ``full`` is off. Float chunked models are calibration
    and parity tools, shipped only as the float model of a chunked-only bundle or without
    an integer mode."""
    if "_chunk" not in name:
        return config.full
    return not name.startswith("f32_chunk") or not config.full or not (config.int8 or config.int16x8)


def file_stem(name):
    """Variant name -> file stem: ``int8`` -> ``model_int8``, ``int8_chunk1`` -> ``model_int8_chunk1``."""
    return f"model_{name}"


def _write_variant(directory, variant, entry, c_arrays=True):
    stem = file_stem(variant.name)
    atomic_write_bytes(directory / f"{stem}.tflite", variant.model)
    if variant.quantized and c_arrays:
        entry["c_source"] = write_c_array(directory, stem, variant.model, entry)


def _model_io(variant):
    return {"inputs": variant.meta["inputs"] if variant.profile == "chunked" else [variant.meta["input"]]}


def _float_arena(variant):
    """Record a float variant's TFLite Micro arena; a model TFLite Micro cannot run gets the
    reason instead (float models are the Pi's, so this does not fail the export)."""
    try:
        variant.meta["arena_bytes"] = tflm.arena_size(variant.model, _model_io(variant))
    except SertinyError as exc:
        variant.meta["tflm"] = {"error": str(exc)}


def micro_report(variant, clips, seq_len):
    """TFLite Micro figures for an int8 variant: arena (:func:`~sertiny.export.tflm.arena_size`),
    per-op LSB difference to LiteRT, and end-to-end agreement with LiteRT on a few clips."""
    from .variants import chunked_runner

    arena = tflm.arena_size(variant.model, _model_io(variant))
    if variant.profile == "chunked":
        trace = []
        chunked_runner(variant).predict(clips[0], trace=trace)
        op_inputs = trace[len(trace) // 2][0]  # mid-clip: states well away from zero
    else:
        from ..features.frames import fit_to_length
        from ..runtime.tflite import load_interpreter, quantize

        detail = load_interpreter(variant.model).get_input_details()[0]
        op_inputs = [quantize(fit_to_length(clips[0], seq_len)[None], detail)]
    op_lsb, worst_op = tflm.op_conformance(variant.model, op_inputs)
    lite = predict(variant, clips, seq_len)
    micro = predict(variant, clips, seq_len, interpreter=tflm.MicroAsLite(variant.model, arena))
    report = {
        "arena_bytes": int(arena),
        "max_op_lsb_vs_litert": int(op_lsb),
        "worst_op": worst_op,
        "clips_compared": len(clips),
        "end_to_end_max_abs_prob_diff": float(np.abs(lite - micro).max()),
        "end_to_end_top1_agreement": float((lite.argmax(1) == micro.argmax(1)).mean()),
    }
    if variant.profile == "full":
        report["end_to_end_max_lsb"] = round(report["end_to_end_max_abs_prob_diff"] / variant.meta["output"]["scale"])
    return report


def _manifest(run, weight_set, name, reason, variants, parity, config):
    entries = {}
    for vname, variant in variants.items():
        entry = {"file": f"{file_stem(vname)}.tflite", **variant.meta, "sha256": sha256(variant.model)}
        if parity and vname in parity["pooled"]:
            pooled = parity["pooled"][vname]
            entry.update({k: pooled[k] for k in ("uar", "agreement", "uar_drop_pp") if k in pooled})
        entries[vname] = entry
    return {
        "format": BUNDLE_FORMAT,
        "format_version": BUNDLE_FORMAT_VERSION,
        # the shipped model: a multi-task run's auxiliary heads are not in the bundle
        "model": run.model_config.replace(aux_heads=()).identity_dict(),
        "labels": run.labels,
        "feature_config": run.feature_config,
        "norm": weight_set.norm.to_dict(),
        "seq_len": run.seq_len,
        "variants": entries,
        "metrics": _metrics(parity),
        "weights": name,
        "weights_reason": reason,
        "source_run": str(run.path.resolve()),
        "source_data": run.info.get("source", "unknown"),
        "data_terms": data_terms(run.info),
        "train_config": run.train_config,
        "export_config": config.to_dict(),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "sertiny_version": __version__,
    }


def data_terms(info):
    """The training corpus's licence terms for the model card, or a reminder to check them."""
    from ..data.datasets import CORPUS_TERMS

    data = info.get("data") or {}
    corpus = data.get("dataset")
    if corpus in (None, "auto") and data.get("kind") == "paper_npz":
        corpus = "ravdess"  # the paper's feature file is computed from RAVDESS
    elif corpus in (None, "auto") and data.get("path"):
        from ..data.datasets import detect_kind

        try:
            corpus = detect_kind(Path(data["path"]))
        except Exception:  # noqa: BLE001 - the corpus may be gone; the card then says "check"
            corpus = None
    return CORPUS_TERMS.get(corpus, "The training data's own licence applies; check it before sharing the model.")


def _metrics(parity):
    if parity is None:
        return {}
    pooled = parity["pooled"]
    metrics = {
        "evaluated_on": (f"held-out speakers of seed {parity['seed']}'s folds {parity['folds']} "
                         f"(of {parity['n_folds']}; {parity['n_clips']} clips), each fold model exported "
                         "with the same settings"),
        "float_uar": pooled["f32"]["uar"],
    }
    int8 = primary_int8(pooled)
    if int8:
        metrics.update(int8_variant=int8, int8_uar=pooled[int8]["uar"], int8_agreement=pooled[int8]["agreement"],
                       int8_uar_drop_pp=pooled[int8]["uar_drop_pp"])
    metrics["variants"] = {k: v for k, v in pooled.items() if k != "n"}
    metrics["per_fold"] = parity["per_fold"]
    return metrics


def model_card(manifest):
    """A short MODEL_CARD.md: what the bundle holds, how good it is, where it came from."""
    m = manifest["model"]
    metrics = manifest["metrics"]
    lines = [
        f"# {m['family']}_h{m['hidden']} speech emotion recognition ({len(manifest['labels'])} classes)",
        "",
        f"- **Weights shipped:** `{manifest['weights']}`: {manifest['weights_reason']}.",
        f"- **Labels:** {', '.join(manifest['labels'])}.",
        (f"- **Input:** T = {manifest['seq_len']} frames of {m['n_features']} features "
        f"({_front_end(manifest['feature_config'])}, front end in `sertiny.json`), z-normalised with the statistics in "
        "`sertiny.json`; shorter clips are zero-padded after normalisation, longer ones centre-cropped."),
        (f"- **Source run:** `{manifest['source_run']}`; exported {manifest['created']} with sertiny "
        f"{manifest['sertiny_version']}."),
        f"- **Training recipe:** {_recipe(manifest.get('train_config') or {})}.",
        "",
        "## Variants",
        "",
        "| variant | profile | file | bytes | ops | TFLM arena (bytes) | UAR | agreement with float |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for name, v in manifest["variants"].items():
        profile = v["profile"] + (f" (K = {v['chunk']})" if v.get("chunk") else "")
        lines.append(
            f"| {name} | {profile} | `{v['file']}` | {v['bytes']:,} | {v['ops']:,} | "
            f"{_fmt(v.get('arena_bytes'), '{:,}')} | {_fmt(v.get('uar'), '{:.4f}')} | "
            f"{_fmt(v.get('agreement'), '{:.2%}')} |"
        )
    lines += ["", f"TFLM arena: {tflm.ARENA_METHOD} (`sertiny.export.tflm.arena_size`); a firmware adds its "
              "own stack and globals. `sertiny bench` reports the same figure.", "", "## Accuracy", ""]
    if metrics:
        lines += [
            (f"Measured on {metrics['evaluated_on']}. The shipped model itself has no held-out speakers "
            "when it is the deployment model (it trained on all of them); the fold figures estimate what "
            "quantisation costs it."),
            "",
            f"- float32 UAR {metrics['float_uar']:.4f}",
        ]
        if "int8_uar" in metrics:
            drop = metrics["int8_uar_drop_pp"]
            change = f"{abs(drop):.2f} pp {'below' if drop > 0 else 'above'} float"
            lines.append(f"- int8 UAR {metrics['int8_uar']:.4f} ({metrics.get('int8_variant', 'int8')}; {change}), "
                         f"top-1 agreement with float {metrics['int8_agreement']:.2%}")
    else:
        lines.append("Not measured (exported with parity off).")
    lines += [
        "",
        "## Use",
        "",
        ("- Raspberry Pi / any TFLite host: `sertiny infer BUNDLE clip.wav` "
         + ("(full profile, one invoke per clip)." if any(v["profile"] == "full" for v in manifest["variants"].values())
            else "(chunked profile: the host runs the invokes per clip, pools attention and classifies).")),
        *_microcontroller_use(manifest["variants"]),
        f"- **Data terms:** {manifest.get('data_terms') or 'not recorded'}",
        (f"- Trained on `{manifest['source_data']}`. A model trained on acted speech (such as RAVDESS) "
        "will do worse on spontaneous speech, other languages and noisy rooms; not for decisions about people."),
        "",
    ]
    if manifest.get("notes"):  # added by whoever publishes the bundle, e.g. scripts/build_default_bundle.py
        lines += ["## Notes", "", *(f"- {note}" for note in manifest["notes"]), ""]
    return "\n".join(lines)


def _microcontroller_use(variants):
    """The card's microcontroller line, naming the files this bundle really ships."""
    chunked = {n: v for n, v in variants.items()
               if v["profile"] == "chunked" and str(v.get("dtype", "")).startswith("int")}
    if not chunked:
        return []
    c_files = [f"`{f}`" for v in chunked.values() for f in v.get("c_source", [])]
    models = ", ".join(f"`{v['file']}`" for v in chunked.values())
    ships = (f"as C arrays {', '.join(c_files)} (arena size and tensor quantisation as #defines)" if c_files
             else f"{models} (this bundle ships no C arrays; `sertiny export` writes `.h`/`.cc` files unless "
             "`--no-c-arrays`)")
    ks = ", ".join(str(v["chunk"]) for v in chunked.values())
    return [f"- Microcontrollers: the chunked integer model{'s' if len(chunked) > 1 else ''} {ships}, run K "
            f"frames per invoke (K = {ks}); the firmware keeps the LSTM states and pools attention between "
            "invokes as `firmware_bench/c_reference` shows."]


def _recipe(train_config):
    keys = ("lr", "weight_decay", "dropout", "t0", "batch_size", "epochs", "normalization", "seeds")
    parts = [f"{k} {train_config[k]}" for k in keys if k in train_config]
    if train_config.get("multitask"):
        parts.append(f"multi-task with auxiliary heads {', '.join(train_config.get('aux_tasks', []))} "
                     f"(loss weight {train_config.get('aux_loss_weight')}; not shipped)")
    return ", ".join(parts) + " per cross-validation fold (`train_config` in `sertiny.json`)" if parts else "not recorded"


def _front_end(feature_config):
    config = front_end_config(feature_config)
    return "front end not recognised" if config is None else config.description


def _fmt(value, pattern):
    return "n/a" if value is None else pattern.format(value)
