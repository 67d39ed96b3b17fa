# Paths of a recipe, in one place, shared by every recipe (sourced first by its run.sh). Each can be
# overridden from the environment (or, for the data, features and experiment folders, with run.sh
# --data / --feats / --exp).
recipe_dir=$(cd "$(dirname "$0")" && pwd)  # the recipe's own folder (the run.sh that sources this)
repo_root=$(cd "$recipe_dir/../.." && pwd)

# The Python with vc_app's dependencies: $PYTHON, else the repository's .venv, else python3.
if [ -z "${PYTHON:-}" ]; then
  if [ -x "$repo_root/.venv/bin/python" ]; then PYTHON=$repo_root/.venv/bin/python; else PYTHON=python3; fi
fi
export PYTHON  # local/*.sh and other child scripts run it too
export PYTHONPATH=$repo_root${PYTHONPATH:+:$PYTHONPATH}  # the vc_app of this checkout

DATA_DIR=${DATA_DIR:-$recipe_dir/data}        # corpus list and train/valid/unseen manifests
FEATS_DIR=${FEATS_DIR:-$recipe_dir/exp/feats} # mel cache (per-utterance files + one pack per split)
EXP_DIR=${EXP_DIR:-$recipe_dir/exp}           # one folder per experiment: checkpoints, logs, eval, bundle
