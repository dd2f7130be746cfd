"""Compare two ``sertiny infer --json`` outputs (host and emulated Pi), clip by clip.

Two modes:

``labels`` (the CI check): the same files and silence verdicts, and the same label for
every clip, except ties: clips whose top two probabilities on the host are within the
tie margin (4 int8 output steps, or 1e-4 for a float variant) may go either way and are
listed. Probabilities are summarised (how many clips are bit-identical, the largest
difference) but not required to be identical: even with one runtime version and its
reference kernels on both machines, numpy's float front end differs in the last bits
between x86_64 and arm64 SIMD code, and an input that lands on an int8 quantisation
boundary moves by one step, which the int8 LSTM carries to the output.

``report``: the same summary, never fails. Used for the default (optimized) kernels of
different builds (LiteRT with XNNPACK on the host, tflite-runtime 2.14 on arm64), which
also round int8 requantisation differently, so a few labels legitimately change.

Standard library only. Exit status 0 when the mode's check passes, 1 otherwise.
"""

import argparse
import json
import sys
from pathlib import Path

INT8_TIE_STEPS = 4
FLOAT_TIE_MARGIN = 1e-4
JSON_ROUNDING = 2e-6  # infer --json prints 6 decimals: each side may be off by 5e-7


def read_jsonl(path):
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def tie_margin(bundle, variant):
    """Top-two margin below which a label is a tie, for ``variant`` of the bundle at ``bundle``."""
    if bundle is None:
        return INT8_TIE_STEPS / 256  # int8 softmax outputs use scale 1/256
    manifest = json.loads((Path(bundle) / "sertiny.json").read_text())
    variants = manifest["variants"]
    meta = variants[variant or ("int8" if "int8" in variants else next(iter(variants)))]
    scale = (meta.get("output") or {}).get("scale")
    return INT8_TIE_STEPS * scale if scale else FLOAT_TIE_MARGIN


def compare(host, emulated, margin):
    """A summary dict; ``ok`` is False if a file, silence verdict or non-tie label differs."""
    problems, ties, identical, max_diff = [], [], 0, 0.0
    if [r["file"] for r in host] != [r["file"] for r in emulated]:
        problems.append("the two runs scored different files (or in a different order)")
    for h, e in zip(host, emulated):
        name = h["file"]
        if "error" in h or "error" in e:
            if ("error" in h) != ("error" in e):
                problems.append(f"{name}: failed on one machine only ({h.get('error') or e.get('error')})")
            continue
        if h["silent"] != e["silent"]:
            problems.append(f"{name}: silence verdict differs (host {h['silent']}, emulated {e['silent']})")
            continue
        diff = max((abs(h["probabilities"][k] - e["probabilities"][k]) for k in h["probabilities"]), default=0.0)
        max_diff = max(max_diff, diff)
        identical += diff == 0.0
        if h["label"] != e["label"]:
            top = sorted(h["probabilities"].values(), reverse=True)
            text = f"{name}: host {h['label']} vs emulated {e['label']} (host top-two margin {top[0] - top[1]:.6f})"
            (ties if top[0] - top[1] <= margin + JSON_ROUNDING else problems).append(text)
    n = min(len(host), len(emulated))
    return {
        "clips": n,
        "same_label": sum(h.get("label") == e.get("label") for h, e in zip(host, emulated)),
        "bit_identical_probabilities": identical,
        "max_probability_difference": round(max_diff, 6),
        "tie_margin": round(margin, 6),
        "ties": ties,
        "problems": problems,
        "ok": not problems and n > 0,
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("host")
    parser.add_argument("emulated")
    parser.add_argument("--bundle", help="bundle directory, to read the int8 output scale")
    parser.add_argument("--variant", default=None)
    parser.add_argument("--mode", choices=("labels", "report"), default="labels")
    parser.add_argument("--title", default="host vs emulated Pi")
    parser.add_argument("--out", help="write the summary as JSON here")
    args = parser.parse_args(argv)
    summary = compare(read_jsonl(args.host), read_jsonl(args.emulated), tie_margin(args.bundle, args.variant))
    summary["mode"] = args.mode
    if args.out:
        Path(args.out).write_text(json.dumps(summary, indent=2) + "\n")
    verdict = "SAME LABELS" if summary["ok"] else "LABELS DIFFER"
    print(f"[emulated-pi] {args.title}: {verdict} - {summary['same_label']}/{summary['clips']} same label, "
          f"{len(summary['ties'])} ties, {summary['bit_identical_probabilities']} clips with bit-identical "
          f"probabilities, largest probability difference {summary['max_probability_difference']}", file=sys.stderr)
    for line in summary["ties"]:
        print(f"[emulated-pi]   tie: {line}", file=sys.stderr)
    for line in summary["problems"][:10]:
        print(f"[emulated-pi]   {line}", file=sys.stderr)
    if len(summary["problems"]) > 10:
        more = len(summary["problems"]) - 10
        print(f"[emulated-pi]   ... {more} more in {args.out or 'the summary'}", file=sys.stderr)
    return 0 if summary["ok"] or args.mode == "report" else 1


if __name__ == "__main__":
    sys.exit(main())
