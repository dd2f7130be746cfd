"""The device path: bundles, NumPy front end and a TFLite runtime. Never imports TensorFlow
unless no lighter TFLite runtime is installed (then ``tensorflow.lite`` is the fallback)."""
