"""``sertiny quickstart``: the whole pipeline with small defaults."""

import click

from ..quickstart import QuickstartConfig
from ._options import data_dir_argument, dataset_option, preset_option

_DEFAULTS = QuickstartConfig()


@click.command("quickstart")
@data_dir_argument()
@click.option("--out", "out_dir", default="quickstart", show_default=True, type=click.Path(file_okay=False),
              help="Where the run, bundle, benchmark and report go.")
@click.option("--model", default=_DEFAULTS.model, show_default=True, help="Model to train.")
@click.option("--epochs", default=_DEFAULTS.epochs, show_default=True, type=click.IntRange(min=1),
              help="Epochs per fold. Fewer than 'sertiny train' and the paper (100) so the whole pipeline takes "
                   "minutes; the UAR is lower for it.")
@click.option("--jobs", default=_DEFAULTS.jobs, show_default=True, type=click.IntRange(min=1),
              help="Folds trained in parallel. 'sertiny train' runs one at a time unless told; the quickstart "
                   "assumes two free cores to finish sooner (use 1 on a machine that is busy or short of memory).")
@dataset_option()
@preset_option
@click.option("--quiet", is_flag=True, help="No progress bars.")
def quickstart_command(data_dir, out_dir, model, epochs, jobs, dataset, preset, quiet):
    """Data summary -> train -> export int8 (full + streaming) -> bench -> infer, in minutes.

    DATA_DIR is a corpus: RAVDESS (16 kHz copy or the original 48 kHz WAVs, Actor_NN/),
    EMO-DB (wav/), one folder per label, or a CSV manifest path,label,speaker.

    \b
    Example:
      sertiny quickstart ../shared/data/ravdess16k --out quickstart
    """
    from ..quickstart import quickstart

    config = QuickstartConfig(model=model, epochs=epochs, jobs=jobs, dataset=dataset, preset=preset)
    quickstart(data_dir, out_dir, config, progress=not quiet, say=click.echo)


COMMANDS = [quickstart_command]
