"""train-density on two processes (torchrun, DistributedDataParallel, gloo on the CPU) trains
like one process with the same global batch, including a ``--resume`` under torchrun.

Why they agree: both see the same rows at every step (the global batch of the seeded per-epoch
permutation, split between the ranks), each rank's loss is its share of the *global-batch*
mean (``fourier_mse(..., n_images=global batch) × world size``, so uneven shares weigh right),
and DDP averages the gradients.  What differs is float summation order: the gradient is a sum
of two half-batch sums instead of one sum, ~1e-7 relative per step in fp32.  AdamW divides by
√v, but such differences stay far below 1e-5 in the weights after 21 steps; the test runs in
fp32 because bf16 autocast would round two slightly different weights to different bf16 values
now and then (2⁻⁸ relative), which is real but not what this test is about.
Measured: max |Δweight| 6e-8, loss rows equal at the 6 significant digits of losses.csv.
Tolerances: 1e-5 absolute on the weights, 2e-5 relative on the losses (csv rounding).  They
discriminate: one process with a global batch of 56 instead of 55 ends > 1e-3 away.

Batch 55 on 384 particles makes uneven shares (28 + 27) and a 54-image last batch per epoch.
"""
import csv
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import ADK_STAR, REPO

from cryostar_engine.density import DensityConfig, build_model, train_density

# a constant rate: the distributed run is lengthened from 2 to 3 epochs on resume, and a final
# decay would follow its first length there (one process trains 3 epochs straight)
SETTINGS = dict(box=16, hidden=32, residual_layers=1, batch=55, lr=1e-3, lr_decay_fraction=0.0,
                device="cpu", seed=3, threads=1, precision="fp32")
CLI = ["--box", "16", "--hidden", "32", "--residual-layers", "1", "--batch", "55", "--lr", "1e-3",
       "--lr-decay-fraction", "0", "--device", "cpu", "--seed", "3", "--threads", "1",
       "--precision", "fp32"]
STEPS_PER_EPOCH = 7      # ceil(384 / 55)
TOL_WEIGHTS = 1e-5       # absolute; measured 6e-8 (weights are ~0.1-1 and moved by ~0.9)
TOL_LOSS = 2e-5          # relative; measured 0 at the 6 significant digits of losses.csv


def _torchrun(*args):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "cryostar_engine", "train-density", *args]
    result = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300,
                            env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def _max_diff(a: dict, b: dict) -> float:
    return max(float((a[k] - b[k]).abs().max()) for k in a)


def _losses(run_dir):
    with open(run_dir / "losses.csv") as f:
        return [(int(r["step"]), int(r["images_seen"]), float(r["loss"])) for r in csv.DictReader(f)]


@pytest.fixture(scope="module")
def z_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("z") / "z.npy"
    np.save(path, np.random.default_rng(1).standard_normal((384, 2)).astype(np.float32))
    return path


def test_two_processes_train_like_one_with_the_same_global_batch(tmp_path, z_path):
    single, _ = train_density(DensityConfig(particles=str(ADK_STAR), z_path=str(z_path), epochs=3,
                                            **SETTINGS), tmp_path / "single")
    ddp = tmp_path / "ddp"
    _torchrun("--particles", str(ADK_STAR), "--z", str(z_path), "--out", str(ddp), "--epochs", "2",
              *CLI)
    assert (ddp / "weights.pt").is_file()
    _torchrun("--out", str(ddp), "--resume", "--epochs", "3")      # continue under torchrun

    a = torch.load(single / "weights.pt", weights_only=True)["model"]
    b = torch.load(ddp / "weights.pt", weights_only=True)["model"]
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(b[name], a[name], rtol=0, atol=TOL_WEIGHTS, msg=name)
    start = build_model(DensityConfig(particles="", z_path="", **SETTINGS), 16, 2).state_dict()
    assert _max_diff(a, start) > 0.5          # the runs did train (weights moved by ~0.9)

    # the tolerance discriminates: one process with a global batch of 56 instead of 55
    other, _ = train_density(DensityConfig(particles=str(ADK_STAR), z_path=str(z_path), epochs=3,
                                           **{**SETTINGS, "batch": 56}), tmp_path / "b56")
    assert _max_diff(torch.load(other / "weights.pt", weights_only=True)["model"], a) > 100 * TOL_WEIGHTS

    rows_a, rows_b = _losses(single), _losses(ddp)
    assert [r[:2] for r in rows_b] == [r[:2] for r in rows_a]     # one row per step, in order
    assert len(rows_a) == 3 * STEPS_PER_EPOCH and rows_a[-1][1] == 3 * 384
    np.testing.assert_allclose([r[2] for r in rows_b], [r[2] for r in rows_a], rtol=TOL_LOSS)
    log = (ddp / "run.log").read_text()
    assert "× 2 processes" in log and "Traceback" not in log
    assert not list(ddp.glob("*rank*"))                          # only rank 0 wrote files
