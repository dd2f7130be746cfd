"""Where a study lives: resolve ``--storage`` and open it as an Optuna storage.

Three kinds, one study API:

* SQLite (``study.db`` in the output directory by default): one file, transactional, so a
  ``kill -9`` never corrupts it; enough for a few worker processes on one machine because
  trials last minutes and write a handful of rows each.
* Any SQLAlchemy URL, e.g. ``postgresql://user@host:5432/db``: the way to scale out, the
  same command on several machines against one server.
* ``journal:PATH`` (or a ``*.log`` path): Optuna's append-only journal file with a lock
  file, its recommended local multi-process backend; also usable on NFS.

SQL storages get Optuna's heartbeat, so a trial whose machine died is failed and retried
once it has been silent for the grace period; see :mod:`sertiny.tuning.recovery` for the
faster same-machine check every storage gets.
"""

import dataclasses
import re
import warnings
from pathlib import Path

from ..errors import MissingDependencyError, ParameterError, SertinyError

_JOURNAL_SUFFIXES = (".log", ".journal", ".jsonl")
_SQLITE_SUFFIXES = (".db", ".sqlite", ".sqlite3")
# A database driver per URL scheme, for the "install it" message.
_DRIVERS = {"postgresql": '"psycopg[binary]"', "mysql": "pymysql"}
# PostgreSQL drivers SQLAlchemy can use, preferred first. SQLAlchemy 2.1 made psycopg (3)
# the default for a bare postgresql:// URL; 2.0 used psycopg2.
_POSTGRES_DRIVERS = (("psycopg", "psycopg"), ("psycopg2", "psycopg2"))
# SQLite: wait this long for another worker's write lock instead of failing at once.
_SQLITE_LOCK_TIMEOUT = 120
_SCHEMA_RACE_ATTEMPTS = 5


@dataclasses.dataclass(frozen=True)
class StorageSpec:
    """A resolved storage: ``kind`` is ``rdb`` or ``journal``; ``target`` a URL or a path."""

    kind: str
    target: str

    @property
    def is_sqlite(self):
        return self.kind == "rdb" and self.target.startswith("sqlite:")

    def __str__(self):
        return redact_url(self.target) if self.kind == "rdb" else f"journal:{self.target}"


def resolve_storage(spec, out_dir):
    """Turn ``--storage`` (or ``None``) into a :class:`StorageSpec` with absolute paths.

    Paths are made absolute so that worker processes, and the saved config, name the
    same file whatever their working directory.
    """
    if spec is None:
        return StorageSpec("rdb", f"sqlite:///{(Path(out_dir) / 'study.db').resolve()}")
    spec = spec.strip()
    if spec.startswith("journal:"):
        return StorageSpec("journal", str(Path(spec[len("journal:"):]).expanduser().resolve()))
    if "://" in spec:
        scheme = spec.split("://", 1)[0].split("+", 1)[0].lower()
        if scheme in ("redis", "rediss", "grpc"):
            raise ParameterError(f"Storage scheme '{scheme}' is not supported; use a SQL database URL "
                                 "(postgresql://...), a *.db SQLite path, or journal:PATH.")
        return StorageSpec("rdb", _with_postgres_driver(spec))
    path = Path(spec).expanduser()
    if path.suffix in _JOURNAL_SUFFIXES:
        return StorageSpec("journal", str(path.resolve()))
    if path.suffix in _SQLITE_SUFFIXES:
        return StorageSpec("rdb", f"sqlite:///{path.resolve()}")
    raise ParameterError(
        f"Cannot tell what storage {spec!r} is. Give a *.db path (SQLite), journal:PATH or a *.log path "
        "(journal file), or a database URL such as postgresql://user@host:5432/db."
    )


def _with_postgres_driver(url):
    """Name an installed driver in a bare ``postgresql://`` (or ``postgres://``) URL.

    The URL a user types works whichever of psycopg 3 or psycopg2 is installed, and with
    either SQLAlchemy default. A URL that names its driver (``postgresql+...``) is kept.
    """
    import importlib.util

    scheme, rest = url.split("://", 1)
    if scheme.lower() not in ("postgresql", "postgres"):
        return url
    for module, dialect in _POSTGRES_DRIVERS:
        if importlib.util.find_spec(module) is not None:
            return f"postgresql+{dialect}://{rest}"
    return f"postgresql://{rest}"  # open_storage then says which driver to install


def redact_url(url):
    """``url`` with any password replaced by ``***`` (for logs and saved configs)."""
    return re.sub(r"(://[^:/@]+:)[^@]*@", r"\1***@", url)


def open_storage(spec, *, heartbeat_interval, grace_period, on_stale_trial):
    """The Optuna storage object for ``spec``.

    ``on_stale_trial(study, frozen_trial)`` runs when a SQL storage's heartbeat finds a
    trial whose process stopped beating (Optuna has already marked it FAIL).
    """
    if spec.kind == "journal":
        return _open_journal(spec.target)
    return _open_rdb(spec, heartbeat_interval, grace_period, on_stale_trial)


def _open_journal(path):
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return JournalStorage(JournalFileBackend(path))


def _open_rdb(spec, heartbeat_interval, grace_period, on_stale_trial):
    import inspect

    import optuna
    from optuna.storages import RDBStorage

    if spec.is_sqlite:
        Path(spec.target[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
        engine_kwargs = {"connect_args": {"timeout": _SQLITE_LOCK_TIMEOUT}}
    else:
        # A connection the server dropped (restart, idle timeout) is replaced, not an error
        # minutes into a trial.
        engine_kwargs = {"pool_pre_ping": True}
    # Optuna 4.9 renamed the callback argument; accept both so any optuna>=4 works.
    params = inspect.signature(RDBStorage).parameters
    callback_arg = "heartbeat_stale_trial_callback" if "heartbeat_stale_trial_callback" in params else "failed_trial_callback"
    kwargs = {"heartbeat_interval": heartbeat_interval, "grace_period": grace_period, callback_arg: on_stale_trial}
    try:
        return _create_rdb_storage(RDBStorage, spec.target, engine_kwargs, kwargs, optuna)
    except ImportError as exc:
        scheme = spec.target.split("://", 1)[0].split("+", 1)[0].lower()
        driver = _DRIVERS.get(scheme, "the database driver named in the URL")
        raise MissingDependencyError(
            f"The storage {redact_url(spec.target)} needs a database driver that is not installed "
            f"({exc.__cause__ or exc}). Install it with: pip install {driver}"
        ) from exc
    except Exception as exc:  # sqlalchemy.exc.OperationalError and friends; no import needed
        if type(exc).__module__.startswith("sqlalchemy"):
            first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise SertinyError(
                f"Cannot open the study storage {redact_url(spec.target)}: {first_line}. "
                "Check that the database server is running and reachable, and the URL's user, port and database."
            ) from exc
        raise


def _create_rdb_storage(rdb_storage, url, engine_kwargs, kwargs, optuna):
    """``RDBStorage(...)``, retried when another process is creating the same schema.

    Workers started together on an empty database all run CREATE TABLE; the losers get
    an integrity or "already exists" error (optuna issue #1092). A moment later the
    tables are there and opening succeeds.
    """
    import random
    import time

    for attempt in range(_SCHEMA_RACE_ATTEMPTS):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # heartbeat
                return rdb_storage(url, engine_kwargs=engine_kwargs, **kwargs)
        except Exception as exc:
            if not _is_schema_race(exc) or attempt == _SCHEMA_RACE_ATTEMPTS - 1:
                raise
            time.sleep(random.uniform(0.2, 1.0) * (attempt + 1))


def _is_schema_race(exc):
    if not type(exc).__module__.startswith("sqlalchemy"):
        return False
    name = type(exc).__name__
    # PostgreSQL: a unique violation in its catalogue, or "relation ... already exists";
    # SQLite: "table ... already exists".
    return name in ("IntegrityError", "ProgrammingError") or (name == "OperationalError" and "already exists" in str(exc))
