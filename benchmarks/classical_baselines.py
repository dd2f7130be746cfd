#!/usr/bin/env python
"""Classical baselines on the paper's five speaker-independent RAVDESS folds.

Each system is a fixed-length vector per clip -> StandardScaler -> LogisticRegression:

- ``compare_2016``: openSMILE ComParE_2016 functionals (6,373 per clip), 16 kHz audio;
- ``egemaps_v02``: openSMILE eGeMAPSv02 functionals (88 per clip), 16 kHz audio;
- ``paper_stats``: :func:`clip_statistics` of the paper's 46 features (librosa, 48 kHz originals);
- ``edge16k_stats`` / ``edge16k_peak_stats`` / ``logmel16k_stats``: :func:`clip_statistics` of
  sertiny's own front ends (``edge16k_peak``, levels held below the running peak, is the one
  the built-in model hears), run on the 16 kHz audio.

Protocol, per fold of :func:`sertiny.data.splits.ravdess_paper_folds`: the scaler and the
model are fitted on the fold's training speakers only (validation and test speakers are held
out, as in sertiny's training protocol); the inverse regularisation C is the grid value with
the highest UAR on the fold's validation speakers (ties -> the smallest C); that same model is
then scored on the fold's test speakers. Nothing is chosen on test speakers. Test predictions
of the five folds cover every clip once and are pooled into one UAR (scikit-learn
``recall_score(average="macro")``). ``class_weight="balanced"`` by default, because the metric
is UAR and RAVDESS has half as many neutral clips as any other class.

lbfgs LogisticRegression, the scaler and the feature extractors are deterministic (at a fixed
BLAS thread count: one here), so each figure comes from one run; there is no seed to average over.

Features are cached under ``runs/baselines_cache/`` (openSMILE: one .npz per feature set,
checkpointed while it runs, so an interrupted run resumes; sertiny front ends: sertiny's own
per-clip feature cache), so a rerun only refits the linear models.

openSMILE is the ``opensmile`` package on PyPI, a benchmark peer and not a dependency of
sertiny; without it the openSMILE systems are skipped with a message.

    python benchmarks/classical_baselines.py    # all systems -> results/baselines.md and .json
    python benchmarks/classical_baselines.py --systems paper_stats --limit-c 3    # no report
    python benchmarks/classical_baselines.py --systems compare_2016 --teacher runs/teachers

``--test-gains=-6,6`` also scores every system (except ``paper_stats``, whose features come
precomputed from the 48 kHz originals) on the same test clips played that many dB louder or
quieter, as benchmarks/frontend_floor.py makes them (scaled, stored as 16-bit): each fold's
model is the one fitted and chosen at the corpus's own level, because a user's microphone gain
is not RAVDESS's. Reported beside each UAR: the share of test clips whose label stays what it
was at 0 dB (no labels involved), the figure results/frontend_floor*.md give sertiny's models.

``--teacher DIR`` also writes each system as a distillation teacher for sertiny
(``DIR/<system>.json``, :mod:`sertiny.training.distill`): for every fold, probabilities of its
training clips **cross-fitted** over :data:`TEACHER_GROUPS` groups of the fold's training
speakers (each clip's from a model fitted on the other groups, with the C the fold chose on
its validation speakers), because a linear model on 6,373 functionals fits its own training
clips perfectly, so its in-sample probabilities are just the labels. The deployment model's
teacher is cross-fitted the same way over all speakers, with the median of the folds' C.
"""

import argparse
import dataclasses
import json
import sys
import warnings
from pathlib import Path

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler
from tqdm import tqdm

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks._audio import decoded_pcm16  # noqa: E402
from sertiny._io import atomic_path, atomic_write_json, atomic_write_text  # noqa: E402
from sertiny.machine import command_line, machine_info, machine_lines  # noqa: E402
from sertiny.features.cache import limit_blas_threads  # noqa: E402
from sertiny.metrics import per_class_recall, uar  # noqa: E402

DATA = REPO.parent / "shared" / "data"
C_GRID = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1, 1.0, 3.0, 10.0)
STATISTICS = ("mean", "std", "p10", "p90", "delta_std")
OPENSMILE_SETS = {"compare_2016": "ComParE_2016", "egemaps_v02": "eGeMAPSv02"}
FRONT_END_SETS = {"edge16k_stats": "edge16k", "edge16k_peak_stats": "edge16k_peak", "logmel16k_stats": "logmel16k"}
SYSTEMS = {
    "compare_2016": "openSMILE ComParE_2016 functionals, 16 kHz audio",
    "egemaps_v02": "openSMILE eGeMAPSv02 functionals, 16 kHz audio",
    "paper_stats": "clip statistics of the paper's 46 features (34 MFCC + 12 chroma, librosa, 48 kHz)",
    "edge16k_stats": "clip statistics of sertiny's edge16k front end, 16 kHz audio",
    "edge16k_peak_stats": "clip statistics of sertiny's edge16k_peak front end (levels below the running peak: what "
                          "the built-in model hears), 16 kHz audio",
    "logmel16k_stats": "clip statistics of sertiny's logmel16k front end, 16 kHz audio",
}
OPENSMILE_SAMPLE_RATE = 16_000
CHECKPOINT_EVERY = 100  # clips between openSMILE cache checkpoints
MAX_ITER = 5000
TEACHER_GROUPS = 4


def clip_statistics(frames):
    """One fixed-length vector summarising a clip's frame features.

    Parameters
    ----------
    frames : np.ndarray [shape=(n_frames, n_features)]
        A clip's features, one row per frame (n_frames >= 1).

    Returns
    -------
    np.ndarray [shape=(5 * n_features,), dtype=float64]
        Statistic-major blocks of ``n_features`` each, in :data:`STATISTICS` order: the mean,
        the standard deviation, the 10th and the 90th percentile of every feature over the
        frames, then the standard deviation of its frame-to-frame difference (0 for a
        one-frame clip), a cheap measure of how fast it moves.
    """
    frames = np.asarray(frames, dtype=np.float64)
    if frames.ndim != 2 or len(frames) == 0:
        raise ValueError(f"clip_statistics needs a (n_frames >= 1, n_features) array; got shape {frames.shape}.")
    p10, p90 = np.percentile(frames, [10, 90], axis=0)
    delta_std = np.diff(frames, axis=0).std(axis=0) if len(frames) > 1 else np.zeros(frames.shape[1])
    return np.concatenate([frames.mean(axis=0), frames.std(axis=0), p10, p90, delta_std])


@dataclasses.dataclass
class Corpus:
    """One system's clip vectors with their labels and speakers."""

    vectors: np.ndarray  # (n_clips, n_dims) float
    labels: np.ndarray  # (n_clips,) int
    speakers: np.ndarray  # (n_clips,) str "01".."24"
    names: np.ndarray  # (n_clips,) str file stems
    label_names: tuple


def _statistics_corpus(table):
    vectors = np.stack([clip_statistics(x) for x in tqdm(table.features, desc="clip statistics", unit="clip")])
    return Corpus(vectors, table.labels, table.speakers, table.names, table.label_names)


def paper_corpus(npz_path):
    from sertiny.features.table import load_paper_features

    return _statistics_corpus(load_paper_features(npz_path))


class GainedCopy:
    """``load_audio`` of a clip played ``db`` dB louder or quieter and stored as 16-bit, as
    benchmarks/frontend_floor.py makes its gain versions. Picklable (front-end workers use it)."""

    def __init__(self, db):
        self.db = float(db)

    def __call__(self, path, target_sr):
        from sertiny.data import load_audio

        return decoded_pcm16(load_audio(path, target_sr).astype(np.float64) * 10.0 ** (self.db / 20.0))


def front_end_corpus(data_dir, preset, cache_dir, n_jobs, gain_db=0.0):
    """Statistics of sertiny's own front end ``preset`` on every clip of ``data_dir`` (played
    ``gain_db`` dB louder: the copies are cached apart, under ``augmented/``)."""
    from sertiny.features import get_preset
    from sertiny.training.data import DataSpec, load_table, perturbed_features

    spec = DataSpec(kind="audio", path=str(Path(data_dir).resolve()), cache_dir=str(cache_dir), strict=True)
    table = load_table(spec, get_preset(preset), n_jobs=n_jobs)
    if gain_db:
        table = dataclasses.replace(table, features=perturbed_features(
            spec, table, f"gain_{gain_db:+g}dB_pcm16", GainedCopy(gain_db), progress=True, n_jobs=n_jobs))
    return _statistics_corpus(table)


def opensmile_corpus(data_dir, feature_set, cache_path, gain_db=0.0):
    """openSMILE functionals of every clip of ``data_dir`` (played ``gain_db`` dB louder), from /
    into the cache at ``cache_path``."""
    import opensmile

    from sertiny.data import load_audio, load_dataset

    dataset = load_dataset(data_dir)
    if dataset.problems:
        sys.exit(f"Error: {len(dataset.problems)} unusable file(s) under {data_dir}, first: "
                 f"{dataset.problems[0][0]}: {dataset.problems[0][1]}. Fix or remove them and rerun.")
    paths = dataset.paths()
    names = np.array([Path(p).stem for p in paths])
    smile = opensmile.Smile(feature_set=getattr(opensmile.FeatureSet, feature_set),
                            feature_level=opensmile.FeatureLevel.Functionals)
    # Everything the vectors depend on: a cache made under another identity is not reused.
    identity = {"feature_set": feature_set, "opensmile": opensmile.__version__,
                "sample_rate": OPENSMILE_SAMPLE_RATE, "data": str(Path(data_dir).resolve())}
    if gain_db:
        identity["gain_db_pcm16"] = gain_db
    identity = json.dumps(identity)
    read = GainedCopy(gain_db) if gain_db else load_audio
    done = _read_opensmile_cache(cache_path, identity)
    vectors = [done[n] for n in names if n in done]
    todo = [i for i, n in enumerate(names) if n not in done]
    with tqdm(total=len(paths), initial=len(paths) - len(todo), desc=f"openSMILE {feature_set}", unit="clip") as bar:
        finished = [n for n in names if n in done]
        for count, i in enumerate(todo, start=1):
            y = read(paths[i], OPENSMILE_SAMPLE_RATE)
            vectors.append(smile.process_signal(y, OPENSMILE_SAMPLE_RATE).to_numpy(dtype=np.float32)[0])
            finished.append(names[i])
            bar.update(1)
            if count % CHECKPOINT_EVERY == 0 or count == len(todo):
                _write_opensmile_cache(cache_path, identity, finished, vectors, smile.feature_names)
    order = {n: k for k, n in enumerate(finished)}
    vectors = np.stack([vectors[order[n]] for n in names])
    return Corpus(vectors, dataset.labels(), dataset.speakers().astype(str), names, dataset.label_names)


def _read_opensmile_cache(cache_path, identity):
    """``{clip name: vector}`` already extracted under ``identity`` (empty if none or stale)."""
    try:
        with np.load(cache_path, allow_pickle=False) as data:
            if str(data["identity"]) != identity:
                print(f"{cache_path} was made by another openSMILE setup; extracting again.")
                return {}
            return dict(zip(data["names"].tolist(), data["vectors"], strict=True))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError, KeyError) as exc:
        print(f"{cache_path} is unreadable ({exc}); extracting again.")
        return {}


def _write_opensmile_cache(cache_path, identity, names, vectors, feature_names):
    with atomic_path(cache_path) as tmp:
        np.savez(tmp, identity=np.array(identity), names=np.array(names), vectors=np.stack(vectors),
                 feature_names=np.array(feature_names))


def evaluate(corpus, c_grid, class_weight, gained=None):
    """Per-fold C choice on validation speakers, test UAR per fold and pooled; see the module docstring.

    ``gained``: ``{gain in dB: (n_clips, n_dims) vectors of the same clips played that loud}``;
    each fold's chosen model also labels its test clips' gained vectors (``under_gain``).
    """
    from sertiny.data.splits import fold_indices, ravdess_paper_folds

    gained = gained or {}
    pooled = {"val": ([], []), "test": ([], [])}
    pooled_gained = {db: [] for db in gained}
    folds = []
    paper_folds = ravdess_paper_folds()
    bar = tqdm(total=len(paper_folds) * len(c_grid), desc="linear fits", unit="fit")
    for fold in paper_folds:
        train_idx, val_idx, test_idx = fold_indices(corpus.speakers, fold)
        y = corpus.labels
        scaler, (x_train, x_val, x_test) = _standardised(corpus.vectors, train_idx, val_idx, test_idx)
        models, converged = _fit_path(x_train, y[train_idx], c_grid, class_weight, bar)
        val_uars = [_uar(corpus, y[val_idx], model.predict(x_val)) for model in models]
        best = int(np.argmax(val_uars))  # first maximum = smallest C among ties
        val_pred, test_pred = models[best].predict(x_val), models[best].predict(x_test)
        for db, vectors in gained.items():
            pooled_gained[db].append(models[best].predict(scaler.transform(vectors[test_idx])))
        for split, idx, pred in (("val", val_idx, val_pred), ("test", test_idx, test_pred)):
            pooled[split][0].append(y[idx])
            pooled[split][1].append(pred)
        folds.append({
            "index": fold.index,
            "test_speakers": list(fold.test_speakers),
            "val_speakers": list(fold.val_speakers),
            "n_train": len(train_idx), "n_val": len(val_idx), "n_test": len(test_idx),
            "chosen_C": c_grid[best],
            "val_uar": val_uars[best],
            "test_uar": _uar(corpus, y[test_idx], test_pred),
            "val_uar_by_C": {f"{c:g}": u for c, u in zip(c_grid, val_uars, strict=True)},
            "not_converged_C": [f"{c:g}" for c, ok in zip(c_grid, converged, strict=True) if not ok],
            "chosen_converged": converged[best],
        })
    bar.close()
    y_test, p_test = (np.concatenate(a) for a in pooled["test"])
    under_gain = {}
    for db, predictions in pooled_gained.items():
        p_gained = np.concatenate(predictions)
        under_gain[f"{db:+g}"] = {"pooled_test_uar": _uar(corpus, y_test, p_gained),
                                  "labels_kept": float(np.mean(p_gained == p_test))}
    return {
        "n_clips": len(corpus.labels),
        "n_dims": int(corpus.vectors.shape[1]),
        "pooled_test_uar": _uar(corpus, y_test, p_test),
        "pooled_val_uar": _uar(corpus, *(np.concatenate(a) for a in pooled["val"])),
        "pooled_test_recall": dict(zip(corpus.label_names, _recalls(corpus, y_test, p_test), strict=True)),
        "folds": folds,
        **({"under_gain": under_gain} if under_gain else {}),
    }


def cross_fitted_probabilities(corpus, idx, c, class_weight):
    """``{clip name: probabilities}`` for clips ``idx``, each from a model fitted on the other
    :data:`TEACHER_GROUPS` groups of ``idx``'s speakers (round-robin over sorted speakers)."""
    speakers = sorted(set(corpus.speakers[idx].tolist()))
    out = {}
    for g in range(TEACHER_GROUPS):
        held = np.isin(corpus.speakers[idx], speakers[g::TEACHER_GROUPS])
        fit_idx, held_idx = idx[~held], idx[held]
        _, (x_fit, x_held) = _standardised(corpus.vectors, fit_idx, held_idx)
        model = LogisticRegression(C=c, class_weight=class_weight, max_iter=MAX_ITER).fit(x_fit, corpus.labels[fit_idx])
        out.update(zip(corpus.names[held_idx].tolist(), model.predict_proba(x_held)))
    return out


def write_teacher(path, corpus, result, class_weight):
    """The system as a distillation teacher file (see the module docstring)."""
    from sertiny.data.splits import fold_indices, ravdess_paper_folds
    from sertiny.training.distill import DEPLOY_KEY, write_teacher_file

    folds, chosen = ravdess_paper_folds(), {f["index"]: f["chosen_C"] for f in result["folds"]}
    probabilities = {}
    for fold in tqdm(folds, desc="teacher folds", unit="fold"):
        train_idx = np.asarray(fold_indices(corpus.speakers, fold)[0])
        probabilities[fold.index] = cross_fitted_probabilities(corpus, train_idx, chosen[fold.index], class_weight)
    c_deploy = float(np.median(list(chosen.values())))
    probabilities[DEPLOY_KEY] = cross_fitted_probabilities(corpus, np.arange(len(corpus.names)), c_deploy, class_weight)
    description = (f"{result['description']} + StandardScaler + LogisticRegression, cross-fitted over "
                   f"{TEACHER_GROUPS} speaker groups; C per fold {chosen}, deploy C {c_deploy:g} "
                   f"(benchmarks/classical_baselines.py)")
    write_teacher_file(path, label_names=corpus.label_names, folds=folds, probabilities=probabilities,
                       description=description)


def _standardised(vectors, train_idx, *other_idx):
    """``(scaler, [rows of vectors scaled by the training rows' mean and std, per index set])``:
    the fitted StandardScaler is returned for anything else the fold's model must label."""
    scaler = StandardScaler().fit(vectors[train_idx])
    return scaler, [scaler.transform(vectors[idx]) for idx in (train_idx, *other_idx)]


def _fit_path(x, y, c_grid, class_weight, bar):
    """One LogisticRegression fitted from scratch per C of ``c_grid``, and whether each converged.

    Not warm-started along the grid: at large C lbfgs then stops within its tolerance a few
    iterations from the smaller C's solution, and 13-18 of fold 1's 128 validation clips of
    ComParE get another label than from a cold start.
    """
    models, converged = [], []
    for c in c_grid:
        model = LogisticRegression(C=c, class_weight=class_weight, max_iter=MAX_ITER)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            model.fit(x, y)
        models.append(model)
        converged.append(not any(issubclass(w.category, ConvergenceWarning) for w in caught))
        bar.update(1)
    return models, converged


def _uar(corpus, y_true, y_pred):
    # sertiny's one UAR (sklearn macro recall over every class), so figures compare with its reports.
    return uar(y_true, y_pred, len(corpus.label_names))


def _recalls(corpus, y_true, y_pred):
    return per_class_recall(y_true, y_pred, len(corpus.label_names)).tolist()


def load_corpus(system, args, gain_db=0.0):
    cache = args.cache
    if system in OPENSMILE_SETS:
        name = OPENSMILE_SETS[system] + (f"_gain{gain_db:+g}dB" if gain_db else "")
        return opensmile_corpus(args.data, OPENSMILE_SETS[system], cache / f"opensmile_{name}.npz", gain_db)
    if system in FRONT_END_SETS:
        return front_end_corpus(args.data, FRONT_END_SETS[system], cache / "sertiny_features", args.jobs, gain_db)
    if gain_db:
        raise ValueError("paper_stats has no audio to play louder")  # main() never asks
    return paper_corpus(args.paper_features)


def gained_vectors(system, corpus, args):
    """``{gain: vectors}`` of ``corpus``'s clips at each of ``--test-gains`` (none for paper_stats)."""
    if system not in OPENSMILE_SETS and system not in FRONT_END_SETS:
        return {}
    out = {}
    for db in args.test_gains:
        other = load_corpus(system, args, db)
        if not np.array_equal(other.names, corpus.names):
            sys.exit(f"Error: {system} at {db:+g} dB lists other clips than at 0 dB; clear {args.cache} and rerun.")
        out[db] = other.vectors
    return out


def library_versions():
    import importlib.metadata

    versions = {}
    # numpy and librosa are in machine_info already.
    for package in ("scikit-learn", "opensmile", "soundfile", "soxr"):
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return versions


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--systems", default=",".join(SYSTEMS),
                        help=f"comma-separated subset of {', '.join(SYSTEMS)} (default: all)")
    parser.add_argument("--data", type=Path, default=DATA / "ravdess16k", help="RAVDESS audio root (Actor_NN/)")
    parser.add_argument("--paper-features", type=Path, default=DATA / "ravdess48k_paper_features.npz")
    parser.add_argument("--cache", type=Path, default=REPO / "runs" / "baselines_cache")
    parser.add_argument("--class-weight", choices=("balanced", "none"), default="balanced")
    parser.add_argument("--jobs", type=int, default=1, help="worker processes for sertiny's front end")
    parser.add_argument("--test-gains", default="",
                        help="comma-separated gains in dB, written --test-gains=-6,6: also score each system on its test clips "
                             "played that much louder or quieter (every system but paper_stats)")
    parser.add_argument("--limit-c", type=int, default=None,
                        help="use only the first N values of the C grid (a quick look; no report written)")
    parser.add_argument("--teacher", type=Path, default=None, metavar="DIR",
                        help="also write each system as a distillation teacher, DIR/<system>.json (cross-fitted)")
    parser.add_argument("--out", type=Path, default=None,
                        help="report path without suffix: writes OUT.md and OUT.json (default: results/baselines "
                             "when every system runs; a --systems subset writes no report unless --out is given, so "
                             "it does not replace the full one)")
    args = parser.parse_args()
    args.systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    args.every_system = set(args.systems) == set(SYSTEMS)  # before openSMILE may be found missing
    unknown = [s for s in args.systems if s not in SYSTEMS]
    if unknown or not args.systems:
        parser.error(f"unknown system(s) {unknown}; choose from {', '.join(SYSTEMS)}.")
    if args.jobs < 1:
        parser.error(f"--jobs must be an int >= 1; got {args.jobs}.")
    try:
        args.test_gains = [float(g) for g in args.test_gains.split(",") if g.strip()]
    except ValueError:
        parser.error(f"--test-gains must be comma-separated numbers of dB (e.g. --test-gains=-6,6); got {args.test_gains!r}.")
    if 0.0 in args.test_gains or len(set(args.test_gains)) != len(args.test_gains):
        parser.error(f"--test-gains must list distinct gains other than 0 dB; got {args.test_gains}.")
    return args


def main():
    args = parse_args()
    machine = machine_info()  # before the run, so the load average is the one it started under
    c_grid = C_GRID[: args.limit_c]
    class_weight = None if args.class_weight == "none" else args.class_weight
    if any(s in OPENSMILE_SETS for s in args.systems):
        try:
            import opensmile  # noqa: F401
        except ImportError:
            print("openSMILE systems skipped: the `opensmile` package is not installed "
                  "(pip install opensmile; it is a benchmark peer, not a sertiny dependency).")
            args.systems = [s for s in args.systems if s not in OPENSMILE_SETS]
    if not args.systems:
        sys.exit("Error: no system left to run; install opensmile or choose other --systems.")
    results = {}
    for system in args.systems:
        print(f"== {system}: {SYSTEMS[system]}", flush=True)
        corpus = load_corpus(system, args)
        gained = gained_vectors(system, corpus, args)
        # One BLAS thread: the fits are small, and the machine's cores are shared with training
        # jobs; oversubscribed OpenBLAS threads spin and made each ComParE fit ~10x slower in CPU
        # time. (threadpoolctl caps only libraries already loaded, hence sklearn's top-level import.)
        with limit_blas_threads(1):
            results[system] = {"description": SYSTEMS[system], **evaluate(corpus, c_grid, class_weight, gained)}
            if args.teacher is not None:
                write_teacher(args.teacher / f"{system}.json", corpus, results[system], class_weight)
                print(f"teacher written to {args.teacher / f'{system}.json'}", flush=True)
        print(f"{system}: pooled test UAR {results[system]['pooled_test_uar']:.4f}, pooled validation UAR "
              f"{results[system]['pooled_val_uar']:.4f}, C per fold "
              f"{[f['chosen_C'] for f in results[system]['folds']]}", flush=True)
    record = {
        "command": command_line(),
        "machine": machine,
        "versions": library_versions(),
        "protocol": {
            "folds": "sertiny.data.splits.ravdess_paper_folds()",
            "model": f"StandardScaler + LogisticRegression(lbfgs, max_iter={MAX_ITER}, class_weight={class_weight!r})",
            "class_weight": class_weight,
            "c_grid": list(c_grid),
            "c_choice": "highest UAR on the fold's validation speakers; ties -> smallest C",
            "fit_on": "the fold's training speakers only (no refit on train + validation)",
            "metric": "sklearn recall_score(average='macro'), test predictions of the five folds pooled",
            "seeds": "none: lbfgs, the scaler and the extractors are deterministic (BLAS capped at one thread)",
            "test_gains_db": args.test_gains,
        },
        "systems": results,
    }
    print(format_summary(results))
    if args.out is None and args.every_system:
        args.out = REPO / "results" / "baselines"
    if args.limit_c is None and args.out is not None:
        atomic_write_json(args.out.with_suffix(".json"), record)
        atomic_write_text(args.out.with_suffix(".md"), format_report(record))
        print(f"written to {args.out.with_suffix('.md')} and {args.out.with_suffix('.json')}")


def format_summary(results):
    lines = ["| system | dims | pooled test UAR | pooled validation UAR | C per fold (1-5) |",
             "|---|---|---|---|---|"]
    for system, r in results.items():
        choices = ", ".join(f"{f['chosen_C']:g}" for f in r["folds"])
        lines.append(f"| {system} | {r['n_dims']:,} | {r['pooled_test_uar']:.4f} | {r['pooled_val_uar']:.4f} "
                     f"| {choices} |")
    for system, r in results.items():
        for gain, g in r.get("under_gain", {}).items():
            lines.append(f"{system} at {gain} dB: test UAR {g['pooled_test_uar']:.4f}, "
                         f"labels kept {100 * g['labels_kept']:.1f} %")
    return "\n".join(lines)


def _gain_lines(results, gains):
    """The section on the test clips played louder or quieter (none without ``--test-gains``)."""
    rows = [(s, r) for s, r in results.items() if "under_gain" in r]
    if not gains or not rows:
        return []
    keys = [f"{g:+g}" for g in gains]
    return [
        "## The same test clips played louder or quieter",
        "",
        "Each fold's model, fitted and chosen at RAVDESS's own recording level, labels its test clips "
        "scaled by the gain and stored as 16-bit (as benchmarks/frontend_floor.py makes its gain versions). "
        "Labels kept: the share of test clips whose label stays what it was at 0 dB (no labels involved). "
        "`paper_stats` has no row: its features come precomputed from the 48 kHz originals.",
        "",
        "| system | " + " | ".join(f"UAR at {k} dB" for k in keys) + " | UAR at 0 dB | "
        + " | ".join(f"labels kept at {k} dB" for k in keys) + " |",
        "|---|" + "---:|" * (2 * len(keys) + 1),
        *[f"| {s} | " + " | ".join(f"{r['under_gain'][k]['pooled_test_uar']:.4f}" for k in keys)
          + f" | {r['pooled_test_uar']:.4f} | "
          + " | ".join(f"{100 * r['under_gain'][k]['labels_kept']:.1f} %" for k in keys) + " |" for s, r in rows],
        "",
    ]


def format_report(record):
    results, protocol = record["systems"], record["protocol"]
    fold_rows = []
    for system, r in results.items():
        cells = " | ".join(f"{f['test_uar']:.3f} ({f['val_uar']:.3f}, C={f['chosen_C']:g})" for f in r["folds"])
        fold_rows.append(f"| {system} | {cells} |")
    grid_ends = (protocol["c_grid"][0], protocol["c_grid"][-1])
    edges = [f"- {system}, fold {f['index']}: C = {f['chosen_C']:g} is at an end of the grid "
             f"(validation UAR by C: {', '.join(f'{c} {u:.3f}' for c, u in f['val_uar_by_C'].items())})"
             for system, r in results.items() for f in r["folds"] if f["chosen_C"] in grid_ends]
    warnings_ = [f"- {system}, fold {f['index']}: lbfgs did not converge in {MAX_ITER} iterations at "
                 f"C = {', '.join(f['not_converged_C'])}"
                 + ("" if f["chosen_converged"] else " (including the chosen C)")
                 for system, r in results.items() for f in r["folds"] if f["not_converged_C"]]
    versions = ", ".join(f"{k} {v}" for k, v in record["versions"].items())
    return "\n".join([
        "# Classical baselines on the paper's RAVDESS folds",
        "",
        "Written by `benchmarks/classical_baselines.py`; do not edit by hand. Numbers for issue 14.",
        "",
        f"- Command: `{record['command']}`",
        *machine_lines(record["machine"]),
        f"- Libraries: {versions}",
        "",
        "## Protocol",
        "",
        f"- Folds: the paper's five speaker-independent RAVDESS folds (`{protocol['folds']}`): "
        "each fold's test and validation speakers are the paper's, the other speakers train.",
        f"- Model: {protocol['model']}, on one fixed-length vector per clip.",
        f"- C grid: {', '.join(f'{c:g}' for c in protocol['c_grid'])}; C is chosen per fold by "
        f"{protocol['c_choice']}. Nothing is chosen on test speakers.",
        f"- Fitted on {protocol['fit_on']}, the same data sertiny's networks train on; "
        "the model chosen on validation is the one scored on test.",
        "- `class_weight='balanced'`: the metric is UAR and RAVDESS has 96 neutral clips against "
        "192 of every other class." if protocol["class_weight"] == "balanced" else
        "- No class weighting (`--class-weight none`).",
        f"- Metric: {protocol['metric']}. The pooled validation UAR pools each fold's validation "
        "speakers at its chosen C, so it is optimistic (C was chosen on it).",
        f"- Seeds: {protocol['seeds']}; each figure is a single run.",
        "",
        "## Pooled out-of-fold UAR",
        "",
        "| system | features | dims | pooled test UAR | pooled validation UAR |",
        "|---|---|---|---|---|",
        *[f"| {s} | {r['description']} | {r['n_dims']:,} | {r['pooled_test_uar']:.4f} | {r['pooled_val_uar']:.4f} |"
          for s, r in results.items()],
        "",
        "## Per fold: test UAR (validation UAR, chosen C)",
        "",
        "| system | " + " | ".join(f"fold {i}" for i in range(1, 6)) + " |",
        "|---|" + "---|" * 5,
        *fold_rows,
        "",
        *_gain_lines(results, protocol.get("test_gains_db") or []),
        "## Pooled test recall per class",
        "",
        "| system | " + " | ".join(next(iter(results.values()))["pooled_test_recall"]) + " |",
        "|---|" + "---|" * len(next(iter(results.values()))["pooled_test_recall"]),
        *[f"| {s} | " + " | ".join(f"{v:.2f}" for v in r["pooled_test_recall"].values()) + " |"
          for s, r in results.items()],
        "",
        "## Convergence and grid range",
        "",
        *(warnings_ or [f"lbfgs converged within {MAX_ITER} iterations for every system, fold and C."]),
        "",
        *(edges or ["No fold chose a C at either end of the grid."]),
        "",
        "The validation UAR of every C, per fold, is in `baselines.json` (`val_uar_by_C`).",
        "",
    ])


if __name__ == "__main__":
    from sertiny.errors import SertinyError

    try:
        main()
    except SertinyError as exc:  # bad paths or data: say what is wrong, without a traceback
        sys.exit(f"Error: {exc}")
