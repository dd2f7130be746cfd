"""Shared machinery for the per-stage config dataclasses.

Each stage (features, training, tuning, export, bench) defines one frozen, keyword-only
dataclass that inherits :class:`Config`. Configs validate themselves in ``__post_init__``
with the ``check_*`` helpers below (scikit-learn's message shape), serialise to JSON, and
are saved beside every artifact so it always knows how it was made.
"""

import dataclasses
import hashlib
import json
import numbers

from .errors import ParameterError


def added_field(default, **kwargs):
    """A field added to a config after files were saved with it: at its default it is left
    out of :meth:`Config.identity_dict`, so existing caches, runs and studies still match."""
    return dataclasses.field(default=default, metadata={"added": True}, **kwargs)


class Config:
    """Mixin for frozen dataclasses: dict/JSON round trip and a stable hash."""

    def to_dict(self):
        return dataclasses.asdict(self)

    def identity_dict(self):
        """``to_dict()`` without :func:`added_field` fields at their default: what makes two
        configs, or a config and one saved by an older sertiny, the same recipe."""
        data = self.to_dict()
        for field in dataclasses.fields(self):
            if field.metadata.get("added") and getattr(self, field.name) == field.default:
                data.pop(field.name, None)
        return data

    @classmethod
    def same_identity(cls, saved, config):
        """Whether a saved dict (possibly from an older sertiny) describes ``config``."""
        try:
            return cls.from_dict(saved).identity_dict() == config.identity_dict()
        except (ParameterError, TypeError):
            return False

    @classmethod
    def from_dict(cls, data):
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ParameterError(
                f"{cls.__name__} got unknown field(s) {unknown}; known fields are {sorted(names)}. "
                "The file may come from another sertiny version."
            )
        return cls(**data)

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)

    def to_json(self):
        return json.dumps(self.to_dict(), sort_keys=True)

    def digest(self, length=16):
        """A short hash of the config, stable across runs and machines."""
        identity = json.dumps(self.identity_dict(), sort_keys=True)
        return hashlib.sha256(identity.encode()).hexdigest()[:length]

    def save(self, path):
        from ._io import atomic_write_json

        atomic_write_json(path, self.to_dict())

    @classmethod
    def load(cls, path):
        from ._io import read_json

        return cls.from_dict(read_json(path))


def _fail(owner, name, requirement, value):
    raise ParameterError(
        f"The '{name}' parameter of {owner} must be {requirement}. Got {value!r} instead."
    )


def check_int(owner, name, value, *, min_value=None, max_value=None):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        _fail(owner, name, _range_text("an int", min_value, max_value), value)
    if (min_value is not None and value < min_value) or (max_value is not None and value > max_value):
        _fail(owner, name, _range_text("an int", min_value, max_value), value)


def check_float(owner, name, value, *, min_value=None, max_value=None, min_inclusive=True):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        _fail(owner, name, _range_text("a float", min_value, max_value, min_inclusive), value)
    too_low = min_value is not None and (value < min_value if min_inclusive else value <= min_value)
    too_high = max_value is not None and value > max_value
    if too_low or too_high or value != value:
        _fail(owner, name, _range_text("a float", min_value, max_value, min_inclusive), value)


def check_bool(owner, name, value):
    # Only True/False: 0, 1, "false" or None in a JSON config are mistakes, not flags.
    if not isinstance(value, bool):
        _fail(owner, name, "a bool", value)


def check_bool_fields(config):
    """:func:`check_bool` on every field a config dataclass declares ``bool``, so a flag
    added later is checked without anyone remembering to."""
    for field in dataclasses.fields(config):
        if field.type is bool:
            check_bool(type(config).__name__, field.name, getattr(config, field.name))


def check_choice(owner, name, value, choices):
    if value not in choices:
        _fail(owner, name, f"one of {sorted(choices)}", value)


def _range_text(kind, lo, hi, lo_inclusive=True):
    if lo is not None and hi is not None:
        return f"{kind} in the range [{lo}, {hi}]" if lo_inclusive else f"{kind} in the range ({lo}, {hi}]"
    if lo is not None:
        return f"{kind} {'>=' if lo_inclusive else '>'} {lo}"
    if hi is not None:
        return f"{kind} <= {hi}"
    return kind
