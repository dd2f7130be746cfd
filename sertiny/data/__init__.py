"""sertiny.data: reading audio, loading corpora, speaker-independent folds, corpus reports.

Importing this package pulls in only numpy, soundfile and soxr, so it is safe on a device.

    >>> from sertiny.data import load_dataset, folds_for, fold_indices, summarize
    >>> ds = load_dataset("ravdess16k")                  # auto-detects RAVDESS
    >>> folds = folds_for(ds.name, ds.speakers())        # the paper's 5 folds
    >>> train_idx, val_idx, test_idx = fold_indices(ds.speakers(), folds[0])
"""

from .audio import AUDIO_EXTENSIONS, AudioInfo, audio_info, load_audio
from .datasets import (
    DATASET_KINDS,
    EMODB_LABELS,
    RAVDESS_LABELS,
    Clip,
    Dataset,
    detect_kind,
    load_csv,
    load_dataset,
    load_emodb,
    load_folder,
    load_ravdess,
    parse_emodb_name,
    parse_ravdess_name,
)
from .splits import (
    FOLD_SCHEMES,
    Fold,
    fold_indices,
    folds_for,
    leave_one_speaker_out,
    ravdess_paper_folds,
    speaker_kfold,
)
from .summary import DatasetSummary, format_summary, summarize

__all__ = [
    "AUDIO_EXTENSIONS",
    "AudioInfo",
    "audio_info",
    "load_audio",
    "DATASET_KINDS",
    "EMODB_LABELS",
    "RAVDESS_LABELS",
    "Clip",
    "Dataset",
    "detect_kind",
    "load_dataset",
    "load_ravdess",
    "load_emodb",
    "load_folder",
    "load_csv",
    "parse_ravdess_name",
    "parse_emodb_name",
    "FOLD_SCHEMES",
    "Fold",
    "ravdess_paper_folds",
    "speaker_kfold",
    "leave_one_speaker_out",
    "folds_for",
    "fold_indices",
    "DatasetSummary",
    "summarize",
    "format_summary",
]
