"""Registry of model builders and the :class:`ModelConfig` that rebuilds a model."""

import dataclasses
import fnmatch
import re

from .._config import Config, added_field, check_choice, check_float, check_int
from ..errors import ParameterError

# family name -> (builder or its module's import path, default hidden sizes, padding modes,
# whether it builds auxiliary heads)
_FAMILIES = {}
_NAME_RE = re.compile(r"^(?P<family>[a-z_]+?)_h(?P<hidden>\d+)$")
_HEAD_NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")

PADDING_MODES = ("zeros", "masked")


@dataclasses.dataclass(frozen=True, kw_only=True)
class ModelConfig(Config):
    """Everything needed to rebuild a model's graph (weights are stored separately).

    family: registered family, e.g. ``"res_lstm_sa"``.
    hidden: units of the main LSTM (the paper's h32/h64/h128).
    n_features: per-frame input dims (46 for 34 MFCC + 12 chroma, 40 for the logmel16k preset).
    n_classes: number of output classes.
    seq_len: fixed number of frames T the model is built for.
    dropout: dropout rate before the classifier.
    forget_bias: initial forget-gate bias. The reference PyTorch code sets both of
        PyTorch's bias vectors to 1, so its effective forget bias is 2; Keras has one.
    padding: ``"zeros"`` runs the network over zero frames after a short clip, exactly
        as deployed; ``"masked"`` skips them (LSTM state carried, attention masked),
        like PyTorch packed sequences. A family may support only some modes
        (``cnn_lstm``, ``vit``: zeros only).
    seed: initialisation seed.
    aux_heads: auxiliary softmax heads for multi-task training, ``((name, n_classes), ...)``:
        each is a Dense layer ``dense_<name>`` on the same dropout output as the emotion
        head ``dense``, and the model then outputs a dict ``{"emotion": ..., name: ...}``.
        Empty (the default) builds the single-output model. Training aids only: export
        ships the emotion head. Families registered with ``multitask=True`` only.
    """

    family: str
    hidden: int
    n_features: int = 46
    n_classes: int = 8
    seq_len: int = 110
    dropout: float = 0.3
    forget_bias: float = 2.0
    padding: str = "zeros"
    seed: int = 0
    aux_heads: tuple = added_field(())

    def __post_init__(self):
        owner = "ModelConfig"
        _ensure_builtin_families()
        check_choice(owner, "family", self.family, set(_FAMILIES))
        check_int(owner, "hidden", self.hidden, min_value=1)
        check_int(owner, "n_features", self.n_features, min_value=1)
        check_int(owner, "n_classes", self.n_classes, min_value=2)
        check_int(owner, "seq_len", self.seq_len, min_value=1)
        check_float(owner, "dropout", self.dropout, min_value=0.0, max_value=0.95)
        check_float(owner, "forget_bias", self.forget_bias)
        check_choice(owner, "padding", self.padding, set(PADDING_MODES))
        paddings = _FAMILIES[self.family][2]
        if self.padding not in paddings:
            raise ParameterError(
                f"The 'padding' parameter of ModelConfig must be one of {list(paddings)} for the "
                f"{self.family!r} family. Got {self.padding!r} instead."
            )
        check_int(owner, "seed", self.seed, min_value=0)
        self._check_aux_heads(owner)

    def _check_aux_heads(self, owner):
        try:
            heads = tuple((name, n) for name, n in self.aux_heads)
        except (TypeError, ValueError):
            heads = None
        names = [name for name, _ in heads or ()]
        if heads is None or len(set(names)) != len(names) or not all(
                isinstance(name, str) and _HEAD_NAME_RE.match(name) and name != "emotion"
                and not isinstance(n, bool) and isinstance(n, int) and n >= 2 for name, n in heads):
            raise ParameterError(
                f"The 'aux_heads' parameter of {owner} must be a list of (name, n_classes) pairs with distinct "
                "lower-case names other than 'emotion' and n_classes >= 2, e.g. [('intensity', 2)]. "
                f"Got {self.aux_heads!r} instead."
            )
        object.__setattr__(self, "aux_heads", heads)
        if heads and not _FAMILIES[self.family][3]:
            raise ParameterError(
                f"The 'aux_heads' parameter of {owner} must be empty for the {self.family!r} family, which "
                f"builds no auxiliary heads (multi-task families: {', '.join(multitask_families())}). "
                f"Got {self.aux_heads!r} instead."
            )

    def to_dict(self):
        d = super().to_dict()
        d["aux_heads"] = [list(head) for head in self.aux_heads]
        return d

    @property
    def name(self):
        return f"{self.family}_h{self.hidden}"


def register_model(family, *, hidden_sizes=(32, 64, 128), paddings=PADDING_MODES, multitask=False):
    """Class/function decorator: register ``builder(config) -> keras.Model`` for a family.

    ``paddings``: the :data:`PADDING_MODES` the family can build (``"masked"`` needs every
    layer to carry a Keras mask). ``multitask``: the builder honours ``config.aux_heads``.
    """

    def decorator(builder):
        _FAMILIES[family] = (builder, tuple(hidden_sizes), tuple(paddings), bool(multitask))
        return builder

    return decorator


def _ensure_builtin_families():
    # The builders import Keras; registering their names must not. So the registry knows
    # the built-in families by module, and imports that module only to build.
    for family, (module, paddings, multitask) in _BUILTIN.items():
        _FAMILIES.setdefault(family, (module, (32, 64, 128), paddings, multitask))


# family -> (module whose @register_model builds it, padding modes it supports, whether it
# builds auxiliary heads); both must match the module's decorator (a test checks). The
# LSTM-SA families have no auxiliary heads: their named weight format has no place for them.
_BUILTIN = {
    "lstm_sa": ("sertiny.models.lstm_sa", PADDING_MODES, False),
    "res_lstm_sa": ("sertiny.models.lstm_sa", PADDING_MODES, False),
    "bilstm_att": ("sertiny.models.baselines", PADDING_MODES, True),
    "dual_lstm": ("sertiny.models.baselines", PADDING_MODES, True),
    "cnn_lstm": ("sertiny.models.baselines", ("zeros",), True),
    "vit": ("sertiny.models.vit", ("zeros",), False),
}


def multitask_families():
    """Families whose builders add auxiliary heads (``ModelConfig.aux_heads``)."""
    _ensure_builtin_families()
    return sorted(family for family, entry in _FAMILIES.items() if entry[3])


def list_models(pattern="*"):
    """Registered model names (``family_hN`` for each family's standard sizes) matching a glob."""
    _ensure_builtin_families()
    names = [f"{fam}_h{h}" for fam, (_, sizes, *_) in _FAMILIES.items() for h in sizes]
    return sorted(n for n in names if fnmatch.fnmatch(n, pattern))


def parse_model_name(name):
    """``"res_lstm_sa_h64"`` -> ``("res_lstm_sa", 64)``; any hidden size is allowed."""
    _ensure_builtin_families()
    match = _NAME_RE.match(name)
    if not match or match["family"] not in _FAMILIES:
        raise ParameterError(
            f"Unknown model {name!r}. Known models: {', '.join(list_models())} "
            "(any hidden size works, e.g. res_lstm_sa_h48)."
        )
    return match["family"], int(match["hidden"])


def model_config(name, **overrides):
    """The :class:`ModelConfig` for a registered name, with field overrides."""
    family, hidden = parse_model_name(name)
    return ModelConfig(family=family, hidden=hidden, **overrides)


def _builder(family):
    import importlib

    _ensure_builtin_families()
    builder = _FAMILIES[family][0]
    if isinstance(builder, str):
        importlib.import_module(builder)  # its @register_model replaces the string
        builder = _FAMILIES[family][0]
    return builder


def create_model(name_or_config, **overrides):
    """Build a Keras model (JAX backend) from a name or a :class:`ModelConfig`."""
    config = name_or_config
    if isinstance(config, str):
        config = model_config(config, **overrides)
    elif overrides:
        config = config.replace(**overrides)
    return _builder(config.family)(config)
