"""A tiny folder-per-speaker corpus for a first, one-minute run of a recipe (no download).

Six voices each say five Harvard sentences (`sentences.txt`, public domain): flite's and espeak-ng's
voices when those are installed, otherwise generated speech-like tones (a pulse train through moving
formants, one pitch per "speaker"). Writes OUT/<voice>/<n>.wav. Standard library only, so any
python3 runs it.

    python3 recipes/common/tiny_corpus.py /tmp/vc-smoke/corpus
    recipes/folder/run.sh /tmp/vc-smoke/corpus --n-unseen 2 ...     # see recipes/folder/run.sh --help
"""

from __future__ import annotations

import argparse
import array
import math
import random
import shutil
import subprocess
import sys
import wave
from pathlib import Path

HERE = Path(__file__).resolve().parent
# (folder name, TTS command prefix): clearly different voices, female and male
TTS_VOICES = (
    ("flite-slt", ["flite", "-voice", "slt"]), ("flite-awb", ["flite", "-voice", "awb"]),
    ("flite-rms", ["flite", "-voice", "rms"]), ("espeak-f3", ["espeak-ng", "-v", "en+f3"]),
    ("espeak-m3", ["espeak-ng", "-v", "en-us+m3"]), ("espeak-f4", ["espeak-ng", "-v", "en-us+f4"]),
)
TONE_PITCHES = (210.0, 105.0, 130.0, 240.0, 95.0, 180.0)  # Hz, one per generated "speaker"
RATE = 16000


def speak(command: list[str], text: str, out: Path) -> bool:
    """Run a TTS command that writes `text` to the WAV file `out`; False when it is missing or fails."""
    if shutil.which(command[0]) is None:
        return False
    flag = ["-t", text, "-o", str(out)] if command[0] == "flite" else ["-w", str(out), text]
    return subprocess.run([*command, *flag], capture_output=True).returncode == 0 and out.is_file()


def tone_speech(text: str, pitch: float, out: Path) -> None:
    """Speech-like audio without a TTS: one 'syllable' per word, each a pulse train through two resonators."""
    rng = random.Random(f"{text}|{pitch}")
    samples = array.array("h")
    for _ in text.split():
        f1, f2 = rng.uniform(300, 800), rng.uniform(900, 2400)
        n = int(RATE * rng.uniform(0.18, 0.3))
        y1 = y2 = z1 = z2 = 0.0
        poles = [(2 * math.exp(-math.pi * 80 / RATE) * math.cos(2 * math.pi * f / RATE),
                  -math.exp(-2 * math.pi * 80 / RATE)) for f in (f1, f2)]
        phase = 0.0
        for i in range(n):
            phase += pitch * (1 + 0.05 * math.sin(i / RATE * 2 * math.pi * 3)) / RATE
            pulse = 1.0 if phase >= 1.0 else 0.0
            phase -= math.floor(phase)
            a = pulse + poles[0][0] * y1 + poles[0][1] * y2
            y2, y1 = y1, a
            b = a + poles[1][0] * z1 + poles[1][1] * z2
            z2, z1 = z1, b
            envelope = math.sin(math.pi * i / n)
            samples.append(max(-32767, min(32767, int(150 * b * envelope))))
        samples.extend([0] * int(RATE * 0.05))
    with wave.open(str(out), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(RATE)
        handle.writeframes(samples.tobytes())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", help="folder to create (OUT/<voice>/<n>.wav)")
    parser.add_argument("--clips", type=int, default=5, help="sentences per voice (default 5, at most 10)")
    args = parser.parse_args()
    sentences = [s.strip() for s in (HERE / "sentences.txt").read_text().splitlines() if s.strip()][:args.clips]
    out = Path(args.out)
    made = {"tts": 0, "tones": 0}
    for (name, command), pitch in zip(TTS_VOICES, TONE_PITCHES):
        folder = out / name
        folder.mkdir(parents=True, exist_ok=True)
        for n, text in enumerate(sentences, start=1):
            clip = folder / f"{n:02d}.wav"
            if clip.is_file():
                continue
            if speak(command, text, clip):
                made["tts"] += 1
            else:
                tone_speech(text, pitch, clip)
                made["tones"] += 1
    print(f"{len(TTS_VOICES)} voices x {len(sentences)} clips in {out} ({made['tts']} spoken by flite/espeak-ng, "
          f"{made['tones']} generated tones" + (", install flite and espeak-ng for speech" if made["tones"] else "")
          + ")")
    return 0


if __name__ == "__main__":
    sys.exit(main())
