"""The accuracy ablation recipes (train/accuracy_recipes.json) are valid TrainConfigs."""

import argparse
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from sertiny.training import TrainConfig

SCRIPT = Path(__file__).resolve().parents[1] / "train" / "accuracy.py"


def _accuracy_module():
    spec = importlib.util.spec_from_file_location("accuracy_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", sorted(_accuracy_module().load_recipes()))
def test_every_recipe_is_a_valid_train_config(name):
    config = _accuracy_module().train_config(name, "res_lstm_sa_h64", "edge16k", (0, 1, 2))
    assert isinstance(config, TrainConfig) and config.epochs >= 1


def test_a_teacher_recipe_names_the_teachers_run_relative_to_the_repository():
    config = _accuracy_module().train_config("distill", "res_lstm_sa_h64", "paper", (0,))
    assert config.teacher == "runs/accuracy/paper/res_lstm_sa_h64/reg_all"
    assert config.distill_weight > 0 and config.mixup_alpha > 0


def test_extends_inherits_and_overrides():
    recipes = _accuracy_module().load_recipes()
    assert recipes["reg_all_utt"]["mixup_alpha"] == recipes["reg_all"]["mixup_alpha"]
    assert recipes["reg_all_utt"]["utterance_norm"] == "mean"
    assert recipes["speed"]["batch_size"] == recipes["base"]["batch_size"]


def test_table1_first_block_is_read_from_its_report():
    block = _accuracy_module().table1_first_block()
    assert len(block) == 12  # six models x two inputs
    assert all(v.endswith("seeds)") and " ± " in v for v in block.values())


def _row(recipe, complete=True, **extra):
    return {"front_end": "edge16k", "model": "res_lstm_sa_h64", "recipe": recipe, "complete": complete, **extra}


def test_rows_of_runs_not_on_this_machine_are_carried_with_their_provenance(tmp_path):
    previous = tmp_path / "accuracy.json"
    previous.write_text(json.dumps({
        "date": "2026-11-30 08:00 UTC", "machine": {"cpu": "x"},
        "rows": [_row("a", uar_float_mean=0.4), _row("b", uar_float_mean=0.5),
                 _row("c", uar_float_mean=0.6, recorded={"date": "2026-11-01", "machine": {}})]}))
    here = [_row("b", uar_float_mean=0.55), _row("c", complete=False)]
    carried = {r["recipe"]: r for r in _accuracy_module().carried_rows(here, previous)}
    # a finished run here replaces its old row; an unfinished one gives way to it
    assert sorted(carried) == ["a", "c"]
    assert carried["a"]["recorded"] == {"date": "2026-11-30 08:00 UTC", "machine": {"cpu": "x"}}
    assert carried["c"]["recorded"]["date"] == "2026-11-01"  # provenance survives a second carry
    # an unfinished row reported earlier gives way to the same run here, which has got further
    previous.write_text(json.dumps({"rows": [_row("d", complete=False, n_folds_done=2)]}))
    assert _accuracy_module().carried_rows([_row("d", complete=False, n_folds_done=10)], previous) == []
    assert _accuracy_module().carried_rows(here, tmp_path / "missing.json") == []


def test_a_host_heads_constants_count_towards_the_microcontroller_flash():
    acc = _accuracy_module()
    head = {"attention_u": [0.0] * 4, "dense_kernel": [[0.0] * 3] * 10, "statistics": ["mean"], "sqrt_epsilon": 1e-4}
    assert acc.head_bytes(head) == 4 * (4 + 30) and acc.head_bytes(None) == 0
    row = {"uar_int8": 0.5, "int8_variant": "int8_chunk1", "int8_agreement": 0.98, "int8_arena_bytes": 8 << 10}
    assert "fits the microcontroller" in acc._int8_text(dict(row, int8_bytes=60 << 10, int8_head_bytes=2 << 10))
    assert "does not fit" in acc._int8_text(dict(row, int8_bytes=60 << 10, int8_head_bytes=8 << 10))


def test_the_int16x8_models_figures_follow_the_int8_ones_where_exported():
    acc = _accuracy_module()
    row = {"uar_int8": 0.47, "int8_variant": "int8_chunk1", "int8_agreement": 0.93}
    assert "int16x8" not in acc._int8_text(row)
    wide = dict(row, uar_int16x8=0.473, int16x8_variant="int16x8_chunk1", int16x8_agreement=0.991,
                int16x8_bytes=54392, int16x8_arena_bytes=7488, int8_head_bytes=2816)
    assert acc._int8_text(wide).endswith(
        ". **int16x8** (int16x8_chunk1, 16-bit activations, 53.1 KB + 2.8 KB host head, arena 7.3 KB: fits the "
        "microcontroller profile): 0.4730 (agreement 99.1 %)")
    seeds = dict(wide, uar_int16x8_per_seed={"0": 0.473, "1": 0.494}, uar_int16x8_mean=0.4835,
                 int16x8_agreement_per_seed=[0.991, 0.992])
    assert "mean 0.4835 over seeds' fold models (0.473, 0.494; agreement 99.1, 99.2 %)" in acc._int8_text(seeds)


def test_the_report_names_what_ships_beside_its_floor():
    acc = _accuracy_module()
    model, recipe = acc.SHIPPED_MODEL
    stats = dict(late_val_uar=0.5, uar_float_std=0.01, uar_int8=None, seeds=[0, 1, 2])
    shipped = dict(_row(recipe, **stats, uar_float_mean=0.49), front_end=acc.SHIPPED_INPUT, model=model)
    floor = dict(_row("linear", **stats, uar_float_mean=0.43), front_end=acc.SHIPPED_INPUT, model="stats_linear_h1")
    lines = acc._shipped_lines([shipped, floor, _row("other", **stats, uar_float_mean=0.6)])
    assert lines[0] == f"## What ships: `{model}`, recipe `{recipe}`, on `{acc.SHIPPED_INPUT}`"
    assert lines[-2].startswith(f"| {model} | {acc.SHIPPED_INPUT} | {recipe} | 3 | 0.5000 | 0.4900 ± 0.0100")
    assert lines[-2].endswith("| +6.0 pp |") and "not exported" in lines[-2]
    assert acc._shipped_lines([dict(shipped, complete=False)]) == []  # an unfinished run is not reported


def test_the_final_recipe_table_lists_every_family_and_says_what_is_missing_or_unfinished():
    acc = _accuracy_module()
    stats = dict(late_val_uar=0.5, uar_float_std=0.01, uar_int8=None, seeds=[0, 1, 2], uar_seed_ensemble=0.52)
    done = dict(_row(acc.FINAL_RECIPE, **stats, uar_float_mean=0.55), front_end=acc.FINAL_INPUT, model="lstm_sa_h64")
    partial = dict(_row(acc.FINAL_RECIPE, complete=False, seeds=[0, 1, 2], n_folds_done=4),
                   front_end=acc.FINAL_INPUT, model="res_lstm_sa_h64")
    extra = dict(done, model="lstm_sa_h128", uar_float_mean=0.57)  # not a FAMILY_MODELS width
    narrow = dict(done, model="lstm_sa_h32", uar_float_mean=0.52)
    earlier = dict(_row(acc.EARLIER_RECIPE, **stats, uar_float_mean=0.47), model="dual_lstm_h64")
    lines = acc._final_lines([done, partial, extra, narrow, earlier])
    rows = {line.split(" | ")[0][2:]: line for line in lines if line.startswith("| ") and " | " in line}
    assert set(acc.FAMILY_MODELS) <= set(rows)
    assert "0.5500 ± 0.0100" in rows["lstm_sa_h64"] and "0.5700" in rows["lstm_sa_h128"]
    assert "unfinished: 4 of 15 folds" in rows["res_lstm_sa_h64"]
    assert "not run yet" in rows["vit_h64"] and "| logmel16k |" in rows["vit_h64"]
    earlier_at = lines.index(f"## Earlier recipe `{acc.EARLIER_RECIPE}` per model")
    assert any(line.startswith("| dual_lstm_h64 | edge16k | 3 | 0.5000 | 0.4700") for line in lines[earlier_at:])
    # extra rows follow the families, and nothing of the earlier recipe leaks into the final table
    assert lines.index(rows["lstm_sa_h128"]) > lines.index(rows["vit_h64"])
    # Table I's other models in the order final trains them, narrowest first, the missing ones named
    assert lines.index(rows["lstm_sa_h32"]) < lines.index(rows["lstm_sa_h128"])
    assert "not run yet" in rows["res_lstm_sa_h128"]
    assert not any("0.4700" in line for line in lines[:earlier_at])
    assert not any(line.startswith("Under their floor") for line in lines)  # no floor run, nothing to say

    floor = dict(_row("linear", **stats, uar_float_mean=0.56), front_end=acc.FINAL_INPUT, model="stats_linear_h1")
    lines = acc._final_lines([done, partial, extra, earlier, floor])
    assert "Under their floor: lstm_sa_h64. Why, as far as measured: notes item 16 below." in lines


def test_table1s_second_block_has_the_final_recipe_on_the_shipped_input(monkeypatch):
    monkeypatch.syspath_prepend(str(SCRIPT.parent))  # the report reads the paper's figures from train/table1.py
    acc = _accuracy_module()
    stats = dict(late_val_uar=0.5, uar_float_std=0.01, seeds=[0, 1, 2])
    final = dict(_row(acc.FINAL_RECIPE, **stats, uar_float_mean=0.55), front_end=acc.FINAL_INPUT)
    earlier = dict(_row(acc.EARLIER_RECIPE, **stats, uar_float_mean=0.47))
    lines = acc._table1_lines([final, earlier])
    assert (f"| {acc.FINAL_INPUT} | res_lstm_sa_h64 | {acc.FINAL_RECIPE} | 0.5500 ± 0.0100 (3 seeds) |"
            in "\n".join(lines))
    assert f"| edge16k | res_lstm_sa_h64 | {acc.EARLIER_RECIPE} | 0.4700 ± 0.0100 (3 seeds) |" in "\n".join(lines)
    assert sum("not run yet" in line for line in lines) == 3 * len(acc.PAPER_MODELS) - 2
    partial = dict(_row(acc.FINAL_RECIPE, complete=False, seeds=[0, 1, 2], n_folds_done=10),
                   front_end=acc.FINAL_INPUT, model="res_lstm_sa_h128")
    lines = acc._table1_lines([final, earlier, partial])
    assert f"| {acc.FINAL_INPUT} | res_lstm_sa_h128 | {acc.FINAL_RECIPE} | unfinished: 10 of 15 folds |" in "\n".join(lines)


def test_final_trains_every_family_and_table1_model_once_and_exports_what_has_no_int8_figures(monkeypatch):
    acc = _accuracy_module()
    pairs = acc.final_runs()
    assert len(set(pairs)) == len(pairs)
    assert {(fe, m) for m, fe in acc.FAMILY_MODELS.items()} <= set(pairs)
    assert {(acc.FINAL_INPUT, m) for m in acc.PAPER_MODELS} <= set(pairs)
    assert [m for _, m in pairs[len(acc.FAMILY_MODELS):]] == ["lstm_sa_h32", "res_lstm_sa_h32", "lstm_sa_h128",
                                                               "res_lstm_sa_h128"]  # narrowest first
    trained, exported = [], []
    monkeypatch.setattr(acc, "run", lambda a: trained.append((a.input, *a.models, *a.recipes)))
    monkeypatch.setattr(acc, "export", lambda a: exported.append((a.input, *a.models, a.recipe)))
    monkeypatch.setattr(acc, "_seed0_int8_metrics",
                        lambda fe, m, r: {"uar_int8": 0.5 if m == "lstm_sa_h64" else None})
    monkeypatch.setattr(acc, "recorded_final_pairs", lambda seeds: set())
    acc.final(argparse.Namespace(seeds=[0, 1, 2], jobs=2, quiet=True, no_export=False, rerun=False))
    assert trained == [(fe, m, acc.FINAL_RECIPE) for fe, m in pairs]
    assert exported == [(fe, m, acc.FINAL_RECIPE) for fe, m in pairs if m != "lstm_sa_h64"]


def _summary_row(model, recipe, complete=True, uar_int8=0.5, seeds=(0, 1, 2)):
    return {"front_end": "edge16k_peak40_deltas", "model": model, "recipe": recipe, "complete": complete,
            "uar_int8": uar_int8, "seeds": list(seeds)}


def test_final_skips_runs_the_last_report_recorded_finished_unless_rerun(tmp_path, monkeypatch):
    acc = _accuracy_module()
    previous = tmp_path / "accuracy.json"
    previous.write_text(json.dumps({"rows": [
        _summary_row("lstm_sa_h64", acc.FINAL_RECIPE),
        _summary_row("dual_lstm_h64", acc.FINAL_RECIPE, complete=False),  # unfinished: train it
        _summary_row("cnn_lstm_h64", acc.FINAL_RECIPE, uar_int8=None),  # never exported: train and export
        _summary_row("res_lstm_sa_h64", acc.FINAL_RECIPE, seeds=(0,)),  # fewer seeds than the protocol
        _summary_row("bilstm_att_h32", "reg_all"),  # another recipe
    ]}))
    assert acc.recorded_final_pairs([0, 1, 2], previous) == {("edge16k_peak40_deltas", "lstm_sa_h64")}
    assert acc.recorded_final_pairs([0, 1, 2], tmp_path / "missing.json") == set()
    assert acc.recorded_final_pairs([0, 1, 2, 3], previous) == set()  # more seeds asked than recorded: train

    trained = []
    monkeypatch.setattr(acc, "recorded_final_pairs", lambda seeds: {(acc.FINAL_INPUT, "lstm_sa_h64")})
    monkeypatch.setattr(acc, "run", lambda a: trained.append(*a.models))
    args = argparse.Namespace(seeds=[0, 1, 2], jobs=2, quiet=True, no_export=True, rerun=False)
    acc.final(args)
    assert "lstm_sa_h64" not in trained and len(trained) == len(acc.final_runs()) - 1
    trained.clear()
    acc.final(argparse.Namespace(**{**vars(args), "rerun": True}))
    assert trained == [m for _, m in acc.final_runs()]


def test_speaker_adaptive_rows_stand_apart_beside_the_recipe_they_extend():
    acc = _accuracy_module()
    stats = dict(uar_float_std=0.01, seeds=[0, 1, 2], front_end=acc.FINAL_INPUT, model="lstm_sa_h64")
    adaptive = dict(_row("speaker_adaptive_room_e30", **stats, late_val_uar=0.61, uar_float_mean=0.60),
                    speaker_adaptive=True)
    final = dict(_row(acc.FINAL_RECIPE, **stats, late_val_uar=0.57, uar_float_mean=0.55), speaker_adaptive=False)
    lines = acc._speaker_adaptive_lines([adaptive, final])
    assert "NOT comparable" in lines[0]
    assert lines[-2] == (f"| lstm_sa_h64 | {acc.FINAL_INPUT} | speaker_adaptive_room_e30 | 3 | 0.6100 "
                         f"| 0.6000 ± 0.0100 | {acc.FINAL_RECIPE}, 0.5700, 0.5500 ± 0.0100 |")
    assert acc._speaker_adaptive_lines([final]) == []


def test_classical_baselines_show_their_uar_under_a_gain_when_measured():
    acc = _accuracy_module()
    measured = {"description": "d", "pooled_test_uar": 0.55,
                "under_gain": {"+6": {"pooled_test_uar": 0.52}, "-6": {"pooled_test_uar": 0.54}}}
    lines = acc._baseline_lines([], {"compare_2016": measured, "other": {"description": "e", "pooled_test_uar": 0.5}})
    assert "| d + LogisticRegression | compare_2016 | 0.5500 (at -6 / +6 dB: 0.5400 / 0.5200) |" in "\n".join(lines)
    assert "| e + LogisticRegression | other | 0.5000 | C per fold" in "\n".join(lines)


def _history(path, val_uars):
    path.mkdir(parents=True)
    lines = ["epoch,lr,train_loss,val_loss,val_uar"] + [f"{i},0.1,1,1,{v}" for i, v in enumerate(val_uars)]
    (path / "history.csv").write_text("\n".join(lines) + "\n")


def test_the_late_cycle_rise_shows_a_schedule_stopped_while_it_still_learned(tmp_path):
    acc = _accuracy_module()
    _history(tmp_path / "seed_0" / "fold_1", [0.1] * 6 + [0.40, 0.40, 0.50, 0.50])
    _history(tmp_path / "seed_0" / "fold_2", [0.1] * 6 + [0.30, 0.30, 0.30, 0.30])
    config = {"t0": 4}
    # last cycle: first halves 0.40, 0.40, 0.30, 0.30; second halves 0.50, 0.50, 0.30, 0.30
    assert acc.late_val_rise(tmp_path, config) == pytest.approx(0.05)
    assert acc.late_val_uar(tmp_path, config) == pytest.approx(0.375)


def test_the_ablation_table_shows_kept_val_and_rise_and_dashes_what_a_carried_row_lacks():
    acc = _accuracy_module()
    measured = _row("reg_all", late_val_uar=0.5, kept_val_uar=0.52, late_val_rise=0.031, uar_float_mean=0.48,
                    uar_float_std=0.01, uar_per_seed={"0": 0.48}, seeds=[0], speaker_adaptive=False)
    carried = _row("base", late_val_uar=0.4, uar_float_mean=0.39, uar_float_std=0.01, uar_per_seed={"0": 0.39},
                   seeds=[0], speaker_adaptive=False, recorded={"date": "d", "machine": {}})
    lines = acc._ablation_lines([carried, measured])
    header = next(line for line in lines if line.startswith("| front end"))
    assert "| late val UAR | kept val UAR | rise |" in header
    reg_all = next(line for line in lines if "| reg_all |" in line)
    assert "| 0.5000 | 0.5200 | +3.1 |" in reg_all
    base = next(line for line in lines if "| base |" in line)
    assert "| 0.4000 | — | — |" in base


def test_the_shipped_model_gets_its_own_ablation_table_and_speaker_runs_stay_out():
    acc = _accuracy_module()
    shipped = acc.SHIPPED_MODEL[0]
    common = dict(uar_float_mean=0.5, uar_float_std=0.01, uar_per_seed={"0": 0.5}, seeds=[0])
    rows = [_row("reg_all", late_val_uar=0.5, speaker_adaptive=False, **common),
            {**_row("finer", late_val_uar=0.6, speaker_adaptive=False, **common), "model": shipped},
            {**_row("by_speaker", late_val_uar=0.7, speaker_adaptive=True, **common), "model": shipped}]
    lines = acc._ablation_lines(rows)
    titles = [line for line in lines if line.startswith("## ")]
    assert titles == ["## Ablations (ResLSTM-SA-h64)", f"## Ablations of the shipped model ({shipped})"]
    shipped_table = lines[lines.index(titles[1]):]
    assert any("| finer |" in line for line in shipped_table)
    assert not any("| reg_all |" in line or "by_speaker" in line for line in shipped_table)
    assert acc._ablation_lines(rows[:1]) == lines[:lines.index(titles[1])]  # no shipped-model runs: no table


def test_validation_curves_average_every_fold_and_are_drawn(tmp_path):
    acc = _accuracy_module()
    _history(tmp_path / "run" / "seed_0" / "fold_1", [0.2, 0.4, 0.6])
    _history(tmp_path / "run" / "seed_1" / "fold_1", [0.4, 0.6])  # a shorter history bounds the curve
    np.testing.assert_allclose(acc.validation_curve(tmp_path / "run"), [0.3, 0.5])
    assert acc.validation_curve(tmp_path / "empty").size == 0
    assert acc.clips_per_epoch("reg_all") == 1 and acc.clips_per_epoch("reg_all_gain_noise") == 4
    png = tmp_path / "curves.png"
    acc.plot_validation_curves({"a": (np.array([1, 2]), np.array([0.3, 0.5]))}, png, "title")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_validation_curves_come_from_the_rows_so_carried_runs_are_still_drawn():
    acc = _accuracy_module()
    front_end, model = acc.ABLATION_RUN
    row = dict(front_end=front_end, model=model, recipe="reg_all", complete=True, speaker_adaptive=False,
               val_curve=[0.3, 0.5], recorded={"date": "2026-12-01"})  # carried: no run directory here
    other = dict(row, front_end=acc.CURVE_RUNS[1][0], model=acc.CURVE_RUNS[1][1])
    curves, emphasised, lacking = acc._validation_curves([row, other, dict(row, recipe="reg_all_e120", val_curve=[])])
    assert list(curves) == ["reg_all", f"reg_all ({other['model']}, {other['front_end']})"]
    np.testing.assert_allclose(curves["reg_all"][1], [0.3, 0.5])
    assert emphasised == [list(curves)[1]]
    assert lacking == 1  # the row without a curve: the report keeps the earlier figure rather than lose it


def test_a_run_with_nothing_measured_yet_is_not_a_row(tmp_path, monkeypatch):
    acc = _accuracy_module()
    run = tmp_path / "edge16k" / "res_lstm_sa_h64" / "reg_all"
    run.mkdir(parents=True)
    (run / "train_config.json").write_text(json.dumps({"seeds": [0], "t0": 10}))
    (run / "run.json").write_text("{}")
    monkeypatch.setattr(acc, "RUNS", tmp_path)
    assert acc.collect() == []


def test_a_finished_runs_row_keeps_its_validation_curve(tmp_path, monkeypatch):
    acc = _accuracy_module()
    run = tmp_path / "edge16k" / "res_lstm_sa_h64" / "reg_all"
    _history(run / "seed_0" / "fold_1", [0.2, 0.4, 0.6])
    _history(run / "seed_1" / "fold_1", [0.4, 0.6, 0.8])
    (run / "train_config.json").write_text(json.dumps({"seeds": [0, 1], "t0": 2}))
    (run / "run.json").write_text("{}")
    (run / "metrics.json").write_text(json.dumps({"uar_mean": 0.5, "uar_std": 0.0, "uar_per_seed": {}}))
    monkeypatch.setattr(acc, "RUNS", tmp_path)
    monkeypatch.setattr(acc, "seed_ensemble_uar", lambda run, seeds: 0.5)
    monkeypatch.setattr(acc, "int8_metrics", lambda *run: {})
    [row] = acc.collect()
    np.testing.assert_allclose(row["val_curve"], [0.3, 0.5, 0.7])
    json.dumps(row)  # goes into accuracy.json as it is


def test_compare_prints_validation_figures_on_the_folds_both_runs_finished(tmp_path, capsys):
    acc = _accuracy_module()
    for name, extra in (("a", [0.5, 0.7]), ("b", [0.2, 0.4])):
        (tmp_path / name).mkdir()
        (tmp_path / name / "train_config.json").write_text(json.dumps({"t0": 2}))
        _history(tmp_path / name / "seed_0" / "fold_1", [0.1, 0.3] + extra)
    _history(tmp_path / "a" / "seed_0" / "fold_2", [0.9] * 4)  # b has not finished this fold: left out
    acc.compare(argparse.Namespace(run=str(tmp_path / "a"), other=str(tmp_path / "b")))
    out = capsys.readouterr().out
    assert "(1): seed_0/fold_1" in out
    assert "late val UAR 0.6000" in out and "late val UAR 0.3000" in out
    assert "2: 0.200  4: 0.600" in out
