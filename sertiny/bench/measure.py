"""Timing, memory and arena measurements used by :func:`sertiny.bench.run_bench`.

Cold start and peak RSS are measured on a fresh process running the real ``sertiny
infer`` command, because both depend on everything a process imports and maps: measured
inside the benchmark process, which has other frameworks loaded, they would mean
nothing. TFLite Micro also runs in a child process: its Python wrapper crashes the whole
process (SIGSEGV) when the arena is too small, which a benchmark must survive.
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

_TFLM_PROBE = """
import sys, numpy as np
from tflite_micro.python.tflite_micro import runtime
data = open(sys.argv[1], "rb").read()
interpreter = runtime.Interpreter.from_bytes(data, arena_size=int(sys.argv[2]))
detail = interpreter.get_input_details(0)
interpreter.set_input(np.zeros(detail["shape"], detail["dtype"]), 0)
interpreter.invoke()
interpreter.print_allocations()
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


def tflm_arena(model_path, *, timeout=120):
    """Arena bytes TensorFlow Lite Micro's recording allocator needs for one invoke.

    Returns ``{"arena_bytes": n}``, ``{"skipped": reason}`` when tflite-micro is not
    installed, or ``{"error": text}`` when TFLM cannot run the model (e.g. an op it lacks).
    """
    try:
        import importlib.util

        if importlib.util.find_spec("tflite_micro") is None:
            return {"skipped": "tflite-micro not installed (pip install tflite-micro)"}
    except ValueError:
        return {"skipped": "tflite-micro not importable"}
    # Far more than any model of this size needs: too small an arena crashes the child.
    arena = max(4 << 20, 20 * os.path.getsize(model_path))
    try:
        proc = subprocess.run([sys.executable, "-c", _TFLM_PROBE, str(model_path), str(arena)],
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"TFLM did not finish within {timeout} s"}
    match = re.search(r"Arena allocation total (\d+) bytes", proc.stderr + proc.stdout)
    if proc.returncode != 0 or not match:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or [f"exit status {proc.returncode}"]
        return {"error": f"TFLM could not run the model: {tail[0][:200]}"}
    return {"arena_bytes": int(match.group(1))}
