#!/usr/bin/env python
"""How loud RAVDESS's clips are, against the running-peak level of ``edge16k_peak``.

A front end with ``running_peak_db`` attenuates a clip's frames only once the running peak
of its mean mel-band power has passed ``amin * 10**(running_peak_db / 10)`` (-30 dB for
``edge16k_peak``); until then its floors stay fixed in dBFS and a gain change still moves the
frames. This measures, over every clip of the 16 kHz copy: how many clips reach that level and
how soon, and how many peak above half of full scale (which a +6 dB gain clips).

Writes results/clip_levels.md and .json with the command, date and machine.

    python benchmarks/clip_levels.py [--data ../shared/data] [--preset edge16k_peak]
"""

import argparse
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sertiny._io import atomic_write_json, atomic_write_text  # noqa: E402
from sertiny.data.audio import load_audio  # noqa: E402
from sertiny.features import get_preset  # noqa: E402
from sertiny.features import numpy_frontend as nf  # noqa: E402
from sertiny.machine import command_line, machine_info, machine_lines  # noqa: E402

PERCENTILES = (0, 1, 5, 50, 95, 99, 100)


def clip_levels(y, config):
    """Peak of the frames' mean mel-band power (dB), seconds until it passes the running-peak
    level (None if never), and the largest |sample|."""
    S = nf.power_spectrogram(y, n_fft=config.n_fft, hop_length=config.hop_length, window=config.window,
                             center=config.center, pad_mode=config.pad_mode)
    loudness = nf.mel_spectrogram(S=S, sample_rate=config.sample_rate, n_mels=config.n_mels, fmin=config.fmin,
                                  fmax=config.fmax, htk=config.htk, norm=config.mel_norm).mean(axis=0)
    level = config.amin * 10.0 ** (config.running_peak_db / 10.0)
    above = np.flatnonzero(loudness >= level)
    reached = float(above[0] / config.frames_per_second) if above.size else None
    return float(10 * np.log10(max(float(loudness.max()), 1e-30))), reached, float(np.abs(y).max())


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--preset", default="edge16k_peak", help="a preset with running_peak_db")
    parser.add_argument("--out", type=Path, default=REPO / "results" / "clip_levels.md")
    args = parser.parse_args()
    config = get_preset(args.preset)
    if config.running_peak_db is None:
        sys.exit(f"Error: preset {args.preset!r} has no running_peak_db; pick one that has (edge16k_peak).")
    files = sorted((args.data / "ravdess16k").glob("Actor_*/*.flac"))
    if not files:
        sys.exit(f"Error: no clips under {args.data / 'ravdess16k'}; pass --data pointing at the shared data folder.")
    machine = machine_info()
    rows = [clip_levels(load_audio(path, config.sample_rate), config) for path in tqdm(files, unit="clip")]
    peaks = np.array([r[0] for r in rows])
    reached = np.array([r[1] for r in rows if r[1] is not None])
    samples = np.array([r[2] for r in rows])
    level_db = 10 * np.log10(config.amin) + config.running_peak_db
    result = {
        "command": command_line(), "machine": machine, "preset": args.preset, "clips": len(rows),
        "running_peak_level_db": level_db,
        "peak_mean_mel_power_db_percentiles": dict(zip(map(str, PERCENTILES), np.percentile(peaks, PERCENTILES).tolist())),
        "share_reaching_level": float(reached.size / len(rows)),
        "seconds_to_reach_level_median": float(np.median(reached)),
        "seconds_to_reach_level_p90": float(np.percentile(reached, 90)),
        "clips_peaking_above_half_scale": int((samples > 0.5).sum()),
    }
    lines = ["# Clip levels against the running-peak level", "", f"Command: `{result['command']}`", "",
             *machine_lines(machine), "",
             f"{len(rows)} clips of `ravdess16k`, preset `{args.preset}` (running peak held at {level_db:.0f} dB "
             "mean mel-band power; frames are attenuated, and so gain-invariant, once a clip's running peak "
             "passes it).", "",
             "| peak of the frames' mean mel-band power (dB), percentile | " + " | ".join(map(str, PERCENTILES)) + " |",
             "|---|" + "---|" * len(PERCENTILES),
             "| | " + " | ".join(f"{v:.1f}" for v in result["peak_mean_mel_power_db_percentiles"].values()) + " |", "",
             f"- clips whose running peak reaches {level_db:.0f} dB: {100 * result['share_reaching_level']:.1f} %, "
             f"after {result['seconds_to_reach_level_median']:.2f} s (median; 90th percentile "
             f"{result['seconds_to_reach_level_p90']:.2f} s)",
             f"- clips peaking above half of full scale (a +6 dB gain clips them): "
             f"{result['clips_peaking_above_half_scale']}", ""]
    atomic_write_json(args.out.with_suffix(".json"), result)
    atomic_write_text(args.out, "\n".join(lines))
    print(f"wrote {args.out} and {args.out.with_suffix('.json')}")


if __name__ == "__main__":
    main()
