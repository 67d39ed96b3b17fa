# Stages 1-5, the same for every corpus. Sourced by a recipe's run.sh after its own stage 0, with
# these variables set (run.sh declares them with their defaults and documents them in --help):
#   stage stop_stage data feats exp config tag seed n_unseen unseen valid_fraction nj
#   nproc nnodes node_rank master_addr master_port resume train_args
#   cross_corpus heldout_sets init_from eval_tool n_pairs pairs_per_speaker target_clips evaluate_args bundle half
#   push_to_hub card_note
#   and PYTHON (path.sh); the shared ones are declared in options.sh

in_stage() { [ "$stage" -le "$1" ] && [ "$stop_stage" -ge "$1" ]; }
log() { echo "$(date '+%H:%M:%S') [$(basename "$recipe_dir")] $*"; }

expdir=$exp/${tag:-$(basename "$config" .yaml)}

if in_stage 1; then
  log "stage 1: manifests (train / valid / unseen speakers) -> $data"
  [ -f "$data/corpus.csv" ] || { echo "$data/corpus.csv is missing: run stage 0 first." >&2; exit 1; }
  sets_flag=()
  if [ -n "$heldout_sets" ]; then
    [ -f "$heldout_sets" ] || heldout_sets=$recipe_dir/$heldout_sets  # lists/X.json names this recipe's lists
    sets_flag=(--heldout-sets "$heldout_sets")
  fi
  $PYTHON -m vc_app.recipe manifests --corpus "$data/corpus.csv" --out "$data" --seed "$seed" \
    --n-unseen "$n_unseen" --unseen "$unseen" --cross-corpus "$cross_corpus" --valid-fraction "$valid_fraction" \
    ${sets_flag[@]+"${sets_flag[@]}"}
fi

if in_stage 2; then
  log "stage 2: features ($nj workers) -> $feats"
  $PYTHON -m vc_app.recipe features --manifests "$data" --out "$feats" --workers "$nj"
fi

if in_stage 3; then
  valid_feats=$feats/valid
  [ -f "$valid_feats/index.csv" ] || valid_feats=""
  # Several processes: torchrun + DistributedDataParallel (NCCL on GPUs, gloo on CPUs);
  # data.batch_size is per process. One node: a free local port; several: rank 0's address.
  init_flag=()
  [ -n "$init_from" ] && init_flag=(--set "run.init_from=$init_from")
  if [ "$nnodes" -gt 1 ]; then
    launcher=($PYTHON -m torch.distributed.run --nproc_per_node "$nproc" --nnodes "$nnodes" --node_rank "$node_rank"
              --master_addr "$master_addr" --master_port "$master_port" -m vc_app.train)
  elif [ "$nproc" -gt 1 ]; then
    launcher=($PYTHON -m torch.distributed.run --standalone --nproc_per_node "$nproc" -m vc_app.train)
  else
    launcher=($PYTHON -m vc_app train)
  fi
  resume_flag=()
  [ "$resume" = true ] && resume_flag=(--resume)
  log "stage 3: train $config ($nproc process(es) x $nnodes node(s)) -> $expdir"
  # shellcheck disable=SC2086  # train_args is a list of words, e.g. "--set run.max_steps=1000"
  "${launcher[@]}" --config "$config" --out "$expdir" ${resume_flag[@]+"${resume_flag[@]}"} \
    ${init_flag[@]+"${init_flag[@]}"} \
    --set "data.train_features=$feats/train" --set "data.valid_features=$valid_feats" $train_args
fi

if in_stage 4; then
  log "stage 4: evaluate the newest checkpoint of $expdir on the unseen speakers -> $expdir/eval"
  $PYTHON -m vc_app.recipe evaluate --checkpoint "$expdir" --features "$feats/unseen" \
    --out "$expdir/eval/heldout.json" --n-pairs "$n_pairs" --seed "$seed"
  use_vc_app=false
  case "$eval_tool" in
    vc-app) use_vc_app=true ;;
    auto) $PYTHON -m vc_app evaluate --help >/dev/null 2>&1 && use_vc_app=true ;;
  esac
  if [ "$use_vc_app" = true ]; then
    ckpt=$($PYTHON -c 'import sys; from vc_app.train.checkpoints import resolve_checkpoint as r; print(r(sys.argv[1]))' "$expdir")
    # Each held-out set of split.json (in-domain: unseen speakers of the training corpora; cross-corpus:
    # speakers of other recordings; and any set of --heldout-sets) gets conversion pairs among its own
    # speakers, evaluated with each count of target clips in target_clips (the first count unsuffixed).
    mapfile -t sets < <($PYTHON -m vc_app.recipe sets --split "$data/split.json" --pairs-per-speaker "$pairs_per_speaker")
    read -r -a clip_counts <<< "$target_clips"
    for line in "${sets[@]}"; do
      IFS=$'\t' read -r set speakers per_speaker max_pairs set_text <<< "$line"
      out=$expdir/eval/$set
      for n in "${clip_counts[@]}"; do
        suffix="" ladder=()
        # the naturalness ladder's per-source rungs do not depend on the target clips: measured once
        [ "$n" = "${clip_counts[0]}" ] || { suffix="-${n}clip"; ladder=(--no-ladder); }
        $PYTHON -m vc_app.recipe pairs --manifest "$data/unseen.csv" --out "$out/pairs$suffix.csv" \
          --speakers "$speakers" --pairs-per-speaker "$per_speaker" --max-pairs "$max_pairs" --targets "$n" \
          --seed "$seed"
        # shellcheck disable=SC2086
        $PYTHON -m vc_app evaluate --pairs "$out/pairs$suffix.csv" --checkpoint "$ckpt" --seed "$seed" \
          --out "$out/vc-app$suffix" --overwrite ${ladder[@]+"${ladder[@]}"} $evaluate_args
      done
      if [ "$text_pairs" = true ] && [ "$set_text" = true ] && command -v flite >/dev/null; then
        # WER needs known words: flite speaks Harvard sentences, converted into this set's voices
        $PYTHON "$recipe_dir/../common/text_pairs.py" --manifest "$data/unseen.csv" --speakers "$speakers" \
          --out "$out/text_pairs" --seed "$seed"
        # shellcheck disable=SC2086
        $PYTHON -m vc_app evaluate --pairs "$out/text_pairs/pairs.csv" --checkpoint "$ckpt" --seed "$seed" \
          --out "$out/vc-app-text" --overwrite $evaluate_args
      elif [ "$text_pairs" = true ] && [ "$set_text" = true ]; then
        log "flite not found: no WER evaluation (sudo apt-get install flite)"
      fi
    done
  else
    log "vc-app evaluate not used (eval_tool=$eval_tool): held-out losses only"
  fi
fi

if in_stage 5; then
  export_args=(--checkpoint "$expdir" --out "${bundle:-$expdir/bundle}" --name "$(basename "$expdir")"
               --note "$card_note")
  [ -f "$expdir/eval/heldout.json" ] && export_args+=(--metrics "$expdir/eval/heldout.json")
  for folder in "$expdir"/eval/*/; do
    set=$(basename "$folder")
    for report in "$folder"vc-app*/report.md; do
      [ -f "$report" ] || continue
      kind=$(basename "$(dirname "$report")")
      case "$kind" in
        vc-app) title="similarity and MCD" ;;
        vc-app-text) title="WER of flite-spoken sentences" ;;
        *) title="similarity and MCD, ${kind#vc-app-} target (one-shot)" ;;
      esac
      export_args+=(--report "Held-out speakers, $set: $title=$report")
    done
  done
  export_args+=(--paths-relative-to "$recipe_dir")
  [ "$half" = true ] && export_args+=(--half)
  [ -n "$push_to_hub" ] && export_args+=(--push-to-hub "$push_to_hub")
  log "stage 5: export the newest checkpoint of $expdir -> ${bundle:-$expdir/bundle}"
  $PYTHON -m vc_app.recipe export "${export_args[@]}"
fi
