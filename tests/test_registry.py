"""The model registry's Family records: what they accept, and that every stage reads them."""

import pytest

from sertiny.errors import ParameterError
from sertiny.models import Family, families, get_family, list_models, model_config, register_family, register_model
from sertiny.models import registry


@pytest.fixture
def scratch_registry(monkeypatch):
    """Families registered in a test are gone after it."""
    monkeypatch.setattr(registry, "_FAMILIES", dict(registry._FAMILIES))


def test_builtin_families_and_what_they_can_do():
    by_name = {f.name: f for f in families()}
    assert list(by_name) == ["lstm_sa", "res_lstm_sa", "bilstm_att", "dual_lstm", "cnn_lstm", "vit",
                            "stats_linear", "res_lstm_sa_stats"]
    assert [n for n, f in by_name.items() if f.streaming] == ["lstm_sa", "res_lstm_sa", "res_lstm_sa_stats"]
    assert all(f.exportable for f in by_name.values())
    assert [n for n, f in by_name.items() if f.weight_format == "named"] == ["lstm_sa", "res_lstm_sa"]
    assert [n for n, f in by_name.items() if f.paddings == ("zeros",)] == ["cnn_lstm", "vit", "stats_linear",
                                                                          "res_lstm_sa_stats"]
    assert registry.multitask_families() == ["bilstm_att", "cnn_lstm", "dual_lstm"]
    assert list_models() == sorted(name for f in families() for name in f.model_names())


@pytest.mark.parametrize("field", ["export_fold", "export_graph", "export_chunk"])
def test_every_export_path_names_a_function(field):
    for family in families():
        if getattr(family, field) is not None:
            assert callable(family.resolve(field)), (family.name, field)


def test_every_builder_path_names_a_function():
    pytest.importorskip("jax", reason="the builders' modules import Keras 3 + JAX")
    for family in families():
        assert callable(family.resolve("builder")), family.name


@pytest.mark.parametrize(("fields", "message"), [
    ({"name": "Res-LSTM"}, "'name' parameter of Family"),
    ({"name": "gru2"}, "'name' parameter of Family"),  # a digit would clash with <family>_h<N>
    ({"builder": "no_colon"}, "'builder' parameter of Family"),
    ({"paddings": ("zeros", "reflect")}, "'paddings' parameter of Family"),
    ({"weight_format": "onnx"}, "'weight_format' parameter of Family"),
    ({"multitask": 1}, "'multitask' parameter of Family must be a bool"),
    ({"hidden_sizes": (0,)}, "'hidden_sizes' parameter of Family"),
    ({"multitask": True, "weight_format": "named"}, "no place for auxiliary heads"),
    ({"export_fold": "m:fold"}, "export needs both export_fold and export_graph"),
    ({"export_chunk": "m:chunk"}, "export_chunk only beside them"),
])
def test_a_bad_family_record_is_refused_with_the_field_named(fields, message):
    with pytest.raises(ParameterError, match=message):
        Family(**{"name": "tiny_gru", "builder": "m:build", **fields})


def test_a_registered_family_is_known_to_every_stage(scratch_registry):
    @register_model("tiny_gru", hidden_sizes=(4,), paddings=("zeros",), multitask=True)
    def build(config):
        return config.name

    family = get_family("tiny_gru")
    assert family.builder is build and not family.exportable and not family.streaming
    assert "tiny_gru_h4" in list_models() and "tiny_gru" in registry.multitask_families()
    assert registry.create_model("tiny_gru_h4", aux_heads=(("sex", 2),)) == "tiny_gru_h4"
    with pytest.raises(ParameterError, match="one of \\['zeros'\\] for the 'tiny_gru' family"):
        model_config("tiny_gru_h4", padding="masked")
    register_family(family)  # the same record again: nothing changes
    with pytest.raises(ParameterError, match="already registered"):
        register_family(Family(name="tiny_gru", builder="m:other"))
    with pytest.raises(ParameterError, match="Unknown model family 'gru'. Known families: lstm_sa, "):
        get_family("gru")


def test_export_refuses_what_a_family_does_not_have(scratch_registry):
    from types import SimpleNamespace

    from sertiny.export.graph import chunk_function, chunk_refusal

    register_family(Family(name="tiny_gru", builder="m:build", export_fold="m:fold", export_graph="m:graph"))
    assert chunk_refusal() == "The chunked profile is implemented for lstm_sa/res_lstm_sa/res_lstm_sa_stats only"
    with pytest.raises(ParameterError, match="implemented for lstm_sa/res_lstm_sa/res_lstm_sa_stats only; export this tiny_gru"):
        chunk_function(SimpleNamespace(family="tiny_gru"), 1)
    with pytest.raises(ParameterError, match="The 'vit' family has no export_chunk"):
        get_family("vit").resolve("export_chunk")
