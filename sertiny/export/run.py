"""Read a training run directory for export: configs, weights, norms and fold clips.

Everything is checked before any conversion starts, so a bad run fails in a second with a
message naming the file, not after minutes of conversion with a half-written bundle.
"""

import dataclasses

import numpy as np

from ..errors import ArtifactError, ParameterError, SertinyError
from ..models.registry import families
from ..training.rundir import DEPLOY, RunDir, parse_weights_name


@dataclasses.dataclass(frozen=True)
class RunInfo:
    """A run directory checked for export (:class:`~sertiny.training.rundir.RunDir` reads it)."""

    dir: RunDir
    info: dict  # run.json
    model_config: object  # sertiny.models.ModelConfig
    feature_config: dict
    train_config: dict
    folds: list  # sertiny.data.splits.Fold

    @property
    def path(self):
        return self.dir.path

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
        return self.dir.weights_dir(name)

    def available_weights(self):
        """Weight-set names present in the run, deploy first."""
        return self.dir.available_weights()

    def fold(self, index):
        return next(f for f in self.folds if f.index == index)


def load_run(run_dir):
    """Read and check ``run.json``, ``train_config.json`` and ``feature_config.json``."""
    from ..models.registry import ModelConfig

    run_dir = RunDir(run_dir)
    path = run_dir.path
    info = run_dir.check()
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
    run = RunInfo(run_dir, info, model_config, run_dir.feature_config(), run_dir.train_config(), run_dir.folds())
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


@dataclasses.dataclass(frozen=True, eq=False)
class WeightSet:
    """One trained model of a run: its canonical weights and normalisation statistics."""

    name: str
    weights: dict
    norm: object  # sertiny.features.normalize.NormStats


def load_weight_set(run, name):
    """Load ``deploy`` or ``seed<s>_fold<k>`` weights and norm, checked against the run."""
    from .graph import fold_weights

    weights, norm = run.dir.read_model(name)
    fold_weights(weights, run.model_config)  # shape check against the run's model
    if norm.n_features != run.model_config.n_features:
        raise ArtifactError(
            f"{run.weights_dir(name) / 'norm.json'}: statistics of {norm.n_features} features but the model takes "
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
    return (run.dir.read_fold(*parse_weights_name(name)) or {}).get("val_uar", 0.0)


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
