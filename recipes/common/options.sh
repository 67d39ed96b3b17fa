# The options every recipe shares, with their defaults (sourced by run.sh after its own options; run.sh
# --help lists both blocks). A recipe's own options (its corpus, n_unseen, card_note) stay in its run.sh.
stage=0                 # first stage to run
stop_stage=5            # last stage to run
data=$DATA_DIR          # manifests
feats=$FEATS_DIR        # feature cache
exp=$EXP_DIR            # experiments
config=conf/adain.yaml  # training config: conf/adain.yaml, conf/adain_adv.yaml, conf/adain_vq.yaml
tag=""                  # experiment name (default: the config's name)
seed=0                  # seed of the speaker split and of evaluation pairs
unseen=""               # held-out speakers by name: A,B,C (overrides n_unseen)
cross_corpus=""         # speakers of other recordings, held out too and evaluated as their own set: A,B,...
heldout_sets=""         # JSON file of named held-out sets (e.g. lists/heldout-sets.json): all held out, each evaluated
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
target_clips="3 1"      # vc-app evaluate: target clips per pair, each count its own evaluation (1: one-shot)
evaluate_args=""        # extra arguments for vc-app evaluate
text_pairs=true         # also measure WER on flite-spoken sentences converted to the unseen voices (needs flite)
bundle=""               # export folder (default: EXP/TAG/bundle)
half=false              # export float16 weights
push_to_hub=""          # Hugging Face repo id to upload the bundle to
