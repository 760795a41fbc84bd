"""The run-loop bookkeeping shared by both training stages (stage 1, atom; stage 2, density).

What a step *is* stays with each stage; around it, both need the same things, owned here:

* :func:`open_run`: rank 0 creates, reopens (``--resume``) or replaces (``--overwrite``) the run
  folder and writes the stage's first files; the other ranks learn whether that worked.
* :class:`RowStream`: the seeded data order.  Epoch ``e`` visits the particle rows in the
  permutation drawn from ``(seed, e)`` alone, so the rows at any ``images_seen`` are a pure
  function of the seed: a run resumed from a checkpoint continues with exactly the batches it
  would have had.
* :class:`RunScaffold`: the counters (``step``, ``images_seen``), the checkpoint state common to
  both stages (model, optimiser, loss scale, RNG states, counters, engine version), the
  read-back of the steps' device-side results (:class:`~cryostar_engine.train.guard.PendingSteps`),
  the clean stops (``--max-minutes``, the test stop hook) and the progress lines and
  ``losses.csv`` (:class:`~cryostar_engine.train.progress.Progress`).

Only rank 0 writes (folder, log, csv, checkpoints); every rank keeps the counters.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
import torch.distributed as dist

from .. import __version__
from ..errors import InputError
from .checkpoint import load_latest_checkpoint, save_checkpoint
from .distributed import DistContext
from .guard import PendingSteps, SkippedSteps
from .optim import ensure_fused
from .progress import Progress, run_logger
from .rundir import prepare_run_dir

__all__ = ["open_run", "RowStream", "RunScaffold"]


def open_run(out, kind: str, ctx: DistContext, device: torch.device, resume: bool,
             overwrite: bool, write_files: Callable[[Path], None]) -> tuple[Path, logging.Logger]:
    """Prepare the run folder ``out`` of a ``kind`` run (:func:`~.rundir.prepare_run_dir`) and
    return it with the run's logger (``run.log`` on rank 0, a quiet worker logger elsewhere).

    ``write_files(run_dir)`` runs on rank 0 once the folder exists (``config.json`` etc.); an
    :class:`InputError` from either step is raised on every rank, so all of them stop.
    """
    error = None
    if ctx.is_main:
        try:
            write_files(prepare_run_dir(out, kind, resume=resume, overwrite=overwrite))
        except InputError as err:
            error = err
    if not ctx.broadcast_flag(error is None, device):
        raise error if error is not None else InputError(f"{out}: the run folder could not be "
                                                         "prepared (see rank 0's message)")
    ctx.barrier()
    run_dir = Path(out)
    log = run_logger(run_dir) if ctx.is_main else logging.getLogger("cryostar_engine.worker")
    return run_dir, log


@dataclass
class RowStream:
    """The endless stream of particle rows: one seeded permutation of ``range(n)`` per epoch.

    ``device``: where the permutations are kept (the training device when the images are
    cached there, so that indexing needs no transfer); None = the CPU.  The permutation in use
    is cached (one draw per epoch).
    """

    n: int
    seed: int
    device: torch.device | None = None
    _cached: tuple[int, torch.Tensor] | None = field(default=None, repr=False)

    def permutation(self, epoch: int) -> torch.Tensor:
        """``(n,)`` int64: the row order of ``epoch``, a function of ``(seed, epoch)`` only."""
        cached = self._cached
        if cached is None or cached[0] != epoch:
            gen = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            perm = torch.randperm(self.n, generator=gen)
            cached = (epoch, perm if self.device is None else perm.to(self.device))
            self._cached = cached
        return cached[1]

    def rows(self, images_seen: int, batch: int, across_epochs: bool = False) -> torch.Tensor:
        """``(≤ batch,)`` int64: the rows after the first ``images_seen`` of the stream.

        ``across_epochs``: always ``batch`` rows, the last batch of an epoch continuing into the
        next; otherwise a batch ends at its epoch's end (and may be smaller).
        """
        epoch, offset = divmod(images_seen, self.n)
        parts = [self.permutation(epoch)[offset:offset + batch]]
        got = len(parts[0])
        while across_epochs and got < batch:
            epoch += 1
            parts.append(self.permutation(epoch)[:batch - got])
            got += len(parts[-1])
        return parts[0] if len(parts) == 1 else torch.cat(parts)


@dataclass
class RunScaffold:
    """Counters, checkpoints, read-backs, stops and progress of one training run (one process).

    total_images : the run ends when ``images_seen`` reaches it.
    readback_every : steps between read-backs of the pending step results (one transfer).
    skipped : the stage's non-finite-step guard (its advice names the stage's settings).
    mean_over_ranks : under ``torchrun``, average the ranks' loss shares at a read-back (every
        rank must then read back at the same step).
    max_minutes : the time budget (``--max-minutes``); None = none.
    stop_after_steps : the test hook that stops a run as if it were killed; None = none.
    scaler : the fp16 loss scaler, checkpointed as ``loss_scaler``; None without fp16.
    generators : RNGs checkpointed under their names (e.g. stage 1's ``noise_rng``).
    global_rng : also checkpoint torch's global RNG states (``rng_torch``, ``rng_cuda``).
    step_images : images of a full step (the global batch), for the progress line's step total.
    """

    run_dir: Path
    log: logging.Logger
    ctx: DistContext
    device: torch.device
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    total_images: int
    keep_checkpoints: int
    readback_every: int
    skipped: SkippedSteps
    mean_over_ranks: bool = False
    max_minutes: float | None = None
    stop_after_steps: int | None = None
    scaler: torch.amp.GradScaler | None = None
    generators: dict[str, torch.Generator] = field(default_factory=dict)
    global_rng: bool = False
    step_images: int = 0
    step: int = 0
    images_seen: int = 0

    def __post_init__(self):
        self.pending = PendingSteps(self.skipped)
        self.progress: Progress | None = None
        self.t0 = self.last_save = time.monotonic()

    # -- counters and cadence -----------------------------------------------------------------
    @property
    def finished(self) -> bool:
        return self.images_seen >= self.total_images

    @property
    def elapsed_s(self) -> float:
        return time.monotonic() - self.t0

    @property
    def seconds_since_save(self) -> float:
        return time.monotonic() - self.last_save

    def readback_due(self) -> bool:
        return self.step % self.readback_every == 0

    def advance(self, images: int, losses: dict, ok: torch.Tensor) -> None:
        """Count one step of ``images`` images; keep its 0-d ``losses`` and ``ok`` flag pending."""
        self.step += 1
        self.images_seen += images
        self.pending.add(self.step, images, losses, ok)

    # -- progress and read-back -----------------------------------------------------------------
    def start(self) -> None:
        """Start the clock (time budget) and, on rank 0, the progress lines and ``losses.csv``
        (rows after the current step, written before a kill, are dropped: they are replayed)."""
        self.t0 = self.last_save = time.monotonic()
        if self.ctx.is_main:
            self.progress = Progress(self.run_dir, self.total_images, images_done=self.images_seen,
                                     step_images=self.step_images)
            self.progress.truncate_after(self.step)

    def read_back(self, collective: bool = True) -> None:
        """Read the pending steps back (losses to ``losses.csv``, skipped steps to the guard).
        ``collective=False`` (e.g. on Ctrl-C): rank 0 records its own share's losses."""
        reduce = self._mean if self.mean_over_ranks and self.ctx.enabled and collective else None
        self.pending.read_back(self.progress, reduce=reduce)

    def _mean(self, t: torch.Tensor) -> torch.Tensor:
        dist.all_reduce(t)
        return t / self.ctx.world_size

    def close(self) -> None:
        if self.progress is not None:
            self.progress.close()

    # -- clean stops ----------------------------------------------------------------------------
    def should_stop(self, check_time: bool = True) -> str | None:
        """``"steps"`` once the test hook's step count is reached; ``"time"`` past the time
        budget, looked at only when ``check_time`` (rank 0's clock is broadcast: under
        ``torchrun`` every rank must ask at the same step)."""
        if self.stop_after_steps is not None and self.step >= self.stop_after_steps:
            return "steps"
        if self.max_minutes is not None and check_time:
            late = self.elapsed_s > 60 * self.max_minutes
            if self.ctx.broadcast_flag(late, self.device):
                return "time"
        return None

    def log_stop(self, reason: str) -> None:
        self.log.info("stopping at step %d (%s); continue with --resume", self.step,
                      f"time limit of {self.max_minutes:g} min" if reason == "time"
                      else f"test stop after {self.stop_after_steps} steps")

    # -- checkpoints ----------------------------------------------------------------------------
    def state(self) -> dict:
        """The checkpoint entries common to both stages (tensors, numbers, dicts only)."""
        state = {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                 "step": self.step, "images_seen": self.images_seen,
                 "loss_scaler": self.scaler.state_dict() if self.scaler is not None else None,
                 "engine_version": __version__,
                 **{name: gen.get_state() for name, gen in self.generators.items()}}
        if self.global_rng:
            state["rng_torch"] = torch.get_rng_state()
            if torch.cuda.is_available():
                state["rng_cuda"] = torch.cuda.get_rng_state_all()
        return state

    def save(self, **extra) -> Path | None:
        """Write a checkpoint of :meth:`state` plus the stage's ``extra`` entries (rank 0; None
        on the other ranks).  Every rank restarts its :attr:`seconds_since_save`."""
        self.last_save = time.monotonic()
        if not self.ctx.is_main:
            return None
        return save_checkpoint(self.run_dir, {**self.state(), **extra}, self.step,
                               keep=self.keep_checkpoints)

    def restore(self, state: dict) -> None:
        """Continue from a checkpoint written by :meth:`save`."""
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        ensure_fused(self.optimizer)
        if self.scaler is not None and state.get("loss_scaler"):
            self.scaler.load_state_dict(state["loss_scaler"])
        for name, gen in self.generators.items():
            gen.set_state(state[name].cpu())
        if self.global_rng:
            torch.set_rng_state(state["rng_torch"].cpu())
            if "rng_cuda" in state and torch.cuda.is_available():
                torch.cuda.set_rng_state_all([s.cpu() for s in state["rng_cuda"]])
        self.step, self.images_seen = int(state["step"]), int(state["images_seen"])

    def resume(self) -> dict | None:
        """Restore the newest readable checkpoint of the run; return it (None when there is
        none: the run starts from step 0)."""
        state = load_latest_checkpoint(self.run_dir, map_location=self.device, resuming=True)
        if state is not None:
            self.restore(state)
        return state
