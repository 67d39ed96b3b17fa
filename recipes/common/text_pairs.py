"""Evaluation pairs whose source text is known, for the WER measure of `vc-app evaluate`.

Real corpora here have no transcripts, so the sources are spoken by flite voices (their words are
the sentences we give them: Harvard sentences, public domain) and converted into the voices of
held-out real speakers. Writes OUT/sources/<voice>_<n>.wav (22 050 Hz) and OUT/pairs.csv with the
columns of `vc_app.pairs.write_pairs` (target: --target-clips clips of one speaker, ";"-separated).

    python recipes/common/text_pairs.py --manifest data/unseen.csv --out DIR         # a recipe's held-out split
    python recipes/common/text_pairs.py --targets-corpus CORPUS --speakers A,B --out DIR
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from vc_app.errors import VcAppError, add_debug_option, run_entry_point

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
    add_debug_option(parser)
    args = parser.parse_args()
    return run_entry_point("text_pairs.py", lambda: make_pairs(args), debug=args.debug)


def make_pairs(args: argparse.Namespace) -> None:
    """Speak the sentences (once; existing sources are kept) and write OUT/pairs.csv (`vc_app.pairs.text_pairs`)."""
    if shutil.which("flite") is None:
        raise VcAppError("text_pairs.py needs flite (e.g. sudo apt-get install flite).")
    from vc_app.corpus import read_manifest, scan_folder
    from vc_app.pairs import by_speaker, text_pairs, write_pairs

    out = Path(args.out).absolute()  # pairs.csv paths are read relative to its own folder: write them whole
    (out / "sources").mkdir(parents=True, exist_ok=True)
    sentences = [s.strip() for s in Path(args.sentences).read_text().splitlines() if s.strip()]
    utts = read_manifest(args.manifest) if args.manifest else scan_folder(args.targets_corpus)
    chosen = [s for s in args.speakers.split(",") if s] if args.speakers else sorted({u.speaker for u in utts})
    groups = by_speaker(utts, speakers=chosen, exclude=[s for s in args.exclude_speakers.split(",") if s],
                        where=args.manifest or args.targets_corpus, min_speakers=1)
    sources = []
    for voice in args.voices.split(","):
        for n, text in enumerate(sentences, start=1):
            source = out / "sources" / f"{voice}_{n:02d}.wav"
            if not source.is_file():
                synthesize(text, voice, source, 22050)
            sources.append((str(source), text, f"flite-{voice}"))
    pairs = text_pairs(sources, groups, target_clips=args.target_clips, seed=args.seed)
    write_pairs(out / "pairs.csv", pairs)
    print(f"{len(pairs)} pairs -> {out / 'pairs.csv'}")


if __name__ == "__main__":
    sys.exit(main())
