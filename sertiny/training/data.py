"""Where a run's features come from, recorded so export and resume can rebuild them."""

import dataclasses
import os
from pathlib import Path

from .._config import Config, check_bool_fields, check_choice
from ..errors import ParameterError, SertinyError

DATA_KINDS = ("paper_npz", "audio")


def default_cache_dir():
    return Path(os.environ.get("SERTINY_CACHE", Path.home() / ".cache" / "sertiny")) / "features"


@dataclasses.dataclass(frozen=True, kw_only=True)
class DataSpec(Config):
    """The data stage's config.

    kind: ``paper_npz`` (the paper's precomputed RAVDESS features) or ``audio`` (a corpus
        folder run through the front end given by the run's ``feature_config.json``).
    path: the npz file or the corpus root.
    dataset: corpus layout for ``audio`` (see ``sertiny data summary --help``).
    backend: front-end implementation for ``audio`` (``numpy`` or ``librosa``).
    cache_dir: feature cache; ``None`` = ``$SERTINY_CACHE/features`` or ~/.cache/sertiny/features.
    strict: fail on the first unusable audio file instead of skipping it.
    """

    kind: str
    path: str
    dataset: str = "auto"
    backend: str = "numpy"
    cache_dir: str | None = None
    strict: bool = False

    def __post_init__(self):
        from ..data.datasets import DATASET_KINDS
        from ..features import BACKENDS

        check_bool_fields(self)
        check_choice("DataSpec", "kind", self.kind, set(DATA_KINDS))
        check_choice("DataSpec", "dataset", self.dataset, set(DATASET_KINDS))
        check_choice("DataSpec", "backend", self.backend, set(BACKENDS))


def load_table(spec, feature_config=None, *, progress=True, n_jobs=None, say=None):
    """The :class:`~sertiny.features.table.FeatureTable` a spec describes.

    ``progress`` shows the feature extraction's progress bar; ``say``, if given, is called
    with a line for the user when unusable files are skipped.
    """
    from ..features.table import FeatureTable, load_paper_features

    if spec.kind == "paper_npz":
        return load_paper_features(spec.path)
    from ..data import load_dataset
    from ..features import compute_features, get_preset

    if feature_config is None:
        feature_config = get_preset("edge16k")
    dataset = load_dataset(spec.path, spec.dataset)
    if not dataset.clips:
        raise ParameterError(f"No usable audio clips found under {spec.path}. Check the path and --dataset.")
    cache = spec.cache_dir or default_cache_dir()
    features, problems = compute_features(
        dataset.paths(), feature_config, backend=spec.backend, cache_dir=cache, n_jobs=n_jobs, progress=progress
    )
    problems = list(dataset.problems) + list(problems)
    if problems and spec.strict:
        listing = "\n".join(f"  {p}: {r}" for p, r in problems[:20])
        raise SertinyError(f"{len(problems)} unusable file(s) (--strict):\n{listing}")
    keep = [i for i, f in enumerate(features) if f is not None]
    if problems and say is not None:
        say(f"Skipped {len(problems)} unusable file(s); first: {problems[0][0]}: {problems[0][1]}")
    return FeatureTable(
        features=[features[i] for i in keep],
        labels=dataset.labels()[keep],
        speakers=dataset.speakers()[keep],
        names=[Path(dataset.paths()[i]).stem for i in keep],
        label_names=dataset.label_names,
        feature_config=feature_config,
        source=str(spec.path),
    )


def table_for_run(run_dir, *, progress=False):
    """Rebuild the feature table a run was trained on (from the cache when possible)."""
    from ..features import FeatureConfig
    from .rundir import RunDir

    run = RunDir(run_dir)
    info = run.info()
    if "data" not in info:
        raise ParameterError(f"{run.path / 'run.json'} does not record its data source; retrain with this sertiny "
                             "version.")
    spec = DataSpec.from_dict(info["data"])
    return load_table(spec, FeatureConfig.from_dict(run.feature_config()), progress=progress)


def perturbed_features(spec, table, name, loader, *, progress=False, n_jobs=None):
    """``table``'s clips read through ``loader`` (a perturbing ``load_audio``, see
    :func:`sertiny.training.augment.waveform_copies`), through ``table``'s front end.

    Returns one ``(frames, F)`` array per clip of ``table`` (same order), or None where the
    perturbed clip could not be made. Cached like any features, under a folder of its own
    per perturbation ``name`` (the cache key does not know the loader).
    """
    from ..data import load_dataset
    from ..features import compute_features

    if spec.kind != "audio":
        raise ParameterError(
            "Speed, gain, noise and pitch perturbation need the audio: train from a corpus folder (DATA_DIR), "
            f"not from precomputed features ({spec.path})."
        )
    dataset = load_dataset(spec.path, spec.dataset)
    by_name = {Path(p).stem: p for p in dataset.paths()}
    if len(by_name) != len(dataset.paths()):
        raise ParameterError(f"Waveform perturbation needs unique clip file names; {spec.path} repeats some.")
    missing = [n for n in table.names if n not in by_name]
    if missing:
        raise ParameterError(f"{len(missing)} clip(s) of the feature table are no longer in {spec.path}, "
                             f"e.g. {missing[0]!r}.")
    cache = Path(spec.cache_dir or default_cache_dir()) / "augmented" / name
    features, _ = compute_features([by_name[n] for n in table.names], table.feature_config, backend=spec.backend,
                                   cache_dir=cache, n_jobs=n_jobs, progress=progress, load_audio=loader)
    return features
