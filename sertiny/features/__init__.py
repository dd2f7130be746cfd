"""sertiny.features: the front end (MFCC + chroma, or log-mel frames).

Two back ends compute the same features from the same :class:`FeatureConfig`:

- ``"numpy"`` (:mod:`~sertiny.features.numpy_frontend`): numpy only, for the device;
- ``"librosa"`` (:mod:`~sertiny.features.librosa_frontend`): librosa itself, the reference.

Importing this package stays cheap (numpy only); librosa is imported when the librosa
back end is first used, and the feature cache / table modules when first accessed.

Example::

    from sertiny.features import extract
    feats = extract(y, "edge16k")   # y: mono float32 at 16 kHz -> (frames, 46) float32
"""

import importlib

from .config import FEATURE_CODE_VERSION, PRESETS, FeatureConfig, as_config, get_preset, list_presets
from .normalize import NormStats, fit_norm_stats

BACKENDS = {
    "numpy": "sertiny.features.numpy_frontend",
    "librosa": "sertiny.features.librosa_frontend",
}

# Heavier or less often needed names, imported on first access (PEP 562).
_LAZY = {
    "compute_features": "sertiny.features.cache",
    "FeatureTable": "sertiny.features.table",
    "load_paper_features": "sertiny.features.table",
}


def extract(y, config, *, backend="numpy"):
    """Features of one clip: MFCC + chroma, or log-mel (``config.kind``).

    Parameters
    ----------
    y : np.ndarray [shape=(n_samples,), dtype=float32]
        Mono audio at ``config.sample_rate``.
    config : FeatureConfig or str
        The front end, or a preset name (see :func:`list_presets`).
    backend : {"numpy", "librosa"}
        Which implementation computes them; they agree within 1e-3 of each feature's
        standard deviation on RAVDESS (results/frontend.md).

    Returns
    -------
    features : np.ndarray [shape=(n_frames, config.n_features), dtype=float32]
        Per frame ``config.n_mfcc`` MFCCs then ``config.n_chroma`` chroma values, or
        ``config.n_mels`` log-mel values (``config.feature_names`` names the columns).
    """
    return get_backend(backend).extract(y, as_config(config))


def get_backend(name):
    """The module implementing back end ``name``; it exposes ``extract(y, config)``."""
    from .._config import check_choice

    check_choice("extract", "backend", name, BACKENDS)
    return importlib.import_module(BACKENDS[name])


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "FEATURE_CODE_VERSION",
    "PRESETS",
    "BACKENDS",
    "FeatureConfig",
    "FeatureTable",
    "NormStats",
    "as_config",
    "compute_features",
    "extract",
    "fit_norm_stats",
    "get_backend",
    "get_preset",
    "list_presets",
    "load_paper_features",
]
