#!/usr/bin/env bash
# Stage 0 of the folder recipe: list every clip of one or more speaker/clip.ext trees in DATA/corpus.csv
# (its speaker is the name of the folder that holds it) and count clips per speaker in speakers.json
# (with gender and age from any speakers.csv table in the trees).
# Usage: local/data.sh DATA CORPUS_DIR [CORPUS_DIR2 ...]
set -euo pipefail
[ $# -ge 2 ] || { echo "Usage: $0 DATA CORPUS_DIR [CORPUS_DIR2 ...]" >&2; exit 1; }
data=$1
shift
roots=()
for corpus in "$@"; do
  roots+=(--root "$corpus")
  [ -d "$corpus" ] && continue
  cat >&2 <<MSG
$corpus is not a folder. The folder recipe reads any tree of SPEAKER/CLIP files, e.g.
  CORPUS_DIR/alice/001.wav  CORPUS_DIR/alice/002.flac  CORPUS_DIR/bob/hello.wav ...
(nested sets such as CORPUS_DIR/vcc2018/VCC2SF1/30001.flac work too: the speaker is the last folder).
MSG
  exit 1
done
$PYTHON -m vc_app.recipe prepare --corpus-type folder "${roots[@]}" --out "$data"
