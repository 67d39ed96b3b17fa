"""Conversion pairs, built and read in this one module: which source clip goes into whose voice.

A pair is one conversion: a `source` clip (what is said), one or more `target`
clips of one speaker (who should say it), optionally a parallel `reference`
(the target speaker saying the source's sentence, for MCD) and the source's
`text` (for WER).

- Reading: `read_target_csv` reads every CSV whose `target` column lists clips
  separated by ';' (or names one .voice file): `vc-app evaluate --pairs` through
  `read_pairs`, and `vc-app batch --manifest` (`vc_app.batch.plan_manifest`).
- Building: `speaker_pairs` (every ordered pair of speakers of a corpus or of a
  recipe's held-out split: `vc-app evaluate --pairs-from-corpus`, recipe stage 4),
  `text_pairs` (sources with known words into held-out voices:
  recipes/common/text_pairs.py) and `index_pairs` (feature-cache indices for the
  held-out losses of `vc_app.train.heldout`).
- Writing: `write_pairs`; the per-pair CSV that `vc-app evaluate` writes starts
  with the same columns, so a run can be repeated with `--pairs`.

Torch-free: it reads and writes CSVs and lists files.
"""

from __future__ import annotations

import csv
import os
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from vc_app.corpus import Utterance, scan_folder
from vc_app.errors import VcAppError
from vc_app.paths import write_csv
from vc_app.targets import is_voice_path

TARGET_SEPARATOR = ";"  # several target clips of one speaker in one CSV cell
REQUIRED_COLUMNS = ("source", "target")
PAIR_COLUMNS = ("source", "target", "reference", "text", "source_speaker", "target_speaker")


@dataclass(frozen=True)
class Pair:
    """One conversion to measure. Paths are absolute; `reference`/`text` are "" when absent."""

    source: str
    targets: tuple[str, ...]
    reference: str = ""
    text: str = ""
    source_speaker: str = ""
    target_speaker: str = ""


def _resolve(value: str, base: Path) -> str:
    path = Path(value.strip()).expanduser()
    return str(path if path.is_absolute() else (base / path).resolve())


def read_pairs(path: str | os.PathLike) -> list[Pair]:
    """Read `source,target[,reference][,text][,source_speaker][,target_speaker]` rows (with a header).

    `target` may hold several clips separated by ';', or one .voice file. Relative paths are relative to the CSV's
    folder. A missing speaker column defaults to the name of the folder holding the clip.
    """
    path = Path(path)
    base = path.resolve().parent
    return [_pair_from_row(row, base) for _, row in read_target_csv(path, what="Pairs file")]


def read_target_csv(path: str | os.PathLike, *, what: str) -> list[tuple[int, dict[str, str]]]:
    """The rows of a CSV with a header holding at least `source` and `target`: (line number, {column: value}),
    values stripped, blank rows skipped; each row has a source and a target.

    Args:
        what: how messages name the file ("Pairs file", "Manifest").
    Raises:
        VcAppError: the file is missing, not UTF-8, lacks the columns, has no rows, or a row lacks a source or
            a target (one sentence naming the line).
    """
    path = Path(path)
    if not path.is_file():
        raise VcAppError(f"{what} {path} does not exist.")
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            columns = [c.strip() for c in reader.fieldnames or []]
            missing = [c for c in REQUIRED_COLUMNS if c not in columns]
            if missing:
                raise VcAppError(f"{what} {path} needs a header with the columns source and target "
                                 f"(missing: {', '.join(missing)}; found: {', '.join(columns) or 'nothing'}).")
            rows = [{(k or "").strip(): (v or "").strip() for k, v in row.items()} for row in reader]
    except UnicodeDecodeError:
        raise VcAppError(f"{what} {path} is not a UTF-8 text CSV.") from None
    numbered = [(line, row) for line, row in enumerate(rows, start=2) if any(row.values())]
    for line, row in numbered:
        if not row.get("source") or not row.get("target"):
            raise VcAppError(f"Line {line} of {path.name} has an empty source or target.")
    if not numbered:
        raise VcAppError(f"{what} {path} has a header but no rows.")
    return numbered


def split_targets(cell: str) -> list[str]:
    """A `target` cell -> its clips ('a.wav;b.flac' -> ['a.wav', 'b.flac']); one .voice file stays one."""
    return [t.strip() for t in cell.split(TARGET_SEPARATOR) if t.strip()]


def _pair_from_row(row: dict[str, str], base: Path) -> Pair:
    source = _resolve(row["source"], base)
    targets = tuple(_resolve(t, base) for t in split_targets(row["target"]))
    reference = _resolve(row["reference"], base) if row.get("reference") else ""
    target = Path(targets[0])
    return Pair(source, targets, reference, row.get("text", ""),
                row.get("source_speaker") or Path(source).parent.name,
                row.get("target_speaker") or (target.stem if is_voice_path(target) else target.parent.name))


def check_pair_audio(pairs: list[Pair]) -> None:
    """Fail early, with one sentence naming the pair, on any clip that is missing or not audio, and on a
    voice-file target that is unreadable or carries no d-vector to measure similarity against."""
    from vc_app.audio import audio_info
    from vc_app.voice import read_voice_file

    for n, pair in enumerate(pairs, start=1):
        for clip in (pair.source, *pair.targets, *([pair.reference] if pair.reference else [])):
            try:
                if is_voice_path(clip):
                    if "dvector" not in read_voice_file(clip)[1]:
                        raise VcAppError(f"{Path(clip).name} carries no Resemblyzer d-vector to measure speaker "
                                         f"similarity against (it is a blend, or was made without the eval extra); "
                                         f"make it again with the eval extra installed, or give its clips")
                else:
                    audio_info(clip)
            except VcAppError as err:
                raise VcAppError(f"Pair {n}: {str(err).rstrip('.')}.") from None


def sentence_key(utt: Utterance) -> str:
    """What identifies the sentence across speakers in a parallel corpus: the file name without the
    extension and without a leading '<speaker>_' (VCC '30001', ARCTIC 'arctic_a0001', VCTK 'p225_001' -> '001')."""
    stem = Path(utt.path).stem
    return stem.removeprefix(f"{utt.speaker}_")


def sidecar_text(audio_path: str) -> str:
    """The transcript in `<clip>.txt` next to the clip, or "" when there is none."""
    text_file = Path(audio_path).with_suffix(".txt")
    return text_file.read_text(errors="replace").strip() if text_file.is_file() else ""


def by_speaker(utts: list[Utterance], *, speakers: list[str] | None = None, exclude: Sequence[str] = (),
               where: str = "the corpus", min_speakers: int = 2) -> dict[str, list[Utterance]]:
    """{speaker: utterances sorted by path} of the chosen `speakers` (in their order; default: all, in path
    order), less `exclude`; the draws of `speaker_pairs` and `text_pairs` depend on this order.

    Raises:
        VcAppError: a chosen speaker is not in `utts`, or fewer than `min_speakers` are left.
    """
    groups: dict[str, list[Utterance]] = {}
    for utt in sorted(utts, key=lambda u: u.path):
        groups.setdefault(utt.speaker, []).append(utt)
    unknown = [s for s in speakers or [] if s not in groups]
    if unknown:
        raise VcAppError(f"Speaker(s) {', '.join(unknown)} are not in {where} (it has: {', '.join(sorted(groups))}).")
    names = [s for s in (speakers or groups) if s not in set(exclude)]
    if len(names) < min_speakers:
        needed = "two speakers" if min_speakers == 2 else f"{min_speakers} speaker(s)"
        raise VcAppError(f"{where} needs at least {needed} to make conversion pairs; it gives {len(names)}.")
    return {s: groups[s] for s in names}


def corpus_utterances(root: str | os.PathLike, speakers: list[str] | None) -> dict[str, list[Utterance]]:
    """{speaker: utterances sorted by file name} of a folder-per-speaker corpus (default: every speaker folder)."""
    return by_speaker(scan_folder(root), speakers=speakers, where=str(root))


def pairs_from_corpus(root: str | os.PathLike, speakers: list[str] | None = None, *, pairs_per_speaker: int = 5,
                      target_clips: int = 1, seed: int = 0) -> list[Pair]:
    """Unseen-speaker pairs of a folder-per-speaker corpus (`speaker_pairs` over its speaker folders)."""
    return speaker_pairs(corpus_utterances(root, speakers), pairs_per_speaker=pairs_per_speaker,
                         target_clips=target_clips, seed=seed, where=str(root))


def speaker_pairs(by_speaker: dict[str, list[Utterance]], *, pairs_per_speaker: int = 5, target_clips: int = 1,
                  seed: int = 0, where: str = "the corpus") -> list[Pair]:
    """Every ordered pair (A, B) of distinct speakers, `pairs_per_speaker` pairs each.

    For each (A, B), `pairs_per_speaker` source utterances of A are drawn (seeded, without replacement);
    the target is `target_clips` utterances of B saying *other* sentences. When B has the source's
    sentence (a parallel corpus: the same file name), that clip is the `reference` for MCD and is never
    used as a target clip. `text` is the utterance's own, else a `<clip>.txt` beside the source.

    Args:
        by_speaker: {speaker: utterances}, each list in a fixed order (the draw depends on it).
    """
    if pairs_per_speaker < 1 or target_clips < 1:
        raise VcAppError("--pairs-per-speaker and --target-clips must be at least 1.")
    pairs = []
    for a, sources in by_speaker.items():
        for b, candidates in by_speaker.items():
            if a == b:
                continue
            rng = random.Random(f"{seed}/{a}/{b}")
            by_key = {sentence_key(u): u for u in candidates}
            for src in rng.sample(sources, min(pairs_per_speaker, len(sources))):
                key = sentence_key(src)
                others = [u for u in candidates if sentence_key(u) != key]
                if not others:
                    continue
                targets = rng.sample(others, min(target_clips, len(others)))
                reference = by_key[key].path if key in by_key else ""
                pairs.append(Pair(str(src.path), tuple(str(t.path) for t in targets), str(reference),
                                  src.text or sidecar_text(src.path), a, b))
    if not pairs:
        raise VcAppError(f"No pairs could be built from {where}: each target speaker needs a clip of another sentence.")
    return pairs


def text_pairs(sources: Sequence[tuple[str, str, str]], groups: dict[str, list[Utterance]], *,
               target_clips: int, seed: int = 0) -> list[Pair]:
    """Sources whose words are known, each into the voice of every speaker of `groups`.

    Args:
        sources: (path, text, speaker name) of each source clip, in order.
        groups: {target speaker: utterances} (from `by_speaker`); `target_clips` of each are drawn per pair.
    """
    rng = random.Random(seed)
    pairs = []
    for source, text, source_speaker in sources:
        for speaker, utts in groups.items():
            clips = sorted(str(u.path) for u in utts)
            pairs.append(Pair(source, tuple(rng.sample(clips, min(target_clips, len(clips)))), "", text,
                              source_speaker, speaker))
    return pairs


def index_pairs(speakers: Sequence[str], n_pairs: int, seed: int = 0) -> list[tuple[int, int, int]]:
    """`n_pairs` seeded (source, other clip of the source speaker, clip of another speaker) indices into
    `speakers`, one speaker name per utterance (a feature cache's order): the held-out losses' pairs."""
    groups: dict[str, list[int]] = {}
    for i, s in enumerate(speakers):
        groups.setdefault(s, []).append(i)
    if len(groups) < 2:
        raise VcAppError("The held-out split needs at least two speakers to measure conversions.")
    rng = random.Random(seed)
    pairs = []
    for _ in range(n_pairs):
        source = rng.randrange(len(speakers))
        own = groups[speakers[source]]
        other = rng.choice([i for i in own if i != source] or own)
        target = rng.choice([i for i in range(len(speakers)) if speakers[i] != speakers[source]])
        pairs.append((source, other, target))
    return pairs


def pair_row(pair: Pair) -> dict[str, str]:
    """The pair as the first columns of a per-pair CSV row (readable again by `read_pairs`)."""
    return {"source": pair.source, "target": TARGET_SEPARATOR.join(pair.targets), "reference": pair.reference,
            "text": pair.text, "source_speaker": pair.source_speaker, "target_speaker": pair.target_speaker}


def write_pairs(path: str | os.PathLike, pairs: list[Pair]) -> Path:
    """Write `pairs` as a pairs CSV that `read_pairs` reads back (atomically)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_csv(path, PAIR_COLUMNS, [pair_row(p) for p in pairs])
