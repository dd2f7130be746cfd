"""Timing, memory and arena measurements used by :func:`sertiny.bench.run_bench`.

Cold start and peak RSS are measured on a fresh process running the real ``sertiny
infer`` command, because both depend on everything a process imports and maps: measured
inside the benchmark process, which has other frameworks loaded, they would mean
nothing. The TFLite Micro arena is the exporter's measurement
(:func:`sertiny.export.tflm.arena_size`, which runs TFLite Micro in a child process).
"""

import json
import os
import re
import subprocess
import sys
import time

import numpy as np

HEAVY_MODULES = ("tensorflow", "keras", "jax", "librosa", "torch", "onnxruntime")

# Runs `sertiny infer` exactly as the console script does, then reports (to stderr, after
# the command's own output) which heavy frameworks it imported and its peak RSS. The peak
# is VmHWM of the process's own memory map: getrusage's ru_maxrss would not do, because
# Linux carries the pre-exec high-water mark (the parent's, with vfork) into it.
_CLI_PROBE = f"""
import atexit, json, re, sys
def _report():
    try:
        hwm = int(re.search(r"VmHWM:\\s*(\\d+) kB", open("/proc/self/status").read()).group(1))
    except (OSError, AttributeError):
        hwm = None
    heavy = [m for m in {HEAVY_MODULES!r} if m in sys.modules]
    print("SERTINY_PROBE " + json.dumps({{"heavy": heavy, "vm_hwm_kb": hwm}}), file=sys.stderr, flush=True)
atexit.register(_report)
from sertiny.cli import main
sys.argv[0] = "sertiny"
main()
"""

def latency_stats(seconds):
    """Milliseconds: p50, p90, p99, mean, min over a list of durations in seconds."""
    ms = np.asarray(seconds, dtype=np.float64) * 1e3
    return {
        "p50": round(float(np.percentile(ms, 50)), 4),
        "p90": round(float(np.percentile(ms, 90)), 4),
        "p99": round(float(np.percentile(ms, 99)), 4),
        "mean": round(float(ms.mean()), 4),
        "min": round(float(ms.min()), 4),
        "n": int(ms.size),
    }


def time_calls(fn, *, runs, warmup):
    """Call ``fn()`` ``warmup`` times untimed, then ``runs`` times; return :func:`latency_stats`."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return latency_stats(times)


def probe_cli(bundle_dir, variant, clip, *, env=None, timeout=120):
    """Run ``sertiny infer BUNDLE CLIP --json`` in a fresh process.

    Returns:
        dict with ``cold_start_s`` (spawn to the first JSON line on stdout, i.e. process
        start, imports, bundle load, decode, features and inference), ``peak_rss_mb``
        (the child's maximum resident set, None where /proc is missing), ``heavy_modules`` (frameworks it imported:
        should be empty) and ``label``; or ``{"error": text}``.
    """
    cmd = [sys.executable, "-c", _CLI_PROBE, "infer", str(bundle_dir), str(clip), "--json", "--variant", variant]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **(env or {})})
    first_line = proc.stdout.readline()
    cold_start = time.perf_counter() - start
    try:
        rest_out, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        return {"error": f"sertiny infer did not finish within {timeout} s"}
    if proc.returncode != 0 or not first_line.strip():
        return {"error": f"sertiny infer exited {proc.returncode}: {(stderr or rest_out).strip()[-300:]}"}
    match = re.search(r"^SERTINY_PROBE (.*)$", stderr, re.MULTILINE)
    report = json.loads(match.group(1)) if match else {}
    hwm = report.get("vm_hwm_kb")
    return {
        "cold_start_s": round(cold_start, 4),
        "peak_rss_mb": None if hwm is None else round(hwm / 1024, 1),
        "heavy_modules": report.get("heavy"),
        "label": json.loads(first_line).get("label"),
    }


def tflm_arena(model_path, io):
    """The TFLite Micro arena of a model file, measured as the exporter measures it.

    Returns ``{"arena_bytes": n, "source": "measured"}``, ``{"skipped": reason}`` when
    tflite-micro is not installed, or ``{"error": text}`` when TFLite Micro cannot run the
    model (e.g. an op it lacks). ``io["inputs"]`` lists the model's inputs.
    """
    import importlib.util

    from ..errors import SertinyError

    try:
        if importlib.util.find_spec("tflite_micro") is None:
            return {"skipped": "tflite-micro not installed (pip install tflite-micro)"}
    except ValueError:
        return {"skipped": "tflite-micro not importable"}
    from ..export.tflm import arena_size

    try:
        with open(model_path, "rb") as f:
            return {"arena_bytes": arena_size(f.read(), io), "source": "measured"}
    except SertinyError as exc:
        return {"error": str(exc)}
