"""Corpora -> manifests: which clip belongs to which speaker, and the train/valid/unseen split.

Readers for VCTK 0.80 (`wav48/pXXX/pXXX_NNN.wav` + `txt/`), VCTK 0.92
(`wav48_silence_trimmed/pXXX/pXXX_NNN_mic1.flac`) and any folder-per-speaker
tree (`.../speaker/clip.ext`). A manifest is a plain CSV with the columns
`utt_id,speaker,path,text,corpus` (`corpus` may be absent or empty: lists written before it existed).
"""

from __future__ import annotations

import csv
import os
import random
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from vc_app.errors import VcAppError
from vc_app.paths import write_csv

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif", ".au")
VCTK_URL = "https://datashare.ed.ac.uk/handle/10283/3443"


@dataclass(frozen=True)
class Utterance:
    utt_id: str
    speaker: str
    path: str
    text: str = ""
    corpus: str = ""   # which recording set the clip comes from (data.corpus_weights mixes them)


def find_audio_files(root: str | os.PathLike, extensions: tuple[str, ...] = AUDIO_EXTENSIONS,
                     warn: Callable[[str], None] | None = None) -> list[Path]:
    """Every non-hidden file under `root` whose extension is in `extensions`, sorted, as paths under `root`.

    Symlinked folders and files are followed (corpora are often assembled from links); a link back to a
    folder above it is not followed twice. What cannot be used (such a loop, a broken link, an unreadable
    folder) is passed to `warn` as one sentence, when given.
    """
    found: list[Path] = []
    say = warn or (lambda message: None)

    def visit(folder: Path, above: frozenset[tuple[int, int]]) -> None:
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as err:
            return say(f"skipped {folder}: {err.strerror or err}")
        for entry in entries:
            path = folder / entry.name
            try:
                is_dir, is_file = entry.is_dir(), entry.is_file()  # both follow symlinks
                stat = entry.stat() if is_dir else None
            except OSError:
                is_dir = is_file = False
            key = (stat.st_dev, stat.st_ino) if is_dir and stat is not None else (0, 0)
            if is_dir and key in above:
                say(f"skipped {path}: a link back to a folder above it")
            elif is_dir:
                visit(path, above | {key})
            elif path.suffix.lower() in extensions and not entry.name.startswith("."):
                if is_file:
                    found.append(path)
                elif entry.is_symlink():
                    say(f"skipped {path}: a broken link")

    root = Path(root)
    top = root.stat()
    visit(root, frozenset({(top.st_dev, top.st_ino)}))
    return sorted(found)


def scan_folder(root: str | os.PathLike, extensions: tuple[str, ...] = AUDIO_EXTENSIONS,
                warn: Callable[[str], None] | None = None) -> list[Utterance]:
    """Every audio file under `root` (symlinks followed); its speaker is the name of the folder that holds it.

    Args:
        warn: called with one sentence per link or folder that had to be skipped (see `find_audio_files`).

    Its corpus is the first folder under `root` when the speaker folders are nested deeper
    (`speech/vcc2018/VCC2SF1/x.flac` -> vcc2018), else the name of `root` itself.
    """
    root = Path(root)
    if not root.is_dir():
        raise VcAppError(f"Corpus folder {root} does not exist.")
    utts = []
    for path in find_audio_files(root, extensions, warn):
        speaker = path.parent.name
        parts = path.relative_to(root).parts
        corpus = parts[0] if len(parts) > 2 else root.resolve().name
        utts.append(Utterance(f"{speaker}_{path.stem}", speaker, str(path.resolve()), corpus=corpus))
    if not utts:
        raise VcAppError(f"No audio files ({', '.join(extensions)}) under {root}.")
    return _unique_ids(utts)


def scan_folders(roots: list[str | os.PathLike], extensions: tuple[str, ...] = AUDIO_EXTENSIONS,
                 warn: Callable[[str], None] | None = None) -> list[Utterance]:
    """`scan_folder` of each root, joined into one corpus (several corpora trained together).

    A speaker is still the name of the folder that holds a clip, so two roots must not share a
    speaker name: that would silently merge two people into one voice, and is refused naming both roots.
    """
    utts: list[Utterance] = []
    owner: dict[str, Path] = {}
    for root in roots:
        own = scan_folder(root, extensions, warn)
        for speaker in sorted({u.speaker for u in own}):
            if speaker in owner and owner[speaker] != Path(root):
                raise VcAppError(f"Speaker {speaker} is in both {owner[speaker]} and {root}: rename one folder, "
                                 "since one name means one voice.")
            owner[speaker] = Path(root)
        utts += own
    return _unique_ids(utts)


def read_speaker_tables(root: str | os.PathLike) -> dict[str, dict[str, str]]:
    """Every `speakers.csv` under a folder corpus (a `speaker` column plus e.g. gender, age, as
    `../shared/data/more_speech` has beside each corpus's speaker folders) -> {speaker: {column: value}};
    empty when there is none. Genders are written upper-case (F / M), as VCTK's speaker-info gives them."""
    out: dict[str, dict[str, str]] = {}
    for path in sorted(Path(root).rglob("speakers.csv")):
        with open(path, newline="") as handle:
            for row in csv.DictReader(handle):
                if row.get("speaker"):
                    info = {k: v for k, v in row.items() if k and k != "speaker" and v is not None}
                    if info.get("gender"):
                        info["gender"] = info["gender"].upper()
                    out[row["speaker"]] = info
    return out


def _unique_ids(utts: list[Utterance]) -> list[Utterance]:
    seen: dict[str, int] = {}
    out = []
    for u in utts:
        n = seen.get(u.utt_id, 0)
        seen[u.utt_id] = n + 1
        out.append(u if n == 0 else Utterance(f"{u.utt_id}-{n}", u.speaker, u.path, u.text, u.corpus))
    return out


def detect_vctk_release(root: str | os.PathLike) -> str:
    """'0.92' (wav48_silence_trimmed/*.flac) or '0.80' (wav48/*.wav); VcAppError with the layouts otherwise."""
    root = Path(root)
    if (root / "wav48_silence_trimmed").is_dir():
        return "0.92"
    if (root / "wav48").is_dir():
        return "0.80"
    raise VcAppError(
        f"{root} is not a VCTK folder. Download VCTK from {VCTK_URL} and pass the folder that holds either "
        "wav48/pXXX/pXXX_NNN.wav (release 0.80) or wav48_silence_trimmed/pXXX/pXXX_NNN_mic1.flac (release 0.92)."
    )


def scan_vctk(root: str | os.PathLike, mic: int = 1) -> list[Utterance]:
    """VCTK 0.80 or 0.92 (microphone `mic`, 1 or 2), with transcripts from txt/ when present."""
    root = Path(root)
    release = detect_vctk_release(root)
    if release == "0.92":
        if mic not in (1, 2):
            raise VcAppError(f"VCTK 0.92 has microphones 1 and 2, not {mic}.")
        pattern, audio_dir = f"*_mic{mic}.flac", root / "wav48_silence_trimmed"
    else:
        pattern, audio_dir = "*.wav", root / "wav48"
    utts = []
    for path in sorted(audio_dir.glob(f"*/{pattern}")):
        speaker = path.parent.name
        base = path.stem.removesuffix(f"_mic{mic}") if release == "0.92" else path.stem
        text_file = root / "txt" / speaker / f"{base}.txt"
        text = text_file.read_text(errors="replace").strip() if text_file.is_file() else ""
        utts.append(Utterance(base, speaker, str(path.resolve()), text, corpus=f"vctk-{release}"))
    if not utts:
        raise VcAppError(f"No VCTK {release} audio matching {pattern} under {audio_dir}.")
    return utts


def read_speaker_info(root: str | os.PathLike) -> dict[str, dict[str, str]]:
    """VCTK speaker-info.txt -> {speaker: {"age", "gender", "accent"}}; empty when absent."""
    path = Path(root) / "speaker-info.txt"
    if not path.is_file():
        return {}
    info = {}
    for line in path.read_text(errors="replace").splitlines()[1:]:
        parts = line.split()
        if len(parts) >= 3:
            speaker = parts[0] if parts[0].startswith(("p", "s")) else f"p{parts[0]}"
            info[speaker] = {"age": parts[1], "gender": parts[2], "accent": parts[3] if len(parts) > 3 else ""}
    return info


@dataclass(frozen=True)
class Split:
    train: list[Utterance]
    valid: list[Utterance]
    unseen: list[Utterance]


def split_corpus(utts: list[Utterance], *, n_unseen: int = 20, unseen: list[str] | None = None,
                 cross_corpus: list[str] | None = None, valid_fraction: float = 0.05, seed: int = 0,
                 genders: dict[str, str] | None = None) -> Split:
    """Hold out whole speakers (`unseen`, or `n_unseen` chosen by seed, plus every `cross_corpus`
    speaker), then a validation share per speaker.

    With `genders` ({speaker: "F"|"M"}, e.g. from VCTK's speaker-info.txt) the speakers chosen by
    seed alternate between the genders, so the unseen set is balanced. Deterministic for a given
    seed and utterance list.
    """
    speakers = sorted({u.speaker for u in utts})
    extra = set(cross_corpus or [])
    missing = sorted(extra.union(unseen or []) - set(speakers))
    if missing:
        raise VcAppError(f"Held-out speaker(s) not in the corpus: {', '.join(missing)}.")
    rng = random.Random(seed)
    if unseen is None:
        candidates = [s for s in speakers if s not in extra]
        if n_unseen >= len(candidates):
            raise VcAppError(f"Cannot hold out {n_unseen + len(extra)} of {len(speakers)} speakers and still train.")
        held = set(_choose_speakers(candidates, n_unseen, rng, genders or {})) | extra
    else:
        held = set(unseen) | extra
    if len(held) >= len(speakers):
        raise VcAppError(f"Cannot hold out {len(held)} of {len(speakers)} speakers and still train.")
    train, valid, test = [], [], []
    for speaker in speakers:
        own = [u for u in utts if u.speaker == speaker]
        if speaker in held:
            test += own
            continue
        order = list(range(len(own)))
        rng.shuffle(order)
        n_valid = max(1, round(valid_fraction * len(own))) if len(own) > 2 else 0
        chosen = set(order[:n_valid])
        valid += [u for i, u in enumerate(own) if i in chosen]
        train += [u for i, u in enumerate(own) if i not in chosen]
    return Split(train, valid, test)


def _choose_speakers(speakers: list[str], n: int, rng: random.Random, genders: dict[str, str]) -> list[str]:
    """`n` speakers drawn by `rng`, taken in turn from each gender group (a plain sample without genders)."""
    if not genders:
        return rng.sample(speakers, n)
    groups: dict[str, list[str]] = {}
    for speaker in speakers:
        groups.setdefault(genders.get(speaker, "?").upper()[:1], []).append(speaker)
    for name in sorted(groups):
        rng.shuffle(groups[name])
    order = [g[i] for i in range(max(map(len, groups.values()))) for _, g in sorted(groups.items()) if i < len(g)]
    return order[:n]


def write_manifest(path: str | os.PathLike, utts: list[Utterance]) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_csv(path, [f.name for f in fields(Utterance)], [asdict(u) for u in utts])


def read_manifest(path: str | os.PathLike) -> list[Utterance]:
    path = Path(path)
    if not path.is_file():
        raise VcAppError(f"Manifest {path} does not exist.")
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        if not reader.fieldnames or not {"utt_id", "speaker", "path"} <= set(reader.fieldnames):
            raise VcAppError(f"Manifest {path} needs the columns utt_id, speaker, path.")
        return [Utterance(r["utt_id"], r["speaker"], r["path"], r.get("text") or "", r.get("corpus") or "")
                for r in reader]
