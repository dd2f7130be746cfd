"""Exceptions raised by sertiny.

Every error a user can cause is a :class:`SertinyError`, so the CLI can print its message
(which always says what to do next) without a traceback.
"""


class SertinyError(Exception):
    """Base class for errors caused by input, configuration or environment."""


class ParameterError(SertinyError, ValueError):
    """A configuration value is out of range or of the wrong type."""


class AudioError(SertinyError):
    """An audio file cannot be used: unreadable, empty, too short, or not finite.

    ``path`` and ``reason`` are kept separately so dataset loaders can collect them
    into a per-run problem report.
    """

    def __init__(self, path, reason):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class ArtifactError(SertinyError):
    """A run directory, bundle or cache entry is missing, truncated or inconsistent."""


class MissingDependencyError(SertinyError, ImportError):
    """An optional dependency needed for this command is not installed."""


def require(module_name, extra):
    """Import ``module_name`` or raise a :class:`MissingDependencyError` naming the extra."""
    import importlib

    try:
        return importlib.import_module(module_name)
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise MissingDependencyError(
            f"This command needs '{module_name}', which is not installed. "
            f"Install it with: pip install \"sertiny[{extra}]\""
        ) from exc
