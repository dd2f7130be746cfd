"""train/inner_folds.py: recipes chosen on inner speaker folds, never on an outer test speaker."""

import argparse
import importlib
import json
from pathlib import Path

import numpy as np
import pytest

TRAIN = Path(__file__).resolve().parents[1] / "train"


@pytest.fixture
def inner(monkeypatch):
    monkeypatch.syspath_prepend(str(TRAIN))
    return importlib.import_module("inner_folds")


def test_inner_folds_train_on_the_outer_folds_non_test_speakers_only(inner, small_table):
    from sertiny.data.splits import Fold

    fold = Fold(1, train_speakers=("03", "04", "05", "06"), val_speakers=("02",), test_speakers=("01",))
    table = inner.inner_table(small_table.subset(np.isin(small_table.speakers, ["01", "02", "03", "04", "05", "06"])),
                              fold)
    assert "01" not in set(table.speakers) and set(table.speakers) == {"02", "03", "04", "05", "06"}


def test_an_inner_config_keeps_the_outer_clip_length_and_takes_the_teacher_of_the_same_outer_fold(inner):
    config = inner.inner_config("distill_h128", "res_lstm_sa_h64", "edge16k_peak40", (0,), 3, 4, 119)
    assert (config.folds, config.n_folds, config.n_val_speakers, config.seq_len) == ("kfold", 4, 1, 119)
    assert config.teacher == "runs/accuracy_inner/edge16k_peak40/res_lstm_sa_h128/reg_all/outer_3"
    assert not inner.inner_config("reg_all", "res_lstm_sa_h64", "edge16k", (0,), 1, 4, 100).teacher
    with pytest.raises(SystemExit, match="fitted on the outer folds"):  # a teacher file's folds are the outer ones
        inner.inner_config("distill_compare", "res_lstm_sa_h64", "edge16k", (0,), 1, 4, 100)


def _outer_run(path, folds, predictions):
    """A finished outer run: run.json's folds, metrics.json and, per seed, out-of-fold predictions
    ``{seed: [(speaker, label, predicted), ...]}``."""
    path.mkdir(parents=True)
    (path / "run.json").write_text(json.dumps({"folds": [{"index": k, "test_speakers": s} for k, s in folds.items()]}))
    (path / "metrics.json").write_text(json.dumps({"uar_mean": 0.5, "uar_std": 0.0}))
    for seed, rows in predictions.items():
        (path / f"seed_{seed}").mkdir()
        lines = ["name,speaker,label,predicted,p_a,p_b"] + [f"c{i},{s},{y},{p},0.5,0.5" for i, (s, y, p) in enumerate(rows)]
        (path / f"seed_{seed}" / "oof_predictions.csv").write_text("\n".join(lines) + "\n")


def _inner_run(root, recipe, outer, uar):
    run = root / "edge16k" / "res_lstm_sa_h64" / recipe / f"outer_{outer}"
    run.mkdir(parents=True)
    (run / "metrics.json").write_text(json.dumps({"uar_mean": uar, "uar_std": 0.0}))


def test_the_nested_test_uar_scores_each_outer_fold_with_the_recipe_its_own_inner_folds_chose(inner, tmp_path):
    folds = {1: ["01"], 2: ["02"]}
    # recipe a is right on speaker 01 and wrong on 02; recipe b the other way round
    right, wrong = [("01", "a", "a"), ("01", "b", "b")], [("02", "a", "b"), ("02", "b", "a")]
    _outer_run(tmp_path / "outer" / "a", folds, {0: right + wrong})
    _outer_run(tmp_path / "outer" / "b", folds, {0: [("01", "a", "b"), ("01", "b", "a"), ("02", "a", "a"),
                                                    ("02", "b", "b")]})
    inner_runs = tmp_path / "inner"
    _inner_run(inner_runs, "a", 1, 0.6)  # the inner folds choose a for outer fold 1 ...
    _inner_run(inner_runs, "a", 2, 0.4)
    _inner_run(inner_runs, "b", 1, 0.5)
    _inner_run(inner_runs, "b", 2, 0.45)  # ... and b for outer fold 2
    _inner_run(inner_runs, "c", 1, 0.9)  # unfinished on outer fold 2: not compared
    found = inner.collect(inner_runs)
    assert found[("edge16k", "res_lstm_sa_h64")]["a"] == {1: 0.6, 2: 0.4}
    lines, summary = inner.report_lines(found, outer_run=lambda fe, model, recipe: tmp_path / "outer" / recipe)
    (record,) = summary
    assert record["chosen_per_fold"] == {1: "a", 2: "b"} and set(record["inner_uar"]) == {"a", "b"}
    assert record["chosen"] == "a"  # mean inner UAR 0.5 vs 0.475
    assert record["nested_test_uar_per_seed"] == {0: pytest.approx(1.0)}
    assert any(line.startswith("| b | 0.5000 | 0.4500 | 0.4750 | 0.5000 ± 0.0000 |") for line in lines)


def test_the_nested_figure_waits_for_the_chosen_recipes_outer_run(inner, tmp_path):
    _inner_run(tmp_path / "inner", "a", 1, 0.6)
    lines, _ = inner.report_lines(inner.collect(tmp_path / "inner"), outer_run=lambda *_: tmp_path / "missing")
    assert any("not yet" in line for line in lines) and any("no outer run" in line for line in lines)


@pytest.mark.slow
def test_run_trains_every_outer_folds_inner_folds_without_its_test_speakers(inner, small_table, tmp_path, monkeypatch):
    pytest.importorskip("jax")
    import sertiny.training.run

    accuracy = inner.accuracy
    monkeypatch.setattr(accuracy, "load_recipes",
                        lambda: {"tiny": {"epochs": 1, "batch_size": 16, "lr": 3e-3, "selection": "last"}})
    monkeypatch.setattr(accuracy, "load_input", lambda name: (None, small_table))
    monkeypatch.setattr(inner, "INNER_RUNS", tmp_path)
    monkeypatch.setattr(sertiny.training.run, "pin_single_thread", lambda: None)
    monkeypatch.chdir(tmp_path)  # run() moves to the repository root; this puts the test's directory back
    args = argparse.Namespace(recipes=["tiny"], models=["lstm_sa_h8"], input="edge16k", seeds=[0], inner_folds=2,
                              outer=[1, 2], jobs=1, quiet=True)
    inner.run(args)
    for outer in (1, 2):
        run = tmp_path / "edge16k" / "lstm_sa_h8" / "tiny" / f"outer_{outer}"
        info = json.loads((run / "run.json").read_text())
        outer_test = {s for f in _outer_folds(small_table) if f.index == outer for s in f.test_speakers}
        heard = set(info["speakers"])
        assert heard and not heard & outer_test and len(info["folds"]) == 2
        assert info["seq_len"] == _outer_seq_len(small_table)
    assert set(inner.collect(tmp_path)[("edge16k", "lstm_sa_h8")]["tiny"]) == {1, 2}


def _outer_folds(table):
    from sertiny.training import TrainConfig
    from sertiny.training.protocol import resolve_folds

    return resolve_folds(table, TrainConfig(model="lstm_sa_h8"))


def _outer_seq_len(table):
    from sertiny.training import TrainConfig
    from sertiny.training.inputs import choose_seq_len

    return choose_seq_len(table.lengths, TrainConfig(model="lstm_sa_h8").seq_len_percentile)
