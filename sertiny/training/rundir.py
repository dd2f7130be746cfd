"""A training run directory: its layout, written, read and checked in one place.

Layout (every file written atomically; a fold directory appears only when that fold is
complete, which is what makes a killed run resumable)::

    run.json                 format, label names, T, model config, folds, data source, sertiny version
    train_config.json        the TrainConfig (written last: its presence marks a valid run)
    feature_config.json      the front end the features came from
    seed_<s>/fold_<k>/       weights.npz, norm.json, history.csv, predictions.csv, fold.json
    seed_<s>/metrics.json    pooled UAR of that seed's out-of-fold predictions
    seed_<s>/oof_predictions.csv
    metrics.json             UAR mean ± std and max over seeds, per fold, per class
    confusion.png, learning_curves.png
    deploy/                  weights.npz, norm.json, history.csv, deploy.json (``train --deploy``)

Training writes it (:mod:`sertiny.training.protocol`, :mod:`sertiny.training.report`); the
exporter (:mod:`sertiny.export.run`), :func:`sertiny.training.data.table_for_run`, the
tuner and the benchmark's peers read it, all through :class:`RunDir`. A trained model is
named ``deploy`` or ``seed<S>_fold<K>`` (:func:`weights_name`, :func:`parse_weights_name`).

NumPy and the standard library only.
"""

import csv
import json
from pathlib import Path

import numpy as np

from .. import __version__
from .._io import atomic_directory, atomic_write_json, atomic_write_text, csv_text, read_json
from ..errors import ArtifactError, ParameterError

RUN_FORMAT = "sertiny-run"
RUN_FORMAT_VERSION = 1  # bump when the layout changes
# run.json without "format_version" is layout 1 (written before the field existed).
SUPPORTED_RUN_FORMATS = (1,)
DEPLOY = "deploy"
CONFIG_FILES = ("run.json", "train_config.json", "feature_config.json")


def weights_name(seed, fold_index):
    """The name of a fold's model: ``seed0_fold3``."""
    return f"seed{int(seed)}_fold{int(fold_index)}"


def parse_weights_name(name):
    """``"seed0_fold3"`` -> ``(0, 3)``."""
    import re

    match = re.fullmatch(r"seed(\d+)_fold(\d+)", str(name))
    if not match:
        raise ParameterError(f"--weights must be 'deploy', 'auto' or 'seed<S>_fold<K>' (e.g. seed0_fold3); got {name!r}.")
    return int(match[1]), int(match[2])


class RunDir:
    """The run directory at ``path`` (which need not exist yet)."""

    def __init__(self, path):
        self.path = Path(path)

    def __repr__(self):
        return f"RunDir({str(self.path)!r})"

    # ------------------------------------------------------------------ layout

    def seed_dir(self, seed):
        return self.path / f"seed_{seed}"

    def fold_dir(self, seed, fold_index):
        return self.seed_dir(seed) / f"fold_{fold_index}"

    @property
    def deploy_dir(self):
        return self.path / DEPLOY

    def weights_dir(self, name):
        """Directory of a trained model: ``"deploy"`` or ``"seed<s>_fold<k>"``."""
        if name == DEPLOY:
            return self.deploy_dir
        seed, fold = parse_weights_name(name)
        return self.fold_dir(seed, fold)

    # ------------------------------------------------------------------ writing

    def write_configs(self, info, train_config, feature_config):
        """Start the run: ``run.json`` (``info``, stamped with the run format), the front end,
        then the TrainConfig, whose file marks a valid run."""
        self.path.mkdir(parents=True, exist_ok=True)
        atomic_write_json(self.path / "feature_config.json", feature_config.to_dict())
        atomic_write_json(self.path / "run.json", {"format": RUN_FORMAT, "format_version": RUN_FORMAT_VERSION,
                                                   "sertiny_version": __version__, **info})
        self.write_train_config(train_config)

    def write_train_config(self, train_config):
        atomic_write_json(self.path / "train_config.json", train_config.to_dict())

    def write_fold(self, seed, fold_index, *, weights, norm, history, predictions, summary):
        """A finished fold, all or nothing: weights, normalisation, history rows, prediction
        rows and its ``fold.json`` summary."""
        self._write_model(self.fold_dir(seed, fold_index), weights, norm, history,
                          {"predictions.csv": csv_text(predictions)}, "fold.json", summary)

    def write_deploy(self, *, weights, norm, history, info):
        """The deployment model (trained on every speaker), all or nothing."""
        self._write_model(self.deploy_dir, weights, norm, history, {}, "deploy.json", info)

    def _write_model(self, directory, weights, norm, history, texts, summary_name, summary):
        from ..models.weights import save_weights

        with atomic_directory(directory, overwrite=True) as tmp:
            save_weights(tmp / "weights.npz", weights)
            atomic_write_json(tmp / "norm.json", norm.to_dict())
            atomic_write_text(tmp / "history.csv", csv_text(history))
            for name, text in texts.items():
                atomic_write_text(tmp / name, text)
            atomic_write_json(tmp / summary_name, summary)  # last: marks the model complete

    def write_seed_results(self, seed, metrics, oof_predictions):
        atomic_write_json(self.seed_dir(seed) / "metrics.json", metrics)
        atomic_write_text(self.seed_dir(seed) / "oof_predictions.csv", csv_text(oof_predictions))

    def write_metrics(self, metrics):
        atomic_write_json(self.path / "metrics.json", metrics)

    # ------------------------------------------------------------------ reading

    def info(self):
        """``run.json``."""
        return read_json(self.path / "run.json")

    def train_config(self):
        """``train_config.json`` as a dict (``TrainConfig.from_dict`` makes the config)."""
        return read_json(self.path / "train_config.json")

    def feature_config(self):
        """``feature_config.json`` as a dict."""
        return read_json(self.path / "feature_config.json")

    def has_train_config(self):
        return (self.path / "train_config.json").exists()

    def folds(self):
        """The run's folds (:class:`~sertiny.data.splits.Fold`), from ``run.json``."""
        from ..data.splits import Fold

        try:
            return [Fold(**f) for f in self.info().get("folds", [])]
        except (TypeError, ParameterError) as exc:
            raise ArtifactError(f"{self.path / 'run.json'}: unusable fold list ({exc}).") from None

    def read_fold(self, seed, fold_index):
        """``fold.json`` of a finished fold, or None if the fold has not finished."""
        path = self.fold_dir(seed, fold_index) / "fold.json"
        return json.loads(path.read_text()) if path.exists() else None

    def read_deploy(self):
        """``deploy/deploy.json``, or None without a finished deployment model."""
        path = self.deploy_dir / "deploy.json"
        return json.loads(path.read_text()) if path.is_file() else None

    def read_predictions(self, seed, fold_index):
        """A fold's test predictions: one dict per clip (``name``, ``speaker``, ``label``,
        ``predicted``, ``p_<class>``...)."""
        with open(self.fold_dir(seed, fold_index) / "predictions.csv", newline="") as f:
            return list(csv.DictReader(f))

    def pooled_predictions(self, seed, fold_indices, label_names):
        """``(rows, y_true, y_pred)`` over the test predictions of the given folds, labels as
        indices into ``label_names``."""
        rows = [row for index in fold_indices for row in self.read_predictions(seed, index)]
        index = {name: i for i, name in enumerate(label_names)}
        y_true = np.array([index[r["label"]] for r in rows], dtype=np.int64)
        y_pred = np.array([index[r["predicted"]] for r in rows], dtype=np.int64)
        return rows, y_true, y_pred

    def read_history(self, name):
        """The per-epoch history rows (floats) of a trained model (``deploy``, ``seed0_fold1``)."""
        with open(self.weights_dir(name) / "history.csv", newline="") as f:
            return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]

    def read_model(self, name):
        """``(weights dict, NormStats)`` of a trained model (``deploy``, ``seed0_fold1``);
        ArtifactError naming a missing file and the models there are."""
        from ..features.normalize import NormStats
        from ..models.weights import load_weights

        directory = self.weights_dir(name)
        for file in ("weights.npz", "norm.json"):
            if not (directory / file).is_file():
                hint = ("train with --deploy to add one, or pick a fold model with --weights seed0_fold1"
                        if name == DEPLOY else f"available: {', '.join(self.available_weights()) or 'none'}")
                raise ArtifactError(f"{directory / file}: missing ({hint}).")
        return load_weights(directory / "weights.npz"), NormStats.from_dict(read_json(directory / "norm.json"))

    def load_fold_model(self, seed, fold_index):
        """``(Keras model, NormStats)`` of a finished fold model, built from the model config its
        ``fold.json`` recorded (Keras is imported here, never on the device path)."""
        from ..models.registry import ModelConfig
        from ..models.weights import model_with_weights

        weights, norm = self.read_model(weights_name(seed, fold_index))
        config = ModelConfig.from_dict(self.read_fold(seed, fold_index)["model_config"])
        return model_with_weights(config, weights), norm

    def available_weights(self):
        """Names of the trained models present, deploy first, then each seed's finished folds."""
        names = [DEPLOY] if (self.deploy_dir / "weights.npz").is_file() else []
        seeds = [int(s) for s in self.train_config().get("seeds", [0])]
        for seed in seeds:
            names += [weights_name(seed, f.index) for f in self.folds()
                      if (self.fold_dir(seed, f.index) / "weights.npz").is_file()]
        return names

    # ------------------------------------------------------------------ checking

    def check(self):
        """Raise :class:`~sertiny.errors.ArtifactError` unless this is a complete run of a
        layout this sertiny reads; returns ``run.json``."""
        if not self.path.is_dir():
            raise ArtifactError(f"{self.path}: no such run directory. Pass the --out directory of 'sertiny train'.")
        for name in CONFIG_FILES:
            if not (self.path / name).is_file():
                raise ArtifactError(
                    f"{self.path / name}: missing. {self.path} is not a complete training run "
                    "(train_config.json is written last; an interrupted 'sertiny train' can be resumed)."
                )
        info = self.info()
        version = info.get("format_version", 1)
        if version not in SUPPORTED_RUN_FORMATS:
            raise ArtifactError(
                f"{self.path / 'run.json'}: run format_version {version!r}; this sertiny ({__version__}) reads "
                f"runs of format {list(SUPPORTED_RUN_FORMATS)}. Use the sertiny version that trained it."
            )
        for key in ("label_names", "model_config", "sertiny_version"):
            if key not in info:
                raise ArtifactError(f"{self.path / 'run.json'}: no '{key}' field; the run comes from another "
                                    "sertiny version.")
        theirs, ours = str(info["sertiny_version"]).split(".")[0], __version__.split(".")[0]
        if theirs != ours:
            raise ArtifactError(
                f"{self.path / 'run.json'}: written by sertiny {info['sertiny_version']}, which this sertiny "
                f"({__version__}) cannot read. Use sertiny {theirs}.x."
            )
        return info
