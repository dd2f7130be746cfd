"""Speaker-independent train/validation/test folds.

A fold names speakers, never clips: every clip of a speaker lands on the same side, so
the test score measures generalisation to unseen voices. Three schemes:

* ``paper``: the exact 5 RAVDESS folds of the ResLSTM-SA paper (PAPER_FACTS.md).
* ``kfold``: speakers shuffled with a seed and cut into ``n_folds`` test groups.
* ``loso``: leave one speaker out; one fold per speaker.

In ``kfold`` and ``loso`` the validation speakers of fold k are taken from the next
fold's test group, as the paper's table does (fold 1 validates on actors 3 and 6, two
of fold 2's test actors). Each speaker then validates at most once when the groups are
large enough, and the choice depends only on the seed.
"""

import dataclasses

import numpy as np

from .._config import check_choice, check_int
from ..errors import ParameterError
from .datasets import RAVDESS_ACTORS

FOLD_SCHEMES = ("auto", "paper", "kfold", "loso")
# Validation speakers per kfold / loso fold: two, as every fold of the paper's table has.
DEFAULT_VAL_SPEAKERS = 2

# (test actors, validation actors) per fold, from the paper's table; every other actor trains.
_PAPER_FOLDS = (
    ((2, 5, 14, 15, 16), (3, 6)),
    ((3, 6, 7, 13, 18), (10, 11)),
    ((10, 11, 12, 19, 20), (8, 17)),
    ((8, 17, 21, 23, 24), (1, 14)),
    ((1, 4, 9, 22), (2, 5)),
)


@dataclasses.dataclass(frozen=True)
class Fold:
    """Which speakers train, validate and test in one fold.

    Attributes:
        index: 1-based fold number, as in the paper's table.
        train_speakers, val_speakers, test_speakers: sorted tuples of speaker ids,
            pairwise disjoint.
    """

    index: int
    train_speakers: tuple
    val_speakers: tuple
    test_speakers: tuple

    def __post_init__(self):
        for name in ("train_speakers", "val_speakers", "test_speakers"):
            object.__setattr__(self, name, tuple(sorted(str(s) for s in getattr(self, name))))
        train, val, test = map(set, (self.train_speakers, self.val_speakers, self.test_speakers))
        overlap = (train & val) | (train & test) | (val & test)
        if overlap:
            raise ParameterError(
                f"Fold {self.index} puts speaker(s) {sorted(overlap)} in more than one of "
                "train/validation/test; a speaker-independent fold needs disjoint sets."
            )

    def to_dict(self):
        return {
            "index": self.index,
            "train_speakers": list(self.train_speakers),
            "val_speakers": list(self.val_speakers),
            "test_speakers": list(self.test_speakers),
        }


def ravdess_paper_folds():
    """The 5 speaker-independent RAVDESS folds of the ResLSTM-SA paper.

    Speakers are two-digit actor ids ``"01"`` .. ``"24"``. Test groups cover all 24
    actors exactly once (5+5+5+5+4).
    """
    folds = []
    for index, (test, val) in enumerate(_PAPER_FOLDS, start=1):
        test_ids = {f"{a:02d}" for a in test}
        val_ids = {f"{a:02d}" for a in val}
        train_ids = set(RAVDESS_ACTORS) - test_ids - val_ids
        folds.append(Fold(index, tuple(train_ids), tuple(val_ids), tuple(test_ids)))
    return tuple(folds)


def speaker_kfold(speakers, n_folds=5, n_val_speakers=DEFAULT_VAL_SPEAKERS, seed=0):
    """Grouped k-fold over speakers.

    Args:
        speakers: speaker ids, one per clip or already unique.
        n_folds: number of folds (test groups); 2 <= n_folds <= number of speakers.
        n_val_speakers: validation speakers per fold, taken from the training speakers.
        seed: shuffles the speakers before cutting them into groups.

    Returns:
        tuple of ``n_folds`` Fold objects whose test groups cover every speaker exactly
        once and differ in size by at most one.
    """
    unique = _unique_speakers(speakers)
    check_int("speaker_kfold", "n_folds", n_folds, min_value=2)
    check_int("speaker_kfold", "seed", seed, min_value=0)
    if n_folds > len(unique):
        raise ParameterError(
            f"Cannot make {n_folds} speaker-independent folds from {len(unique)} speaker(s); "
            f"lower n_folds to at most {len(unique)}" + (" or use leave-one-speaker-out." if len(unique) > 1 else ".")
        )
    order = [str(s) for s in np.random.default_rng(seed).permutation(unique)]
    groups = [list(g) for g in np.array_split(np.array(order, dtype=object), n_folds)]
    _check_val_count("speaker_kfold", n_val_speakers, len(unique), max(len(g) for g in groups))
    return tuple(_rotating_fold(i, groups, n_val_speakers, unique) for i in range(n_folds))


def leave_one_speaker_out(speakers, n_val_speakers=DEFAULT_VAL_SPEAKERS, seed=0):
    """One fold per speaker, testing on that speaker alone; folds ordered by speaker id.

    The seed only decides which speakers validate each fold.
    """
    unique = _unique_speakers(speakers)
    if len(unique) < 2:
        raise ParameterError(f"Leave-one-speaker-out needs at least 2 speakers; the data has {len(unique)}.")
    folds = speaker_kfold(unique, n_folds=len(unique), n_val_speakers=n_val_speakers, seed=seed)
    folds = sorted(folds, key=lambda f: f.test_speakers)
    return tuple(dataclasses.replace(f, index=i) for i, f in enumerate(folds, start=1))


def folds_for(dataset_name, speakers, scheme="auto", *, n_folds=5, n_val_speakers=DEFAULT_VAL_SPEAKERS, seed=0):
    """The folds to use for a dataset: the one place ``auto`` is decided (training calls it too).

    Args:
        dataset_name: ``Dataset.name`` (``"ravdess"``, ``"emodb"``, ...), or None when only
            the clips' speakers are known (a feature table): RAVDESS is then recognised by
            its 24 actor ids alone.
        speakers: speaker id of every clip (``Dataset.speakers()``).
        scheme: ``"paper"`` (RAVDESS only, needs all 24 actors), ``"kfold"``,
            ``"loso"``, or ``"auto"``: paper folds for a complete RAVDESS, else kfold with
            at most one fold per speaker (``n_folds`` lowered to the number of speakers;
            an explicit ``"kfold"`` refuses more folds than speakers instead).
        n_folds, n_val_speakers, seed: for ``kfold`` / ``loso``; the paper folds are fixed.

    Raises:
        ParameterError: a clip has no speaker, or the scheme does not fit the data.
    """
    check_choice("folds_for", "scheme", scheme, FOLD_SCHEMES)
    unique = _unique_speakers(speakers)
    is_ravdess = dataset_name is None or str(dataset_name).lower() == "ravdess"
    if scheme == "auto":
        if is_ravdess and set(unique) == set(RAVDESS_ACTORS):
            scheme = "paper"
        else:
            scheme, n_folds = "kfold", min(n_folds, len(unique))
    if scheme == "paper":
        _check_paper_applies(dataset_name, is_ravdess, unique)
        return ravdess_paper_folds()
    if scheme == "loso":
        return leave_one_speaker_out(unique, n_val_speakers=n_val_speakers, seed=seed)
    return speaker_kfold(unique, n_folds=n_folds, n_val_speakers=n_val_speakers, seed=seed)


def fold_indices(speakers, fold):
    """Clip indices of one fold.

    Args:
        speakers: ``(n_clips,)`` speaker id of every clip.
        fold: a Fold built from the same speakers.

    Returns:
        ``(train_idx, val_idx, test_idx)``, sorted int64 arrays that partition
        ``range(n_clips)``.

    Raises:
        ParameterError: the fold names a speaker with no clips, or a clip's speaker is in
            none of the fold's sets (folds built from other data).
    """
    clip_speakers = [None if s is None else str(s) for s in speakers]
    side = {s: 0 for s in fold.train_speakers}
    side.update({s: 1 for s in fold.val_speakers})
    side.update({s: 2 for s in fold.test_speakers})
    absent = sorted(set(side) - set(clip_speakers))
    if absent:
        raise ParameterError(
            f"Fold {fold.index} names speaker(s) {absent} that have no clips in this data. "
            "Build the folds from the clips you train on (folds_for(name, dataset.speakers())), "
            "or use --folds kfold."
        )
    unassigned = sorted({str(s) for s in clip_speakers if s not in side})
    if unassigned:
        raise ParameterError(
            f"Speaker(s) {unassigned} are in none of fold {fold.index}'s train/validation/test "
            "sets; the folds were built for other data. Rebuild them with folds_for()."
        )
    codes = np.fromiter((side[s] for s in clip_speakers), dtype=np.int64, count=len(clip_speakers))
    return tuple(np.flatnonzero(codes == k).astype(np.int64) for k in range(3))


def _unique_speakers(speakers):
    """Sorted unique speaker ids; every clip must have one."""
    speakers = list(speakers)
    n_missing = sum(s is None or str(s).strip() == "" for s in speakers)
    if n_missing:
        raise ParameterError(
            f"Speaker-independent splits need a speaker id for every clip; {n_missing} of "
            f"{len(speakers)} clip(s) have none. For a folder dataset pass speaker_regex or "
            "speaker_level; for a CSV manifest fill in its speaker column."
        )
    if not speakers:
        raise ParameterError("Cannot build folds from an empty dataset (no clips).")
    return tuple(sorted({str(s) for s in speakers}))


def _check_val_count(owner, n_val_speakers, n_speakers, largest_test_group):
    # Training must keep at least one speaker after the test group and validation are removed.
    most = max(0, n_speakers - largest_test_group - 1)
    check_int(owner, "n_val_speakers", n_val_speakers, min_value=0, max_value=most)


def _rotating_fold(k, groups, n_val_speakers, unique):
    """Fold k tests on group k and validates on the first speakers of the following groups."""
    later = [s for g in groups[k + 1:] + groups[:k] for s in g]
    test, val = groups[k], later[:n_val_speakers]
    train = sorted(set(unique) - set(test) - set(val))
    return Fold(k + 1, tuple(train), tuple(val), tuple(test))


def _check_paper_applies(dataset_name, is_ravdess, unique):
    if not is_ravdess:
        raise ParameterError(
            f"The paper folds are defined for RAVDESS actors only, not for dataset {dataset_name!r}; "
            "use --folds kfold or --folds loso."
        )
    missing = sorted(set(RAVDESS_ACTORS) - set(unique))
    unknown = sorted(set(unique) - set(RAVDESS_ACTORS))
    if missing:
        raise ParameterError(
            f"The paper folds need all 24 RAVDESS actors, but actor(s) {', '.join(missing)} have "
            f"no clips here ({len(unique)} of 24 present). Use --folds kfold for a speaker "
            "k-fold over the actors you have, or add the missing actors."
        )
    if unknown:
        raise ParameterError(f"Speaker ids {unknown} are not RAVDESS actors 01..24; use --folds kfold.")
