"""The one crop/pad-to-T rule, shared by training batches, export calibration and the device."""

import subprocess
import sys

import numpy as np

from sertiny.features.frames import fit_to_length
from sertiny.training.inputs import stack_clips


def _clip(frames, width=3):
    return np.arange(frames * width, dtype=np.float64).reshape(frames, width)


def test_long_clips_keep_their_centre_and_short_ones_are_zero_padded_at_the_end():
    long = fit_to_length(_clip(9), 4)
    np.testing.assert_array_equal(long, _clip(9)[2:6])  # (9 - 4) // 2 = 2 frames cut in front
    short = fit_to_length(_clip(2), 4)
    np.testing.assert_array_equal(short, np.r_[_clip(2), np.zeros((2, 3))])
    assert long.dtype == short.dtype == np.float32


def test_without_pad_only_the_real_frames_remain():
    assert fit_to_length(_clip(2), 4, pad=False).shape == (2, 3)
    np.testing.assert_array_equal(fit_to_length(_clip(9), 4, pad=False), fit_to_length(_clip(9), 4))


def test_training_batches_use_the_same_rule():
    clips = [_clip(9), _clip(2)]
    batch, lengths = stack_clips(clips, 4)
    np.testing.assert_array_equal(batch, np.stack([fit_to_length(c, 4) for c in clips]))
    np.testing.assert_array_equal(lengths, [4, 2])


def test_the_device_path_does_not_import_the_training_package():
    code = ("import sys, sertiny.runtime.runner, sertiny.runtime.chunked, sertiny.runtime.classifier, "
            "sertiny.bench.run\nprint(sorted(m for m in sys.modules if m.startswith('sertiny.training')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
