"""What a bundle variant is and what it is called: one rule for the exporter and the runtime.

A variant is a quantisation mode and a profile: ``int8`` is the full-unroll int8 model
(one invoke per clip), ``int8_chunk1`` the chunked one running K = 1 frame per invoke. The
name is the variant's key in ``sertiny.json`` and, as ``model_<name>.tflite``, its file.
The exporter builds names with :class:`Variant`, the runtime reads them back with
:meth:`Variant.parse`; nothing else takes a name apart.

Standard library only (the device path).
"""

import dataclasses
import re

from .._config import check_choice, check_int
from ..errors import ParameterError

MODES = ("f32", "int8", "int16x8", "float16", "dynamic")
INTEGER_MODES = ("int8", "int16x8")  # full-integer models; the others have float activations
PROFILES = ("full", "chunked")

_NAME = re.compile(r"^(?P<mode>[a-z0-9]+?)(?:_chunk(?P<chunk>[1-9][0-9]*))?$")


@dataclasses.dataclass(frozen=True)
class Variant:
    """A variant's kind.

    Attributes:
        mode: ``f32``, ``int8``, ``int16x8`` (int16 activations, int8 weights), ``float16``
            (float16 weights) or ``dynamic`` (int8 weights, float activations).
        profile: ``full`` (input ``(1, T, F)``, output ``(1, C)``) or ``chunked`` (K frames
            and the LSTM states per invoke; :class:`sertiny.runtime.chunked.ChunkedRunner`).
        chunk: K, for the chunked profile only.
    """

    mode: str
    profile: str = "full"
    chunk: int | None = None

    def __post_init__(self):
        check_choice("Variant", "mode", self.mode, set(MODES))
        check_choice("Variant", "profile", self.profile, set(PROFILES))
        if self.profile == "chunked":
            check_int("Variant", "chunk", self.chunk, min_value=1)
        elif self.chunk is not None:
            raise ParameterError(f"The 'chunk' parameter of Variant must be None for the full profile. "
                                 f"Got {self.chunk!r} instead.")

    @classmethod
    def chunked(cls, mode, chunk):
        return cls(mode, "chunked", chunk)

    @classmethod
    def parse(cls, name):
        """``"int8_chunk1"`` -> ``Variant("int8", "chunked", 1)``; ParameterError for a name
        that is not ``<mode>`` or ``<mode>_chunk<K>``."""
        match = _NAME.match(name) if isinstance(name, str) else None
        if match is None or match["mode"] not in MODES:
            raise ParameterError(f"{name!r} is not a variant name: <mode> or <mode>_chunk<K>, mode one of "
                                 f"{', '.join(MODES)} (e.g. int8, int8_chunk1).")
        chunk = match["chunk"]
        return cls(match["mode"], "chunked", int(chunk)) if chunk else cls(match["mode"])

    @property
    def name(self):
        return self.mode if self.profile == "full" else f"{self.mode}_chunk{self.chunk}"

    @property
    def quantized(self):
        """A full-integer model (integer inputs, outputs and activations)."""
        return self.mode in INTEGER_MODES

    @property
    def file_stem(self):
        """``model_<name>``: the ``.tflite`` file and, for integer models, the C array files."""
        return f"model_{self.name}"

    def __str__(self):
        return self.name


class OfVariant:
    """For a class that holds a model of one variant in ``kind``: the kind's ``name``,
    ``profile``, ``chunk`` and ``quantized`` as its own."""

    @property
    def name(self):
        return self.kind.name

    @property
    def profile(self):
        return self.kind.profile

    @property
    def chunk(self):
        return self.kind.chunk

    @property
    def quantized(self):
        return self.kind.quantized


def primary_int8(names):
    """The int8 model a bundle's headline figures describe, among variant ``names``: the
    full-unroll ``int8``, else the chunked int8 model with the smallest K (a chunked-only
    bundle), else None."""
    return primary_of_mode(names, "int8")


def primary_of_mode(names, mode):
    """Among variant ``names``, the one of ``mode`` (``int8``, ``int16x8``, ...) a bundle's
    figures describe: full unroll first, else the chunked model with the smallest K; None if
    there is none."""
    kinds = [kind for kind in map(Variant.parse, names) if kind.mode == mode]
    if not kinds:
        return None
    return min(kinds, key=lambda kind: (kind.profile != "full", kind.chunk or 0)).name


def default_variant(names):
    """The variant a bundle runs when none is named: its integer model with the finest
    activations (``int16x8`` before ``int8``: 16-bit activations keep 98-99 % of held-out labels
    where int8's rounding, integrated over every frame of the LSTM, flips 5-8 %; results/export.md),
    else the first variant. A bundle has int16x8 models only when its exporter asked for them."""
    return primary_of_mode(names, "int16x8") or primary_int8(names) or next(iter(names))


def resolve(names, requested):
    """The variant of ``names`` that ``requested`` means, or None.

    A name in ``names`` means itself. A profile-less mode (``f32``, ``int8``) on a bundle
    without that full-unroll model means its chunked model of that mode when there is
    exactly one (the built-in bundle ships ``f32_chunk1`` and ``int8_chunk1`` only).
    """
    if requested in names:
        return requested
    if requested not in MODES:
        return None
    chunked = [name for name in names if Variant.parse(name).mode == requested]
    return chunked[0] if len(chunked) == 1 else None
