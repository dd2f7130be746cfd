"""``sertiny data``: inspect a speech-emotion corpus before training on it."""

import click

from ._options import dataset_option


@click.group("data")
def data_group():
    """Inspect speech-emotion corpora."""


@data_group.command("summary")
@click.argument("root", metavar="DIR", type=click.Path(exists=True))
@dataset_option("kind")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON on stdout.")
@click.option("--strict", is_flag=True, help="Exit with an error if any file cannot be used.")
@click.option("--no-check-audio", is_flag=True, help="Read headers only; skip decoding every file (faster).")
@click.option("--jobs", type=click.IntRange(min=1), default=None, help="Reader threads [default: up to 4].")
def summary(root, kind, as_json, strict, no_check_audio, jobs):
    """Count clips per class and speaker, and list files that cannot be used.

    DIR is the corpus folder (or a CSV manifest with path,label,speaker columns).
    """
    import json
    import sys

    from ..data import format_summary, load_dataset, summarize

    dataset = load_dataset(root, kind=kind)
    result = summarize(dataset, check_audio=not no_check_audio, n_jobs=jobs, progress=sys.stderr.isatty())
    click.echo(json.dumps(result.to_dict(), indent=2) if as_json else format_summary(result).rstrip("\n"))
    if strict:
        result.raise_if_problems()


COMMANDS = [data_group]
