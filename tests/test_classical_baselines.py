"""The benchmark's clip statistics (benchmarks/classical_baselines.py) have the documented layout."""

import importlib.util
from pathlib import Path

import numpy as np

_SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "classical_baselines.py"
_spec = importlib.util.spec_from_file_location("classical_baselines", _SCRIPT)
baselines = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(baselines)


def test_clip_statistics_layout_is_statistic_major():
    # Feature 0 rises 0..10, feature 1 alternates 0, 2, 0, 2, ...: each statistic is known by hand.
    frames = np.stack([np.arange(11.0), 2.0 * (np.arange(11) % 2)], axis=1)
    stats = baselines.clip_statistics(frames)
    assert baselines.STATISTICS == ("mean", "std", "p10", "p90", "delta_std")
    np.testing.assert_allclose(stats.reshape(5, 2), [
        [5.0, 10 / 11],
        [np.sqrt(10.0), np.sqrt(10 / 11 * (1 - 10 / 22) * 2)],
        [1.0, 0.0],
        [9.0, 2.0],
        [0.0, 2.0],
    ])


def _toy_corpus(rng):
    """Four separable classes over RAVDESS's 24 speakers (the paper's folds need them all)."""
    speakers = np.repeat([f"{s:02d}" for s in range(1, 25)], 8)
    labels = np.tile(np.arange(4), 48)
    vectors = np.eye(4)[labels] * 3.0 + rng.normal(size=(len(labels), 4))
    names = np.array([f"clip{i}" for i in range(len(labels))])
    return baselines.Corpus(vectors, labels, speakers, names, ("a", "b", "c", "d"))


def test_gained_test_clips_are_scored_with_the_model_chosen_at_the_corpus_level():
    rng = np.random.default_rng(0)
    corpus = _toy_corpus(rng)
    same = corpus.vectors.copy()
    moved = corpus.vectors + np.array([4.0, 0.0, 0.0, 0.0])  # a level shift pushes clips towards class a
    result = baselines.evaluate(corpus, (0.1, 1.0), "balanced", {-6.0: same, 6.0: moved})
    unchanged, shifted = result["under_gain"]["-6"], result["under_gain"]["+6"]
    assert unchanged == {"pooled_test_uar": result["pooled_test_uar"], "labels_kept": 1.0}
    assert shifted["labels_kept"] < 0.9 and shifted["pooled_test_uar"] < result["pooled_test_uar"]
    assert "under_gain" not in baselines.evaluate(corpus, (0.1,), "balanced")
    lines = baselines._gain_lines({"toy": result}, [-6.0, 6.0])
    assert "| toy | " in "\n".join(lines) and "100.0 %" in "\n".join(lines)


def test_gained_copy_is_the_clip_scaled_and_stored_as_16_bit(tmp_path):
    import soundfile as sf

    y = (0.6 * np.sin(np.arange(8000) / 7.0)).astype(np.float32)
    sf.write(tmp_path / "a.wav", y, 16000, subtype="FLOAT")
    louder = baselines.GainedCopy(6.0)(tmp_path / "a.wav", 16000)
    np.testing.assert_allclose(louder * 32768.0, np.round(louder * 32768.0), atol=1e-3)  # on the 16-bit grid
    assert np.abs(louder).max() <= 1.0  # clipped at full scale (0.6 x 2 would exceed it)
    quiet = baselines.GainedCopy(-6.0)(tmp_path / "a.wav", 16000)
    np.testing.assert_allclose(quiet, y * 10 ** (-6 / 20), atol=1 / 32768)
