"""stats_linear's fixed choices, without Keras: shared by the model (:mod:`sertiny.models.stats_linear`)
and its export (:mod:`sertiny.export.stats_linear_graph`), which never imports Keras.

``STATISTICS`` are the per-feature statistics pooled over a clip's T frames, in the order
their blocks of F values appear in the pooled vector (and in the dense kernel's rows):

- ``mean``: the mean over the T frames.
- ``std``: the standard deviation over the T frames, as ``soft_sqrt`` (below) of the variance
  ``mean((x - mean)²)``.
- ``delta_rms``: the root mean square of the T - 1 frame-to-frame differences
  ``x[t+1] - x[t]`` (how fast each feature moves), through the same square root. Kept on
  the validation speakers' word, though it is a near tie: late val UAR 0.4658 with it,
  0.4648 without (stats_linear_h1, edge16k before its quiet-frame floors, recipe
  ``linear_mid``, 3 seeds); it costs 9 of
  the int8 model's 26 ops and F C weights, and exports as cleanly as ``std``.

``SQRT_EPSILON``: ``soft_sqrt(v) = v / sqrt(v + eps)`` stands in for ``sqrt(v)``. It has a
finite gradient at v = 0 (a clip whose frames are all zero padding), and the exported graph
computes it with ADD, RSQRT and MUL, which TFLite Micro runs in int8 (its SQRT kernel is
float only; :mod:`sertiny.export.stats_linear_graph`). For the z-scored features' variances (mostly 0.05-3) it is
within 0.1 % of ``sqrt(v)``; the model is trained with the same function, so the export
approximates nothing.
"""

STATISTICS = ("mean", "std", "delta_rms")
SQRT_EPSILON = 1e-4
