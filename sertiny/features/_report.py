"""Small helpers for the front end's check and benchmark reports (results/frontend.md)."""

import os
import platform
import re
import shlex
import subprocess
import sys
from pathlib import Path

from .._io import atomic_write_text


def command_line():
    """The command that started this process, as it could be typed again."""
    return shlex.join([Path(sys.executable).name, *sys.argv])


def machine_info():
    """``{"date", "machine", "cpus", "cpu_model", "load", "python", "numpy", "librosa"}`` strings for reports."""
    import numpy as np

    try:
        import librosa

        librosa_version = librosa.__version__
    except ImportError:  # pragma: no cover - depends on the environment
        librosa_version = "not installed"
    return {
        "date": _run(["date", "-u"]),
        "machine": _run(["uname", "-m"]) or platform.machine(),
        "cpus": _run(["nproc"]),
        "cpu_model": _cpu_model(),
        "load": _load_average(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "librosa": librosa_version,
    }


def machine_lines(info):
    """Markdown bullet lines describing ``info`` (from :func:`machine_info`)."""
    return [
        f"- Date: {info['date']}",
        f"- Machine: {info['machine']}, {info['cpus']} CPUs available (`nproc`), CPU model: {info['cpu_model']}",
        f"- Load average (1, 5, 15 min) at the start of the run: {info['load']} (the machine is shared)",
        f"- Python {info['python']}, numpy {info['numpy']}, librosa {info['librosa']}",
    ]


def update_section(path, key, body):
    """Write ``body`` into ``path`` between markers named ``key``, keeping other sections.

    Each script owns one section, so rerunning one does not erase the other's figures.
    """
    path = Path(path)
    start, end = f"<!-- {key}:start -->", f"<!-- {key}:end -->"
    block = f"{start}\n{body.rstrip()}\n{end}\n"
    text = path.read_text(encoding="utf-8") if path.exists() else "# Front end: agreement and speed\n\n"
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end) + r"\n?", re.DOTALL)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block
    atomic_write_text(path, text)


def _run(command):
    try:
        return subprocess.run(command, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


def _load_average():
    try:
        return ", ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


def _cpu_model():
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.lower().startswith(("model name", "hardware", "cpu model")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"
