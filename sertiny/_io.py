"""Atomic file writing: a crash never leaves a half-written artifact behind."""

import contextlib
import errno
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


def output_error(path, exc):
    """An :class:`~sertiny.errors.ArtifactError` for an OSError met writing ``path``: the
    path, the system's reason and what to do, instead of a traceback."""
    from .errors import ArtifactError

    class OutputError(ArtifactError):
        def __init__(self, message):
            super().__init__(message)
            self.path, self.os_error = Path(path), exc

    advice = {
        errno.ENOSPC: "the disk is full; free some space or choose another output directory",
        errno.EDQUOT: "the disk quota is used up; free some space or choose another output directory",
        errno.EROFS: "the file system is read-only; choose another output directory",
        errno.EACCES: "no permission to write there; choose another output directory",
        errno.EPERM: "no permission to write there; choose another output directory",
        errno.EFBIG: "the file is larger than this file system or process allows; choose another output directory",
    }.get(exc.errno, "choose another output directory")
    return OutputError(f"{path}: cannot write it ({exc.strerror or exc}); {advice}. Nothing was left half-written.")


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside ``path``; on success rename it over ``path``.

    Writers that insist on a file name (np.savez, keras, matplotlib) write to the yielded
    path. The temporary name keeps the suffix so such writers do not append another.
    An OSError while creating, writing or renaming it (a full disk, a read-only
    directory) becomes an :func:`output_error` naming ``path``.
    """
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent)
        os.close(fd)
        yield Path(tmp)
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except OSError as exc:
        if exc.filename not in (None, tmp, str(path), str(path.parent)):
            raise  # another file the writer read: its own error names it
        raise output_error(path, exc) from None
    finally:
        if tmp is not None:
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


def update_section(path, key, body, *, title):
    """Write ``body`` into the Markdown file ``path`` between markers named ``key``, keeping
    the other sections (a new file starts with ``# title``).

    Each script owns one section of a shared results file, so rerunning one does not erase
    another's figures.
    """
    import re

    path = Path(path)
    start, end = f"<!-- {key}:start -->", f"<!-- {key}:end -->"
    block = f"{start}\n{body.rstrip()}\n{end}\n"
    text = path.read_text(encoding="utf-8") if path.exists() else f"# {title}\n\n"
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end) + r"\n?", re.DOTALL)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block
    atomic_write_text(path, text)


def csv_text(rows):
    """A list of dicts with the same keys -> CSV text, a header row first ("" for no rows)."""
    import csv
    import io

    if not rows:
        return ""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def atomic_write_json(path, obj):
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def json_values(obj):
    """``obj`` as the plain JSON values a reader of :func:`atomic_write_json`'s file gets back
    (NumPy scalars and arrays, paths and tuples become numbers, lists and strings)."""
    return json.loads(json.dumps(obj, default=_json_default))


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
    except UnicodeDecodeError as exc:
        raise ArtifactError(f"{path}: not a JSON text file (not UTF-8: {exc.reason} at byte {exc.start}); "
                            "it is corrupt or another kind of file. Copy or write it again.") from None
    except OSError as exc:
        raise ArtifactError(f"{path}: cannot be read ({exc.strerror or exc}).") from None


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
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    except OSError as exc:
        raise output_error(path, exc) from None
    try:
        try:
            yield tmp
        except ArtifactError as exc:  # a file of the block that could not be written: name its final path
            written = getattr(exc, "path", None)
            if written is None or not written.is_relative_to(tmp):
                raise
            raise output_error(path / written.relative_to(tmp), exc.os_error) from None
        try:
            if path.exists():
                old = path.with_name(f".{path.name}.old")
                shutil.rmtree(old, ignore_errors=True)
                os.replace(path, old)
                os.replace(tmp, path)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(tmp, path)
        except OSError as exc:
            raise output_error(path, exc) from None
        _fsync_dir(path.parent)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


LOCK_NAME = ".lock"


@contextlib.contextmanager
def directory_lock(directory, holder):
    """Hold an exclusive lock on ``directory`` (created if missing) for the block.

    Two processes writing one output directory would both do all the work and overwrite
    each other's files; the second one is refused at once instead, naming the first.
    The lock is ``fcntl.flock`` on ``directory/.lock``, released by the kernel when the
    holder exits however it exits (no stale lock after a kill). Yields True if this call
    created the directory.

    Raises:
        ArtifactError: another process holds the lock, or the directory cannot be made.
    """
    import fcntl

    from .errors import ArtifactError

    directory = Path(directory)
    created = not directory.exists()
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(directory / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise output_error(directory, exc) from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "?"
            raise ArtifactError(
                f"{directory} is in use by another {holder} (process {pid}). Wait for it to finish, "
                "or choose another --out."
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
        yield created
    finally:
        os.close(fd)


def clear_directory(directory):
    """Delete everything in ``directory`` except its :func:`directory_lock` file."""
    for entry in Path(directory).iterdir():
        if entry.name == LOCK_NAME:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


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
