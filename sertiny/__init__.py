"""sertiny: tiny speech-emotion-recognition models from training to int8 on the edge.

Importing this package is cheap and safe on a device: it pulls in neither TensorFlow,
Keras, JAX, librosa nor Optuna. Stage modules (``sertiny.data``, ``sertiny.features``,
``sertiny.models``, ``sertiny.training``, ``sertiny.tuning``, ``sertiny.export``,
``sertiny.runtime``, ``sertiny.bench``) are imported on demand.
"""

__version__ = "0.1.0"

from .errors import (  # noqa: E402
    ArtifactError,
    AudioError,
    MissingDependencyError,
    ParameterError,
    SertinyError,
)
from ._native_logs import install_import_hook as _install_import_hook  # noqa: E402

_install_import_hook()  # in a CLI command's worker processes: hide what the CLI hides

__all__ = [
    "__version__",
    "SertinyError",
    "ParameterError",
    "AudioError",
    "ArtifactError",
    "MissingDependencyError",
]
