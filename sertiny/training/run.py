"""``train()``: every (seed, fold) of a run, resumable, optionally in parallel processes."""

import os
import shutil
import threading
import time

from .._io import directory_lock
from .protocol import prepare_run, run_fold
from .report import plot_confusion, plot_learning_curves, run_metrics, seed_metrics, uar_summary
from .rundir import weights_name


def train(table, config, out_dir, *, data_spec=None, jobs=1, deploy=False, overwrite=False, progress=True):
    """Run the protocol for every seed and fold; return the run's metrics dict.

    With ``deploy=True``, also train the model to ship: on every speaker, for the median
    best epoch of the cross-validation folds (there is no held-out speaker left to pick
    an epoch with), written to ``deploy/``.

    Finished folds (from an interrupted earlier call with the same config) are skipped.
    ``jobs > 1`` trains that many folds at once in separate processes; each JAX process
    is pinned to one thread so they do not fight over the cores.
    """
    if deploy:
        from .protocol import check_deployable

        check_deployable(config)  # before any fold trains
    with directory_lock(out_dir, "'sertiny train'") as created:
        try:
            ctx = prepare_run(table, config, out_dir, data_spec=data_spec, overwrite=overwrite)
        except BaseException:
            if created:  # refused before anything was trained: leave no empty run behind
                shutil.rmtree(out_dir, ignore_errors=True)
            raise
        pending = [(s, f) for s in config.seeds for f in ctx.folds if ctx.run_dir.read_fold(s, f.index) is None]
        if jobs > 1 and len(pending) > 1:
            _run_parallel(ctx, pending, jobs, progress)
        else:
            _run_serial(ctx, pending, progress)
        metrics = summarize_run(ctx)
        if deploy:
            from .protocol import train_deploy

            metrics["deploy"] = train_deploy(ctx, progress=progress)
        return metrics


def _run_serial(ctx, pending, progress):
    from tqdm.auto import tqdm

    epochs = ctx.config.epochs
    total = len(ctx.config.seeds) * len(ctx.folds)
    done = total - len(pending)
    with tqdm(total=total, initial=done, desc="folds", unit="fold", disable=not progress) as fold_bar:
        for seed, fold in pending:
            with tqdm(total=epochs, desc=f"seed {seed} fold {fold.index}", unit="ep", leave=False,
                      disable=not progress) as bar:

                def tick(epoch, row, bar=bar):
                    bar.set_postfix(loss=f"{row['train_loss']:.3f}", val_uar=f"{row['val_uar']:.3f}")
                    bar.update(1)

                summary = run_fold(ctx, seed, fold, progress=tick)
            fold_bar.set_postfix(test_uar=f"{summary['test_uar']:.3f}")
            fold_bar.update(1)


# One XLA thread per worker process: two single-threaded folds beat one fold on two
# threads for these small recurrent matmuls. Set before JAX is imported in that process.
SINGLE_THREAD_XLA_FLAGS = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"


def pin_single_thread():
    os.environ["XLA_FLAGS"] = SINGLE_THREAD_XLA_FLAGS


def _worker_init(parent_pid):
    pin_single_thread()
    _exit_with_parent(parent_pid)


def _exit_with_parent(parent_pid, poll_seconds=1.0):
    """End this worker as soon as the process that started it is gone.

    A spawned pool worker is told nothing when its parent is killed (SIGKILL runs no
    clean-up): it would train its fold to the end and then idle forever, holding its
    memory. Its parent's pid changes when it is re-parented, which a daemon thread sees.
    """
    def watch():
        while os.getppid() == parent_pid:
            time.sleep(poll_seconds)
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def _worker(ctx, seed, fold):
    return run_fold(ctx, seed, fold)


def _run_parallel(ctx, pending, jobs, progress):
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed

    from tqdm.auto import tqdm

    # spawn, not fork: JAX's thread pools do not survive a fork.
    with ProcessPoolExecutor(max_workers=jobs, mp_context=mp.get_context("spawn"), initializer=_worker_init,
                             initargs=(os.getpid(),)) as pool:
        futures = [pool.submit(_worker, ctx, s, f) for s, f in pending]
        with tqdm(total=len(futures), desc="folds", unit="fold", disable=not progress) as bar:
            for future in as_completed(futures):
                summary = future.result()
                bar.set_postfix(test_uar=f"{summary['test_uar']:.3f}")
                bar.update(1)


def summarize_run(ctx):
    """Metrics and plots from the fold directories on disk (also used after a resume)."""
    labels = list(ctx.table.label_names)
    aux_tasks = [task for task, _ in ctx.model_config.aux_heads]
    per_seed = [seed_metrics(ctx.out_dir, s, ctx.folds, labels, aux_tasks) for s in ctx.config.seeds]
    shipped = ctx.model_config.replace(aux_heads=())  # export ships the emotion head only
    n_params = count_params(shipped)
    aux_params = count_params(ctx.model_config) - n_params if aux_tasks else 0
    metrics = run_metrics(ctx.out_dir, per_seed, labels, n_params, ctx.config.model, aux_head_params=aux_params)
    title = f"{ctx.config.model}: {uar_summary(metrics)}"
    plot_confusion(ctx.out_dir / "confusion.png", metrics["confusion_all_seeds"], labels, title)
    seed = ctx.config.seeds[0]
    histories = {f"fold {f.index}": ctx.run_dir.read_history(weights_name(seed, f.index)) for f in ctx.folds}
    plot_learning_curves(ctx.out_dir / "learning_curves.png", histories, f"{ctx.config.model}, seed {seed}")
    return metrics


def count_params(model_config):
    """Trainable parameters of the model ``model_config`` builds."""
    import numpy as np

    from ..models import create_model

    model = create_model(model_config)
    return sum(int(np.prod(v.shape)) for v in model.trainable_weights)
