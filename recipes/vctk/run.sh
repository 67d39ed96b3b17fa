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
. "$(dirname "$0")/path.sh"  # sets recipe_dir; relative paths below are relative to the caller's folder

stage=0                 # first stage to run
stop_stage=5            # last stage to run
vctk_root=$VCTK_ROOT    # the unpacked corpus (path.sh)
mic=1                   # VCTK 0.92 microphone: 1 or 2
data=$DATA_DIR          # manifests
feats=$FEATS_DIR        # feature cache
exp=$EXP_DIR            # experiments
config=conf/adain.yaml  # training config: conf/adain.yaml, conf/adain_adv.yaml, conf/adain_vq.yaml
tag=""                  # experiment name (default: the config's name)
seed=0                  # seed of the speaker split and of evaluation pairs
n_unseen=20             # speakers held out for evaluation (as in AdaIN-VC)
unseen=""               # or name them: p225,p226,...
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
train_args=""           # extra training arguments, e.g. "--set run.max_steps=1000 --set run.amp=bf16"
eval_tool=auto          # auto (vc-app evaluate when available) | losses | vc-app
n_pairs=100             # held-out conversion pairs for the model's own losses (stage 4)
pairs_per_speaker=8     # vc-app evaluate: source clips per ordered pair of held-out speakers
evaluate_args=""        # extra arguments for vc-app evaluate
text_pairs=true         # also measure WER on flite-spoken sentences converted to the unseen voices (needs flite)
bundle=""               # export folder (default: EXP/TAG/bundle)
half=false              # export float16 weights
push_to_hub=""          # Hugging Face repo id to upload the bundle to
card_note="Trained on the CSTR VCTK Corpus (Yamagishi, Veaux & MacDonald, University of Edinburgh; CC BY 4.0)."

help_message="Usage: $0 [--vctk-root DIR] [--mic 1|2] [--stage N] [--stop-stage M] [--config conf/X.yaml]
          [--nproc N] [--nnodes M --node-rank R --master-addr HOST] [--resume] [--push-to-hub REPO] ...
Options are the variables at the top of $0 (dashes for underscores).
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
