"""A clip's features fitted to the model's T frames: the one crop/pad rule of training, export and device.

NumPy only (the device path imports it).
"""

import numpy as np


def fit_to_length(x, seq_len, *, pad=True):
    """Centre-crop a clip to at most ``seq_len`` frames and, with ``pad``, zero-pad its end to exactly that.

    Centre crops keep the speech: RAVDESS-like recordings start and end with silence.
    Without ``pad`` the result holds only real frames, what a masked-padding model runs over.

    Parameters
    ----------
    x : np.ndarray [shape=(n_frames, F)]
        One clip's (normalised) features.
    seq_len : int
        Frames T the model is built for.
    pad : bool
        Zero-pad a shorter clip to T frames (zero-padding models, and every full-profile
        TFLite model, which takes exactly T).

    Returns
    -------
    frames : np.ndarray [shape=(seq_len, F), or (min(n_frames, seq_len), F) without pad, dtype=float32]
    """
    x = np.asarray(x, dtype=np.float32)
    if x.shape[0] > seq_len:
        start = (x.shape[0] - seq_len) // 2
        x = x[start : start + seq_len]
    if pad and x.shape[0] < seq_len:
        x = np.concatenate([x, np.zeros((seq_len - x.shape[0], x.shape[1]), np.float32)])
    return x
