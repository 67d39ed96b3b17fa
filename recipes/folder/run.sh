#!/usr/bin/env bash
# AdaIN-VC on any folder-per-speaker corpus (CORPUS_DIR/SPEAKER/CLIP.wav|flac|...), or several joined,
# in numbered stages:
#   0 data       list the clips of CORPUS_DIR [CORPUS_DIR2 ...] (local/data.sh)
#   1 manifests  train / valid / unseen-speaker split: --unseen A,B,..., --n-unseen N by seed, or the named
#                sets of --heldout-sets FILE
#   2 features   mels computed once, in parallel, into a cache (re-runs skip what is done)
#   3 train      one process, or torchrun + DDP with --nproc N (GPUs) and --nnodes M (machines)
#   4 evaluate   held-out reconstruction / conversion losses; `vc-app evaluate` too when installed
#   5 export     an inference bundle (optionally --push-to-hub REPO)
# Examples:
#   ./run.sh ../../../shared/data/speech --unseen VCC2SF3,VCC2SM3,VCC2TF1,VCC2TM2
#   ./run.sh ../../../shared/data/speech ../../../shared/data/more_speech --heldout-sets lists/heldout-sets.json
#   ./run.sh --stage 3 --stop-stage 3 --config conf/adain_adv.yaml --nproc 2
#   ./run.sh --stage 3 --resume
set -euo pipefail
. "$(dirname "$0")/../common/path.sh"  # sets recipe_dir; relative paths below are relative to the caller's folder

# this recipe's own options (the shared ones: ../common/options.sh)
n_unseen=4              # speakers held out for evaluation, chosen by seed ...
card_note=""            # a paragraph for the model card: the data, its licence and credits
. "$recipe_dir/../common/options.sh"

help_message="Usage: $0 CORPUS_DIR [CORPUS_DIR2 ...] [--unseen A,B,... | --heldout-sets FILE] [--stage N] [--stop-stage M] [--config conf/X.yaml]
          [--nproc N] [--nnodes M --node-rank R --master-addr HOST] [--resume] [--push-to-hub REPO] ...
CORPUS_DIR is needed by stage 0 only; several are joined into one corpus (speaker names must differ). Options are the variables at the top of $0 and in recipes/common/options.sh (dashes for underscores).
Quick smoke training, about a minute on 2 CPU cores (a tiny generated corpus, 20 steps; all in /tmp/vc-smoke):
  python3 $(dirname "$0")/../common/tiny_corpus.py /tmp/vc-smoke/corpus && $0 /tmp/vc-smoke/corpus --n-unseen 2 \\
    --data /tmp/vc-smoke/data --feats /tmp/vc-smoke/feats --exp /tmp/vc-smoke/exp --eval-tool losses \\
    --train-args \"--set run.max_steps=20 --set run.log_every=5 --set run.valid_every=10 --set run.save_every=10 --set data.batch_size=8\""
. "$recipe_dir/../common/parse_options.sh"
[ -n "$ngpu" ] && nproc=$ngpu
[ -f "$config" ] || config=$recipe_dir/$config  # conf/X.yaml names this recipe's configs from anywhere

if [ "$stage" -le 0 ] && [ "$stop_stage" -ge 0 ]; then
  [ $# -ge 1 ] || { echo "$0: stage 0 needs CORPUS_DIR (see --help)" >&2; exit 1; }
  echo "$(date '+%H:%M:%S') [folder] stage 0: data from $* -> $data"
  "$recipe_dir/local/data.sh" "$data" "$@"
fi

. "$recipe_dir/../common/stages.sh"
