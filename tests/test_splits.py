"""Tests for sertiny.data.splits: the paper's RAVDESS folds, speaker k-fold and LOSO."""

import collections

import numpy as np
import pytest

from sertiny.data import (
    Fold,
    fold_indices,
    folds_for,
    leave_one_speaker_out,
    ravdess_paper_folds,
    speaker_kfold,
)
from sertiny.errors import ParameterError

RAVDESS_ACTORS = [f"{a:02d}" for a in range(1, 25)]

# The table of PAPER_FACTS.md, typed in again by hand: (test actors, validation actors).
PAPER_TABLE = {
    1: ([2, 5, 14, 15, 16], [3, 6]),
    2: ([3, 6, 7, 13, 18], [10, 11]),
    3: ([10, 11, 12, 19, 20], [8, 17]),
    4: ([8, 17, 21, 23, 24], [1, 14]),
    5: ([1, 4, 9, 22], [2, 5]),
}


def _ids(actors):
    return tuple(f"{a:02d}" for a in sorted(actors))


def _check_partition(folds, speakers):
    """Disjoint train/val/test per fold; the test sets cover every speaker exactly once."""
    for fold in folds:
        train, val, test = map(set, (fold.train_speakers, fold.val_speakers, fold.test_speakers))
        assert not (train & val or train & test or val & test)
        assert train | val | test == set(speakers)
        assert train and test
    tested = collections.Counter(s for fold in folds for s in fold.test_speakers)
    assert tested == collections.Counter(set(speakers))
    assert [fold.index for fold in folds] == list(range(1, len(folds) + 1))


def test_paper_folds_match_the_table():
    folds = ravdess_paper_folds()
    assert len(folds) == 5
    for fold in folds:
        test, val = PAPER_TABLE[fold.index]
        assert fold.test_speakers == _ids(test)
        assert fold.val_speakers == _ids(val)
        assert fold.train_speakers == tuple(sorted(set(RAVDESS_ACTORS) - set(_ids(test)) - set(_ids(val))))
    _check_partition(folds, RAVDESS_ACTORS)


@pytest.mark.parametrize("n_speakers, n_folds, n_val", [(24, 5, 1), (10, 5, 2), (7, 3, 0), (5, 5, 3)])
def test_kfold_partitions_speakers(n_speakers, n_folds, n_val):
    speakers = [f"s{i}" for i in range(n_speakers)]
    folds = speaker_kfold(speakers, n_folds=n_folds, n_val_speakers=n_val, seed=3)
    assert len(folds) == n_folds
    assert all(len(f.val_speakers) == n_val for f in folds)
    sizes = [len(f.test_speakers) for f in folds]
    assert max(sizes) - min(sizes) <= 1
    _check_partition(folds, speakers)


def test_kfold_validates_on_the_next_folds_test_speakers():
    folds = speaker_kfold(RAVDESS_ACTORS, n_folds=4, n_val_speakers=2, seed=0)
    for fold, following in zip(folds, folds[1:] + folds[:1]):
        assert set(fold.val_speakers) <= set(following.test_speakers)
    # So every speaker validates at most once.
    validated = [s for f in folds for s in f.val_speakers]
    assert len(validated) == len(set(validated))


def test_kfold_accepts_one_speaker_per_clip():
    per_clip = np.repeat(RAVDESS_ACTORS, 60)
    assert speaker_kfold(per_clip, seed=1) == speaker_kfold(RAVDESS_ACTORS, seed=1)


def test_kfold_and_loso_are_deterministic_in_the_seed():
    assert speaker_kfold(RAVDESS_ACTORS, seed=7) == speaker_kfold(RAVDESS_ACTORS, seed=7)
    assert speaker_kfold(RAVDESS_ACTORS, seed=7) != speaker_kfold(RAVDESS_ACTORS, seed=8)
    assert leave_one_speaker_out(RAVDESS_ACTORS, seed=7) == leave_one_speaker_out(RAVDESS_ACTORS, seed=7)
    assert leave_one_speaker_out(RAVDESS_ACTORS, seed=7) != leave_one_speaker_out(RAVDESS_ACTORS, seed=8)


def test_loso_one_fold_per_speaker_in_speaker_order():
    speakers = ["b", "a", "d", "c", "a"]
    folds = leave_one_speaker_out(speakers, n_val_speakers=2, seed=0)
    assert [f.test_speakers for f in folds] == [("a",), ("b",), ("c",), ("d",)]
    assert all(len(f.val_speakers) == 2 and len(f.train_speakers) == 1 for f in folds)
    _check_partition(folds, speakers)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: speaker_kfold(["a", "b", "c"], n_folds=5), "Cannot make 5 .* from 3 speaker"),
        (lambda: speaker_kfold(["a", "b", "c", "d"], n_folds=2, n_val_speakers=2), "'n_val_speakers' parameter"),
        (lambda: leave_one_speaker_out(["a"]), "at least 2 speakers"),
        (lambda: speaker_kfold(["a", None, "b"], n_folds=2), "1 of 3 clip"),
        (lambda: folds_for("ravdess", RAVDESS_ACTORS, scheme="random"), "'scheme' parameter"),
    ],
)
def test_bad_requests_are_explained(call, message):
    with pytest.raises(ParameterError, match=message):
        call()


def test_folds_for_auto_uses_paper_folds_only_for_complete_ravdess():
    assert folds_for("ravdess", RAVDESS_ACTORS) == ravdess_paper_folds()
    subset = RAVDESS_ACTORS[:10]
    assert folds_for("ravdess", subset) == speaker_kfold(subset)
    assert folds_for("emodb", RAVDESS_ACTORS[:10], scheme="loso", seed=2) == leave_one_speaker_out(subset, seed=2)


def test_paper_folds_on_a_subset_name_the_missing_actors():
    present = [a for a in RAVDESS_ACTORS if a not in ("03", "17")]
    with pytest.raises(ParameterError, match=r"actor\(s\) 03, 17 have no clips.*--folds kfold"):
        folds_for("ravdess", present, scheme="paper")
    with pytest.raises(ParameterError, match="RAVDESS actors only"):
        folds_for("emodb", RAVDESS_ACTORS, scheme="paper")


def test_fold_indices_partition_the_clips():
    speakers = np.repeat(RAVDESS_ACTORS, 3)
    fold = ravdess_paper_folds()[0]
    train, val, test = fold_indices(speakers, fold)
    assert sorted(np.concatenate([train, val, test]).tolist()) == list(range(len(speakers)))
    assert set(speakers[test]) == set(fold.test_speakers)
    assert set(speakers[val]) == {"03", "06"}
    assert train.dtype == np.int64 and len(test) == 15


def test_fold_indices_reject_folds_from_other_data():
    fold = ravdess_paper_folds()[0]
    with pytest.raises(ParameterError, match=r"names speaker\(s\) \['02'"):
        fold_indices([a for a in RAVDESS_ACTORS if a != "02"], fold)
    with pytest.raises(ParameterError, match=r"\['99'\] are in none"):
        fold_indices(RAVDESS_ACTORS + ["99"], fold)


def test_fold_rejects_overlapping_sets():
    with pytest.raises(ParameterError, match=r"\['b'\] in more than one"):
        Fold(1, ("a", "b"), ("b",), ("c",))


def test_auto_is_decided_once_for_corpora_and_for_training_tables():
    from types import SimpleNamespace

    from sertiny.training import TrainConfig
    from sertiny.training.protocol import resolve_folds

    # A feature table knows speakers, not its corpus: the 24 RAVDESS actors make it RAVDESS.
    assert folds_for(None, RAVDESS_ACTORS) == ravdess_paper_folds()
    four = RAVDESS_ACTORS[:4]
    assert folds_for(None, four) == speaker_kfold(four, n_folds=4)  # auto: at most one fold per speaker
    with pytest.raises(ParameterError, match="Cannot make 5 .* from 4 speaker"):
        folds_for(None, four, scheme="kfold")  # asked for explicitly: refused, not lowered
    for speakers in (RAVDESS_ACTORS, four):
        table = SimpleNamespace(speakers=np.array(speakers))
        assert resolve_folds(table, TrainConfig()) == folds_for(None, speakers)


def test_every_fold_validates_on_two_speakers_by_default_as_in_the_paper():
    assert {len(f.val_speakers) for f in ravdess_paper_folds()} == {2}
    assert {len(f.val_speakers) for f in folds_for("emodb", RAVDESS_ACTORS[:10])} == {2}
    assert {len(f.val_speakers) for f in leave_one_speaker_out(RAVDESS_ACTORS[:5])} == {2}
