#!/usr/bin/env bash
# The fast vocoder, distilled from hifigan:universal, in numbered stages:
#   0 data       list the clips of CORPUS_DIR [CORPUS_DIR2 ...] (the folder recipe's local/data.sh)
#   1 manifests  train / valid / held-out speakers: the named sets of --heldout-sets (the folder recipe's), so
#                the held-out speakers reach no training, the vocoder's included
#   2 features   mels computed once, in parallel, into a cache (re-runs skip what is done)
#   3 label      the teacher's waveform for each training and validation clip (a crop of at most --max-frames),
#                and for --converted-per-clip conversions of it by --checkpoint to random training speakers;
#                held-out clips are labelled for evaluation only; resumable shards
#   4 train      the student (conf/fast.yaml), resumable with --resume; TensorBoard in EXP/TAG/tensorboard
#   5 export     the newest checkpoint as a bundle folder with its card (copy it to checkpoints/vocoder-fast)
# Examples:
#   ./run.sh ../../../shared/data/speech ../../../shared/data/more_speech
#   ./run.sh --stage 3 --data ../folder/data --feats ../folder/exp/feats   # reuse the folder recipe's stages 0-2
#   ./run.sh --stage 4 --resume
set -euo pipefail
. "$(dirname "$0")/../common/path.sh"  # sets recipe_dir, PYTHON, DATA_DIR, FEATS_DIR, EXP_DIR

stage=0                 # first stage to run
stop_stage=5            # last stage to run
data=$DATA_DIR          # manifests
feats=$FEATS_DIR        # feature cache
exp=$EXP_DIR            # labels and experiments
heldout_sets=../folder/lists/heldout-sets.json  # named held-out sets (relative to this recipe): never trained on
n_unseen=0              # more held-out speakers drawn by seed (besides the named sets)
seed=0                  # seed of the split, the crops and the converted speakers
nj=4                    # feature-extraction worker processes
teacher=hifigan:universal  # the vocoder whose waveforms the student learns
checkpoint=""           # AdaIN-VC bundle for converted mels (default: the shipped model)
converted_per_clip=1    # conversions of each training clip to random training speakers (0: real mels only)
max_frames=512          # each labelled clip is a random crop of at most this many frames (512 = 6 s)
device=cpu              # where the teacher labels (cuda on a lent GPU)
threads=0               # torch threads for labelling and training (0: PyTorch's default)
config=conf/fast.yaml   # the student's sizes and training
tag=fast                # experiment name
resume=false            # continue training from the newest checkpoint
train_args=""           # extra training arguments, e.g. "--set max_steps=1000 --set amp=bf16"
bundle=""               # export folder (default: EXP/TAG/bundle)
card_note=""            # a paragraph for the card
help_message="Usage: $0 CORPUS_DIR [CORPUS_DIR2 ...] [--stage N] [--stop-stage M] [--resume] ...
CORPUS_DIR is needed by stage 0 only. Options are the variables at the top of $0 (dashes for underscores).
Quick smoke run, about a minute on 2 CPU cores (a tiny generated corpus, short crops, a tiny student, 20 steps;
all in /tmp/vc-vocoder-smoke):
  python3 $(dirname "$0")/../common/tiny_corpus.py /tmp/vc-vocoder-smoke/corpus && $0 /tmp/vc-vocoder-smoke/corpus \\
    --heldout-sets '' --n-unseen 2 --data /tmp/vc-vocoder-smoke/data --feats /tmp/vc-vocoder-smoke/feats \\
    --exp /tmp/vc-vocoder-smoke/exp --max-frames 48 --train-args \"--set max_steps=20 --set generator.dim=32 \\
    --set generator.intermediate_dim=64 --set generator.layers=2 --set batch_size=4 --set segment_frames=16 \\
    --set log_every=5 --set valid_every=10 --set save_every=10 --set sample_every=10 --set valid_clips=2\""
own_options_only=true   # this recipe does not use recipes/common/options.sh
. "$recipe_dir/../common/parse_options.sh"
[ -f "$config" ] || config=$recipe_dir/$config
[ -z "$heldout_sets" ] || [ -f "$heldout_sets" ] || heldout_sets=$recipe_dir/$heldout_sets

in_stage() { [ "$stage" -le "$1" ] && [ "$stop_stage" -ge "$1" ]; }
log() { echo "$(date '+%H:%M:%S') [vocoder] $*"; }
expdir=$exp/$tag
labels=$exp/labels
thread_flag=()
[ "$threads" -gt 0 ] && thread_flag=(--threads "$threads") && train_args="--set threads=$threads $train_args"

if in_stage 0; then
  [ $# -ge 1 ] || { echo "$0: stage 0 needs CORPUS_DIR (see --help)" >&2; exit 1; }
  log "stage 0: data from $* -> $data"
  "$recipe_dir/../folder/local/data.sh" "$data" "$@"
fi

if in_stage 1; then
  log "stage 1: manifests (held-out speakers: ${heldout_sets:-none named}, $n_unseen by seed) -> $data"
  sets_flag=()
  [ -n "$heldout_sets" ] && sets_flag=(--heldout-sets "$heldout_sets")
  $PYTHON -m vc_app.recipe manifests --corpus "$data/corpus.csv" --out "$data" --seed "$seed" \
    --n-unseen "$n_unseen" ${sets_flag[@]+"${sets_flag[@]}"}
fi

if in_stage 2; then
  log "stage 2: features ($nj workers) -> $feats"
  $PYTHON -m vc_app.recipe features --manifests "$data" --out "$feats" --workers "$nj"
fi

if in_stage 3; then
  ckpt=${checkpoint:-$($PYTHON -c 'from vc_app.bundle import default_checkpoint as d; print(d())')}
  for split in train valid unseen; do
    [ -f "$feats/$split/index.csv" ] || continue
    conv=$converted_per_clip
    [ "$split" = unseen ] && conv=0  # held-out speakers: real speech, for copy-synthesis numbers only
    log "stage 3: label $split with $teacher ($conv conversion(s) per clip by $ckpt) -> $labels/$split"
    $PYTHON -m vc_app.train.vocoder label --features "$feats/$split" --out "$labels/$split" --teacher "$teacher" \
      --checkpoint "$ckpt" --converted-per-clip "$conv" --max-frames "$max_frames" --seed "$seed" \
      --device "$device" ${thread_flag[@]+"${thread_flag[@]}"}
  done
fi

if in_stage 4; then
  valid_flag=()
  [ -d "$labels/valid" ] && valid_flag=(--valid "$labels/valid")
  resume_flag=()
  [ "$resume" = true ] && resume_flag=(--resume)
  log "stage 4: train $config -> $expdir"
  # shellcheck disable=SC2086  # train_args is a list of words
  $PYTHON -m vc_app.train.vocoder train --labels "$labels/train" ${valid_flag[@]+"${valid_flag[@]}"} \
    --out "$expdir" --config "$config" ${resume_flag[@]+"${resume_flag[@]}"} $train_args
fi

if in_stage 5; then
  heldout_flag=()
  [ -d "$labels/unseen" ] && heldout_flag=(--heldout "$labels/unseen")
  log "stage 5: export the newest checkpoint of $expdir -> ${bundle:-$expdir/bundle}"
  $PYTHON -m vc_app.train.vocoder export --exp "$expdir" --out "${bundle:-$expdir/bundle}" --note "$card_note" \
    ${heldout_flag[@]+"${heldout_flag[@]}"}
fi
