"""Representative data for full-integer calibration, drawn from a model's training clips.

The converter sets every activation's int8 range from the min/max it sees on these
samples, so they must cover the classes (a missing class can leave its typical ranges
uncovered) and, for chunked models, the LSTM states actually reached inside clips.
"""

import numpy as np

from ..errors import ArtifactError, ParameterError

STRATEGIES = ("stratified", "random")


def pick_clips(labels, n_clips, *, strategy="stratified", seed=0):
    """Indices of up to ``n_clips`` calibration clips (all of them if ``n_clips`` is None).

    ``stratified`` takes the classes in turn (a random clip of each per round), so even a
    handful of clips covers every class; ``random`` is a plain random sample.
    """
    labels = np.asarray(labels)
    if labels.size == 0:
        raise ArtifactError("The representative set is empty: the model's training split has no clips to calibrate "
                            "int8 ranges on. Check the run's folds and data.")
    if strategy not in STRATEGIES:
        raise ParameterError(f"calibration strategy must be one of {STRATEGIES}; got {strategy!r}.")
    if n_clips is not None and n_clips < 1:
        raise ParameterError(f"The representative set is empty: asked for {n_clips} calibration clips (need at least 1).")
    rng = np.random.default_rng(seed)
    n = labels.size if n_clips is None else min(int(n_clips), labels.size)
    if strategy == "random":
        return np.sort(rng.choice(labels.size, size=n, replace=False))
    queues = [list(rng.permutation(np.flatnonzero(labels == c))) for c in np.unique(labels)]
    picked = []
    while len(picked) < n:
        for queue in queues:
            if queue and len(picked) < n:
                picked.append(queue.pop())
    return np.sort(np.array(picked, dtype=np.int64))


def full_samples(clips, seq_len):
    """One sample per clip for the full-unroll model: ``[[(1, T, F) float32]]``."""
    from ..features.frames import fit_to_length

    if not clips:
        raise ArtifactError("The representative set is empty: no clips to calibrate on.")
    samples = []
    for clip in clips:
        x = fit_to_length(clip, seq_len)  # the full model always takes exactly T frames
        samples.append([x[None].astype(np.float32)])
    return samples


def chunk_samples(float_runner, clips, max_samples, *, seed=0):
    """Calibration samples of a chunked model: the inputs of every invoke of the float
    chunked model over ``clips`` (frames and the float LSTM states entering each chunk).

    Returns ``(samples, groups)``: ``samples`` subsampled evenly to ``max_samples`` for the
    converter's calibration, and ``groups``, every invoke's inputs per clip, for
    :func:`sertiny.export.convert.robust_ranges`.
    """
    if not clips:
        raise ArtifactError("The representative set is empty: no clips to calibrate on.")
    groups = []
    for clip in clips:
        trace = []
        float_runner.predict(clip, trace=trace)
        groups.append([inputs for inputs, _ in trace])
    samples = [s for group in groups for s in group]
    if max_samples is not None and len(samples) > max_samples:
        keep = np.random.default_rng(seed).choice(len(samples), size=max_samples, replace=False)
        samples = [samples[i] for i in np.sort(keep)]
    return samples, groups
