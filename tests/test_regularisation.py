"""Issue 14's regularisation options: feature augmentation, soft targets, weight averaging,
per-utterance normalisation (unit level), and a short training run with all of them."""

import json
import warnings

import numpy as np
import pytest

from sertiny.errors import ParameterError
from sertiny.features.normalize import NormStats, fit_norm_stats, normalize_utterance


def test_utterance_mean_var_gives_each_clip_zero_mean_unit_std():
    rng = np.random.default_rng(0)
    clip = rng.normal(5.0, 3.0, size=(50, 4)).astype(np.float32)
    z = normalize_utterance(clip, "mean_var")
    np.testing.assert_allclose(z.mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(z.std(0), 1, atol=1e-4)
    np.testing.assert_allclose(normalize_utterance(clip, "mean").std(0), clip.std(0), rtol=1e-5)
    assert normalize_utterance(clip, "none") is clip


def test_utterance_norm_removes_a_per_clip_offset_and_travels_in_the_stats():
    rng = np.random.default_rng(1)
    clips = [rng.normal(size=(30, 3)).astype(np.float32) for _ in range(4)]
    stats = fit_norm_stats(clips, utterance="mean")
    shifted = clips[0] + np.array([10.0, -3.0, 7.0], dtype=np.float32)  # e.g. another microphone's gain
    np.testing.assert_allclose(stats.apply(shifted), stats.apply(clips[0]), atol=1e-5)
    again = NormStats.from_dict(json.loads(json.dumps(stats.to_dict())))
    assert again.utterance == "mean"
    np.testing.assert_array_equal(again.apply(shifted), stats.apply(shifted))
    # Statistics saved before the option existed have no "utterance" key and read as "none".
    plain = fit_norm_stats(clips)
    assert "utterance" not in plain.to_dict() and NormStats.from_dict(plain.to_dict()).utterance == "none"


def test_soft_targets_and_mixup_keep_distributions():
    from sertiny.training.augment import mixup, soft_targets

    targets = soft_targets(np.array([0, 2]), 4, smoothing=0.2)
    np.testing.assert_allclose(targets, [[0.85, 0.05, 0.05, 0.05], [0.05, 0.05, 0.85, 0.05]])
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 5, 3)).astype(np.float32)
    mixed_x, mixed_t = mixup(x, soft_targets(rng.integers(0, 4, 16), 4), rng, alpha=0.4)
    np.testing.assert_allclose(mixed_t.sum(1), 1, rtol=1e-6)
    assert (mixed_t.max(1) >= 0.5 - 1e-6).all()  # each example keeps mostly its own label
    assert mixed_x.shape == x.shape and not np.allclose(mixed_x, x)


def test_masks_zero_whole_spans_and_nothing_else():
    from sertiny.training.augment import mask_spans

    x = np.ones((8, 20, 6), dtype=np.float32)
    t = mask_spans(x, np.random.default_rng(0), n_masks=1, max_width=5, axis=1)
    f = mask_spans(x, np.random.default_rng(0), n_masks=1, max_width=2, axis=2)
    assert x.min() == 1.0  # the input is not modified
    for i in range(8):
        masked_frames = np.flatnonzero((t[i] == 0).all(axis=1))
        assert 1 <= len(masked_frames) <= 5 and np.all(np.diff(masked_frames) == 1)
        assert ((t[i] == 0).any(axis=1) == (t[i] == 0).all(axis=1)).all()
        masked_bands = np.flatnonzero((f[i] == 0).all(axis=0))
        assert 1 <= len(masked_bands) <= 2


def test_regularisation_config_is_checked_and_old_runs_keep_their_identity():
    from sertiny.training import TrainConfig

    with pytest.raises(ParameterError, match="'utterance_norm'"):
        TrainConfig(utterance_norm="speaker")
    with pytest.raises(ParameterError, match="'selection'"):
        TrainConfig(selection="best_test")
    with pytest.raises(ParameterError, match="single-task"):
        TrainConfig(model="bilstm_att_h32", multitask=True, label_smoothing=0.1)
    assert "mixup_alpha" not in TrainConfig().identity_dict()


@pytest.mark.slow
def test_training_with_every_option_is_deterministic_and_keeps_the_last_average(small_table, tmp_path):
    pytest.importorskip("jax")
    from sertiny.training import TrainConfig, train

    config = TrainConfig(model="lstm_sa_h8", epochs=3, batch_size=16, folds="kfold", n_folds=3, n_val_speakers=1,
                         seq_len=40, lr=3e-3, utterance_norm="mean", label_smoothing=0.1, mixup_alpha=0.4,
                         time_masks=2, feature_masks=1, ema_epochs=1.0, selection="last")
    first = train(small_table, config, tmp_path / "a", progress=False)
    second = train(small_table, config, tmp_path / "b", progress=False)
    assert first["uar_per_seed"] == second["uar_per_seed"]
    fold = json.loads((tmp_path / "a" / "seed_0" / "fold_1" / "fold.json").read_text())
    assert fold["best_epoch"] == 3  # selection="last"
    norm = json.loads((tmp_path / "a" / "seed_0" / "fold_1" / "norm.json").read_text())
    assert norm["utterance"] == "mean"
    a = np.load(tmp_path / "a" / "seed_0" / "fold_1" / "weights.npz")
    b = np.load(tmp_path / "b" / "seed_0" / "fold_1" / "weights.npz")
    assert all(np.array_equal(a[k], b[k]) for k in a.files)


def test_speaker_normalisation_uses_each_speakers_own_statistics(small_table):
    from sertiny.training.protocol import speaker_normalized

    normalized = speaker_normalized(small_table)
    for speaker in set(small_table.speakers.tolist()):
        frames = np.concatenate([x for x, s in zip(normalized.features, normalized.speakers) if s == speaker])
        np.testing.assert_allclose(frames.mean(0), 0, atol=1e-3)
        np.testing.assert_allclose(frames.std(0), 1, atol=1e-3)
    assert list(normalized.labels) == list(small_table.labels)


def test_speaker_normalisation_normalises_augmented_copies_with_their_own_speakers_statistics(small_table):
    # a copy that moves every feature of a speaker by the same affine map (a level change, a
    # steady colouring) must reach the network exactly as its clean clip does
    from sertiny.data.splits import folds_for
    from sertiny.training.protocol import fold_inputs

    fold = folds_for(None, small_table.speakers, "kfold", n_folds=3, n_val_speakers=1, seed=0)[0]
    louder = [2.0 * x + 5.0 for x in small_table.features]
    missing = [None if i % 4 == 0 else x for i, x in enumerate(louder)]  # a copy that could not be made
    inputs = fold_inputs(small_table, fold, 40, "speaker", augmented=[louder, missing])
    n = len(inputs.train_idx)
    clean, copies = inputs.x_train[:n], inputs.x_train[n:2 * n]
    np.testing.assert_allclose(copies, clean, atol=1e-4)
    kept = [k for k, i in enumerate(inputs.train_idx) if i % 4 != 0]
    assert len(inputs.x_train) == 2 * n + len(kept)
    assert np.abs(inputs.x_train[2 * n:].mean()) < 0.5  # z-scored, not left at the copies' raw level


@pytest.mark.slow
def test_speaker_adaptive_runs_train_but_refuse_deploy_and_export(small_table, tmp_path):
    pytest.importorskip("jax")
    from sertiny.errors import ArtifactError
    from sertiny.export.run import load_run
    from sertiny.training import TrainConfig, train

    config = TrainConfig(model="lstm_sa_h8", epochs=1, batch_size=16, folds="kfold", n_folds=3, n_val_speakers=1,
                         seq_len=40, normalization="speaker")
    with pytest.raises(ParameterError, match="speaker-adaptive"):
        train(small_table, config, tmp_path / "run", deploy=True, progress=False)
    assert not (tmp_path / "run").exists()  # refused before anything was trained or written
    train(small_table, config, tmp_path / "run", progress=False)
    with pytest.raises(ArtifactError, match="speaker-adaptive"):
        load_run(tmp_path / "run")


def test_speed_perturbation_changes_duration_and_pitch_by_the_factor(write_audio):
    from sertiny.training.augment import SpeedPerturbedLoader

    sr = 16000
    t = np.arange(sr) / sr
    path = write_audio("a.wav", (0.5 * np.sin(2 * np.pi * 500 * t)).astype(np.float32)[:, None], sr=sr)
    y = SpeedPerturbedLoader(1.25)(path, sr)
    assert abs(len(y) - sr / 1.25) <= 2
    peak_hz = np.argmax(np.abs(np.fft.rfft(y))) * sr / len(y)
    assert abs(peak_hz - 625) < 5  # 500 Hz played 1.25x faster


def test_gain_and_noise_copies_are_the_asked_level_and_reproducible(write_audio):
    from sertiny.training.augment import GainLoader, NoiseLoader

    sr = 16000
    t = np.arange(sr) / sr
    y = (0.25 * np.sin(2 * np.pi * 300 * t)).astype(np.float32)
    path = write_audio("a.wav", y[:, None], sr=sr, subtype="FLOAT")
    np.testing.assert_allclose(GainLoader(-6.0)(path, sr), y * 10 ** (-6 / 20), rtol=1e-5, atol=1e-7)
    assert np.abs(GainLoader(20.0)(path, sr)).max() == 1.0  # clipped at full scale, as a recording would be
    noisy = NoiseLoader(20.0)(path, sr)
    snr = 10 * np.log10(np.mean(y.astype(np.float64) ** 2) / np.mean((noisy - y).astype(np.float64) ** 2))
    assert abs(snr - 20.0) < 0.3
    np.testing.assert_array_equal(noisy, NoiseLoader(20.0)(path, sr))  # seeded by the file name


def test_pitch_shift_moves_the_pitch_and_keeps_the_tempo(write_audio):
    from sertiny.training.augment import PitchShiftLoader

    sr = 16000
    t = np.arange(sr) / sr
    path = write_audio("a.wav", (0.5 * np.sin(2 * np.pi * 500 * t)).astype(np.float32)[:, None], sr=sr)
    for semitones in (-2.0, 2.0):
        y = PitchShiftLoader(semitones)(path, sr)
        assert len(y) == sr  # same duration, unlike speed perturbation
        peak_hz = np.argmax(np.abs(np.fft.rfft(y))) * sr / len(y)
        assert abs(peak_hz - 500 * 2 ** (semitones / 12)) < 5


def test_room_copies_keep_length_and_level_and_decay_at_the_asked_rate(write_audio):
    from sertiny.training.augment import RoomLoader

    sr = 16000
    click = np.zeros(sr, dtype=np.float32)
    click[1000] = 0.5
    path = write_audio("click.wav", click[:, None], sr=sr, subtype="FLOAT")
    rms = np.sqrt(np.mean(click.astype(np.float64) ** 2))
    for rt60 in (0.0, 0.3):
        copy = RoomLoader(rt60)(path, sr)
        assert copy.shape == click.shape and copy.dtype == np.float32
        assert abs(np.sqrt(np.mean(copy.astype(np.float64) ** 2)) - rms) < 1e-4 * rms  # level is gain_perturb's job
        np.testing.assert_array_equal(copy, RoomLoader(rt60)(path, sr))  # seeded by the file name
        # Schroeder backward integration: 60 dB of decay takes rt60 (T20 x 3); the microphone alone rings < 10 ms
        energy = np.cumsum(copy[::-1].astype(np.float64) ** 2)[::-1]
        decay_db = 10 * np.log10(energy / energy[0])
        t20 = (np.argmax(decay_db < -25) - np.argmax(decay_db < -5)) / sr
        assert abs(3 * t20 - rt60) < (0.01 if rt60 == 0 else 0.05)
    assert not np.allclose(RoomLoader(0.0)(path, sr), click, atol=1e-3)  # the microphone colours it
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a room shorter than its pre-delay is still a room
        assert np.isfinite(RoomLoader(0.001)(path, sr)).all()


def test_gain_and_noise_options_are_checked():
    from sertiny.training import TrainConfig

    with pytest.raises(ParameterError, match="'gain_perturb'"):
        TrainConfig(gain_perturb=(0.0, 6.0))
    with pytest.raises(ParameterError, match="'noise_snr'"):
        TrainConfig(noise_snr=(30.0, 30.0))
    with pytest.raises(ParameterError, match="'pitch_shift'"):
        TrainConfig(pitch_shift=(0.0, 2.0))
    assert TrainConfig(pitch_shift=(-2, 2)).to_dict()["pitch_shift"] == [-2, 2]
    with pytest.raises(ParameterError, match="'room_rt60'"):
        TrainConfig(room_rt60=(0.4, 3.0))
    assert TrainConfig(room_rt60=[0, 0.4]).to_dict()["room_rt60"] == [0, 0.4]
    assert "room_rt60" not in TrainConfig().identity_dict()
    assert TrainConfig(gain_perturb=[-6, 6]).to_dict()["gain_perturb"] == [-6, 6]
    assert "gain_perturb" not in TrainConfig().identity_dict()


def test_a_loader_whose_copies_change_caches_them_in_a_new_folder(monkeypatch):
    from sertiny.training import TrainConfig
    from sertiny.training.augment import RoomLoader, waveform_copies

    config = TrainConfig(model="lstm_sa_h8", gain_perturb=(-6.0,), room_rt60=(0.3,))
    assert [name for name, _ in waveform_copies(config)] == ["gain_-6dB", "room_0.3s"]  # the caches of before
    monkeypatch.setattr(RoomLoader, "generation", 2)
    assert [name for name, _ in waveform_copies(config)] == ["gain_-6dB", "room_0.3s.g2"]


@pytest.mark.slow
def test_speed_perturbed_copies_join_training_only(shared_data, tmp_path):
    pytest.importorskip("jax")
    from sertiny.features import get_preset
    from sertiny.training import TrainConfig
    from sertiny.training.data import DataSpec, load_table
    from sertiny.training.protocol import fold_inputs, prepare_run

    corpus = tmp_path / "corpus"
    for actor in ("Actor_01", "Actor_02", "Actor_03"):
        (corpus / actor).mkdir(parents=True)
        for clip in sorted((shared_data / "ravdess16k" / actor).glob("*.flac"))[:6]:
            (corpus / actor / clip.name).symlink_to(clip)
    spec = DataSpec(kind="audio", path=str(corpus), dataset="ravdess", cache_dir=str(tmp_path / "cache"))
    table = load_table(spec, get_preset("edge16k"), progress=False)
    config = TrainConfig(model="lstm_sa_h8", epochs=1, folds="kfold", n_folds=3, n_val_speakers=1, seq_len=40,
                         speed_perturb=(0.9, 1.1), gain_perturb=(-6.0,), noise_snr=(30.0,), pitch_shift=(2.0,),
                         room_rt60=(0.3,))
    ctx = prepare_run(table, config, tmp_path / "run", data_spec=spec)
    assert [len(c) for c in ctx.augmented] == [len(table)] * 6
    # 0.9x speed = longer clips; gain and noise keep the length and move the features
    assert all(len(slow) > len(orig) for slow, orig in zip(ctx.augmented[0], table.features))
    for copies in ctx.augmented[2:]:  # gain, noise, pitch, room
        assert all(c.shape == o.shape and not np.allclose(c, o) for c, o in zip(copies, table.features))
    assert sorted(p.name for p in (tmp_path / "cache" / "augmented").iterdir()) == [
        "gain_-6dB", "noise_30dB_snr", "pitch_+2st", "room_0.3s", "speed_0.9", "speed_1.1"]
    data = fold_inputs(table, ctx.folds[0], ctx.seq_len, "train", augmented=ctx.augmented)
    assert len(data.x_train) == 7 * len(data.train_idx) and len(data.x_val) == len(data.val_idx)
    assert set(data.train_rows) == set(data.train_idx)
    with pytest.raises(ParameterError, match="need the audio"):
        prepare_run(load_table(DataSpec(kind="paper_npz", path=str(shared_data / "ravdess48k_paper_features.npz"))),
                    config, tmp_path / "run2", data_spec=DataSpec(kind="paper_npz", path="x.npz"))
