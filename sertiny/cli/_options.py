"""Options shared by several commands; their choices come from the stage that owns them."""

import click

from ..data.datasets import DATASET_KINDS
from ..data.splits import FOLD_SCHEMES
from ..features import BACKENDS
from ..features.config import list_presets
from ..models.registry import PADDING_MODES
from ..training.config import NORMALIZATIONS

# TrainConfig fields set by protocol_options (None = the config's default).
PROTOCOL_FIELDS = ("epochs", "normalization", "seq_len", "padding", "folds", "n_folds", "n_val_speakers")


def _apply(options, f):
    for option in reversed(options):
        f = option(f)
    return f


def data_dir_argument(required=True):
    """DATA_DIR: a corpus folder, or a CSV manifest file (``path,label[,speaker]``)."""
    return click.argument("data_dir", required=required, type=click.Path(exists=True))


def protocol_options(f):
    """--epochs, --normalization, --seq-len, --padding, --folds, --n-folds, --val-speakers."""
    return _apply([
        click.option("--epochs", type=click.IntRange(min=1), help="Epochs per fold. [default: 100]"),
        click.option("--normalization", type=click.Choice(NORMALIZATIONS),
                     help="z-score stats from each fold's training speakers (default), from all clips (reference "
                          "code), or per speaker first (speaker-adaptive: uses each test speaker's unlabelled "
                          "audio; a measurement, not exportable)."),
        click.option("--seq-len", type=click.IntRange(min=1),
                     help="Fixed frames T. [default: 99th percentile of clip lengths]"),
        click.option("--padding", type=click.Choice(PADDING_MODES), help="How short clips are padded. [default: zeros]"),
        click.option("--folds", type=click.Choice(FOLD_SCHEMES),
                     help="Speaker-independent split. [default: auto = paper folds on full RAVDESS, else kfold]"),
        click.option("--n-folds", type=click.IntRange(min=2), help="Folds for --folds kfold. [default: 5]"),
        click.option("--val-speakers", "n_val_speakers", type=click.IntRange(min=1),
                     help="Validation speakers per fold for kfold / loso. [default: 2]"),
    ], f)


def dataset_option(param="dataset"):
    """--dataset: the corpus layout, passed to the command as ``param``."""
    return click.option("--dataset", param, default="auto", show_default=True, type=click.Choice(DATASET_KINDS),
                        help="Corpus layout; auto recognises RAVDESS and EMO-DB names, label folders and CSV "
                             "manifests.")


preset_option = click.option("--preset", default="edge16k", show_default=True, type=click.Choice(list_presets()),
                             help="Front-end preset for audio input (edge16k_peak: levels held below the running "
                             "peak, so the recording level does not move the frames; edge16k_peak_deltas: the same "
                             "with each value's causal first difference, the built-in model's; "
                             "logmel16k: log-mel frames, for vit_*).")


def data_source_options(f):
    """--dataset, --preset, --backend: how a corpus folder becomes features."""
    return _apply([
        dataset_option(),
        preset_option,
        click.option("--backend", default="numpy", type=click.Choice(list(BACKENDS)), show_default=True,
                     help="Front-end implementation for audio input."),
    ], f)
