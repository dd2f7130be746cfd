"""Auxiliary labels for multi-task training, read off RAVDESS file names.

BiLSTM-ATT-MTL (Li & Liu) trains its emotion classifier together with two paralinguistic
ones, speech rate and volume, from the same attention context (loss 1.0 / 0.3 / 0.3).
RAVDESS labels neither, but its file names ``MM-VV-EE-II-SS-RR-AA`` carry two other
per-clip facts the corpus really records:

- ``intensity`` (``II``: normal / strong): how strongly the emotion is acted. It is the
  paper's volume classifier's nearest kin: a paralinguistic label of the delivery, heard in
  loudness, pitch range and tempo, yet not a function of the emotion (every emotion but
  neutral is recorded at both intensities, so it cannot be read off the emotion label).
- ``sex`` (actor ``AA``: odd ids male, even female): a property of the voice rather than of
  the delivery, but balanced (12 actors each, every clip labelled) and learnable on held-out
  speakers. Emotion shows in pitch and energy relative to the speaker's own range, which
  differs by sex; the head asks the shared layers to encode that range. (The flip side: it
  puts speaker information into the context vector, which a speaker-independent emotion
  model would rather not have; whether it helps is an experiment, not a given.)

Those two are the default (:data:`DEFAULT_AUX_TASKS`). ``statement`` (``SS``: "Kids are
talking by the door" / "Dogs are sitting by the door") is available too but is a weaker
auxiliary: it is lexical content, fixed by the corpus design to be independent of the
emotion, so learning it asks the shared layers for phonetic detail that emotion does not
use. Repetition (``RR``) carries no information at all and is not offered.

Only the names are read: the labels come from the same clip ids whatever the features are
(the paper's npz and the audio corpus tables both name clips by their RAVDESS stem).
"""

import numpy as np

from ..errors import ParameterError
from .datasets import parse_ravdess_name

# task -> class names, in class-id order
AUX_TASKS = {
    "intensity": ("normal", "strong"),
    "sex": ("male", "female"),
    "statement": ("kids", "dogs"),
}
DEFAULT_AUX_TASKS = ("intensity", "sex")
_STATEMENTS = {1: "kids", 2: "dogs"}
RAVDESS_CONVENTION = ("RAVDESS file names MM-VV-EE-II-SS-RR-AA (e.g. 03-01-05-02-01-02-12: emotion 05, "
                      "intensity 02, statement 01, actor 12)")


def check_aux_tasks(owner, tasks):
    """Raise a :class:`ParameterError` unless ``tasks`` is a non-empty tuple of distinct known tasks."""
    if not isinstance(tasks, tuple) or not tasks or len(set(tasks)) != len(tasks) or not set(tasks) <= set(AUX_TASKS):
        raise ParameterError(
            f"The 'aux_tasks' parameter of {owner} must be a non-empty list of distinct names from "
            f"{sorted(AUX_TASKS)}. Got {tasks!r} instead."
        )


def aux_head_sizes(tasks=DEFAULT_AUX_TASKS):
    """``((task, n_classes), ...)``: the auxiliary heads a model needs for ``tasks``
    (``ModelConfig.aux_heads``)."""
    check_aux_tasks("aux_heads", tuple(tasks))
    return tuple((task, len(AUX_TASKS[task])) for task in tasks)


def auxiliary_labels(names, tasks=DEFAULT_AUX_TASKS):
    """Class ids of the auxiliary tasks of every clip, from its RAVDESS file stem.

    Parameters
    ----------
    names : sequence of str [shape=(n_clips,)]
        Clip ids, e.g. ``FeatureTable.names`` (RAVDESS stems such as ``03-01-05-02-01-02-12``).
    tasks : sequence of str
        Keys of :data:`AUX_TASKS`, in the order of the returned columns.

    Returns
    -------
    np.ndarray [shape=(n_clips, len(tasks)), dtype=int64]
        Column k indexes ``AUX_TASKS[tasks[k]]``.

    Raises
    ------
    ParameterError
        An unknown task, or a clip name that is not a RAVDESS name (EMO-DB, a folder or CSV
        corpus): those corpora do not encode these labels, so multi-task training cannot run.
    """
    tasks = tuple(tasks)
    check_aux_tasks("auxiliary_labels", tasks)
    labels = np.zeros((len(names), len(tasks)), dtype=np.int64)
    bad = []
    for i, name in enumerate(names):
        try:
            attributes = parse_ravdess_name(str(name))["attributes"]
        except ValueError as exc:
            bad.append((str(name), str(exc)))
            continue
        values = {"intensity": attributes["intensity"], "sex": attributes["sex"],
                  "statement": _STATEMENTS[attributes["statement"]]}
        labels[i] = [AUX_TASKS[task].index(values[task]) for task in tasks]
    if bad:
        name, reason = bad[0]
        raise ParameterError(
            f"Multi-task training reads its auxiliary labels ({', '.join(tasks)}) from {RAVDESS_CONVENTION}, "
            f"but {len(bad)} of {len(names)} clip names are not RAVDESS names (first: {name!r}: {reason}). "
            "Other corpora (EMO-DB, a folder or CSV corpus) do not record these labels: train without --multitask."
        )
    return labels
