"""Describe the machine a benchmark ran on, so runs from different devices can be merged.

Standard library + numpy only (it runs on the Pi). Emulation cannot be detected reliably
from inside qemu-user (``/proc/cpuinfo`` shows the host's CPU), so the emulated-Pi script
sets ``SERTINY_EMULATED``; a run marked emulated never has its timings reported as the
target device's.
"""

import os
import platform
import re
from pathlib import Path

EMULATION_ENV = "SERTINY_EMULATED"


def describe_device(runtime=None):
    """A JSON-able description: name, CPU, cores, memory, OS, Python and library versions.

    ``SERTINY_DEVICE_NAME`` overrides the short name (default: the board model on a Pi,
    else ``<machine>-<hostname>``).
    """
    from importlib import metadata

    import numpy as np

    cpu = _cpu_model()
    board = _read_first(("/proc/device-tree/model", "/sys/firmware/devicetree/base/model"))
    emulated = is_emulated()
    info = {
        "name": os.environ.get("SERTINY_DEVICE_NAME") or board or f"{platform.machine()}-{platform.node()}",
        "board": board,
        "cpu": cpu,
        "machine": platform.machine(),
        "cores": os.cpu_count(),
        "memory_gb": _memory_gb(),
        "os": _os_name(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "emulated": emulated,
        "emulator": os.environ.get(EMULATION_ENV) if emulated else None,
    }
    if runtime is not None:
        from ..runtime.tflite import runtime_version

        info["tflite_runtime"] = f"{runtime} {runtime_version(runtime)}"
    for dist in ("sertiny",):
        try:
            info[f"{dist}_version"] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            info[f"{dist}_version"] = None
    return info


def is_emulated():
    """True when ``SERTINY_EMULATED`` marks this process as running under an emulator."""
    return os.environ.get(EMULATION_ENV, "") not in ("", "0")


def _cpu_model():
    text = _read_first(("/proc/cpuinfo",)) or ""
    for key in ("model name", "Model", "Hardware"):
        match = re.search(rf"^{key}\s*:\s*(.+)$", text, re.MULTILINE)
        if match:
            return match.group(1).strip()
    return platform.processor() or platform.machine()


def _memory_gb():
    text = _read_first(("/proc/meminfo",)) or ""
    match = re.search(r"^MemTotal:\s*(\d+) kB", text, re.MULTILINE)
    return round(int(match.group(1)) / 2**20, 1) if match else None


def _os_name():
    text = _read_first(("/etc/os-release",)) or ""
    match = re.search(r'^PRETTY_NAME="?([^"\n]+)"?', text, re.MULTILINE)
    return match.group(1) if match else platform.platform()


def _read_first(paths):
    for path in paths:
        try:
            return Path(path).read_text(errors="replace").rstrip("\x00").strip()
        except OSError:
            continue
    return None
