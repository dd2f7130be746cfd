#!/usr/bin/env python
"""Export a run in both profiles and report size, ops, arena, UAR and agreement.

For every exported model: file size, op count, TFLite Micro arena (bisection with the
tflite-micro interpreter), float and integer UAR on every fold's held-out speakers
(pooled and per fold), top-1 agreement with float, and the TFLite Micro vs LiteRT check.
Optional studies measure the design choices (schedule, per-channel vs per-tensor weights,
stripping names, chunk size) and the calibration choices (how many clips, which clips).

Prints markdown and, with --write, puts it (with the command, date, ``uname -m`` and CPU
model) into results/export.md, one section per study so reruns keep the others.

    python export/export_report.py runs/h64 --chunk 1 --chunk 10 --int16x8 --design --calibration --write
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sertiny._io import update_section
from sertiny.export import ExportConfig
from sertiny.machine import command_line, machine_info

from int8_simulation import simulate  # export/int8_simulation.py, beside this file

RESULTS = REPO / "results" / "export.md"
TITLE = "Export: size, ops, arena and int8 parity"


def main(argv=None):
    args = parse_args(argv)
    info = machine_info()
    header = [
        f"Command: `{command_line()}`",
        "",
        (f"- Date: {info['date']}; `uname -m`: {info['machine']}; CPU: {info['cpu_model']} ({info['cpus']} CPUs, shared; "
        f"load {info['load']})"),
        f"- Run: `{args.run}`",
        "",
    ]
    sections = {}
    started = time.time()
    sections["export-models"] = header + models_section(args)
    if args.design:
        sections["export-design"] = header + design_section(args)
    if args.calibration:
        sections["export-calibration"] = header + calibration_section(args)
    if args.diagnose:
        sections["export-diagnosis"] = header + diagnosis_section(args)
    for key, lines in sections.items():
        text = "\n".join(lines)
        print(text + "\n")
        if args.write:
            update_section(RESULTS, key, text, title=TITLE)
    print(f"[{time.time() - started:.0f} s]", file=sys.stderr)


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path, help="training run directory")
    parser.add_argument("--out-dir", type=Path, help="where to keep the bundle (default: a temporary directory)")
    parser.add_argument("--chunk", type=int, action="append", default=[], help="chunked profile K (repeatable)")
    parser.add_argument("--int16x8", action="store_true", help="also int16-activation variants")
    parser.add_argument("--calib-clips", type=int, default=ExportConfig().calib_clips)
    parser.add_argument("--range-percentile", type=float, default=ExportConfig().range_percentile,
                        help="int8 ranges: percentile of per-clip extremes (100 = min/max)")
    parser.add_argument("--design", action="store_true", help="measure schedule / per-channel / stripping / K")
    parser.add_argument("--calibration", action="store_true", help="measure number and choice of calibration clips")
    parser.add_argument("--diagnose", action="store_true", help="simulate which int8 tensors cost agreement")
    parser.add_argument("--keras", action="store_true", help="check the float graph against the trained Keras model")
    parser.add_argument("--write", action="store_true", help=f"write the sections into {RESULTS.relative_to(REPO)}")
    return parser.parse_args(argv)


def log(message):
    print(f"  {message}", file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- the bundle


def models_section(args):
    from sertiny.export import export_run

    config = ExportConfig(chunks=tuple(args.chunk), int16x8=args.int16x8, calib_clips=args.calib_clips,
                          range_percentile=args.range_percentile)
    out = args.out_dir or Path(tempfile.mkdtemp(prefix="sertiny_export_")) / "bundle"
    started = time.time()
    manifest = export_run(args.run, out, config, overwrite=True, progress=log)
    seconds = time.time() - started
    metrics = manifest["metrics"]
    pooled = metrics["variants"]
    lines = [
        "## Exported models",
        "",
        (f"`sertiny export` of the run's `{manifest['weights']}` weights ({manifest['weights_reason']}), "
        f"T = {manifest['seq_len']}, in {seconds:.0f} s including parity on every fold. UAR and agreement: "
        f"{metrics['evaluated_on']}; agreement = top-1 agreement with the float32 full-unroll model."),
        "",
        "| variant | profile | bytes | ops | TFLM arena | UAR | drop vs f32 (pp) | agreement | TFLM vs LiteRT |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for name, v in manifest["variants"].items():
        p = pooled.get(name, {})
        lines.append(
            f"| {name} | {_profile(v)} | {v['bytes']:,} | {v['ops']:,} | {_num(v.get('arena_bytes'))} | "
            f"{_f(p.get('uar'))} | {_f(p.get('uar_drop_pp'), '{:+.2f}')} | {_f(p.get('agreement'), '{:.2%}')} | "
            f"{_tflm(v.get('tflm'))} |"
        )
    lines += ["", "Float chunked models (calibration and parity only, not shipped) against the float full unroll:", ""]
    for name, p in pooled.items():
        if name.startswith("f32_chunk"):
            lines.append(f"- {name}: max |Δp| = {p['max_abs_diff']:.2e}, agreement {p['agreement']:.2%}")
    lines += ["", "Per fold (held-out speakers of each fold's model):", "", _per_fold_table(metrics["per_fold"])]
    if args.keras:
        lines += ["", keras_check(args.run, out, manifest)]
    lines += ["", f"Bundle written to `{out}`; op types: " + "; ".join(
        f"{n}: {', '.join(f'{k} {c}' for k, c in v['op_types'].items())}" for n, v in manifest["variants"].items()
        if n in ("int8", "int8_chunk1"))]
    return lines


def _profile(v):
    return v["profile"] + (f" K={v['chunk']}" if v.get("chunk") else "") + f" ({v['quantization']})"


def _tflm(report):
    if not report or "max_op_lsb_vs_litert" not in report:  # float variants: the arena only (or its error)
        return (report or {}).get("error", "n/a")
    text = f"op ≤ {report['max_op_lsb_vs_litert']} LSB; end to end top-1 {report['end_to_end_top1_agreement']:.0%}"
    return text + f" of {report['clips_compared']} clips, max |Δp| {report['end_to_end_max_abs_prob_diff']:.3f}"


def _per_fold_table(per_fold):
    names = [k for k in per_fold[0] if k not in ("fold", "n")]
    lines = ["| fold | n | " + " | ".join(f"{n} UAR" for n in names) + " | " +
             " | ".join(f"{n} agr." for n in names if n != "f32") + " |",
             "|---" * (2 + 2 * len(names) - 1) + "|"]
    for row in per_fold:
        lines.append(f"| {row['fold']} | {row['n']} | " + " | ".join(f"{row[n]['uar']:.4f}" for n in names) + " | " +
                     " | ".join(f"{row[n]['agreement']:.2%}" for n in names if n != "f32") + " |")
    return "\n".join(lines)


def keras_check(run_dir, bundle_dir, manifest):
    """Max |p| difference between the bundle's float model and the trained Keras model.

    Keras runs in a child process: training uses Keras on JAX, and Keras fixes its backend
    at first import, which TensorFlow's converter has already done in this process.
    """
    import json
    import os
    import subprocess

    from sertiny.export.run import fold_data, load_run, load_table, load_weight_set
    from sertiny.export.variants import predict_full
    from sertiny.features.frames import fit_to_length
    from sertiny.runtime.tflite import load_interpreter

    run = load_run(run_dir)
    weight_set = load_weight_set(run, manifest["weights"])
    clips = fold_data(run, load_table(run), weight_set, None).train_clips[:64]
    with tempfile.TemporaryDirectory() as tmp:
        np.save(Path(tmp) / "x.npy", np.stack([fit_to_length(c, run.seq_len) for c in clips]))
        child = (
            "import sys, json, numpy as np\n"
            "from sertiny.models import ModelConfig, create_model\n"
            "from sertiny.models.weights import load_weights, set_weights\n"
            "model = create_model(ModelConfig.from_dict(json.loads(sys.argv[1])))\n"
            "set_weights(model, load_weights(sys.argv[2]))\n"
            "np.save(sys.argv[4], np.asarray(model.predict(np.load(sys.argv[3]), verbose=0)))\n"
        )
        subprocess.run([sys.executable, "-c", child, json.dumps(run.model_config.to_dict()),
                        str(run.weights_dir(manifest["weights"]) / "weights.npz"), str(Path(tmp) / "x.npy"),
                        str(Path(tmp) / "p.npy")], check=True, env={**os.environ, "KERAS_BACKEND": "jax"},
                       cwd=REPO, capture_output=True)
        keras_probs = np.load(Path(tmp) / "p.npy")
    lite = predict_full(load_interpreter(bundle_dir / "model_f32.tflite"), clips, run.seq_len)
    return (f"Float32 TFLite model vs the trained Keras model (JAX backend) on {len(clips)} clips: "
            f"max |Δp| = {np.abs(lite - keras_probs).max():.2e}.")


# ----------------------------------------------------------------------------- design study


DESIGNS = (
    # name, builder kwargs, per_channel, compact
    ("sequential, per-channel, names kept (naive)", {"schedule": "sequential"}, True, False),
    ("sequential, per-tensor, stripped", {"schedule": "sequential"}, False, True),
    ("wavefront, per-channel, stripped", {"schedule": "wavefront"}, True, True),
    ("wavefront, per-tensor, names kept", {"schedule": "wavefront"}, False, False),
    ("wavefront, per-tensor, stripped (default)", {"schedule": "wavefront"}, False, True),
)


def design_section(args):
    """Size, ops and TFLite Micro arena of the shipped weights' int8 model under each design."""
    from sertiny.export import calibration, tflm
    from sertiny.export.convert import convert, io_details
    from sertiny.export.flatbuffer import compact, describe
    from sertiny.export.graph import chunk_function, fold_weights, full_unroll_function
    from sertiny.export.run import (
        choose_weights,
        fold_data,
        load_run,
        load_table,
        load_weight_set,
    )
    from sertiny.export.variants import BuiltVariant, chunked_runner
    from sertiny.runtime.variant import Variant

    run = load_run(args.run)
    name, _ = choose_weights(run)
    weight_set = load_weight_set(run, name)
    data = fold_data(run, load_table(run), weight_set, None)
    fw = fold_weights(weight_set.weights, run.model_config)
    calib = [data.train_clips[i] for i in calibration.pick_clips(data.train_labels, args.calib_clips)]
    full_samples = calibration.full_samples(calib, run.seq_len)
    lines = [
        "## Design choices (int8, shipped weights)",
        "",
        (f"`{name}` weights, T = {run.seq_len}; int8 with int8 input/output, calibrated on {len(calib)} training clips. "
        "Arena: smallest tensor arena with which the tflite-micro interpreter allocates and invokes (bisection)."),
        "",
        "| model | bytes | ops | tensors | TFLM arena |",
        "|---|---:|---:|---:|---:|",
    ]
    for label, kwargs, per_channel, strip in DESIGNS:
        log(f"design: {label}")
        function = full_unroll_function(fw, run.seq_len, **kwargs)
        raw = convert(function, "int8", representative=full_samples, per_channel=per_channel)
        model = compact(raw) if strip else raw
        lines.append(_design_row(label, model, io_details(raw, function), describe, tflm))
    for k in sorted(set(args.chunk) | {1, 10}):
        log(f"design: chunked K={k}")
        function = chunk_function(fw, k)
        raw_f = convert(function)
        meta = {"profile": "chunked", "chunk": k, "seq_len": run.seq_len, "padding": "zeros", "head": fw.head_dict(),
                **io_details(raw_f, function)}
        float_chunk = BuiltVariant(Variant.chunked("f32", k), raw_f, meta)
        samples, _ = calibration.chunk_samples(chunked_runner(float_chunk), calib, 4000)
        for per_channel in (False, True):
            raw = convert(function, "int8", representative=samples, per_channel=per_channel)
            label = f"chunked K={k}, {'per-channel' if per_channel else 'per-tensor'}, stripped"
            lines.append(_design_row(label, compact(raw), io_details(raw, function), describe, tflm))
    return lines


def _design_row(label, model, io, describe, tflm):
    from tensorflow.lite.tools import flatbuffer_utils as fb

    d = describe(model)
    tensors = sum(len(sg.tensors) for sg in fb.convert_bytearray_to_object(bytearray(model)).subgraphs)
    return f"| {label} | {d['bytes']:,} | {d['ops']:,} | {tensors:,} | {tflm.arena_size(model, io):,} |"


# ----------------------------------------------------------------------------- calibration study


CALIBRATIONS = (
    # clips, strategy, seed, range percentile (100 = the converter's min/max)
    (10, "stratified", 0, 100), (50, "stratified", 0, 100), (200, "stratified", 0, 100), (None, "stratified", 0, 100),
    (50, "random", 0, 100), (50, "random", 1, 100), (50, "stratified", 1, 100),
    (200, "stratified", 0, 99), (200, "stratified", 0, 90), (200, "stratified", 0, 75), (200, "stratified", 0, 50),
    (50, "stratified", 1, 90),
)


def calibration_section(args):
    """Pooled parity of the fold models for each calibration choice (number and choice of clips)."""
    from sertiny.export.parity import measure
    from sertiny.export.run import load_run, load_table

    run = load_run(args.run)
    table = load_table(run)
    chunks = (1,) if 1 in args.chunk or not args.chunk else (min(args.chunk),)
    lines = [
        "## Calibration choices",
        "",
        (f"Every fold model exported with each setting; pooled over the held-out speakers of all folds. Chunked: K = {chunks[0]}, "
        "its (frames, state) calibration samples capped at 4000, drawn from the float model's run over the same clips."),
        "",
        "| clips | strategy | seed | ranges | int8 UAR | int8 agreement | int8 chunked UAR | int8 chunked agreement |",
        "|---:|---|---:|---|---:|---:|---:|---:|",
    ]
    float_uar = None
    for n, strategy, seed, percentile in CALIBRATIONS:
        log(f"calibration: {n} clips, {strategy}, seed {seed}, range percentile {percentile}")
        config = ExportConfig(chunks=chunks, calib_clips=n, calib_strategy=strategy, calib_seed=seed,
                              range_percentile=percentile, tflm=False)
        pooled = measure(run, table, config, progress=None)["pooled"]
        float_uar = pooled["f32"]["uar"]
        full, chunked = pooled["int8"], pooled[f"int8_chunk{chunks[0]}"]
        ranges = "min/max" if percentile >= 100 else f"p{percentile:g} of clip extremes"
        lines.append(f"| {'all' if n is None else n} | {strategy} | {seed} | {ranges} | {full['uar']:.4f} | "
                     f"{full['agreement']:.2%} | {chunked['uar']:.4f} | {chunked['agreement']:.2%} |")
    lines += ["", f"Float32 UAR of the same fold models: {float_uar:.4f}."]
    return lines


# ----------------------------------------------------------------------------- int8 diagnosis


TENSOR_GROUPS = {
    "cell state c (and f*c)": ("c", "fc"),
    "gate pre-activations z": ("z",),
    "input and recurrent projections": ("proj", "rec"),
    "i*g and tanh(c)": ("ig", "tc"),
    "hidden state h": ("h",),
    "LSTM inputs (frames, residual sum)": ("x", "x2"),
}


def diagnosis_section(args):
    """Fake-quantise groups of tensors of the per-frame recurrence in NumPy (int8, or int16
    for comparison; ranges = min/max over the calibration clips, as the converter sets them)
    and measure top-1 agreement with float on the held-out speakers of every finished fold."""
    from sertiny.export import calibration
    from sertiny.export.graph import fold_weights
    from sertiny.export.run import fold_data, load_run, load_table, load_weight_set
    from sertiny.features.frames import fit_to_length

    run = load_run(args.run)
    table = load_table(run)
    settings = [(label, set(g), 8) for label, g in TENSOR_GROUPS.items()]
    settings += [("everything (int8)", {"*"}, 8), ("everything except c, f*c (int8)", {"*", "-c", "-fc"}, 8),
                 ("everything (int16)", {"*"}, 16)]
    agree = {label: [] for label, _, _ in settings}
    available = set(run.available_weights())
    for fold in run.folds:
        name = f"seed{run.seeds[0]}_fold{fold.index}"
        if name not in available:
            continue
        log(f"diagnosis: {name}")
        weight_set = load_weight_set(run, name)
        data = fold_data(run, table, weight_set, fold)
        fw = fold_weights(weight_set.weights, run.model_config)
        stack = lambda cs: np.stack([fit_to_length(c, run.seq_len) for c in cs]).astype(np.float64)
        calib = stack([data.train_clips[i] for i in calibration.pick_clips(data.train_labels, args.calib_clips)])
        ranges = {}
        simulate(fw, calib, record=ranges)
        test = stack(data.test_clips)
        reference = simulate(fw, test)
        for label, groups, bits in settings:
            agree[label].append(simulate(fw, test, groups, ranges, bits) == reference)
    lines = [
        "## Where int8 loses agreement (simulation)",
        "",
        ("NumPy simulation of the per-frame recurrence with chosen tensors rounded to int8 (or int16) on ranges taken, "
         "like the converter's, from the min/max over the calibration clips; every other tensor stays float. "
         "Agreement = top-1 agreement with the float model on the held-out speakers of the finished folds."),
        "",
        "| tensors quantised | agreement |",
        "|---|---:|",
    ]
    lines += [f"| {label} | {np.concatenate(a).mean():.2%} |" for label, a in agree.items()]
    return lines


def _f(value, pattern="{:.4f}"):
    return "" if value is None else pattern.format(value)


def _num(value):
    return "" if value is None else f"{value:,}"


if __name__ == "__main__":
    main()
