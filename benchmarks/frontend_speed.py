#!/usr/bin/env python
"""Front-end speed: librosa vs numpy back end on all ravdess16k clips, both presets.

Audio is loaded (and, for the 48 kHz ``paper`` preset, resampled) once before any timing;
only ``extract(y, config, backend=...)`` is timed. Both back ends are warmed up first
(librosa's numba kernels compile or load on first call; the numpy back end builds its
filterbanks), then timed in alternating order over ``--rounds`` rounds, keeping each back
end's fastest round (the least disturbed by other processes on a shared machine).

Each measurement runs twice: with BLAS capped at one thread (how sertiny's feature workers
run, one process per core) and with the BLAS library's default thread count.

Writes the table, command, date and machine into the "speed" section of results/frontend.md.

    python benchmarks/frontend_speed.py
"""

import argparse
import sys
import time
from pathlib import Path

from tqdm import tqdm

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sertiny.features import extract, get_preset  # noqa: E402
from sertiny._io import update_section  # noqa: E402
from sertiny.machine import command_line, machine_info, machine_lines  # noqa: E402
from sertiny.features.cache import limit_blas_threads  # noqa: E402

BACKENDS = ("librosa", "numpy")
WARMUP_CLIPS = 5


def load_audio(path, target_sr):
    """Mono float32 at ``target_sr``: the project's loader, or the same steps if it is absent."""
    try:
        from sertiny.data.audio import load_audio as project_loader
    except ImportError:
        import numpy as np
        import soundfile as sf
        import soxr

        y, sr = sf.read(str(path), dtype="float32", always_2d=True)
        y = y.mean(axis=1)
        return y if sr == target_sr else soxr.resample(y, sr, target_sr, quality="HQ").astype(np.float32)
    return project_loader(path, target_sr)


def time_backend(clips, config, backend):
    """Seconds to extract features of every clip, one after the other."""
    start = time.perf_counter()
    for y in clips:
        extract(y, config, backend=backend)
    return time.perf_counter() - start


def measure(clips, config, rounds):
    """Fastest total time (s) per back end over ``rounds`` alternating-order rounds."""
    for backend in BACKENDS:
        for y in clips[:WARMUP_CLIPS]:
            extract(y, config, backend=backend)
    best = {backend: float("inf") for backend in BACKENDS}
    for round_index in range(rounds):
        order = BACKENDS if round_index % 2 == 0 else BACKENDS[::-1]
        for backend in order:
            best[backend] = min(best[backend], time_backend(clips, config, backend))
    return best


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "ravdess16k")
    parser.add_argument("--rounds", type=int, default=2, help="timed rounds per back end (fastest kept)")
    parser.add_argument("--limit", type=int, default=None, help="time only the first N clips (no report written)")
    parser.add_argument("--report", type=Path, default=REPO / "results" / "frontend.md")
    return parser.parse_args()


def main():
    args = parse_args()
    machine = machine_info()  # before the run, so the load average is the one it started under
    files = sorted(args.data.glob("Actor_*/*.flac"))[: args.limit]
    if not files:
        sys.exit(f"No FLAC files under {args.data}; pass --data pointing at ravdess16k/.")
    rows = []
    for preset in ("edge16k", "paper"):
        config = get_preset(preset)
        clips = [load_audio(f, config.sample_rate) for f in tqdm(files, desc=f"loading for {preset}", unit="clip")]
        audio_seconds = sum(len(y) for y in clips) / config.sample_rate
        for threads in ("1", "default"):
            if threads == "1":
                with limit_blas_threads(1):
                    best = measure(clips, config, args.rounds)
            else:
                best = measure(clips, config, args.rounds)
            rows.append(row(preset, threads, clips, audio_seconds, best))
            print(format_table([rows[-1]]).splitlines()[-1], flush=True)
    table = format_table(rows)
    print(table)
    if args.limit is None:
        write_report(args.report, machine, table, thread_note(rows), args.rounds, len(files))


def row(preset, threads, clips, audio_seconds, best):
    per_clip = {backend: 1e3 * best[backend] / len(clips) for backend in BACKENDS}
    return {
        "preset": preset,
        "BLAS threads": threads,
        "clips": len(clips),
        "librosa ms/clip": f"{per_clip['librosa']:.2f}",
        "numpy ms/clip": f"{per_clip['numpy']:.2f}",
        "speed-up (librosa / numpy)": f"{per_clip['librosa'] / per_clip['numpy']:.1f}x",
        "numpy x real time": f"{audio_seconds / best['numpy']:.0f}",
    }


def format_table(rows):
    columns = list(rows[0])
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(r[c]) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


def thread_note(rows):
    """One measured sentence per preset on what the BLAS default thread count costs."""
    by_key = {(r["preset"], r["BLAS threads"]): r for r in rows}
    notes = []
    for preset in dict.fromkeys(r["preset"] for r in rows):
        one, default = by_key[(preset, "1")], by_key[(preset, "default")]
        ratios = {b: float(default[f"{b} ms/clip"]) / float(one[f"{b} ms/clip"]) for b in BACKENDS}
        notes.append(f"`{preset}`: default / one-thread time = {ratios['librosa']:.1f}x for librosa, "
                     f"{ratios['numpy']:.1f}x for numpy.")
    return " ".join(notes)


def write_report(path, machine, table, note, rounds, n_clips):
    body = "\n".join([
        "## Speed: numpy vs librosa back end",
        "",
        f"Command: `{command_line()}`",
        "",
        *machine_lines(machine),
        "",
        f"Front-end time only (`extract`), all {n_clips} ravdess16k clips, audio loaded and resampled "
        f"beforehand; single process; both back ends warmed up on {WARMUP_CLIPS} clips first; fastest of "
        f"{rounds} alternating rounds. `paper` runs on the clips resampled to 48 kHz. \"numpy x real time\" = "
        "seconds of audio processed per second of compute.",
        "",
        table,
        "",
        f"BLAS threads: {note} librosa's filterbank products go through BLAS and are small (0.5-23 M "
        "multiply-adds per clip), so extra BLAS threads mostly add start/join overhead and, on a busy "
        "machine, waits for a free core. The numpy back end makes no BLAS call (banded mel sums and "
        "`np.einsum` instead), so its two rows differ only by run-to-run noise. sertiny's feature workers "
        "cap BLAS at one thread per process (`sertiny.features.cache.limit_blas_threads`) and get "
        "parallelism from one process per core.",
    ])
    update_section(path, "speed", body, title="Front end: agreement and speed")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
