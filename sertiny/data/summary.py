"""A corpus health report: what is in it, and which files cannot be used and why.

Run it before training: a truncated download or a stray non-audio file then shows up
here, with its path and reason, instead of as a crash in the middle of feature
extraction.
"""

import collections
import concurrent.futures
import dataclasses
import os
from pathlib import Path

import numpy as np

from ..errors import AudioError
from .audio import audio_info, load_audio

_MAX_LISTED_IN_ERROR = 20


@dataclasses.dataclass
class DatasetSummary:
    """What ``summarize`` found. Counts cover usable clips only.

    Attributes:
        name, root, label_names: copied from the Dataset.
        n_clips: usable clips.
        class_counts: label -> clips, in ``label_names`` order (zero counts included).
        speaker_counts: speaker id -> clips, sorted by id (clips without a speaker id
            are not counted; a note says how many there are).
        duration: ``{"min", "mean", "max", "total"}`` in seconds, or None if no clip is usable.
        sample_rates, channels, formats: value -> number of clips.
        problems: ``(path, reason)`` for every file that cannot be used (loader and audio).
        notes: remarks that are not problems (skipped song files, empty classes).
        audio_checked: whether every file was decoded, or only its header read.
    """

    name: str
    root: str
    label_names: tuple
    n_clips: int
    class_counts: dict
    speaker_counts: dict
    duration: dict | None
    sample_rates: dict
    channels: dict
    formats: dict
    problems: list
    notes: list
    audio_checked: bool

    def to_dict(self):
        """A JSON-ready dict (what ``sertiny data summary --json`` prints)."""
        data = dataclasses.asdict(self)
        data["label_names"] = list(self.label_names)
        data["sample_rates"] = {str(k): v for k, v in self.sample_rates.items()}
        data["channels"] = {str(k): v for k, v in self.channels.items()}
        data["problems"] = [{"path": path, "reason": reason} for path, reason in self.problems]
        return data

    def raise_if_problems(self):
        """Raise AudioError listing the problem files, if there are any."""
        if not self.problems:
            return
        lines = [f"  {_short_path(path, self.root)}: {reason}" for path, reason in self.problems[:_MAX_LISTED_IN_ERROR]]
        if len(self.problems) > _MAX_LISTED_IN_ERROR:
            lines.append(f"  ... and {len(self.problems) - _MAX_LISTED_IN_ERROR} more")
        raise AudioError(
            self.root,
            f"{len(self.problems)} file(s) cannot be used (strict mode):\n" + "\n".join(lines)
            + "\nFix or remove them, or run without --strict to skip them.",
        )


def summarize(dataset, *, check_audio=True, n_jobs=None, progress=True, strict=False, min_duration=0.25):
    """Count a dataset's clips and check that every file is usable audio.

    Args:
        dataset: a Dataset from ``load_dataset``.
        check_audio: decode every file (finds corrupt, empty, too short and NaN
            files); False reads headers only, which is much faster on big corpora.
        n_jobs: reader threads (libsndfile releases the GIL); default min(4, CPUs).
        progress: show a tqdm progress bar on stderr.
        strict: raise instead of returning when any file cannot be used.
        min_duration: shortest usable clip in seconds (as in ``load_audio``).

    Returns:
        DatasetSummary.

    Raises:
        AudioError: ``strict`` and at least one problem file; the message lists them.
    """
    checks = _inspect_all(dataset.paths(), check_audio, n_jobs, progress, min_duration)
    usable, infos, problems = [], [], list(dataset.problems)
    for clip, (info, reason) in zip(dataset.clips, checks):
        if reason is None:
            usable.append(clip)
            infos.append(info)
        else:
            problems.append((clip.path, reason))
    result = _build_summary(dataset, usable, infos, problems, check_audio)
    if strict:
        result.raise_if_problems()
    return result


def _inspect_all(paths, check_audio, n_jobs, progress, min_duration):
    """``(AudioInfo, None)`` or ``(None, reason)`` per path, in order."""
    from tqdm.auto import tqdm  # imported here so that `import sertiny.data` stays light

    n_jobs = n_jobs or min(4, os.cpu_count() or 1)

    def inspect(path):
        return _inspect(path, check_audio, min_duration)

    bar = dict(total=len(paths), desc="checking audio" if check_audio else "reading headers",
               unit="file", disable=not progress, leave=False)
    if n_jobs == 1:
        return [inspect(p) for p in tqdm(paths, **bar)]
    with concurrent.futures.ThreadPoolExecutor(max_workers=n_jobs) as pool:
        return list(tqdm(pool.map(inspect, paths), **bar))


def _inspect(path, check_audio, min_duration):
    try:
        info = audio_info(path)
        if check_audio:
            # Decoding at the native rate checks every sample without paying for a resample.
            load_audio(path, info.samplerate, min_duration=min_duration)
        elif info.frames == 0 or info.duration < min_duration:
            load_audio(path, info.samplerate, min_duration=min_duration)  # for its error message
    except AudioError as exc:
        return None, exc.reason
    return info, None


def _build_summary(dataset, clips, infos, problems, check_audio):
    durations = np.array([info.duration for info in infos], dtype=np.float64)
    label_counts = collections.Counter(clip.label for clip in clips)
    speaker_counts = collections.Counter(clip.speaker for clip in clips if clip.speaker)
    notes = list(dataset.notes)
    n_anonymous = sum(not clip.speaker for clip in clips)
    if n_anonymous:
        notes.append(
            f"{n_anonymous} clip(s) have no speaker id, so speaker-independent folds are not "
            "possible; give speakers with speaker_regex / speaker_level or a manifest speaker column"
        )
    empty = [label for label in dataset.label_names if not label_counts[label]]
    if empty:
        notes.append(f"no usable clips for class(es) {empty}")
    return DatasetSummary(
        name=dataset.name,
        root=dataset.root,
        label_names=tuple(dataset.label_names),
        n_clips=len(clips),
        class_counts={label: label_counts[label] for label in dataset.label_names},
        speaker_counts=dict(sorted(speaker_counts.items())),
        duration=_duration_stats(durations),
        sample_rates=_sorted_counts(info.samplerate for info in infos),
        channels=_sorted_counts(info.channels for info in infos),
        formats=_sorted_counts(f"{info.format} {info.subtype}" for info in infos),
        problems=problems,
        notes=notes,
        audio_checked=check_audio,
    )


def _duration_stats(durations):
    if durations.size == 0:
        return None
    return {
        "min": float(durations.min()),
        "mean": float(durations.mean()),
        "max": float(durations.max()),
        "total": float(durations.sum()),
    }


def _sorted_counts(values):
    return dict(sorted(collections.Counter(values).items()))


# ---------------------------------------------------------------------------- text report


def format_summary(result):
    """A human-readable report of a DatasetSummary, as printed by ``sertiny data summary``."""
    sections = [_overview(result), _class_table(result), _speaker_grid(result)]
    if result.notes:
        sections.append("Notes\n" + "\n".join(f"  - {note}" for note in result.notes))
    sections.append(_problem_list(result))
    return "\n\n".join(sections) + "\n"


def _overview(r):
    lines = [
        f"Dataset    {r.name} at {r.root}",
        f"Clips      {r.n_clips} usable, {len(r.problems)} problem file(s)"
        + ("" if r.audio_checked else " (headers only; audio not decoded)"),
        f"Classes    {len(r.label_names)}",
        f"Speakers   {len(r.speaker_counts)}",
    ]
    if r.duration:
        d = r.duration
        lines.append(
            f"Duration   min {d['min']:.2f} s, mean {d['mean']:.2f} s, max {d['max']:.2f} s, "
            f"total {_hours_or_minutes(d['total'])}"
        )
    lines.append("Rate       " + _counts_text(r.sample_rates, "{} Hz"))
    lines.append("Channels   " + _counts_text(r.channels, "{} ch"))
    lines.append("Format     " + _counts_text(r.formats, "{}"))
    return "\n".join(lines)


def _hours_or_minutes(seconds):
    return f"{seconds / 3600:.2f} h" if seconds >= 3600 else f"{seconds / 60:.1f} min"


def _counts_text(counts, fmt):
    return ", ".join(f"{fmt.format(value)} x{n}" for value, n in counts.items()) or "-"


def _class_table(r):
    width = max([len("class")] + [len(label) for label in r.label_names])
    lines = ["Clips per class", f"  {'class':<{width}}  {'clips':>6}  {'share':>6}"]
    for label, n in r.class_counts.items():
        share = n / r.n_clips if r.n_clips else 0.0
        lines.append(f"  {label:<{width}}  {n:>6}  {share:>6.1%}")
    return "\n".join(lines)


def _speaker_grid(r, per_line=6):
    if not r.speaker_counts:
        return "Clips per speaker\n  -"
    width = max(len(s) for s in r.speaker_counts)
    cells = [f"{speaker:>{width}}: {n:<5}" for speaker, n in r.speaker_counts.items()]
    rows = ["  " + "  ".join(cells[i:i + per_line]).rstrip() for i in range(0, len(cells), per_line)]
    return "Clips per speaker\n" + "\n".join(rows)


def _problem_list(r):
    if not r.problems:
        return "Problems   none"
    lines = [f"Problems ({len(r.problems)}): these files are skipped"]
    lines += [f"  {_short_path(path, r.root)}: {reason}" for path, reason in r.problems]
    return "\n".join(lines)


def _short_path(path, root):
    """Path relative to the dataset root when it is inside it (shorter, and still unambiguous)."""
    base = Path(root)
    base = base.parent if base.is_file() else base  # a CSV manifest's root is the file
    try:
        return Path(os.path.abspath(path)).relative_to(os.path.abspath(base)).as_posix()
    except ValueError:
        return str(path)
