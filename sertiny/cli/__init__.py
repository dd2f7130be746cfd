"""The ``sertiny`` command line: a thin shell over the stage functions.

Each stage's commands live in their own module here and import their (possibly heavy)
implementation inside the command body, so ``sertiny --help`` and the device commands
never import TensorFlow, Keras, JAX, librosa or Optuna.
"""

import sys

import click

from .. import __version__
from ..errors import SertinyError

_COMMAND_MODULES = ("data", "train", "tune", "export", "runtime", "bench", "quickstart")


class _SertinyGroup(click.Group):
    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except SertinyError as exc:
            click.secho(f"Error: {exc}", err=True, fg="red")
            sys.exit(2)
        except OSError as exc:  # the file system said no (e.g. --out /proc/x): name the path, no traceback
            where = f"{exc.filename}: " if exc.filename else ""
            click.secho(f"Error: {where}{exc.strerror or exc}. Check the path and that it can be written there.",
                        err=True, fg="red")
            sys.exit(2)


@click.group(cls=_SertinyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="sertiny")
@click.option("-v", "--verbose", is_flag=True,
              help="Also show the frameworks' own log lines (TensorFlow, absl, TFLite), hidden by default.")
def main(verbose):
    """sertiny: tiny speech-emotion-recognition models, from training to int8 on the edge.

    \b
    Typical flow:
      sertiny data summary DATA_DIR        check a corpus
      sertiny train DATA_DIR --out runs/x  train with the paper's protocol
      sertiny export runs/x --int8 --out bundles/x
      sertiny bench bundles/x              latency, memory, size, arena vs UAR
      sertiny infer bundles/x clip.wav     classify clips (Pi path: numpy + TFLite)
    """
    from .._native_logs import hide_framework_logs

    hide_framework_logs(not verbose)


def _register_commands():
    import importlib

    # A command module that fails to import stops `sertiny` with its own error: a CLI that
    # starts without one of its commands would hide the fault until someone needs it.
    for name in _COMMAND_MODULES:
        for command in importlib.import_module(f"{__name__}.{name}").COMMANDS:
            main.add_command(command)


_register_commands()
