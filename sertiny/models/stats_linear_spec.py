"""stats_linear's fixed choices, without Keras: shared by the model (:mod:`sertiny.models.stats_linear`)
and its export (:mod:`sertiny.export.stats_linear_graph`), which never imports Keras.

``STATISTICS`` are the per-feature statistics pooled over a clip's T frames, in the order
their blocks of F values appear in the pooled vector (and in the dense kernel's rows):

- ``mean``: the mean over the T frames.
- ``std``: the standard deviation over the T frames, as :func:`soft_sqrt` of the variance
  ``mean((x - mean)²)``.
- ``delta_rms``: the root mean square of the T - 1 frame-to-frame differences
  ``x[t+1] - x[t]`` (how fast each feature moves), also through :func:`soft_sqrt`.

``SQRT_EPSILON``: ``soft_sqrt(v) = v / sqrt(v + eps)`` stands in for ``sqrt(v)``. It has a
finite gradient at v = 0 (a clip whose frames are all zero padding), and in the exported
graph it is ``v * rsqrt(v + eps)``: MUL, ADD, RSQRT, which TFLite Micro runs in int8 (its
SQRT kernel is float only). For the z-scored features' variances (mostly 0.05-3) it is
within 0.1 % of ``sqrt(v)``; the model is trained with the same function, so the export
approximates nothing.
"""

STATISTICS = ("mean", "std", "delta_rms")
SQRT_EPSILON = 1e-4
