"""Fixed-length model inputs from variable-length clips (NumPy only: shared with the device path)."""

import numpy as np


def choose_seq_len(lengths, percentile=99.0):
    """The smallest T that covers ``percentile`` % of the given clip lengths (frames)."""
    return int(np.ceil(np.percentile(np.asarray(lengths), percentile)))


def fit_to_length(x, seq_len):
    """Crop (centre) or zero-pad (end) one clip's (frames, F) array to (seq_len, F).

    Returns the array and the number of real frames it holds. Centre crops keep the
    speech: RAVDESS-like recordings start and end with silence.
    """
    frames = x.shape[0]
    if frames >= seq_len:
        start = (frames - seq_len) // 2
        return x[start : start + seq_len], seq_len
    out = np.zeros((seq_len, x.shape[1]), dtype=np.float32)
    out[:frames] = x
    return out, frames


def stack_clips(clips, seq_len, norm=None):
    """Normalise (optional) and fit every clip to T: returns (N, T, F) float32 and lengths (N,)."""
    n_features = clips[0].shape[1] if clips else 0
    batch = np.zeros((len(clips), seq_len, n_features), dtype=np.float32)
    lengths = np.zeros(len(clips), dtype=np.int32)
    for i, clip in enumerate(clips):
        clip = norm.apply(clip) if norm is not None else clip
        batch[i], lengths[i] = fit_to_length(np.asarray(clip, dtype=np.float32), seq_len)
    return batch, lengths
