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


# Six RAVDESS actors of the paper's own features: big enough for 3-fold speaker k-fold,
# small enough that a tiny model trains in seconds (training, tuning and CLI tests).
SIX_ACTORS = ("01", "02", "03", "04", "05", "06")


@pytest.fixture(scope="session")
def paper_npz(shared_data):
    path = shared_data / "ravdess48k_paper_features.npz"
    if not path.exists():
        pytest.skip(f"{path} not found")
    return path


@pytest.fixture(scope="session")
def small_table(paper_npz):
    """The paper's features of six actors as a FeatureTable (treat as read-only)."""
    from sertiny.features.table import load_paper_features

    table = load_paper_features(paper_npz)
    return table.subset(np.isin(table.speakers, SIX_ACTORS))


@pytest.fixture(scope="session")
def small_npz(paper_npz, tmp_path_factory):
    """The paper's feature file cut to six actors, for CLI and subprocess tests."""
    with np.load(paper_npz) as npz:
        data = {key: npz[key] for key in npz.files}  # read each member once
    keep = np.flatnonzero(np.isin(data["actor"], [int(a) for a in SIX_ACTORS]))
    offsets = data["offsets"]
    clips = [data["features"][offsets[i]:offsets[i + 1]] for i in keep]
    path = tmp_path_factory.mktemp("npz") / "six_actors.npz"
    np.savez(path, features=np.concatenate(clips), offsets=np.concatenate([[0], np.cumsum([len(c) for c in clips])]),
             names=data["names"][keep], emotion=data["emotion"][keep], actor=data["actor"][keep])
    return path
