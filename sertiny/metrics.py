"""The one definition of UAR (unweighted average recall) that every stage reports.

Training selects epochs by it, tuning optimises it, reports and export's parity print it:
all of them call :func:`uar`, so a figure means the same thing wherever it appears.
Light to import (scikit-learn is imported when a metric is computed).

Over which classes: all ``n_classes`` of the model, a class with no clips in ``y_true``
scoring recall 0 (scikit-learn's ``labels=range(C), zero_division=0``). The alternative,
averaging only the classes present, puts figures of different subsets on different
scales: a fold whose test speakers lack a class would be scored out of C-1 classes and
could look better than one that has them all. With a fixed denominator every UAR of a
C-class model is an average over the same C terms (chance is 1/C) and never overstates.
On speaker-independent RAVDESS folds every class is present, so the choice only shows on
small or unbalanced subsets.
"""

import numpy as np


def per_class_recall(y_true, y_pred, n_classes):
    """Recall of each class ``0 .. n_classes-1``.

    Parameters
    ----------
    y_true, y_pred : array-like [shape=(n,), dtype=int]
        True and predicted class ids in ``[0, n_classes)``.
    n_classes : int
        Classes of the model (C).

    Returns
    -------
    recall : np.ndarray [shape=(n_classes,), dtype=float64]
        Fraction of each class's clips predicted as that class; 0 for a class with no clips.
    """
    from .errors import require

    recall_score = require("sklearn.metrics", "train").recall_score
    return np.asarray(recall_score(y_true, y_pred, labels=list(range(int(n_classes))), average=None,
                                   zero_division=0), dtype=np.float64)


def uar(y_true, y_pred, n_classes):
    """Unweighted average recall over all ``n_classes`` classes (see the module docstring)."""
    return float(per_class_recall(y_true, y_pred, n_classes).mean())
