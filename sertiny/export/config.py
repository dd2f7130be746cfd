"""The export stage's config: which variants to build, how to calibrate, what to measure."""

import dataclasses

from .._config import Config, check_bool_fields, check_choice, check_float, check_int
from ..errors import ParameterError
from .calibration import STRATEGIES
from .graph import SCHEDULES


@dataclasses.dataclass(frozen=True, kw_only=True)
class ExportConfig(Config):
    """How ``sertiny export`` turns a run into a bundle.

    int8: build the full-integer model (int8 weights, activations, input and output).
    int16x8: also build integer models with int16 activations and int8 weights
        (``int16x8``, ``int16x8_chunk<K>``): the LSTM cell state keeps 256x finer steps,
        for when int8 activations lose too much accuracy (measured in results/export.md). A
        bundle that has them runs them by default (:func:`sertiny.runtime.variant.default_variant`).
    float16, dynamic: also build float16-weight and dynamic-range (int8 weights, float
        activations) full-unroll variants.
    chunks: chunk sizes K of the chunked/streaming profile, e.g. ``(1,)``; shipped as
        integer models (``int8_chunk<K>``, ``int16x8_chunk<K>``), and as float
        (``f32_chunk<K>``) when no integer mode is on or ``full`` is off.
    full: ship the full-unroll profile (``f32``, ``int8``, ...: one invoke per clip, for
        the Pi). False ships only the chunked profile, float and integer: a bundle a
        fifth the size, which is how sertiny's built-in default bundle is made. The
        full float model is still built, as the reference parity is measured against.
    c_arrays: write ``.h``/``.cc`` C arrays beside every integer model (for firmware).
    schedule: full-unroll recurrence, ``wavefront`` (LSTM1 step t fused with LSTM2 step
        t-1; for bilstm_att, the forward step t fused with the backward step T-1-t: half
        the ops) or ``sequential`` (layer after layer, direction after direction). Models
        with nothing to fuse are always sequential.
    per_channel: int8 weights with per-output-channel scales (default per-tensor: TFLite
        Micro then needs far less arena; see results/export.md for both).
    calib_clips: training clips the int8 ranges are calibrated on (None = all).
    calib_strategy: ``stratified`` (classes in turn) or ``random``.
    calib_seed: which clips are drawn.
    range_percentile: int8 activation ranges. 100 is the converter's own choice, the
        min/max over all calibration samples; below 100, that percentile of the clips'
        own extremes, so a few unusual clips do not coarsen the int8 step for all. The
        default 90 was chosen on the measurements in results/export.md (agreement with
        float up 3-4 points over min/max). int16x8 models always use min/max.
    cell_range: int8 only: cap the LSTM cell state's activation range at +-cell_range
        (None: calibrated like every other tensor). The cell state integrates its int8
        rounding error over every frame; see results/export.md for the measured effect.
    chunk_calib_samples: cap on (chunk, state) samples for a chunked model's calibration;
        they come from running the float chunked model over the calibration clips.
    weights: ``auto`` (the deploy model if the run has one, else the best fold model),
        ``deploy`` or ``seed<S>_fold<K>``.
    parity: measure float and int8 UAR and agreement on every fold's held-out speakers
        (each fold's model exported with these same settings).
    parity_seed: the run seed whose folds are measured (None = the first).
    tflm: measure the TFLite Micro arena and check every op against LiteRT.
    """

    int8: bool = True
    int16x8: bool = False
    float16: bool = False
    dynamic: bool = False
    chunks: tuple = ()
    full: bool = True
    c_arrays: bool = True
    schedule: str = "wavefront"
    per_channel: bool = False
    calib_clips: int | None = 200
    calib_strategy: str = "stratified"
    calib_seed: int = 0
    range_percentile: float = 90.0
    cell_range: float | None = None
    chunk_calib_samples: int | None = 4000
    weights: str = "auto"
    parity: bool = True
    parity_seed: int | None = None
    tflm: bool = True

    def __post_init__(self):
        owner = "ExportConfig"
        check_bool_fields(self)
        if not isinstance(self.chunks, (tuple, list)):
            raise ParameterError(f"The 'chunks' parameter of {owner} must be a list of ints >= 1 (e.g. (1,)). "
                                 f"Got {self.chunks!r} instead.")
        for k in self.chunks:  # before int(): 1.7 frames is a mistake, not 1
            check_int(owner, "chunks", k, min_value=1)
        object.__setattr__(self, "chunks", tuple(sorted({int(k) for k in self.chunks})))
        if not self.full and not self.chunks:
            raise ParameterError(
                "ExportConfig: full=False leaves nothing to ship; also pass chunks (e.g. chunks=(1,), "
                "--chunk 1 on the command line)."
            )
        check_choice(owner, "schedule", self.schedule, set(SCHEDULES))
        check_choice(owner, "calib_strategy", self.calib_strategy, set(STRATEGIES))
        if self.calib_clips is not None:
            check_int(owner, "calib_clips", self.calib_clips, min_value=1)
        if self.chunk_calib_samples is not None:
            check_int(owner, "chunk_calib_samples", self.chunk_calib_samples, min_value=1)
        check_int(owner, "calib_seed", self.calib_seed, min_value=0)
        if self.parity_seed is not None:
            check_int(owner, "parity_seed", self.parity_seed, min_value=0)
        from ..training.rundir import DEPLOY, parse_weights_name  # here: the device path imports this module

        if self.weights not in ("auto", DEPLOY):
            parse_weights_name(self.weights)
        check_float(owner, "range_percentile", self.range_percentile, min_value=50.0, max_value=100.0)
        if self.cell_range is not None:
            check_float(owner, "cell_range", self.cell_range, min_value=0.5)

    def to_dict(self):
        d = super().to_dict()
        d["chunks"] = list(self.chunks)
        return d
