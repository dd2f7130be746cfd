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


@dataclasses.dataclass
class FoldResult:
    weights: dict  # canonical weights of the best-validation epoch
    best_epoch: int  # 0-based
    best_val_uar: float
    history: list  # per epoch: {"epoch", "lr", "train_loss", "val_loss", "val_uar"}


def epoch_learning_rate(epoch, *, lr, t0, floor):
    """PyTorch ``CosineAnnealingWarmRestarts(T_0=t0, eta_min=floor*lr)`` stepped per epoch."""
    eta_min = floor * lr
    t_cur = epoch % t0
    return eta_min + (lr - eta_min) * (1 + math.cos(math.pi * t_cur / t0)) / 2


def macro_recall(y_true, y_pred, n_classes):
    from sklearn.metrics import recall_score

    return float(recall_score(y_true, y_pred, labels=list(range(n_classes)), average="macro", zero_division=0))


class _Trainer:
    """Holds a model's state as JAX arrays and the jitted train / predict functions."""

    def __init__(self, model, weight_decay):
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
        loss_fn = keras.losses.SparseCategoricalCrossentropy()

        def loss_and_state(tv, ntv, x, y):
            probs, ntv = model.stateless_call(tv, ntv, x, training=True)
            return loss_fn(y, probs), ntv

        grad_fn = jax.value_and_grad(loss_and_state, has_aux=True)

        def train_step(state, x, y):
            tv, ntv, ov = state
            (loss, ntv), grads = grad_fn(tv, ntv, x, y)
            grads = [g + weight_decay * p for g, p in zip(grads, tv)]
            tv, ov = self.optimizer.stateless_apply(ov, grads, tv)
            return loss, (tv, ntv, ov)

        def predict(tv, ntv, x):
            probs, _ = model.stateless_call(tv, ntv, x, training=False)
            return probs

        self._train_step = jax.jit(train_step, donate_argnums=0)
        self._predict = jax.jit(predict)
        self.state = (
            [v.value for v in model.trainable_variables],
            [v.value for v in model.non_trainable_variables],
            [v.value for v in self.optimizer.variables],
        )

    def set_lr(self, lr):
        import jax.numpy as jnp

        tv, ntv, ov = self.state
        ov = list(ov)
        ov[self._lr_index] = jnp.asarray(lr, dtype=ov[self._lr_index].dtype)
        self.state = (tv, ntv, ov)

    def step(self, x, y):
        loss, self.state = self._train_step(self.state, x, y)
        return loss

    def predict(self, x, batch_size=256):
        tv, ntv, _ = self.state
        out = [np.asarray(self._predict(tv, ntv, x[i : i + batch_size])) for i in range(0, len(x), batch_size)]
        return np.concatenate(out) if out else np.zeros((0, self.model.output_shape[-1]), np.float32)

    def sync_to_model(self):
        """Write the JAX state back into the Keras variables (for get_weights / saving)."""
        tv, ntv, _ = self.state
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


def _batches(n, batch_size, rng):
    order = rng.permutation(n)
    starts = list(range(0, n, batch_size))
    # BatchNorm cannot normalise a batch of one sample; fold a lone last sample into the
    # previous batch rather than dropping it.
    if len(starts) > 1 and n - starts[-1] == 1:
        starts.pop()
    bounds = starts[1:] + [n]
    return [order[s:e] for s, e in zip(starts, bounds)]


def cross_entropy(probs, y):
    return float(-np.mean(np.log(np.clip(probs[np.arange(len(y)), y], 1e-12, None))))


def train_fold(model_config, train_config, x_train, y_train, x_val, y_val, *, seed, progress=None):
    """Train one model; keep the epoch with the best validation UAR (first one on ties).

    With no validation set (``x_val is None``) every epoch runs and the last one is kept.
    """
    from ..models import create_model
    from ..models.weights import get_weights

    model = create_model(model_config)
    trainer = _Trainer(model, train_config.weight_decay)
    rng = np.random.default_rng(seed)
    n_classes = model_config.n_classes
    best = FoldResult(weights=None, best_epoch=-1, best_val_uar=-1.0, history=[])
    best_state = None
    for epoch in range(train_config.epochs):
        lr = epoch_learning_rate(epoch, lr=train_config.lr, t0=train_config.t0, floor=train_config.lr_floor)
        trainer.set_lr(lr)
        losses = [trainer.step(x_train[idx], y_train[idx]) for idx in _batches(len(x_train), train_config.batch_size, rng)]
        row = {"epoch": epoch + 1, "lr": lr, "train_loss": float(np.mean([float(l) for l in losses]))}
        if x_val is None:
            val_uar = float("nan")
        else:
            val_probs = trainer.predict(x_val)
            val_uar = macro_recall(y_val, val_probs.argmax(1), n_classes)
            row.update(val_loss=cross_entropy(val_probs, y_val), val_uar=val_uar)
        best.history.append(row)
        if x_val is None or val_uar > best.best_val_uar:
            best.best_val_uar, best.best_epoch = val_uar, epoch
            best_state = [np.asarray(a) for a in trainer.state[0]], [np.asarray(a) for a in trainer.state[1]]
        if progress is not None:
            progress(epoch, best.history[-1])
    trainer.state = (best_state[0], best_state[1], trainer.state[2])
    trainer.sync_to_model()
    best.weights = get_weights(model)
    return best, trainer
