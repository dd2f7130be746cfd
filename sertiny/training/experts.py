"""Join two finished runs, a ResLSTM-SA and the ``stats_linear`` floor, into one ``res_lstm_sa_stats`` run.

Issue 14 measured the two at about the same UAR on unseen RAVDESS speakers with different
errors. Trained together as one ``res_lstm_sa_stats`` model (one recipe for both parts), the
statistics branch overfits and the joined model loses to either alone on the validation
speakers; trained apart, each with the recipe chosen for it, and joined afterwards, the two
are far better than either (results/accuracy.md). This module does the joining.

The joined model is a product of experts: with the ResLSTM-SA's logits ``a`` (attention
context through its BatchNorm and dense layer) and the floor's logits ``b`` (the clip's frame
statistics through its BatchNorm and dense layer), it outputs ``softmax(w a + (1 - w) b)``,
the experts' probabilities multiplied (``p_a^w p_b^(1-w)``) and renormalised. That is
exactly a ``res_lstm_sa_stats`` model (:mod:`sertiny.models.res_lstm_sa_stats`): the
recurrence is the ResLSTM-SA's, ``bn_out`` is the two BatchNorms side by side, ``dense`` is
the two dense layers stacked and scaled by ``w`` and ``1 - w``. So every stage downstream
(export to int8 with the streaming K = 1 profile, the runtime, the C reference) takes it as
it takes any run.

The joined run has the usual layout (:class:`~sertiny.training.rundir.RunDir`): per seed
and fold, the joined weights, the fold's normalisation (which both runs share: same front
end, folds and normalisation, checked), the validation and test UAR of the joined model,
its test predictions, and the run's metrics; ``run.json`` names the two runs and ``w``
under ``joined_from``. It trains nothing, so its fold histories are empty. A fold that is
already written is kept, so an interrupted call resumes.
"""

import dataclasses
import time
from pathlib import Path

import numpy as np

from .._config import Config, check_float
from ..errors import ArtifactError, ParameterError
from .rundir import DEPLOY, RunDir, weights_name

JOINED_FAMILY = "res_lstm_sa_stats"
RECURRENT_FAMILY = "res_lstm_sa"
STATS_FAMILY = "stats_linear"


@dataclasses.dataclass(frozen=True)
class JoinConfig(Config):
    """recurrent: a finished ``res_lstm_sa`` run directory. stats: a finished ``stats_linear``
    run directory on the same data, front end, folds and seeds. weight: ``w``, the
    recurrent expert's share of the logits (0.5: both count the same)."""

    recurrent: str
    stats: str
    weight: float = 0.5

    def __post_init__(self):
        check_float("JoinConfig", "weight", self.weight, min_value=0.0, max_value=1.0)


def join_weights(recurrent, stats, weight=0.5):
    """A ``res_lstm_sa_stats`` weight dict (generic format) from a ResLSTM-SA's named weights
    and a stats_linear's generic weights (see the module docstring)."""
    joined = {k: v for k, v in recurrent.items() if not k.startswith(("bn_out/", "dense/"))}
    for key in ("gamma", "beta", "moving_mean", "moving_variance"):
        joined[f"bn_out/{key}"] = np.concatenate([recurrent[f"bn_out/{key}"], stats[f"bn/{key}"]])
    joined["dense/kernel"] = np.concatenate([weight * recurrent["dense/kernel"], (1 - weight) * stats["dense/kernel"]])
    joined["dense/bias"] = weight * recurrent["dense/bias"] + (1 - weight) * stats["dense/bias"]
    joined["attention/u"] = np.asarray(recurrent["attention/u"]).reshape(-1, 1)
    return {k: np.asarray(v, np.float32) for k, v in joined.items()}


def join_runs(config, out_dir, *, progress=None):
    """Write the joined run of ``config`` (a :class:`JoinConfig`) to ``out_dir``; returns its metrics.

    ``progress``, if given, is called with a line of text per model joined.
    """
    say = progress or (lambda message: None)
    recurrent, stats = RunDir(config.recurrent), RunDir(config.stats)
    info = _check_pair(recurrent, stats)
    out = RunDir(out_dir)
    model_config = _joined_model_config(info)
    train_config = _joined_train_config(recurrent, model_config)
    joined_from = {"recurrent": str(config.recurrent), "stats": str(config.stats), "weight": config.weight}
    if out.has_train_config():
        existing = out.info().get("joined_from")
        if existing != joined_from:
            raise ParameterError(f"{out.path} holds another run (joined from {existing}); "
                                 "choose another --out.")
    else:
        from ..features import FeatureConfig

        info = {k: v for k, v in info.items() if k not in ("format", "format_version", "sertiny_version")}
        out.write_configs({**info, "model_config": model_config.to_dict(), "joined_from": joined_from},
                          train_config, FeatureConfig.from_dict(recurrent.feature_config()))
    from .data import table_for_run

    table = table_for_run(recurrent.path)
    folds = out.folds()
    for seed in train_config.seeds:
        for fold in folds:
            if out.read_fold(seed, fold.index) is None:
                _join_fold(out, recurrent, stats, table, model_config, seed, fold, config.weight)
                say(f"joined {weights_name(seed, fold.index)}")
    if DEPLOY in recurrent.available_weights() and DEPLOY in stats.available_weights() and out.read_deploy() is None:
        weights, norm = _joined_model(recurrent, stats, DEPLOY, config.weight)
        out.write_deploy(weights=weights, norm=norm, history=[], info={"joined_from": joined_from})
        say("joined deploy")
    return _summarize(out, table, train_config, model_config, folds)


def _check_pair(recurrent, stats):
    """run.json of the recurrent run, once both are shown to be finished runs of the two
    families on the same data, front end, T, labels, folds and seeds."""
    infos = []
    for run, family in ((recurrent, RECURRENT_FAMILY), (stats, STATS_FAMILY)):
        info = run.check()
        if info["model_config"]["family"] != family:
            raise ParameterError(f"{run.path} is a {info['model_config']['family']} run; joining takes a "
                                 f"{RECURRENT_FAMILY} run and a {STATS_FAMILY} run.")
        if not (run.path / "metrics.json").is_file():
            raise ParameterError(f"{run.path} has not finished (no metrics.json); finish its training first.")
        infos.append(info)
    a, b = infos
    train_configs = [run.train_config() for run in (recurrent, stats)]
    for key in ("label_names", "seq_len", "folds", "data_fingerprint"):
        if a.get(key) != b.get(key):
            raise ParameterError(f"The two runs differ in {key!r}: they were not trained on the same data and folds, "
                                 "so their fold models cannot be joined.")
    if a["model_config"]["n_features"] != b["model_config"]["n_features"] or \
            recurrent.feature_config() != stats.feature_config():
        raise ParameterError("The two runs were trained on different front ends; join runs of the same features.")
    for key, default in (("normalization", "train"), ("utterance_norm", "none")):
        values = [config.get(key, default) for config in train_configs]
        if values[0] != values[1]:
            raise ParameterError(f"The two runs were trained with {key} {values[0]!r} and {values[1]!r}: their "
                                 "models read differently normalised features, so they cannot share one input.")
    if a["model_config"].get("padding", "zeros") != "zeros":
        raise ParameterError(f"{recurrent.path} was trained with {a['model_config']['padding']!r} padding; the joined "
                             "model runs over all T frames (its statistics count them), so join a zero-padded run.")
    seeds = [config.get("seeds") for config in train_configs]
    if seeds[0] != seeds[1]:
        raise ParameterError(f"The two runs have different seeds ({seeds[0]} and {seeds[1]}); fold models are "
                             "joined seed by seed.")
    return a


def _joined_model_config(info):
    from ..models import model_config

    mc = info["model_config"]
    return model_config(f"{JOINED_FAMILY}_h{mc['hidden']}", n_features=mc["n_features"], n_classes=mc["n_classes"],
                        seq_len=mc["seq_len"], dropout=mc["dropout"], forget_bias=mc["forget_bias"], padding="zeros")


def _joined_train_config(recurrent, model_config):
    from .config import TrainConfig

    fields = dict(recurrent.train_config(), model=model_config.name)
    return TrainConfig.from_dict(fields)


def _joined_model(recurrent, stats, name, weight):
    (w_a, norm_a), (w_b, norm_b) = recurrent.read_model(name), stats.read_model(name)
    if not (np.allclose(norm_a.mean, norm_b.mean) and np.allclose(norm_a.std, norm_b.std)):
        raise ArtifactError(f"{name}: the two runs normalised their features differently; join runs trained with "
                            "the same normalisation.")
    return join_weights(w_a, w_b, weight), norm_a


def _join_fold(out, recurrent, stats, table, model_config, seed, fold, weight):
    from ..data.splits import fold_indices
    from ..metrics import uar
    from ..models.weights import model_with_weights
    from .protocol import fold_seed, prediction_rows

    started = time.time()
    name = weights_name(seed, fold.index)
    weights, norm = _joined_model(recurrent, stats, name, weight)
    fold_config = model_config.replace(seed=fold_seed(seed, fold.index))
    model = model_with_weights(fold_config, weights)
    train_idx, val_idx, test_idx = fold_indices(table.speakers, fold)
    val_probs, test_probs = (_predict(model, table, idx, norm, model_config.seq_len) for idx in (val_idx, test_idx))
    n = model_config.n_classes
    summary = {"seed": seed, "fold": fold.index, "best_epoch": 0,
               "val_uar": uar(table.labels[val_idx], val_probs.argmax(1), n),
               "test_uar": uar(table.labels[test_idx], test_probs.argmax(1), n),
               "n_train": len(train_idx), "n_val": len(val_idx), "n_test": len(test_idx),
               "seconds": round(time.time() - started, 2), "model_config": fold_config.to_dict()}
    out.write_fold(seed, fold.index, weights=weights, norm=norm, history=[],
                   predictions=prediction_rows(table, test_idx, test_probs), summary=summary)


def _predict(model, table, idx, norm, seq_len):
    from .inputs import stack_clips

    if len(idx) == 0:
        return np.zeros((0, model.output_shape[-1]), np.float32)
    x, _ = stack_clips([table.features[i] for i in idx], seq_len, norm)
    return np.asarray(model.predict(x, batch_size=64, verbose=0))


def _summarize(out, table, train_config, model_config, folds):
    from .report import plot_confusion, run_metrics, seed_metrics, uar_summary
    from .run import count_params

    labels = list(table.label_names)
    per_seed = [seed_metrics(out.path, s, folds, labels) for s in train_config.seeds]
    metrics = run_metrics(out.path, per_seed, labels, count_params(model_config), model_config.name)
    plot_confusion(Path(out.path) / "confusion.png", metrics["confusion_all_seeds"], labels,
                   f"{model_config.name} (joined): {uar_summary(metrics)}")
    return metrics
