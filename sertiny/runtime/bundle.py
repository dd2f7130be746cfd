"""Read and check a device bundle (``sertiny.json`` plus its ``.tflite`` files).

A bundle is everything a device needs to turn audio into a label: the front-end config,
the normalisation statistics, the label names, the sequence length T and one or more
TFLite variants. Every inconsistency a device could otherwise only discover as a wrong
answer (a front end this version cannot compute, statistics of another width, a label
list that does not match the model's output, a file cut short in a copy, a manifest
edited after export, a model file outside the bundle) is turned here into an
:class:`~sertiny.errors.ArtifactError` that names the offending file.

Integrity. The manifest records the SHA-256 of every model file, and ``manifest_sha256``,
the SHA-256 of the manifest itself (canonical JSON, without that field). So the front end,
normalisation, labels and T a model is run with are bound to the exported model as
firmly as its bytes: an edited preset, hop or statistic is refused at load, not turned
into confident wrong answers.

This module owns the bundle format: its name and version, the manifest's file name and
:func:`write_manifest`, which every writer of a bundle goes through (the exporter, the toy
bundle, the release tool). Variant names are :class:`~sertiny.runtime.variant.Variant`'s.

numpy only: this module is on the device path.
"""

import dataclasses
import hashlib
import json
from pathlib import Path, PurePosixPath

from .._io import atomic_write_json, json_values, read_json
from ..errors import ArtifactError, ParameterError
from ..features.config import FeatureConfig
from ..features.normalize import NormStats
from .variant import MODES, OfVariant, Variant, default_variant, resolve

MANIFEST_NAME = "sertiny.json"
# Shipped inside the package so that 'sertiny infer clip.wav' works with no training;
# rebuilt by tools/build_default_bundle.py.
DEFAULT_BUNDLE = Path(__file__).resolve().parents[1] / "assets" / "default_bundle"
BUNDLE_FORMAT = "sertiny-bundle"
# 2: the manifest carries manifest_sha256 (format 1 had none, so it cannot be checked).
BUNDLE_FORMAT_VERSION = 2
SUPPORTED_FORMAT_VERSIONS = (BUNDLE_FORMAT_VERSION,)
INTEGRITY_KEY = "manifest_sha256"


@dataclasses.dataclass(frozen=True)
class BundleVariant(OfVariant):
    """One TFLite model of a bundle.

    Attributes:
        kind: its :class:`~sertiny.runtime.variant.Variant` (mode, profile, chunk), read
            from its name (its key in the manifest: ``"f32"``, ``"int8_chunk1"``, ...);
            ``name``, ``profile``, ``chunk`` and ``quantized`` are the kind's.
        path: the ``.tflite`` file.
        meta: the variant's manifest entry, as written by the exporter.
    """

    kind: Variant
    path: Path
    meta: dict

    @property
    def size_bytes(self):
        return self.path.stat().st_size


@dataclasses.dataclass(frozen=True)
class Bundle:
    """A checked bundle. Build it with :meth:`Bundle.load`.

    Attributes:
        path: the bundle directory.
        labels: class names, in the order of the model's output.
        feature_config: the front end the model was trained on.
        norm: per-feature statistics applied before the model.
        seq_len: frames per model input (T).
        variants: name -> :class:`BundleVariant`, in manifest order.
        metrics: the exporter's accuracy figures (``float_uar``, ``int8_uar``, ...).
        manifest: the raw ``sertiny.json`` dict, for anything else a caller needs.
    """

    path: Path
    labels: tuple
    feature_config: FeatureConfig
    norm: NormStats
    seq_len: int
    variants: dict
    metrics: dict
    manifest: dict

    @classmethod
    def load(cls, path):
        """Read ``path/sertiny.json`` and check it against the files beside it
        (``path=None``: the bundle shipped inside the package).

        Raises:
            ArtifactError: naming the manifest or .tflite file at fault and what to do.
        """
        path = default_bundle_path() if path is None else Path(path)
        if not path.exists():
            raise ArtifactError(
                f"{path}: no such bundle (nothing at that path). Check it, or give no bundle to use the "
                "one shipped with sertiny."
            )
        if path.is_file() and path.name != MANIFEST_NAME:
            inside = (path.parent / MANIFEST_NAME).is_file()
            raise ArtifactError(
                f"{path}: a file, not a bundle directory"
                + (f"; it belongs to the bundle {path.parent}: pass that directory." if inside else ".")
            )
        manifest_path = path / MANIFEST_NAME if path.is_dir() else path
        if not manifest_path.is_file():
            raise ArtifactError(
                f"{path}: not a sertiny bundle (no {MANIFEST_NAME}). Make one with "
                "'sertiny export RUN --int8 --out DIR' and pass that DIR."
            )
        manifest = read_json(manifest_path)
        return _parse_manifest(manifest_path, manifest)

    @property
    def n_features(self):
        return self.feature_config.n_features

    @property
    def default_variant(self):
        """The variant run when none is named: the int16x8 model when the bundle has one, else
        the int8 model (full unroll first, else the smallest K), else the first variant
        (:func:`sertiny.runtime.variant.default_variant` says why)."""
        return default_variant(list(self.variants))

    def variant(self, name=None):
        """The :class:`BundleVariant` called ``name`` (default: :attr:`default_variant`).

        A profile-less name (``f32``, ``int8``) on a bundle without that full-unroll model
        means its chunked model of that mode when there is exactly one
        (:func:`~sertiny.runtime.variant.resolve`).
        """
        name = name or self.default_variant
        found = resolve(list(self.variants), name)
        if found is None:
            ambiguous = name in MODES and any(Variant.parse(v).mode == name for v in self.variants)
            raise ArtifactError(
                f"{self.path / MANIFEST_NAME}: no variant {name!r}; this bundle has "
                f"{', '.join(self.variants)}" + (" (name one of them)." if ambiguous else ".")
            )
        return self.variants[found]

    def uar(self, variant_name):
        """The exporter's UAR for a variant (its own ``uar`` if recorded), or None."""
        meta = self.variant(variant_name).meta
        if isinstance(meta.get("uar"), (int, float)):
            return float(meta["uar"])
        variant = self.variant(variant_name)
        key = f"{variant.kind.mode}_uar" if variant.quantized else "float_uar"
        value = self.metrics.get(key)
        return float(value) if isinstance(value, (int, float)) else None


def model_digest(data):
    """The SHA-256 (hex) a manifest records for a model file's bytes."""
    return hashlib.sha256(data).hexdigest()


def manifest_digest(manifest):
    """SHA-256 (hex) of a manifest's canonical JSON without its ``manifest_sha256`` field."""
    body = {key: value for key, value in manifest.items() if key != INTEGRITY_KEY}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def write_manifest(directory, manifest):
    """Write ``directory/sertiny.json`` (atomically), with this bundle format and version
    unless the manifest names its own, sealed with its ``manifest_sha256``; return the dict
    as written. Every writer of a bundle goes through here."""
    # Through JSON first, so the digest covers exactly what a reader gets back (numpy
    # scalars, paths and tuples become plain JSON values).
    sealed = json_values({"format": BUNDLE_FORMAT, "format_version": BUNDLE_FORMAT_VERSION,
                          **{k: v for k, v in manifest.items() if k != INTEGRITY_KEY}})
    sealed[INTEGRITY_KEY] = manifest_digest(sealed)
    atomic_write_json(Path(directory) / MANIFEST_NAME, sealed)
    return sealed


def default_bundle_path():
    """The bundle shipped inside the package (ResLSTM-SA-h64 on RAVDESS; see its MODEL_CARD.md)."""
    if not (DEFAULT_BUNDLE / MANIFEST_NAME).is_file():
        raise ArtifactError(
            f"{DEFAULT_BUNDLE}: this sertiny install has no built-in bundle (a source checkout "
            "without it, or a trimmed package). Pass a bundle directory, or build it with "
            "'python tools/build_default_bundle.py'."
        )
    return DEFAULT_BUNDLE


def _parse_manifest(manifest_path, manifest):
    """Validate every field the device path relies on; return a :class:`Bundle`."""

    def fail(reason):
        raise ArtifactError(f"{manifest_path}: {reason}")

    if not isinstance(manifest, dict) or manifest.get("format") != BUNDLE_FORMAT:
        fail(f"not a sertiny bundle manifest (expected \"format\": \"{BUNDLE_FORMAT}\").")
    version = manifest.get("format_version")
    if version not in SUPPORTED_FORMAT_VERSIONS:
        fail(
            f"bundle format_version {version!r} is not supported by this sertiny (reads "
            f"{list(SUPPORTED_FORMAT_VERSIONS)}). Upgrade sertiny on this device or re-export the bundle with it."
        )
    if manifest.get(INTEGRITY_KEY) != manifest_digest(manifest):
        fail(
            f"the manifest does not match its {INTEGRITY_KEY}: it was edited after export, so its front end, "
            "normalisation or labels may not be the ones the model was trained with. Copy the bundle again "
            "from where it was exported, or re-export it."
        )
    for key in ("labels", "feature_config", "norm", "seq_len", "variants"):
        if key not in manifest:
            fail(f"missing the '{key}' field; the bundle is incomplete. Re-export it.")

    try:
        feature_config = FeatureConfig.from_dict(manifest["feature_config"])
    except (ParameterError, TypeError) as exc:
        fail(
            f"its front-end config cannot be computed by this sertiny ({exc}). Install the sertiny "
            "version that exported the bundle (see 'sertiny_version' in the file) or re-export it."
        )
    try:
        norm = NormStats.from_dict(manifest["norm"])
    except (ParameterError, ArtifactError) as exc:
        fail(f"bad normalisation statistics ({exc}). Re-export the bundle.")
    if norm.n_features != feature_config.n_features:
        fail(
            f"the normalisation statistics have {norm.n_features} features but the front end "
            f"makes {feature_config.n_features}; they come from different runs. Re-export the bundle."
        )

    labels = _check_labels(manifest["labels"], fail)
    seq_len = manifest["seq_len"]
    if isinstance(seq_len, bool) or not isinstance(seq_len, int) or seq_len < 1:
        fail(f"'seq_len' must be a positive int; got {seq_len!r}.")
    _check_model_section(manifest.get("model") or {}, len(labels), feature_config.n_features, seq_len, fail)
    variants = _parse_variants(manifest_path, manifest["variants"], fail)
    metrics = manifest.get("metrics") or {}
    return Bundle(
        path=manifest_path.parent,
        labels=labels,
        feature_config=feature_config,
        norm=norm,
        seq_len=seq_len,
        variants=variants,
        metrics=metrics if isinstance(metrics, dict) else {},
        manifest=manifest,
    )


def _check_labels(labels, fail):
    if not isinstance(labels, list) or len(labels) < 2 or not all(isinstance(x, str) and x for x in labels):
        fail(f"'labels' must be a list of at least two non-empty names; got {labels!r:.120}.")
    if len(set(labels)) != len(labels):
        fail(f"'labels' has duplicates: {labels}.")
    return tuple(labels)


def _check_model_section(model, n_labels, n_features, seq_len, fail):
    """The model config, when present, must agree with labels, front end and T."""
    expected = {"n_classes": n_labels, "n_features": n_features, "seq_len": seq_len}
    for key, value in expected.items():
        if key in model and model[key] != value:
            fail(
                f"the model was built for {key}={model[key]!r} but the bundle gives {value!r} "
                f"({'labels' if key == 'n_classes' else 'feature_config' if key == 'n_features' else 'seq_len'}). "
                "The label set or front end does not belong to this model; re-export the bundle."
            )


def _parse_variants(manifest_path, entries, fail):
    if not isinstance(entries, dict) or not entries:
        fail("'variants' must name at least one .tflite model.")
    variants = {}
    for name, meta in entries.items():
        if not isinstance(meta, dict) or not isinstance(meta.get("file"), str):
            fail(f"variant {name!r} has no 'file'.")
        try:
            kind = Variant.parse(name)
        except ParameterError as exc:
            fail(f"{exc} This sertiny cannot run it; upgrade sertiny or re-export the bundle.")
        profile = meta.get("profile", "full")
        if profile != kind.profile or meta.get("chunk", kind.chunk) != kind.chunk:
            fail(f"variant {name!r} says profile {profile!r}" + (f", chunk {meta['chunk']!r}" if "chunk" in meta else "")
                 + f"; its name says {kind.profile}" + (f", chunk {kind.chunk}" if kind.chunk else "")
                 + ". The manifest was edited; re-export the bundle.")
        variants[name] = BundleVariant(kind=kind, path=_file_inside(manifest_path.parent, name, meta["file"], fail),
                                       meta=meta)
    return variants


def _file_inside(directory, name, file, fail):
    """A variant's file, which must lie in the bundle directory: a manifest naming
    ``../other/model.tflite`` or an absolute path would run a model the bundle does not hold."""
    relative = PurePosixPath(file)
    path = directory / file
    inside = (file and not relative.is_absolute() and ".." not in relative.parts and "\\" not in file
              and path.resolve().is_relative_to(directory.resolve()))
    if not inside:
        fail(f"variant {name!r} names the file {file!r}, which is not inside the bundle directory; a bundle "
             "holds its own model files. Re-export the bundle.")
    return path


def check_variant_file(variant):
    """Check that a variant's file exists and is the one the manifest describes.

    Size and SHA-256 (when recorded) catch a copy cut short or a file swapped between
    bundles, with a message naming the file, before the TFLite runtime sees it.
    """
    path = variant.path
    if not path.is_file():
        raise ArtifactError(f"{path}: model file missing from the bundle; copy the whole bundle directory.")
    data = path.read_bytes()
    expected = variant.meta.get("bytes")
    if isinstance(expected, int) and len(data) != expected:
        raise ArtifactError(
            f"{path}: {len(data)} bytes but the bundle expects {expected}; the file is truncated "
            "or was replaced. Copy the bundle again."
        )
    digest = variant.meta.get("sha256")
    if isinstance(digest, str) and model_digest(data) != digest:
        raise ArtifactError(
            f"{path}: SHA-256 does not match the bundle's manifest; the file is corrupt or comes "
            "from another export. Copy the bundle again."
        )
    return data
