"""Probe (results/export.md): fine-tune each fold model with EVERY activation fake-quantised to int8.

    python export/qat_full_probe.py runs/table1/paper/res_lstm_sa_h64 /tmp/qat_full --epochs 6
    sertiny export /tmp/qat_full --out /tmp/qat_full_bundle --chunk 1 --no-tflm

The earlier probe (export/qat_probe.py) rounded only the LSTM cell state and left
agreement at 95 %: the other activations' rounding remains. Here a JAX copy of the
ResLSTM-SA / LSTM-SA forward pass rounds every tensor the int8 graph stores (inputs,
projections, gate pre-activations, gate outputs on TFLite's fixed sigmoid/tanh grids, f*c,
i*g, c, tanh(c), h, the residual sum, attention scores and weights, context, logits) to an
int8 grid on ranges calibrated like the exporter's (90th percentile of per-clip extremes,
recomputed every epoch), with straight-through gradients. The loss trains both paths
and pulls them together:

    ce_weight * (CE(float, y) + CE(int8, y)) + kl_weight * KL(p_float || p_int8)

Seed 0's fold weights in a copy of RUN are replaced by the fine-tuned ones (BatchNorm
statistics kept, so ``sertiny export`` of the copy measures the converter's real int8
agreement with the fine-tuned float model). An experiment, not a product feature.
"""

import argparse
import os
import shutil
import sys
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "jax")
import numpy as np

FROZEN = ("moving_mean", "moving_variance")


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--lr", type=float, default=5e-5)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--weight-decay", type=float, default=1e-2, help="coupled L2, as the recipe")
    ap.add_argument("--kl-weight", type=float, default=1.0)
    ap.add_argument("--ce-weight", type=float, default=1.0, help="weight of each path's cross-entropy")
    ap.add_argument("--percentile", type=float, default=90.0)
    ap.add_argument("--calib-clips", type=int, default=200)
    ap.add_argument("--folds", default="1,2,3,4,5")
    return ap.parse_args()


def make_forward(jnp, jax, residual, bn_epsilon):
    def lstm(params, prefix, x, q):
        kernel, rec, bias = params[f"{prefix}/kernel"], params[f"{prefix}/recurrent_kernel"], params[f"{prefix}/bias"]
        units = rec.shape[0]
        tag = prefix + ":"
        proj = q(tag + "proj", jnp.einsum("ntf,fg->ntg", x, kernel) + bias)

        def step(carry, p_t):
            h, c = carry
            z = q(tag + "z", p_t + q(tag + "rec", h @ rec))
            i = q("sigmoid", jax.nn.sigmoid(z[:, :units]))
            f = q("sigmoid", jax.nn.sigmoid(z[:, units:2 * units]))
            g = q("tanh", jnp.tanh(z[:, 2 * units:3 * units]))
            o = q("sigmoid", jax.nn.sigmoid(z[:, 3 * units:]))
            c = q(tag + "c", q(tag + "fc", f * c) + q(tag + "ig", i * g))
            h = q(tag + "h", o * q("tanh", jnp.tanh(c)))
            return (h, c), h

        n = x.shape[0]
        init = (jnp.zeros((n, units)), jnp.zeros((n, units)))
        _, hs = jax.lax.scan(step, init, jnp.swapaxes(proj, 0, 1))
        return jnp.swapaxes(hs, 0, 1)

    def bn(params, prefix, x):
        scale = params[f"{prefix}/gamma"] / jnp.sqrt(params[f"{prefix}/moving_variance"] + bn_epsilon)
        return (x - params[f"{prefix}/moving_mean"]) * scale + params[f"{prefix}/beta"]

    def forward(params, x, q):
        x = q("x", x)
        if residual:
            x = bn(params, "bn_in", q("x2", lstm(params, "lstm1", x, q) + x))
        hs = lstm(params, "lstm2", x, q)
        scores = q("scores", hs @ params["attention/u"].reshape(-1))
        alpha = q("softmax", jax.nn.softmax(scores, axis=1))
        context = q("context", jnp.einsum("nt,nth->nh", alpha, hs))
        return q("logits", bn(params, "bn_out", context) @ params["dense/kernel"] + params["dense/bias"])

    return forward


def main():
    args = parse_args()
    import jax
    import jax.numpy as jnp

    from sertiny.export import calibration
    from sertiny.export.run import fold_data, load_run, load_table, load_weight_set
    from sertiny.training.rundir import RunDir
    from sertiny.models.weights import BN_EPSILON, save_weights
    from sertiny.features.frames import fit_to_length

    run = load_run(args.run)
    table = load_table(run)
    forward = make_forward(jnp, jax, run.model_config.family == "res_lstm_sa", BN_EPSILON)
    n_classes = run.model_config.n_classes
    fixed_grid = {"sigmoid": (0.0, 255 / 256), "tanh": (-1.0, 127 / 128), "softmax": (0.0, 255 / 256)}

    def fake_quant(ranges):
        def q(name, v):
            lo, hi = fixed_grid.get(name) or ranges[name]
            step = (hi - lo) / 255
            clipped = jnp.clip(v, lo, hi)
            return clipped + jax.lax.stop_gradient(jnp.round(clipped / step) * step - clipped)
        return q

    def calibrate(params, x):
        """Per-clip extremes of every tracked tensor -> robust (lo, hi) like the exporter's."""
        per_clip = {}

        def record(name, v):
            if name not in fixed_grid:
                axes = tuple(range(1, v.ndim))
                per_clip.setdefault(name, []).append((np.asarray(v.min(axis=axes)), np.asarray(v.max(axis=axes))))
            return v

        for start in range(0, len(x), 100):
            # Python-level recording needs the unjitted forward; the scan body is traced once per call.
            with jax.disable_jit():
                forward(params, jnp.asarray(x[start:start + 100]), record)
        ranges = {}
        for name, chunks in per_clip.items():
            lows = np.concatenate([lo for lo, _ in chunks])
            highs = np.concatenate([hi for _, hi in chunks])
            ranges[name] = (min(float(np.percentile(lows, 100 - args.percentile)), 0.0),
                            max(float(np.percentile(highs, args.percentile)), 0.0))
        return ranges

    def stack(clips):
        return np.stack([fit_to_length(c, run.seq_len) for c in clips]).astype(np.float32)

    if args.out.exists():
        shutil.rmtree(args.out)
    shutil.copytree(args.run, args.out, ignore=shutil.ignore_patterns("*.png"))
    for k in [int(f) for f in args.folds.split(",")]:
        name = f"seed{run.seeds[0]}_fold{k}"
        weight_set = load_weight_set(run, name)
        data = fold_data(run, table, weight_set, run.fold(k))
        x, y = stack(data.train_clips), data.train_labels.astype(np.int32)
        x_test, y_test = stack(data.test_clips), data.test_labels
        calib = x[calibration.pick_clips(data.train_labels, args.calib_clips)]
        params = {n: jnp.asarray(v, dtype=jnp.float32) for n, v in weight_set.weights.items()}
        trainable = [n for n in params if not n.endswith(FROZEN)]

        def loss_fn(train, frozen, xb, yb, ranges):
            p = {**frozen, **train}
            log_f = jax.nn.log_softmax(forward(p, xb, lambda _, v: v))
            log_q = jax.nn.log_softmax(forward(p, xb, fake_quant(ranges)))
            ce = lambda lp: -jnp.mean(jnp.take_along_axis(lp, yb[:, None], axis=1))
            kl = jnp.mean(jnp.sum(jnp.exp(log_f) * (log_f - log_q), axis=1))
            l2 = 0.5 * args.weight_decay * sum(jnp.sum(v * v) for v in train.values())
            return args.ce_weight * (ce(log_f) + ce(log_q)) + args.kl_weight * kl + l2

        @jax.jit
        def adam_step(train, frozen, m, v, t, xb, yb, ranges):
            grads = jax.grad(loss_fn)(train, frozen, xb, yb, ranges)
            m = jax.tree.map(lambda a, g: 0.9 * a + 0.1 * g, m, grads)
            v = jax.tree.map(lambda a, g: 0.999 * a + 0.001 * g * g, v, grads)
            scale = args.lr * jnp.sqrt(1 - 0.999 ** t) / (1 - 0.9 ** t)
            train = jax.tree.map(lambda w, a, b: w - scale * a / (jnp.sqrt(b) + 1e-7), train, m, v)
            return train, m, v

        @jax.jit
        def predict_pair(p, xb, ranges):
            return forward(p, xb, lambda _, v: v).argmax(1), forward(p, xb, fake_quant(ranges)).argmax(1)

        def report(p, ranges, label):
            from sertiny.metrics import uar

            f, q = (np.asarray(a) for a in predict_pair(p, jnp.asarray(x_test), ranges))
            # Training speakers, for contrast: the consistency loss can only act where it is trained.
            f_tr, q_tr = (np.asarray(a) for a in predict_pair(p, jnp.asarray(x[:600]), ranges))
            print(f"fold {k} {label}: float UAR {uar(y_test, f, n_classes):.4f} "
                  f"sim-int8 UAR {uar(y_test, q, n_classes):.4f} agreement {np.mean(f == q):.2%} "
                  f"(training speakers: {np.mean(f_tr == q_tr):.2%})", flush=True)

        train = {n: params[n] for n in trainable}
        frozen = {n: params[n] for n in params if n not in trainable}
        m = jax.tree.map(jnp.zeros_like, train)
        v = jax.tree.map(jnp.zeros_like, train)
        ranges = calibrate(params, calib)
        report(params, ranges, "before")
        rng = np.random.default_rng(k)
        t = 0
        for epoch in range(args.epochs):
            order = rng.permutation(len(x))
            for start in range(0, len(x), args.batch_size):
                idx = order[start:start + args.batch_size]
                t += 1
                train, m, v = adam_step(train, frozen, m, v, t, jnp.asarray(x[idx]), jnp.asarray(y[idx]), ranges)
            ranges = calibrate({**frozen, **train}, calib)  # what the report shows and the next epoch trains on
            report({**frozen, **train}, ranges, f"epoch {epoch + 1}")
        tuned = {n: np.asarray(a) for n, a in {**frozen, **train}.items()}
        save_weights(RunDir(args.out).fold_dir(run.seeds[0], k) / "weights.npz", tuned)
        print(f"fold {k} saved", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
