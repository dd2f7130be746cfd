"""Knowledge distillation from a finished run: its fold models, averaged, as soft targets.

Why: on RAVDESS the pooled UAR of three seeds of the same recipe averaged (an ensemble) is
several points above any one of them, and a microcontroller has room for one model. A
student trained towards the ensemble's probabilities on its own training speakers keeps
part of that gain at the size of one model.

The teacher is a complete run directory trained on the same clips, front end, labels and
folds. For fold ``k`` the teacher is the mean of its ``seed<s>_fold<k>`` models over all of
its seeds; each of them was trained on fold ``k``'s training speakers only, so the test
speakers stay unseen. For the deployment model (all speakers) it is the mean of every fold
model of every seed.
"""

import numpy as np

from ..errors import ArtifactError
from .rundir import RunDir, weights_name


class Teacher:
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
        theirs = [(f.index, f.test_speakers, f.val_speakers) for f in self.run.folds()]
        ours = [(f.index, f.test_speakers, f.val_speakers) for f in folds]
        if theirs != ours:
            raise ArtifactError(f"Teacher {where} used other speaker folds than this run; its fold models "
                                "would have seen this run's test speakers.")
        self.seq_len = int(info["seq_len"])
        self.seeds = [int(s) for s in self.run.train_config().get("seeds", [0])]
        self.fold_indices = [f.index for f in folds]

    def model_names(self, fold_index=None):
        """The teacher models of fold ``fold_index`` (every seed), or of all folds (None)."""
        indices = self.fold_indices if fold_index is None else [fold_index]
        names = [weights_name(s, k) for k in indices for s in self.seeds]
        missing = [n for n in names if not (self.run.weights_dir(n) / "weights.npz").is_file()]
        if missing:
            raise ArtifactError(f"Teacher {self.run.path} has not finished {', '.join(missing)}; finish that run "
                                "first (rerun the same command: it resumes).")
        return names

    def probabilities(self, features, fold_index=None):
        """Mean class probabilities (n, C) of the teacher models of ``fold_index`` (None: the
        deployment teacher) on ``features``, a list of (frames, F) clips in raw units; each
        model applies its own normalisation statistics."""
        from ..models import create_model
        from ..models.registry import ModelConfig
        from ..models.weights import set_weights
        from .inputs import stack_clips

        total = None
        names = self.model_names(fold_index)
        for name in names:
            weights, norm = self.run.read_model(name)
            seed, index = (int(p) for p in name[len("seed"):].split("_fold"))
            config = ModelConfig.from_dict(self.run.read_fold(seed, index)["model_config"])
            model = create_model(config)
            set_weights(model, weights)
            x, _ = stack_clips(features, self.seq_len, norm)
            probs = np.concatenate([np.asarray(model(x[i:i + 256], training=False))
                                    for i in range(0, len(x), 256)])
            total = probs if total is None else total + probs
        return (total / len(names)).astype(np.float32)


def teacher_for_run(ctx):
    """The :class:`Teacher` of a run context (:class:`~sertiny.training.protocol.RunContext`)."""
    return Teacher(ctx.config.teacher, feature_config=ctx.table.feature_config,
                   label_names=ctx.table.label_names, folds=ctx.folds)


def teacher_targets(ctx, rows, fold_index=None):
    """The teacher's probabilities (len(rows), C) for training examples whose clips are
    ``ctx.table`` rows ``rows``, or None when the run does not distil. A perturbed copy of a
    clip (speed perturbation) gets the teacher's probabilities of the clip itself."""
    if not ctx.config.distill_weight:
        return None
    clips = np.unique(rows)
    probs = teacher_for_run(ctx).probabilities([ctx.table.features[i] for i in clips], fold_index)
    return probs[np.searchsorted(clips, rows)]


def blend_targets(targets, teacher_probs, weight):
    """``(1 - weight) * targets + weight * teacher_probs`` (both (batch, C) distributions)."""
    return ((1.0 - weight) * targets + weight * teacher_probs).astype(np.float32)
