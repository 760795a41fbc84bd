"""Training the density generator with fixed latents (spec §4.3–4.4), resumable.

One step: a mini-batch of particles (star rows in a per-epoch shuffled order) → centred,
normalised transforms on the half-disc → CTF · F(Rᵀk₂, z) → Fourier MSE → AdamW.
The schedule counts *images seen* (``epochs × N``).  The order of epoch ``e`` is a permutation
drawn from ``(seed, e)`` alone, so a run resumed from ``images_seen`` continues with exactly
the batches it would have had.  Checkpoints (model, optimiser, step, images seen, RNG state,
config, f_std) are written at every epoch end, every ``checkpoint_interval_s`` and on Ctrl-C.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import torch

from .. import __version__
from ..data.particles import ParticleDataset
from ..errors import InputError
from ..train import (NonFiniteGuard, Progress, configure_cpu, load_latest_checkpoint,
                     prepare_run_dir, read_json, resolve_device, run_logger, save_checkpoint,
                     seed_everything, write_json)
from .config import DensityConfig
from .hartley import HalfGrid, half_grid
from .inputs import DensityInputs, load_inputs
from .loss import estimate_f_std, fourier_mse
from .model import TrainedDensity, autocast_dtype, build_model
from .network import autocast
from .results import write_outputs
from .slicing import ctf_half, observed_slices, predict_slices

__all__ = ["TrainState", "DensityTrainer", "train_density", "resume_config"]


def resume_config(out, epochs: int | None = None) -> DensityConfig:
    """The saved config of the run in ``out`` (``epochs`` may be raised to train longer).

    A ``debug_stop_after_steps`` of the saved run (a simulated interruption) is dropped, so the
    resumed run goes to the end.
    """
    path = Path(out) / "config.json"
    if not path.is_file():
        raise InputError(f"{out}: no density run to resume here (no config.json); drop --resume")
    config = DensityConfig.from_dict(read_json(path)).replace(debug_stop_after_steps=None)
    return config.replace(epochs=epochs) if epochs else config


@dataclass
class TrainState:
    """Counters of a run: optimiser steps and images seen so far."""

    step: int = 0
    images_seen: int = 0


class DensityTrainer:
    """Holds the data, the model and the optimiser of one run and runs its steps."""

    def __init__(self, config: DensityConfig, inputs: DensityInputs, run_dir: Path, log):
        self.config, self.inputs, self.run_dir, self.log = config, inputs, Path(run_dir), log
        self.device = resolve_device(config.device)
        self.amp = autocast_dtype(config, self.device)
        self.dataset = ParticleDataset(inputs.meta, box=inputs.box, cache_device=self.device)
        self.z = torch.as_tensor(inputs.z, device=self.device)
        self.grid: HalfGrid = half_grid(inputs.box, 2, config.mask_radius * (inputs.box // 2)
                                        ).to(self.device)
        self.model = build_model(config, inputs.box, self.z.shape[1]).to(self.device)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=config.lr,
                                           weight_decay=config.weight_decay)
        self.state = TrainState()
        self.f_std = config.f_std

    @property
    def total_images(self) -> int:
        return self.config.epochs * len(self.dataset)

    def epoch_rows(self, epoch: int) -> torch.Tensor:
        """The shuffled star rows of ``epoch``: a permutation from ``(seed, epoch)`` only."""
        gen = torch.Generator().manual_seed(self.config.seed * 1_000_003 + epoch)
        return torch.randperm(len(self.dataset), generator=gen)

    def next_rows(self) -> torch.Tensor:
        """Rows of the next batch (the last batch of an epoch may be smaller)."""
        epoch, offset = divmod(self.state.images_seen, len(self.dataset))
        return self.epoch_rows(epoch)[offset:offset + self.config.batch_size]

    def loss(self, rows: torch.Tensor) -> torch.Tensor:
        """Fourier MSE of one batch (a graph for backward)."""
        cfg = self.config
        batch = self.dataset.batch(rows, self.device)
        f_obs = observed_slices(batch.images, batch.shifts_px, self.f_std, self.grid)
        ctf = ctf_half(self.grid, batch.ctf, self.inputs.apix, sign=cfg.debug_ctf_sign)
        with autocast(self.device, self.amp):
            f_pred = predict_slices(self.model, self.grid, batch.rotations, self.z[batch.rows],
                                    ctf, cfg.debug_rotation)
        return fourier_mse(f_obs, f_pred, self.grid.weights)

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

    def save(self) -> Path:
        return save_checkpoint(self.run_dir, self.checkpoint_state(), self.state.step,
                               keep=self.config.keep_checkpoints)

    def restore(self, ckpt: dict) -> None:
        """Continue from a checkpoint of this run."""
        self.model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.state = TrainState(step=int(ckpt["step"]), images_seen=int(ckpt["images_seen"]))
        self.f_std = float(ckpt["f_std"])
        torch.set_rng_state(ckpt["rng_torch"])
        if "rng_cuda" in ckpt and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(ckpt["rng_cuda"])

    # -- the loop ----------------------------------------------------------------------------
    def run(self) -> bool:
        """Train until ``epochs × N`` images are seen; False when stopped early (debug stop)."""
        cfg, n = self.config, len(self.dataset)
        guard = NonFiniteGuard(self.model, self.optimizer, self.log)
        progress = Progress(self.run_dir, self.total_images, images_done=self.state.images_seen)
        progress.truncate_after(self.state.step)     # steps after the checkpoint are replayed
        last_save = time.monotonic()
        self.model.train()
        try:
            while self.state.images_seen < self.total_images:
                rows = self.next_rows()
                self._step(rows, guard, progress)
                epoch_end = self.state.images_seen % n == 0
                if epoch_end or time.monotonic() - last_save >= cfg.checkpoint_interval_s:
                    self.save()
                    last_save = time.monotonic()
                if cfg.debug_stop_after_steps and self.state.step >= cfg.debug_stop_after_steps:
                    self.save()
                    self.log.info("stopped after %d steps (debug_stop_after_steps)", self.state.step)
                    return False
        except KeyboardInterrupt:
            self.save()
            self.log.info("interrupted at step %d; checkpoint saved", self.state.step)
            raise
        finally:
            progress.close()
        return True

    def _step(self, rows: torch.Tensor, guard: NonFiniteGuard, progress: Progress) -> None:
        self.state.step += 1
        self.optimizer.zero_grad(set_to_none=True)
        loss = self.loss(rows)
        if self.config.debug_nan_at_step == self.state.step:
            loss = loss * float("nan")
        loss.backward()
        self.state.images_seen += len(rows)
        if not guard.check(loss.detach(), self.state.step):
            return
        self.optimizer.step()
        if self.state.step % self.config.guard_interval_steps == 0:
            guard.mark_good()
        progress.record(self.state.step, len(rows), {"loss": loss.item()})


def train_density(config: DensityConfig, out, resume: bool = False, overwrite: bool = False):
    """Train (or continue) a density run in ``out`` and write its outputs.

    Inputs are checked before the folder is created.  Returns ``(run_dir, finished)``; the
    outputs (volumes, manifest) are written when ``finished``.
    """
    inputs = load_inputs(config)
    resolve_device(config.device)            # a missing GPU is reported before any output
    run_dir = prepare_run_dir(out, "density", resume=resume, overwrite=overwrite)
    write_json(run_dir / "config.json", config.to_dict())
    log = run_logger(run_dir)
    configure_cpu(config.threads)
    seed_everything(config.seed)
    trainer = DensityTrainer(config, inputs, run_dir, log)
    ckpt = load_latest_checkpoint(run_dir) if resume else None
    if ckpt is not None:
        trainer.restore(ckpt)
        log.info("resumed at step %d, %d/%d images", trainer.state.step,
                 trainer.state.images_seen, trainer.total_images)
    if trainer.f_std is None:
        trainer.f_std = estimate_f_std(trainer.dataset, config.f_std_particles)
    _log_start(trainer)
    finished = trainer.run()
    if finished:
        trained = TrainedDensity(trainer.model, config, trainer.inputs.box, trainer.inputs.apix,
                                 trainer.f_std, int(trainer.z.shape[1]))
        write_outputs(run_dir, trained, inputs.z, trainer.state, log)
    return run_dir, finished


def _log_start(t: DensityTrainer) -> None:
    n_params = sum(p.numel() for p in t.model.parameters())
    t.log.info("density generator: %d particles, box %d px at %.4g Å/px, z_dim %d, f_std %.6g, "
               "%d parameters, %d half-disc points, device %s%s", len(t.dataset), t.inputs.box,
               t.inputs.apix, t.z.shape[1], t.f_std, n_params, len(t.grid.flat), t.device,
               " (bf16 MLP)" if t.amp else "")
