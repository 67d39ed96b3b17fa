#!/usr/bin/env bash
# AdaIN-VC on any folder-per-speaker corpus (CORPUS_DIR/SPEAKER/CLIP.wav|flac|...), in numbered stages:
#   0 data       list the clips of CORPUS_DIR (local/data.sh)
#   1 manifests  train / valid / unseen-speaker split: --unseen A,B,... or --n-unseen N by seed
#   2 features   mels computed once, in parallel, into a cache (re-runs skip what is done)
#   3 train      one process, or torchrun + DDP with --nproc N (GPUs) and --nnodes M (machines)
#   4 evaluate   held-out reconstruction / conversion losses; `vc-app evaluate` too when installed
#   5 export     an inference bundle (optionally --push-to-hub REPO)
# Examples:
#   ./run.sh ../../../shared/data/speech --unseen VCC2SF3,VCC2SM3,VCC2TF1,VCC2TM2
#   ./run.sh --stage 3 --stop-stage 3 --config conf/adain_adv.yaml --nproc 2
#   ./run.sh --stage 3 --resume
set -euo pipefail
. "$(dirname "$0")/path.sh"  # sets recipe_dir; relative paths below are relative to the caller's folder

stage=0                 # first stage to run
stop_stage=5            # last stage to run
data=$DATA_DIR          # manifests
feats=$FEATS_DIR        # feature cache
exp=$EXP_DIR            # experiments
config=conf/adain.yaml  # training config: conf/adain.yaml, conf/adain_adv.yaml, conf/adain_vq.yaml
tag=""                  # experiment name (default: the config's name)
seed=0                  # seed of the speaker split and of evaluation pairs
n_unseen=4              # speakers held out for evaluation, chosen by seed ...
unseen=""               # ... or named: A,B,C (overrides n_unseen)
cross_corpus=""         # speakers of other recordings, held out too and evaluated as their own set: A,B,...
valid_fraction=0.05     # validation share of each training speaker's clips
nj=4                    # feature-extraction worker processes
nproc=1                 # training processes on this machine (one per GPU); > 1 uses torchrun
ngpu=""                 # alias of --nproc
nnodes=1                # machines (torchrun multi-node)
node_rank=0             # this machine's rank
master_addr=localhost   # address of the machine with node_rank 0
master_port=29500       # its port
resume=false            # continue from the newest checkpoint of the experiment
init_from=""            # start training from this bundle's weights (folder or hub id), fresh optimiser
train_args=""           # extra training arguments, e.g. "--set run.max_steps=1000"
eval_tool=auto          # auto (vc-app evaluate when available) | losses | vc-app
n_pairs=100             # held-out conversion pairs for the model's own losses (stage 4)
pairs_per_speaker=8     # vc-app evaluate: source clips per ordered pair of held-out speakers
evaluate_args=""        # extra arguments for vc-app evaluate
text_pairs=true         # also measure WER on flite-spoken sentences converted to the unseen voices (needs flite)
bundle=""               # export folder (default: EXP/TAG/bundle)
half=false              # export float16 weights
push_to_hub=""          # Hugging Face repo id to upload the bundle to
card_note=""            # a paragraph for the model card: the data, its licence and credits

help_message="Usage: $0 CORPUS_DIR [--unseen A,B,...] [--stage N] [--stop-stage M] [--config conf/X.yaml]
          [--nproc N] [--nnodes M --node-rank R --master-addr HOST] [--resume] [--push-to-hub REPO] ...
CORPUS_DIR is needed by stage 0 only. Options are the variables at the top of $0 (dashes for underscores).
Quick smoke training, about a minute on 2 CPU cores (a tiny generated corpus, 20 steps; all in /tmp/vc-smoke):
  python3 $(dirname "$0")/../common/tiny_corpus.py /tmp/vc-smoke/corpus && $0 /tmp/vc-smoke/corpus --n-unseen 2 \\
    --data /tmp/vc-smoke/data --feats /tmp/vc-smoke/feats --exp /tmp/vc-smoke/exp --eval-tool losses \\
    --train-args \"--set run.max_steps=20 --set run.log_every=5 --set run.valid_every=10 --set run.save_every=10 --set data.batch_size=8\""
. "$recipe_dir/../common/parse_options.sh"
[ -n "$ngpu" ] && nproc=$ngpu
[ -f "$config" ] || config=$recipe_dir/$config  # conf/X.yaml names this recipe's configs from anywhere
[ $# -le 1 ] || { echo "$0: one CORPUS_DIR expected, got: $*" >&2; exit 1; }

if [ "$stage" -le 0 ] && [ "$stop_stage" -ge 0 ]; then
  [ $# -eq 1 ] || { echo "$0: stage 0 needs CORPUS_DIR (see --help)" >&2; exit 1; }
  corpus=$1
  echo "$(date '+%H:%M:%S') [folder] stage 0: data from $corpus -> $data"
  "$recipe_dir/local/data.sh" "$corpus" "$data"
fi

. "$recipe_dir/../common/stages.sh"
