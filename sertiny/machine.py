"""The machine a measurement ran on, described once for ``bench.json`` and every results report.

Standard library and NumPy only: it runs on a Raspberry Pi with the light install
(``sertiny bench``) as well as on the hosts that write ``results/*.md``. Two views of the
same facts:

* :func:`describe_device`: a JSON-able dict for ``bench.json``, so runs from different
  devices can be merged (``sertiny bench compare``).
* :func:`machine_info` and :func:`machine_lines`: strings and Markdown bullets for reports,
  including the load average, because the machines these figures come from are shared.

Emulation cannot be detected reliably from inside qemu-user (``/proc/cpuinfo`` shows the
host's CPU), so the emulated-Pi scripts set ``SERTINY_EMULATED``; a run marked emulated
never has its timings reported as the target device's.
"""

import datetime
import os
import platform
import re
import shlex
import sys
from pathlib import Path

EMULATION_ENV = "SERTINY_EMULATED"


def describe_device(runtime=None):
    """A JSON-able description: name, CPU, cores, memory, OS, Python and library versions.

    ``runtime`` (a TFLite runtime name) adds its version. ``SERTINY_DEVICE_NAME`` overrides
    the short name (default: the board model on a Pi, else ``<machine>-<hostname>``).
    """
    from importlib import metadata

    import numpy as np

    board = _read_first(("/proc/device-tree/model", "/sys/firmware/devicetree/base/model"))
    emulated = is_emulated()
    info = {
        "name": os.environ.get("SERTINY_DEVICE_NAME") or board or f"{platform.machine()}-{platform.node()}",
        "board": board,
        "cpu": cpu_model(),
        "machine": platform.machine(),
        "cores": os.cpu_count(),
        "memory_gb": memory_gb(),
        "os": os_name(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "emulated": emulated,
        "emulator": os.environ.get(EMULATION_ENV) if emulated else None,
    }
    if runtime is not None:
        from .runtime.tflite import runtime_version

        info["tflite_runtime"] = f"{runtime} {runtime_version(runtime)}"
    try:
        info["sertiny_version"] = metadata.version("sertiny")
    except metadata.PackageNotFoundError:
        info["sertiny_version"] = None
    return info


def machine_info():
    """``{"date", "machine", "cpus", "cpu_model", "load", "python", "numpy", "librosa"}``
    strings for reports (:func:`machine_lines`); take it before a run, so ``load`` is the
    load the run started under."""
    from importlib import metadata

    import numpy as np

    try:  # the installed version, without importing librosa (seconds, and not on a Pi)
        librosa_version = metadata.version("librosa")
    except metadata.PackageNotFoundError:  # pragma: no cover - depends on the environment
        librosa_version = "not installed"
    load = load_average()
    return {
        "date": _utc_now_text(),
        "machine": platform.machine(),
        "cpus": str(available_cpus()),
        "cpu_model": cpu_model(),
        "load": ", ".join(f"{x:.2f}" for x in load) if load else "unknown",
        "python": platform.python_version(),
        "numpy": np.__version__,
        "librosa": librosa_version,
    }


def machine_lines(info):
    """Markdown bullet lines describing ``info`` (from :func:`machine_info`)."""
    return [
        f"- Date: {info['date']}",
        f"- Machine: {info['machine']}, {info['cpus']} CPUs available to the process, CPU model: {info['cpu_model']}",
        f"- Load average (1, 5, 15 min) at the start of the run: {info['load']} (the machine is shared)",
        f"- Python {info['python']}, numpy {info['numpy']}, librosa {info['librosa']}",
    ]


def command_line():
    """The command that started this process, as it could be typed again."""
    return shlex.join([Path(sys.executable).name, *sys.argv])


def is_emulated():
    """True when ``SERTINY_EMULATED`` marks this process as running under an emulator."""
    return os.environ.get(EMULATION_ENV, "") not in ("", "0")


def load_average():
    """The (1, 5, 15)-minute load averages, or None where the OS keeps none."""
    try:
        return os.getloadavg()
    except (OSError, AttributeError):
        return None


def available_cpus():
    """CPUs this process may run on (what ``nproc`` counts), else every core."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count()


def cpu_model():
    """The CPU's model name (``/proc/cpuinfo``: x86 ``model name``, a Pi's ``Model``)."""
    text = _read_first(("/proc/cpuinfo",)) or ""
    for key in ("model name", "Model", "Hardware"):
        match = re.search(rf"^{key}\s*:\s*(.+)$", text, re.MULTILINE)
        if match:
            return match.group(1).strip()
    return platform.processor() or platform.machine()


def memory_gb():
    """Total memory in GiB (``/proc/meminfo``), or None."""
    text = _read_first(("/proc/meminfo",)) or ""
    match = re.search(r"^MemTotal:\s*(\d+) kB", text, re.MULTILINE)
    return round(int(match.group(1)) / 2**20, 1) if match else None


def os_name():
    """The OS's pretty name (``/etc/os-release``), else Python's platform string."""
    text = _read_first(("/etc/os-release",)) or ""
    match = re.search(r'^PRETTY_NAME="?([^"\n]+)"?', text, re.MULTILINE)
    return match.group(1) if match else platform.platform()


def _utc_now_text():
    """Now in UTC as ``date -u`` prints it (``Mon Dec  1 03:53:00 UTC 2025``)."""
    now = datetime.datetime.now(datetime.timezone.utc)
    return f"{now:%a %b} {now.day:2d} {now:%H:%M:%S} UTC {now:%Y}"


def _read_first(paths):
    for path in paths:
        try:
            return Path(path).read_text(errors="replace").rstrip("\x00").strip()
        except OSError:
            continue
    return None
