"""Knowledge distillation: a teacher's class probabilities as (part of) the training target.

Two kinds of teacher:

- a finished **run directory** (:class:`RunTeacher`) on the same clips, front end, labels
  and folds. For fold ``k`` the teacher is the mean of its ``seed<s>_fold<k>`` models over
  all of its seeds; each was trained on fold ``k``'s training speakers only, so the test
  speakers stay unseen. For the deployment model it is the mean of every fold model. Why:
  three seeds averaged score several points above any one of them, and a microcontroller
  holds one model. Its probabilities on its own training clips are in-sample, though.
- a **teacher file** (:class:`FileTeacher`, ``*.json``, :func:`write_teacher_file`): any
  system's probabilities per fold for the training clips, e.g. a linear model on openSMILE
  ComParE functionals (``benchmarks/classical_baselines.py --teacher``), cross-fitted so
  that each clip's probabilities come from a model that never heard its speaker. The file
  names the folds it was made for; they must be the student's.

A run-directory teacher can also run inside the training loop on every augmented batch
(``TrainConfig.distill_inputs = "augmented"``, :class:`BatchTeacher`).
"""

import numpy as np

from .._io import atomic_write_json, read_json
from ..errors import ArtifactError
from .rundir import RunDir, parse_weights_name, weights_name

TEACHER_FORMAT = "sertiny-teacher"
DEPLOY_KEY = "deploy"


def _fold_key(folds):
    return [(int(f.index), list(f.train_speakers), list(f.val_speakers), list(f.test_speakers)) for f in folds]


def load_teacher(path, *, feature_config, label_names, folds):
    """The teacher at ``path``: a run directory, or a ``.json`` teacher file."""
    from pathlib import Path

    if Path(path).suffix == ".json":
        return FileTeacher(path, label_names=label_names, folds=folds)
    return RunTeacher(path, feature_config=feature_config, label_names=label_names, folds=folds)


def write_teacher_file(path, *, label_names, folds, probabilities, description):
    """Write a teacher file. ``probabilities``: ``{fold index or "deploy": {clip name: (C,)
    probabilities}}``, each clip's from a model that never saw that fold's test speakers
    (and, to be useful, not the clip's own speaker either)."""
    atomic_write_json(path, {
        "format": TEACHER_FORMAT, "format_version": 1, "description": description,
        "label_names": list(label_names),
        "folds": [{"index": i, "train_speakers": tr, "val_speakers": v, "test_speakers": te}
                  for i, tr, v, te in _fold_key(folds)],
        "probabilities": {str(k): {name: [round(float(p), 6) for p in probs] for name, probs in clips.items()}
                          for k, clips in probabilities.items()},
    })


class FileTeacher:
    """Probabilities read from a teacher file (:func:`write_teacher_file`)."""

    def __init__(self, path, *, label_names, folds):
        self.path = path
        data = read_json(path)
        if data.get("format") != TEACHER_FORMAT:
            raise ArtifactError(f"{path}: not a sertiny teacher file (format {data.get('format')!r}).")
        if list(data["label_names"]) != list(label_names):
            raise ArtifactError(f"Teacher {path} has labels {data['label_names']}, this run {list(label_names)}.")
        theirs = [(int(f["index"]), list(f["train_speakers"]), list(f["val_speakers"]), list(f["test_speakers"]))
                  for f in data["folds"]]
        if theirs != _fold_key(folds):
            raise ArtifactError(f"Teacher {path} was made for other speaker folds than this run's; its "
                                "probabilities could come from models that heard this run's test speakers.")
        self.table = data["probabilities"]
        self.fold_keys = [str(f["index"]) for f in data["folds"]]

    def check(self):
        """Raise unless the file has every fold's probabilities (the deployment model's are
        checked when it is trained)."""
        missing = [k for k in self.fold_keys if k not in self.table]
        if missing:
            raise ArtifactError(f"Teacher {self.path} has no probabilities for fold {missing[0]!r}.")
        return self

    def probabilities(self, names, features, fold_index=None):
        """(n, C) probabilities of clips ``names`` for fold ``fold_index`` (None: deployment)."""
        key = DEPLOY_KEY if fold_index is None else str(fold_index)
        clips = self.table.get(key)
        if clips is None:
            raise ArtifactError(f"Teacher {self.path} has no probabilities for fold {key!r}.")
        missing = [n for n in names if n not in clips]
        if missing:
            raise ArtifactError(f"Teacher {self.path} has no probabilities for {len(missing)} training clip(s) of "
                                f"fold {key!r}, e.g. {missing[0]}; it was made for another corpus or clip list.")
        return np.asarray([clips[n] for n in names], dtype=np.float32)


class RunTeacher:
    """The fold models of the run at ``path``, checked against the student's run."""

    def __init__(self, path, *, feature_config, label_names, folds):
        self.run = RunDir(path)
        info = self.run.check()
        where = self.run.path
        if not type(feature_config).same_identity(self.run.feature_config(), feature_config):
            raise ArtifactError(f"Teacher {where} was trained on another front end than this run; distillation "
                                "needs a teacher of the same features (train one with this run's --features).")
        if list(info["label_names"]) != list(label_names):
            raise ArtifactError(f"Teacher {where} has labels {info['label_names']}, this run {list(label_names)}.")
        if _fold_key(self.run.folds()) != _fold_key(folds):
            raise ArtifactError(f"Teacher {where} used other speaker folds than this run; its fold models "
                                "would have seen this run's test speakers.")
        self.seq_len = int(info["seq_len"])
        self.path = self.run.path
        self.seeds = [int(s) for s in self.run.train_config().get("seeds", [0])]
        self.fold_indices = [f.index for f in folds]

    def check(self):
        """Raise unless every fold model is there (before a student starts)."""
        self.model_names()
        return self

    def model_names(self, fold_index=None):
        """The teacher models of fold ``fold_index`` (every seed), or of all folds (None)."""
        indices = self.fold_indices if fold_index is None else [fold_index]
        names = [weights_name(s, k) for k in indices for s in self.seeds]
        missing = [n for n in names if not (self.run.weights_dir(n) / "weights.npz").is_file()]
        if missing:
            raise ArtifactError(f"Teacher {self.run.path} has not finished {', '.join(missing)}; finish that run "
                                "first (rerun the same command: it resumes).")
        return names

    def probabilities(self, names, features, fold_index=None):
        """Mean class probabilities (n, C) of the teacher models of ``fold_index`` (None: the
        deployment teacher) on ``features``, a list of (frames, F) clips in raw units (clips
        ``names``); each model applies its own normalisation statistics."""
        from .inputs import stack_clips

        total = None
        models = self.model_names(fold_index)
        for name in models:
            model, norm = self.load_model(name)
            x, _ = stack_clips(features, self.seq_len, norm)
            probs = np.concatenate([np.asarray(model(x[i:i + 256], training=False))
                                    for i in range(0, len(x), 256)])
            total = probs if total is None else total + probs
        return (total / len(models)).astype(np.float32)

    def load_model(self, name, model=None):
        """``(Keras model, NormStats)`` of teacher model ``name``; its weights are loaded into
        ``model`` when one of the same architecture is given, else into a new one."""
        from ..models.weights import set_weights

        if model is None:
            return self.run.load_fold_model(*parse_weights_name(name))
        weights, norm = self.run.read_model(name)
        set_weights(model, weights)
        return model, norm

    def batch_teacher(self, fold_index, student_norm, seq_len):
        """A :class:`BatchTeacher` of the models of fold ``fold_index`` (None: every fold's)
        for batches normalised with ``student_norm`` and ``seq_len`` frames long."""
        if seq_len != self.seq_len:
            raise ArtifactError(f"Teacher {self.path} runs on {self.seq_len}-frame inputs, this run on {seq_len}; "
                                "distilling on augmented batches needs the same length (same clips and seq_len).")
        return BatchTeacher(self, self.model_names(fold_index), student_norm)


class BatchTeacher:
    """Mean probabilities of some of a :class:`RunTeacher`'s models on a batch the student
    trains on, as a jitted JAX function: called once per training step.

    The batch is in the student's normalised units; each teacher model gets it mapped to
    its own (``x * std_s / std_t + (mean_s - mean_t) / std_t``: exact, as both are affine
    maps of the same raw frames), which is the identity when the teacher's fold statistics
    are the student's (same training clips, front end and normalisation). Padding frames, 0
    in the student's units, then sit at the student's mean rather than the teacher's; they
    coincide in that case too."""

    def __init__(self, teacher, names, student_norm):
        from .._keras import import_keras

        import_keras("jax")  # the backend stateless_call runs on
        import jax

        self.members = []
        model = None
        for name in names:
            model, norm = teacher.load_model(name, model)  # one graph: every member has the same architecture
            if norm.utterance != student_norm.utterance:
                raise ArtifactError(f"Teacher {teacher.path} normalises each clip with {norm.utterance!r}, this run "
                                    f"with {student_norm.utterance!r}; train the teacher with this run's utterance_norm.")
            scale = (student_norm.std / norm.std).astype(np.float32)
            shift = ((student_norm.mean - norm.mean) / norm.std).astype(np.float32)
            self.members.append(([v.value for v in model.trainable_variables],
                                 [v.value for v in model.non_trainable_variables], scale, shift))

        def mean_probabilities(members, x):
            probs = [model.stateless_call(tv, ntv, x * scale + shift, training=False)[0]
                     for tv, ntv, scale, shift in members]
            return sum(probs) / len(probs)

        self._mean_probabilities = jax.jit(mean_probabilities)

    def __call__(self, x):
        return np.asarray(self._mean_probabilities(self.members, np.asarray(x, dtype=np.float32)), dtype=np.float32)


def teacher_targets(ctx, rows, fold_index=None, norm=None):
    """The teacher's probabilities (len(rows), C) for training examples whose clips are
    ``ctx.table`` rows ``rows``, or None when the run does not distil. A perturbed copy of a
    clip (speed, gain or noise) gets the teacher's probabilities of the clip itself.
    With ``distill_inputs="augmented"``: a :class:`BatchTeacher` for batches normalised with
    ``norm``, the training loop calling it on every augmented batch."""
    if ctx.teacher is None:
        return None
    if ctx.config.distill_inputs == "augmented":
        return ctx.teacher.batch_teacher(fold_index, norm, ctx.seq_len)
    clips = np.unique(rows)
    names = [ctx.table.names[i] for i in clips]
    probs = ctx.teacher.probabilities(names, [ctx.table.features[i] for i in clips], fold_index)
    return probs[np.searchsorted(clips, rows)]


def blend_targets(targets, teacher_probs, weight):
    """``(1 - weight) * targets + weight * teacher_probs`` (both (batch, C) distributions)."""
    return ((1.0 - weight) * targets + weight * teacher_probs).astype(np.float32)
