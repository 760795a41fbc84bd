"""Training the density generator with fixed latents (spec §4.3–4.4), resumable, on one or
several processes.

One step: a mini-batch of particles (star rows in a per-epoch shuffled order) → centred,
normalised transforms on the half-disc → CTF · F(Rᵀk₂, z) → Fourier MSE → AdamW
(:mod:`~cryostar_engine.density.step`; no host–device synchronisation inside it).
The schedule counts *images seen* (``epochs × N``).  The order of epoch ``e`` is a permutation
drawn from ``(seed, e)`` alone, so a run resumed from ``images_seen`` continues with exactly
the batches it would have had.

Bookkeeping every ``guard_interval_steps`` steps (and at every epoch end, stop and interrupt):
the losses and finiteness flags of the steps since the last time are read back in one transfer
and written to ``losses.csv`` (one row per applied step).  A step whose gradient was not finite
was skipped on the device (parameters and optimiser state unchanged); it is reported then, and
the learning rate is halved from that point on; more than 5 such steps in a row stop the run.
Checkpoints (model, optimiser, step, images seen, RNG state, config, f_std) are written at every
epoch end, at the first bookkeeping point after ``checkpoint_interval_s`` and on Ctrl-C.

Several processes (``torchrun --nproc_per_node=K -m cryostar_engine train-density ...``): every
global batch (``batch`` images) is split between the processes (:func:`shard`), each
computes its share of the global-batch loss, DistributedDataParallel averages the gradients,
and only rank 0 writes (run folder, log, ``losses.csv``, checkpoints, volumes).  The result is
that of one process with the same global batch, up to float summation order.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from .. import __version__
from ..data.particles import ParticleDataset
from ..errors import InputError
from ..train import (CompiledOrEager, DistContext, PendingSteps, Progress, SkippedSteps,
                     configure_cpu, ensure_fused, init_distributed, load_latest_checkpoint,
                     make_optimizer, prepare_run_dir, read_json, resolve_device, run_logger,
                     save_checkpoint, seed_everything, shard, write_json)
from .config import DensityConfig
from .hartley import HalfGrid, half_grid
from .inputs import DensityInputs, load_inputs
from .loss import estimate_f_std
from .model import TrainedDensity, autocast_dtype, build_model
from .results import density_frame, write_outputs
from .step import StepSetup, train_step

__all__ = ["TrainState", "DensityTrainer", "train_density", "resume_config"]



def resume_config(out, epochs: float | None = None) -> DensityConfig:
    """The saved config of the run in ``out`` (``epochs`` may be raised to train longer).

    A ``debug_stop_after_steps`` or ``max_minutes`` of the saved run (limits of one invocation)
    is dropped, so the resumed run goes to the end unless the new invocation sets its own.
    """
    path = Path(out) / "config.json"
    if not path.is_file():
        raise InputError(f"{out}: no density run to resume here (no config.json); drop --resume")
    config = DensityConfig.from_dict(read_json(path), str(path)).replace(
        debug_stop_after_steps=None, max_minutes=None)
    return config.replace(epochs=epochs) if epochs else config


@dataclass
class TrainState:
    """Counters of a run: optimiser steps and images seen so far."""

    step: int = 0
    images_seen: int = 0


class DensityTrainer:
    """Holds the data, the model and the optimiser of one run (one process) and runs its steps.

    ``device`` defaults to ``config.device``; ``ctx`` is the process's
    :class:`~cryostar_engine.train.DistContext` (default: a single process).
    """

    def __init__(self, config: DensityConfig, inputs: DensityInputs, run_dir: Path, log,
                 device=None, ctx: DistContext | None = None):
        self.config, self.inputs, self.run_dir, self.log = config, inputs, Path(run_dir), log
        self.ctx = ctx or DistContext()
        self.device = torch.device(device) if device is not None else resolve_device(config.device)
        self.amp = autocast_dtype(config, self.device)
        self.dataset = ParticleDataset(inputs.meta, box=inputs.box, cache_device=self.device)
        self.z = torch.as_tensor(inputs.z, device=self.device)
        self.grid: HalfGrid = half_grid(inputs.box, 2, config.mask_radius * (inputs.box // 2)
                                        ).to(self.device)
        self.model = build_model(config, inputs.box, self.z.shape[1]).to(self.device)
        self.net = self.model
        if self.ctx.enabled:     # the random frequencies are a constant buffer: no broadcasts
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.net = DistributedDataParallel(self.model, device_ids=ids,
                                               forward_sync_buffers=False)
        self.optimizer = make_optimizer(self.model, config.lr, config.weight_decay)
        self.state = TrainState()
        self.f_std = config.f_std
        self._perm: tuple[int, torch.Tensor] | None = None
        self.pending = PendingSteps(SkippedSteps(self.optimizer, self.log,
                                                 advice="lower --lr, or check the input particles and z"))

    @property
    def total_images(self) -> int:
        return round(self.config.epochs * len(self.dataset))

    def epoch_rows(self, epoch: int) -> torch.Tensor:
        """The shuffled star rows of ``epoch``: a permutation from ``(seed, epoch)`` only; on
        the training device when the images are cached there (one transfer per epoch)."""
        if self._perm is None or self._perm[0] != epoch:
            gen = torch.Generator().manual_seed(self.config.seed * 1_000_003 + epoch)
            perm = torch.randperm(len(self.dataset), generator=gen)
            self._perm = (epoch, perm.to(self.device) if self.dataset.in_memory else perm)
        return self._perm[1]

    def next_rows(self) -> torch.Tensor:
        """Rows of the next global batch (the last batch of an epoch may be smaller)."""
        epoch, offset = divmod(self.state.images_seen, len(self.dataset))
        return self.epoch_rows(epoch)[offset:offset + self.config.batch]

    def setup(self) -> StepSetup:
        cfg = self.config
        return StepSetup(self.net, self.optimizer, self.grid, self.inputs.apix, self.f_std,
                         self.amp, self.ctx.world_size, cfg.debug_ctf_sign, cfg.debug_rotation)

    # -- checkpoints -------------------------------------------------------------------------
    def checkpoint_state(self) -> dict:
        state = {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                 "step": self.state.step, "images_seen": self.state.images_seen,
                 "rng_torch": torch.get_rng_state(), "f_std": self.f_std,
                 "box": self.inputs.box, "apix": self.inputs.apix, "z_dim": int(self.z.shape[1]),
                 "config": self.config.to_dict(), "engine_version": __version__,
                 "shuffle": {"seed": self.config.seed, "images_seen": self.state.images_seen}}
        if torch.cuda.is_available():
            state["rng_cuda"] = torch.cuda.get_rng_state_all()
        return state

    def save(self) -> Path | None:
        """Write a checkpoint (rank 0 only; None on the other ranks)."""
        if not self.ctx.is_main:
            return None
        return save_checkpoint(self.run_dir, self.checkpoint_state(), self.state.step,
                               keep=self.config.keep_checkpoints)

    def restore(self, ckpt: dict) -> None:
        """Continue from a checkpoint of this run."""
        self.model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        ensure_fused(self.optimizer)
        self.state = TrainState(step=int(ckpt["step"]), images_seen=int(ckpt["images_seen"]))
        self.f_std = float(ckpt["f_std"])
        torch.set_rng_state(ckpt["rng_torch"].cpu())
        if "rng_cuda" in ckpt and torch.cuda.is_available():
            torch.cuda.set_rng_state_all([s.cpu() for s in ckpt["rng_cuda"]])

    # -- the loop ----------------------------------------------------------------------------
    def run(self) -> bool:
        """Train until ``epochs × N`` images are seen; False when stopped early (``max_minutes``
        or the debug stop), with a checkpoint to ``--resume`` from."""
        cfg, n, main = self.config, len(self.dataset), self.ctx.is_main
        progress = Progress(self.run_dir, self.total_images, images_done=self.state.images_seen) \
            if main else None
        if main:
            progress.truncate_after(self.state.step)     # steps after the checkpoint are replayed
        setup = self.setup()
        last_save = t0 = time.monotonic()
        self.model.train()
        if cfg.compile == "on":      # auto = off in stage 2; an instance attribute: the state
            # dict and the class stay as is
            self.model.mlp = CompiledOrEager(self.model.mlp, self.log)
        try:
            while self.state.images_seen < self.total_images:
                self._step(setup, self.next_rows())
                epoch_end = self.state.images_seen % n == 0
                stop = bool(cfg.debug_stop_after_steps) and self.state.step >= cfg.debug_stop_after_steps
                if not (epoch_end or stop or self.state.step % cfg.guard_interval_steps == 0):
                    continue
                self._read_back(progress)
                late = cfg.max_minutes is not None and self.ctx.broadcast_flag(
                    time.monotonic() - t0 > 60 * cfg.max_minutes, self.device)
                if epoch_end or stop or late or time.monotonic() - last_save >= cfg.checkpoint_interval_s:
                    self.save()
                    last_save = time.monotonic()
                if stop or late:
                    self.log.info("stopped after %d steps (%s); continue with --resume", self.state.step,
                                  f"time limit of {cfg.max_minutes:g} min" if late else "debug_stop_after_steps")
                    return False
        except KeyboardInterrupt:
            self._read_back(progress, collective=False)
            self.save()
            self.log.info("interrupted at step %d; checkpoint saved", self.state.step)
            raise
        finally:
            self.model.__dict__.pop("mlp", None)        # volumes are rendered eagerly
            if progress is not None:
                progress.close()
        self.pending.skipped.require_progress()
        return True

    def _step(self, setup: StepSetup, rows: torch.Tensor) -> None:
        self.state.step += 1
        mine = shard(rows, self.ctx)
        batch = self.dataset.device_batch(mine) if self.dataset.in_memory else \
            self.dataset.batch(mine, self.device)
        loss, ok = train_step(setup, batch, self.z[batch.rows], len(rows),
                              poison=self.config.debug_nan_at_step == self.state.step)
        self.state.images_seen += len(rows)
        self.pending.add(self.state.step, len(rows), {"loss": loss}, ok)

    def _read_back(self, progress: Progress | None, collective: bool = True) -> None:
        """Read the pending steps' losses and flags back (one transfer); write their csv rows;
        act on skipped steps.  ``collective``: average the processes' loss shares (all ranks must
        call it at the same step); without it rank 0 records its own share's estimate."""
        self.pending.read_back(progress, reduce=self._mean_over_ranks if self.ctx.enabled and collective
                               else None)

    def _mean_over_ranks(self, t: torch.Tensor) -> torch.Tensor:
        dist.all_reduce(t)
        return t / self.ctx.world_size


def train_density(config: DensityConfig, out, resume: bool = False, overwrite: bool = False):
    """Train (or continue) a density run in ``out`` and write its outputs.

    Inputs are checked before the folder is created.  Returns ``(run_dir, finished)``; the
    outputs (volumes, manifest) are written when ``finished``, by rank 0 under ``torchrun``.
    """
    inputs = load_inputs(config)
    frame = density_frame(config, inputs.meta.box, inputs.meta.apix)    # the volumes' user frame
    ctx, device_name = init_distributed(config.device)
    try:
        device = resolve_device(device_name)     # a missing GPU is reported before any output
        if config.batch < ctx.world_size:
            raise InputError(f"--batch {config.batch} is smaller than the number of "
                             f"processes ({ctx.world_size})")
        run_dir, log = _open_run(config, out, resume, overwrite, ctx, device)
        for note in inputs.meta.notes if ctx.is_main else []:
            log.warning("note: %s", note)          # accepted inputs with a caveat reach run.log
        configure_cpu(config.threads)
        seed_everything(config.seed)
        trainer = DensityTrainer(config, inputs, run_dir, log, device=device, ctx=ctx)
        ckpt = load_latest_checkpoint(run_dir, map_location=device, resuming=True) if resume else None
        if ckpt is not None:
            trainer.restore(ckpt)
            log.info("resumed at step %d, %d/%d images", trainer.state.step,
                     trainer.state.images_seen, trainer.total_images)
        if trainer.f_std is None:
            trainer.f_std = estimate_f_std(trainer.dataset, config.f_std_particles)
        _log_start(trainer)
        finished = trainer.run()
        ctx.barrier()
    finally:
        ctx.close()
    if finished and ctx.is_main:     # after the process group is gone: no collective timeouts
        trained = TrainedDensity(trainer.model, config, trainer.inputs.box, trainer.inputs.apix,
                                 trainer.f_std, int(trainer.z.shape[1]))
        write_outputs(run_dir, trained, inputs.z, trainer.state, log, frame)
    return run_dir, finished


def _open_run(config: DensityConfig, out, resume: bool, overwrite: bool, ctx: DistContext,
              device: torch.device):
    """Rank 0 creates (or reopens) the run folder and writes config.json; the others learn
    whether that worked and wait for it."""
    error = None
    if ctx.is_main:
        try:
            run_dir = prepare_run_dir(out, "density", resume=resume, overwrite=overwrite)
            write_json(run_dir / "config.json", config.to_dict())
        except InputError as err:
            error = err
    if not ctx.broadcast_flag(error is None, device):
        raise error if error is not None else InputError(f"{out}: the run folder could not be "
                                                         "prepared (see rank 0's message)")
    ctx.barrier()
    run_dir = Path(out)
    log = run_logger(run_dir) if ctx.is_main else logging.getLogger("cryostar_engine.worker")
    return run_dir, log


def _log_start(t: DensityTrainer) -> None:
    n_params = sum(p.numel() for p in t.model.parameters())
    t.log.info("density generator: %d particles, box %d px at %.4g Å/px, z_dim %d, f_std %.6g, "
               "%d parameters, %d half-disc points, device %s%s%s%s", len(t.dataset), t.inputs.box,
               t.inputs.apix, t.z.shape[1], t.f_std, n_params, len(t.grid.flat), t.device,
               f" × {t.ctx.world_size} processes" if t.ctx.enabled else "",
               " (bf16 MLP)" if t.amp else "", " (compiled)" if t.config.compile == "on" else "")
