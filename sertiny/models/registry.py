"""The model registry: one :class:`Family` record per model family, and the :class:`ModelConfig` that rebuilds a model.

Every stage asks the registry what a family can do (build, pad, train auxiliary heads,
store its weights, export, stream) instead of keeping its own list of names. A new family
is one :class:`Family` entry in :data:`_BUILTIN` (or a :func:`register_family` call) plus
its own files: the Keras model module and, to export it, its export graph module.
"""

import dataclasses
import fnmatch
import importlib
import re

from .._config import Config, added_field, check_bool_fields, check_choice, check_float, check_int
from ..errors import ParameterError

_NAME_RE = re.compile(r"^(?P<family>[a-z_]+?)_h(?P<hidden>\d+)$")
_FAMILY_NAME_RE = re.compile(r"^[a-z]+(_[a-z]+)*$")
_HEAD_NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")

PADDING_MODES = ("zeros", "masked")
WEIGHT_FORMATS = ("named", "generic")
# Callables a Family may give as import paths ("package.module:function").
_CALLABLE_FIELDS = ("builder", "export_fold", "export_graph", "export_chunk")


@dataclasses.dataclass(frozen=True, kw_only=True)
class Family:
    """What every stage needs to know about one model family.

    Callables may be given as import paths, ``"package.module:function"``, which are
    imported on first use (:meth:`resolve`): the records themselves import nothing, so
    ``import sertiny`` and listing models stay free of Keras and TensorFlow.

    name: ``"res_lstm_sa"``: lower-case words joined by ``_``; models are named
        ``<name>_h<hidden>`` (``res_lstm_sa_h64``).
    builder: ``builder(ModelConfig) -> keras.Model`` (Keras 3, JAX backend). The model is
        named ``config.name``, its emotion head is the softmax Dense layer ``dense``, and
        with ``multitask`` each auxiliary head is a Dense layer ``dense_<name>``.
    hidden_sizes: the standard sizes :func:`list_models` names; any size builds.
    paddings: the :data:`PADDING_MODES` the builder supports (``"masked"`` needs every layer
        to carry a Keras mask).
    multitask: the builder honours ``ModelConfig.aux_heads``.
    weight_format: how :mod:`sertiny.models.weights` reads and writes the model's
        weights: ``"named"``, LSTM-SA's canonical names (read by export's LSTM-SA graphs, the
        NumPy reference and the C reference; no place for auxiliary heads), or
        ``"generic"``, ``<layer>/<variable>`` for every variable of every layer.
    export_fold: ``fold(weights, model_config) -> folded`` for export: checks the weight
        dict's keys and shapes (against ``model_config`` if not None), drops auxiliary
        heads, folds inference-time constants. ``folded`` has ``family``, ``n_features``
        and ``n_classes`` attributes. None: the family cannot be exported.
    export_graph: ``graph(tf, folded, x, schedule) -> (1, C) probabilities`` of one clip,
        ``x`` a (T, F) float32 tensor: the full-unroll profile (one invoke per clip), written
        with plain TensorFlow ops (:func:`sertiny.export.graph.full_unroll_function` wraps it).
    export_chunk: ``chunk_function(folded, chunk) -> tf.function`` of the chunked
        (streaming) profile, run on the host by :class:`sertiny.runtime.chunked.ChunkedRunner`
        (``folded`` then also gives ``head_dict()``); None: full profile only.
    wavefront: the export graph can fuse two recurrences into one cell
        (``ExportConfig.schedule="wavefront"``); without, every schedule builds the
        sequential graph.
    note: a few words for listings such as ``sertiny train --help``.
    """

    name: str
    builder: object
    hidden_sizes: tuple = (32, 64, 128)
    paddings: tuple = PADDING_MODES
    multitask: bool = False
    weight_format: str = "generic"
    export_fold: object = None
    export_graph: object = None
    export_chunk: object = None
    wavefront: bool = False
    note: str = ""

    def __post_init__(self):
        owner = "Family"
        if not isinstance(self.name, str) or not _FAMILY_NAME_RE.match(self.name):
            raise ParameterError(f"The 'name' parameter of Family must be lower-case words joined by '_' "
                                 f"(e.g. 'res_lstm_sa'). Got {self.name!r} instead.")
        for field in _CALLABLE_FIELDS:
            value = getattr(self, field)
            if not (callable(value) or (isinstance(value, str) and ":" in value)
                    or (value is None and field != "builder")):
                raise ParameterError(f"The '{field}' parameter of Family must be a callable or an import path "
                                     f"'package.module:function'. Got {value!r} instead.")
        object.__setattr__(self, "hidden_sizes", tuple(self.hidden_sizes))
        for size in self.hidden_sizes:
            check_int(owner, "hidden_sizes", size, min_value=1)
        object.__setattr__(self, "paddings", tuple(self.paddings))
        if not self.paddings or not set(self.paddings) <= set(PADDING_MODES):
            raise ParameterError(f"The 'paddings' parameter of Family must be a non-empty subset of {PADDING_MODES}. "
                                 f"Got {self.paddings!r} instead.")
        check_choice(owner, "weight_format", self.weight_format, set(WEIGHT_FORMATS))
        check_bool_fields(self)
        if self.multitask and self.weight_format == "named":
            raise ParameterError(f"Family {self.name!r}: the named weight format has no place for auxiliary heads; "
                                 "a multitask family uses weight_format='generic'.")
        if (self.export_graph is None) != (self.export_fold is None) or (self.export_chunk and not self.export_graph):
            raise ParameterError(f"Family {self.name!r}: export needs both export_fold and export_graph "
                                 "(and export_chunk only beside them).")

    @property
    def exportable(self):
        """Export builds the full-unroll profile (float and integer TFLite models)."""
        return self.export_graph is not None

    @property
    def streaming(self):
        """Export also builds the chunked (streaming) profile: ``--chunk K``."""
        return self.export_chunk is not None

    def model_names(self):
        """``<name>_h<hidden>`` for each standard size."""
        return [f"{self.name}_h{h}" for h in self.hidden_sizes]

    def resolve(self, field):
        """The callable ``field`` (``"builder"``, ``"export_fold"``, ...), imported if given as a path."""
        value = getattr(self, field)
        if value is None:
            raise ParameterError(f"The {self.name!r} family has no {field}.")
        if callable(value):
            return value
        module, _, attribute = value.partition(":")
        return getattr(importlib.import_module(module), attribute)


# The built-in families, in the order listings show them.
_BUILTIN = (
    Family(name="lstm_sa", builder="sertiny.models.lstm_sa:build_lstm_sa", weight_format="named",
           export_fold="sertiny.export.graph:fold_lstm_sa", export_graph="sertiny.export.graph:lstm_sa_graph",
           export_chunk="sertiny.export.graph:lstm_sa_chunk_function"),
    Family(name="res_lstm_sa", builder="sertiny.models.lstm_sa:build_res_lstm_sa", weight_format="named",
           export_fold="sertiny.export.graph:fold_lstm_sa", export_graph="sertiny.export.graph:lstm_sa_graph",
           export_chunk="sertiny.export.graph:lstm_sa_chunk_function", wavefront=True),
    Family(name="bilstm_att", builder="sertiny.models.baselines:build_bilstm_att", multitask=True,
           export_fold="sertiny.export.baseline_graphs:fold_baseline",
           export_graph="sertiny.export.baseline_graphs:bilstm_att_graph", wavefront=True),
    Family(name="dual_lstm", builder="sertiny.models.baselines:build_dual_lstm", multitask=True,
           export_fold="sertiny.export.baseline_graphs:fold_baseline",
           export_graph="sertiny.export.baseline_graphs:dual_lstm_graph", wavefront=True),
    Family(name="cnn_lstm", builder="sertiny.models.baselines:build_cnn_lstm", paddings=("zeros",), multitask=True,
           export_fold="sertiny.export.baseline_graphs:fold_baseline",
           export_graph="sertiny.export.baseline_graphs:cnn_lstm_graph"),
    Family(name="vit", builder="sertiny.models.vit:build_vit", paddings=("zeros",),
           export_fold="sertiny.export.baseline_graphs:fold_baseline", export_graph="sertiny.export.vit_graph:vit_graph",
           note="with --preset logmel16k"),
    Family(name="stats_linear", builder="sertiny.models.stats_linear:build_stats_linear", hidden_sizes=(1,),
           paddings=("zeros",), export_fold="sertiny.export.stats_linear_graph:fold_stats_linear",
           export_graph="sertiny.export.stats_linear_graph:stats_linear_graph",
           note="the linear floor; N is unused, use stats_linear_h1"),
    Family(name="res_lstm_sa_stats", builder="sertiny.models.res_lstm_sa_stats:build_res_lstm_sa_stats",
           paddings=("zeros",), export_fold="sertiny.export.res_lstm_sa_stats_graph:fold_res_lstm_sa_stats",
           export_graph="sertiny.export.res_lstm_sa_stats_graph:res_lstm_sa_stats_graph",
           export_chunk="sertiny.export.graph:lstm_sa_chunk_function", wavefront=True,
           note="ResLSTM-SA + the frame statistics; 'sertiny join' makes one"),
)
_FAMILIES = {family.name: family for family in _BUILTIN}


def register_family(family):
    """Add a :class:`Family` to the registry (after the built-in ones); returns it.

    Registering the same record again is a no-op; another record under a registered
    name is refused.
    """
    if not isinstance(family, Family):
        raise ParameterError(f"register_family takes a Family record. Got {family!r} instead.")
    known = _FAMILIES.get(family.name)
    if known is not None and known != family:
        raise ParameterError(f"A model family named {family.name!r} is already registered; choose another name.")
    _FAMILIES[family.name] = family
    return family


def register_model(family, **fields):
    """Decorator: register ``builder(config) -> keras.Model`` as a new family (timm style).

    ``fields`` are the other :class:`Family` fields (``hidden_sizes``, ``paddings``,
    ``multitask``, ``export_fold``, ...)::

        @register_model("tiny_gru", paddings=("zeros",))
        def build_tiny_gru(config): ...
    """

    def decorator(builder):
        register_family(Family(name=family, builder=builder, **fields))
        return builder

    return decorator


def get_family(name):
    """The :class:`Family` record of a registered family name."""
    family = _FAMILIES.get(name)
    if family is None:
        raise ParameterError(f"Unknown model family {name!r}. Known families: {', '.join(_FAMILIES)}.")
    return family


def families():
    """Every registered :class:`Family`, built-in ones first, in registration order."""
    return tuple(_FAMILIES.values())


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
        check_choice(owner, "family", self.family, set(_FAMILIES))
        check_int(owner, "hidden", self.hidden, min_value=1)
        check_int(owner, "n_features", self.n_features, min_value=1)
        check_int(owner, "n_classes", self.n_classes, min_value=2)
        check_int(owner, "seq_len", self.seq_len, min_value=1)
        check_float(owner, "dropout", self.dropout, min_value=0.0, max_value=0.95)
        check_float(owner, "forget_bias", self.forget_bias)
        check_choice(owner, "padding", self.padding, set(PADDING_MODES))
        paddings = _FAMILIES[self.family].paddings
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
        if heads and not _FAMILIES[self.family].multitask:
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


def multitask_families():
    """Families whose builders add auxiliary heads (``ModelConfig.aux_heads``)."""
    return sorted(family.name for family in families() if family.multitask)


def list_models(pattern="*"):
    """Registered model names (``family_hN`` for each family's standard sizes) matching a glob."""
    names = [name for family in families() for name in family.model_names()]
    return sorted(n for n in names if fnmatch.fnmatch(n, pattern))


def parse_model_name(name):
    """``"res_lstm_sa_h64"`` -> ``("res_lstm_sa", 64)``; any hidden size is allowed."""
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


def create_model(name_or_config, **overrides):
    """Build a Keras model (JAX backend) from a name or a :class:`ModelConfig`."""
    config = name_or_config
    if isinstance(config, str):
        config = model_config(config, **overrides)
    elif overrides:
        config = config.replace(**overrides)
    return get_family(config.family).resolve("builder")(config)
