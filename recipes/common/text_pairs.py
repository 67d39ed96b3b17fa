"""Evaluation pairs whose source text is known, for the WER measure of `vc-app evaluate`.

Real corpora here have no transcripts, so the sources are spoken by flite voices (their words are
the sentences we give them: Harvard sentences, public domain) and converted into the voices of
held-out real speakers. Writes OUT/sources/<voice>_<n>.wav (22 050 Hz) and OUT/pairs.csv with the
columns source,target,text (target: --target-clips clips of one speaker, ';'-separated).

    python recipes/common/text_pairs.py --manifest data/unseen.csv --out DIR         # a recipe's held-out split
    python recipes/common/text_pairs.py --targets-corpus CORPUS --speakers A,B --out DIR
"""

from __future__ import annotations

import argparse
import csv
import random
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent


def synthesize(text: str, voice: str, out: Path, rate: int) -> None:
    """flite VOICE speaks TEXT into OUT (mono, `rate` Hz)."""
    import soundfile as sf

    from vc_app.audio import load_audio

    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw.wav"
        subprocess.run(["flite", "-voice", voice, "-t", text, "-o", str(raw)], check=True, capture_output=True)
        sf.write(str(out), load_audio(raw, rate).numpy(), rate, subtype="PCM_16")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--manifest", help="a recipe manifest (e.g. data/unseen.csv): its speakers are the targets")
    where.add_argument("--targets-corpus", help="folder-per-speaker corpus holding the targets")
    parser.add_argument("--speakers", help="comma-separated target speakers (default: all)")
    parser.add_argument("--exclude-speakers", default="", help="comma-separated speakers not to use as targets")
    parser.add_argument("--voices", default="slt,rms", help="flite voices speaking the sources")
    parser.add_argument("--sentences", default=str(HERE / "sentences.txt"))
    parser.add_argument("--target-clips", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    if shutil.which("flite") is None:
        print("text_pairs.py needs flite (e.g. sudo apt-get install flite).", file=sys.stderr)
        return 1
    from vc_app.corpus import read_manifest, scan_folder

    out = Path(args.out)
    (out / "sources").mkdir(parents=True, exist_ok=True)
    sentences = [s.strip() for s in Path(args.sentences).read_text().splitlines() if s.strip()]
    clips = {}
    for utt in read_manifest(args.manifest) if args.manifest else scan_folder(args.targets_corpus):
        clips.setdefault(utt.speaker, []).append(str(utt.path))
    excluded = set(filter(None, args.exclude_speakers.split(",")))
    speakers = [s for s in (args.speakers.split(",") if args.speakers else sorted(clips)) if s and s not in excluded]
    rng = random.Random(args.seed)
    rows = []
    for voice in args.voices.split(","):
        for n, text in enumerate(sentences, start=1):
            source = out / "sources" / f"{voice}_{n:02d}.wav"
            if not source.is_file():
                synthesize(text, voice, source, 22050)
            for speaker in speakers:
                if speaker not in clips:
                    print(f"speaker {speaker} is not in {args.manifest or args.targets_corpus}", file=sys.stderr)
                    return 1
                targets = rng.sample(sorted(clips[speaker]), args.target_clips)
                rows.append({"source": str(source), "target": ";".join(targets), "text": text,
                             "source_speaker": f"flite-{voice}", "target_speaker": speaker})
    with open(out / "pairs.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print(f"{len(rows)} pairs -> {out / 'pairs.csv'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
