"""Read a training run directory for export: configs, weights, norms and fold clips.

Everything is checked before any conversion starts, so a bad run fails in a second with a
message naming the file, not after minutes of conversion with a half-written bundle.
"""

import dataclasses
from pathlib import Path

import numpy as np

from .. import __version__
from .._io import read_json
from ..errors import ArtifactError, ParameterError, SertinyError
from ..models.registry import families

# Run layouts this exporter reads. run.json without "format_version" is layout 1 (the
# first layout, written before the field existed).
SUPPORTED_RUN_FORMATS = (1,)
DEPLOY = "deploy"


@dataclasses.dataclass(frozen=True)
class RunInfo:
    """A checked run directory (see :mod:`sertiny.training.protocol` for the layout)."""

    path: Path
    info: dict  # run.json
    model_config: object  # sertiny.models.ModelConfig
    feature_config: dict
    train_config: dict
    folds: list  # sertiny.data.splits.Fold

    @property
    def labels(self):
        return list(self.info["label_names"])

    @property
    def seq_len(self):
        return int(self.model_config.seq_len)

    @property
    def seeds(self):
        return [int(s) for s in self.train_config.get("seeds", [0])]

    def weights_dir(self, name):
        """Directory of a weight set: ``"deploy"`` or ``"seed<s>_fold<k>"``."""
        if name == DEPLOY:
            return self.path / "deploy"
        seed, fold = parse_weights_name(name)
        return self.path / f"seed_{seed}" / f"fold_{fold}"

    def available_weights(self):
        """Weight-set names present in the run, deploy first."""
        names = [DEPLOY] if (self.path / "deploy" / "weights.npz").is_file() else []
        for seed in self.seeds:
            names += [f"seed{seed}_fold{f.index}" for f in self.folds
                      if (self.weights_dir(f"seed{seed}_fold{f.index}") / "weights.npz").is_file()]
        return names

    def fold(self, index):
        return next(f for f in self.folds if f.index == index)


def parse_weights_name(name):
    """``"seed0_fold3"`` -> ``(0, 3)``."""
    import re

    match = re.fullmatch(r"seed(\d+)_fold(\d+)", str(name))
    if not match:
        raise ParameterError(f"--weights must be 'deploy', 'auto' or 'seed<S>_fold<K>' (e.g. seed0_fold3); got {name!r}.")
    return int(match[1]), int(match[2])


def load_run(run_dir):
    """Read and check ``run.json``, ``train_config.json`` and ``feature_config.json``."""
    from ..data.splits import Fold
    from ..models.registry import ModelConfig

    path = Path(run_dir)
    if not path.is_dir():
        raise ArtifactError(f"{path}: no such run directory. Pass the --out directory of 'sertiny train'.")
    for name in ("run.json", "train_config.json", "feature_config.json"):
        if not (path / name).is_file():
            raise ArtifactError(
                f"{path / name}: missing. {path} is not a complete training run "
                "(train_config.json is written last; an interrupted 'sertiny train' can be resumed)."
            )
    info = read_json(path / "run.json")
    _check_run_format(path, info)
    try:
        model_config = ModelConfig.from_dict(info["model_config"])
    except (KeyError, TypeError, ParameterError) as exc:
        raise ArtifactError(f"{path / 'run.json'}: unusable model_config ({exc}); the run comes from another sertiny version.") from None
    exportable = [family.name for family in families() if family.exportable]
    if model_config.family not in exportable:
        raise ArtifactError(
            f"{path}: the run trained {model_config.name}, a {model_config.family!r} model; sertiny export "
            f"supports the {', '.join(exportable)} families only. Its weights are in "
            "seed_<s>/fold_<k>/weights.npz (load them with sertiny.models.weights.set_weights)."
        )
    try:
        folds = [Fold(**f) for f in info.get("folds", [])]
    except (TypeError, ParameterError) as exc:
        raise ArtifactError(f"{path / 'run.json'}: unusable fold list ({exc}).") from None
    run = RunInfo(path, info, model_config, read_json(path / "feature_config.json"),
                  read_json(path / "train_config.json"), folds)
    if run.train_config.get("normalization") == "speaker":
        raise ArtifactError(
            f"{path}: the run used speaker-adaptive normalisation (statistics of each test speaker's own "
            "audio), which a bundle cannot carry yet; it is a measurement, not a model to ship. "
            "Retrain with --normalization train to export."
        )
    if len(run.labels) != model_config.n_classes:
        raise ArtifactError(f"{path / 'run.json'}: {len(run.labels)} label names but the model has {model_config.n_classes} outputs.")
    front_end = front_end_config(run.feature_config)
    if front_end is not None and front_end.n_features != model_config.n_features:
        raise ArtifactError(
            f"{path / 'feature_config.json'}: the front end makes {front_end.description} features per frame "
            f"but the model takes {model_config.n_features}."
        )
    return run


def front_end_config(feature_config):
    """The :class:`~sertiny.features.FeatureConfig` of a run's saved front-end dict, or None
    if it is not one this sertiny can build (then nothing is checked against it here;
    :func:`load_table` still refuses features of another front end)."""
    from ..features.config import FeatureConfig

    try:
        return FeatureConfig.from_dict(feature_config)
    except (ParameterError, TypeError):
        return None


def _check_run_format(path, info):
    version = info.get("format_version", 1)
    if version not in SUPPORTED_RUN_FORMATS:
        raise ArtifactError(
            f"{path / 'run.json'}: run format_version {version!r}; this sertiny ({__version__}) exports "
            f"runs of format {list(SUPPORTED_RUN_FORMATS)}. Export it with the sertiny version that trained it."
        )
    for key in ("label_names", "model_config", "sertiny_version"):
        if key not in info:
            raise ArtifactError(f"{path / 'run.json'}: no '{key}' field; the run comes from another sertiny version.")
    theirs, ours = str(info["sertiny_version"]).split(".")[0], __version__.split(".")[0]
    if theirs != ours:
        raise ArtifactError(
            f"{path / 'run.json'}: written by sertiny {info['sertiny_version']}, which this sertiny "
            f"({__version__}) cannot export. Use sertiny {theirs}.x."
        )


@dataclasses.dataclass(frozen=True, eq=False)
class WeightSet:
    """One trained model of a run: its canonical weights and normalisation statistics."""

    name: str
    weights: dict
    norm: object  # sertiny.features.normalize.NormStats


def load_weight_set(run, name):
    """Load ``deploy`` or ``seed<s>_fold<k>`` weights and norm, checked against the run."""
    from ..features.normalize import NormStats
    from ..models.weights import load_weights
    from .graph import fold_weights

    directory = run.weights_dir(name)
    for file in ("weights.npz", "norm.json"):
        if not (directory / file).is_file():
            hint = ("train with --deploy to add one, or pick a fold model with --weights seed0_fold1"
                    if name == DEPLOY else f"available: {', '.join(run.available_weights()) or 'none'}")
            raise ArtifactError(f"{directory / file}: missing ({hint}).")
    weights = load_weights(directory / "weights.npz")
    fold_weights(weights, run.model_config)  # shape check against the run's model
    norm = NormStats.from_dict(read_json(directory / "norm.json"))
    if norm.n_features != run.model_config.n_features:
        raise ArtifactError(
            f"{directory / 'norm.json'}: statistics of {norm.n_features} features but the model takes "
            f"{run.model_config.n_features}; they belong to a model trained on other features."
        )
    return WeightSet(name, weights, norm)


def choose_weights(run, requested="auto"):
    """The weight set to ship: the deploy model if the run has one, else the best fold.

    Returns ``(name, reason)``; the reason goes into the model card.
    """
    deploy_reason = "trained on all speakers with the run's hyperparameters (the deployment model)"
    if requested == DEPLOY:
        return DEPLOY, deploy_reason
    if requested != "auto":
        seed, index = parse_weights_name(requested)
        if seed not in run.seeds or index not in {f.index for f in run.folds}:
            raise ParameterError(f"--weights {requested}: the run has seeds {run.seeds} and folds "
                                 f"{[f.index for f in run.folds]}.")
        return requested, "chosen with --weights; it never saw its fold's test speakers"
    available = run.available_weights()
    if DEPLOY in available:
        return DEPLOY, deploy_reason
    if not available:
        raise ArtifactError(f"{run.path}: no trained weights found (no deploy/ and no finished fold).")
    best = max(available, key=lambda n: _val_uar(run, n))
    return best, ("no deployment model in the run (train with --deploy), so the fold model with the best "
                  "validation UAR; it never saw its fold's test speakers")


def _val_uar(run, name):
    path = run.weights_dir(name) / "fold.json"
    return read_json(path).get("val_uar", 0.0) if path.is_file() else 0.0


def load_table(run):
    """The run's feature table, checked to be the features the model was trained on."""
    from ..training.data import table_for_run

    try:
        table = table_for_run(run.path)
    except SertinyError:  # already says what is wrong (ParameterError is also a ValueError)
        raise
    except (OSError, ValueError, KeyError) as exc:
        raise ArtifactError(f"{run.path}: cannot rebuild the run's features ({exc}).") from None
    if not type(table.feature_config).same_identity(run.feature_config, table.feature_config):
        raise ArtifactError(
            f"{run.path}: the features found for this run were made with another front end than "
            "its feature_config.json; the model was trained on different features."
        )
    width = table.features[0].shape[1] if len(table) else run.model_config.n_features
    if width != run.model_config.n_features or list(table.label_names) != run.labels:
        raise ArtifactError(
            f"{run.path}: the run's data has {width} features and labels {list(table.label_names)}, but the "
            f"model takes {run.model_config.n_features} and was trained on {run.labels}."
        )
    return table


@dataclasses.dataclass(frozen=True, eq=False)
class FoldData:
    """Normalised clips of one fold: the training split (for calibration) and the test split."""

    name: str
    train_clips: list  # normalised (frames, F) arrays
    train_labels: np.ndarray
    test_clips: list
    test_labels: np.ndarray
    test_names: list


def fold_data(run, table, weight_set, fold=None):
    """Normalised training and test clips for a weight set (deploy: all clips train, none test)."""
    from ..data.splits import fold_indices

    norm = weight_set.norm
    if fold is None:
        train_idx, test_idx = np.arange(len(table)), np.array([], dtype=np.int64)
    else:
        train_idx, _, test_idx = fold_indices(table.speakers, fold)
    clips = lambda idx: [norm.apply(table.features[i]) for i in idx]
    return FoldData(weight_set.name, clips(train_idx), table.labels[train_idx], clips(test_idx),
                    table.labels[test_idx], [str(table.names[i]) for i in test_idx])
