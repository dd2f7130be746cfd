"""Import Keras on the backend a stage needs.

Keras 3 fixes its backend at first import. Training uses JAX (measured 2.8x faster per
epoch than TensorFlow here); nothing else in sertiny needs Keras, because export builds
its TensorFlow graph from plain NumPy weights. Calling this before any other Keras import
makes the choice; if Keras is already loaded on another backend we say so instead of
silently training on the slow one.
"""

import os
import sys

from .errors import MissingDependencyError, SertinyError


def import_keras(backend="jax"):
    if "keras" not in sys.modules:
        os.environ.setdefault("KERAS_BACKEND", backend)
        # Keras imports TensorFlow (for tf.data) even on JAX; keep its C++ start-up chatter
        # (oneDNN notices, absl warnings) off the user's terminal.
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        import keras
    except ImportError as exc:
        raise MissingDependencyError(
            'Training needs Keras 3 and JAX. Install them with: pip install "sertiny[train]"'
        ) from exc
    actual = keras.backend.backend()
    if actual != backend:
        raise SertinyError(
            f"Keras is running on the '{actual}' backend but this step needs '{backend}'. "
            f"Set KERAS_BACKEND={backend} (or unset it) before starting Python."
        )
    return keras
