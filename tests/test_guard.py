"""The non-finite-step guard at the end of a run: a run whose networks fail on its last batches
must not end "finished" (exit 0) with untrained or broken weights.

Skipped steps leave the parameters unchanged, so two or more skipped steps at the very end mean
the final networks fail on every batch they were last shown; no applied step at all means
nothing was trained.  Both end in :class:`TrainingDiverged`, which the commands turn into one
line (exit 2) and the removal of the new run folder.
"""
from __future__ import annotations

import mrcfile
import pytest
import starfile
import torch

from cryostar_engine.cli import main
from cryostar_engine.io import read_star_tables
from cryostar_engine.train.guard import SkippedSteps, TrainingDiverged

from conftest import ADK_REF, ADK_STAR


def _guard(last_step=None):
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    return SkippedSteps(opt, last_step=last_step)


def test_a_run_without_an_applied_step_is_diverged():
    guard = _guard(last_step=3)
    guard.skipped(1, float("nan"))
    guard.skipped(2, float("nan"))
    with pytest.raises(TrainingDiverged, match="all 3 steps of this run"):
        guard.skipped(3, float("nan"))


def test_a_run_ending_on_skipped_steps_is_diverged_but_one_bad_batch_is_not():
    guard = _guard()
    for _ in range(10):
        guard.applied()
    guard.skipped(11, float("inf"))
    guard.require_progress()                 # one bad batch at the end: accepted
    guard.skipped(12, float("inf"))
    with pytest.raises(TrainingDiverged, match="last 2 steps"):
        guard.require_progress()


def test_a_good_run_passes():
    guard = _guard(last_step=2)
    guard.applied()
    guard.applied()
    guard.require_progress()


@pytest.mark.parametrize("stage", ["train-atom", "train-density"])
def test_a_short_run_with_every_update_non_finite_ends_in_one_line(tmp_path, capsys, stage):
    """--lr 1e30 on 5 steps: the first update ruins the weights and the other four are skipped
    (fewer than the guard's five in a row).  Before the end-of-run check this exited 0 with
    status 'finished'."""
    optics, parts = read_star_tables(ADK_STAR)
    mrcfile.write(tmp_path / "particles.mrcs", mrcfile.read(ADK_STAR.parent / "particles.mrcs")[:40])
    starfile.write({"optics": optics, "particles": parts.iloc[:40]}, tmp_path / "p.star")
    common = ["--particles", str(tmp_path / "p.star"), "--datadir", str(tmp_path),
              "--out", str(tmp_path / "out"), "--epochs", "1", "--batch", "8", "--lr", "1e30",
              "--threads", "1", "--device", "cpu"]
    if stage == "train-atom":
        argv = ["train-atom", *common, "--model", str(ADK_REF), "--box", "24", "--low-pass", "8"]
    else:
        import numpy as np
        np.save(tmp_path / "z.npy", np.random.default_rng(0).standard_normal((40, 2)).astype("f4"))
        argv = ["train-density", *common, "--z", str(tmp_path / "z.npy"), "--box", "16",
                "--hidden", "16"]
    status = main(argv)
    err = capsys.readouterr().err
    assert status == 2, err
    lines = [ln for ln in err.splitlines() if ln.startswith("cryostar-engine: error:")]
    assert len(lines) == 1 and "training diverged" in lines[0], err
    assert "Traceback" not in err
    assert not (tmp_path / "out").exists()
