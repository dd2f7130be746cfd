"""Fixed-length model batches from variable-length clips."""

import numpy as np

from ..features.frames import fit_to_length


def choose_seq_len(lengths, percentile=99.0):
    """The smallest T that covers ``percentile`` % of the given clip lengths (frames)."""
    return int(np.ceil(np.percentile(np.asarray(lengths), percentile)))


def stack_clips(clips, seq_len, norm=None):
    """Normalise (optional) and fit every clip to T: returns (N, T, F) float32 and lengths (N,)."""
    n_features = clips[0].shape[1] if clips else 0
    batch = np.zeros((len(clips), seq_len, n_features), dtype=np.float32)
    lengths = np.zeros(len(clips), dtype=np.int32)
    for i, clip in enumerate(clips):
        clip = norm.apply(clip) if norm is not None else clip
        frames = fit_to_length(clip, seq_len, pad=False)  # the batch is zeros after them
        batch[i, : len(frames)], lengths[i] = frames, len(frames)
    return batch, lengths
