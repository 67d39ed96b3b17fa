#!/usr/bin/env bash
# Stage 0 of the VCTK recipe: check that VCTK_ROOT holds release 0.92 or 0.80, and list its clips
# (with transcripts from txt/ and speaker-info.txt when present) in DATA/corpus.csv + speakers.json.
# Usage: local/data.sh VCTK_ROOT MIC DATA
set -euo pipefail
[ $# -eq 3 ] || { echo "Usage: $0 VCTK_ROOT MIC DATA" >&2; exit 1; }
vctk_root=$1 mic=$2 data=$3

if [ ! -d "$vctk_root/wav48_silence_trimmed" ] && [ ! -d "$vctk_root/wav48" ]; then
  cat >&2 <<MSG
VCTK was not found at $vctk_root.
Download it (CC BY 4.0) from the University of Edinburgh DataShare and unpack it:
  release 0.92: https://datashare.ed.ac.uk/handle/10283/3443  (VCTK-Corpus-0.92.zip, about 11 GB)
  release 0.80: https://doi.org/10.7488/ds/1994                (VCTK-Corpus.tar.gz, about 11 GB)
then pass the unpacked folder with --vctk-root DIR (or set the environment variable VCTK_ROOT). Expected layouts:
  0.92  DIR/wav48_silence_trimmed/p225/p225_001_mic1.flac   (and _mic2.flac: --mic 2)
        DIR/txt/p225/p225_001.txt
        DIR/speaker-info.txt
  0.80  DIR/wav48/p225/p225_001.wav
        DIR/txt/p225/p225_001.txt
        DIR/speaker-info.txt
MSG
  exit 1
fi
$PYTHON -m vc_app.recipe prepare --corpus-type vctk --root "$vctk_root" --mic "$mic" --out "$data"
