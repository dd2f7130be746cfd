#!/usr/bin/env python
"""Speaker-adaptive normalisation from a few enrolment clips: what a device that has heard k
unlabelled clips of its user would score.

A speaker-adaptive run (``TrainConfig.normalization = "speaker"``) is tested with each test
speaker's statistics over *all* of that speaker's clips: an upper bound no device reaches. Here
every fold model of such a run labels its held-out speakers' clips z-scored with statistics of
only k clips of the same speaker, drawn at random (labels unused), for each k of ``--clips`` and
``--draws`` draws; the enrolment clips themselves are not scored. Beside it, the fold models of a
run without speaker statistics (``--reference``, the same recipe otherwise) label exactly the same
clips, so the difference is the enrolment's alone. ``all`` uses every clip of the speaker, as the
run itself did (a check: on the test speakers it gives the run's pooled test UAR).

Both held-out groups of every fold are scored: the validation speakers, on which shipping the
option is decided, and the test speakers, reported beside them. Pooled UAR over the five folds
per seed and draw; mean ± std over seeds of the draws' mean.

Writes results/enrolment.md and .json with the command, date and machine.

    python benchmarks/enrolment.py RUN --reference OTHER_RUN [--clips 1,2,4,8,16] [--draws 5]
"""

import argparse
import sys
import zlib
from pathlib import Path

import numpy as np
from tqdm import tqdm

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sertiny._io import atomic_write_json, atomic_write_text  # noqa: E402
from sertiny.features.normalize import fit_norm_stats, normalize_utterance  # noqa: E402
from sertiny.machine import command_line, machine_info, machine_lines  # noqa: E402
from sertiny.metrics import uar  # noqa: E402
from sertiny.training.rundir import RunDir  # noqa: E402

ALL = "all"


def enrolment_draw(clips, k, draw, speaker):
    """The ``k`` enrolment clips of ``speaker`` for one draw: the same for every seed and fold
    model, so seeds differ by their models only."""
    if k == ALL:
        return list(clips)
    rng = np.random.default_rng([zlib.crc32(str(speaker).encode()), k, draw])
    return sorted(rng.choice(clips, size=min(k, len(clips) - 1), replace=False).tolist())


def speaker_clips(speakers, chosen):
    """``{speaker: [table index, ...]}`` of the clips of the speakers in ``chosen``."""
    out = {}
    for i, speaker in enumerate(speakers):
        if speaker in chosen:
            out.setdefault(speaker, []).append(i)
    return out


class FoldModel:
    """One fold model of a run (float, Keras) with its normalisation."""

    def __init__(self, run, seed, fold_index, seq_len):
        self.net, self.norm = run.load_fold_model(seed, fold_index)
        self.seq_len = seq_len

    def labels(self, clips):
        from sertiny.training.inputs import stack_clips

        x, _ = stack_clips(clips, self.seq_len, self.norm)
        return np.asarray(self.net.predict(x, batch_size=256, verbose=0)).argmax(axis=1)


def enrolled_labels(model, features, utterance, by_speaker, k, draw):
    """``{table index: label}`` of every scored clip of one fold's test speakers."""
    out = {}
    for speaker, clips in by_speaker.items():
        enrol = enrolment_draw(clips, k, draw, speaker)
        stats = fit_norm_stats([normalize_utterance(features[i], utterance) for i in enrol])
        scored = clips if k == ALL else [i for i in clips if i not in set(enrol)]
        predicted = model.labels([stats.apply(normalize_utterance(features[i], utterance)) for i in scored])
        out.update(zip(scored, predicted.tolist()))
    return out


def measure(run_path, reference_path, ks, draws, progress=True):
    """Both speaker groups of every fold: ``validation`` (what a choice may look at) and ``test``."""
    from sertiny.training.data import table_for_run

    run, reference = RunDir(run_path), RunDir(reference_path)
    info, config = run.info(), run.train_config()
    if config.get("normalization") != "speaker":
        raise SystemExit(f"{run_path} was not trained with speaker-adaptive normalisation (normalization: "
                         f"{config.get('normalization')!r}); pass a run of a recipe with normalization 'speaker'.")
    if reference.info().get("folds") != info.get("folds"):
        raise SystemExit(f"{reference_path} ran other folds than {run_path}; the reference must share them.")
    table = table_for_run(run_path)
    utterance = config.get("utterance_norm", "none")
    folds, n_classes = run.folds(), len(info["label_names"])
    seeds = [s for s in config["seeds"] if all((r.fold_dir(s, f.index) / "weights.npz").is_file()
                                               for r in (run, reference) for f in folds)]
    settings = [(k, d) for k in ks for d in (range(1) if k == ALL else range(draws))]
    labels = {}  # (group, k, draw, seed) -> {table index: (adaptive label, reference label)}
    bar = tqdm(total=len(seeds) * len(folds), unit="fold model", disable=not progress)
    for seed in seeds:
        for fold in folds:
            model, ref = (FoldModel(r, seed, fold.index, info["seq_len"]) for r in (run, reference))
            for group, speakers in (("validation", fold.val_speakers), ("test", fold.test_speakers)):
                by_speaker = speaker_clips(table.speakers, set(speakers))
                everyone = [i for clips in by_speaker.values() for i in clips]
                without = dict(zip(everyone, ref.labels([table.features[i] for i in everyone]).tolist()))
                for k, d in settings:
                    adaptive = enrolled_labels(model, table.features, utterance, by_speaker, k, d)
                    labels.setdefault((group, k, d, seed), {}).update({i: (a, without[i]) for i, a in adaptive.items()})
            bar.update(1)
    bar.close()
    truth = np.asarray(table.labels)
    result = {"run": str(run_path), "reference": str(reference_path), "seeds": seeds, "draws": draws}
    for group in ("validation", "test"):
        rows = []
        for k in ks:
            per_draw = []
            for d in (range(1) if k == ALL else range(draws)):
                per_seed = {}
                for seed in seeds:
                    scored = labels[(group, k, d, seed)]
                    idx = np.array(sorted(scored))
                    pairs = np.array([scored[i] for i in idx])
                    per_seed[seed] = (uar(truth[idx], pairs[:, 0], n_classes), uar(truth[idx], pairs[:, 1], n_classes))
                per_draw.append(per_seed)
            rows.append(summarise(k, per_draw, seeds))
        result[group] = rows
    return result


def summarise(k, per_draw, seeds):
    """Mean ± std over seeds of each seed's UAR averaged over draws, for both runs."""
    adaptive = [np.mean([draw[s][0] for draw in per_draw]) for s in seeds]
    without = [np.mean([draw[s][1] for draw in per_draw]) for s in seeds]
    return {"enrolment_clips": k, "uar_mean": float(np.mean(adaptive)), "uar_std": float(np.std(adaptive)),
            "uar_per_seed": [float(u) for u in adaptive], "reference_uar_mean": float(np.mean(without)),
            "reference_uar_std": float(np.std(without)),
            "draw_spread": float(np.mean([np.std([draw[s][0] for draw in per_draw]) for s in seeds]))}


GROUPS = {"validation": "Validation speakers (each fold's two; what a choice may look at)",
          "test": "Test speakers (reported, chooses nothing)"}


def markdown(result, header):
    lines = ["# Speaker-adaptive normalisation from a few enrolment clips", "", *header, "",
             f"Run: `{result['run']}` (speaker statistics); reference: `{result['reference']}` (the training "
             f"speakers' statistics only). Seeds {', '.join(map(str, result['seeds']))}; {result['draws']} random "
             "draws of the enrolment clips per speaker (the same draws for every seed). Every fold model labels its "
             "held-out speakers' clips, z-scored with statistics of k clips of the same speaker (labels unused); "
             "the enrolment clips are not scored, and the reference fold model labels the same clips. Pooled UAR "
             "over the five folds; mean ± std over seeds.", ""]
    for group, title in GROUPS.items():
        lines += [f"## {title}", "",
                  "| enrolment clips per speaker | UAR, speaker statistics | UAR, reference on the same clips | "
                  "difference | spread over draws (std) |", "|---|---|---|---|---|"]
        for row in result[group]:
            k = row["enrolment_clips"]
            label = "all (as the run was trained and tested: an upper bound)" if k == ALL else str(k)
            lines.append(f"| {label} | {row['uar_mean']:.4f} ± {row['uar_std']:.4f} | "
                         f"{row['reference_uar_mean']:.4f} ± {row['reference_uar_std']:.4f} | "
                         f"{100 * (row['uar_mean'] - row['reference_uar_mean']):+.1f} pp | {row['draw_spread']:.4f} |")
        lines.append("")
    return "\n".join(lines)


def parse_clips(text):
    return [ALL if part == ALL else int(part) for part in text.split(",")]


def main():
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("run", help="a finished run trained with normalization 'speaker'")
    parser.add_argument("--reference", required=True, help="the same recipe's run without speaker statistics")
    parser.add_argument("--clips", type=parse_clips, default="1,2,4,8,16,all",
                        help="enrolment clips per speaker, comma-separated; 'all' = every clip (default: %(default)s)")
    parser.add_argument("--draws", type=int, default=5, help="random draws of the enrolment clips (default: 5)")
    parser.add_argument("--out", default=str(REPO / "results" / "enrolment.md"))
    args = parser.parse_args()
    info = machine_info()
    result = measure(Path(args.run), Path(args.reference), args.clips, args.draws)
    result.update(command=command_line(), machine=info)
    out = Path(args.out)
    atomic_write_text(out, markdown(result, [f"Command: `{command_line()}`", *machine_lines(info)]))
    atomic_write_json(out.with_suffix(".json"), result)
    print(out.read_text())


if __name__ == "__main__":
    main()
