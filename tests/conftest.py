"""Shared test fixtures: the shared real-speech data folder and a tiny audio-file writer."""

import os
from pathlib import Path

# Keras fixes its backend at first import; training (and its tests) run on JAX.
os.environ.setdefault("KERAS_BACKEND", "jax")

import numpy as np
import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data():
    """The shared real-speech data folder (RAVDESS copies); skips the test if it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data folder not found at {SHARED_DATA} (it lives beside the repo, never in it)")
    return SHARED_DATA


def tone(seconds=0.5, sr=16000, channels=1, freq=440.0, amplitude=0.5):
    """A ``(frames, channels)`` float32 sine, each channel at a different frequency."""
    t = np.arange(int(round(seconds * sr))) / sr
    waves = [amplitude * np.sin(2 * np.pi * freq * (c + 1) * t) for c in range(channels)]
    return np.stack(waves, axis=1).astype(np.float32)


@pytest.fixture
def write_audio(tmp_path):
    """Factory ``write_audio(relpath, data=None, sr=16000, **soundfile_kwargs) -> Path``.

    Writes ``data`` (default: a 0.5 s tone) under ``tmp_path`` with soundfile, creating
    folders as needed; the format follows the file extension.
    """
    import soundfile as sf

    def write(relpath, data=None, sr=16000, **kwargs):
        path = tmp_path / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, tone(sr=sr) if data is None else data, sr, **kwargs)
        return path

    return write
