"""Training guarantees of train-density: an interrupted run resumed to the end equals an
uninterrupted one; a non-finite loss is rolled back; a finished run can be extended."""
import csv
import json

import numpy as np
import pytest
import torch
from conftest import ADK_STAR

from cryostar_engine.cli import main as cli
from cryostar_engine.density import DensityConfig, train_density
from cryostar_engine.train import list_checkpoints

TINY = dict(box=16, hidden=32, residual_layers=1, epochs=2, batch=64, lr=1e-3,
            device="cpu", seed=3, n_clusters=2, n_pcs=1, n_pc_points=2, threads=1)
STEPS_PER_EPOCH = 6      # 384 particles / 64


@pytest.fixture(scope="module")
def z_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("z") / "z.npy"
    np.save(path, np.random.default_rng(1).standard_normal((384, 2)).astype(np.float32))
    return path


def _config(z_path, **changes) -> DensityConfig:
    return DensityConfig(particles=str(ADK_STAR), z_path=str(z_path), **{**TINY, **changes})


def _weights(run_dir) -> dict:
    return torch.load(run_dir / "weights.pt", weights_only=True)["model"]


def _losses(run_dir) -> list[tuple[int, int, float]]:
    with open(run_dir / "losses.csv") as f:
        return [(int(r["step"]), int(r["images_seen"]), float(r["loss"])) for r in csv.DictReader(f)]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, z_path):
    run_dir, finished = train_density(_config(z_path), tmp_path_factory.mktemp("a") / "run")
    assert finished
    return run_dir


@pytest.mark.parametrize("stop, kill_last_checkpoint", [(4, False), (8, True)],
                         ids=["stopped-mid-epoch", "killed-between-checkpoints"])
def test_interrupted_and_resumed_run_equals_the_uninterrupted_one(uninterrupted, z_path, tmp_path,
                                                                  stop, kill_last_checkpoint):
    """Stop after ``stop`` steps; optionally delete the newest checkpoint so that the run resumes
    from the epoch-end checkpoint (step 6) and replays steps 7-8, as after a kill."""
    out = tmp_path / "run"
    run_dir, finished = train_density(_config(z_path, debug_stop_after_steps=stop), out)
    assert not finished and not (out / "manifest.json").exists()
    assert list_checkpoints(out)[-1].name == f"step_{stop:07d}.pt"
    if kill_last_checkpoint:
        list_checkpoints(out)[-1].unlink()
        assert list_checkpoints(out)[-1].name == f"step_{STEPS_PER_EPOCH:07d}.pt"
    assert cli(["train-density", "--out", str(out), "--resume"]) == 0
    full, resumed = _weights(uninterrupted), _weights(out)
    assert all(torch.equal(full[k], resumed[k]) for k in full)
    assert _losses(out) == _losses(uninterrupted)             # replayed steps are not doubled
    assert len(_losses(out)) == 2 * STEPS_PER_EPOCH
    man = json.loads((out / "manifest.json").read_text())
    assert man["images_seen"] == 2 * 384 and man["step"] == 2 * STEPS_PER_EPOCH


def test_a_finished_run_can_be_extended(uninterrupted, tmp_path):
    import shutil
    out = tmp_path / "run"
    shutil.copytree(uninterrupted, out)
    assert cli(["train-density", "--out", str(out), "--resume", "--epochs", "3"]) == 0
    man = json.loads((out / "manifest.json").read_text())
    assert man["images_seen"] == 3 * 384 and man["config"]["epochs"] == 3
    assert [r[0] for r in _losses(out)] == list(range(1, 3 * STEPS_PER_EPOCH + 1))


def test_non_finite_loss_is_rolled_back_and_training_finishes(z_path, tmp_path):
    run_dir, finished = train_density(_config(z_path, debug_nan_at_step=3), tmp_path / "run")
    assert finished
    log = (run_dir / "run.log").read_text()
    assert "non-finite loss at step 3" in log
    assert all(torch.isfinite(v).all() for v in _weights(run_dir).values())
    ckpt = torch.load(list_checkpoints(run_dir)[-1], weights_only=True)
    group = ckpt["optimizer"]["param_groups"][0]
    assert group["lr_peak"] == pytest.approx(0.5e-3)               # halved by the guard, kept
    assert 0 < group["lr"] < group["lr_peak"]                       # by the final decay
    assert 3 not in [r[0] for r in _losses(run_dir)]          # the bad step left no loss row


def test_resume_without_a_run_is_a_clear_error(tmp_path, capsys):
    assert cli(["train-density", "--out", str(tmp_path / "none"), "--resume"]) == 2
    assert "no density run to resume" in capsys.readouterr().err


def test_time_limit_stops_cleanly_and_resume_finishes_the_same_run(uninterrupted, z_path, tmp_path, capsys):
    """--max-minutes: the run stops at the first bookkeeping point past the limit with a
    checkpoint and no outputs; ``--resume`` (which does not inherit the limit) ends it exactly
    as the uninterrupted run."""
    out = tmp_path / "run"
    args = ["train-density", "--particles", str(ADK_STAR), "--z", str(z_path), "--out", str(out),
            "--box", "16", "--hidden", "32", "--residual-layers", "1", "--epochs", "2", "--batch", "64",
            "--lr", "1e-3", "--device", "cpu", "--seed", "3", "--k", "2", "--pcs", "1", "--points", "2",
            "--threads", "1"]
    assert cli(args + ["--max-minutes", "1e-6"]) == 0
    assert "stopped early" in capsys.readouterr().out
    assert not (out / "manifest.json").exists() and list_checkpoints(out)
    assert "time limit of 1e-06 min" in (out / "run.log").read_text()
    assert json.loads((out / "config.json").read_text())["max_minutes"] == 1e-6
    assert cli(["train-density", "--out", str(out), "--resume"]) == 0
    full, resumed = _weights(uninterrupted), _weights(out)
    assert all(torch.equal(full[k], resumed[k]) for k in full)
    assert cli(args[:7] + ["--max-minutes", "0"]) == 2                  # a clear refusal
