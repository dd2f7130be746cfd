"""Run the Raspberry Pi README's commands, as written, with a given ``sertiny`` on the PATH.

``run.sh --readme`` calls this with the emulated Pi stack's environment. Every ```bash
block of the README is read; each ``sertiny ...`` command runs through ``bash -c`` exactly
as printed (redirections and ``VAR=value`` prefixes included), in a home directory laid out
as the README's: ``clip.wav``, ``clips/happy.wav`` and the other clips in ``clips/``, and
the bundle at ``bundles/NAME``. Commands that cannot run here are listed with the reason:
install and copy steps (run.sh did the install: a venv and ``pip install`` of sertiny[pi]),
``sertiny listen`` (no sound device under emulation) and ``sertiny bench compare`` (a host
step: it merges the Pi's results with a host's).

Fails (exit 1) if a command fails, or if a ``sertiny infer`` prints no label. Writes one
JSON record per command to ``--out``. Standard library only (and soundfile, to write the
README's WAV names when the clips given are FLAC).
"""

import argparse
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

SKIPPED = {
    "sertiny listen": "needs a microphone (no sound device under emulation)",
    "sertiny bench compare": "a host step: it merges the Pi's bench.json with a host's",
}
INSTALL_STEP = "an install or copy step (run.sh installed the stack; the home directory is laid out as after the copies)"


def commands(readme):
    """The README's shell commands in order: continuation lines joined, comments dropped."""
    for block in re.findall(r"```bash\n(.*?)```", readme, flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = re.sub(r"\s+#.*$", "", line).strip()
            if line and not line.startswith("#"):
                yield re.sub(r"\s+", " ", line)


def why_skipped(command):
    words = shlex.split(command)
    while words and re.match(r"^[A-Z_]+=", words[0]):  # VAR=value prefixes
        words.pop(0)
    text = " ".join(words)
    if not text.startswith("sertiny "):
        return INSTALL_STEP
    for prefix, reason in SKIPPED.items():
        if text.startswith(prefix):
            return reason
    return None


def lay_out_home(home, bundle, clips):
    """clip.wav, clips/ (happy.wav and the rest) and bundles/NAME, as the README expects."""
    shutil.rmtree(home, ignore_errors=True)
    (home / "clips").mkdir(parents=True)
    _as_wav(clips[0], home / "clip.wav")
    _as_wav(clips[0], home / "clips" / "happy.wav")
    for clip in clips[1:]:
        shutil.copy(clip, home / "clips" / Path(clip).name)
    shutil.copytree(bundle, home / "bundles" / "NAME")


def _as_wav(source, target):
    """The README names WAV files; other formats are converted (16-bit PCM, same rate)."""
    if Path(source).suffix.lower() == ".wav":
        shutil.copy(source, target)
        return
    import soundfile  # the host has it: sertiny's base install

    data, rate = soundfile.read(source, dtype="int16")
    soundfile.write(target, data, rate, subtype="PCM_16")


def labels_printed(command, stdout, home, labels):
    """The labels a ``sertiny infer`` run gave (from its output, or from its --json file)."""
    redirect = re.search(r">\s*(\S+)", command)
    text = (home / redirect.group(1)).read_text() if redirect else stdout
    if "--json" in command:
        return [json.loads(line).get("label") for line in text.splitlines() if line.strip()]
    return [word for line in text.splitlines() for word in line.split()[1:2] if word in labels]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readme", required=True, type=Path)
    parser.add_argument("--env", required=True, type=Path, help="directory whose bin/ holds the sertiny to run")
    parser.add_argument("--bundle", required=True, type=Path)
    parser.add_argument("--home", required=True, type=Path)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("clips", nargs="+")
    args = parser.parse_args()

    lay_out_home(args.home, args.bundle, args.clips)
    labels = set(json.loads((args.bundle / "sertiny.json").read_text())["labels"])
    env = dict(os.environ, PATH=f"{args.env / 'bin'}{os.pathsep}{os.environ['PATH']}")
    records, failed, last_label = [], 0, None
    for command in commands(args.readme.read_text()):
        reason = why_skipped(command)
        if reason:
            print(f"  skipped  {command}\n           ({reason})", file=sys.stderr)
            records.append({"command": command, "skipped": reason})
            continue
        print(f"  running  {command}", file=sys.stderr, flush=True)
        proc = subprocess.run(["bash", "-c", command], cwd=args.home, env=env, capture_output=True, text=True)
        record = {"command": command, "returncode": proc.returncode, "stdout": proc.stdout[-2000:],
                  "stderr": proc.stderr[-2000:]}
        if proc.returncode == 0 and command.split()[:2] == ["sertiny", "infer"]:
            record["labels"] = labels_printed(command, proc.stdout, args.home, labels)
            if not record["labels"] or not all(record["labels"]):
                record["returncode"] = "no label"
            else:
                last_label = record["labels"][-1]
        if record["returncode"] != 0:
            failed += 1
            print(f"           FAILED ({record['returncode']}):\n{proc.stdout[-1500:]}{proc.stderr[-1500:]}",
                  file=sys.stderr)
        elif record.get("labels"):
            print(f"           -> {', '.join(record['labels'])}", file=sys.stderr)
        records.append(record)
    args.out.write_text(json.dumps(records, indent=2) + "\n")
    ran = sum("returncode" in r for r in records)
    print(f"  {ran} README commands ran ({failed} failed), {len(records) - ran} skipped; last label: {last_label}",
          file=sys.stderr)
    sys.exit(1 if failed or last_label is None else 0)


if __name__ == "__main__":
    main()
