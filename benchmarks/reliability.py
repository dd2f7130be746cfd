#!/usr/bin/env python
"""Bad input and faults: run each case of issue 15 through the real CLI and record what it gets.

Each case builds its input in a scratch directory, runs ``sertiny ...`` in a fresh process
(as a user would) and records the exit status and the line that tells the user what
happened (the ``Error:``/``Warning:`` line, a label, or a measurement). The "before" column
quotes what issue 15 observed; "now" is measured by this run. Writes results/reliability.md.

    python benchmarks/reliability.py                  # about five minutes on 2 busy cores
    python benchmarks/reliability.py --only infer     # cases whose name contains "infer" (no report)

Needs the shared data beside the repository (RAVDESS clips and the paper's feature file),
the [train] extra for the training cases, and root for the read-only and full output
directories (small tmpfs mounts; those rows say "not run" otherwise). The Pi install case
is the emulated-Pi CI job (tests/test_emulated_pi.py), not re-run here.
"""

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from bundle_helpers import edited_copy  # noqa: E402  (the tests' edited bundles, the same cases)
from sertiny.machine import command_line, machine_info, machine_lines  # noqa: E402
from sertiny.runtime.bundle import DEFAULT_BUNDLE  # noqa: E402

SHARED = REPO.parent / "shared" / "data"
OUT = REPO / "results" / "reliability.md"
SR = 16000
# Two folds over four speakers: two test, one validation, one training speaker each.
TINY_TRAIN = ["--model", "lstm_sa_h8", "--epochs", "1", "--folds", "kfold", "--n-folds", "2", "--val-speakers", "1",
              "--quiet"]


def voice(seconds, sr=SR, seed=0):
    """Voiced-like audio: a tone with vibrato and a little noise."""
    t = np.arange(int(seconds * sr)) / sr
    y = 0.3 * np.sin(2 * np.pi * np.cumsum(140 + 15 * np.sin(2 * np.pi * 3 * t)) / sr)
    return (y + 0.01 * np.random.default_rng(seed).standard_normal(t.size)).astype(np.float32)


def sertiny(*args, cwd=None, env=None, timeout=900):
    """Run the CLI in a fresh process; returns (exit status, stdout, stderr, peak RSS MB)."""
    code = ("import resource, sys\nfrom sertiny.cli import main\nsys.argv[0] = 'sertiny'\n"
            "try:\n    main()\nfinally:\n"
            "    print(f'#rss {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f}', file=sys.stderr)")
    proc = subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})}, timeout=timeout)
    rss = re.findall(r"#rss (\d+)", proc.stderr)
    stderr = re.sub(r"#rss \d+\n?", "", proc.stderr)
    return proc.returncode, proc.stdout, stderr, float(rss[-1]) if rss else None


def telling_line(stdout, stderr, *prefixes):
    """The first line starting with one of ``prefixes`` (stderr, then stdout)."""
    for line in (stderr + "\n" + stdout).splitlines():
        if line.startswith(prefixes or ("Error:", "Warning:", "Skipped")):
            return line.strip()
    return ""


class Cases:
    """Every case: a method ``case_<name>`` returning (what the user does, exit status, what they get)."""

    def __init__(self, work):
        self.work = work
        self.clip = self.wav("clip.wav", voice(3))

    def wav(self, name, data, sr=SR, subtype="PCM_16"):
        path = self.work / name
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, data, sr, subtype=subtype)
        return path

    def edited_bundle(self, name, edit, seal):
        return edited_copy(DEFAULT_BUNDLE, self.work / name, edit, seal=seal)

    def infer_case(self, *args):
        rc, out, err, _ = sertiny("infer", *args)
        label = out.strip().splitlines()[0] if out.strip() else ""
        return rc, telling_line(out, err) or label

    # --- audio -------------------------------------------------------------------------------

    def case_truncated_wav_infer(self):
        cut = self.wav("cut.wav", voice(3))
        cut.write_bytes(cut.read_bytes()[: cut.stat().st_size // 2])
        return ("`sertiny infer cut.wav` (data chunk cut to half)", *self.infer_case(cut))

    def case_truncated_wav_data_summary(self):
        corpus = self.work / "corpus"
        for i, label in enumerate(("calm", "calm", "angry")):
            self.wav(f"corpus/{label}/s{i}.wav", voice(2, seed=i))
        path = corpus / "calm" / "s1.wav"
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
        rc, out, err, _ = sertiny("data", "summary", corpus, "--dataset", "folder")
        clips = telling_line(out, err, "Clips")
        problem = next((line.strip() for line in out.splitlines() if "truncated" in line), "")
        return "`sertiny data summary DIR` with one cut WAV", rc, f"{clips}; {problem}"

    def case_unscaled_float_wav(self):
        loud = self.wav("unscaled.wav", voice(3) * 32768, subtype="FLOAT")
        return ("`sertiny infer unscaled.wav` (float WAV of +-32768-scale samples)", *self.infer_case(loud))

    def case_8khz_audio(self):
        narrow = self.wav("phone.wav", voice(3, sr=8000), sr=8000)
        rc, out, err, _ = sertiny("infer", narrow)
        return "`sertiny infer phone.wav` (8 kHz into the 16 kHz front end)", rc, f"{telling_line(out, err)} / {out.strip()}"

    def case_long_clip_memory(self):
        rss = {}
        for minutes in (2, 30):
            path = self.work / f"{minutes}min.wav"
            with sf.SoundFile(path, "w", SR, 1, subtype="PCM_16") as f:
                for second in range(minutes * 60):
                    f.write(voice(1, seed=second))
            rc, out, err, rss[minutes] = sertiny("infer", path)
            if rc:
                return "`sertiny infer` of a 2 and a 30 minute clip", rc, telling_line(out, err)
            path.unlink()
        return ("`sertiny infer` of a 2 and a 30 minute clip (peak RSS)", 0,
                f"peak RSS {rss[2]:.0f} MB (2 min), {rss[30]:.0f} MB (30 min)")

    # --- bundles ---------------------------------------------------------------------------------

    def case_infer_bundle_typo(self):
        return ("`sertiny infer bundles/typo clip.wav`", *self.infer_case(self.work / "bundles" / "typo", self.clip))

    def case_infer_file_inside_bundle(self):
        inside = DEFAULT_BUNDLE / "model_int8_chunk1.tflite"
        return ("`sertiny infer BUNDLE/model_int8_chunk1.tflite clip.wav`", *self.infer_case(inside, self.clip))

    def case_manifest_edited(self):
        def edit(manifest):
            manifest["feature_config"]["hop_length"] = 320
        bundle = self.edited_bundle("edited", edit, seal=False)
        return ("`sertiny infer BUNDLE clip.wav`, hop_length edited in sertiny.json", *self.infer_case(bundle, self.clip))

    def case_manifest_file_outside(self):
        def edit(manifest):
            manifest["variants"]["int8_chunk1"]["file"] = "../model.tflite"
        bundle = self.edited_bundle("escaping", edit, seal=True)
        return ("`sertiny infer BUNDLE clip.wav`, a variant's file `../model.tflite`",
                *self.infer_case(bundle, self.clip))

    def case_manifest_not_utf8(self):
        bundle = self.work / "not_utf8"
        shutil.copytree(DEFAULT_BUNDLE, bundle)
        (bundle / "sertiny.json").write_bytes(b'{"format": "\xff\xfe"}')
        return "`sertiny infer BUNDLE clip.wav`, sertiny.json not UTF-8", *self.infer_case(bundle, self.clip)

    def case_variant_f32_builtin(self):
        rc, out, err, _ = sertiny("infer", self.clip, "--variant", "f32", "--json")
        row = json.loads(out) if rc == 0 else {}
        return ("`sertiny infer clip.wav --variant f32` (built-in bundle: f32_chunk1, int8_chunk1)", rc,
                f"label {row.get('label')} from variant {row.get('variant')}" if row else telling_line(out, err))

    # --- bench -----------------------------------------------------------------------------------

    def case_bench_bad_clip(self):
        clips = self.work / "bench_clips"
        self.wav("bench_clips/a.wav", voice(2))
        (clips / "b.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEbroken")
        rc, out, err, _ = sertiny("bench", "--clips", clips, "--runs", "5", "--warmup", "0", "--threads", "1",
                                  "--no-peers", "--no-cold-start", "--no-tflm")
        return "`sertiny bench --clips DIR` with one unreadable file", rc, telling_line(out, err)

    # --- training --------------------------------------------------------------------------------

    def paper_subset(self, name, actors):
        with np.load(SHARED / "ravdess48k_paper_features.npz") as npz:
            data = {key: npz[key] for key in npz.files}
        keep = np.flatnonzero(np.isin(data["actor"], actors))
        offsets = data["offsets"]
        clips = [data["features"][offsets[i]:offsets[i + 1]] for i in keep]
        path = self.work / f"{name}.npz"
        np.savez(path, features=np.concatenate(clips), offsets=np.concatenate([[0], np.cumsum([len(c) for c in clips])]),
                 names=data["names"][keep], emotion=data["emotion"][keep], actor=data["actor"][keep])
        return path

    def case_train_resume_other_corpus(self):
        a, b = self.paper_subset("actors_1_4", [1, 2, 3, 4]), self.paper_subset("actors_5_8", [5, 6, 7, 8])
        run = self.work / "run_resume"
        rc, out, err, _ = sertiny("train", "--features", a, "--out", run, *TINY_TRAIN)
        if rc:
            return "train on A, then the same command on corpus B", rc, telling_line(out, err)
        rc, out, err, _ = sertiny("train", "--features", b, "--out", run, *TINY_TRAIN)
        return "`sertiny train` on corpus A, then on corpus B with the same --out", rc, telling_line(out, err)

    def case_train_twice_one_out(self):
        a = self.paper_subset("actors_1_4", [1, 2, 3, 4])
        run = self.work / "run_twice"
        code = "from sertiny.cli import main; main()"
        args = ["train", "--features", str(a), "--out", str(run), *TINY_TRAIN]
        first = subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL, env={**os.environ, "PYTHONPATH": str(REPO)})
        deadline = time.time() + 120
        while not (run / ".lock").exists() and time.time() < deadline:
            time.sleep(0.2)
        rc, out, err, _ = sertiny("train", *args[1:])
        first.wait(timeout=900)
        return "two identical `sertiny train` on one --out at once (the second's result)", rc, telling_line(out, err)

    def case_train_sigkill_workers(self):
        import psutil

        npz = self.paper_subset("actors_1_6", [1, 2, 3, 4, 5, 6])
        proc = subprocess.Popen([sys.executable, "-c", "from sertiny.cli import main; main()", "train", "--features",
                                 str(npz), "--model", "lstm_sa_h8", "--epochs", "200", "--folds", "kfold", "--n-folds",
                                 "3", "--jobs", "2", "--quiet", "--out", str(self.work / "run_kill")],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                env={**os.environ, "PYTHONPATH": str(REPO)})
        parent, workers, deadline = psutil.Process(proc.pid), [], time.time() + 180
        while len(workers) < 2 and time.time() < deadline:
            time.sleep(0.5)
            workers = [p for p in parent.children() if "spawn_main" in " ".join(p.cmdline())]
        time.sleep(15)  # let them get to work
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        _, alive = psutil.wait_procs(workers, timeout=20)
        for p in alive:
            p.kill()
        return ("SIGKILL of `sertiny train --jobs 2` while its workers train", -signal.SIGKILL,
                f"{len(workers)} workers; alive 20 s after the kill: {len(alive)}")

    def case_train_out_proc(self):
        npz = self.paper_subset("actors_1_4", [1, 2, 3, 4])
        rc, out, err, _ = sertiny("train", "--features", npz, "--out", "/proc/x", *TINY_TRAIN)
        return "`sertiny train ... --out /proc/x`", rc, telling_line(out, err)

    def case_train_out_read_only(self):
        npz = self.paper_subset("actors_1_4", [1, 2, 3, 4])
        with tmpfs(self.work / "read_only", "ro,size=1m") as mount:
            if mount is None:
                return "`sertiny train ... --out READ_ONLY/run`", None, "not run: needs root to mount a tmpfs"
            rc, out, err, _ = sertiny("train", "--features", npz, "--out", mount / "run", *TINY_TRAIN)
            left = [p.name for p in mount.iterdir()]
        return "`sertiny train ... --out READ_ONLY/run`", rc, f"{telling_line(out, err)} (left: {left or 'nothing'})"

    def case_train_out_full(self):
        npz = self.paper_subset("actors_1_4", [1, 2, 3, 4])
        with tmpfs(self.work / "full", "size=96k") as mount:
            if mount is None:
                return "`sertiny train ... --out FULL/run`", None, "not run: needs root to mount a tmpfs"
            args = ["--model", "res_lstm_sa_h64", *TINY_TRAIN[2:]]
            rc, out, err, _ = sertiny("train", "--features", npz, "--out", mount / "run", *args)
            partial = [p.name for p in mount.rglob("*") if ".tmp" in p.name or p.name.startswith("fold_")]
        return ("`sertiny train ... --out FULL/run` (96 KB file system)", rc,
                f"{telling_line(out, err)} (half-written files left: {len(partial)})")

    def case_train_csv_manifest(self):
        actors = sorted(SHARED.glob("ravdess16k/Actor_0[1-4]"))
        lines = ["path,label,speaker"]
        for actor in actors:
            for clip in sorted(actor.glob("03-01-0[15]-*.flac")):
                lines.append(f"{clip},{'neutral' if clip.name[6:8] == '01' else 'angry'},{actor.name}")
        manifest = self.work / "manifest.csv"
        manifest.write_text("\n".join(lines) + "\n")
        rc, out, err, _ = sertiny("train", manifest, "--out", self.work / "run_csv", *TINY_TRAIN,
                                  env={"SERTINY_CACHE": str(self.work / "cache")})
        summary = next((line for line in out.splitlines() if "UAR" in line), "")
        return "`sertiny train path/manifest.csv`", rc, telling_line(out, err) or summary.strip()


@contextlib.contextmanager
def tmpfs(path, options):
    """A small tmpfs at ``path``, or None where mounting is not allowed."""
    path.mkdir()
    mounted = os.geteuid() == 0 and subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
                                                   capture_output=True).returncode == 0
    try:
        yield path if mounted else None
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(path)], check=False)


BEFORE = {  # what issue 15 observed
    "truncated_wav_infer": "classified, exit 0",
    "truncated_wav_data_summary": "counted usable",
    "unscaled_float_wav": "a confident label, exit 0",
    "8khz_audio": "upsampled silently",
    "long_clip_memory": "~1 GB peak for 30 min (~33 MB per minute)",
    "infer_bundle_typo": "'unreadable audio', then classified with the built-in model",
    "infer_file_inside_bundle": "'unreadable audio', then classified with the built-in model",
    "manifest_edited": "loaded; other features, wrong answers",
    "manifest_file_outside": "loaded a model outside the bundle",
    "manifest_not_utf8": "traceback (UnicodeDecodeError)",
    "variant_f32_builtin": "Error: no variant 'f32'",
    "bench_bad_clip": "stopped at the first bad file",
    "train_resume_other_corpus": "pooled both corpora's predictions, kept the old run.json",
    "train_twice_one_out": "both trained every fold",
    "train_sigkill_workers": "workers alive (2.4 GB RSS) for half an hour",
    "train_out_proc": "traceback",
    "train_out_read_only": "traceback",
    "train_out_full": "traceback",
    "train_csv_manifest": "refused: 'is a file'",
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help="run only the cases whose name contains this (prints them; "
                                                   "the report is written only by a full run)")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    info = machine_info()
    rows = []
    with tempfile.TemporaryDirectory(prefix="sertiny-reliability-") as tmp:
        cases = Cases(Path(tmp))
        for name in BEFORE:
            if args.only not in name:
                continue
            print(f"{name} ...", file=sys.stderr, flush=True)
            started = time.time()
            action, rc, now = getattr(cases, f"case_{name}")()
            now = now.replace(tmp, "TMP").replace(str(DEFAULT_BUNDLE), "BUILTIN").replace(str(REPO), ".")
            rows.append((name, action, BEFORE[name], rc, now))
            print(f"  exit {rc}: {now} ({time.time() - started:.0f} s)", file=sys.stderr)
    if not args.only:
        write_report(args.out, rows, info)


def write_report(path, rows, info):
    lines = [
        "# Bad input and faults: what each now gets",
        "",
        "Every case of issue 15, run through the real CLI in a fresh process by "
        "`python benchmarks/reliability.py`; *before* quotes the issue, *now* is this run's exit status and "
        "the line the user reads (paths shortened: TMP is the scratch directory, BUILTIN the bundle shipped in "
        "the package). Each case is also a test (`tests/test_reliability.py`).",
        "",
        f"- Command: `{command_line()}`",
        *machine_lines(info),
        "",
        "| case | what the user does | before | exit | now |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, action, before, rc, now in rows:
        lines.append(f"| {name} | {action} | {before} | {'-' if rc is None else rc} | {now.replace('|', '/')} |")
    lines += [
        "",
        "The Raspberry Pi install (`pip install \"sertiny[pi]\"` on arm64 Python 3.11 paired tflite-runtime 2.14 "
        "with numpy 2, and every `sertiny infer` failed to import the interpreter) is checked by the emulated-Pi "
        "CI job, not here: `tests/test_emulated_pi.py` installs `sertiny[pi]` as pip resolves it on the emulated "
        "Pi's Python, runs the Pi README's commands as written (they end with labels) and `check.sh`, which "
        "`firmware_bench/pi/setup.sh` now ends with. See `firmware_bench/emulated_pi/README.md`.",
    ]
    from sertiny._io import atomic_write_text

    atomic_write_text(path, "\n".join(lines) + "\n")
    print(f"wrote {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
