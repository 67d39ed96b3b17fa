#!/usr/bin/env bash
# Stage 0 of the folder recipe: list every clip of a speaker/clip.ext tree in DATA/corpus.csv
# (its speaker is the name of the folder that holds it) and count clips per speaker in speakers.json.
# Usage: local/data.sh CORPUS_DIR DATA
set -euo pipefail
[ $# -eq 2 ] || { echo "Usage: $0 CORPUS_DIR DATA" >&2; exit 1; }
corpus=$1 data=$2
if [ ! -d "$corpus" ]; then
  cat >&2 <<MSG
$corpus is not a folder. The folder recipe reads any tree of SPEAKER/CLIP files, e.g.
  CORPUS_DIR/alice/001.wav  CORPUS_DIR/alice/002.flac  CORPUS_DIR/bob/hello.wav ...
(nested sets such as CORPUS_DIR/vcc2018/VCC2SF1/30001.flac work too: the speaker is the last folder).
MSG
  exit 1
fi
$PYTHON -m vc_app.recipe prepare --corpus-type folder --root "$corpus" --out "$data"
