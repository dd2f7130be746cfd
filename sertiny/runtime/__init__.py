"""The device path: bundles, the NumPy front end and a TFLite runtime.

Imports only numpy, soundfile, soxr and the lightest installed TFLite runtime
(``ai_edge_litert``, then ``tflite_runtime``; ``tensorflow.lite`` only as a last resort on
a training machine). Never TensorFlow, Keras, JAX or librosa when a light runtime exists.

    from sertiny.runtime import Classifier
    clf = Classifier.from_path("bundles/x")            # int8 variant by default
    clf = Classifier.from_path(None)                   # the bundle shipped in the package
    print(clf.classify_file("clip.wav").label)
"""

from .bundle import Bundle, BundleVariant, default_bundle_path
from .classifier import DEFAULT_SILENCE_DB, Classifier, Prediction, window_starts
from .runner import load_runner
from .variant import Variant

__all__ = ["Bundle", "BundleVariant", "default_bundle_path", "Classifier", "DEFAULT_SILENCE_DB", "Prediction",
           "Variant", "load_runner", "window_starts"]
