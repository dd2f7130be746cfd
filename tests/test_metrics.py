"""The one UAR: every class of the model counts, an absent class as recall 0."""

import numpy as np
import pytest

from sertiny.metrics import per_class_recall, uar


def test_uar_is_the_mean_recall_over_all_classes():
    y_true = [0, 0, 1, 1, 2, 2]
    y_pred = [0, 1, 1, 1, 0, 0]
    np.testing.assert_allclose(per_class_recall(y_true, y_pred, 3), [0.5, 1.0, 0.0])
    assert uar(y_true, y_pred, 3) == pytest.approx(0.5)


def test_a_class_without_clips_counts_as_zero_not_as_absent():
    # Class 2 has no clips in y_true (a small fold); it still takes its 1/C share.
    y_true, y_pred = [0, 1, 1], [0, 1, 2]
    np.testing.assert_allclose(per_class_recall(y_true, y_pred, 3), [1.0, 0.5, 0.0])
    assert uar(y_true, y_pred, 3) == pytest.approx(0.5)


def test_export_parity_and_training_report_the_same_uar():
    from sertiny.export.parity import summarize

    y = np.array([0, 1, 1])
    probs = {"f32": np.eye(3)[[0, 1, 2]], "int8": np.eye(3)[[0, 2, 2]]}
    summary = summarize(y, probs)
    assert summary["f32"]["uar"] == pytest.approx(uar(y, [0, 1, 2], 3)) == pytest.approx(0.5)
    assert summary["int8"]["uar"] == pytest.approx(1 / 3)
    assert summary["int8"]["uar_drop_pp"] == pytest.approx(100 * (0.5 - 1 / 3))
