"""Training the density generator with fixed latents (spec §4.3–4.4), resumable, on one or
several processes.

One step: a mini-batch of particles (star rows in a per-epoch shuffled order) → centred,
normalised transforms on the half-disc → CTF · F(Rᵀk₂, z) → Fourier MSE → AdamW
(:mod:`~cryostar_engine.density.step`; no host–device synchronisation inside it).
The schedule counts *images seen* (``epochs × N``); the default length (sized to the set) and
width (chosen for the device) are resolved at the start (:mod:`~cryostar_engine.density.schedule`),
saved in ``config.json`` and logged.  The order of epoch ``e`` is a permutation
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

import math

from pathlib import Path

import torch

from ..data.particles import ParticleDataset
from ..errors import InputError
from ..train import (CompiledOrEager, DistContext, RowStream, RunScaffold, SkippedSteps,
                     configure_cpu, init_distributed, make_optimizer, open_run, read_json,
                     resolve_device, seed_everything, shard, write_json)
from .config import DensityConfig
from .hartley import HalfGrid, half_grid
from .inputs import DensityInputs, load_inputs
from .loss import estimate_f_std
from .model import TrainedDensity, autocast_dtype, build_model
from .results import density_frame, write_outputs
from ..train.schedule import apply_lr_factor, final_decay_factor
from .schedule import LR_FINAL_FRACTION, resolve_run_defaults
from .step import StepSetup, train_step

__all__ = ["DensityTrainer", "train_density", "resume_config"]


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


def images_to_train(epochs: float, n: int, batch: int) -> int:
    """Images a run of ``epochs`` passes over ``n`` particles sees with batches of ``batch``.

    Batches end at an epoch's end, so whole epochs see exactly ``epochs × n``; a part epoch ends
    with the batch that reaches ``round(epochs × n)``, so it sees up to ``batch - 1`` more (the
    progress once showed 126 % for ``--epochs 0.1``)."""
    target = round(epochs * n)
    whole, rest = divmod(target, n)
    return whole * n + (min(math.ceil(rest / batch) * batch, n) if rest else 0)


class DensityTrainer:
    """Holds the data, the model and the optimiser of one run (one process) and runs its steps.

    ``device`` defaults to ``config.device``; ``ctx`` is the process's
    :class:`~cryostar_engine.train.DistContext` (default: a single process).  The counters,
    checkpoints, read-backs and stops are the :class:`~cryostar_engine.train.RunScaffold`'s.
    A length or width left to its default is resolved here if the caller did not
    (:func:`~cryostar_engine.density.schedule.resolve_run_defaults`).
    """

    def __init__(self, config: DensityConfig, inputs: DensityInputs, run_dir: Path, log,
                 device=None, ctx: DistContext | None = None):
        self.ctx = ctx or DistContext()
        self.device = torch.device(device) if device is not None else resolve_device(config.device)
        config = resolve_run_defaults(config, len(inputs.z), self.device)[0]
        self.config, self.inputs, self.run_dir, self.log = config, inputs, Path(run_dir), log
        self.amp = autocast_dtype(config, self.device)
        self.dataset = ParticleDataset(inputs.meta, box=inputs.box, cache_device=self.device)
        self.z = torch.as_tensor(inputs.z, device=self.device)
        self.grid: HalfGrid = half_grid(inputs.box, 2, config.mask_radius * (inputs.box // 2)
                                        ).to(self.device)
        self.model = build_model(config, inputs.box, self.z.shape[1]).to(self.device)
        # the random frequencies are a constant buffer: no broadcasts
        self.net = self.ctx.wrap(self.model, self.device, forward_sync_buffers=False)
        self.optimizer = make_optimizer(self.model, config.lr, config.weight_decay)
        self.f_std = config.f_std
        # the permutations live on the training device when the images are cached there
        self.stream = RowStream(len(self.dataset), config.seed,
                                self.device if self.dataset.in_memory else None)
        self.scaffold = RunScaffold(
            self.run_dir, log, self.ctx, self.device, self.model, self.optimizer,
            total_images=images_to_train(config.epochs, len(self.dataset), config.batch),
            keep_checkpoints=config.keep_checkpoints, readback_every=config.guard_interval_steps,
            skipped=SkippedSteps(self.optimizer, log,
                                 advice="lower --lr, or check the input particles and z"),
            mean_over_ranks=True, max_minutes=config.max_minutes,
            stop_after_steps=config.debug_stop_after_steps or None, global_rng=True,
            step_images=config.batch)

    @property
    def total_images(self) -> int:
        return self.scaffold.total_images

    def next_rows(self) -> torch.Tensor:
        """Rows of the next global batch (the last batch of an epoch may be smaller)."""
        return self.stream.rows(self.scaffold.images_seen, self.config.batch)

    def setup(self) -> StepSetup:
        cfg = self.config
        return StepSetup(self.net, self.optimizer, self.grid, self.inputs.apix, self.f_std,
                         self.amp, self.ctx.world_size, cfg.debug_ctf_sign, cfg.debug_rotation)

    # -- checkpoints -------------------------------------------------------------------------
    def save(self) -> Path | None:
        """Write a checkpoint (rank 0 only; None on the other ranks)."""
        return self.scaffold.save(f_std=self.f_std, box=self.inputs.box, apix=self.inputs.apix,
                                  z_dim=int(self.z.shape[1]), config=self.config.to_dict(),
                                  shuffle={"seed": self.config.seed,
                                           "images_seen": self.scaffold.images_seen})

    # -- the loop ----------------------------------------------------------------------------
    def run(self) -> bool:
        """Train until ``epochs × N`` images are seen; False when stopped early (``max_minutes``
        or the test stop hook), with a checkpoint to ``--resume`` from."""
        cfg, n, sc = self.config, len(self.dataset), self.scaffold
        sc.start()                  # steps after the checkpoint are replayed
        setup = self.setup()
        self.model.train()
        if cfg.compile == "on":      # auto = off in stage 2; an instance attribute: the state
            # dict and the class stay as is
            self.model.mlp = CompiledOrEager(self.model.mlp, self.log)
        try:
            while not sc.finished:
                apply_lr_factor(self.optimizer, final_decay_factor(
                    sc.images_seen, self.total_images, cfg.lr_decay_fraction, LR_FINAL_FRACTION))
                self._step(setup, self.next_rows())
                epoch_end = sc.images_seen % n == 0
                if not (epoch_end or sc.should_stop(check_time=False) or sc.readback_due()):
                    continue
                sc.read_back()
                stop = sc.should_stop()
                if epoch_end or stop or sc.seconds_since_save >= cfg.checkpoint_interval_s:
                    self.save()
                if stop:
                    sc.log_stop(stop)
                    return False
            sc.read_back()          # the steps after the last bookkeeping point (a part epoch)
        except KeyboardInterrupt:
            sc.read_back(collective=False)
            self.save()
            self.log.info("interrupted at step %d; checkpoint saved", sc.step)
            raise
        finally:
            self.model.__dict__.pop("mlp", None)        # volumes are rendered eagerly
            sc.close()
        sc.skipped.require_progress()
        return True

    def _step(self, setup: StepSetup, rows: torch.Tensor) -> None:
        mine = shard(rows, self.ctx)
        batch = self.dataset.device_batch(mine) if self.dataset.in_memory else \
            self.dataset.batch(mine, self.device)
        loss, ok = train_step(setup, batch, self.z[batch.rows], len(rows),
                              poison=self.config.debug_nan_at_step == self.scaffold.step + 1)
        self.scaffold.advance(len(rows), {"loss": loss}, ok)


def train_density(config: DensityConfig, out, resume: bool = False, overwrite: bool = False):
    """Train (or continue) a density run in ``out`` and write its outputs.

    Inputs are checked before the folder is created.  Returns ``(run_dir, finished)``; the
    outputs (volumes, manifest) are written when ``finished``, by rank 0 under ``torchrun``.
    """
    inputs = load_inputs(config)
    frame = density_frame(config, inputs.meta.box, inputs.meta.apix)    # the volumes' user frame
    ctx, device_name = init_distributed(config.device)
    trainer = None
    try:
        device = resolve_device(device_name)     # a missing GPU is reported before any output
        if config.batch < ctx.world_size:
            raise InputError(f"--batch {config.batch} is smaller than the number of "
                             f"processes ({ctx.world_size})")
        # the default length and width, decided now and recorded (config.json, run.log)
        config, decided = resolve_run_defaults(config, len(inputs.z), device, resumed=resume)
        run_dir, log = open_run(out, "density", ctx, device, resume, overwrite,
                                lambda folder: write_json(folder / "config.json", config.to_dict()))
        configure_cpu(config.threads)
        seed_everything(config.seed)
        trainer = DensityTrainer(config, inputs, run_dir, log, device=device, ctx=ctx)
        # accepted inputs with a caveat reach run.log; after the dataset exists, since reading
        # the stack adds its own notes (a few constant images)
        for note in inputs.meta.notes if ctx.is_main else []:
            log.warning("note: %s", note)
        for line in decided if ctx.is_main else []:
            log.info("%s", line)
        ckpt = trainer.scaffold.resume() if resume else None
        if ckpt is not None:
            trainer.f_std = float(ckpt["f_std"])
            log.info("resumed at step %d, %d/%d images", trainer.scaffold.step,
                     trainer.scaffold.images_seen, trainer.total_images)
        if trainer.f_std is None:
            trainer.f_std = estimate_f_std(trainer.dataset, config.f_std_particles)
        _log_start(trainer)
        finished = trainer.run()
        ctx.barrier()
    finally:
        if trainer is not None:
            trainer.net = trainer.model          # drop the DDP wrapper before the group (close)
        ctx.close()
    if finished and ctx.is_main:     # after the process group is gone: no collective timeouts
        trained = TrainedDensity(trainer.model, config, trainer.inputs.box, trainer.inputs.apix,
                                 trainer.f_std, int(trainer.z.shape[1]))
        write_outputs(run_dir, trained, inputs.z, trainer.scaffold, log, frame)
    return run_dir, finished


def _log_start(t: DensityTrainer) -> None:
    n_params = sum(p.numel() for p in t.model.parameters())
    t.log.info("density generator: %d particles, box %d px at %.4g Å/px, z_dim %d, f_std %.6g, "
               "%d parameters, %d half-disc points, device %s%s%s%s", len(t.dataset), t.inputs.box,
               t.inputs.apix, t.z.shape[1], t.f_std, n_params, len(t.grid.flat), t.device,
               f" × {t.ctx.world_size} processes" if t.ctx.enabled else "",
               " (bf16 MLP)" if t.amp else "", " (compiled)" if t.config.compile == "on" else "")
