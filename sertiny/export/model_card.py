"""``MODEL_CARD.md``: what a bundle holds, how good it is, where it came from.

Written by :func:`sertiny.export.export_run` beside ``sertiny.json``, from the manifest
alone, so a published bundle's card can be rewritten from its ``sertiny.json`` (as
``tools/build_default_bundle.py`` does after adding notes).
"""

from ..runtime.variant import INTEGER_MODES, Variant, default_variant
from .run import front_end_config
from .tflm import ARENA_METHOD


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
    lines += ["", f"TFLM arena: {ARENA_METHOD} (`sertiny.export.tflm.arena_size`); a firmware adds its "
              "own stack and globals. `sertiny bench` reports the same figure.", "", "## Accuracy", ""]
    if metrics:
        lines += [
            (f"Measured on {metrics['evaluated_on']}. The shipped model itself has no held-out speakers "
            "when it is the deployment model (it trained on all of them); the fold figures estimate what "
            "quantisation costs it."),
            "",
            f"- float32 UAR {metrics['float_uar']:.4f}",
        ]
        for mode in INTEGER_MODES:
            if f"{mode}_uar" in metrics:
                drop = metrics[f"{mode}_uar_drop_pp"]
                change = f"{abs(drop):.2f} pp {'below' if drop > 0 else 'above'} float"
                lines.append(f"- {mode} UAR {metrics[f'{mode}_uar']:.4f} ({metrics.get(f'{mode}_variant', mode)}; "
                             f"{change}), top-1 agreement with float {metrics[f'{mode}_agreement']:.2%}")
    else:
        lines.append("Not measured (exported with parity off).")
    lines += [
        "",
        "## Use",
        "",
        (f"- Raspberry Pi / any TFLite host: `sertiny infer BUNDLE clip.wav` runs `{default_variant(manifest['variants'])}` "
         "unless `--variant` names another "
         + ("(full profile, one invoke per clip)." if any(v["profile"] == "full" for v in manifest["variants"].values())
            else f"(chunked profile: the host runs the invokes per clip, {_pooling(manifest['variants'])} and "
                 "classifies).")),
        *_microcontroller_use(manifest["variants"]),
        f"- **Data terms:** {manifest.get('data_terms') or 'not recorded'}",
        (f"- Trained on `{manifest['source_data']}`. A model trained on acted speech (such as RAVDESS) "
        "will do worse on spontaneous speech, other languages and noisy rooms; not for decisions about people."),
        "",
    ]
    if manifest.get("notes"):  # added by whoever publishes the bundle, e.g. tools/build_default_bundle.py
        lines += ["## Notes", "", *(f"- {note}" for note in manifest["notes"]), ""]
    return "\n".join(lines)


def _microcontroller_use(variants):
    """The card's microcontroller line, naming the files this bundle really ships."""
    kinds = {n: Variant.parse(n) for n in variants}
    chunked = {n: v for n, v in variants.items() if kinds[n].profile == "chunked" and kinds[n].quantized}
    if not chunked:
        return []
    c_files = [f"`{f}`" for v in chunked.values() for f in v.get("c_source", [])]
    models = ", ".join(f"`{v['file']}`" for v in chunked.values())
    ships = (f"as C arrays {', '.join(c_files)} (arena size and tensor quantisation as #defines)" if c_files
             else f"{models} (this bundle ships no C arrays; `sertiny export` writes `.h`/`.cc` files unless "
             "`--no-c-arrays`)")
    ks = ", ".join(str(k) for k in sorted({v["chunk"] for v in chunked.values()}))
    return [f"- Microcontrollers: the chunked integer model{'s' if len(chunked) > 1 else ''} {ships}, run K "
            f"frames per invoke (K = {ks}); the firmware keeps the LSTM states and {_pooling(chunked)} between "
            "invokes as `firmware_bench/c_reference` shows."]


def _pooling(variants):
    """What the host pools between invokes: attention, and for a head that reads them the frames' statistics."""
    heads = [v.get("head") or {} for v in variants.values() if v.get("profile") == "chunked"]
    if any(head.get("statistics") for head in heads):
        return "pools attention and running sums of the frames' statistics (mean, deviation, frame-to-frame change)"
    return "pools attention"


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
