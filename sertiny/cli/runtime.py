"""``sertiny infer`` and ``sertiny listen``: the device commands (numpy + a TFLite runtime)."""

import click

from ..data.audio import AUDIO_EXTENSIONS
from ..runtime.classifier import DEFAULT_SILENCE_DB
from ..runtime.tflite import KERNELS, RUNTIMES


def _variant_option(f):
    return click.option("--variant", default=None, metavar="NAME",
                        help="Bundle variant to run, e.g. f32 or int8 [default: int16x8 if present, else int8].")(f)


def _silence_option(f):
    return click.option("--silence-db", type=float, default=DEFAULT_SILENCE_DB, show_default=True,
                        help="Windows whose loudest block is below this level (dBFS) are reported as silence.")(f)


def bundle_option(f):
    """``--bundle DIR``, the same as the command's optional BUNDLE argument (see :func:`pick_bundle`)."""
    return click.option("--bundle", "bundle_option", type=click.Path(exists=True, file_okay=False), default=None,
                        help="Bundle directory, or give it as the first argument "
                             "[default: the bundle shipped with sertiny].")(f)


def pick_bundle(argument, option):
    """The bundle given as BUNDLE or as --bundle (None: the built-in one)."""
    if argument and option and argument != option:
        raise click.UsageError(f"Two bundles given ({argument} and --bundle {option}); give one.")
    return option or argument


def _is_bundle(path):
    from pathlib import Path

    return (Path(path) / "sertiny.json").is_file()


def _meant_as_bundle(path):
    """Whether a first argument names a bundle rather than audio: a bundle, a folder holding
    no audio, a file inside a bundle, or a name without an audio extension that does not
    exist (a mistyped bundle). Such an argument is loaded as the bundle, so a mistake in it
    is an error instead of a silent fall-back to the built-in model."""
    from pathlib import Path

    path = Path(path)
    if path.is_dir():
        return _is_bundle(path) or _holds_no_audio(path)
    if path.exists():
        return _is_bundle(path.parent)
    return path.suffix.lower() not in AUDIO_EXTENSIONS


@click.command("infer")
@click.argument("paths", nargs=-1, required=True, type=click.Path(), metavar="[BUNDLE] AUDIO...")
@bundle_option
@_variant_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per file (JSON Lines).")
@click.option("--threads", type=click.IntRange(min=1), default=None, help="TFLite interpreter threads.")
@_silence_option
@click.option("--top", type=click.IntRange(min=1), default=3, show_default=True,
              help="Classes shown per file in the text output.")
@click.option("--runtime", type=click.Choice(RUNTIMES), default=None,
              help="TFLite runtime to use [default: the lightest installed].")
@click.option("--kernels", type=click.Choice(KERNELS), default="optimized", show_default=True,
              help="reference: TFLite's portable kernels, slower but bit-identical across CPUs (cross-device checks).")
def infer(paths, bundle_option, variant, as_json, threads, silence_db, top, runtime, kernels):
    """Classify audio files with a bundle (the Raspberry Pi path).

    \b
    Examples:
      sertiny infer clip.wav                       the bundle shipped with sertiny
      sertiny infer bundles/h64 clips/ --json      your own bundle, a folder of clips

    AUDIO may be files or folders (searched for .wav/.flac/.ogg). Clips longer than the
    model's T frames are scored in half-overlapping windows whose probabilities are
    averaged; silent windows are skipped, and an all-silent clip is reported as silence.
    A file that cannot be read is reported and the others still run (exit status 1).
    The first argument is the bundle when it is one or is not audio (a folder without
    audio, a file inside a bundle, a missing name without an audio extension): a mistake
    in it is an error, never a silent switch to the built-in model.
    """
    import json
    import sys

    from ..errors import AudioError
    from ..runtime.bundle import Bundle
    from ..runtime.classifier import Classifier

    bundle, audio = bundle_option, list(paths)
    if bundle is None and _meant_as_bundle(audio[0]):
        # Loading it says what is wrong with it (missing, not a bundle, a file inside one).
        bundle, audio = audio[0], audio[1:]
        Bundle.load(bundle)
    if not audio:
        raise click.UsageError(f"{bundle} is a bundle; also give the audio files or folders to classify.")
    clf = Classifier.from_path(bundle, variant, num_threads=threads, silence_db=silence_db, runtime=runtime,
                               kernels=kernels)
    if not as_json:  # the JSON names the variant on every line
        click.echo(_describe(clf))
    failed = 0
    for path in _expand_audio(audio):
        try:
            if path.is_dir():
                raise AudioError(path, f"holds no audio files ({', '.join(AUDIO_EXTENSIONS)})")
            prediction = clf.classify_file(path)
        except AudioError as exc:
            failed += 1
            if as_json:
                click.echo(json.dumps({"file": str(path), "error": exc.reason}))
            click.secho(f"Error: {exc}", err=True, fg="red")
            continue
        for note in prediction.notes:
            click.secho(f"Warning: {path}: {note}", err=True, fg="yellow")
        if as_json:
            click.echo(json.dumps({**prediction.to_dict(), "variant": clf.variant.name}))
        else:
            click.echo(_format_prediction(prediction, top, silence_db))
    if failed:
        sys.exit(1)


def _describe(clf):
    """Which bundle and variant answer, e.g. ``Bundle .../default_bundle (built-in): res_lstm_sa_h64, variant int8_chunk1``."""
    from ..runtime.bundle import DEFAULT_BUNDLE

    path = clf.bundle.path
    where = f"{path} (built-in)" if path.resolve() == DEFAULT_BUNDLE else str(path)
    model = clf.bundle.manifest.get("model") or {}
    name = f"{model['family']}_h{model['hidden']}" if {"family", "hidden"} <= set(model) else "model"
    return f"Bundle {where}: {name}, variant {clf.variant.name}"


def _holds_no_audio(path):
    from pathlib import Path

    path = Path(path)
    return path.is_dir() and not any(f.suffix.lower() in AUDIO_EXTENSIONS for f in path.rglob("*"))


def _expand_audio(paths):
    """Files as given; folders expanded to their audio files, sorted."""
    from pathlib import Path

    for p in map(Path, paths):
        files = sorted(f for f in p.rglob("*") if f.suffix.lower() in AUDIO_EXTENSIONS) if p.is_dir() else []
        yield from files or [p]  # a folder without audio is reported as such


def _format_prediction(p, top, silence_db):
    if p.silent:
        return f"{p.source}  (silence: loudest block {p.level_db:.1f} dBFS < {silence_db:g} dBFS)"
    order = sorted(range(len(p.labels)), key=lambda i: -p.probabilities[i])[:top]
    others = ", ".join(f"{p.labels[i]} {p.probabilities[i]:.2f}" for i in order[1:])
    windows = f"  [{p.windows} windows]" if p.windows > 1 else ""
    return f"{p.source}  {p.label} {p.confidence:.2f}" + (f"  ({others})" if others else "") + windows


@click.command("listen")
@click.argument("bundle", type=click.Path(exists=True, file_okay=False), required=False)
@bundle_option
@_variant_option
@click.option("--device", default=None, help="Input device index or name substring (see --list-devices).")
@click.option("--list-devices", is_flag=True, help="List audio devices and exit.")
@click.option("--samplerate", type=click.IntRange(min=8000), default=None,
              help="Open the device at this rate and resample [default: the front end's rate].")
@click.option("--hop", "hop_seconds", type=click.FloatRange(min=0.05), default=0.5, show_default=True,
              help="Seconds between classifications.")
@click.option("--smoothing", type=click.FloatRange(0.0, 0.99), default=0.6, show_default=True,
              help="Weight of the previous average in the moving average of probabilities.")
@click.option("--threads", type=click.IntRange(min=1), default=None, help="TFLite interpreter threads.")
@_silence_option
def listen(bundle, bundle_option, variant, device, list_devices, samplerate, hop_seconds, smoothing, threads,
           silence_db):
    """Classify the live microphone on one updating line (Ctrl-C stops).

    BUNDLE (or --bundle) defaults to the bundle shipped with sertiny.

    The last T frames of audio are classified every --hop seconds, exactly as 'infer'
    classifies a clip; the label shown is the argmax of a moving average of the windows'
    probabilities. Needs sounddevice and PortAudio (sudo apt-get install libportaudio2).
    """
    from ..runtime.classifier import Classifier
    from ..runtime.stream import import_sounddevice, listen as run_listen

    bundle = pick_bundle(bundle, bundle_option)
    if list_devices:
        devices = import_sounddevice().query_devices()
        click.echo(str(devices) if len(devices) else "No audio devices found (PortAudio sees none).")
        return
    import_sounddevice()  # fail before loading the model if PortAudio is missing
    clf = Classifier.from_path(bundle, variant, num_threads=threads, silence_db=silence_db)
    device = int(device) if device is not None and device.isdigit() else device
    run_listen(clf, device=device, input_rate=samplerate, hop_seconds=hop_seconds, smoothing=smoothing)


COMMANDS = [infer, listen]
