#!/usr/bin/env bash
# Every GPU check and benchmark of the project in one script, sized to finish in under 8 minutes
# on one H100, so that a lent device machine is used at once (device tool: run it with
# carry [".whl"] and timeout_s 540).  Writes one JSON: $OUT/gpu_check.json (OUT default ./gpu_out).
#
# Prepare here, once (the device machine has PyTorch but not mrcfile/starfile/biopython and
# cannot fetch anything):
#   echo /.whl/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#       --implementation cp --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
#       -d .whl mrcfile starfile biopython emtable
#   (mrcfile and starfile are pure Python: add `--platform any` if pip finds none)
# Then on the device:  bash benchmarks/gpu_check.sh
# Dry run of the plumbing on a CPU (tiny sizes, the same commands with --device cpu; no figure
# means anything):  GPU_CHECK_CPU=1 PYTHON=.venv/bin/python bash benchmarks/gpu_check.sh
#
# What it checks (each step prints one block; logs and JSON land in $OUT):
#   1. the device, torch and its CUDA build, bf16 support, the GPU count;
#   2. stage 1 on the bundled AdK set, a few hundred steps on CUDA: --precision auto (bf16
#      autocast, the particle stack resident on the GPU as fp16), fp16 (dynamic loss scale),
#      and streamed (--max-cache-gb 0: every batch read from the memory-mapped stack, read
#      ahead into pinned memory): wall time, images/s, the memory estimate against the measured
#      peak (both from the run's log), |corr(PC1, true frame)|;
#   3. eval-atom (decode 10 latents) and analyze;
#   4. stage 2 on CUDA (bf16), a few hundred steps, then eval-density (3 volumes);
#   5. the 2-process NCCL run (torchrun --nproc_per_node 2) when two GPUs are present;
#   6. benchmarks/throughput.py --device cuda: stage 1 at box 128 with 2,000 beads (the target:
#      ≥ 5,000 images/s on an H100) and on packed protein–RNA complexes of 2,000, 5,000 and 20,000 beads
#      with the per-chain vs batched relaxation (issue 17), the memory estimate against
#      max_memory_allocated per case; stage 2 at box 128; a 128³ volume.
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
DATA=data/adk_sim48                      # 384 particles, 48 px: one epoch = 6 steps of 64
MODEL=data/adk_models/adk_ref_frame048.pdb
if [ "${GPU_CHECK_CPU:-0}" = 1 ]; then   # plumbing only
    DEV=cpu; ATOM_EPOCHS=1; DENS_EPOCHS=0.5; THREADS="--threads 1"
    TP_ARGS="--seconds 0.2 --warmup 1 --min-steps 1 --batch1 8 --s1-boxes 64 --s1-beads 500"
    TP_COMPLEX="--s1-beads 1000"; TP_S2="--s2-boxes 32 --volumes 32"; export OMP_NUM_THREADS=1
else
    DEV=cuda; ATOM_EPOCHS=50; DENS_EPOCHS=10; THREADS=""       # 300 and ~240 steps
    TP_ARGS="--seconds 3 --s1-boxes 128 --s1-beads 214 2000"
    TP_COMPLEX="--s1-beads 2000 5000 20000"; TP_S2="--s2-boxes 128 --volumes 128"
fi
NGPU=$($PY -c "import torch; print(torch.cuda.device_count())" 2>/dev/null || echo 0)
STEP() { echo; echo "=== $* ($(date +%T))"; }
T0=$(date +%s)
timed() {  # timed NAME cmd...: run, log to $OUT/NAME.log, record the wall time
    local name=$1; shift
    local start=$(date +%s)
    "$@" > "$OUT/$name.log" 2>&1
    local rc=$?
    echo "{\"name\": \"$name\", \"rc\": $rc, \"wall_s\": $(( $(date +%s) - start ))}" >> "$OUT/steps.jsonl"
    tail -n 4 "$OUT/$name.log"
    echo "rc $rc, wall $(( $(date +%s) - start )) s"
}
rm -f "$OUT/steps.jsonl"

STEP "1. device"
nvidia-smi --query-gpu=name,memory.total,memory.used,driver_version --format=csv 2>/dev/null
$PY - <<'EOF' | tee "$OUT/device.json"
import json, torch
d = {"torch": torch.__version__, "cuda": torch.version.cuda, "available": torch.cuda.is_available(),
     "gpus": torch.cuda.device_count()}
if torch.cuda.is_available():
    p = torch.cuda.get_device_properties(0)
    d.update(name=p.name, memory_GiB=round(p.total_memory / 2**30, 1), cc=f"{p.major}.{p.minor}",
             bf16=torch.cuda.is_bf16_supported())
print(json.dumps(d))
EOF

ATOM="train-atom --particles $DATA/particles.star --model $MODEL --map $DATA/ideal_map_frame048.mrc \
      --device $DEV --epochs $ATOM_EPOCHS $THREADS --overwrite"
STEP "2a. stage 1, precision auto (bf16, resident fp16 stack)"
timed atom_auto $ENGINE $ATOM --out "$OUT/atom_auto" --precision auto
STEP "2b. stage 1, fp16 (dynamic loss scale)"
timed atom_fp16 $ENGINE $ATOM --out "$OUT/atom_fp16" --precision fp16
STEP "2c. stage 1, streamed from the memory-mapped stack (pinned read-ahead)"
timed atom_stream $ENGINE $ATOM --out "$OUT/atom_stream" --precision auto --max-cache-gb 0

STEP "3. eval-atom (10 latents) and analyze"
$PY -c "import numpy as np; np.save('$OUT/z10.npy', np.load('$OUT/atom_auto/z.npy')[:10])"
timed eval_atom $ENGINE eval-atom --run "$OUT/atom_auto" --z "$OUT/z10.npy" --out "$OUT/z10.pdb"
timed analyze $ENGINE analyze --run "$OUT/atom_auto" --device $DEV --no-umap

STEP "4. stage 2 (bf16) and eval-density (3 volumes)"
timed density $ENGINE train-density --particles $DATA/particles.star --z "$OUT/atom_auto/z.npy" \
    --out "$OUT/density" --overwrite --device $DEV --epochs $DENS_EPOCHS $THREADS
$PY -c "import numpy as np; np.save('$OUT/z3.npy', np.load('$OUT/atom_auto/z.npy')[:3])"
timed eval_density $ENGINE eval-density --run "$OUT/density" --z "$OUT/z3.npy" --out "$OUT/volumes" \
    --device $DEV --overwrite

STEP "5. two processes (NCCL) when two GPUs are present ($NGPU GPUs)"
if [ "$NGPU" -ge 2 ]; then
    timed atom_nccl $PY -m torch.distributed.run --standalone --nproc_per_node=2 -m cryostar_engine \
        $ATOM --out "$OUT/atom_nccl" --precision auto
else
    echo "skipped: $NGPU GPU(s)"
fi

STEP "6. throughput (stage 1 at box 128: target ≥ 5,000 images/s at 2,000 beads on an H100)"
timed throughput timeout 150 $PY benchmarks/throughput.py --device $DEV $TP_ARGS $TP_S2 \
    --out "$OUT/throughput_cuda.json"
timed throughput_complex timeout 200 $PY benchmarks/throughput.py --device $DEV $TP_ARGS \
    --model complex --en-compare $TP_COMPLEX --s2-boxes --volumes --out "$OUT/throughput_complex.json"

STEP "7. summary → $OUT/gpu_check.json"
$PY - "$OUT" "$DATA" "$(( $(date +%s) - T0 ))" <<'EOF'
import json, re, sys
from pathlib import Path
import numpy as np
out, data, total = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
res = {"device": json.loads((out / "device.json").read_text() or "{}"), "total_wall_s": total,
       "steps": [json.loads(l) for l in (out / "steps.jsonl").read_text().splitlines()]}
gt = np.load(data / "gt_frame.npy").astype(float)

def atom_run(name):
    log = (out / f"{name}.log").read_text(errors="replace") if (out / f"{name}.log").is_file() else ""
    r = {}
    m = re.search(r"finished (\d+) steps in ([\d.]+) s \((\d+) images/s\)", log)
    if m:
        r.update(steps=int(m.group(1)), train_s=float(m.group(2)), images_per_s=float(m.group(3)))
    m = re.search(r"estimated (?:GPU )?memory per step: ([\d.]+) GiB", log)
    if m:
        r["estimate_GiB"] = float(m.group(1))
    m = re.search(r"peak GPU memory: ([\d.]+) GiB", log)
    if m:
        r["peak_GiB"] = float(m.group(1))
        if "estimate_GiB" in r:
            r["estimate_over_peak"] = r["estimate_GiB"] / r["peak_GiB"]
    z = out / name / "z.npy"
    if z.is_file():
        z = np.load(z); zc = z - z.mean(0)
        pc1 = zc @ np.linalg.svd(zc, full_matrices=False)[2][0]
        r["abs_corr_pc1"] = abs(float(np.corrcoef(pc1, gt)[0, 1]))
    return r

res["stage1"] = {n: atom_run(n) for n in ("atom_auto", "atom_fp16", "atom_stream", "atom_nccl")
                 if (out / f"{n}.log").is_file()}
res["outputs"] = {"eval_atom_pdb": (out / "z10.pdb").is_file(),
                  "eval_density_volumes": len(list((out / "volumes").glob("vol_*.mrc")))
                  if (out / "volumes").is_dir() else 0}
for key in ("throughput_cuda", "throughput_complex"):
    f = out / f"{key}.json"
    if f.is_file():
        res[key] = json.loads(f.read_text())["rows"]
s1 = [r for r in res.get("throughput_cuda", []) if r["kind"] == "stage1" and r["box"] == 128
      and r.get("beads") == 2000]
if s1:
    res["target_stage1_2000_beads_128px"] = {"images_per_s": s1[0]["images_per_s"], "target": 5000,
                                             "met": s1[0]["images_per_s"] >= 5000}
(out / "gpu_check.json").write_text(json.dumps(res, indent=2))
print(json.dumps({k: v for k, v in res.items() if not k.startswith("throughput")}, indent=1)[:4000])
EOF
STEP "done in $(( $(date +%s) - T0 )) s"
