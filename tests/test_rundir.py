"""RunDir: the run directory's one owner writes it, reads it back and checks it."""

import json

import numpy as np
import pytest

from sertiny.errors import ArtifactError, ParameterError
from sertiny.features.config import get_preset
from sertiny.features.normalize import NormStats
from sertiny.training.config import TrainConfig
from sertiny.training.rundir import DEPLOY, RunDir, parse_weights_name, weights_name

LABELS = ["calm", "sad"]


def _run(tmp_path, seeds=(0,)):
    run = RunDir(tmp_path / "run")
    folds = [{"index": k, "train_speakers": ["01"], "val_speakers": ["02"], "test_speakers": ["03"]} for k in (1, 2)]
    run.write_configs({"label_names": LABELS, "model_config": {"family": "lstm_sa"}, "folds": folds},
                      TrainConfig(model="lstm_sa_h8", seeds=seeds), get_preset("edge16k"))
    return run


def _write_fold(run, seed, index, predicted):
    run.write_fold(seed, index, weights={"dense/bias": np.zeros(2, np.float32)},
                   norm=NormStats(mean=np.zeros(3), std=np.ones(3)), history=[{"epoch": 1, "val_uar": 0.5}],
                   predictions=[{"name": f"c{index}", "speaker": "03", "label": "sad", "predicted": predicted}],
                   summary={"fold": index, "val_uar": 0.25 * index})


def test_written_run_reads_back(tmp_path):
    run = _run(tmp_path)
    info = run.check()
    assert info["format"] == "sertiny-run" and info["format_version"] == 1 and info["label_names"] == LABELS
    assert [f.index for f in run.folds()] == [1, 2] and run.train_config()["model"] == "lstm_sa_h8"
    assert run.read_fold(0, 1) is None and run.available_weights() == []
    _write_fold(run, 0, 1, "sad")
    _write_fold(run, 0, 2, "calm")
    assert run.read_fold(0, 2)["val_uar"] == 0.5
    assert run.read_history(weights_name(0, 1)) == [{"epoch": 1.0, "val_uar": 0.5}]
    rows, y_true, y_pred = run.pooled_predictions(0, [1, 2], LABELS)
    assert [r["name"] for r in rows] == ["c1", "c2"] and y_true.tolist() == [1, 1] and y_pred.tolist() == [1, 0]
    assert run.available_weights() == ["seed0_fold1", "seed0_fold2"]
    weights, norm = run.read_model("seed0_fold1")
    assert weights["dense/bias"].shape == (2,) and norm.n_features == 3
    assert run.weights_dir(DEPLOY) == run.path / "deploy"


def test_a_missing_model_file_names_what_there_is(tmp_path):
    run = _run(tmp_path)
    _write_fold(run, 0, 1, "sad")
    with pytest.raises(ArtifactError, match=r"fold_2/weights.npz: missing \(available: seed0_fold1\)"):
        run.read_model("seed0_fold2")
    with pytest.raises(ArtifactError, match="train with --deploy"):
        run.read_model(DEPLOY)


@pytest.mark.parametrize("change,match", [
    ({"format_version": 99}, "run format_version 99"),
    ({"sertiny_version": "7.0.0"}, "written by sertiny 7.0.0"),
    ({"label_names": None}, "no 'label_names' field"),
])
def test_check_refuses_other_layouts(tmp_path, change, match):
    run = _run(tmp_path)
    info = {**run.info(), **change}
    (run.path / "run.json").write_text(json.dumps({k: v for k, v in info.items() if v is not None}))
    with pytest.raises(ArtifactError, match=match):
        run.check()


def test_check_names_a_missing_config_and_a_missing_run(tmp_path):
    run = _run(tmp_path)
    (run.path / "feature_config.json").unlink()
    with pytest.raises(ArtifactError, match="feature_config.json: missing"):
        run.check()
    with pytest.raises(ArtifactError, match="no such run directory"):
        RunDir(tmp_path / "nothing").check()


def test_weights_names_round_trip():
    assert parse_weights_name(weights_name(2, 5)) == (2, 5)
    with pytest.raises(ParameterError, match="seed<S>_fold<K>"):
        parse_weights_name("fold5")
