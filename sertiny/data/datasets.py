"""Corpus loaders: turn a folder of clips into a labelled, speaker-tagged clip list.

Loaders only look at names and layout; they never decode audio (``summarize`` does that).
A file whose name does not parse is not an exception: it goes to ``Dataset.problems``
with the reason, so one stray file does not stop a run and the user sees all of them
at once.

Supported layouts:

* RAVDESS: ``MM-VV-EE-II-SS-RR-AA.wav|flac``, in ``Actor_NN/`` folders or flat.
* EMO-DB (Berlin): ``SSTTTEV.wav`` in ``root/wav/`` or ``root/``.
* folder: ``root/<label>/**/*.wav|flac|ogg``, speaker from a file-name regex or a
  sub-folder level.
* csv: a manifest with columns ``path,label[,speaker]`` (paths relative to the CSV).
"""

import csv
import dataclasses
import os
import re
from pathlib import Path

import numpy as np

from ..errors import ParameterError
from .audio import AUDIO_EXTENSIONS

DATASET_KINDS = ("auto", "ravdess", "emodb", "folder", "csv")

# What a model trained on a public corpus inherits from the corpus's terms; model cards
# repeat it. A user's own folder or CSV has whatever terms its owner set.
CORPUS_TERMS = {
    "ravdess": ("RAVDESS (Livingstone & Russo, PLoS ONE 13(5): e0196391, 2018), licensed CC BY-NC-SA 4.0: "
                "attribution, non-commercial use only, derivatives shared alike. A model trained on it "
                "inherits those terms."),
    "emodb": ("EMO-DB (Burkhardt et al., Interspeech 2005), distributed by its authors for research; check "
              "their terms before any other use."),
}


@dataclasses.dataclass(frozen=True)
class Clip:
    """One labelled recording.

    Attributes:
        path: absolute path of the audio file.
        label: class name, one of the owning dataset's ``label_names``.
        speaker: speaker id (``"01"`` for RAVDESS actor 1), or None when the dataset
            carries no speaker information.
        attributes: dataset-specific fields (RAVDESS intensity, EMO-DB text code, ...).
            Not part of the hash: clips are identified by path, label and speaker.
    """

    path: str
    label: str
    speaker: str | None
    attributes: dict = dataclasses.field(default_factory=dict, hash=False)


@dataclasses.dataclass
class Dataset:
    """A corpus as loaded from disk.

    Attributes:
        name: loader that produced it (``"ravdess"``, ``"emodb"``, ``"folder"``, ``"csv"``).
        root: the folder (or manifest file) it was loaded from.
        label_names: every class in a fixed canonical order; a label's index in this
            tuple is its class id everywhere in sertiny.
        clips: usable clips, in a deterministic order.
        problems: ``(path, reason)`` for every file that was skipped.
        notes: things worth telling the user that are not problems (skipped song files).
    """

    name: str
    root: str
    label_names: tuple
    clips: list
    problems: list = dataclasses.field(default_factory=list)
    notes: list = dataclasses.field(default_factory=list)

    def __len__(self):
        return len(self.clips)

    def paths(self):
        """Clip paths as a list of str."""
        return [clip.path for clip in self.clips]

    def labels(self):
        """Class ids, ``(n_clips,)`` int64, indexing ``label_names``."""
        index = {name: i for i, name in enumerate(self.label_names)}
        return np.array([index[clip.label] for clip in self.clips], dtype=np.int64)

    def speakers(self):
        """Speaker ids, ``(n_clips,)`` object array of str (None where unknown)."""
        return np.array([clip.speaker for clip in self.clips], dtype=object)

    @property
    def has_speakers(self):
        """True if every clip has a speaker id, i.e. speaker-independent splits are possible."""
        return bool(self.clips) and all(clip.speaker for clip in self.clips)


def load_dataset(root, kind="auto", **options):
    """Load the corpus at ``root``.

    Args:
        root: a corpus folder, or a CSV manifest file.
        kind: one of ``"auto"``, ``"ravdess"``, ``"emodb"``, ``"folder"``, ``"csv"``.
            ``"auto"`` recognises RAVDESS and EMO-DB by their file names, a ``.csv``
            file as a manifest, and otherwise one sub-folder per label.
        **options: passed to the loader (``speaker_regex`` / ``speaker_level`` for
            ``"folder"``).

    Raises:
        ParameterError: unknown kind, missing root, or a layout that matches no loader.
    """
    if kind not in DATASET_KINDS:
        raise ParameterError(
            f"The 'kind' parameter of load_dataset must be one of {list(DATASET_KINDS)}. "
            f"Got {kind!r} instead."
        )
    root = Path(root).expanduser()
    if not root.exists():
        raise ParameterError(f"Dataset path {root} does not exist; check the path.")
    if kind == "auto":
        kind = detect_kind(root)
    if options and kind != "folder":
        raise ParameterError(
            f"Option(s) {sorted(options)} only apply to folder datasets, but {root} is loaded as "
            f"{kind!r}; drop them or pass kind='folder'."
        )
    loader = {"ravdess": load_ravdess, "emodb": load_emodb, "folder": load_folder, "csv": load_csv}[kind]
    return loader(root, **options)


def detect_kind(root):
    """Guess the loader for ``root`` from its file names and layout.

    A corpus is taken to be RAVDESS (or EMO-DB) when most of its audio files carry that
    corpus's names: a handful of stray files should end up in ``problems``, not flip
    the guess.
    """
    root = Path(root)
    if root.is_file():
        if root.suffix.lower() == ".csv":
            return "csv"
        raise ParameterError(f"{root} is a file; pass a corpus folder or a CSV manifest (path,label,speaker).")
    # A file named manifest.csv is an explicit choice; any other lone CSV (results,
    # metadata) is only used when nothing else fits.
    if (root / "manifest.csv").is_file():
        return "csv"
    files, _ = _audio_files(root)
    stems = [f.stem for f in files]
    if stems and sum(bool(_RAVDESS_NAME.match(s)) for s in stems) * 2 >= len(stems):
        return "ravdess"
    if stems and sum(bool(_EMODB_NAME.match(s)) for s in stems) * 2 >= len(stems):
        return "emodb"
    if any(f.relative_to(root).parts[:-1] for f in files):
        return "folder"
    if _find_manifest(root, required=False):
        return "csv"
    if not files:
        raise ParameterError(
            f"No audio files ({', '.join(AUDIO_EXTENSIONS)}) found under {root}. "
            "Point to the corpus folder, or pass a CSV manifest with path,label,speaker columns."
        )
    raise ParameterError(
        f"Cannot tell what corpus {root} is: its {len(files)} audio files are neither named "
        "like RAVDESS (03-01-05-01-02-01-12.wav) nor EMO-DB (03a01Wa.wav), and they are not "
        "in per-label folders. Arrange them as <root>/<label>/*.wav and pass --dataset folder, "
        "or write a manifest with path,label,speaker columns and pass --dataset csv."
    )


def _require_clips(kind, root, clips, problems):
    """Fail loudly when a loader matched nothing: the user most likely chose the wrong kind."""
    if clips:
        return
    if not problems:
        raise ParameterError(f"No usable {kind} clips under {root}; check the path.")
    path, reason = problems[0]
    raise ParameterError(
        f"None of the {len(problems)} audio file(s) under {root} could be loaded as {kind} "
        f"(first: {Path(path).name}: {reason}). If this is another corpus, load it as "
        "kind 'auto', 'folder' or 'csv' (--dataset on the command line)."
    )


# ---------------------------------------------------------------------------- file discovery


def _audio_files(root):
    """Audio files under ``root`` sorted by relative path, and the number of hidden ones skipped.

    Hidden files and ``__MACOSX`` folders are skipped: zips made on macOS carry a
    ``._name.wav`` resource-fork twin of every clip, which is not audio. Symlinked
    folders are followed (corpora are often assembled from links), each real folder once.
    """
    root = Path(root)
    files, n_hidden, visited = [], 0, set()
    for folder, subfolders, names in os.walk(root, followlinks=True):
        real = os.path.realpath(folder)
        if real in visited:  # a symlink loop, or two links to the same folder
            subfolders[:] = []
            continue
        visited.add(real)
        hidden = [d for d in subfolders if _is_hidden(d)]
        subfolders[:] = [d for d in subfolders if not _is_hidden(d)]
        n_hidden += sum(_count_audio(Path(folder) / d) for d in hidden)
        for name in names:
            if Path(name).suffix.lower() not in AUDIO_EXTENSIONS:
                continue
            if _is_hidden(name):
                n_hidden += 1
            else:
                files.append(Path(folder) / name)
    return sorted(files, key=lambda p: p.relative_to(root).as_posix()), n_hidden


def _is_hidden(name):
    return name.startswith(".") or name == "__MACOSX"


def _count_audio(folder):
    return sum(1 for p in folder.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS)


def _hidden_note(n_hidden):
    return [f"skipped {n_hidden} hidden file(s) (names starting with '.' or under __MACOSX)"] if n_hidden else []


def _abspath(path):
    # abspath, not resolve(): a corpus assembled from symlinks keeps its own paths.
    return os.path.abspath(path)


def _duplicate_problems(named_files):
    """Split ``(key, path)`` pairs into first occurrences and problems for repeats.

    The same clip present twice (a .wav and a .flac copy, or two extracted zips) would
    be counted twice and could sit on both sides of a split, so repeats are rejected.
    """
    seen, unique, problems = {}, [], []
    for key, path in named_files:
        if key in seen:
            problems.append((_abspath(path), f"duplicate of {seen[key]}; remove one of the two copies"))
            continue
        seen[key] = _abspath(path)
        unique.append((key, path))
    return unique, problems


# ---------------------------------------------------------------------------- RAVDESS

RAVDESS_LABELS = ("neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised")
RAVDESS_ACTORS = tuple(f"{i:02d}" for i in range(1, 25))

_RAVDESS_NAME = re.compile(r"^(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)$")
_RAVDESS_MODALITY = {1: "audio-video", 2: "video-only", 3: "audio-only"}
_RAVDESS_CHANNEL = {1: "speech", 2: "song"}
_RAVDESS_INTENSITY = {1: "normal", 2: "strong"}
_ACTOR_FOLDER = re.compile(r"^Actor_(\d\d)$", re.IGNORECASE)


def parse_ravdess_name(stem):
    """Decode a RAVDESS file stem such as ``"03-01-05-02-01-02-12"``.

    Returns:
        dict with ``label`` (one of ``RAVDESS_LABELS``), ``speaker`` (``"12"``) and the
        attributes ``modality``, ``vocal_channel`` (``"speech"``/``"song"``),
        ``intensity`` (``"normal"``/``"strong"``), ``statement`` (1/2),
        ``repetition`` (1/2), ``actor`` (int) and ``sex`` (odd actors male).

    Raises:
        ValueError: the stem does not follow the convention; the message says which field.
    """
    match = _RAVDESS_NAME.match(stem)
    if not match:
        raise ValueError("name is not a RAVDESS name MM-VV-EE-II-SS-RR-AA (e.g. 03-01-05-01-02-01-12)")
    modality, channel, emotion, intensity, statement, repetition, actor = map(int, match.groups())
    _check_code("modality", modality, _RAVDESS_MODALITY)
    _check_code("vocal channel", channel, _RAVDESS_CHANNEL)
    _check_code("emotion", emotion, range(1, len(RAVDESS_LABELS) + 1))
    _check_code("intensity", intensity, _RAVDESS_INTENSITY)
    _check_code("statement", statement, (1, 2))
    _check_code("repetition", repetition, (1, 2))
    _check_code("actor", actor, range(1, 25))
    if emotion == 1 and intensity == 2:
        raise ValueError("intensity 02 (strong) does not exist for emotion 01 (neutral) in RAVDESS")
    return {
        "label": RAVDESS_LABELS[emotion - 1],
        "speaker": f"{actor:02d}",
        "attributes": {
            "modality": _RAVDESS_MODALITY[modality],
            "vocal_channel": _RAVDESS_CHANNEL[channel],
            "intensity": _RAVDESS_INTENSITY[intensity],
            "statement": statement,
            "repetition": repetition,
            "actor": actor,
            "sex": "male" if actor % 2 else "female",
        },
    }


def _check_code(field, code, allowed):
    if code not in allowed:
        raise ValueError(f"RAVDESS {field} code {code:02d} is not one of {sorted(allowed)}")


def load_ravdess(root):
    """Load RAVDESS speech clips (``Actor_NN/*.wav|flac`` or a flat folder).

    Song clips (vocal channel 02) are skipped with a note: sertiny models speech. Clips
    are ordered by actor, then file name, which is the order of the sorted
    ``Actor_NN/<name>`` file list (and of ``ravdess48k_paper_features.npz``).
    """
    root = Path(root)
    files, n_hidden = _audio_files(root)
    files, problems = _duplicate_problems((f.stem, f) for f in files)
    clips, n_song = [], 0
    for _, path in files:
        try:
            parsed = parse_ravdess_name(path.stem)
            _check_actor_folder(path, parsed["speaker"])
        except ValueError as exc:
            problems.append((_abspath(path), str(exc)))
            continue
        if parsed["attributes"]["vocal_channel"] == "song":
            n_song += 1
            continue
        clips.append(Clip(_abspath(path), parsed["label"], parsed["speaker"], parsed["attributes"]))
    _require_clips("RAVDESS", root, clips, problems)
    clips.sort(key=lambda c: (c.speaker, Path(c.path).name))
    notes = _hidden_note(n_hidden)
    if n_song:
        notes.append(f"skipped {n_song} RAVDESS song clip(s) (vocal channel 02); sertiny uses speech only")
    return Dataset("ravdess", str(root), RAVDESS_LABELS, clips, problems, notes)


def _check_actor_folder(path, speaker):
    """Reject a clip filed under another actor's folder: its speaker would be ambiguous."""
    folder = _ACTOR_FOLDER.match(path.parent.name)
    if folder and folder.group(1) != speaker:
        raise ValueError(
            f"file name says actor {speaker} but it is in folder {path.parent.name}; move or rename it"
        )


# ---------------------------------------------------------------------------- EMO-DB

EMODB_LABELS = ("anger", "boredom", "disgust", "fear", "happiness", "sadness", "neutral")
EMODB_SPEAKERS = ("03", "08", "09", "10", "11", "12", "13", "14", "15", "16")
EMODB_TEXTS = ("a01", "a02", "a04", "a05", "a07", "b01", "b02", "b03", "b09", "b10")

_EMODB_NAME = re.compile(r"^(\d\d)([ab]\d\d)([WLEAFTN])([a-z])$")
# German initials: Wut, Langeweile, Ekel, Angst, Freude, Trauer, Neutral.
_EMODB_EMOTION = {"W": "anger", "L": "boredom", "E": "disgust", "A": "fear", "F": "happiness", "T": "sadness", "N": "neutral"}
_EMODB_MALE = frozenset({"03", "10", "11", "12", "15"})


def parse_emodb_name(stem):
    """Decode an EMO-DB file stem such as ``"03a01Wa"`` (speaker, text, emotion, version).

    Returns:
        dict with ``label`` (one of ``EMODB_LABELS``), ``speaker`` and the attributes
        ``text`` (``"a01"``), ``version`` (``"a"``) and ``sex``.

    Raises:
        ValueError: the stem does not follow the convention; the message says which field.
    """
    match = _EMODB_NAME.match(stem)
    if not match:
        raise ValueError(
            "name is not an EMO-DB name SSTTTEV: 2-digit speaker, text code like a01, "
            "emotion letter W/L/E/A/F/T/N, version letter (e.g. 03a01Wa)"
        )
    speaker, text, emotion, version = match.groups()
    if speaker not in EMODB_SPEAKERS:
        raise ValueError(f"EMO-DB speaker {speaker} is not one of {list(EMODB_SPEAKERS)}")
    if text not in EMODB_TEXTS:
        raise ValueError(f"EMO-DB text code {text} is not one of {list(EMODB_TEXTS)}")
    return {
        "label": _EMODB_EMOTION[emotion],
        "speaker": speaker,
        "attributes": {"text": text, "version": version, "sex": "male" if speaker in _EMODB_MALE else "female"},
    }


def load_emodb(root):
    """Load the Berlin Database of Emotional Speech from ``root/wav/`` or ``root/``."""
    root = Path(root)
    audio_dir = root / "wav" if (root / "wav").is_dir() else root
    files, n_hidden = _audio_files(audio_dir)
    files, problems = _duplicate_problems((f.stem, f) for f in files)
    clips = []
    for _, path in files:
        try:
            parsed = parse_emodb_name(path.stem)
        except ValueError as exc:
            problems.append((_abspath(path), str(exc)))
            continue
        clips.append(Clip(_abspath(path), parsed["label"], parsed["speaker"], parsed["attributes"]))
    _require_clips("EMO-DB", audio_dir, clips, problems)
    return Dataset("emodb", str(root), EMODB_LABELS, clips, problems, _hidden_note(n_hidden))


# ---------------------------------------------------------------------------- generic folder


def load_folder(root, *, speaker_regex=None, speaker_level=None):
    """Load ``root/<label>/**/*.wav|flac|ogg``: one sub-folder per class.

    Labels are the sub-folder names, in sorted order. Speakers are optional (without
    them only speaker-dependent splits are possible) and come from either

    * ``speaker_regex``: searched in the file name; the group named ``speaker``, else
      group 1, else the whole match is the speaker (``r"^(spk\\d+)_"``), or
    * ``speaker_level``: the folder at that depth of the path below ``root``, the label
      folder being level 0 (``root/angry/spk03/x.wav`` with ``speaker_level=1``).

    Raises:
        ParameterError: both speaker options given, a bad regex or level, or no label folders.
    """
    root = Path(root)
    speaker_of = _speaker_rule(speaker_regex, speaker_level)
    files, n_hidden = _audio_files(root)
    clips, problems = [], []
    for path in files:
        parts = path.relative_to(root).parts
        if len(parts) < 2:
            problems.append((_abspath(path), "is not inside a label folder; move it to <root>/<label>/"))
            continue
        try:
            speaker = speaker_of(parts)
        except ValueError as exc:
            problems.append((_abspath(path), str(exc)))
            continue
        clips.append(Clip(_abspath(path), parts[0], speaker, {}))
    if not clips:
        raise ParameterError(
            f"No clips found in label folders under {root}; expected <root>/<label>/*.wav "
            f"(found {len(files)} audio file(s) in total)."
        )
    label_names = tuple(sorted({clip.label for clip in clips}))
    return Dataset("folder", str(root), label_names, clips, problems, _hidden_note(n_hidden))


def _speaker_rule(speaker_regex, speaker_level):
    """A function mapping a path's parts (below root) to a speaker id or None."""
    if speaker_regex is not None and speaker_level is not None:
        raise ParameterError("Pass either speaker_regex or speaker_level, not both.")
    if speaker_regex is not None:
        return _regex_speaker(speaker_regex)
    if speaker_level is not None:
        return _level_speaker(speaker_level)
    return lambda parts: None


def _regex_speaker(speaker_regex):
    try:
        pattern = re.compile(speaker_regex)
    except re.error as exc:
        raise ParameterError(f"speaker_regex {speaker_regex!r} is not a valid regular expression: {exc}.") from None
    group = "speaker" if "speaker" in pattern.groupindex else (1 if pattern.groups else 0)

    def speaker_of(parts):
        match = pattern.search(parts[-1])
        if not match or not match.group(group):
            raise ValueError(f"speaker_regex {speaker_regex!r} does not match the file name")
        return match.group(group)

    return speaker_of


def _level_speaker(speaker_level):
    if isinstance(speaker_level, bool) or not isinstance(speaker_level, int) or speaker_level < 1:
        raise ParameterError(
            "The 'speaker_level' parameter of load_folder must be an int >= 1 (the label "
            f"folder is level 0). Got {speaker_level!r} instead."
        )

    def speaker_of(parts):
        if len(parts) - 1 <= speaker_level:
            raise ValueError(f"has no folder at speaker_level {speaker_level} (<root>/<label>/<speaker>/...)")
        return parts[speaker_level]

    return speaker_of


# ---------------------------------------------------------------------------- CSV manifest

_MANIFEST_REQUIRED = ("path", "label")


def load_csv(root):
    """Load a manifest with a header row ``path,label[,speaker]``.

    ``root`` is the CSV file, or a folder holding ``manifest.csv`` or exactly one
    ``.csv``. Relative paths are taken relative to the CSV's folder. Extra columns go
    to ``Clip.attributes``. Labels are the sorted set of label values.
    """
    manifest = _find_manifest(Path(root), required=True)
    clips, problems, seen = [], [], set()
    for line, row in _read_manifest(manifest):
        try:
            clip = _manifest_clip(manifest, line, row, seen)
        except _SkippedRow as exc:
            problems.append((exc.path, exc.reason))
            continue
        clips.append(clip)
        seen.add(clip.path)
    if not clips:
        raise ParameterError(f"Manifest {manifest} lists no usable clips ({len(problems)} problem row(s)).")
    label_names = tuple(sorted({clip.label for clip in clips}))
    return Dataset("csv", str(manifest), label_names, clips, problems)


class _SkippedRow(Exception):
    def __init__(self, path, reason):
        super().__init__(reason)
        self.path, self.reason = str(path), reason


def _find_manifest(root, *, required):
    if root.is_file():
        return root
    candidates = [root / "manifest.csv"] if (root / "manifest.csv").is_file() else sorted(root.glob("*.csv"))
    if len(candidates) == 1:
        return candidates[0]
    if required:
        found = f"found {len(candidates)}: {[c.name for c in candidates]}" if candidates else "found none"
        raise ParameterError(f"Expected one CSV manifest in {root} ({found}); pass the CSV file itself.")
    return None


def _read_manifest(manifest):
    """``(line_number, row_dict)`` for each data row; the header is checked first."""
    # utf-8-sig: spreadsheets often save a byte-order mark before the header.
    with open(manifest, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        header = [name.strip() for name in reader.fieldnames or []]
        missing = [name for name in _MANIFEST_REQUIRED if name not in header]
        if missing:
            raise ParameterError(
                f"Manifest {manifest} lacks column(s) {missing}; its header is {header}. "
                "The first row must name the columns: path,label,speaker (speaker optional)."
            )
        reader.fieldnames = header
        return [(reader.line_num, row) for row in reader]


def _manifest_clip(manifest, line, row, seen):
    """The Clip for one manifest row; raises _SkippedRow with the reason otherwise."""
    where = f"{manifest.name} line {line}"
    raw_path = (row.get("path") or "").strip()
    label = (row.get("label") or "").strip()
    speaker = (row.get("speaker") or "").strip() or None
    if not raw_path:
        raise _SkippedRow(manifest, f"{where}: empty path")
    path = Path(raw_path).expanduser()
    path = _abspath(path if path.is_absolute() else manifest.parent / path)
    if not label:
        raise _SkippedRow(path, f"{where}: empty label")
    if not Path(path).is_file():
        raise _SkippedRow(path, f"{where}: file does not exist (relative paths are relative to {manifest.parent})")
    if path in seen:
        raise _SkippedRow(path, f"{where}: listed more than once")
    extra = {k: v for k, v in row.items() if k not in ("path", "label", "speaker") and k is not None}
    return Clip(path, label, speaker, extra)
