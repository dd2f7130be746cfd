"""Features of many audio files, computed in parallel and cached on disk.

One ``.npy`` per clip under ``cache_dir/<config digest>/``, beside that config as
``config.json``. A clip's file name is a hash of
everything its features depend on (config, back end, this code's version, and the audio
file's absolute path, size and modification time), so an edited file, a new config or a
front-end fix never reuses a stale entry, and an unchanged corpus costs only file reads.
"""

import concurrent.futures
import contextlib
import hashlib
import json
import os
import warnings
from pathlib import Path

import numpy as np

from .._io import atomic_path
from ..errors import ParameterError, SertinyError
from .config import FEATURE_CODE_VERSION, as_config

# Errors a bad or unreadable file can raise from a loader (decoders raise RuntimeError,
# truncated files ValueError/OSError) or from the front end (ParameterError). Anything else
# is a bug and propagates.
_FILE_ERRORS = (SertinyError, OSError, ValueError, RuntimeError)


def compute_features(items, config, *, backend="numpy", cache_dir=None, n_jobs=None, progress=True,
                     load_audio=None):
    """Features of every audio file in ``items``; bad files are reported, not fatal.

    Parameters
    ----------
    items : sequence of str or Path
        Audio files.
    config : FeatureConfig or str
        Front end (or preset name).
    backend : {"numpy", "librosa"}
        Implementation used for clips not found in the cache.
    cache_dir : str, Path or None
        Root of the on-disk cache; None disables caching.
    n_jobs : int or None
        Worker processes for the clips not cached; None uses ``os.cpu_count()``. With 1,
        everything runs in this process.
    progress : bool
        Show a tqdm progress bar.
    load_audio : callable or None
        ``load_audio(path, target_sr) -> np.ndarray [shape=(n_samples,), dtype=float32]``,
        mono at ``target_sr``, raising :class:`~sertiny.errors.AudioError` for a bad file.
        None uses :func:`sertiny.data.audio.load_audio`. Must be picklable if ``n_jobs > 1``.

    Returns
    -------
    features : list of (np.ndarray [shape=(n_frames, n_features), dtype=float32] or None)
        One entry per item, None where the file could not be used.
    problems : list of (str, str)
        ``(path, reason)`` for every item that gave None, in item order.
    """
    from . import get_backend

    config = as_config(config)
    get_backend(backend)  # validate the name before any work
    if n_jobs is None:
        n_jobs = os.cpu_count() or 1
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, int) or n_jobs < 1:
        raise ParameterError(f"The 'n_jobs' parameter of compute_features must be an int >= 1 or None. "
                             f"Got {n_jobs!r} instead.")
    if load_audio is None:
        from ..data.audio import load_audio
    job = _Job(config, backend, load_audio)
    entries_dir = None if cache_dir is None else Path(cache_dir) / config.digest()
    if entries_dir is not None and not (entries_dir / "config.json").exists():
        config.save(entries_dir / "config.json")  # so the folder says which front end it holds

    paths = [str(p) for p in items]
    results = [None] * len(paths)
    problems = {}
    with _progress_bar(len(paths), progress, f"features ({backend})") as bar:
        # Cache hits are read here; only misses pay for a worker process and the audio decode.
        todo = []
        for index, path in enumerate(paths):
            entry = None if entries_dir is None else _entry_path(entries_dir, path, config, backend)
            results[index] = None if entry is None else _read_entry(entry, config)
            if results[index] is None:
                todo.append((index, path, entry))
            else:
                bar.update(1)
        for index, features, problem in _run(job, todo, n_jobs):
            results[index] = features
            if problem is not None:
                problems[index] = (paths[index], problem)
            bar.update(1)
    return results, [problems[i] for i in sorted(problems)]


def cache_key(path, config, backend):
    """Hex sha256 naming the cache entry of ``path`` (which must exist) under ``config`` and ``backend``."""
    path = Path(path).resolve()
    stat = path.stat()
    # The config's identity, not every field: a field added later at its default (e.g.
    # FeatureConfig.kind) leaves the keys of existing entries, and so the cache, valid.
    identity = json.dumps(config.identity_dict(), sort_keys=True)
    parts = (identity, backend, FEATURE_CODE_VERSION, str(path), str(stat.st_size), str(stat.st_mtime_ns))
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def limit_blas_threads(n_threads=1):
    """Cap BLAS threads in this process, if threadpoolctl is installed.

    The librosa back end's filterbank products go through BLAS and are small (a few to
    ~25 MFLOP per clip): a multi-threaded BLAS spends more on waking and joining threads
    than on the product, and on a busy machine each join can wait for a free core (see the
    speed section of results/frontend.md). Parallelism comes from one process per core
    instead. (The numpy back end does not call BLAS at all.)

    Returns a context manager: leaving it restores the previous limits (a no-op context
    if threadpoolctl is missing). Calling without ``with`` keeps the cap for good, which
    is what pool workers want.
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(limits=n_threads, user_api="blas")


class _Job:
    """Load, extract and cache one clip; picklable, so it runs in pool workers too."""

    def __init__(self, config, backend, load_audio):
        self.config = config
        self.backend = backend
        self.load_audio = load_audio

    def __call__(self, index, path, entry):
        """Return ``(index, features or None, problem reason or None)``; ``entry`` None skips caching."""
        from . import get_backend

        try:
            y = self.load_audio(path, self.config.sample_rate)
            features = get_backend(self.backend).extract(y, self.config)
        except _FILE_ERRORS as exc:
            return index, None, _reason(exc)
        if entry is not None:
            _write_entry(entry, features)
        return index, features, None


def _entry_path(entries_dir, path, config, backend):
    try:
        return entries_dir / f"{cache_key(path, config, backend)}.npy"
    except OSError:
        return None  # missing or unreadable: the loader will say why, in its own words


def _reason(exc):
    return exc.reason if hasattr(exc, "reason") else f"{type(exc).__name__}: {exc}"


def _read_entry(entry, config):
    """The cached array, or None if absent or unusable (then it is recomputed and replaced)."""
    try:
        features = np.load(entry, allow_pickle=False)
    except (OSError, ValueError):
        return None
    if features.dtype != np.float32 or features.ndim != 2 or features.shape[1] != config.n_features:
        return None
    return features


def _write_entry(entry, features):
    # A cache that cannot be written (read-only or full disk) costs speed, not results, and
    # must not be blamed on the audio file.
    try:
        with atomic_path(entry) as tmp:
            np.save(tmp, features, allow_pickle=False)
    except OSError as exc:
        warnings.warn(f"Could not write feature cache entry {entry}: {exc}", stacklevel=2)


def _run(job, todo, n_jobs):
    """Yield ``job(*task)`` for every ``(index, path, entry)`` task, as they finish."""
    if n_jobs == 1 or len(todo) <= 1:
        with limit_blas_threads():
            for task in todo:
                yield job(*task)
        return
    # forkserver, not fork: callers (training, quickstart, tests) may already run JAX or
    # TensorFlow threads, and forking a multithreaded process can deadlock the child.
    import multiprocessing

    context = multiprocessing.get_context("forkserver")
    with concurrent.futures.ProcessPoolExecutor(max_workers=min(n_jobs, len(todo)), mp_context=context,
                                                initializer=limit_blas_threads) as pool:
        futures = [pool.submit(job, *task) for task in todo]
        try:
            for future in concurrent.futures.as_completed(futures):
                yield future.result()
        finally:
            for future in futures:
                future.cancel()


def _progress_bar(total, enabled, description):
    from tqdm.auto import tqdm

    return tqdm(total=total, disable=not enabled, desc=description, unit="clip", dynamic_ncols=True)
