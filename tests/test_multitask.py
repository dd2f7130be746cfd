"""BiLSTM-ATT-MTL's multi-task training: auxiliary labels from RAVDESS clip names, the
auxiliary heads, the weighted loss, the auxiliary metrics and the --multitask flag.
(Export of a multi-task run: tests/test_baseline_export.py.)"""

import csv
import json

import numpy as np
import pytest

from sertiny.data.auxiliary import AUX_TASKS, auxiliary_labels
from sertiny.errors import ParameterError

AUX_HEADS = (("intensity", 2), ("sex", 2))


# ---------------------------------------------------------------------------- labels


def test_labels_of_the_papers_feature_file_follow_the_corpus(small_table):
    names = small_table.names
    labels = auxiliary_labels(names, ("intensity", "sex", "statement"))
    assert labels.shape == (len(names), 3) and labels.dtype == np.int64
    # 03-01-EE-II-SS-RR-AA: intensity II, statement SS, actor AA (odd male, even female).
    for name, (intensity, sex, statement) in zip(names, labels):
        fields = [int(f) for f in name.split("-")]
        assert AUX_TASKS["intensity"][intensity] == ("normal", "strong")[fields[3] - 1]
        assert AUX_TASKS["statement"][statement] == ("kids", "dogs")[fields[4] - 1]
        assert AUX_TASKS["sex"][sex] == ("male" if fields[6] % 2 else "female")
    # Per actor 60 clips: neutral (4) only at normal intensity, the other 7 emotions 4 + 4.
    per_actor = {s: labels[small_table.speakers == s, 0] for s in set(small_table.speakers)}
    assert all((v == 0).sum() == 32 and (v == 1).sum() == 28 for v in per_actor.values())
    np.testing.assert_array_equal(labels[:, 1], (small_table.speakers.astype(int) % 2 == 0).astype(int))


def test_labels_of_an_audio_corpus_table(shared_data, tmp_path):
    from sertiny.training.data import DataSpec, load_table

    chosen = ["Actor_01/03-01-05-02-01-02-01.flac", "Actor_12/03-01-01-01-02-01-12.flac",
              "Actor_12/03-01-08-02-02-01-12.flac"]
    for rel in chosen:
        (tmp_path / "corpus" / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "corpus" / rel).symlink_to(shared_data / "ravdess16k" / rel)
    spec = DataSpec(kind="audio", path=str(tmp_path / "corpus"), cache_dir=str(tmp_path / "cache"))
    table = load_table(spec, progress=False, n_jobs=1)
    assert list(table.names) == ["03-01-05-02-01-02-01", "03-01-01-01-02-01-12", "03-01-08-02-02-01-12"]
    # intensity strong/normal/strong; sex male (actor 1), female (actor 12).
    np.testing.assert_array_equal(auxiliary_labels(table.names), [[1, 0], [0, 1], [1, 1]])


@pytest.mark.parametrize(("names", "n_bad"), [
    (["03a01Wa", "16b10Td"], 2),  # EMO-DB
    (["happy_0001", "sad_0002"], 2),  # a folder corpus
    (["03-01-05-02-01-02-01", "03-01-01-02-01-01-01"], 1),  # RAVDESS-shaped, but neutral has no strong intensity
])
def test_names_that_are_not_ravdess_names_fail_naming_the_convention(names, n_bad):
    with pytest.raises(ParameterError, match=rf"from RAVDESS file names MM-VV-EE-II-SS-RR-AA .* {n_bad} of 2 clip "
                                             rf"names are not RAVDESS names \(first: '{names[-n_bad]}'") as err:
        auxiliary_labels(names)
    assert "train without --multitask" in str(err.value)


def test_unknown_auxiliary_tasks_are_refused():
    with pytest.raises(ParameterError, match=r"'aux_tasks' parameter of auxiliary_labels must be .*'statement'"):
        auxiliary_labels(["03-01-05-02-01-02-01"], ("repetition",))


def test_an_emodb_table_with_multitask_fails_before_anything_is_written(tmp_path, write_audio):
    pytest.importorskip("jax", reason="prepare_run resolves the model config (the [train] extra)")
    from sertiny.training import TrainConfig
    from sertiny.training.data import DataSpec, load_table
    from sertiny.training.protocol import prepare_run

    for stem in ("03a01Wa", "08a02Fb", "10b01Nc", "11b02Ta"):
        write_audio(f"emodb/wav/{stem}.wav")
    table = load_table(DataSpec(kind="audio", path=str(tmp_path / "emodb"), cache_dir=str(tmp_path / "cache")),
                       progress=False, n_jobs=1)
    config = TrainConfig(model="bilstm_att_h8", multitask=True, folds="kfold", n_folds=2, n_val_speakers=1)
    with pytest.raises(ParameterError, match="4 of 4 clip names are not RAVDESS names.*'03a01Wa'"):
        prepare_run(table, config, tmp_path / "run")
    assert not (tmp_path / "run").exists()


# ---------------------------------------------------------------------------- configs


def test_new_config_fields_keep_old_identities():
    from sertiny.models import model_config
    from sertiny.training import TrainConfig
    from sertiny.tuning.config import TuneConfig

    config = TrainConfig()
    old = {k: v for k, v in config.to_dict().items() if k not in ("multitask", "aux_tasks", "aux_loss_weight")}
    assert TrainConfig.same_identity(old, config) and "multitask" not in config.identity_dict()
    assert "multitask" not in TuneConfig().objective_spec()["train"]  # older studies still match
    mcfg = model_config("bilstm_att_h8")
    assert "aux_heads" not in mcfg.identity_dict()
    assert type(mcfg).same_identity({k: v for k, v in mcfg.to_dict().items() if k != "aux_heads"}, mcfg)
    multitask = TrainConfig(model="bilstm_att_h8", multitask=True)
    assert multitask.aux_heads() == AUX_HEADS and not TrainConfig.same_identity(config.to_dict(), multitask)
    assert TrainConfig.from_dict(json.loads(multitask.to_json())) == multitask


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"multitask": True}, r"'multitask' parameter of TrainConfig can be True only for the bilstm_att, cnn_lstm, "
                          r"dual_lstm families; res_lstm_sa_h64 has no auxiliary heads"),
    ({"model": "bilstm_att_h8", "aux_loss_weight": 1.0}, "apply to multi-task training only"),
    ({"model": "bilstm_att_h8", "multitask": True, "aux_tasks": ()}, "'aux_tasks' parameter of TrainConfig"),
    ({"model": "bilstm_att_h8", "multitask": True, "aux_loss_weight": -1.0}, "'aux_loss_weight' parameter"),
])
def test_train_config_errors_name_the_parameter(kwargs, match):
    from sertiny.training import TrainConfig

    with pytest.raises(ParameterError, match=match):
        TrainConfig(**kwargs)


@pytest.mark.parametrize(("name", "heads", "match"), [
    ("lstm_sa_h8", AUX_HEADS, "must be empty for the 'lstm_sa' family"),
    ("bilstm_att_h8", (("emotion", 2),), "other than 'emotion'"),
    ("bilstm_att_h8", (("sex", 1),), "n_classes >= 2"),
    ("bilstm_att_h8", (("sex", 2), ("sex", 2)), "distinct"),
])
def test_model_config_refuses_bad_aux_heads(name, heads, match):
    from sertiny.models import model_config

    with pytest.raises(ParameterError, match=match):
        model_config(name, aux_heads=heads)


# ---------------------------------------------------------------------------- models


def _x(n=3, t=12, seed=0):
    return np.random.default_rng(seed).standard_normal((n, t, 46)).astype(np.float32)


@pytest.mark.parametrize("family", ("bilstm_att", "dual_lstm", "cnn_lstm"))
def test_multitask_model_outputs_a_softmax_per_head(family):
    pytest.importorskip("jax", reason="model tests need the [train] extra (Keras 3 + JAX)")
    from sertiny.models import create_model

    out = create_model(f"{family}_h8", seq_len=12, aux_heads=AUX_HEADS)(_x(), training=False)
    assert {k: tuple(v.shape) for k, v in out.items()} == {"emotion": (3, 8), "intensity": (3, 2), "sex": (3, 2)}
    for probs in out.values():
        np.testing.assert_allclose(np.asarray(probs).sum(axis=1), 1.0, atol=1e-5)


def test_without_multitask_the_model_is_unchanged_and_the_heads_share_its_weights():
    pytest.importorskip("jax", reason="model tests need the [train] extra (Keras 3 + JAX)")
    from sertiny.models import create_model
    from sertiny.models.weights import get_weights

    plain = create_model("bilstm_att_h8", seq_len=12, seed=3)
    multitask = create_model("bilstm_att_h8", seq_len=12, seed=3, aux_heads=AUX_HEADS)
    assert [layer.name for layer in plain.layers] == ["features", "bilstm1", "bilstm2", "attention", "dropout", "dense"]
    assert [layer.name for layer in multitask.layers] == [layer.name for layer in plain.layers] + [
        "dense_intensity", "dense_sex"]
    w_plain, w_multi = get_weights(plain), get_weights(multitask)
    assert sorted(set(w_multi) - set(w_plain)) == ["dense_intensity/bias", "dense_intensity/kernel",
                                                   "dense_sex/bias", "dense_sex/kernel"]
    for key, value in w_plain.items():  # same initial weights, byte for byte
        assert w_multi[key].tobytes() == value.tobytes(), key
    assert not np.array_equal(w_multi["dense_intensity/kernel"], w_multi["dense_sex/kernel"])
    x = _x()
    np.testing.assert_array_equal(np.asarray(multitask(x, training=False)["emotion"]),
                                  np.asarray(plain(x, training=False)))


def test_train_fold_needs_the_auxiliary_labels():
    pytest.importorskip("jax", reason="training tests need the [train] extra (Keras 3 + JAX)")
    from sertiny.models import model_config
    from sertiny.training import TrainConfig
    from sertiny.training.loop import train_fold

    config = TrainConfig(model="bilstm_att_h8", multitask=True, epochs=1)
    mcfg = model_config(config.model, seq_len=12, aux_heads=config.aux_heads())
    x, y = _x(n=4), np.arange(4, dtype=np.int32)
    with pytest.raises(ParameterError, match=r"needs their labels as aux_train of shape \(4, 2\). Got None"):
        train_fold(mcfg, config, x, y, x, y, seed=0)


# ---------------------------------------------------------------------------- training (CLI)


def test_multitask_cli_trains_on_the_weighted_loss_and_reports_the_heads(small_npz, tmp_path):
    pytest.importorskip("jax", reason="training tests need the [train] extra (Keras 3 + JAX)")
    from click.testing import CliRunner

    from sertiny.cli import main

    out = tmp_path / "run"
    command = ["train", "--features", str(small_npz), "--model", "bilstm_att_h8", "--multitask", "--epochs", "2",
               "--batch-size", "16", "--lr", "0.003", "--folds", "kfold", "--n-folds", "2", "--val-speakers", "1",
               "--seq-len", "40", "--out", str(out), "--quiet"]
    result = CliRunner().invoke(main, command)
    assert result.exit_code == 0, result.output
    assert "auxiliary head intensity (training aid, not exported): UAR" in result.output
    train_config = json.loads((out / "train_config.json").read_text())
    assert train_config["multitask"] is True and train_config["aux_tasks"] == ["intensity", "sex"]
    assert json.loads((out / "run.json").read_text())["model_config"]["aux_heads"] == [["intensity", 2], ["sex", 2]]
    for fold in (1, 2):
        with open(out / f"seed_0/fold_{fold}/history.csv", newline="") as f:
            history = [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]
        assert history[1]["train_loss"] < history[0]["train_loss"], history
        for row in history:  # the minimised loss: 1.0 x emotion + 0.3 x each auxiliary cross-entropy
            expected = row["train_loss_emotion"] + 0.3 * (row["train_loss_intensity"] + row["train_loss_sex"])
            assert row["train_loss"] == pytest.approx(expected, rel=1e-6)
        assert set(json.loads((out / f"seed_0/fold_{fold}/fold.json").read_text())["aux_test_uar"]) == {"intensity",
                                                                                                      "sex"}
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["auxiliary"]) == {"intensity", "sex"}
    for aux in metrics["auxiliary"].values():
        assert 0 <= aux["uar_mean"] <= 1 and 0 <= aux["accuracy_mean"] <= 1 and set(aux["uar_per_seed"]) == {"0"}
    assert metrics["aux_head_params"] == 2 * (16 * 2 + 2)  # two (2H -> 2) dense heads at H = 8
    seed_metrics = json.loads((out / "seed_0/metrics.json").read_text())
    assert set(seed_metrics["auxiliary"]["sex"]["per_class_recall"]) == {"male", "female"}
    # Out-of-fold predictions: every clip once, with its true and predicted auxiliary labels.
    with open(out / "seed_0/oof_predictions.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 360 and {r["sex"] for r in rows} == {"male", "female"}
    assert all(r["predicted_intensity"] in ("normal", "strong") for r in rows)
    # The same command again resumes: nothing is retrained.
    stamps = {p: p.stat().st_mtime_ns for p in out.glob("seed_0/fold_*/weights.npz")}
    again = CliRunner().invoke(main, command)
    assert again.exit_code == 0, again.output
    assert all(p.stat().st_mtime_ns == t for p, t in stamps.items())
    # Elsewhere it trains the same weights, auxiliary heads included.
    copy = CliRunner().invoke(main, [*command[:-2], str(tmp_path / "copy"), "--quiet"])
    assert copy.exit_code == 0, copy.output
    with np.load(out / "seed_0/fold_1/weights.npz") as a, np.load(tmp_path / "copy/seed_0/fold_1/weights.npz") as b:
        assert "dense_sex/kernel" in a.files and sorted(a.files) == sorted(b.files)
        for key in a.files:
            np.testing.assert_array_equal(a[key], b[key])


def test_multitask_cli_refuses_a_family_without_heads(small_npz, tmp_path):
    from click.testing import CliRunner

    from sertiny.cli import main

    help_text = CliRunner().invoke(main, ["train", "--help"]).output
    assert "--multitask / --no-multitask" in help_text and "speaker sex" in help_text
    result = CliRunner().invoke(main, ["train", "--features", str(small_npz), "--model", "lstm_sa_h8", "--multitask",
                                       "--out", str(tmp_path / "run"), "--quiet"])
    assert result.exit_code == 2 and "can be True only for the bilstm_att" in " ".join(result.output.split())
    assert not (tmp_path / "run").exists() and "Traceback" not in result.output

