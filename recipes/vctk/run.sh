#!/usr/bin/env bash
# AdaIN-VC on VCTK (release 0.92 or 0.80), in numbered stages:
#   0 data       check --vctk-root and list its clips (local/data.sh)
#   1 manifests  train / valid / unseen-speaker split (20 unseen speakers, gender-balanced, by seed)
#   2 features   mels computed once, in parallel, into a cache (re-runs skip what is done)
#   3 train      one process, or torchrun + DDP with --nproc N (GPUs) and --nnodes M (machines)
#   4 evaluate   held-out reconstruction / conversion losses; `vc-app evaluate` too when installed
#   5 export     an inference bundle (optionally --push-to-hub REPO)
# Examples:
#   ./run.sh --vctk-root /data/VCTK-Corpus-0.92
#   ./run.sh --stage 3 --stop-stage 3 --config conf/adain_vq.yaml --nproc 4
#   ./run.sh --stage 3 --resume
set -euo pipefail
. "$(dirname "$0")/../common/path.sh"  # sets recipe_dir; relative paths below are relative to the caller's folder

# this recipe's own options (the shared ones: ../common/options.sh)
vctk_root=${VCTK_ROOT:-$recipe_dir/downloads/VCTK-Corpus-0.92}  # the unpacked corpus: VCTK 0.92 or 0.80
mic=1                   # VCTK 0.92 microphone: 1 or 2
n_unseen=20             # speakers held out for evaluation (as in AdaIN-VC)
card_note="Trained on the CSTR VCTK Corpus (Yamagishi, Veaux & MacDonald, University of Edinburgh; CC BY 4.0)."
. "$recipe_dir/../common/options.sh"

help_message="Usage: $0 [--vctk-root DIR] [--mic 1|2] [--stage N] [--stop-stage M] [--config conf/X.yaml]
          [--nproc N] [--nnodes M --node-rank R --master-addr HOST] [--resume] [--push-to-hub REPO] ...
Options are the variables at the top of $0 and in recipes/common/options.sh (dashes for underscores).
A one-minute smoke training run needs no VCTK: see $(dirname "$0")/../folder/run.sh --help."
. "$recipe_dir/../common/parse_options.sh"
[ -n "$ngpu" ] && nproc=$ngpu
[ -f "$config" ] || config=$recipe_dir/$config  # conf/X.yaml names this recipe's configs from anywhere
[ $# -eq 0 ] || { echo "$0: unexpected argument $1 (see --help)" >&2; exit 1; }

if [ "$stage" -le 0 ] && [ "$stop_stage" -ge 0 ]; then
  echo "$(date '+%H:%M:%S') [vctk] stage 0: data from $vctk_root -> $data"
  "$recipe_dir/local/data.sh" "$vctk_root" "$mic" "$data"
fi

. "$recipe_dir/../common/stages.sh"
