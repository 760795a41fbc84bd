"""A training run killed at a random point and resumed ends with the same z as an uninterrupted
run (CPU, fixed seed, one thread).

Why exact: the data order is a pure function of (seed, step), the reparameterisation noise comes
from a generator whose state is checkpointed with the model and the optimiser, and the resumed
run replays the steps after the last checkpoint with the same inputs.  The tolerance (1e-5)
only absorbs float32 rounding in case a library picks another kernel.
"""
import json
import os
import random
import signal
import subprocess
import sys
import time

import numpy as np

from cryostar_engine.cli import main

from conftest import ADK_REF, ADK_STAR, REPO

ARGS = ["train-atom", "--particles", str(ADK_STAR), "--model", str(ADK_REF), "--epochs", "12",
        "--lr", "1e-3", "--low-pass", "6", "--seed", "3", "--threads", "1", "--checkpoint-every", "10",
        "--box", "32"]


def test_kill_at_a_random_point_then_resume(tmp_path):
    reference = tmp_path / "uninterrupted"
    assert main(ARGS + ["--out", str(reference)]) == 0

    run = tmp_path / "killed"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, "-m", "cryostar_engine", *ARGS, "--out", str(run)],
                            cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and len(list((run / "checkpoints").glob("step_*.pt"))) < 2:
        time.sleep(0.05)
    time.sleep(random.uniform(0.0, 1.0))
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    status = json.loads((run / "manifest.json").read_text())["status"] if (run / "manifest.json").exists() else None
    assert status != "finished", "the run ended before it could be killed; lengthen it"

    assert main(["train-atom", "--out", str(run), "--resume"]) == 0
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["status"] == "finished"
    np.testing.assert_allclose(np.load(run / "z.npy"), np.load(reference / "z.npy"), atol=1e-5)
    steps = [int(line.split(",")[0]) for line in (run / "losses.csv").read_text().splitlines()[1:]]
    assert steps == sorted(set(steps)) and steps[-1] == manifest["step"]


def test_resume_without_a_run_is_refused(tmp_path, capsys):
    assert main(["train-atom", "--out", str(tmp_path / "none"), "--resume"]) == 2
    assert "no run to resume" in capsys.readouterr().err


def test_micro_batches_give_the_same_step(tmp_path):
    """Gradient accumulation (the out-of-memory back-off) reproduces the full-batch run closely.
    The elastic-network relaxation then sees half-batches, so agreement is not exact."""
    args = ARGS[:]
    args[args.index("12")] = "2"            # 2 epochs
    full, split = tmp_path / "full", tmp_path / "split"
    assert main(args + ["--out", str(full), "--en-keep-ratio", "1.0"]) == 0
    assert main(args + ["--out", str(split), "--en-keep-ratio", "1.0", "--micro-batches", "4"]) == 0
    np.testing.assert_allclose(np.load(split / "z.npy"), np.load(full / "z.npy"), atol=1e-4)
