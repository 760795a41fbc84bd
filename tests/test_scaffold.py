"""The run-loop scaffold shared by both training stages (cryostar_engine/train/scaffold.py):
the seeded row stream, the clean stops and the checkpoint state."""
import csv
import logging
import time

import numpy as np
import pytest
import torch
from conftest import ADK_STAR

from cryostar_engine.atom.step import fp16_loss_scaler
from cryostar_engine.density import DensityConfig, train_density
from cryostar_engine.train import (DistContext, RowStream, RunScaffold, SkippedSteps,
                                   make_optimizer, open_run)


def _stream(stream: RowStream, images: int, batch: int, across_epochs: bool) -> list[int]:
    """The stream's rows from image 0 to ``images``, read batch after batch."""
    rows, seen = [], 0
    while seen < images:
        got = stream.rows(seen, batch, across_epochs).tolist()
        rows += got
        seen += len(got)
    return rows


@pytest.mark.parametrize("across_epochs", [False, True])
def test_row_stream_is_seeded_and_resumes_mid_epoch(across_epochs):
    n, batch = 10, 4
    rows = _stream(RowStream(n, seed=5), 3 * n, batch, across_epochs)
    for epoch in range(3):                 # every epoch visits every row once
        assert sorted(rows[epoch * n:(epoch + 1) * n]) == list(range(n))
    assert rows[:n] != rows[n:2 * n]       # ... in an order of its own
    assert rows == _stream(RowStream(n, seed=5), 3 * n, batch, across_epochs)   # reproducible
    assert rows != _stream(RowStream(n, seed=6), 3 * n, batch, across_epochs)
    # a fresh stream (a resumed run) started at images_seen = 8 (mid-epoch 0) or 16 (mid-epoch 1)
    # continues with exactly the rows of the uninterrupted one
    for start in (8, 16):
        fresh, seen, resumed = RowStream(n, seed=5), start, []
        while seen < 3 * n:
            got = fresh.rows(seen, batch, across_epochs).tolist()
            resumed += got
            seen += len(got)
        assert resumed == rows[start:]
    last = RowStream(n, seed=5).rows(8, batch, across_epochs)
    assert len(last) == (4 if across_epochs else 2)      # the last batch of an epoch


def _scaffold(run_dir, seed: int = 0, **kw) -> RunScaffold:
    torch.manual_seed(seed)
    model = torch.nn.Linear(3, 2)
    optimizer = make_optimizer(model, 1e-2, 0.0)
    defaults = dict(total_images=40, keep_checkpoints=2, readback_every=2,
                    skipped=SkippedSteps(optimizer))
    return RunScaffold(run_dir, logging.getLogger("test_scaffold"), DistContext(), torch.device("cpu"), model, optimizer,
                       **{**defaults, **kw})


def test_time_budget_and_test_hook_stop_the_run(tmp_path):
    sc = _scaffold(tmp_path, max_minutes=0.02)          # 1.2 s
    sc.start()
    time.sleep(0.1)
    assert sc.should_stop() is None
    time.sleep(1.2)
    assert sc.should_stop(check_time=False) is None     # the clock is looked at on request only
    assert sc.should_stop() == "time"
    assert _scaffold(tmp_path).should_stop() is None    # no budget: never
    sc = _scaffold(tmp_path, stop_after_steps=2)
    sc.advance(4, {"loss": torch.tensor(1.0)}, torch.tensor(True))
    assert sc.should_stop() is None
    sc.advance(4, {"loss": torch.tensor(1.0)}, torch.tensor(True))
    assert sc.should_stop() == "steps" and (sc.step, sc.images_seen) == (2, 8)


def _train(sc: RunScaffold, noise: torch.Generator, steps: int) -> None:
    """A few real optimiser steps (through the loss scaler); the noise and the global RNG are
    both drawn from."""
    for _ in range(steps):
        x = torch.randn(4, 3) + torch.randn(4, 3, generator=noise)
        loss = sc.model(x).pow(2).mean()
        sc.optimizer.zero_grad()
        sc.scaler.scale(loss).backward()
        sc.scaler.step(sc.optimizer)
        sc.scaler.update()
        sc.advance(4, {"loss": loss.detach()}, torch.tensor(True))
        if sc.readback_due():
            sc.read_back()


def test_checkpoint_state_round_trip_continues_the_run_exactly(tmp_path):
    def scaffold(seed):
        noise = torch.Generator().manual_seed(11)
        scaler = fp16_loss_scaler("cpu")
        return _scaffold(tmp_path, seed, scaler=scaler, generators={"noise_rng": noise},
                         global_rng=True), noise, scaler

    full, noise, _ = scaffold(0)
    full.start()
    _train(full, noise, 3)
    full.save()
    full.scaler.update(new_scale=1024.0)      # a loss scale that differs from a fresh scaler's
    full.save()
    _train(full, noise, 3)

    resumed, noise2, scaler2 = scaffold(1)       # other initial weights, fresh RNGs
    state = resumed.resume()
    assert state is not None and (resumed.step, resumed.images_seen) == (3, 12)
    assert scaler2.get_scale() == 1024.0
    resumed.start()
    _train(resumed, noise2, 3)
    assert all(torch.equal(a, b) for a, b in zip(full.model.parameters(), resumed.model.parameters()))
    assert (resumed.step, resumed.images_seen) == (6, 24)
    full.close(), resumed.close()
    with open(tmp_path / "losses.csv") as f:           # replayed steps are not written twice
        assert [int(r["step"]) for r in csv.DictReader(f)] == list(range(1, 7))


def test_open_run_refuses_a_foreign_folder_and_writes_nothing(tmp_path):
    (tmp_path / "mine.txt").write_text("user data")
    wrote = []
    with pytest.raises(Exception, match="not empty and holds no run"):
        open_run(tmp_path, "atom", DistContext(), torch.device("cpu"), resume=False,
                 overwrite=False, write_files=wrote.append)
    assert not wrote and sorted(p.name for p in tmp_path.iterdir()) == ["mine.txt"]
    run_dir, log = open_run(tmp_path / "run", "atom", DistContext(), torch.device("cpu"),
                            resume=False, overwrite=False, write_files=wrote.append)
    assert wrote == [run_dir] and (run_dir / "run.json").is_file() and (run_dir / "run.log").is_file()


def test_density_run_of_a_part_epoch_records_every_step(tmp_path):
    """Stage 2 on the scaffold: 1.5 epochs of 384 particles in batches of 64 are 9 steps, the
    last 3 after the last epoch end; their losses are read back too (they once were dropped)."""
    np.save(tmp_path / "z.npy", np.random.default_rng(1).standard_normal((384, 2)).astype(np.float32))
    config = DensityConfig(particles=str(ADK_STAR), z_path=str(tmp_path / "z.npy"), box=16,
                           hidden=32, residual_layers=1, epochs=1.5, batch=64, device="cpu",
                           seed=3, n_clusters=2, n_pcs=1, n_pc_points=2, threads=1)
    run_dir, finished = train_density(config, tmp_path / "run")
    assert finished
    with open(run_dir / "losses.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["step"]) for r in rows] == list(range(1, 10))
    assert int(rows[-1]["images_seen"]) == 576


def test_a_part_epoch_density_run_counts_the_images_it_really_sees():
    """38 images asked (0.1 × 384) in batches of 16: three steps, 48 images, so 100 % at the end
    (the progress line once said '126% step 3/3, 48/38 images')."""
    from cryostar_engine.density.training import images_to_train
    assert images_to_train(0.1, 384, 16) == 48
    assert images_to_train(2.0, 384, 16) == 768           # whole epochs: exactly epochs × n
    assert images_to_train(1.5, 10, 4) == 10 + 8          # 5 asked → two batches of 4
    assert images_to_train(0.95, 10, 4) == 10             # never more than the epoch holds
