"""One Variant (mode, profile, chunk) and its name, shared by the exporter and the runtime."""

import pytest

from sertiny.errors import ParameterError
from sertiny.runtime.variant import MODES, Variant, default_variant, primary_int8, primary_of_mode, resolve


@pytest.mark.parametrize("name,kind", [
    ("f32", Variant("f32")),
    ("int8", Variant("int8")),
    ("int16x8_chunk10", Variant("int16x8", "chunked", 10)),
    ("f32_chunk1", Variant.chunked("f32", 1)),
])
def test_names_and_kinds_round_trip(name, kind):
    assert Variant.parse(name) == kind and kind.name == name == str(kind)
    assert kind.file_stem == f"model_{name}"


def test_only_integer_modes_are_quantized():
    assert [m for m in MODES if Variant(m).quantized] == ["int8", "int16x8"]


@pytest.mark.parametrize("name", ["int4", "int8_chunk0", "int8_chunk", "int8-chunk1", "INT8", "", None, "f32_chunk1x"])
def test_other_names_are_refused(name):
    with pytest.raises(ParameterError, match="not a variant name"):
        Variant.parse(name)


@pytest.mark.parametrize("kwargs", [{"mode": "int8", "chunk": 1}, {"mode": "int8", "profile": "chunked"},
                                    {"mode": "int8", "profile": "streaming", "chunk": 1}, {"mode": "int4"}])
def test_a_kind_is_checked(kwargs):
    with pytest.raises(ParameterError, match="parameter of Variant"):
        Variant(**kwargs)


def test_primary_int8_prefers_the_full_model_then_the_smallest_chunk():
    assert primary_int8(["f32", "int8_chunk10", "int8", "int8_chunk1"]) == "int8"
    assert primary_int8(["f32_chunk1", "int8_chunk10", "int8_chunk2"]) == "int8_chunk2"
    assert primary_int8(["f32", "float16"]) is None
    assert primary_of_mode(["int8_chunk1", "int16x8_chunk10", "int16x8_chunk1"], "int16x8") == "int16x8_chunk1"


def test_a_bundle_runs_its_finest_integer_model_unless_told_otherwise():
    # int16 activations keep the labels int8 rounding flips (results/export.md): the default when exported
    assert default_variant(["f32_chunk1", "int8_chunk1", "int16x8_chunk1"]) == "int16x8_chunk1"
    assert default_variant(["f32", "int8", "int8_chunk1"]) == "int8"
    assert default_variant(["f32", "float16"]) == "f32"


def test_a_profile_less_mode_means_the_one_chunked_model_of_that_mode():
    names = ["f32_chunk1", "int8_chunk1"]
    assert resolve(names, "f32") == "f32_chunk1" and resolve(names, "int8_chunk1") == "int8_chunk1"
    assert resolve(["int8", "int8_chunk1"], "int8") == "int8"
    assert resolve(["int8_chunk1", "int8_chunk10"], "int8") is None  # ambiguous
    assert resolve(names, "int4") is None and resolve(names, "int16x8") is None
