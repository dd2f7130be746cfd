"""Keep the frameworks' native start-up logs off the user's terminal.

TensorFlow's C++ start-up (oneDNN notices, absl's "log messages before InitializeLog"
warning) and the TFLite runtimes ("INFO: Created TensorFlow Lite XNNPACK delegate for
CPU.") write straight to file descriptor 2, and no environment variable turns them off
(``TF_CPP_MIN_LOG_LEVEL`` does not reach absl's early messages). So the CLI captures fd 2
around the two moments they happen, TensorFlow's first import and an interpreter's
creation, and writes back every line that is not such a log line: errors and anything
else stay visible.

The CLI sets :data:`ENV` to ``hide`` (``--verbose``: ``show``); child processes inherit
it, so training and tuning workers hide the same lines. Library users who never set it
see the frameworks' output unchanged. Standard library only: this is on the device path.
"""

import contextlib
import importlib.abc
import importlib.util
import os
import re
import sys
import tempfile

ENV = "SERTINY_FRAMEWORK_LOGS"

# Informational and warning lines of absl/glog ("I0000 00:00:17.95  7388 port.cc:153] ..."),
# TensorFlow's older format ("2024-01-01 10:00:00.000: W tensorflow/..."), absl's preamble,
# TensorFlow's CPU-feature notice, and TFLite's own INFO lines. Errors (E, F) are kept.
_FRAMEWORK_LOG = re.compile(
    r"^(?:[IW]\d{4} \d\d:\d\d:\d+\.\d+\s+\d+ \S+:\d+\] "
    r"|\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: [IW] "
    r"|WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    r"|To enable the following instructions: .* rebuild TensorFlow with the appropriate compiler flags"
    r"|INFO: (?:Created TensorFlow Lite|Initialized TensorFlow Lite|TfLiteFlexDelegate))"
)
# Modules whose first import prints such lines (TensorFlow's pulls in its C++ runtime).
_NOISY_IMPORTS = ("tensorflow",)


def hiding():
    """True when framework log lines are to be hidden (the CLI without ``--verbose``)."""
    return os.environ.get(ENV) == "hide"


def is_framework_log(line):
    """True for one line a framework's native logger wrote (see the module docstring)."""
    return bool(_FRAMEWORK_LOG.match(line))


def without_framework_logs(text):
    """``text`` minus its framework log lines, every other line kept in order."""
    return "".join(line for line in text.splitlines(keepends=True) if not is_framework_log(line))


@contextlib.contextmanager
def quiet_native_logs():
    """Hold back what native code writes to fd 2 in the block, then write it back without
    the framework log lines. Does nothing unless :func:`hiding`."""
    if not hiding():
        yield
        return
    from ._io import stderr_fd_to

    with contextlib.ExitStack() as stack:
        try:
            capture = stack.enter_context(tempfile.TemporaryFile())
            stack.callback(_write_back, capture)  # runs after fd 2 is restored
            stack.enter_context(stderr_fd_to(capture))
        except OSError:  # no temporary directory, or fd 2 closed: better noisy than failing
            pass
        yield


def _write_back(capture):
    capture.seek(0)
    kept = without_framework_logs(capture.read().decode("utf-8", "replace"))
    if kept:
        with contextlib.suppress(OSError):
            os.write(2, kept.encode("utf-8"))


class _QuietImporter(importlib.abc.MetaPathFinder):
    """Runs the first import of each :data:`_NOISY_IMPORTS` module under :func:`quiet_native_logs`."""

    def find_spec(self, name, path=None, target=None):
        if name not in _NOISY_IMPORTS or name in sys.modules:
            return None
        sys.meta_path.remove(self)  # let the other finders find the real spec
        try:
            spec = importlib.util.find_spec(name)
        finally:
            sys.meta_path.insert(0, self)
        if spec is None or spec.loader is None:
            return None
        spec.loader = _QuietLoader(spec.loader)
        return spec


class _QuietLoader(importlib.abc.Loader):
    def __init__(self, loader):
        self._loader = loader

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        # The module keeps its real loader: nothing after the import sees this wrapper.
        module.__loader__ = module.__spec__.loader = self._loader
        with quiet_native_logs():
            self._loader.exec_module(module)


def hide_framework_logs(hide=True):
    """Set :data:`ENV` for this process and its children; when hiding, quiet TensorFlow's
    first import from now on."""
    os.environ[ENV] = "hide" if hide else "show"
    install_import_hook()


def install_import_hook():
    """Quiet TensorFlow's first import in this process if :func:`hiding` (else nothing)."""
    if hiding() and not any(isinstance(finder, _QuietImporter) for finder in sys.meta_path):
        sys.meta_path.insert(0, _QuietImporter())
