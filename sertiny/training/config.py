"""The training stage's config: hyperparameters, protocol and seeds in one saved object."""

import dataclasses

from .._config import Config, added_field, check_bool_fields, check_choice, check_float, check_int
from ..data.auxiliary import DEFAULT_AUX_TASKS, aux_head_sizes, check_aux_tasks
from ..data.splits import DEFAULT_VAL_SPEAKERS, FOLD_SCHEMES
from ..errors import ParameterError
from ..models.registry import PADDING_MODES, multitask_families, parse_model_name

NORMALIZATIONS = ("train", "global", "speaker")
SELECTIONS = ("best_val", "last")
DISTILL_INPUTS = ("clean", "augmented")


@dataclasses.dataclass(frozen=True, kw_only=True)
class TrainConfig(Config):
    """How a model is trained and evaluated (the paper's protocol by default).

    model: registered model name, e.g. ``res_lstm_sa_h64``.
    lr, weight_decay, dropout, t0, batch_size: the five hyperparameters the paper tunes.
        ``weight_decay`` is coupled L2 (added to the gradient, as PyTorch's Adam does);
        ``t0`` is the cosine-with-warm-restarts period in epochs, stepped once per epoch
        like the reference code, with floor ``lr_floor * lr``.
    epochs: epochs per fold; the epoch with the best validation UAR is kept.
    seeds: one full cross-validation per seed; results are reported as mean ± std, max.
    normalization: ``train`` = z-score statistics from each fold's training speakers
        (honest); ``global`` = over every clip, as the reference code does (leaks);
        ``speaker`` = speaker-adaptive: every clip is first z-scored with the statistics of
        all clips of its own speaker, test speakers included (their audio, never their
        labels), then with the training speakers' statistics. It models a device that has
        heard some of its user's speech (enrolment), so its results are reported apart and
        its runs are not exported.
    seq_len: fixed frames T; ``None`` = the ``seq_len_percentile`` of clip lengths.
        Shorter clips are zero-padded at the end (after normalisation, so padding is
        the feature mean); longer clips are cropped to their centre.
    padding: ``zeros`` (the network sees the padding, as deployed) or ``masked``.
    folds: ``auto`` = the paper's RAVDESS folds when all 24 actors are present, else
        speaker k-fold; ``paper``, ``kfold`` (``n_folds``) or ``loso``.
    n_val_speakers: validation speakers per fold for ``kfold``/``loso``.
    multitask: BiLSTM-ATT-MTL's multi-task training: auxiliary heads for ``aux_tasks`` on
        the model's context vector, loss = emotion cross-entropy + ``aux_loss_weight`` x
        each auxiliary cross-entropy (the paper's 1.0 / 0.3 / 0.3). Epoch selection, every
        reported metric and the exported model stay on the emotion head; the auxiliary
        heads' out-of-fold accuracy and UAR are reported beside. RAVDESS clip names only
        (:mod:`sertiny.data.auxiliary` says which labels and why).
    aux_tasks: auxiliary tasks, keys of :data:`sertiny.data.auxiliary.AUX_TASKS`.
    aux_loss_weight: weight of each auxiliary loss.

    Regularisation against memorising the training speakers (every one off by default;
    ``results/accuracy.md`` measures each):

    utterance_norm: per-clip normalisation before the fitted z-score (``none``, ``mean``,
        ``mean_var``; :data:`sertiny.features.normalize.UTTERANCE_MODES`). It needs only
        the clip, so it travels to the device inside the bundle's statistics.
    label_smoothing: the target puts ``1 - label_smoothing`` on the true class and spreads
        the rest evenly.
    mixup_alpha: mixup of training batches (inputs and targets mixed with a shuffled copy,
        weight ~ Beta(alpha, alpha)); 0 = off.
    time_masks, time_mask_frames: SpecAugment-style masks on the normalised features:
        ``time_masks`` spans of up to ``time_mask_frames`` frames set to 0 (the mean).
    feature_masks, feature_mask_width: the same across ``feature_mask_width`` adjacent
        feature dimensions (MFCC coefficients, chroma bins or mel bands).
    ema_epochs: evaluate and keep an exponential moving average of the weights with this
        time constant in epochs (batch-size independent); 0 = the raw weights.
    speed_perturb: speed factors (e.g. ``(0.9, 1.1)``): each training clip is also used
        played that much faster or slower (tempo and pitch, resampled from the audio and
        cached like other features); validation and test clips are never perturbed.
        Needs audio input.
    gain_perturb: gains in dB (e.g. ``(-6.0, 6.0)``): each training clip is also used that
        much louder or quieter (clipped at full scale), through the feature cache like
        ``speed_perturb``; for a model whose label does not move with the recording level.
    noise_snr: signal-to-noise ratios in dB (e.g. ``(30.0,)``): each training clip is also used
        with white noise that far below its mean power (seeded by the file name).
    pitch_shift: shifts in semitones (e.g. ``(-2.0, 2.0)``): each training clip is also used
        with its pitch moved that far at the same tempo (librosa's phase-vocoder
        ``pitch_shift``), through the feature cache like ``speed_perturb``: a voice higher or
        lower than the training speakers' own, which ``speed_perturb`` also gives but only
        together with a faster or slower delivery, itself an emotion cue.
    room_rt60: reverberation times in seconds (e.g. ``(0.0, 0.4)``): each training clip is
        also used through a random microphone response and, for a value above 0, a random
        synthetic room with that reverberation time (0: the microphone alone), seeded by the
        file name (:class:`sertiny.training.augment.RoomLoader`), through the feature cache
        like ``speed_perturb``: the colouring of a user's own room and microphone.
    teacher, distill_weight: knowledge distillation (:mod:`sertiny.training.distill`): the
        training target becomes ``(1 - distill_weight) x`` the label target ``+ distill_weight
        x`` the mean probabilities of ``teacher``'s models, a finished run directory on the
        same clips, front end and folds (for each fold, its models of that fold, all seeds).
        ``""`` / 0 = off; set both or neither.
    distill_inputs: what the teacher sees. ``clean``: each training clip as it is, once
        (any teacher, run directory or teacher file). ``augmented``: the very batch the
        student trains on, after masks, mixup and waveform copies, every step (a run
        directory teacher, run in the training loop): the teacher's probabilities of its
        own training clips are close to their labels, those of a masked or mixed clip are
        not, and they describe exactly the input the student is fitted to ("function
        matching", Beyer et al., CVPR 2022). Costs a forward pass of every teacher model
        per step.
    selection: ``best_val`` keeps the epoch with the best validation UAR (the paper's);
        ``last`` keeps the last epoch (the validation speakers then choose nothing, which
        with ``ema_epochs`` is a weight average over the end of training).
    """

    model: str = "res_lstm_sa_h64"
    lr: float = 2e-4
    weight_decay: float = 1e-4
    dropout: float = 0.3
    t0: int = 10
    batch_size: int = 32
    epochs: int = 100
    lr_floor: float = 0.01
    seeds: tuple = (0,)
    normalization: str = "train"
    seq_len: int | None = None
    seq_len_percentile: float = 99.0
    padding: str = "zeros"
    forget_bias: float = 2.0
    folds: str = "auto"
    n_folds: int = 5
    n_val_speakers: int = DEFAULT_VAL_SPEAKERS
    multitask: bool = added_field(False)
    aux_tasks: tuple = added_field(DEFAULT_AUX_TASKS)
    aux_loss_weight: float = added_field(0.3)
    utterance_norm: str = added_field("none")
    label_smoothing: float = added_field(0.0)
    mixup_alpha: float = added_field(0.0)
    time_masks: int = added_field(0)
    time_mask_frames: int = added_field(10)
    feature_masks: int = added_field(0)
    feature_mask_width: int = added_field(4)
    ema_epochs: float = added_field(0.0)
    selection: str = added_field("best_val")
    speed_perturb: tuple = added_field(())
    gain_perturb: tuple = added_field(())
    noise_snr: tuple = added_field(())
    pitch_shift: tuple = added_field(())
    room_rt60: tuple = added_field(())
    teacher: str = added_field("")
    distill_weight: float = added_field(0.0)
    distill_inputs: str = added_field("clean")

    def __post_init__(self):
        owner = "TrainConfig"
        check_bool_fields(self)
        parse_model_name(self.model)
        check_float(owner, "lr", self.lr, min_value=0.0, min_inclusive=False)
        check_float(owner, "weight_decay", self.weight_decay, min_value=0.0)
        check_float(owner, "dropout", self.dropout, min_value=0.0, max_value=0.95)
        check_int(owner, "t0", self.t0, min_value=1)
        check_int(owner, "batch_size", self.batch_size, min_value=2)
        check_int(owner, "epochs", self.epochs, min_value=1)
        check_float(owner, "lr_floor", self.lr_floor, min_value=0.0, max_value=1.0)
        object.__setattr__(self, "seeds", tuple(self.seeds))
        if not self.seeds:
            raise ParameterError(f"The 'seeds' parameter of {owner} must be a non-empty list of ints. Got () instead.")
        for seed in self.seeds:
            check_int(owner, "seeds", seed, min_value=0)
        check_choice(owner, "normalization", self.normalization, set(NORMALIZATIONS))
        if self.seq_len is not None:
            check_int(owner, "seq_len", self.seq_len, min_value=1)
        check_float(owner, "seq_len_percentile", self.seq_len_percentile, min_value=1.0, max_value=100.0)
        check_choice(owner, "padding", self.padding, set(PADDING_MODES))
        check_choice(owner, "folds", self.folds, set(FOLD_SCHEMES))
        check_int(owner, "n_folds", self.n_folds, min_value=2)
        check_int(owner, "n_val_speakers", self.n_val_speakers, min_value=1)
        self._check_multitask(owner)
        self._check_regularisation(owner)

    def _check_regularisation(self, owner):
        from ..features.normalize import UTTERANCE_MODES

        check_choice(owner, "utterance_norm", self.utterance_norm, set(UTTERANCE_MODES))
        check_float(owner, "label_smoothing", self.label_smoothing, min_value=0.0, max_value=0.5)
        check_float(owner, "mixup_alpha", self.mixup_alpha, min_value=0.0)
        for name in ("time_masks", "feature_masks"):
            check_int(owner, name, getattr(self, name), min_value=0)
        for name in ("time_mask_frames", "feature_mask_width"):
            check_int(owner, name, getattr(self, name), min_value=1)
        check_float(owner, "ema_epochs", self.ema_epochs, min_value=0.0)
        check_choice(owner, "selection", self.selection, set(SELECTIONS))
        self._check_copies(owner, "speed_perturb", 0.5, 2.0, excluded=1.0, what="factors other than 1.0")
        self._check_copies(owner, "gain_perturb", -30.0, 30.0, excluded=0.0, what="gains in dB other than 0")
        self._check_copies(owner, "noise_snr", 0.0, 80.0, what="SNRs in dB")
        self._check_copies(owner, "pitch_shift", -12.0, 12.0, excluded=0.0, what="shifts in semitones other than 0")
        self._check_copies(owner, "room_rt60", 0.0, 2.0, what="reverberation times in seconds")
        check_float(owner, "distill_weight", self.distill_weight, min_value=0.0, max_value=1.0)
        if not isinstance(self.teacher, str):
            raise ParameterError(f"The 'teacher' parameter of {owner} must be a run directory path (str). "
                                 f"Got {self.teacher!r} instead.")
        if bool(self.teacher) != (self.distill_weight > 0):
            raise ParameterError(
                f"The 'teacher' and 'distill_weight' parameters of {owner} go together: name the teacher's run "
                f"directory and a weight in (0, 1], or neither. Got teacher={self.teacher!r}, "
                f"distill_weight={self.distill_weight!r} instead."
            )
        check_choice(owner, "distill_inputs", self.distill_inputs, set(DISTILL_INPUTS))
        if self.distill_inputs != "clean" and (not self.teacher or self.teacher.endswith(".json")):
            raise ParameterError(
                f"The 'distill_inputs' parameter of {owner} can be 'augmented' only with a run directory as "
                f"'teacher' (its models run on every training batch; a teacher file holds fixed probabilities). "
                f"Got teacher={self.teacher!r}, distill_inputs={self.distill_inputs!r} instead."
            )
        if self.multitask and self.uses_soft_targets:
            raise ParameterError(
                f"The 'label_smoothing', 'mixup_alpha' and 'distill_weight' parameters of {owner} apply to "
                "single-task training only; leave them at 0 with multitask=True (--multitask)."
            )

    def _check_copies(self, owner, name, low, high, *, excluded=None, what):
        """A tuple field listing one waveform copy per value: in range, distinct, never ``excluded``
        (the value that would copy the clip itself, which is always used)."""
        values = tuple(getattr(self, name))
        object.__setattr__(self, name, values)
        for value in values:
            check_float(owner, name, value, min_value=low, max_value=high)
        if excluded in values or len(set(values)) != len(values):
            raise ParameterError(f"The '{name}' parameter of {owner} must list distinct {what} "
                                 f"(the clip itself is always used). Got {values!r} instead.")

    @property
    def uses_soft_targets(self):
        """Whether the emotion targets are distributions (label smoothing, mixup, distillation)."""
        return self.label_smoothing > 0 or self.mixup_alpha > 0 or self.distill_weight > 0

    @property
    def augments_features(self):
        return self.mixup_alpha > 0 or self.time_masks > 0 or self.feature_masks > 0

    def _check_multitask(self, owner):
        object.__setattr__(self, "aux_tasks", tuple(self.aux_tasks) if isinstance(self.aux_tasks, list) else self.aux_tasks)
        check_aux_tasks(owner, self.aux_tasks)
        check_float(owner, "aux_loss_weight", self.aux_loss_weight, min_value=0.0)
        family = parse_model_name(self.model)[0]
        if self.multitask and family not in multitask_families():
            raise ParameterError(
                f"The 'multitask' parameter of {owner} can be True only for the {', '.join(multitask_families())} "
                f"families; {self.model} has no auxiliary heads. Got True instead."
            )
        fields = {f.name: f.default for f in dataclasses.fields(self)}
        unused = [k for k in ("aux_tasks", "aux_loss_weight") if getattr(self, k) != fields[k]]
        if unused and not self.multitask:
            raise ParameterError(
                f"The {' and '.join(repr(k) for k in unused)} parameter(s) of {owner} apply to multi-task "
                "training only; set multitask=True (--multitask) or leave them at their defaults."
            )

    def aux_heads(self):
        """``((task, n_classes), ...)`` of the model's auxiliary heads; empty without multitask."""
        return aux_head_sizes(self.aux_tasks) if self.multitask else ()

    def to_dict(self):
        d = super().to_dict()
        d["seeds"] = list(self.seeds)
        d["aux_tasks"] = list(self.aux_tasks)
        d["speed_perturb"] = list(self.speed_perturb)
        d["gain_perturb"] = list(self.gain_perturb)
        d["noise_snr"] = list(self.noise_snr)
        d["pitch_shift"] = list(self.pitch_shift)
        d["room_rt60"] = list(self.room_rt60)
        return d

    def hyperparameters(self):
        return {k: getattr(self, k) for k in ("lr", "weight_decay", "dropout", "t0", "batch_size")}
