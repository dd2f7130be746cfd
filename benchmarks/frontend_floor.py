#!/usr/bin/env python
"""Quiet-frame floors of the streaming front end: does the same speech keep its label?

Compares two training runs that differ only in their front end (each run's own
``feature_config.json``; typically edge16k before and after its floors), on RAVDESS:

1. Diagnosis: how far each feature moves, in units of the model's normalisation std, between
   actor 01's 60 original 48 kHz WAVs (read by sertiny's loader, so resampled to 16 kHz)
   and the same clips of the 16 kHz copy, by frame level.
2. Levels: where silent frames, 16-bit quantisation noise and speech lie in mel-band and
   FFT-bin power over all 1440 clips of the copy, and what each front end's floors clip of
   speech: the measurements the floors were chosen from.
3. Labels: every fold model of each run, on its own held-out speakers, labels the 16 kHz copy
   and versions of it: actor 01's 48 kHz originals; for all 1440 clips the copy requantised
   with +-1 LSB triangular dither, a 48 kHz round trip (upsampled, stored as a 16-bit WAV,
   read back by the loader; soxr "HQ" twice also cuts the copy above ~7.5 kHz), gain -6 / +6
   dB, white noise at 40 dB SNR, and a random microphone and room (0.3 s reverberation time,
   ``sertiny.training.augment.room_colour``) (seeded per clip), each stored as 16-bit. Agreement = share
   of clips whose label does not change; UAR of each version beside it.
4. The built-in bundle (its default model, as ``sertiny infer`` runs it, then each other model
   it ships) on actor 01's originals vs copies.

Writes results/frontend_floor.md and .json with the command, date and machine.

    python benchmarks/frontend_floor.py --old runs/old_edge16k --new runs/new_edge16k --jobs 2
"""

import argparse
import concurrent.futures
import sys
import tempfile
from pathlib import Path

import numpy as np
from tqdm import tqdm

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks._audio import decoded_pcm16, pcm16  # noqa: E402
from sertiny._io import atomic_write_json, atomic_write_text  # noqa: E402
from sertiny.data.audio import load_audio  # noqa: E402
from sertiny.metrics import uar  # noqa: E402
from sertiny.features import FeatureConfig, extract, fit_norm_stats, get_preset  # noqa: E402
from sertiny.features import numpy_frontend as nf  # noqa: E402
from sertiny.machine import command_line, machine_info, machine_lines  # noqa: E402
from sertiny.features.cache import limit_blas_threads  # noqa: E402
from sertiny.training.augment import room_colour  # noqa: E402
from sertiny.training.rundir import weights_name  # noqa: E402

RATE = 16_000
ORIGINAL_RATE = 48_000
SNR_DB = 40.0
GAIN_DB = 6.0
ROOM_RT60 = 0.3  # s: a furnished room; the microphone's response is drawn per clip
# Frame level: mean mel-band power of the (unfloored) 16 kHz copy, dB re 1.0. The classes
# of the diagnosis; -80 dB is below any speech in RAVDESS, -40 dB above its pauses.
LEVEL_CLASSES = (("silent (< -80 dB)", -np.inf, -80.0), ("quiet (-80..-60 dB)", -80.0, -60.0),
                 ("weak (-60..-40 dB)", -60.0, -40.0), ("speech (>= -40 dB)", -40.0, np.inf))
SILENT_DB, SPEECH_DB = -80.0, -40.0
VERSIONS = ("16-bit requantised (TPDF dither)", "48 kHz round trip", f"gain -{GAIN_DB:g} dB", f"gain +{GAIN_DB:g} dB",
            f"noise {SNR_DB:g} dB SNR", f"microphone + room (RT60 {ROOM_RT60:g} s)")
ORIGINALS = "48 kHz originals (actor 01)"
TARGET_AGREEMENT = 0.99


# ---------------------------------------------------------------------------------------
# Audio versions


def round_trip_48k(y, workdir):
    """``y`` upsampled to 48 kHz, stored as a 16-bit WAV and read back by sertiny's loader."""
    import soundfile as sf
    import soxr

    path = Path(workdir) / "clip.wav"
    sf.write(path, pcm16(soxr.resample(y, RATE, ORIGINAL_RATE, quality="HQ")), ORIGINAL_RATE, subtype="PCM_16")
    return load_audio(path, RATE)[: y.size]


def versions(y, seed, workdir):
    """The perturbed versions of one 16 kHz clip, each as 16-bit samples would decode."""
    rng = np.random.default_rng(seed)
    # Triangular dither of +-1 LSB before rounding: every sample may move by one step, as
    # when another converter requantises the same recording (the originals-vs-copy case).
    dither = (rng.uniform(-0.5, 0.5, y.size) + rng.uniform(-0.5, 0.5, y.size)) / 32768.0
    noise = rng.normal(size=y.size) * np.sqrt(np.mean(np.square(y, dtype=np.float64)) / 10 ** (SNR_DB / 10))
    return {
        VERSIONS[0]: decoded_pcm16(y + dither),
        VERSIONS[1]: round_trip_48k(y, workdir),
        VERSIONS[2]: decoded_pcm16(y * 10 ** (-GAIN_DB / 20)),
        VERSIONS[3]: decoded_pcm16(y * 10 ** (GAIN_DB / 20)),
        VERSIONS[4]: decoded_pcm16(y + noise),
        VERSIONS[5]: decoded_pcm16(room_colour(y, RATE, ROOM_RT60, rng)),  # drawn last: the others stay as they were
    }


def frame_levels(y):
    """Per frame: mean mel-band power (dB) and the band powers / bin powers (unfloored)."""
    S = nf.power_spectrogram(y, n_fft=1024, hop_length=640)
    mel = nf.mel_spectrogram(S=S, sample_rate=RATE)
    with np.errstate(divide="ignore"):
        return 10 * np.log10(mel.mean(axis=0)), mel, S


# ---------------------------------------------------------------------------------------
# Per-clip work (worker processes)


class ClipJob:
    """Features of one clip's copy and versions under every front end, plus level statistics."""

    def __init__(self, configs, extra_configs, data):
        self.configs = configs
        self.all_configs = {**configs, **extra_configs}
        self.data = data

    def __call__(self, item):
        index, path = item
        y = load_audio(path, RATE)
        with tempfile.TemporaryDirectory() as workdir:
            ys = {"copy": y, **versions(y, index, workdir)}
        original = self.data / "ravdess48k_sample" / path.parent.name / f"{path.stem}.wav"
        if original.is_file():
            ys[ORIGINALS] = load_audio(original, RATE)[: y.size]
            # The loader's output may be one sample shorter; compare the same samples.
            ys["copy"] = ys["copy"][: ys[ORIGINALS].size]
        features = {name: {v: extract(x, config) for v, x in ys.items()} for name, config in self.all_configs.items()}
        levels, mel, S = frame_levels(ys["copy"])
        return path.stem, features, level_summary(levels, mel, S, self.configs)


def level_summary(levels, mel, S, configs):
    """Band/bin powers of silent and speech frames (dB samples, subsampled) and floor effects."""
    silent, speech = levels < SILENT_DB, levels >= SPEECH_DB
    with np.errstate(divide="ignore"):
        mel_db, bin_db = 10 * np.log10(mel), 10 * np.log10(S)
    out = {"levels": levels, "silent_mel_db": mel_db[:, silent].ravel(), "silent_bin_db": bin_db[:, silent].ravel(),
           "speech_frames": int(speech.sum()), "floor": {}}
    for name, config in configs.items():
        chroma_change = np.zeros(0)
        if config.chroma_floor is not None and speech.any():
            plain = nf.chroma(S=S[:, speech], sample_rate=RATE, tuning=config.tuning)
            floored = nf.chroma(S=S[:, speech], sample_rate=RATE, tuning=config.tuning, floor=config.chroma_floor)
            chroma_change = np.abs(floored - plain).max(axis=0)
        out["floor"][name] = {"mel_below": int((mel[:, speech] < config.amin).sum()),
                              "mel_values": int(mel[:, speech].size),
                              "chroma_changed": int((chroma_change > 0.1).sum())}
    return out


# ---------------------------------------------------------------------------------------
# Models


class FoldModel:
    """One fold model of a run (float, Keras), its normalisation and its held-out speakers."""

    def __init__(self, run, seed, fold):
        from sertiny.export.run import load_weight_set
        from sertiny.models.weights import model_with_weights

        weight_set = load_weight_set(run, f"seed{seed}_fold{fold.index}")
        self.net = model_with_weights(run.model_config, weight_set.weights)
        self.norm = weight_set.norm
        self.seq_len = run.seq_len
        self.test_speakers = set(fold.test_speakers)

    def labels(self, clips):
        from sertiny.training.inputs import stack_clips

        x, _ = stack_clips(clips, self.seq_len, self.norm)
        return np.asarray(self.net.predict(x, batch_size=256, verbose=0)).argmax(axis=1)


def label_agreement(run, name, features, names, speakers, labels, progress):
    """Per seed: agreement with the copy's labels and UAR, for every version; pooled over folds."""
    run_dir = run.path
    label_index = {label: i for i, label in enumerate(run.labels)}
    truth = np.array([label_index[label] for label in labels])
    n_classes = len(run.labels)
    per_seed = {}
    stored_mismatch = 0
    for seed in finished_seeds(run):
        predicted = {}
        for fold in run.folds:
            model = FoldModel(run, seed, fold)
            test = [i for i, speaker in enumerate(speakers) if speaker in model.test_speakers]
            for version in ("copy", ORIGINALS, *VERSIONS):
                chosen = [i for i in test if version in features[names[i]][name]]
                out = predicted.setdefault(version, np.full(len(names), -1))
                if chosen:
                    out[chosen] = model.labels([features[names[i]][name][version] for i in chosen])
            stored_mismatch += _check_against_stored(run_dir, seed, fold, names, predicted["copy"], run.labels)
            progress.update(1)
        copy = predicted["copy"]
        per_seed[seed] = {"copy_uar": uar(truth, copy, n_classes)}
        for version, labels_v in predicted.items():
            have = labels_v >= 0
            if version == "copy" or not have.any():
                continue
            per_seed[seed][version] = {"clips": int(have.sum()), "agreement": float(np.mean(labels_v[have] == copy[have])),
                                       "uar": uar(truth[have], labels_v[have], n_classes),
                                       "copy_uar_same_clips": uar(truth[have], copy[have], n_classes)}
    from sertiny.tuning.objective import pooled_test_uar

    training_uar = [pooled_test_uar(run_dir, seed, run.folds, run.labels) for seed in per_seed]
    return {"run": str(run_dir), "feature_config": FeatureConfig.from_dict(run.feature_config).to_dict(), "seeds": list(per_seed), "per_seed": per_seed,
            "training_uar_per_seed": training_uar,
            "utterance_norm": run.train_config.get("utterance_norm", "none"),
            "recipe": "{model}, batch {batch_size}, {epochs} epochs, lr {lr:g}, {folds} folds".format(**run.train_config),
            "clips_whose_label_differs_from_training_predictions": stored_mismatch}


def finished_seeds(run):
    """Seeds whose every fold model is saved (a run may be growing more seeds)."""
    return [seed for seed in run.seeds
            if all((run.weights_dir(weights_name(seed, f.index)) / "weights.npz").is_file() for f in run.folds)]


def _check_against_stored(run_dir, seed, fold, names, copy_labels, label_names):
    """Clips whose label here differs from the run's own predictions.csv (should be ~0:
    only float rounding of another batch layout can flip a near-tie)."""
    from sertiny.training.rundir import RunDir

    position = {n: i for i, n in enumerate(names)}
    rows = RunDir(run_dir).read_predictions(seed, fold.index)
    return sum(label_names[copy_labels[position[r["name"]]]] != r["predicted"] for r in rows if r["name"] in position)


def bundle_agreement(data, names, variant=None):
    """The built-in bundle (as `sertiny infer` runs it; ``variant`` None: its default) on actor
    01's originals vs copies. A flip names the copy's margin (top-1 minus top-2 probability)."""
    from sertiny.runtime.classifier import Classifier

    classifier = Classifier.from_path(None, variant)
    same, flips = [], []
    for stem in names:
        copy = classifier.classify_file(data / "ravdess16k" / "Actor_01" / f"{stem}.flac")
        original = classifier.classify_file(data / "ravdess48k_sample" / "Actor_01" / f"{stem}.wav")
        same.append(copy.label == original.label)
        if not same[-1]:
            top = np.sort(copy.probabilities)[::-1]
            flips.append(f"{stem}: {copy.label} (16 kHz copy, margin {top[0] - top[1]:.3f} over the second class) "
                         f"vs {original.label} (48 kHz original)")
    return {"clips": len(same), "agreement": float(np.mean(same)), "flips": flips,
            "feature_config": classifier.bundle.feature_config.to_dict(), "variant": classifier.variant.name}


def bundle_only(args):
    """``--bundle-only``: section 4 alone, for a rebuilt built-in bundle (no runs needed)."""
    result = {"command": "python benchmarks/frontend_floor.py --bundle-only", "machine": machine_info()}
    names = sorted(p.stem for p in (args.data / "ravdess48k_sample" / "Actor_01").glob("*.wav"))
    b = result["bundle"] = bundle_agreement(args.data, names)
    status = "meets" if b["agreement"] >= TARGET_AGREEMENT else "misses"
    lines = ["# The built-in bundle: the same speech keeps its label", "", f"Command: `{result['command']}`", "",
             *machine_lines(result["machine"]), "",
             f"`sertiny infer` with the shipped bundle ({b['variant']}, {describe(b['feature_config'])}), a "
             "deployment model trained on all speakers, actor 01 included: the label of each of actor 01's 48 kHz "
             f"original WAVs equals that of its 16 kHz copy for {100 * b['agreement']:.1f} % of {b['clips']} clips; "
             f"this {status} the {100 * TARGET_AGREEMENT:.0f} % target.", ""]
    lines += [f"- {flip}" for flip in b["flips"]] + [""]
    # The same check with the bundle's other models (float32, and int8 beside int16x8): which
    # flips are the front end's and which a quantised model's own.
    from sertiny.runtime.bundle import Bundle

    others = [v for v in Bundle.load(None).variants if v != b["variant"]]
    result["bundle_others"] = {}
    for name in others:
        o = result["bundle_others"][name] = bundle_agreement(args.data, names, name)
        lines += [f"The bundle's {name} model, same clips: {100 * o['agreement']:.1f} % agree.", ""]
        lines += [f"- {flip}" for flip in o["flips"]] + [""]
    out = args.out.with_name("frontend_floor_builtin.md")
    atomic_write_text(out, "\n".join(lines))
    atomic_write_json(out.with_suffix(".json"), result)
    print("\n".join(lines))


# ---------------------------------------------------------------------------------------
# Diagnosis and levels


def feature_groups(config):
    if config.kind == "log_mel":
        return (("log-mel", slice(None)),)
    return (("mfcc", slice(0, config.n_mfcc)), ("chroma", slice(config.n_mfcc, None)))


def diagnosis(features, levels, name, norm, config):
    """Per level class and feature group: how far actor 01's originals move from the copies."""
    pairs = [(features[n][name]["copy"], features[n][name][ORIGINALS], levels[n]) for n in features
             if ORIGINALS in features[n][name]]
    # Through the model's own normalisation (its per-utterance step included), in its stds.
    shift = np.concatenate([np.abs(norm.apply(b).astype(np.float64) - norm.apply(a)) for a, b, _ in pairs])
    level = np.concatenate([lv[: len(a)] for a, _, lv in pairs])
    rows = []
    for label, lo, hi in LEVEL_CLASSES:
        chosen = (level >= lo) & (level < hi)
        row = {"frames": int(chosen.sum())}
        for group, columns in feature_groups(config):
            worst = shift[chosen][:, columns].max(axis=1) if chosen.any() else np.zeros(1)
            row[group] = {"median": float(np.median(worst)), "p99": float(np.percentile(worst, 99)),
                          "share_over_1_std": float(np.mean(worst > 1.0))}
        rows.append((label, row))
    return dict(rows)


def movement_by_version(features, name, norm, config):
    """Per version, over all frames of all clips and per feature group (MFCC 0, the level, apart
    from the other MFCCs): the median over frames of the group's largest shift (stds), and the
    share of frames in which it exceeds 1 std."""
    groups = (("log-mel", slice(None)),) if config.kind == "log_mel" else (
        ("mfcc_0", slice(0, 1)), ("mfcc_1+", slice(1, config.n_mfcc)), ("chroma", slice(config.n_mfcc, None)))
    out = {}
    for version in (ORIGINALS, *VERSIONS):
        shifts = []
        for clip in features.values():
            if version in clip[name]:
                reference, other = clip[name]["copy"], clip[name][version]
                frames = min(len(reference), len(other))
                shifts.append(np.abs(norm.apply(other)[:frames].astype(np.float64) - norm.apply(reference)[:frames]))
        shift = np.concatenate(shifts)
        worst = {group: shift[:, columns].max(axis=1) for group, columns in groups}
        out[version] = {"frames": len(shift), **{group: {"median": float(np.median(w)),
                                                         "share_over_1_std": float(np.mean(w > 1.0))}
                                                 for group, w in worst.items()}}
    return out


def quantisation_noise_db(seed=0, seconds=60):
    """Mel-band and FFT-bin power (dB) of 16-bit rounding noise (uniform, +-0.5 LSB)."""
    y = (np.random.default_rng(seed).uniform(-0.5, 0.5, RATE * seconds) / 32768).astype(np.float32)
    _, mel, S = frame_levels(y)
    return 10 * np.log10(mel).ravel(), 10 * np.log10(S).ravel()


def level_report(summaries, configs):
    """Percentiles the floors were chosen from, and what each front end's floors clip of speech."""
    silent_mel = np.concatenate([s["silent_mel_db"] for s in summaries])
    silent_bin = np.concatenate([s["silent_bin_db"] for s in summaries])
    levels = np.concatenate([s["levels"] for s in summaries])
    noise_mel, noise_bin = quantisation_noise_db()
    pct = (50, 90, 99, 99.9)

    def percentiles(x):
        x = x[np.isfinite(x)]  # digital silence (power 0) has no dB value; counted separately
        return {str(p): float(np.percentile(x, p)) for p in pct}

    out = {
        "frames": int(levels.size),
        "silent_frames": int((levels < SILENT_DB).sum()),
        "digitally_silent_frames": int(np.isneginf(levels).sum()),
        "speech_frames": int((levels >= SPEECH_DB).sum()),
        "silent_mel_db": percentiles(silent_mel), "silent_bin_db": percentiles(silent_bin),
        "quantisation_noise_mel_db": percentiles(noise_mel), "quantisation_noise_bin_db": percentiles(noise_bin),
        "floors": {},
    }
    for name, config in configs.items():
        below = sum(s["floor"][name]["mel_below"] for s in summaries)
        values = sum(s["floor"][name]["mel_values"] for s in summaries)
        changed = sum(s["floor"][name]["chroma_changed"] for s in summaries)
        out["floors"][name] = {"amin": config.amin, "amin_db": float(10 * np.log10(config.amin)),
                               "chroma_floor": config.chroma_floor,
                               "chroma_floor_db": None if config.chroma_floor is None
                               else float(10 * np.log10(config.chroma_floor)),
                               "speech_mel_values_below_amin": below / values,
                               "speech_frames_chroma_changed_over_0.1": changed / max(out["speech_frames"], 1)}
    return out


# ---------------------------------------------------------------------------------------
# Report


def format_table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows])


def mean_std(values):
    values = np.asarray(values, dtype=np.float64)
    return f"{values.mean():.4f} ± {values.std():.4f}" if values.size > 1 else f"{values.mean():.4f}"


def describe(config):
    floor = "none" if config["chroma_floor"] is None else f"{config['chroma_floor']:g}"
    peak = config.get("running_peak_db")
    level = "" if peak is None else f", levels held {peak:g} dB above amin by the running peak (running_peak_db {peak:g})"
    extras = "".join(f", {what}" for key, what in (("pitch", "voicing and F0"), ("deltas", "each value's causal first difference"))
                     if config.get(key))
    return f"amin {config['amin']:g}, chroma_floor {floor}{level}{extras}"


def markdown(result):
    names = list(result["runs"])
    lines = ["# Front end floors: the same speech keeps its label", "",
             f"Command: `{result['command']}`", "", *machine_lines(result["machine"]), "",
             "Runs compared (each with its own `feature_config.json`: edge16k, 16 kHz, n_fft 1024, hop 640, "
             "tuning 0, top_db None, and the floors below; same training recipe unless noted):", ""]
    for n in names:
        r = result["runs"][n]
        note = "" if r["utterance_norm"] == "none" else f"; training: utterance_norm {r['utterance_norm']}"
        lines.append(f"- **{n}**: {describe(r['feature_config'])}{note} (run `{Path(r['run']).name}`)")
    lines += ["", "## 1. Diagnosis: actor 01, 48 kHz original vs 16 kHz copy, features in normalisation stds", "",
              "Per frame, the largest |original - copy| over the group's coefficients after the "
              "normalisation of the fold model that holds actor 01 out (seed 0; its per-utterance step "
              "included, if any), i.e. in that model's stds; for the log-mel rows (no model) in stds over "
              "all the copies. Frames "
              "classed by the copy's mean mel-band power (128 bands, no floor).", ""]
    rows = []
    for n, by_level in result["diagnosis"].items():
        for level, row in by_level.items():
            for group in (g for g in row if g != "frames"):
                g = row[group]
                rows.append([n, level, row["frames"], group, f"{g['median']:.3f}", f"{g['p99']:.3f}",
                             f"{100 * g['share_over_1_std']:.1f} %"])
    lines += [format_table(["front end", "frames", "n", "features", "median", "99th pct", "> 1 std"], rows), ""]
    lines += ["Every version of section 3 against the copy, all frames of all its clips (through the same normalisation): per "
              "group, the median over frames of the largest shift, and the share of frames where it exceeds "
              "1 std. MFCC 0 is the frame's level: a gain of 6 dB moves it by 6 x sqrt(128) = 68 units in "
              "every frame above the floor, a small shift per frame but the same in all of them.", ""]
    groups = []
    for by_version in result["movement"].values():
        for row in by_version.values():
            groups += [g for g in row if g != "frames" and g not in groups]
    rows = [[n, version, row["frames"], *(f"{row[g]['median']:.2f} / {100 * row[g]['share_over_1_std']:.1f} %"
                                          if g in row else "-" for g in groups)]
            for n, by_version in result["movement"].items() for version, row in by_version.items()]
    lines += [format_table(["front end", "input", "frames", *(f"{g}: median / > 1 std" for g in groups)], rows), ""]
    lv = result["levels"]
    lines += [f"## 2. Levels the floors were chosen from ({result['clips']} clips of the 16 kHz copy)", "",
              f"{lv['frames']} frames; {lv['silent_frames']} silent (mean mel-band power < {SILENT_DB:g} dB), "
              f"{lv['digitally_silent_frames']} of them digital zeros; {lv['speech_frames']} speech frames "
              f"(>= {SPEECH_DB:g} dB). Quantisation noise: 60 s of uniform ±0.5 LSB noise (seed 0) through "
              "the same STFT and filterbank.", ""]
    rows = [[what, *(f"{lv[key][p]:.1f}" for p in ("50", "90", "99", "99.9"))] for what, key in (
        ("silent frames, mel band", "silent_mel_db"), ("16-bit quantisation noise, mel band", "quantisation_noise_mel_db"),
        ("silent frames, FFT bin", "silent_bin_db"), ("16-bit quantisation noise, FFT bin", "quantisation_noise_bin_db"))]
    lines += [format_table(["power (dB re 1.0)", "50th pct", "90th", "99th", "99.9th"], rows), ""]
    rows = []
    for n in names:
        f = lv["floors"][n]
        chroma = "-" if f["chroma_floor"] is None else f"{f['chroma_floor_db']:.0f} dB"
        rows.append([n, f"{f['amin_db']:.0f} dB", chroma, f"{100 * f['speech_mel_values_below_amin']:.1f} %",
                     f"{100 * f['speech_frames_chroma_changed_over_0.1']:.2f} %"])
    lines += [format_table(["front end", "mel floor (amin)", "chroma floor (per bin)",
                            "speech frames' mel values below amin", "speech frames whose chroma moves > 0.1"], rows), ""]
    lines += ["## 3. Labels: fold models on their held-out speakers", "",
              "Float (Keras) fold models of each run, each on its fold's test speakers (paper folds), so "
              "every clip is labelled by a model that never heard its speaker. Agreement = share of clips "
              "whose label equals the label of the unmodified 16 kHz copy; mean ± std over seeds. Versions "
              "other than the originals are stored as 16-bit (rounded); dither, noise and room seeded by clip "
              "index. The round trip is more than requantisation: soxr \"HQ\" (the loader's resampler) "
              "passes up to ~7.5 kHz at 16 kHz, so going up and down cuts the copy's top band (-5 dB at "
              "7.6 kHz, -30 dB at 7.8 kHz), which the copy (made with soxr \"VHQ\") still has. Pooled "
              "test UAR of each version beside it (and of the copy on the same clips).", ""]
    rows = []
    versions_all = [ORIGINALS, *VERSIONS]
    for n in names:
        per_seed = result["runs"][n]["per_seed"]
        seeds = list(per_seed)
        rows.append([n, "16 kHz copy (reference)", result["clips"], "-", mean_std([per_seed[s]["copy_uar"] for s in seeds])])
        for version in versions_all:
            vals = [per_seed[s][version] for s in seeds if version in per_seed[s]]
            if not vals:
                continue
            rows.append([n, version, vals[0]["clips"], f"{100 * np.mean([v['agreement'] for v in vals]):.2f} % "
                         f"(min {100 * min(v['agreement'] for v in vals):.2f} %)",
                         f"{mean_std([v['uar'] for v in vals])} (copy: {mean_std([v['copy_uar_same_clips'] for v in vals])})"])
    lines += [format_table(["front end", "input", "clips", "label agreement with the copy", "pooled UAR"], rows), ""]
    rows = []
    for n in names:
        r = result["runs"][n]
        rows.append([n, r["recipe"], len(r["seeds"]), mean_std(r["training_uar_per_seed"]),
                     ", ".join(f"{u:.4f}" for u in r["training_uar_per_seed"]),
                     r["clips_whose_label_differs_from_training_predictions"]])
    lines += ["Pooled test UAR of the runs (from their predictions.csv, as `sertiny train` reports it). "
              "Few seeds: an indication, not a measurement of a small difference.", "",
              format_table(["front end", "recipe", "seeds", "UAR mean ± std", "per seed",
                            "clips whose copy label here differs from the run's predictions.csv"], rows), ""]
    b = result.get("bundle")
    if b:
        lines += ["## 4. The built-in bundle", "",
                  f"`sertiny infer` with the shipped bundle ({b['variant']}, {describe(b['feature_config'])}), "
                  f"a deployment model trained on all speakers, actor 01 included: the label of the 48 kHz "
                  f"original equals that of the 16 kHz copy for {100 * b['agreement']:.1f} % of {b['clips']} clips.",
                  ""]
    lines += ["## Verdict", "", *result["verdict"], ""]
    return "\n".join(lines)


def verdict(result):
    out = []
    for n, r in result["runs"].items():
        per_seed = r["per_seed"].values()
        for version in (ORIGINALS, *VERSIONS):
            agreement = float(np.mean([s[version]["agreement"] for s in per_seed if version in s]))
            status = "meets" if agreement >= TARGET_AGREEMENT else "misses"
            out.append(f"- {n}, {version}: {100 * agreement:.2f} % agreement, {status} the "
                       f"{100 * TARGET_AGREEMENT:.0f} % target.")
    return out


# ---------------------------------------------------------------------------------------


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--old", type=Path, help="run directory trained on the front end without floors (optional)")
    parser.add_argument("--new", type=Path, help="run directory trained on the front end with floors")
    parser.add_argument("--new-label", default="floors", help="its name in the tables")
    parser.add_argument("--bundle-only", action="store_true",
                        help="only the built-in bundle's check, written to results/frontend_floor_builtin.md")
    parser.add_argument("--also", action="append", default=[], metavar="LABEL=RUN",
                        help="another run to compare, e.g. 'floors + utterance mean=runs/x' (repeatable)")
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data",
                        help="folder holding ravdess16k/ and ravdess48k_sample/")
    parser.add_argument("--jobs", type=int, default=2, help="worker processes for audio and features")
    parser.add_argument("--limit", type=int, default=None, help="only the first N clips (a quick look; no report)")
    parser.add_argument("--no-bundle", action="store_true", help="skip the built-in bundle's check")
    parser.add_argument("--out", type=Path, default=REPO / "results" / "frontend_floor.md")
    return parser.parse_args()


def main():
    args = parse_args()
    if args.bundle_only:
        return bundle_only(args)
    if args.new is None:
        sys.exit("Error: --new is required (or --bundle-only).")
    machine = machine_info()  # before the run, so the load average is the one it started under
    runs = {"no floors": args.old} if args.old else {}
    runs[args.new_label] = args.new
    for item in args.also:
        label, sep, path = item.partition("=")
        if not sep or not label or not path:
            sys.exit(f"Error: --also takes LABEL=RUN_DIR; got {item!r}.")
        runs[label] = Path(path)
    from sertiny.errors import SertinyError
    from sertiny.export.run import load_run

    try:
        loaded = {name: load_run(path) for name, path in runs.items()}
    except SertinyError as exc:
        sys.exit(f"Error: {exc}")
    for name, run in loaded.items():
        if not finished_seeds(run):
            sys.exit(f"Error: {run.path} has no seed with every fold trained; let `sertiny train` finish first.")
    configs = {n: FeatureConfig.load(p / "feature_config.json") for n, p in runs.items()}
    # The log-mel preset got the same mel floor; no model here, its features only.
    logmel = get_preset("logmel16k")
    logmel_configs = {"logmel16k, amin 1e-10": logmel.replace(amin=1e-10), f"logmel16k, amin {logmel.amin:g}": logmel}
    files = sorted((args.data / "ravdess16k").glob("Actor_*/*.flac"))[: args.limit]
    if not files:
        sys.exit(f"Error: no clips under {args.data / 'ravdess16k'}; pass --data pointing at the shared data folder.")

    features, summaries, levels = {}, [], {}
    with concurrent.futures.ProcessPoolExecutor(max_workers=args.jobs, initializer=limit_blas_threads) as pool:
        job = ClipJob(configs, logmel_configs, args.data)
        for stem, clip_features, summary in tqdm(pool.map(job, enumerate(files), chunksize=8), total=len(files),
                                                 unit="clip", desc="audio versions and features"):
            features[stem] = clip_features
            summaries.append(summary)
            levels[stem] = summary["levels"]
    names = [p.stem for p in files]
    from sertiny.data.datasets import load_dataset  # labels and speakers as training read them

    dataset = {Path(c.path).stem: c for c in load_dataset(args.data / "ravdess16k", "ravdess").clips}
    speakers = [dataset[n].speaker for n in names]
    labels = [dataset[n].label for n in names]

    result = {"command": command_line(), "machine": machine, "clips": len(names), "runs": {}, "diagnosis": {},
              "movement": {}}
    n_models = sum(len(finished_seeds(run)) * len(run.folds) for run in loaded.values())
    with tqdm(total=n_models, unit="model", desc="fold models") as progress:
        for name, run in loaded.items():
            result["runs"][name] = label_agreement(run, name, features, names, speakers, labels, progress)
    for name, run in loaded.items():
        fold = next(f for f in run.folds if "01" in f.test_speakers)
        norm = run.dir.read_model(weights_name(finished_seeds(run)[0], fold.index))[1]
        result["diagnosis"][name] = diagnosis(features, levels, name, norm, configs[name])
        result["movement"][name] = movement_by_version(features, name, norm, configs[name])
    for name, config in logmel_configs.items():
        norm = fit_norm_stats([features[n][name]["copy"] for n in names])
        result["diagnosis"][name] = diagnosis(features, levels, name, norm, config)
        result["movement"][name] = movement_by_version(features, name, norm, config)
    result["levels"] = level_report(summaries, configs)
    if not args.no_bundle:
        result["bundle"] = bundle_agreement(args.data, sorted(n for n in names if n.endswith("-01")))
    result["verdict"] = verdict(result)
    text = markdown(result)
    print(text)
    if args.limit is None:
        atomic_write_text(args.out, text)
        atomic_write_json(args.out.with_suffix(".json"), result)
        print(f"wrote {args.out} and {args.out.with_suffix('.json')}")


if __name__ == "__main__":
    main()
