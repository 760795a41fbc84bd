#!/usr/bin/env bash
# Every GPU check and benchmark of the project in one script, sized to finish in under 8 minutes
# on one H100, so that a lent device machine is used at once (device tool: run it with
# carry [".whl"] and timeout_s 540).
#
# Prepare here, once (the device machine has PyTorch but not mrcfile/starfile/biopython and
# cannot fetch anything):
#   echo /.whl/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#       --implementation cp --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
#       -d .whl mrcfile starfile biopython emtable
#   (mrcfile and starfile are pure Python: add `--platform any` if pip finds none)
# Then on the device:  bash benchmarks/gpu_check.sh
#
# What it checks (each step prints one block; the JSON/CSV land in $OUT, default ./gpu_out):
#   1. the device, torch and its CUDA build, bf16 support;
#   2. stage 1 on the bundled AdK set on CUDA with --precision auto (bf16 on an H100), fp16
#      (the dynamic loss scale) and fp32: finished, wall time, |corr(PC1, true frame)|;
#   3. analyze on CUDA (decoding);
#   4. stage 2 on CUDA (bf16), a short run, then eval-density;
#   5. the throughput grid (images/s and peak memory of a full training step, seconds per
#      volume) against the targets in benchmarks/throughput.py.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu_out}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
export PYTHONUNBUFFERED=1
if compgen -G ".whl/*.whl" > /dev/null; then
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl && export PYTHONPATH="/tmp/site:$PWD${PYTHONPATH:+:$PYTHONPATH}"
else
    export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
fi
ENGINE="$PY -m cryostar_engine"
DATA=data/adk_sim48
STEP() { echo; echo "=== $* ($(date +%T))"; }

STEP "1. device"
nvidia-smi --query-gpu=name,memory.total,memory.used,driver_version --format=csv
$PY - <<'EOF'
import torch
print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available())
if torch.cuda.is_available():
    p = torch.cuda.get_device_properties(0)
    print(p.name, f"{p.total_memory / 2**30:.1f} GiB", "cc", f"{p.major}.{p.minor}",
          "bf16", torch.cuda.is_bf16_supported())
EOF

score() {  # |corr(PC1 of z, true frame)| of a stage-1 run
    $PY - "$1" <<'EOF'
import sys, numpy as np
z = np.load(f"{sys.argv[1]}/z.npy"); gt = np.load("data/adk_sim48/gt_frame.npy").astype(float)
zc = z - z.mean(0); pc1 = zc @ np.linalg.svd(zc, full_matrices=False)[2][0]
print(f"{sys.argv[1]}: |corr(PC1, true frame)| = {abs(np.corrcoef(pc1, gt)[0, 1]):.3f}")
EOF
}

for prec in auto fp16 fp32; do
    STEP "2. stage 1 on CUDA, precision $prec"
    start=$(date +%s)
    $ENGINE train-atom --particles $DATA/particles.star --model data/adk_models/adk_ref_frame048.pdb \
        --map $DATA/ideal_map_frame048.mrc \
        --out "$OUT/atom_$prec" --overwrite --device cuda --precision $prec --epochs 120 \
        2>&1 | tail -n 5
    echo "wall $(( $(date +%s) - start )) s"
    score "$OUT/atom_$prec"
done

STEP "3. analyze on CUDA (decodes the k-means and PC models)"
$ENGINE analyze --run "$OUT/atom_auto" --device cuda 2>&1 | tail -n 4

STEP "4. stage 2 on CUDA"
start=$(date +%s)
$ENGINE train-density --particles $DATA/particles.star --z "$OUT/atom_auto/z.npy" \
    --out "$OUT/density" --overwrite --device cuda --epochs 20 2>&1 | tail -n 5
echo "wall $(( $(date +%s) - start )) s"

STEP "5. throughput grid"
timeout 240 $PY benchmarks/throughput.py --device cuda --seconds 3 \
    --s1-boxes 64 128 --s1-beads 214 2000 --s2-boxes 64 128 --volumes 128 \
    --out "$OUT/throughput_cuda.json" 2>&1 | tail -n 30
STEP "done"
