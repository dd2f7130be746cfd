"""The ViT's fixed sizes, without Keras: shared by the model (:mod:`sertiny.models.vit`) and
its export (:mod:`sertiny.export.vit_graph`), which never imports Keras."""

PATCH_FRAMES = 10
DEPTH = 4
HEADS = 4
MLP_RATIO = 2
LN_EPSILON = 1e-6


def n_tokens(seq_len):
    """Patches (tokens) of a clip of ``seq_len`` frames: ``ceil(seq_len / PATCH_FRAMES)``."""
    return -(-seq_len // PATCH_FRAMES)
