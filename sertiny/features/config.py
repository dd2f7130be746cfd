"""The front-end configuration: one frozen dataclass that fixes every number of the features.

A :class:`FeatureConfig` is saved beside every feature cache, model and bundle, so a model
always knows exactly which front end it was trained on. Both back ends (``numpy`` for the
device, ``librosa`` as the reference) read the same config. Two kinds of frame exist
(:data:`KINDS`): ``"mfcc_chroma"`` (MFCC + chroma, the ResLSTM-SA paper's) and
``"log_mel"`` (the log-mel spectrum itself, the image a spectrogram ViT cuts into patches).

Presets (:func:`get_preset`):

``paper``
    The ResLSTM-SA paper's features: ``librosa.feature.mfcc(y, sr=48000, n_mfcc=34,
    n_fft=4096, hop_length=2048)`` stacked over ``librosa.feature.chroma_stft(y, sr=48000,
    n_chroma=12, n_fft=4096, hop_length=2048)``; 85 ms window, 43 ms hop, ~23.4 frames/s.
    Everything else is librosa's default, including the per-clip tuning estimate and the
    80 dB floor below the clip's loudest log-mel value.

``edge16k``
    The device front end: 16 kHz audio (what cheap MEMS microphones and the 16 kHz corpus
    copy give), 64 ms window, 40 ms hop - 25 frames/s, so a RAVDESS clip is still ~100
    frames long, as in the paper. Two librosa defaults are replaced because they need the
    whole clip before the first frame can be emitted, which a streaming device cannot do:

    - ``tuning=0.0`` instead of a per-clip estimate: librosa finds the tuning from a pitch
      histogram of the whole clip; a fixed A440 reference needs no look-ahead, and no pitch
      tracking on the device;
    - ``top_db=None`` instead of 80: that floor is relative to the loudest frame of the
      whole clip; a fixed absolute floor (next item) bounds the log instead.

    Both choices cost nothing in code size; their effect on accuracy is measured by training
    on both presets, not assumed.

    Quiet frames get fixed, clip-independent floors (so the front end stays streamable),
    chosen from the measured levels of RAVDESS's silent frames (results/frontend_floor.md,
    all 1440 clips). Without them the same recording often got another label when read from
    the 48 kHz original instead of the 16 kHz copy: the two differ only by 16-bit
    requantisation, which moves silence between digital zero and quantisation noise, and
    with librosa's ``amin`` (1e-10, -100 dB) and unfloored chroma that moved near-silent
    frames by more than one normalisation std.

    - ``amin=1e-7`` (-70 dB mel power, was 1e-10): 16-bit quantisation noise gives about
      -88 dB per mel band (this filterbank sums ~0.064 of a bin's power per band) and silent
      frames reach -74 dB at their 99th percentile, so requantisation noise alone does not
      lift a band off the floor; ~5 % of speech frames' band values lie below it.
    - ``chroma_floor=1e-4`` (-40 dB per FFT bin of ``|STFT|^2``): chroma is normalised per
      frame, so without a floor a near-silent frame's chroma is its noise scaled to a peak of
      1 (the feature that moved most). Quantisation noise is about -77 dB per bin and silent
      frames' bins reach -58 dB at their 99.9th percentile, while a voiced frame's harmonics
      lie tens of dB above -40 dB even in RAVDESS's quietest clips: of the frames above -40 dB
      mean mel power 0.25 % change their chroma by more than 0.1; silent ones get a constant one.

    Not solved by floors: a gain change shifts every log energy (and so MFCC 0, a loudness
    cue models lean on) and moves frames across the floors; results/frontend_floor.md
    measures it.

    Earlier sertiny versions shipped edge16k with ``amin=1e-10`` and no chroma floor; runs
    and bundles store their whole FeatureConfig, so those made then keep computing the
    features they were trained on.

``edge16k_peak``
    edge16k with its levels held below the running peak (``running_peak_db=40``): what the
    built-in model was trained on until it gained deltas. A microphone's gain is arbitrary, so a model should not read
    the recording level (edge16k's MFCC 0 and its floors in fixed dBFS do): each frame is
    attenuated so the loudest frame heard so far sits 40 dB above ``amin``, which puts the
    floors 40 dB below it, and a gain change leaves the frames as they were once a clip has
    got that loud (-30 dB mean mel power: 98.7 % of RAVDESS's clips do, at their first
    word; results/clip_levels.md). Streamable: one running maximum of state. Chosen on the
    validation speakers (ResLSTM-SA-h64, ``reg_all``: late val UAR 0.507 at 40 dB, 0.499 at
    50 dB, 0.492 on edge16k); fold models keep their label for 96 % of clips under a gain of ±6 dB
    (edge16k: 78 %) and for 99.4 % of actor 01's 48 kHz originals (97.2 %)
    (results/frontend_floor_running_peak.md). The level is information on RAVDESS, whose
    clips were all recorded at one gain: the stats_linear floor, which can only see clip
    averages, loses 3 pp without it (results/accuracy.md).

``edge16k_peak_deltas``
    edge16k_peak with each value's causal first difference appended (``deltas=True``, 92
    values per frame): what the built-in model is trained on. The frame-to-frame change is
    what a small recurrent model found hardest to learn from the static frames: with the
    same recipe it lifts validation UAR by 3-6 pp (results/accuracy.md, notes item 11).
    Streamable: one frame of state more than edge16k_peak. It roughly doubles the input
    weights of the first LSTM, so it fits the microcontroller profile with LSTM-SA-h64 but
    not with ResLSTM-SA-h64, whose first LSTM is square in the input width.

``logmel16k``
    The log-mel spectrogram for the ``vit`` family (``kind="log_mel"``): edge16k's audio
    path (16 kHz, 64 ms window, 40 ms hop, 25 frames/s, ``top_db=None`` for streaming), with
    each frame the dB power of 40 mel bands instead of MFCC + chroma:

    - 40 bands: the usual size of small-footprint speech front ends (keyword spotting on
      microcontrollers uses 32-40); the model's input, its patch embedding and the device's
      filterbank all grow with it, and 40 still resolve the formants (bands ~70 Hz apart
      below 1 kHz here);
    - ``fmin=50`` Hz: below it are mains hum and handling noise, and no voice energy
      except the lowest male F0 (~85 Hz and up);
    - ``fmax=7600`` Hz: resamplers and MEMS-microphone decimation filters roll off just
      below 8 kHz, so a top band reaching Nyquist would measure the filter, not the voice.

    - ``amin=1e-7``: edge16k's mel floor, for the same reason (this filterbank, too, sums
      ~0.064 of a bin's power per band); was 1e-10 before the floors were added.

    Tuning and the chroma fields do not apply to log-mel frames (they keep their defaults).
"""

import dataclasses

from .._config import Config, added_field, check_bool_fields, check_choice, check_float, check_int
from ..errors import ParameterError

# Bump whenever the numbers either back end produces for a given config change (a bug fix,
# a new librosa pin): it is part of every feature-cache key, so stale caches are not reused.
FEATURE_CODE_VERSION = "1"

_OWNER = "FeatureConfig"
WINDOWS = ("hann", "hamming")
# librosa pads head and tail separately; with "reflect"/"symmetric" a short tail is then
# reflected more than once, unlike a whole-signal pad, so only the modes where both agree
# exactly are offered.
PAD_MODES = ("constant", "edge")
MEL_NORMS = ("slaney", None)
# What one frame holds: MFCC then chroma, or the log-mel spectrum (dB) itself.
KINDS = ("mfcc_chroma", "log_mel")


@dataclasses.dataclass(frozen=True, kw_only=True)
class FeatureConfig(Config):
    """The front end: per frame ``[mfcc_0 .. mfcc_{n_mfcc-1}, chroma_0 .. chroma_{n_chroma-1}]``
    (``kind="mfcc_chroma"``, the default) or ``[mel_0 .. mel_{n_mels-1}]`` (``kind="log_mel"``).

    Apart from ``n_mfcc=34`` (the paper's), the defaults are librosa 0.11's own, so a config
    built with only ``sample_rate``, ``n_fft`` and ``hop_length`` reproduces
    ``np.concatenate([librosa.feature.mfcc(y, sr, n_mfcc, n_fft, hop_length),
    librosa.feature.chroma_stft(y, sr, n_chroma, n_fft, hop_length)]).T``, and with
    ``kind="log_mel"`` as well ``librosa.power_to_db(librosa.feature.melspectrogram(y, sr,
    n_fft, hop_length), ref=1.0, amin=amin, top_db=top_db).T``.

    Attributes
    ----------
    sample_rate : int
        Rate (Hz) the audio must have when it reaches the front end; loaders resample to it.
    n_fft : int
        FFT size and analysis window length (samples). Even, so the centre padding is symmetric.
    hop_length : int
        Samples between successive frames. Frames per second = ``sample_rate / hop_length``.
    window : {"hann", "hamming"}
        Analysis window, periodic ("fftbins=True") as librosa builds it.
    center : bool
        Pad ``n_fft // 2`` samples on both sides so frame ``t`` is centred on sample
        ``t * hop_length``; then a clip of ``n`` samples gives ``1 + n // hop_length`` frames.
        If False, a clip gives ``1 + (n - n_fft) // hop_length`` frames and must hold at
        least ``n_fft`` samples.
    pad_mode : {"constant", "edge"}
        How the centre padding is filled (zeros, or the first/last sample repeated).
    n_mfcc : int
        Number of cepstral coefficients kept (DCT-II, orthonormal, no liftering).
    n_mels : int
        Mel bands of the filterbank the MFCCs are taken from.
    fmin : float
        Lowest mel band edge (Hz).
    fmax : float or None
        Highest mel band edge (Hz); None means ``sample_rate / 2``.
    htk : bool
        HTK mel formula instead of Slaney's (linear below 1 kHz, log above).
    mel_norm : {"slaney", None}
        "slaney" scales each mel triangle to unit area (librosa's default); None leaves peaks at 1.
    amin : float
        Power floor before the log (``10 * log10(max(amin, power))``), in power units.
    top_db : float or None
        Clip log-mel values to ``max - top_db`` dB, the max taken over the WHOLE clip
        (librosa's ``power_to_db``). None disables the clip.
    n_chroma : int
        Chroma bins per octave.
    tuning : float or None
        Tuning offset in fractions of a chroma bin (cents / 100 for 12 bins). None estimates
        it per clip from the spectrogram exactly as ``librosa.feature.chroma_stft`` does
        (pitch tracking + histogram at 0.01 bin resolution).
    chroma_ctroct : float
        Centre (octaves above A0 = 27.5 Hz) of the Gaussian octave weighting of the chroma filterbank.
    chroma_octwidth : float or None
        Width (octaves) of that weighting; None weights all octaves equally.
    chroma_base_c : bool
        Chroma bin 0 is C (True, librosa's default) or A (False).
    kind : {"mfcc_chroma", "log_mel"}
        What a frame holds. ``"log_mel"`` frames are the ``n_mels`` log-mel values (dB,
        ``10 * log10(max(amin, mel power))``, then ``top_db``); ``n_mfcc`` and the chroma
        fields (``n_chroma``, ``tuning``, ``chroma_*``) are ignored then. Added after the
        first caches and runs were saved: at its default it is not part of the config's
        identity (:func:`sertiny._config.added_field`), so their digests still match.
    chroma_floor : float or None
        Power floor (units of the power spectrogram ``|STFT|^2``, per FFT bin) applied before
        the chroma filterbank and the per-frame normalisation: chroma is taken from
        ``np.maximum(S, chroma_floor)``. A frame whose every bin is below the floor gets one
        constant chroma vector instead of its noise's normalised to a peak of 1. None (the
        default, librosa's ``chroma_stft``) applies no floor. Added later, like ``kind``.
    running_peak_db : float or None
        Level normalisation a stream can apply: each frame's power spectrum is attenuated so
        that the running peak of the clip's loudness (the largest mean mel-band power over this
        frame and every earlier one) sits ``running_peak_db`` dB above ``amin``; a frame is never
        amplified. The floors (``amin``, ``chroma_floor``) then lie a fixed distance below the
        loudest speech heard so far instead of at fixed dBFS, and a gain change leaves every
        frame unchanged once the running peak has passed that level (the first frames of a
        clip, its leading silence, keep the fixed floors). Needs ``top_db=None`` (that floor
        waits for the whole clip). None (the default): absolute levels. Added later, like ``kind``.
    deltas : bool
        Append every value's causal first difference (frame t minus frame t - 1; zeros for the
        first frame) after the static values, doubling ``n_features``. Causal, unlike
        ``librosa.feature.delta``'s centred regression, which needs frames that a stream has not
        heard yet: one frame of state. False (the default): static values only. Added later,
        like ``kind``.
    pitch : bool
        Append two values to the static ones: how periodic the frame is (the normalised
        autocorrelation peak, 0-1) and its F0 in semitones above 27.5 Hz, 0 where the frame
        is not voiced (Boersma's autocorrelation method between 60 and 600 Hz, frame by
        frame: :func:`sertiny.features.numpy_frontend.pitch`). With ``deltas`` they get
        deltas too. False (the default): no pitch. Added later, like ``kind``.
    """

    sample_rate: int
    n_fft: int
    hop_length: int
    window: str = "hann"
    center: bool = True
    pad_mode: str = "constant"
    n_mfcc: int = 34
    n_mels: int = 128
    fmin: float = 0.0
    fmax: float | None = None
    htk: bool = False
    mel_norm: str | None = "slaney"
    amin: float = 1e-10
    top_db: float | None = 80.0
    n_chroma: int = 12
    tuning: float | None = None
    chroma_ctroct: float = 5.0
    chroma_octwidth: float | None = 2.0
    chroma_base_c: bool = True
    kind: str = added_field("mfcc_chroma")
    chroma_floor: float | None = added_field(None)
    running_peak_db: float | None = added_field(None)
    deltas: bool = added_field(False)
    pitch: bool = added_field(False)

    def __post_init__(self):
        check_bool_fields(self)
        check_int(_OWNER, "sample_rate", self.sample_rate, min_value=1000)
        check_int(_OWNER, "n_fft", self.n_fft, min_value=16)
        if self.n_fft % 2:
            raise ParameterError(
                f"The 'n_fft' parameter of {_OWNER} must be an even int. Got {self.n_fft!r} instead."
            )
        check_int(_OWNER, "hop_length", self.hop_length, min_value=1)
        check_choice(_OWNER, "window", self.window, WINDOWS)
        check_choice(_OWNER, "pad_mode", self.pad_mode, PAD_MODES)
        check_int(_OWNER, "n_mels", self.n_mels, min_value=1)
        check_choice(_OWNER, "kind", self.kind, KINDS)
        # The cepstrum is taken from the mel bands, so it cannot have more coefficients
        # than there are bands; log-mel frames have no cepstrum.
        check_int(_OWNER, "n_mfcc", self.n_mfcc, min_value=1,
                  max_value=self.n_mels if self.kind == "mfcc_chroma" else None)
        nyquist = self.sample_rate / 2
        check_float(_OWNER, "fmin", self.fmin, min_value=0.0, max_value=nyquist)
        if self.fmax is not None:
            check_float(_OWNER, "fmax", self.fmax, min_value=self.fmin, max_value=nyquist, min_inclusive=False)
        if self.mel_norm not in MEL_NORMS:
            raise ParameterError(
                f"The 'mel_norm' parameter of {_OWNER} must be 'slaney' or None. Got {self.mel_norm!r} instead."
            )
        check_float(_OWNER, "amin", self.amin, min_value=0.0, min_inclusive=False)
        if self.top_db is not None:
            check_float(_OWNER, "top_db", self.top_db, min_value=0.0)
        check_int(_OWNER, "n_chroma", self.n_chroma, min_value=1)
        if self.tuning is not None:
            check_float(_OWNER, "tuning", self.tuning, min_value=-0.5, max_value=0.5)
        check_float(_OWNER, "chroma_ctroct", self.chroma_ctroct)
        if self.chroma_octwidth is not None:
            check_float(_OWNER, "chroma_octwidth", self.chroma_octwidth, min_value=0.0, min_inclusive=False)
        if self.chroma_floor is not None:
            check_float(_OWNER, "chroma_floor", self.chroma_floor, min_value=0.0, min_inclusive=False)
        if self.running_peak_db is not None:
            check_float(_OWNER, "running_peak_db", self.running_peak_db, min_value=0.0, min_inclusive=False)
            if self.top_db is not None:
                raise ParameterError(
                    f"{_OWNER} takes either 'top_db' (a floor below the whole clip's loudest value) or "
                    f"'running_peak_db' (levels below the running peak, streamable), not both. Got top_db="
                    f"{self.top_db!r} and running_peak_db={self.running_peak_db!r}; set top_db=None."
                )

    @property
    def n_static(self):
        """Static values per frame: ``n_mfcc + n_chroma``, or ``n_mels`` for log-mel frames; 2 more with ``pitch``."""
        spectral = self.n_mels if self.kind == "log_mel" else self.n_mfcc + self.n_chroma
        return spectral + (2 if self.pitch else 0)

    @property
    def n_features(self):
        """Values per frame: :attr:`n_static`, twice that with ``deltas``."""
        return self.n_static * (2 if self.deltas else 1)

    @property
    def feature_names(self):
        """Column names of a feature array: ``("mfcc_0", ..., "chroma_0", ...)`` or ``("mel_0", ...)``,
        then ``("voicing", "f0_semitones")`` with ``pitch``, then ``("delta_mfcc_0", ...)`` with ``deltas``."""
        if self.kind == "log_mel":
            static = tuple(f"mel_{i}" for i in range(self.n_mels))
        else:
            static = tuple(f"mfcc_{i}" for i in range(self.n_mfcc)) + tuple(f"chroma_{i}" for i in range(self.n_chroma))
        static += ("voicing", "f0_semitones") if self.pitch else ()
        return static + (tuple(f"delta_{name}" for name in static) if self.deltas else ())

    @property
    def description(self):
        """What a frame holds, for messages and model cards: ``"34 MFCC + 12 chroma"``, ``"40 log-mel bands"``."""
        static = f"{self.n_mels} log-mel bands" if self.kind == "log_mel" else f"{self.n_mfcc} MFCC + {self.n_chroma} chroma"
        static += " + voicing and F0" if self.pitch else ""
        return static + (" + their deltas" if self.deltas else "")

    @property
    def frame_local(self):
        """True when each frame depends on its own samples only (no clip-level step: a
        per-clip tuning estimate, ``top_db`` below the clip's loudest value, or a running
        peak, or a delta reaching back to the frame before), so any stretch of a clip gives exactly the
        frames the whole clip has there."""
        tuning_local = self.tuning is not None or self.kind == "log_mel"
        return tuning_local and self.top_db is None and self.running_peak_db is None and not self.deltas

    @property
    def frames_per_second(self):
        """Frame rate (Hz): ``sample_rate / hop_length``."""
        return self.sample_rate / self.hop_length

    def n_frames(self, n_samples):
        """Frames produced for a clip of ``n_samples`` samples (0 if it is too short)."""
        if self.center:
            return 1 + n_samples // self.hop_length
        return max(0, 1 + (n_samples - self.n_fft) // self.hop_length)


# edge16k's variants differ from it in the fields named, nothing else.
_EDGE16K = FeatureConfig(sample_rate=16_000, n_fft=1024, hop_length=640, tuning=0.0, top_db=None, amin=1e-7,
                         chroma_floor=1e-4)
PRESETS = {
    # See the module docstring for why each preset is what it is.
    "paper": FeatureConfig(sample_rate=48_000, n_fft=4096, hop_length=2048),
    "edge16k": _EDGE16K,
    "edge16k_peak": _EDGE16K.replace(running_peak_db=40.0),
    "edge16k_peak_deltas": _EDGE16K.replace(running_peak_db=40.0, deltas=True),
    "logmel16k": FeatureConfig(sample_rate=16_000, n_fft=1024, hop_length=640, top_db=None, kind="log_mel",
                               n_mels=40, fmin=50.0, fmax=7600.0, amin=1e-7),
}


def list_presets():
    """Names of the built-in front-end presets, sorted."""
    return sorted(PRESETS)


def get_preset(name):
    """The :class:`FeatureConfig` registered under ``name`` (see :func:`list_presets`)."""
    check_choice("get_preset", "name", name, PRESETS)
    return PRESETS[name]


def as_config(config):
    """Accept a :class:`FeatureConfig` or a preset name; return the config."""
    if isinstance(config, FeatureConfig):
        return config
    if isinstance(config, str):
        return get_preset(config)
    raise ParameterError(
        f"The 'config' parameter must be a FeatureConfig or one of {list_presets()}. Got {config!r} instead."
    )

