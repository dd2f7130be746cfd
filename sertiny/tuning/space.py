"""The hyperparameter search spaces: the paper's, and the reference notebook's wider one.

Both tune the five :class:`~sertiny.training.TrainConfig` fields the paper names
(PAPER_FACTS.md): learning rate and weight decay log-uniform, dropout uniform, the cosine
restart period T0 and the batch size categorical.
"""

import dataclasses

TUNED_FIELDS = ("lr", "weight_decay", "dropout", "t0", "batch_size")


@dataclasses.dataclass(frozen=True)
class LogUniform:
    low: float
    high: float


@dataclasses.dataclass(frozen=True)
class Uniform:
    low: float
    high: float


@dataclasses.dataclass(frozen=True)
class Choice:
    values: tuple


SPACES = {
    # Section IV-C of the paper.
    "paper": {
        "lr": LogUniform(3e-5, 2e-4),
        "weight_decay": LogUniform(2e-5, 2e-2),
        "dropout": Uniform(0.1, 0.5),
        "t0": Choice((1, 2, 3, 5, 10)),
        "batch_size": Choice((8, 16, 32, 64)),
    },
    # The public reference notebook searched wider than the paper reports; T0 as above.
    "wide": {
        "lr": LogUniform(1e-5, 3e-2),
        "weight_decay": LogUniform(2e-5, 4e-2),
        "dropout": Uniform(0.02, 0.5),
        "t0": Choice((1, 2, 3, 5, 10)),
        "batch_size": Choice((4, 8, 16, 32, 64)),
    },
}


def suggest(trial, space, fixed=None):
    """Sample (or, for a retried trial, read back) the five hyperparameters of one trial.

    Parameters
    ----------
    trial : optuna.Trial
    space : str
        A key of :data:`SPACES`.
    fixed : dict, optional
        Fields pinned to one value. They are still "suggested", from a single-value
        distribution, so every trial records all five parameters.

    Returns
    -------
    dict
        ``{field: value}`` for every field in :data:`TUNED_FIELDS`, ready for
        ``TrainConfig.replace(**params)``.
    """
    params = {}
    fixed = fixed or {}
    for name in TUNED_FIELDS:
        dist = SPACES[space][name]
        if name in fixed:
            params[name] = trial.suggest_categorical(name, [fixed[name]])
        elif isinstance(dist, LogUniform):
            params[name] = trial.suggest_float(name, dist.low, dist.high, log=True)
        elif isinstance(dist, Uniform):
            params[name] = trial.suggest_float(name, dist.low, dist.high)
        else:
            params[name] = trial.suggest_categorical(name, dist.values)
    return params


def describe(space):
    """One line per parameter, for ``--help`` texts and reports."""
    lines = []
    for name, dist in SPACES[space].items():
        if isinstance(dist, LogUniform):
            lines.append(f"{name}: log-uniform [{dist.low:g}, {dist.high:g}]")
        elif isinstance(dist, Uniform):
            lines.append(f"{name}: uniform [{dist.low:g}, {dist.high:g}]")
        else:
            lines.append(f"{name}: one of {list(dist.values)}")
    return lines
