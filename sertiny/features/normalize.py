"""Per-feature z-normalisation: statistics fitted on training clips, applied everywhere.

The statistics travel with the model (JSON in the run directory and the device bundle), so
the device normalises exactly as training did. numpy only.
"""

import dataclasses

import numpy as np

from .._config import check_float
from ..errors import ArtifactError, ParameterError

DEFAULT_MIN_STD = 1e-6
# Per-clip normalisation applied before the fitted statistics: "none"; "mean" subtracts each
# clip's own per-feature mean (cepstral mean normalisation: removes the channel and part of
# the speaker's timbre); "mean_var" also divides by the clip's own standard deviation.
UTTERANCE_MODES = ("none", "mean", "mean_var")


@dataclasses.dataclass(frozen=True, eq=False)
class NormStats:
    """Mean and standard deviation of each feature over all frames of the fitting clips.

    Attributes
    ----------
    mean : np.ndarray [shape=(n_features,), dtype=float32]
    std : np.ndarray [shape=(n_features,), dtype=float32]
        Strictly positive (floored when fitted), so :meth:`apply` never divides by zero.
    utterance : {"none", "mean", "mean_var"}
        Per-clip normalisation done first (:data:`UTTERANCE_MODES`); it needs only the clip
        itself, so the device does it too. ``mean`` and ``std`` are then fitted on the
        per-clip-normalised frames.
    """

    mean: np.ndarray
    std: np.ndarray
    utterance: str = "none"

    def __post_init__(self):
        mean = np.asarray(self.mean, dtype=np.float32).reshape(-1)
        std = np.asarray(self.std, dtype=np.float32).reshape(-1)
        if mean.shape != std.shape or mean.size == 0:
            raise ParameterError(f"NormStats needs mean and std of one equal, non-zero length; "
                                 f"got {mean.size} and {std.size}.")
        if not (np.isfinite(mean).all() and np.isfinite(std).all() and (std > 0).all()):
            raise ParameterError("NormStats needs finite means and finite, positive standard deviations.")
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "std", std)
        if self.utterance not in UTTERANCE_MODES:
            raise ParameterError(f"NormStats.utterance must be one of {list(UTTERANCE_MODES)}; got {self.utterance!r}.")

    @property
    def n_features(self):
        return self.mean.size

    def apply(self, x):
        """``(x - mean) / std`` for an array of frames.

        Parameters
        ----------
        x : np.ndarray [shape=(..., n_features)]

        Returns
        -------
        z : np.ndarray [shape=x.shape, dtype=float32]
        """
        x = np.asarray(x)
        if x.shape[-1:] != (self.n_features,):
            raise ParameterError(f"Expected features with last dimension {self.n_features}; got shape {x.shape}.")
        x = normalize_utterance(x, self.utterance)
        return ((x - self.mean) / self.std).astype(np.float32, copy=False)

    def to_dict(self):
        """JSON-able ``{"mean": [...], "std": [...]}`` (float32 values, exactly round-tripped);
        ``"utterance"`` only when set, so statistics saved before it existed read the same."""
        data = {"mean": self.mean.tolist(), "std": self.std.tolist()}
        if self.utterance != "none":
            data["utterance"] = self.utterance
        return data

    @classmethod
    def from_dict(cls, data):
        try:
            return cls(mean=data["mean"], std=data["std"], utterance=data.get("utterance", "none"))
        except (KeyError, TypeError, AttributeError) as exc:
            raise ArtifactError(f"Normalisation statistics need 'mean' and 'std' lists; got {data!r:.200}") from exc


def normalize_utterance(x, mode):
    """Per-clip normalisation of one clip's ``(frames, F)`` array (see :data:`UTTERANCE_MODES`)."""
    if mode == "none" or len(x) == 0:
        return x
    x = np.asarray(x, dtype=np.float32)
    centred = x - x.mean(axis=-2, keepdims=True)
    if mode == "mean":
        return centred
    return centred / np.maximum(x.std(axis=-2, keepdims=True), DEFAULT_MIN_STD)


def fit_norm_stats(features, *, min_std=DEFAULT_MIN_STD, utterance="none"):
    """Fit :class:`NormStats` over every frame of every clip in ``features``.

    Parameters
    ----------
    features : sequence of np.ndarray [shape=(n_frames_i, n_features)]
        One array per clip; clips weigh by their number of frames.
    min_std : float > 0
        Floor for the standard deviation: a constant feature (e.g. an all-silent band)
        then maps to 0 instead of dividing by zero.
    utterance : {"none", "mean", "mean_var"}
        Per-clip normalisation applied to every clip before the statistics are fitted.

    Returns
    -------
    NormStats
    """
    check_float("fit_norm_stats", "min_std", min_std, min_value=0.0, min_inclusive=False)
    if utterance not in UTTERANCE_MODES:
        raise ParameterError(f"fit_norm_stats: utterance must be one of {list(UTTERANCE_MODES)}; got {utterance!r}.")
    arrays = [np.asarray(x) for x in features]
    if not arrays or not any(len(x) for x in arrays):
        raise ParameterError("fit_norm_stats needs at least one clip with at least one frame.")
    widths = {x.shape[-1] for x in arrays if x.ndim == 2}
    if len(widths) != 1 or any(x.ndim != 2 for x in arrays):
        raise ParameterError(f"fit_norm_stats needs 2-D (frames, features) arrays of one width; got widths {widths}.")
    arrays = [normalize_utterance(x, utterance) for x in arrays]
    # Accumulate in float64: on RAVDESS MFCC 0 averages about -540 with a spread of ~190, and
    # float32 sums over 1e5 frames would lose the digits the std is made of.
    count = sum(len(x) for x in arrays)
    total = sum(x.sum(axis=0, dtype=np.float64) for x in arrays)
    mean = total / count
    sq_dev = sum(np.square(x - mean).sum(axis=0) for x in arrays)
    std = np.maximum(np.sqrt(sq_dev / count), min_std)
    return NormStats(mean=mean, std=std, utterance=utterance)
