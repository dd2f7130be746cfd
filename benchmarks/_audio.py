"""Audio helpers shared by the benchmark scripts (numpy only)."""

import numpy as np


def pcm16(y):
    """Store as 16-bit PCM: round to the nearest step (as the corpus copy was; libsndfile
    1.2's own float -> PCM_16 writer rounds towards -inf, a -0.5 LSB DC offset)."""
    return (np.clip(np.round(np.asarray(y, dtype=np.float64) * 32768.0), -32768, 32767)).astype(np.int16)


def decoded_pcm16(y):
    """``y`` as it reads back after being stored as 16-bit PCM (float32 in [-1, 1))."""
    return pcm16(y).astype(np.float32) / np.float32(32768.0)
