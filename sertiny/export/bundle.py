"""``export_run``: a training run -> a device bundle (see the ``sertiny.json`` format below).

Steps, each checked before the next: read and check the run (configs, weights, norm,
features); measure parity on every fold's held-out speakers; build the shipped model's
variants; measure the TFLite Micro arena and check every op against LiteRT; write the
bundle into a temporary directory that is renamed into place only when complete.

``sertiny.json`` (format and version: :mod:`sertiny.runtime.bundle`, which reads it and
whose :func:`~sertiny.runtime.bundle.write_manifest` writes and seals it)::

    {"format": "sertiny-bundle", "format_version": 2,
     "model": <ModelConfig>, "labels": [...], "feature_config": <FeatureConfig>,
     "norm": {"mean": [...], "std": [...]}, "seq_len": T,
     "variants": {"f32":  {"file": "model_f32.tflite", "profile": "full", "bytes", "sha256", "ops", ...},
                  "int8": {..., "input": {"scale", "zero_point"}, "output": {...}, "arena_bytes"},
                  "int8_chunk1": {"profile": "chunked", "chunk": 1, "inputs": [...], "outputs": [...],
                                  "head": {...}, ...}},
     "metrics": {"float_uar", "int8_uar", "int8_agreement", "variants": {...}, "per_fold": [...]},
     "weights": "deploy" | "seed0_fold3", "source_run", "created", "sertiny_version",
     "manifest_sha256": SHA-256 of the rest (see sertiny.runtime.bundle)}
"""

import datetime
from pathlib import Path

import numpy as np

from .. import __version__
from .._io import (
    atomic_directory,
    atomic_write_bytes,
    atomic_write_text,
)
from ..errors import ArtifactError, ParameterError, SertinyError
from ..models.registry import get_family
from ..runtime.bundle import model_digest, write_manifest
from ..runtime.variant import INTEGER_MODES, primary_of_mode
from . import tflm
from .carray import write_c_array
from .config import ExportConfig
from .graph import chunk_refusal, fold_weights
from .model_card import model_card
from .parity import measure
from ..training.rundir import DEPLOY, parse_weights_name
from .run import choose_weights, fold_data, load_run, load_table, load_weight_set
from .variants import build_variants, predict

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
    shipped = {k: v for k, v in variants.items() if _ships(v.kind, config)}
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
        manifest = write_manifest(tmp, manifest)
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


def _ships(kind, config):
    """Full-profile models ship unless ``full`` is off. Float chunked models are calibration
    and parity tools, shipped only as the float model of a chunked-only bundle or without
    an integer mode."""
    if kind.profile == "full":
        return config.full
    return kind.mode != "f32" or not config.full or not (config.int8 or config.int16x8)


def _write_variant(directory, variant, entry, c_arrays=True):
    stem = variant.kind.file_stem
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
        entry = {"file": f"{variant.kind.file_stem}.tflite", **variant.meta, "sha256": model_digest(variant.model)}
        if parity and vname in parity["pooled"]:
            pooled = parity["pooled"][vname]
            entry.update({k: pooled[k] for k in ("uar", "agreement", "uar_drop_pp") if k in pooled})
        entries[vname] = entry
    return {
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
    variants = {k: v for k, v in pooled.items() if k != "n"}  # "n": the clip count
    for mode in INTEGER_MODES:
        name = primary_of_mode(variants, mode)
        if name:
            metrics.update({f"{mode}_variant": name, f"{mode}_uar": pooled[name]["uar"],
                            f"{mode}_agreement": pooled[name]["agreement"],
                            f"{mode}_uar_drop_pp": pooled[name]["uar_drop_pp"]})
    metrics["variants"] = variants
    metrics["per_fold"] = parity["per_fold"]
    return metrics
