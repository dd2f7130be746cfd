"""``run_bench``: measure every variant of a bundle (and the float peers) on this machine.

Per variant: file size, op count and MACs, load time, inference latency percentiles at
each thread setting, end-to-end time per clip (decode -> features -> inference) and its
real-time factor, cold start and peak RSS of a fresh ``sertiny infer`` process, the
TensorFlow Lite Micro arena, a microcontroller latency estimate, and the bundle's UAR.
Per peer (Keras, ONNX Runtime, PyTorch on the float model): load time, latency and end to
end, through the same decode, front end and windows. The result is one JSON-able dict; see
:mod:`sertiny.bench.report` for the Markdown tables (with the variants' per-window time
against each peer's) and the plot.
"""

import contextlib
import datetime
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from .. import __version__
from ..data.audio import AUDIO_EXTENSIONS, load_audio
from ..errors import AudioError
from ..machine import describe_device, is_emulated, load_average
from ..runtime.bundle import Bundle
from ..runtime.runner import load_runner, runtime_name
from ..features.frames import fit_to_length
from . import graph, mcu
from .config import BenchConfig
from .measure import latency_stats, probe_cli, tflm_arena, time_calls

SCHEMA = "sertiny-bench"
SCHEMA_VERSION = 1


def run_bench(bundle_path, clips=(), config=None, *, progress=True, command=None):
    """Benchmark ``bundle_path`` on this machine; returns the result dict.

    Args:
        bundle_path: a bundle directory (None: the bundle shipped inside the package).
        clips: audio files or folders for the end-to-end timing (default: one synthetic clip).
        config: a :class:`~sertiny.bench.config.BenchConfig` (default settings if None).
        progress: show a progress bar.
        command: the command line to record with the results.
    """
    from tqdm.auto import tqdm

    config = config or BenchConfig()
    if is_emulated():
        # Emulated timings are never reported (the report says "emulated"), and a full run
        # takes hours under qemu: measure once per setting, so the command still checks
        # that every step works. An emulated process cannot start the cold-start probe.
        config = config.replace(runs=1, warmup=0, max_clips=1, threads=(1,), cold_start=False)
    bundle = Bundle.load(bundle_path)
    names = list(config.variants) or list(bundle.variants)
    for name in names:
        bundle.variant(name)  # fail now, naming the bundle, rather than halfway through
    runtime = runtime_name(config.runtime)
    load_before = _load_average()
    with _clip_list(clips, config.max_clips, bundle) as (clip_paths, clip_source, skipped):
        steps = len(names) * 3 + len(config.peers) + 1
        with tqdm(total=steps, desc="bench", unit="step", disable=not progress) as bar:
            ctx = _Context(bundle, config, runtime, clip_paths, bar)
            variants = [_bench_variant(ctx, name) for name in names]
            peers = _bench_peers(ctx)
            bar.update(1)
    result = {
        "schema": SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": command,
        "sertiny_version": __version__,
        "device": describe_device(runtime),
        "config": config.to_dict(),
        "bundle": _bundle_summary(bundle),
        "clips": {"count": len(clip_paths), "source": clip_source,
                  "files": [Path(p).name for p in clip_paths],
                  "skipped": [{"file": path, "reason": reason} for path, reason in skipped]},
        # Other processes' load skews every timing on a shared machine: recorded, not hidden.
        "load_average": {"start": load_before, "end": _load_average()},
        "variants": variants,
        "peers": peers,
    }
    return result


class _Context:
    """What every measurement needs: the bundle, the settings, clips and the progress bar."""

    def __init__(self, bundle, config, runtime, clips, bar):
        self.bundle, self.config, self.runtime, self.clips, self.bar = bundle, config, runtime, clips, bar
        self.cores = os.cpu_count() or 1
        self._window = None

    def step(self, text):
        self.bar.set_postfix_str(text)
        self.bar.update(1)

    def window(self, classifier):
        """The first clip's first model window: realistic input for the latency loops."""
        if self._window is None:
            x = classifier.features(classifier.load(self.clips[0]))
            self._window = fit_to_length(x, self.bundle.seq_len)
        return self._window


def _bench_variant(ctx, name):
    from ..runtime.classifier import Classifier

    variant = ctx.bundle.variant(name)
    ctx.bar.set_description(f"bench {name}")
    runner = load_runner(ctx.bundle, name, num_threads=1, runtime=ctx.config.runtime)
    cost = window_cost(graph.model_cost(runner.interpreter), variant, ctx.bundle.seq_len)
    row = {
        "name": name,
        "profile": variant.profile,
        "quantized": variant.quantized,
        "file": variant.path.name,
        "file_bytes": variant.size_bytes,
        "uar": ctx.bundle.uar(name),
        **cost,
        "load_ms": _load_ms(ctx, name),
    }
    clf = Classifier(ctx.bundle, name, num_threads=1, runtime=ctx.config.runtime)
    window = ctx.window(clf)
    row["latency"] = {}
    for threads in ctx.config.threads:
        n = threads or ctx.cores
        r = runner if n == 1 else load_runner(ctx.bundle, name, num_threads=n, runtime=ctx.config.runtime)
        row["latency"][str(n)] = time_calls(lambda r=r: r.predict(window), runs=ctx.config.runs,
                                            warmup=ctx.config.warmup)
    ctx.step(f"{name}: latency")
    row["e2e"] = end_to_end(clf.load, clf.features, lambda x, y: clf.classify_features(x, y), ctx.clips,
                            ctx.bundle.feature_config.sample_rate)
    ctx.step(f"{name}: end to end")
    if ctx.config.cold_start:
        row["cold_start"] = probe_cli(ctx.bundle.path, name, ctx.clips[0])
    row["tflm"] = _arena(ctx, variant, runner)
    row["mcu_estimate"] = mcu.estimate(cost, quantized=variant.quantized,
                                       activation_bits=16 if variant.kind.mode == "int16x8" else 8)
    ctx.step(f"{name}: cold start, arena")
    return row


def _arena(ctx, variant, runner):
    """The bundle's TFLite Micro arena figure, or, for a variant without one, the same
    measurement made here (one function owns it: :func:`sertiny.export.tflm.arena_size`)."""
    recorded = variant.meta.get("arena_bytes")
    if isinstance(recorded, int):
        return {"arena_bytes": recorded, "source": "bundle"}
    if not ctx.config.tflm:
        return {"skipped": "not recorded in the bundle, and not measured (--no-tflm)"}
    return tflm_arena(variant.path, {"inputs": runner.interpreter.get_input_details()})


def window_cost(cost, variant, seq_len):
    """Static cost of classifying one window of T frames with ``variant``.

    A chunked model is invoked ceil(T / K) times per window, so its per-invoke counts are
    scaled (``invokes_per_window`` records by how much); the host-side pooling and
    classifier between invokes are a few thousand MACs and are not counted.
    """
    for key in ("macs", "ops"):  # the exporter may see into loop bodies this count cannot
        if not cost["complete"] and isinstance(variant.meta.get(key), int):
            cost[key] = variant.meta[key]
    invokes = 1
    if variant.profile == "chunked":
        invokes = -(-seq_len // variant.chunk)
        cost = {**cost, "ops": cost["ops"] * invokes, "macs": cost["macs"] * invokes,
                "elements": {k: v * invokes for k, v in cost["elements"].items()}}
    return {**cost, "invokes_per_window": invokes}


def _load_ms(ctx, name, repeats=3):
    """Median in-process time to read, check and allocate the model (imports already done)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        load_runner(ctx.bundle, name, num_threads=1, runtime=ctx.config.runtime)
        times.append(time.perf_counter() - start)
    return round(1e3 * float(np.median(times)), 3)


def end_to_end(load, features, infer, clips, sample_rate):
    """Per-clip time split into decode, features and inference, plus the real-time factor.

    The first clip is run once untimed (first-call allocations). ``rtf`` is processing
    time / audio duration: 0.01 means 100x faster than real time.
    """
    infer(features(load(clips[0])), load(clips[0]))
    parts = {"decode": [], "features": [], "inference": [], "total": []}
    audio_s = []
    for clip in clips:
        t0 = time.perf_counter()
        y = load(clip)
        t1 = time.perf_counter()
        x = features(y)
        t2 = time.perf_counter()
        infer(x, y)
        t3 = time.perf_counter()
        for key, value in zip(parts, (t1 - t0, t2 - t1, t3 - t2, t3 - t0)):
            parts[key].append(value)
        audio_s.append(len(y) / sample_rate)
    out = {f"{k}_ms": round(1e3 * float(np.mean(v)), 4) for k, v in parts.items()}
    out["total"] = latency_stats(parts["total"])
    out["audio_s_mean"] = round(float(np.mean(audio_s)), 3)
    out["rtf"] = round(float(np.sum(parts["total"]) / np.sum(audio_s)), 5)
    return out


def _bench_peers(ctx):
    """Time each requested peer; rows say why a peer was skipped."""
    if not ctx.config.peers:
        return []
    from .peers import SUPPORTED_FAMILIES, find_weights, random_weights

    model = ctx.bundle.manifest.get("model") or {}
    if model.get("family") not in SUPPORTED_FAMILIES:
        reason = f"model family {model.get('family')!r} has no peer implementation ({', '.join(SUPPORTED_FAMILIES)})"
        for _ in ctx.config.peers:
            ctx.step("peers skipped")
        return [{"name": p, "skipped": reason} for p in ctx.config.peers]
    weights, source = find_weights(ctx.bundle)
    if weights is None:
        weights, source = random_weights(model, ctx.config.seed), f"random (timing only): {source}"
    rows = []
    for name in ctx.config.peers:
        ctx.bar.set_description(f"bench peer {name}")
        rows.append(_bench_peer(ctx, name, model, weights, source))
        ctx.step(f"peer {name}")
    return rows


def _bench_peer(ctx, name, model, weights, source):
    from .peers import load_peer

    try:
        peer = load_peer(name, model, weights, threads=1)
    except ImportError as exc:
        return {"name": name, "skipped": f"not installed ({exc.name or exc})"}
    from ..runtime.classifier import Classifier, window_starts

    clf = Classifier(ctx.bundle, num_threads=1)  # its decode and front end, the peer's model
    window = ctx.window(clf)
    seq_len = ctx.bundle.seq_len

    def infer(x, y):  # the device path's windows, the peer instead of TFLite
        return [peer.predict(fit_to_length(x[s : s + seq_len], seq_len)) for s in window_starts(len(x), seq_len)]

    row = {
        "name": name,
        "version": peer.version,
        "threads": peer.threads,
        "weights": source,
        "load_s": round(peer.load_s, 3),
        "latency": time_calls(lambda: peer.predict(window), runs=ctx.config.runs, warmup=ctx.config.warmup),
        "e2e": end_to_end(clf.load, clf.features, infer, ctx.clips, ctx.bundle.feature_config.sample_rate),
    }
    return row


def _load_average():
    """1-minute load average and core count (None where the OS has no load average)."""
    load = load_average()
    return None if load is None else {"1min": round(load[0], 2), "cores": os.cpu_count()}


def _bundle_summary(bundle):
    return {
        "path": str(bundle.path),
        "name": bundle.path.name,
        "labels": list(bundle.labels),
        "seq_len": bundle.seq_len,
        "n_features": bundle.n_features,
        "model": bundle.manifest.get("model"),
        "metrics": bundle.metrics,
        "weights": bundle.manifest.get("weights"),
        "source_run": bundle.manifest.get("source_run"),
    }


@contextlib.contextmanager
def _clip_list(clips, max_clips, bundle):
    """Yield ``(paths, source text, skipped)``: the given clips (spread over the list) or a
    synthetic one; ``skipped`` lists ``(path, reason)`` of picked clips that cannot be read,
    which are left out (as ``sertiny infer`` reports and skips them)."""
    paths = []
    for p in map(Path, clips):
        paths += sorted(f for f in p.rglob("*") if f.suffix.lower() in AUDIO_EXTENSIONS) if p.is_dir() else [p]
    if paths:
        picks = np.unique(np.linspace(0, len(paths) - 1, min(max_clips, len(paths))).round().astype(int))
        readable, skipped = _readable([paths[i] for i in picks], bundle.feature_config.sample_rate)
        if not readable:
            raise AudioError(paths[0], f"none of the {len(picks)} clips picked from the {len(paths)} given can be "
                                       f"read; first: {skipped[0][0]}: {skipped[0][1]}")
        yield readable, f"{len(paths)} given, {len(readable)} timed", skipped
        return
    with tempfile.TemporaryDirectory(prefix="sertiny-bench-") as tmp:
        yield [_synthetic_clip(Path(tmp), bundle.feature_config.sample_rate)], "synthetic (no clips given)", []


def _readable(paths, sample_rate):
    """Split ``paths`` into the clips that decode and ``(path, reason)`` of those that do not."""
    readable, skipped = [], []
    for path in paths:
        try:
            load_audio(path, sample_rate)
        except AudioError as exc:
            skipped.append((str(path), exc.reason))
        else:
            readable.append(path)
    return readable, skipped


def _synthetic_clip(directory, sample_rate, seconds=3.7):
    """A 3.7 s (RAVDESS mean length) voiced-like tone with noise, as 16-bit WAV."""
    import soundfile as sf

    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    y = 0.2 * np.sin(2 * np.pi * (150 + 20 * np.sin(2 * np.pi * 2 * t)) * t) + 0.01 * rng.standard_normal(t.size)
    path = directory / "synthetic.wav"
    sf.write(path, y.astype(np.float32), sample_rate, subtype="PCM_16")
    return path
