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
