"""Knowledge distillation from a finished run (TrainConfig.teacher / distill_weight)."""

import json

import numpy as np
import pytest

from sertiny.errors import ArtifactError, ParameterError


def test_teacher_and_weight_go_together_and_old_runs_keep_their_identity():
    from sertiny.training import TrainConfig

    with pytest.raises(ParameterError, match="go together"):
        TrainConfig(teacher="runs/x")
    with pytest.raises(ParameterError, match="go together"):
        TrainConfig(distill_weight=0.5)
    with pytest.raises(ParameterError, match="'distill_weight'"):
        TrainConfig(teacher="runs/x", distill_weight=1.5)
    with pytest.raises(ParameterError, match="single-task"):
        TrainConfig(model="bilstm_att_h32", multitask=True, teacher="runs/x", distill_weight=0.5)
    config = TrainConfig(teacher="runs/x", distill_weight=0.5)
    assert config.uses_soft_targets
    assert "teacher" not in TrainConfig().identity_dict()  # runs from before distillation resume


def test_blended_targets_stay_distributions_through_mixup():
    from sertiny.training import TrainConfig
    from sertiny.training.augment import augment_batch

    rng = np.random.default_rng(0)
    teacher = rng.dirichlet(np.ones(4), size=8).astype(np.float32)
    labels = rng.integers(0, 4, 8)
    config = TrainConfig(teacher="t", distill_weight=0.25, label_smoothing=0.1)
    x = rng.normal(size=(8, 5, 3)).astype(np.float32)
    _, targets = augment_batch(x, labels, config, 4, rng, teacher)
    one_hot = np.full((8, 4), 0.025, np.float32)
    one_hot[np.arange(8), labels] += 0.9
    np.testing.assert_allclose(targets, 0.75 * one_hot + 0.25 * teacher, rtol=1e-6)
    mixed = TrainConfig(teacher="t", distill_weight=1.0, mixup_alpha=0.4)
    _, targets = augment_batch(x, labels, mixed, 4, rng, teacher)
    np.testing.assert_allclose(targets.sum(1), 1, rtol=1e-5)
    with pytest.raises(ParameterError, match="teacher_train"):
        from sertiny.training.loop import train_fold
        from sertiny.models import model_config

        train_fold(model_config("lstm_sa_h8", n_features=3, n_classes=4, seq_len=5), mixed, x, labels, None, None,
                   seed=0)


def _trained_teacher(table, tmp_path):
    """A two-seed teacher run on ``table``: ``(common TrainConfig fields, its directory, RunDir, RunTeacher)``."""
    from sertiny.training import TrainConfig, train
    from sertiny.training.distill import RunTeacher
    from sertiny.training.rundir import RunDir

    common = dict(model="lstm_sa_h8", epochs=2, batch_size=16, folds="kfold", n_folds=3, n_val_speakers=1,
                  seq_len=40, lr=3e-3)
    teacher_dir = tmp_path / "teacher"
    train(table, TrainConfig(seeds=(0, 1), **common), teacher_dir, progress=False)
    run = RunDir(teacher_dir)
    teacher = RunTeacher(teacher_dir, feature_config=table.feature_config, label_names=table.label_names,
                         folds=run.folds())
    return common, teacher_dir, run, teacher


@pytest.mark.slow
def test_a_student_learns_from_its_teachers_fold_models_only(small_table, tmp_path):
    pytest.importorskip("jax")
    from sertiny.models import create_model
    from sertiny.models.registry import ModelConfig
    from sertiny.models.weights import set_weights
    from sertiny.training import TrainConfig, train
    from sertiny.training.inputs import stack_clips

    common, teacher_dir, run, teacher = _trained_teacher(small_table, tmp_path)
    # The fold teacher is the mean of that fold's models over the teacher's seeds.
    clips = small_table.features[:7]
    expected = []
    for seed in (0, 1):
        weights, norm = run.read_model(f"seed{seed}_fold2")
        model = create_model(ModelConfig.from_dict(run.read_fold(seed, 2)["model_config"]))
        set_weights(model, weights)
        expected.append(np.asarray(model(stack_clips(clips, 40, norm)[0], training=False)))
    np.testing.assert_allclose(teacher.probabilities(small_table.names[:7], clips, 2), np.mean(expected, axis=0), rtol=1e-5, atol=1e-6)
    assert len(teacher.model_names()) == 6  # the deployment teacher: every fold model of every seed

    student = TrainConfig(teacher=str(teacher_dir), distill_weight=0.5, **common)
    first = train(small_table, student, tmp_path / "a", deploy=True, progress=False)
    second = train(small_table, student, tmp_path / "b", progress=False)
    assert first["uar_per_seed"] == second["uar_per_seed"]  # deterministic
    saved = json.loads((tmp_path / "a" / "train_config.json").read_text())
    assert saved["teacher"] == str(teacher_dir) and saved["distill_weight"] == 0.5
    plain = train(small_table, TrainConfig(**common), tmp_path / "plain", progress=False)
    a = np.load(tmp_path / "a" / "seed_0" / "fold_1" / "weights.npz")
    p = np.load(tmp_path / "plain" / "seed_0" / "fold_1" / "weights.npz")
    assert not all(np.array_equal(a[k], p[k]) for k in a.files)  # the teacher changed the training
    assert plain["uar_per_seed"] is not None


@pytest.mark.slow
def test_a_teacher_of_other_folds_or_unfinished_is_refused_before_training(small_table, tmp_path):
    pytest.importorskip("jax")
    from sertiny.training import TrainConfig, train

    common = dict(model="lstm_sa_h8", epochs=1, batch_size=16, folds="kfold", n_val_speakers=1, seq_len=40)
    train(small_table, TrainConfig(n_folds=2, **common), tmp_path / "two_folds", progress=False)
    student = TrainConfig(n_folds=3, teacher=str(tmp_path / "two_folds"), distill_weight=0.5, **common)
    with pytest.raises(ArtifactError, match="other speaker folds"):
        train(small_table, student, tmp_path / "student", progress=False)
    assert not (tmp_path / "student").exists()
    missing = TrainConfig(n_folds=3, teacher=str(tmp_path / "nowhere"), distill_weight=0.5, **common)
    with pytest.raises(ArtifactError, match="no such run directory"):
        train(small_table, missing, tmp_path / "student", progress=False)
    assert not (tmp_path / "student").exists()


def _folds(n=2):
    from sertiny.data.splits import Fold

    speakers = [f"{s:02d}" for s in range(1, 2 * n + 2)]
    return [Fold(index=k + 1, test_speakers=(speakers[2 * k],), val_speakers=(speakers[2 * k + 1],),
                 train_speakers=tuple(s for s in speakers if s not in speakers[2 * k:2 * k + 2])) for k in range(n)]


def test_a_teacher_file_gives_each_folds_probabilities_and_refuses_other_folds(tmp_path):
    from sertiny.training.distill import DEPLOY_KEY, load_teacher, write_teacher_file

    labels = ("a", "b")
    probabilities = {1: {"x": [0.25, 0.75], "y": [0.5, 0.5]}, 2: {"x": [1.0, 0.0]}, DEPLOY_KEY: {"x": [0.1, 0.9]}}
    path = tmp_path / "teacher.json"
    write_teacher_file(path, label_names=labels, folds=_folds(), probabilities=probabilities, description="test")
    teacher = load_teacher(path, feature_config=None, label_names=labels, folds=_folds()).check()
    np.testing.assert_allclose(teacher.probabilities(["y", "x"], None, 1), [[0.5, 0.5], [0.25, 0.75]])
    np.testing.assert_allclose(teacher.probabilities(["x"], None), [[0.1, 0.9]])
    with pytest.raises(ArtifactError, match="no probabilities for 1 training clip"):
        teacher.probabilities(["y"], None, 2)
    with pytest.raises(ArtifactError, match="other speaker folds"):
        load_teacher(path, feature_config=None, label_names=labels, folds=_folds(3))
    with pytest.raises(ArtifactError, match="has labels"):
        load_teacher(path, feature_config=None, label_names=("b", "a"), folds=_folds())
    partial = tmp_path / "partial.json"
    write_teacher_file(partial, label_names=labels, folds=_folds(), probabilities={1: {"x": [1, 0]}}, description="")
    with pytest.raises(ArtifactError, match="fold '2'"):
        load_teacher(partial, feature_config=None, label_names=labels, folds=_folds()).check()
    with pytest.raises(ArtifactError, match="file not found"):
        load_teacher(tmp_path / "nowhere.json", feature_config=None, label_names=labels, folds=_folds())


def test_an_augmented_batch_teacher_needs_a_run_directory_and_sees_the_batch_the_student_trains_on():
    from sertiny.training import TrainConfig
    from sertiny.training.augment import augment_batch

    with pytest.raises(ParameterError, match="run directory"):
        TrainConfig(teacher="runs/teachers/compare_2016.json", distill_weight=0.5, distill_inputs="augmented")
    with pytest.raises(ParameterError, match="run directory"):
        TrainConfig(distill_inputs="augmented")
    with pytest.raises(ParameterError, match="distill_inputs"):
        TrainConfig(teacher="runs/x", distill_weight=0.5, distill_inputs="noisy")
    assert "distill_inputs" not in TrainConfig().identity_dict()  # earlier runs resume

    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, 6, 3)).astype(np.float32)
    labels = rng.integers(0, 4, 8)
    seen = []

    def teacher(batch):  # remembers its input; probabilities that depend on it
        seen.append(batch.copy())
        p = np.exp(batch.mean(axis=(1, 2))[:, None] * np.arange(4))
        return (p / p.sum(1, keepdims=True)).astype(np.float32)

    config = TrainConfig(teacher="runs/x", distill_weight=0.5, distill_inputs="augmented", mixup_alpha=0.4,
                         time_masks=1, time_mask_frames=2)
    out, targets = augment_batch(x, labels, config, 4, np.random.default_rng(1), teacher)
    assert len(seen) == 1 and np.array_equal(seen[0], out)  # masked and mixed: the student's own input
    assert not np.array_equal(out, x)
    # the label part alone (same draws: mixup weights after the masks)
    plain = TrainConfig(mixup_alpha=0.4, time_masks=1, time_mask_frames=2)
    _, label_targets = augment_batch(x, labels, plain, 4, np.random.default_rng(1))
    np.testing.assert_allclose(targets, 0.5 * label_targets + 0.5 * teacher(out), rtol=1e-6)


@pytest.mark.slow
def test_a_batch_teacher_is_the_run_teacher_on_the_students_units_and_changes_training(small_table, tmp_path):
    pytest.importorskip("jax")
    import dataclasses

    from sertiny.features.normalize import NormStats
    from sertiny.training import TrainConfig, train
    from sertiny.training.inputs import stack_clips

    common, teacher_dir, run, teacher = _trained_teacher(small_table, tmp_path)
    clips = small_table.features[:7]
    expected = teacher.probabilities(small_table.names[:7], clips, 2)
    # The student may normalise otherwise (the deployment model does): its units are mapped to each member's.
    _, fold_norm = run.read_model("seed0_fold2")
    student_norm = NormStats(mean=fold_norm.mean + 0.5, std=fold_norm.std * 2.0)
    x = stack_clips(clips, 40, student_norm)[0]
    lengths = [min(len(c), 40) for c in clips]
    for i, n in enumerate(lengths):  # padding is 0 in the student's units, the member's mean in its own
        x[i, n:] = (fold_norm.mean - student_norm.mean) / student_norm.std
    np.testing.assert_allclose(teacher.batch_teacher(2, student_norm, 40)(x), expected, rtol=1e-4, atol=1e-5)
    with pytest.raises(ArtifactError, match="same length"):
        teacher.batch_teacher(2, student_norm, 41)
    with pytest.raises(ArtifactError, match="utterance_norm"):
        teacher.batch_teacher(2, dataclasses.replace(student_norm, utterance="mean"), 40)

    student = TrainConfig(teacher=str(teacher_dir), distill_weight=0.5, distill_inputs="augmented", mixup_alpha=0.4,
                          **common)
    first = train(small_table, student, tmp_path / "a", deploy=True, progress=False)
    second = train(small_table, student, tmp_path / "b", progress=False)
    assert first["uar_per_seed"] == second["uar_per_seed"]  # deterministic
    clean = train(small_table, dataclasses.replace(student, distill_inputs="clean"), tmp_path / "clean",
                  progress=False)
    a = np.load(tmp_path / "a" / "seed_0" / "fold_1" / "weights.npz")
    c = np.load(tmp_path / "clean" / "seed_0" / "fold_1" / "weights.npz")
    assert not all(np.array_equal(a[k], c[k]) for k in a.files)  # the teacher's view of the batch matters
    assert clean["uar_per_seed"] is not None
