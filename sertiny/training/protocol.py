"""The paper's evaluation protocol: seeds x speaker-independent folds, pooled out-of-fold UAR.

Everything a run writes goes into its run directory (:class:`~sertiny.training.rundir.RunDir`
holds the layout, writes and reads it).

A multi-task run (``TrainConfig.multitask``) trains auxiliary heads beside the emotion head.
Epoch selection and every emotion number are the emotion head's; the auxiliary heads add
``<task>``/``predicted_<task>`` columns to the predictions, ``aux_test_uar`` to fold.json
and an ``auxiliary`` section (out-of-fold accuracy and UAR) to the metrics.
"""

import dataclasses
import time
from pathlib import Path

import numpy as np

from .._io import clear_directory
from ..errors import ArtifactError, ParameterError
from ..features.table import table_fingerprint
from .augment import waveform_copies
from .config import TrainConfig
from .inputs import choose_seq_len, stack_clips
from .rundir import RunDir


def resolve_folds(table, config):
    """The folds for this table (:func:`sertiny.data.splits.folds_for` decides; a table does
    not know its corpus, so RAVDESS is recognised by its actors)."""
    from ..data.splits import folds_for

    return folds_for(None, table.speakers, config.folds, n_folds=config.n_folds,
                     n_val_speakers=config.n_val_speakers, seed=0)


def fold_seed(seed, fold_index):
    """A distinct, reproducible seed per (seed, fold), like the reference's 42 + 100*fold."""
    return int(seed) * 1000 + int(fold_index)


@dataclasses.dataclass
class RunContext:
    table: object
    config: TrainConfig
    out_dir: Path
    seq_len: int
    folds: list
    model_config: object
    aux_labels: np.ndarray | None = None  # (n_clips, n_aux) class ids of a multi-task run's auxiliary heads
    # perturbed copies of every clip, one list per augment.waveform_copies(config) entry (None: unusable)
    augmented: list = dataclasses.field(default_factory=list)
    teacher: object = None  # the distillation teacher (sertiny.training.distill), loaded and checked once

    @property
    def run_dir(self):
        return RunDir(self.out_dir)


def prepare_run(table, config, out_dir, *, data_spec=None, overwrite=False):
    """Validate inputs, resolve T and the folds, and write (or check) the run's configs."""
    from ..models import model_config

    out_dir = Path(out_dir)
    if len(table.features) == 0:
        raise ParameterError("The feature table is empty: no clips to train on.")
    seq_len = config.seq_len or choose_seq_len(table.lengths, config.seq_len_percentile)
    aux_labels = None
    if config.multitask:  # before anything is written: other corpora's names fail here
        from ..data.auxiliary import auxiliary_labels

        aux_labels = auxiliary_labels(table.names, config.aux_tasks)
    mcfg = model_config(
        config.model,
        n_features=int(table.features[0].shape[1]),
        n_classes=len(table.label_names),
        seq_len=seq_len,
        dropout=config.dropout,
        forget_bias=config.forget_bias,
        padding=config.padding,
        aux_heads=config.aux_heads(),
    )
    folds = resolve_folds(table, config)
    teacher = None
    if config.distill_weight:  # before anything is written: a teacher of other folds or features fails here
        from .distill import load_teacher

        teacher = load_teacher(config.teacher, feature_config=table.feature_config, label_names=table.label_names,
                               folds=folds).check()
    run_info = {
        "label_names": list(table.label_names),
        "seq_len": seq_len,
        "model_config": mcfg.to_dict(),
        "source": table.source,
        "n_clips": len(table.features),
        "speakers": sorted(set(table.speakers.tolist())),
        "data_fingerprint": table_fingerprint(table),
        "folds": [dataclasses.asdict(f) for f in folds],
    }
    if config.multitask:
        from ..data.auxiliary import AUX_TASKS

        run_info["aux_label_names"] = {task: list(AUX_TASKS[task]) for task in config.aux_tasks}
    if data_spec is not None:
        run_info["data"] = data_spec.to_dict()
    augmented = []
    copies = waveform_copies(config)
    if copies:  # before anything is written: feature input fails here
        from .data import perturbed_features

        if data_spec is None:
            raise ParameterError("Speed, gain, noise and pitch perturbation need the run's data source (data_spec) to "
                                 "reach the audio.")
        augmented = [perturbed_features(data_spec, table, name, loader) for name, loader in copies]
    _check_or_write_run(out_dir, config, table.feature_config, run_info, overwrite)
    return RunContext(table, config, out_dir, seq_len, folds, mcfg, aux_labels, augmented, teacher)


def _check_or_write_run(out_dir, config, feature_config, run_info, overwrite):
    run = RunDir(out_dir)
    if run.has_train_config() and not overwrite:
        old = {**run.train_config(), "seeds": list(config.seeds)}
        saved_features = run.feature_config()
        if not (type(config).same_identity(old, config)
                and type(feature_config).same_identity(saved_features, feature_config)):
            raise ArtifactError(
                f"{out_dir} holds a run with a different training or feature config. "
                "Use another --out, or --overwrite to start again there."
            )
        _check_same_data(out_dir, run_info)
        # Same recipe: resume. Seeds are independent repetitions, so a run may grow
        # from --seeds 0 to --seeds 0,1,2 and keep what the first seed already did.
        run.write_train_config(config)
        return
    if overwrite and out_dir.exists():
        clear_directory(out_dir)  # keeps the lock 'train' holds on it
    run.write_configs(run_info, config, feature_config)


def _check_same_data(out_dir, run_info):
    """A resumed run must be given the clips it started on: the finished folds' predictions
    and the new ones would otherwise be pooled into one result over two corpora."""
    saved = RunDir(out_dir).info()
    if "data_fingerprint" in saved:
        same = saved["data_fingerprint"] == run_info["data_fingerprint"]
    else:  # a run from before the fingerprint was recorded: what it did record
        same = all(saved.get(key) == run_info[key] for key in ("label_names", "n_clips", "speakers"))
    if not same:
        def describe(info):
            return (f"{info.get('n_clips')} clips of {len(info.get('speakers') or [])} speakers, "
                    f"labels {', '.join(info.get('label_names') or [])}")

        raise ArtifactError(
            f"{out_dir} holds a run on other data ({describe(saved)}; from {saved.get('source')}) than "
            f"given now ({describe(run_info)}; from {run_info['source']}), or on the same clips with other "
            "labels, speakers or features. Resume it with the data it started on, choose another --out, "
            "or pass --overwrite to start again there."
        )


def fit_norm(table, train_idx, normalization, utterance="none"):
    from ..features.normalize import fit_norm_stats

    # "speaker" tables are already speaker-normalised; their training speakers' stats follow.
    clips = table.features if normalization == "global" else [table.features[i] for i in train_idx]
    return fit_norm_stats(clips, utterance=utterance)


@dataclasses.dataclass(frozen=True, eq=False)
class FoldInputs:
    """A fold's clips as the network sees them: normalised with the fold's statistics and
    stacked to ``seq_len`` frames; ``*_idx`` index the table, ``y_*`` are int32 labels."""

    norm: object
    train_idx: np.ndarray
    val_idx: np.ndarray
    test_idx: np.ndarray
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    train_rows: np.ndarray = None  # table index of every x_train row (augmented copies repeat their clip's)


def speaker_normalized(table, utterance="none"):
    """A copy of ``table`` whose clips are z-scored with their own speaker's statistics
    (over all that speaker's clips, labels unused): speaker-adaptive normalisation."""
    from ..features.normalize import normalize_utterance

    features = [normalize_utterance(x, utterance) for x in table.features]
    return dataclasses.replace(table, features=per_speaker_z(features, table.speakers))


def per_speaker_z(features, speakers):
    """Each clip of ``features`` (None: no clip) z-scored with the statistics of its speaker's
    clips in the same list."""
    from ..features.normalize import fit_norm_stats

    present = [i for i, x in enumerate(features) if x is not None]
    stats = {s: fit_norm_stats([features[i] for i in present if speakers[i] == s])
             for s in sorted({speakers[i] for i in present})}
    return [None if x is None else stats[s].apply(x) for x, s in zip(features, speakers)]


def _speaker_normalized_copies(table, augmented, utterance):
    """Each list of augmented copies z-scored per speaker with the statistics of that speaker's
    copies in the same list: the speaker heard in the copy's condition (louder, noisy, another
    room), as enrolment clips recorded in that condition would measure them. Normalising them
    with the clean clips' statistics would hand the network copies whose level offsets the
    normalisation is there to remove."""
    from ..features.normalize import normalize_utterance

    return [per_speaker_z([None if x is None else normalize_utterance(x, utterance) for x in copies], table.speakers)
            for copies in augmented]


def fold_inputs(table, fold, seq_len, normalization, utterance="none", augmented=()):
    """Split ``table`` by ``fold`` and build the arrays one fold trains and is tested on.

    ``augmented``: lists of perturbed copies of every clip (see :class:`RunContext`); the
    training speakers' copies are appended to the training set, normalised with the
    statistics of the original training clips (with ``normalization="speaker"``, after each
    kind of copy is z-scored per speaker: :func:`_speaker_normalized_copies`)."""
    from ..data.splits import fold_indices

    train_idx, val_idx, test_idx = fold_indices(table.speakers, fold)
    if normalization == "speaker":
        augmented = _speaker_normalized_copies(table, augmented, utterance)
        table = speaker_normalized(table, utterance)
        utterance = "none"  # already applied per clip
    norm = fit_norm(table, train_idx, normalization, utterance)

    def inputs(idx):
        x, _ = stack_clips([table.features[i] for i in idx], seq_len, norm)
        return x, table.labels[idx].astype(np.int32)

    x_train, train_rows = with_augmented_copies(table, train_idx, seq_len, norm, augmented)
    return FoldInputs(norm, train_idx, val_idx, test_idx, x_train, table.labels[train_rows].astype(np.int32),
                      *inputs(val_idx), *inputs(test_idx), train_rows=train_rows)


def with_augmented_copies(table, idx, seq_len, norm, augmented=()):
    """``(x, rows)``: clips ``idx`` stacked, then their usable augmented copies; ``rows`` is
    the table index of every stacked example (for labels)."""
    x, _ = stack_clips([table.features[i] for i in idx], seq_len, norm)
    parts, rows = [x], [np.asarray(idx)]
    for copies in augmented:
        keep = np.array([i for i in idx if copies[i] is not None], dtype=np.int64)
        parts.append(stack_clips([copies[i] for i in keep], seq_len, norm)[0])
        rows.append(keep)
    return (np.concatenate(parts), np.concatenate(rows)) if len(parts) > 1 else (x, rows[0])


def run_fold(ctx, seed, fold, *, progress=None):
    """Train and evaluate one fold; write its directory atomically. Returns fold.json's dict."""
    from ..metrics import uar
    from .distill import teacher_targets
    from .loop import train_fold

    table, cfg = ctx.table, ctx.config
    data = fold_inputs(table, fold, ctx.seq_len, cfg.normalization, cfg.utterance_norm, ctx.augmented)
    norm, train_idx, val_idx, test_idx = data.norm, data.train_idx, data.val_idx, data.test_idx
    x_tr, y_tr, x_va, y_va, x_te, y_te = data.x_train, data.y_train, data.x_val, data.y_val, data.x_test, data.y_test
    seed_value = fold_seed(seed, fold.index)
    mcfg = ctx.model_config.replace(seed=seed_value)
    aux_train = None if ctx.aux_labels is None else ctx.aux_labels[data.train_rows]
    started = time.time()
    result, trainer = train_fold(mcfg, cfg, x_tr, y_tr, x_va, y_va, seed=seed_value, progress=progress,
                                 aux_train=aux_train, teacher_train=teacher_targets(ctx, data.train_rows, fold.index, norm))
    test_heads = trainer.predict_heads(x_te)
    test_probs = test_heads["emotion"]
    summary = {
        "seed": seed,
        "fold": fold.index,
        "best_epoch": result.best_epoch + 1,
        "val_uar": result.best_val_uar,
        "test_uar": uar(y_te, test_probs.argmax(1), mcfg.n_classes),
        "n_train": len(train_idx),
        "n_val": len(val_idx),
        "n_test": len(test_idx),
        "seconds": round(time.time() - started, 2),
        "model_config": mcfg.to_dict(),
    }
    aux_columns = {}
    for k, (task, n_classes) in enumerate(mcfg.aux_heads):
        y_aux, predicted = ctx.aux_labels[test_idx, k], test_heads[task].argmax(1)
        summary.setdefault("aux_test_uar", {})[task] = uar(y_aux, predicted, n_classes)
        aux_columns[task] = (y_aux, predicted)
    ctx.run_dir.write_fold(seed, fold.index, weights=result.weights, norm=norm, history=result.history,
                           predictions=prediction_rows(table, test_idx, test_probs, aux_columns), summary=summary)
    return summary


def prediction_rows(table, idx, probs, aux_columns=None):
    """One row per test clip; ``aux_columns`` ``{task: (true ids, predicted ids)}`` adds a
    multi-task run's ``<task>`` and ``predicted_<task>`` columns (class names)."""
    from ..data.auxiliary import AUX_TASKS

    rows = []
    for j, (i, p) in enumerate(zip(idx, probs)):
        row = {"name": table.names[i], "speaker": table.speakers[i], "label": table.label_names[table.labels[i]],
               "predicted": table.label_names[int(p.argmax())]}
        for task, (true, predicted) in (aux_columns or {}).items():
            row.update({task: AUX_TASKS[task][true[j]], f"predicted_{task}": AUX_TASKS[task][predicted[j]]})
        row.update({f"p_{n}": round(float(v), 6) for n, v in zip(table.label_names, p)})
        rows.append(row)
    return rows


def check_deployable(config):
    if config.normalization == "speaker":
        raise ParameterError("A deployment model cannot use speaker-adaptive normalisation (it needs each "
                             "user's statistics); train it with --normalization train.")


def train_deploy(ctx, *, progress=True):
    """Train the deployment model on all speakers; write ``deploy/`` atomically."""
    from .distill import teacher_targets
    from .loop import train_fold

    check_deployable(ctx.config)
    run = ctx.run_dir
    best_epochs = [run.read_fold(s, f.index)["best_epoch"] for s in ctx.config.seeds for f in ctx.folds]
    epochs = int(np.median(best_epochs))
    all_idx = np.arange(len(ctx.table.features))
    norm = fit_norm(ctx.table, all_idx, "global", ctx.config.utterance_norm)
    x, rows = with_augmented_copies(ctx.table, all_idx, ctx.seq_len, norm, ctx.augmented)
    y = ctx.table.labels[rows].astype(np.int32)
    seed_value = fold_seed(ctx.config.seeds[0], 0)
    mcfg = ctx.model_config.replace(seed=seed_value)
    previous = run.read_deploy()
    if previous is not None:  # a rerun of a finished run: the same config trains the same model again
        if previous.get("epochs") == epochs and type(mcfg).same_identity(previous.get("model_config") or {}, mcfg):
            return previous
    cfg = dataclasses.replace(ctx.config, epochs=epochs)
    aux_train = None if ctx.aux_labels is None else ctx.aux_labels[rows]
    result, _ = train_fold(mcfg, cfg, x, y, None, None, seed=seed_value, aux_train=aux_train,
                           teacher_train=teacher_targets(ctx, rows, norm=norm))
    info = {"epochs": epochs, "from_best_epochs": best_epochs, "n_train": len(all_idx),
            "speakers": sorted(set(ctx.table.speakers.tolist())), "model_config": mcfg.to_dict()}
    run.write_deploy(weights=result.weights, norm=norm, history=result.history, info=info)
    return info
