"""Atomic file writing: a crash never leaves a half-written artifact behind."""

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path


def _fsync_dir(directory):
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside ``path``; on success rename it over ``path``.

    Writers that insist on a file name (np.savez, keras, matplotlib) write to the yielded
    path. The temporary name keeps the suffix so such writers do not append another.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def atomic_write_bytes(path, data):
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())


def atomic_write_text(path, text):
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path, obj):
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def _json_default(obj):
    import numpy as np

    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


def read_json(path):
    from .errors import ArtifactError

    path = Path(path)
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise ArtifactError(f"{path}: file not found") from None
    except json.JSONDecodeError as exc:
        raise ArtifactError(f"{path}: not valid JSON ({exc}); the file may be truncated") from None


@contextlib.contextmanager
def atomic_directory(path, overwrite=False):
    """Build a directory under a temporary name and rename it into place at the end.

    If the block raises, the temporary directory is removed and ``path`` is untouched,
    so a failed export never leaves a half bundle.
    """
    from .errors import ArtifactError

    path = Path(path)
    if path.exists() and not overwrite:
        raise ArtifactError(f"{path} already exists; choose another --out or pass --overwrite")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        if path.exists():
            old = path.with_name(f".{path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
        _fsync_dir(path.parent)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def stderr_fd_to(file):
    """Point file descriptor 2 at the open ``file`` for the block.

    For C++ libraries (the TFLite converter, TFLite Micro, TensorFlow's start-up) that log
    straight to fd 2, where ``contextlib.redirect_stderr`` cannot reach; Python exceptions
    still propagate.
    """
    import sys

    with contextlib.suppress(AttributeError, ValueError, OSError):
        sys.stderr.flush()  # what Python wrote before the block stays before it
    saved = os.dup(2)
    try:
        os.dup2(file.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


@contextlib.contextmanager
def silenced_stderr_fd():
    """Send file descriptor 2 to /dev/null for the block (see :func:`stderr_fd_to`)."""
    with open(os.devnull, "w") as devnull, stderr_fd_to(devnull):
        yield
