"""Speaker-adaptive normalisation from a few enrolment clips (benchmarks/enrolment.py)."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

_SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "enrolment.py"
_spec = importlib.util.spec_from_file_location("enrolment", _SCRIPT)
enrolment = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(enrolment)


def test_a_draw_is_the_same_for_every_model_and_leaves_clips_to_score():
    clips = list(range(100, 160))
    draw = enrolment.enrolment_draw(clips, 8, 0, "07")
    assert draw == enrolment.enrolment_draw(clips, 8, 0, "07") and len(set(draw)) == 8 and set(draw) <= set(clips)
    assert draw != enrolment.enrolment_draw(clips, 8, 1, "07")  # another draw
    assert draw != enrolment.enrolment_draw(clips, 8, 0, "08")  # another speaker
    assert len(enrolment.enrolment_draw(clips[:5], 8, 0, "07")) == 4  # at least one clip is scored
    assert enrolment.enrolment_draw(clips, enrolment.ALL, 0, "07") == clips


class _MeanSign:
    """A stand-in fold model: label 1 when a clip's first feature is above zero on average."""

    class norm:  # the fold's statistics after speaker normalisation: identity here
        @staticmethod
        def apply(x):
            return x

    def labels(self, clips):
        return np.array([int(np.mean(c[:, 0]) > 0) for c in clips])


def test_enrolled_labels_use_the_enrolment_clips_statistics_and_score_only_the_rest():
    rng = np.random.default_rng(0)
    # speaker A's clips sit far above speaker B's; within each, half the clips are above its mean
    features = [rng.normal(loc=100 + (3 if i % 2 else -3), size=(20, 2)) for i in range(12)]
    features += [rng.normal(loc=-100 + (3 if i % 2 else -3), size=(20, 2)) for i in range(12)]
    by_speaker = {"A": list(range(12)), "B": list(range(12, 24))}
    out = enrolment.enrolled_labels(_MeanSign(), features, "none", by_speaker, 4, 0)
    enrolled = {i for s, c in by_speaker.items() for i in enrolment.enrolment_draw(c, 4, 0, s)}
    assert set(out) == set(range(24)) - enrolled
    # without the speaker's own statistics every A clip would be 1 and every B clip 0
    assert [out[i] for i in sorted(out)] == [i % 2 for i in sorted(out)]
    everything = enrolment.enrolled_labels(_MeanSign(), features, "none", by_speaker, enrolment.ALL, 0)
    assert set(everything) == set(range(24))


def test_the_benchmark_refuses_a_run_without_speaker_statistics(tmp_path):
    from sertiny.training import TrainConfig
    from sertiny.training.rundir import RunDir

    for name in ("run", "reference"):
        RunDir(tmp_path / name).write_train_config(TrainConfig(model="lstm_sa_h8"))
        (tmp_path / name / "run.json").write_text("{}")
    with pytest.raises(SystemExit, match="normalization 'speaker'"):
        enrolment.measure(tmp_path / "run", tmp_path / "reference", [4], 1, progress=False)
