"""Does a blend of two voices land between them? Resemblyzer similarity of blended conversions to each speaker.

    python bench/voice_blend.py [--corpus ../shared/data/speech/vcc2018] [--checkpoint DIR] [--vocoder griffinlim]

Two held-out VCC 2018 speakers become voices: A = VCC2SM3 (male), B = VCC2TF1 (female), each made from
five clips (30001-30005). Sources: five clips (30021-30025) of each of the two other held-out speakers,
VCC2SF3 and VCC2TM2. Every source is converted with the voice A, with B, and with blends of
75/25, 50/50 and 25/75 (share of A / share of B). Each output is compared (cosine of Resemblyzer
d-vectors, `vc_app.evaluate.similarity`) with each speaker, represented by ten *other* clips
(30006-30015) than those the voices were made from. A blend "lands between" when, for each speaker, its
similarity lies between those of the two pure conversions. Needs the eval extra and the shared corpus.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SPEAKER_A, SPEAKER_B = "VCC2SM3", "VCC2TF1"
SOURCES = ("VCC2SF3", "VCC2TM2")
SHARES = (1.0, 0.75, 0.5, 0.25, 0.0)


def clips(corpus: Path, speaker: str, first: int, last: int) -> list[str]:
    return [str(corpus / speaker / f"{n}.flac") for n in range(first, last + 1)]


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", default=str(ROOT.parent / "shared" / "data" / "speech" / "vcc2018"))
    parser.add_argument("--checkpoint")
    parser.add_argument("--vocoder", default="griffinlim")
    parser.add_argument("--threads", type=int, default=1, help="PyTorch threads (Resemblyzer crawls when they compete)")
    return parser


def main() -> None:
    args = get_parser().parse_args()
    torch.set_num_threads(args.threads)

    from vc_app.converter import VoiceConverter
    from vc_app.evaluate.similarity import SpeakerSimilarity, cosine
    from vc_app.voice import Voice, blend

    corpus = Path(args.corpus)
    converter = VoiceConverter.from_specs(args.checkpoint, args.vocoder, device="cpu")
    similarity = SpeakerSimilarity("cpu")
    with tempfile.TemporaryDirectory() as folder:  # through files, as a user would
        paths = {}
        for speaker in (SPEAKER_A, SPEAKER_B):
            paths[speaker] = converter.voice(clips(corpus, speaker, 30001, 30005), name=speaker).save(
                Path(folder) / f"{speaker}.voice")
        voice_a, voice_b = Voice.load(paths[SPEAKER_A]), Voice.load(paths[SPEAKER_B])
    reference = {s: similarity.embed_speaker(clips(corpus, s, 30006, 30015)) for s in (SPEAKER_A, SPEAKER_B)}
    sources = [c for s in SOURCES for c in clips(corpus, s, 30021, 30025)]
    blends = {share: blend([voice_a, voice_b], [share, 1 - share]) for share in SHARES}
    assert torch.equal(blends[1.0].vector, voice_a.vector) and torch.equal(blends[0.0].vector, voice_b.vector)

    sims: dict[float, list[tuple[float, float]]] = {share: [] for share in SHARES}
    for source in sources:
        for share, voice in blends.items():
            wav = converter.convert(source, voice)
            embedding = similarity.embed(wav, converter.sample_rate)
            sims[share].append((cosine(embedding, reference[SPEAKER_A]), cosine(embedding, reference[SPEAKER_B])))
        pure = converter.convert(source, voice_a)
        assert torch.equal(pure, converter.convert(source, blends[1.0]))  # 100/0 == the pure voice

    print(f"model {converter.bundle.name}, vocoder {converter.vocoder.name}, {len(sources)} sources "
          f"({', '.join(SOURCES)}); A = {SPEAKER_A}, B = {SPEAKER_B}")
    print("| share of A / B | similarity to A | similarity to B | A − B |")
    print("|---|---|---|---|")
    for share in SHARES:
        to_a = statistics.mean(a for a, _ in sims[share])
        to_b = statistics.mean(b for _, b in sims[share])
        print(f"| {100 * share:.0f} / {100 * (1 - share):.0f} | {to_a:.3f} | {to_b:.3f} | {to_a - to_b:+.3f} |")
    for share in (0.75, 0.5, 0.25):
        between = sum(min(pa[k], pb[k]) <= mixed[k] <= max(pa[k], pb[k])
                      for mixed, pa, pb in zip(sims[share], sims[1.0], sims[0.0]) for k in (0, 1))
        print(f"{100 * share:.0f}/{100 * (1 - share):.0f} blend between the pure conversions: "
              f"{between} of {2 * len(sources)} (source, speaker) comparisons")
    print("100/0 blend == pure voice A: bit-identical vector and output")


if __name__ == "__main__":
    from results import recorded  # bench/results.py: every run appends its printout, with the machine

    with recorded(__file__):
        main()
