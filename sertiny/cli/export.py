"""``sertiny export``: a training run -> a device bundle (TFLite models, C arrays, card)."""

import click

from ..export.calibration import STRATEGIES
from ..export.graph import SCHEDULES


def _chunk_list(ctx, param, value):
    chunks = []
    for item in value:
        for part in str(item).split(","):
            if part.strip():
                try:
                    k = int(part)
                except ValueError:
                    raise click.BadParameter(f"{part!r} is not a whole number of frames") from None
                if k < 1:
                    raise click.BadParameter("chunk sizes must be at least 1 frame")
                chunks.append(k)
    return tuple(chunks)


def _clips(ctx, param, value):
    if value == "all":
        return None
    try:
        return int(value)
    except ValueError:
        raise click.BadParameter("give a number of clips or 'all'") from None


@click.command("export")
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Bundle directory to write.")
@click.option("--int8/--no-int8", default=True, show_default=True,
              help="Full-integer model: int8 weights, activations, input and output.")
@click.option("--int16x8", is_flag=True,
              help="Also int16-activation / int8-weight models: ~99 % label agreement with float where int8 "
                   "gives 91-95 %, about 5 % more flash, same arena; the bundle then runs them by default.")
@click.option("--float16", is_flag=True, help="Also a float16-weight model.")
@click.option("--dynamic", is_flag=True, help="Also a dynamic-range model (int8 weights, float activations).")
@click.option("--chunk", "chunks", multiple=True, callback=_chunk_list, metavar="K",
              help="Also the chunked/streaming profile with K frames per invoke (repeat or comma-separate; "
                   "K=1 is per-frame streaming for microcontrollers).")
@click.option("--full/--no-full", default=True, show_default=True,
              help="Ship the full-unroll profile (one invoke per clip). --no-full with --chunk K ships only the "
                   "chunked models, float and int8: the smallest bundle.")
@click.option("--c-arrays/--no-c-arrays", default=True, show_default=True,
              help="Write .h/.cc C arrays of the integer models for firmware.")
@click.option("--weights", default="auto", show_default=True,
              help="Model to ship: auto (deploy if the run has it, else the best fold), deploy, or seed<S>_fold<K>.")
@click.option("--schedule", type=click.Choice(SCHEDULES), default="wavefront", show_default=True,
              help="Full-unroll recurrence: wavefront fuses the two LSTMs' steps, or a BiLSTM's two "
                   "directions (half the ops).")
@click.option("--per-channel", is_flag=True, help="Per-channel int8 weight scales (TFLite Micro needs more arena).")
@click.option("--calib-clips", default="200", callback=_clips, show_default=True,
              help="Training clips to calibrate int8 ranges on, or 'all'.")
@click.option("--calib-strategy", type=click.Choice(STRATEGIES), default="stratified", show_default=True,
              help="How calibration clips are drawn.")
@click.option("--calib-seed", default=0, show_default=True, type=click.IntRange(min=0), help="Which clips are drawn.")
@click.option("--range-percentile", default=90.0, show_default=True, type=click.FloatRange(50, 100),
              help="int8 activation ranges: this percentile of the calibration clips' own extremes "
                   "(100 = the converter's min/max over all clips).")
@click.option("--cell-range", type=click.FloatRange(min=0.5), default=None,
              help="int8: cap the LSTM cell state's range at +-this (finer int8 steps where the recurrence "
                   "accumulates rounding) [default: calibrated].")
@click.option("--no-parity", is_flag=True, help="Skip measuring float/int8 UAR on every fold's held-out speakers (faster).")
@click.option("--no-tflm", is_flag=True, help="Skip the TFLite Micro arena bisection and op check.")
@click.option("--overwrite", is_flag=True, help="Replace an existing bundle at --out.")
@click.option("--quiet", is_flag=True, help="No progress messages.")
def export_command(run_dir, out_dir, chunks, calib_clips, no_parity, no_tflm, overwrite, quiet, **options):
    """Export a trained run as a device bundle.

    Rebuilds the model as an unrolled fixed-length graph from the run's weights, converts
    it with the TFLite converter and writes OUT/: model_f32.tflite, model_int8.tflite
    (+ .h/.cc C arrays for TensorFlow Lite Micro with the arena size), any chunked
    variants, sertiny.json (labels, front end, normalisation, T, quantisation, UAR) and
    MODEL_CARD.md.

    \b
    Examples:
      sertiny export runs/h64 --out bundles/h64                 Pi: full unroll, f32 + int8
      sertiny export runs/h64 --out bundles/h64 --chunk 1       + per-frame streaming model (MCU)
      sertiny export runs/h64 --out bundles/tiny --chunk 1 --no-full --no-c-arrays   smallest bundle
    """
    from ..export import ExportConfig, export_run

    config = ExportConfig(
        chunks=chunks,
        calib_clips=calib_clips,
        parity=not no_parity,
        tflm=not no_tflm,
        **options,
    )
    progress = None if quiet else (lambda message: click.echo(f"  {message}", err=True))
    manifest = export_run(run_dir, out_dir, config, overwrite=overwrite, progress=progress)
    click.echo(format_summary(out_dir, manifest))


def format_summary(out_dir, manifest):
    """One line per variant: size, ops, arena, UAR / agreement."""
    lines = [f"Bundle {out_dir} (weights: {manifest['weights']}, T = {manifest['seq_len']})"]
    for name, v in manifest["variants"].items():
        parts = [f"{v['bytes']:>9,} B", f"{v['ops']:>5} ops"]
        if v.get("arena_bytes"):
            parts.append(f"arena {v['arena_bytes']:,} B")
        if "uar" in v:
            parts.append(f"UAR {v['uar']:.4f}")
        if "agreement" in v:
            parts.append(f"agreement {v['agreement']:.2%}")
        lines.append(f"  {name:<16} " + ", ".join(parts))
    metrics = manifest.get("metrics") or {}
    if "float_uar" in metrics:
        lines.append(f"  float UAR {metrics['float_uar']:.4f} on {metrics['evaluated_on']}")
    return "\n".join(lines)


COMMANDS = [export_command]
