"""Every stage config checks its fields at construction, in one message shape."""

import dataclasses

import pytest

from sertiny.bench.config import BenchConfig
from sertiny.errors import ParameterError
from sertiny.export.config import ExportConfig
from sertiny.features.config import FeatureConfig
from sertiny.models.registry import Family
from sertiny.quickstart import QuickstartConfig
from sertiny.training.config import TrainConfig
from sertiny.training.data import DataSpec
from sertiny.tuning.config import TuneConfig


def _construct(cls, **changes):
    if cls is Family:
        return Family(name="toy", builder="toy.module:build", **changes)
    if cls is TuneConfig:
        return TuneConfig(train=TrainConfig(), **changes)
    if cls is DataSpec:
        return DataSpec(kind="audio", path="corpus", **changes)
    if cls is FeatureConfig:
        return FeatureConfig(sample_rate=16_000, n_fft=1024, hop_length=640, **changes)
    return cls(**changes)


BOOL_FIELDS = [(cls, field.name)
               for cls in (BenchConfig, DataSpec, ExportConfig, FeatureConfig, Family, TrainConfig, TuneConfig)
               for field in dataclasses.fields(cls) if field.type is bool]


def test_every_stage_config_has_bool_fields_to_check():
    assert {cls for cls, _ in BOOL_FIELDS} == {BenchConfig, DataSpec, ExportConfig, FeatureConfig, Family,
                                               TrainConfig, TuneConfig}
    assert {"int8", "full", "c_arrays", "parity", "tflm"} <= {name for cls, name in BOOL_FIELDS if cls is ExportConfig}


@pytest.mark.parametrize("cls,name", BOOL_FIELDS, ids=[f"{c.__name__}.{n}" for c, n in BOOL_FIELDS])
@pytest.mark.parametrize("value", [0, 1, "false", None])
def test_bool_fields_take_only_true_or_false(cls, name, value):
    with pytest.raises(ParameterError, match=rf"The '{name}' parameter of {cls.__name__} must be a bool\. Got"):
        _construct(cls, **{name: value})


@pytest.mark.parametrize("chunks", [(1.7,), (2.0,), ("1",), (True,), 1, (0,)])
def test_export_chunks_are_whole_frame_counts(chunks):
    with pytest.raises(ParameterError, match="'chunks' parameter of ExportConfig"):
        ExportConfig(chunks=chunks)


def test_export_chunks_are_sorted_and_deduplicated():
    assert ExportConfig(chunks=[4, 1, 4]).chunks == (1, 4)


@pytest.mark.parametrize("changes,match", [
    ({"parity_seed": -1}, "'parity_seed' parameter of ExportConfig"),
    ({"weights": "fold3"}, "seed<S>_fold<K>"),
])
def test_export_config_checks_its_other_fields(changes, match):
    with pytest.raises(ParameterError, match=match):
        ExportConfig(**changes)


@pytest.mark.parametrize("changes,match", [
    ({"dataset": "timit"}, "'dataset' parameter of QuickstartConfig"),
    ({"preset": "paper48k"}, "'preset' parameter of QuickstartConfig"),
    ({"model": "transformer_h64"}, "Unknown model"),
    ({"seeds": (-1,)}, "'seeds' parameter"),
    ({"epochs": 0}, "'epochs' parameter of QuickstartConfig"),
])
def test_quickstart_config_checks_its_choices(changes, match):
    with pytest.raises(ParameterError, match=match):
        QuickstartConfig(**changes)


@pytest.mark.parametrize("changes,match", [
    ({"dataset": "timit"}, "'dataset' parameter of DataSpec"),
    ({"backend": "torchaudio"}, "'backend' parameter of DataSpec"),
])
def test_data_spec_checks_its_choices(changes, match):
    with pytest.raises(ParameterError, match=match):
        DataSpec(kind="audio", path="corpus", **changes)


def test_cli_choices_are_the_stages_own_lists():
    from sertiny.cli import main
    from sertiny.data.datasets import DATASET_KINDS
    from sertiny.runtime.tflite import RUNTIMES

    def choices(command, option):
        param = next(p for p in command.params if p.name == option)
        return tuple(param.type.choices)

    assert choices(main.commands["quickstart"], "dataset") == DATASET_KINDS
    assert choices(main.commands["train"], "dataset") == DATASET_KINDS
    assert choices(main.commands["data"].commands["summary"], "kind") == DATASET_KINDS
    assert choices(main.commands["infer"], "runtime") == RUNTIMES
    assert choices(main.commands["bench"].commands["run"], "runtime") == RUNTIMES
