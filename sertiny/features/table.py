"""A corpus of per-clip feature sequences with their labels: what training consumes."""

import dataclasses
import hashlib
import json
from pathlib import Path

import numpy as np

from ..data.datasets import RAVDESS_LABELS as RAVDESS_EMOTIONS  # code order: label index = code - 1
from ..errors import ArtifactError, ParameterError
from .config import FeatureConfig, get_preset

_PAPER_KEYS = ("features", "offsets", "names", "emotion", "actor")


@dataclasses.dataclass(eq=False)
class FeatureTable:
    """Feature sequences of a set of clips, aligned with their labels and speakers.

    Attributes
    ----------
    features : list of np.ndarray [shape=(n_frames_i, n_features), dtype=float32]
        One array per clip; clips differ in length.
    labels : np.ndarray [shape=(n_clips,), dtype=int64]
        Index into ``label_names``.
    speakers : np.ndarray [shape=(n_clips,), dtype=str]
        Speaker id of each clip (RAVDESS: "01".."24"), for speaker-independent splits.
    names : np.ndarray [shape=(n_clips,), dtype=str]
        Clip ids (RAVDESS: file stems).
    label_names : tuple of str
        Class names, in label-index order.
    feature_config : FeatureConfig
        The front end that made ``features``.
    source : str
        Where the table came from (a file, or a description), for run records.
    """

    features: list
    labels: np.ndarray
    speakers: np.ndarray
    names: np.ndarray
    label_names: tuple
    feature_config: FeatureConfig
    source: str = ""

    def __post_init__(self):
        self.features = [np.asarray(x, dtype=np.float32) for x in self.features]
        self.labels = np.asarray(self.labels, dtype=np.int64).reshape(-1)
        self.speakers = np.asarray(self.speakers, dtype=str).reshape(-1)
        self.names = np.asarray(self.names, dtype=str).reshape(-1)
        self.label_names = tuple(self.label_names)
        n = len(self.features)
        for field in ("labels", "speakers", "names"):
            if len(getattr(self, field)) != n:
                raise ParameterError(f"FeatureTable has {n} feature arrays but {len(getattr(self, field))} {field}.")
        if n and (self.labels.min() < 0 or self.labels.max() >= len(self.label_names)):
            raise ParameterError(f"FeatureTable labels must lie in [0, {len(self.label_names) - 1}] "
                                 f"(one per label name); got [{self.labels.min()}, {self.labels.max()}].")
        width = self.feature_config.n_features
        bad = [i for i, x in enumerate(self.features) if x.ndim != 2 or x.shape[1] != width]
        if bad:
            raise ParameterError(f"FeatureTable feature arrays must be (frames, {width}) for "
                                 f"{self.feature_config.description}; "
                                 f"clip {self.names[bad[0]]!r} has shape {self.features[bad[0]].shape}.")

    def __len__(self):
        return len(self.features)

    @property
    def lengths(self):
        """Frames per clip, ``np.ndarray [shape=(n_clips,), dtype=int64]``."""
        return np.array([len(x) for x in self.features], dtype=np.int64)

    def subset(self, indices):
        """A new table holding clips ``indices`` (ints or a boolean mask), in that order."""
        indices = np.asarray(indices)
        if indices.dtype == bool:
            if indices.shape != (len(self),):
                raise ParameterError(f"A boolean mask must have one entry per clip ({len(self)}); got {indices.shape}.")
            indices = np.flatnonzero(indices)
        indices = indices.astype(np.int64, copy=False).reshape(-1)
        return dataclasses.replace(
            self,
            features=[self.features[i] for i in indices],
            labels=self.labels[indices],
            speakers=self.speakers[indices],
            names=self.names[indices],
        )


def table_fingerprint(table):
    """A hash of the clips, labels, speakers and front end: equal tables, equal hash.

    Paths are left out on purpose: the same feature file on two machines must match. A
    tuning study and a training run record it, and refuse to go on with other data.
    """
    digest = hashlib.sha256()
    digest.update(json.dumps(table.feature_config.identity_dict(), sort_keys=True).encode())
    digest.update(json.dumps(list(table.label_names)).encode())
    for array in (table.labels, table.speakers.astype("U"), table.names.astype("U")):
        digest.update(array.tobytes())
    for clip in table.features:
        digest.update(clip.tobytes())
    return digest.hexdigest()[:16]


def load_paper_features(npz_path):
    """The ResLSTM-SA paper's own features of RAVDESS (librosa, 48 kHz, ``paper`` preset).

    Parameters
    ----------
    npz_path : str or Path
        ``ravdess48k_paper_features.npz``: arrays ``features`` (all frames stacked, 46 wide),
        ``offsets`` (clip i is ``features[offsets[i]:offsets[i + 1]]``), ``names``,
        ``emotion`` (RAVDESS code 1..8) and ``actor`` (1..24).

    Returns
    -------
    FeatureTable
        Labels 0..7 in :data:`RAVDESS_EMOTIONS` order, speakers "01".."24", the ``paper``
        preset as feature config.

    Raises
    ------
    ArtifactError
        The file is missing, not an npz, lacks an array, or its arrays do not fit together.
    """
    path = Path(npz_path)
    try:
        data = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise ArtifactError(f"{path}: file not found") from None
    except (OSError, ValueError) as exc:
        raise ArtifactError(f"{path}: not a readable npz file ({exc})") from None
    if not isinstance(data, np.lib.npyio.NpzFile):
        raise ArtifactError(f"{path}: a single .npy array, not an npz archive of {list(_PAPER_KEYS)}.")
    with data:
        missing = [key for key in _PAPER_KEYS if key not in data.files]
        if missing:
            raise ArtifactError(f"{path}: missing array(s) {missing}; a paper feature file holds {list(_PAPER_KEYS)}.")
        try:
            arrays = {key: data[key] for key in _PAPER_KEYS}
        except (OSError, ValueError) as exc:  # truncated member, or object arrays
            raise ArtifactError(f"{path}: not a readable npz file ({exc})") from None
    config = get_preset("paper")
    offsets, emotion = arrays["offsets"], arrays["emotion"]
    _check_paper_arrays(path, arrays, config)
    return FeatureTable(
        features=[arrays["features"][a:b] for a, b in zip(offsets[:-1], offsets[1:], strict=True)],
        labels=emotion.astype(np.int64) - 1,
        speakers=np.array([f"{int(a):02d}" for a in arrays["actor"]]),
        names=arrays["names"],
        label_names=RAVDESS_EMOTIONS,
        feature_config=config,
        source=str(path),
    )


def _check_paper_arrays(path, arrays, config):
    features, offsets = arrays["features"], arrays["offsets"]
    n_clips = len(arrays["names"])
    if features.ndim != 2 or features.shape[1] != config.n_features:
        raise ArtifactError(f"{path}: 'features' must be (frames, {config.n_features}); got {features.shape}.")
    rising = offsets.shape == (n_clips + 1,) and offsets[0] == 0 and np.all(np.diff(offsets) >= 0)
    if not rising or offsets[-1] != len(features):
        raise ArtifactError(f"{path}: 'offsets' must rise from 0 to {len(features)} with {n_clips + 1} entries.")
    for key in ("emotion", "actor"):
        if arrays[key].shape != (n_clips,):
            raise ArtifactError(f"{path}: '{key}' must have one entry per clip ({n_clips}); got {arrays[key].shape}.")
    if not np.isin(arrays["emotion"], np.arange(1, len(RAVDESS_EMOTIONS) + 1)).all():
        raise ArtifactError(f"{path}: 'emotion' must hold RAVDESS codes 1..{len(RAVDESS_EMOTIONS)}.")
