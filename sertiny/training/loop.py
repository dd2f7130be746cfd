"""One fold's training on Keras 3 + JAX: a jitted step, coupled L2, per-epoch cosine restarts.

A hand-written step rather than ``model.fit`` because the paper's optimiser is PyTorch's
Adam with *coupled* L2 (Keras' ``weight_decay`` is decoupled, AdamW-style) and its
scheduler steps once per epoch; and because a plain jitted step is what lets us keep the
best-validation weights in memory without callbacks writing to disk every epoch.
"""

import dataclasses
import math

import numpy as np

from .._keras import import_keras
from ..errors import ParameterError
from ..metrics import uar


@dataclasses.dataclass
class FoldResult:
    weights: dict  # canonical weights of the best-validation epoch
    best_epoch: int  # 0-based
    best_val_uar: float
    # per epoch: {"epoch", "lr", "train_loss", "val_loss", "val_uar"}; a multi-task model adds
    # "train_loss_<head>" per head ("train_loss" is then the weighted sum that is minimised)
    history: list


def epoch_learning_rate(epoch, *, lr, t0, floor):
    """PyTorch ``CosineAnnealingWarmRestarts(T_0=t0, eta_min=floor*lr)`` stepped per epoch."""
    eta_min = floor * lr
    t_cur = epoch % t0
    return eta_min + (lr - eta_min) * (1 + math.cos(math.pi * t_cur / t0)) / 2


class Trainer:
    """Holds a model's state as JAX arrays and the jitted train / predict functions.

    ``aux_heads``: ``((name, n_classes), ...)``, a multi-task model's auxiliary outputs
    (``ModelConfig.aux_heads``). Such a model returns ``{"emotion": probs, name: probs, ...}``,
    a training target is then ``(batch, 1 + n_aux)`` (emotion first, then the heads in
    order), and the loss is the emotion cross-entropy plus ``aux_loss_weight`` times each
    auxiliary one.
    """

    def __init__(self, model, weight_decay, *, aux_heads=(), aux_loss_weight=0.0, soft_targets=False):
        keras = import_keras("jax")
        import jax

        _enable_compilation_cache(jax)
        self.model = model
        self.optimizer = keras.optimizers.Adam(learning_rate=1.0, epsilon=1e-8)
        self.optimizer.build(model.trainable_variables)
        # The learning rate lives in the optimizer's variables; we set it per epoch.
        self._lr_index = next(
            i for i, v in enumerate(self.optimizer.variables) if v is self.optimizer._learning_rate
        )
        # Soft targets (label smoothing, mixup) are (batch, C) distributions.
        loss_fn = keras.losses.CategoricalCrossentropy() if soft_targets else keras.losses.SparseCategoricalCrossentropy()
        # head -> classes; every family's emotion head is the Dense layer "dense"
        self.widths = {"emotion": model.get_layer("dense").units, **dict(aux_heads)}
        self.heads = tuple(self.widths)

        def loss_and_state(tv, ntv, x, y):
            outputs, ntv = model.stateless_call(tv, ntv, x, training=True)
            if len(self.heads) == 1:
                return loss_fn(y, outputs), ntv
            parts = [loss_fn(y[:, k], outputs[name]) for k, name in enumerate(self.heads)]
            total = parts[0] + aux_loss_weight * sum(parts[1:])
            return total, (ntv, jax.numpy.stack([total, *parts]))

        grad_fn = jax.value_and_grad(loss_and_state, has_aux=True)

        def train_step(state, x, y):
            tv, ntv, ov = state
            (loss, aux), grads = grad_fn(tv, ntv, x, y)
            # A multi-task step reports [total, emotion, aux...] losses; a single-task one its loss.
            ntv, loss = (aux, loss) if len(self.heads) == 1 else aux
            grads = [g + weight_decay * p for g, p in zip(grads, tv)]
            tv, ov = self.optimizer.stateless_apply(ov, grads, tv)
            return loss, (tv, ntv, ov)

        def predict(tv, ntv, x):
            probs, _ = model.stateless_call(tv, ntv, x, training=False)
            return probs

        def ema_step(ema, tv, decay):
            return [decay * e + (1.0 - decay) * t for e, t in zip(ema, tv)]

        self._train_step = jax.jit(train_step, donate_argnums=0)
        self._predict = jax.jit(predict)
        self._ema_step = jax.jit(ema_step, donate_argnums=0)
        self.state = (
            [v.value for v in model.trainable_variables],
            [v.value for v in model.non_trainable_variables],
            [v.value for v in self.optimizer.variables],
        )
        self.ema = None  # averaged trainable weights once start_ema() is called
        self.ema_decay = None

    def start_ema(self, decay):
        """Keep an exponential moving average of the trainable weights from now on; predictions
        then use it (the model's non-trainable state, e.g. BatchNorm statistics, stays live)."""
        import jax.numpy as jnp

        self.ema_decay = float(decay)
        self.ema = [jnp.array(t, copy=True) for t in self.state[0]]

    def evaluated_weights(self):
        """The trainable weights predictions use: the average when EMA is on, else the live ones."""
        return self.ema if self.ema is not None else self.state[0]

    def set_lr(self, lr):
        import jax.numpy as jnp

        tv, ntv, ov = self.state
        ov = list(ov)
        ov[self._lr_index] = jnp.asarray(lr, dtype=ov[self._lr_index].dtype)
        self.state = (tv, ntv, ov)

    def step(self, x, y):
        loss, self.state = self._train_step(self.state, x, y)
        if self.ema is not None:
            self.ema = self._ema_step(self.ema, self.state[0], self.ema_decay)
        return loss

    def predict(self, x, batch_size=256):
        """Emotion probabilities (n, C): the main head's, also for a multi-task model."""
        return self.predict_heads(x, batch_size)["emotion"]

    def predict_heads(self, x, batch_size=256):
        """``{head: probabilities (n, classes)}`` for the emotion head and every auxiliary head."""
        tv, ntv = self.evaluated_weights(), self.state[1]
        out = [self._predict(tv, ntv, x[i : i + batch_size]) for i in range(0, len(x), batch_size)]
        out = [o if isinstance(o, dict) else {"emotion": o} for o in out]
        return {name: np.concatenate([np.asarray(o[name]) for o in out]) if out
                else np.zeros((0, width), np.float32) for name, width in self.widths.items()}

    def sync_to_model(self):
        """Write the JAX state back into the Keras variables (for get_weights / saving)."""
        tv, ntv = self.evaluated_weights(), self.state[1]
        for var, value in zip(self.model.trainable_variables, tv):
            var.assign(value)
        for var, value in zip(self.model.non_trainable_variables, ntv):
            var.assign(value)


def _enable_compilation_cache(jax):
    """Reuse compiled train steps across folds, seeds and runs (the same shapes recur).

    Compiling the recurrent train step costs several seconds per fold, more than ten
    epochs of training on this model size.
    """
    import os
    from pathlib import Path

    cache = Path(os.environ.get("SERTINY_CACHE", Path.home() / ".cache" / "sertiny")) / "jax"
    if jax.config.jax_compilation_cache_dir != str(cache):
        jax.config.update("jax_compilation_cache_dir", str(cache))
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)


def shuffled_batches(n, batch_size, rng):
    """Index arrays of one epoch's batches over ``n`` examples in ``rng``'s order."""
    order = rng.permutation(n)
    starts = list(range(0, n, batch_size))
    # BatchNorm cannot normalise a batch of one sample; fold a lone last sample into the
    # previous batch rather than dropping it.
    if len(starts) > 1 and n - starts[-1] == 1:
        starts.pop()
    bounds = starts[1:] + [n]
    return [order[s:e] for s, e in zip(starts, bounds)]


def _loss_columns(batch_losses, heads):
    """History columns of one epoch: the mean training loss, and per head for a multi-task model."""
    if len(heads) == 1:
        return {"train_loss": float(np.mean([float(l) for l in batch_losses]))}
    means = np.mean([np.asarray(l, dtype=np.float64) for l in batch_losses], axis=0)  # [total, emotion, aux...]
    return {"train_loss": float(means[0]), **{f"train_loss_{h}": float(m) for h, m in zip(heads, means[1:])}}


def _training_batch(x_train, targets, idx, config, n_classes, rng, teacher_train=None):
    if not (config.augments_features or config.uses_soft_targets):
        return x_train[idx], targets[idx]
    from .augment import augment_batch

    teacher = teacher_train if teacher_train is None or callable(teacher_train) else teacher_train[idx]
    return augment_batch(x_train[idx], targets[idx], config, n_classes, rng, teacher)


def cross_entropy(probs, y):
    return float(-np.mean(np.log(np.clip(probs[np.arange(len(y)), y], 1e-12, None))))


def ema_decay_per_step(ema_epochs, steps_per_epoch):
    """Per-step EMA decay for a time constant of ``ema_epochs`` epochs."""
    return 1.0 - 1.0 / max(1.0, ema_epochs * steps_per_epoch)


def train_fold(model_config, train_config, x_train, y_train, x_val, y_val, *, seed, progress=None, aux_train=None,
               teacher_train=None):
    """Train one model; keep the epoch with the best validation UAR (first one on ties), or
    the last epoch with ``train_config.selection == "last"``.

    With no validation set (``x_val is None``) every epoch runs and the last one is kept.
    ``train_config``'s augmentation and weight averaging apply (see
    :class:`~sertiny.training.TrainConfig`); with ``ema_epochs`` the averaged weights are
    the ones validated and kept.
    A model with auxiliary heads (``model_config.aux_heads``) needs their labels,
    ``aux_train`` (n_train, n_aux) int in the heads' order; it is trained on the weighted
    loss, and validated (epoch selection) on the emotion head only.
    With ``train_config.distill_weight``, ``teacher_train`` (n_train, n_classes) holds the
    teacher's probabilities for every training example (:mod:`sertiny.training.distill`), or
    with ``distill_inputs="augmented"`` is a function of a training batch giving them.
    """
    from ..models import create_model
    from ..models.weights import get_weights

    model = create_model(model_config)
    heads = tuple(name for name, _ in model_config.aux_heads)
    targets = y_train
    if heads:
        if aux_train is None or np.shape(aux_train) != (len(x_train), len(heads)):
            raise ParameterError(
                f"The model has auxiliary heads {list(heads)}, so train_fold needs their labels as aux_train of "
                f"shape ({len(x_train)}, {len(heads)}). Got {None if aux_train is None else np.shape(aux_train)} instead."
            )
        targets = np.column_stack([y_train, aux_train]).astype(np.int32)
    if (train_config.distill_weight > 0 and not callable(teacher_train)
            and np.shape(teacher_train) != (len(x_train), model_config.n_classes)):
        raise ParameterError(
            f"train_config.distill_weight is set, so train_fold needs the teacher's probabilities as teacher_train of "
            f"shape ({len(x_train)}, {model_config.n_classes}). Got {np.shape(teacher_train)} instead."
        )
    trainer = Trainer(model, train_config.weight_decay, aux_heads=model_config.aux_heads,
                       aux_loss_weight=train_config.aux_loss_weight, soft_targets=train_config.uses_soft_targets)
    rng = np.random.default_rng(seed)
    n_classes = model_config.n_classes
    if train_config.ema_epochs > 0:
        steps = len(shuffled_batches(len(x_train), train_config.batch_size, np.random.default_rng(0)))
        trainer.start_ema(ema_decay_per_step(train_config.ema_epochs, steps))
    keep_last = x_val is None or train_config.selection == "last"
    best = FoldResult(weights=None, best_epoch=-1, best_val_uar=-1.0, history=[])
    best_state = None
    for epoch in range(train_config.epochs):
        lr = epoch_learning_rate(epoch, lr=train_config.lr, t0=train_config.t0, floor=train_config.lr_floor)
        trainer.set_lr(lr)
        losses = [trainer.step(*_training_batch(x_train, targets, idx, train_config, n_classes, rng, teacher_train))
                  for idx in shuffled_batches(len(x_train), train_config.batch_size, rng)]
        row = {"epoch": epoch + 1, "lr": lr, **_loss_columns(losses, trainer.heads)}
        if x_val is None:
            val_uar = float("nan")
        else:
            val_probs = trainer.predict(x_val)
            val_uar = uar(y_val, val_probs.argmax(1), n_classes)
            row.update(val_loss=cross_entropy(val_probs, y_val), val_uar=val_uar)
        best.history.append(row)
        if keep_last or val_uar > best.best_val_uar:
            best.best_val_uar, best.best_epoch = val_uar, epoch
            best_state = [np.asarray(a) for a in trainer.evaluated_weights()], [np.asarray(a) for a in trainer.state[1]]
        if progress is not None:
            progress(epoch, best.history[-1])
    trainer.state = (best_state[0], best_state[1], trainer.state[2])
    trainer.ema = None  # best_state already holds the evaluated (averaged) weights
    trainer.sync_to_model()
    best.weights = get_weights(model)
    return best, trainer
