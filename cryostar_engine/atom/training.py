"""Stage-1 training: the VAE fit with restraints, starting from the reference (the decoder's
output layer is zero-initialised, so every latent first decodes to the reference model).

The schedule is defined by images seen: step ``s`` trains on rows ``stream[s·B:(s+1)·B]`` of an
endless stream made of one seeded permutation per epoch, so the data order is a pure function
of (seed, step) and a resumed run continues exactly where the checkpoint left it.
"""
from __future__ import annotations

import dataclasses
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .. import __version__
from ..errors import InputError
from ..io.pdb import write_beads_pdb
from torch.nn.parallel import DistributedDataParallel

from ..train import (CompiledOrEager, DistContext, PendingSteps, Progress, SkippedSteps,
                     apply_lr_factor, configure_cpu, ensure_fused, gpu_amp_dtype, gpu_has_native_bf16,
                     init_distributed, list_checkpoints,
                     load_latest_checkpoint, lr_factor, make_optimizer, prepare_run_dir, read_json,
                     resolve_device, run_logger, save_checkpoint, seed_everything, shard,
                     write_json)
from .centres import residue_centres
from .config import AtomConfig, default_epochs, read_run_config
from .evaluate import REFERENCE_FILE, encode_all, save_z, write_preview
from .forward import AtomForwardModel
from .inputs import AtomInputs, check_signal_overlap, load_atom_inputs, signal_overlap
from .memory import check_gpu_memory, estimate_step_bytes
from .networks import AtomVAE
from .reference_init import fit_reference
from ..data.prefetch import BatchPrefetcher
from ..train.manifest import read_manifest, write_manifest
from .step import (AtomStepSetup, LossSettings, atom_losses, fp16_loss_scaler, restraint_tensors,
                   train_step)

__all__ = ["train_atom", "batch_rows", "RESUMABLE_FIELDS", "INVOCATION_FIELDS"]

# Settings a resumed run may change when given; all others come from the run's config.json.
RESUMABLE_FIELDS = ("epochs", "threads", "checkpoint_every", "keep_checkpoints", "eval_every_epochs",
                    "max_cache_gb", "precision", "micro_batches", "compile")
# Settings of one invocation only: never inherited from the run being resumed.
INVOCATION_FIELDS = ("device", "stop_after_steps", "max_minutes", "debug_nan_at_step")


def batch_rows(step: int, batch: int, n: int, seed: int) -> np.ndarray:
    """Rows of step ``step``: a window of the stream of per-epoch permutations."""
    start, rows = step * batch, []
    while len(rows) < batch:
        epoch, offset = divmod(start, n)
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch))
        take = perm[offset:offset + batch - len(rows)].numpy()
        rows.extend(take)
        start += len(take)
    return np.asarray(rows, dtype=np.int64)


@dataclass
class _Parts:
    inputs: AtomInputs
    model: AtomVAE
    setup: AtomStepSetup           # what a step needs; setup.net is the model or its DDP wrapper
    device: torch.device
    memory_note: str = ""
    ctx: DistContext = field(default_factory=DistContext)

    @property
    def forward(self) -> AtomForwardModel:
        return self.setup.forward

    @property
    def optimizer(self) -> torch.optim.Optimizer:
        return self.setup.optimizer

    @property
    def scale(self) -> float:
        return self.setup.scale


def _resolve_config(cfg: AtomConfig) -> AtomConfig:
    """On ``--resume`` the run's saved config.json rules; of the :data:`RESUMABLE_FIELDS`, those
    given with a non-default value (e.g. a longer ``--epochs``) override it."""
    path = Path(cfg.out) / "config.json"
    if not cfg.resume or not path.is_file():
        return cfg
    saved = dataclasses.asdict(read_run_config(cfg.out, hint="pass a train-atom run to --resume"))
    defaults = AtomConfig()
    saved.update({k: getattr(cfg, k) for k in RESUMABLE_FIELDS if getattr(cfg, k) != getattr(defaults, k)})
    saved.update({k: getattr(cfg, k) for k in INVOCATION_FIELDS})
    saved.update(resume=True, overwrite=False, out=cfg.out)
    return AtomConfig(**saved)


def _amp_dtype(device: torch.device, precision: str) -> torch.dtype | None:
    """Autocast dtype of the networks: on a GPU bf16 where it is native, else fp16 (with loss
    scaling), unless ``--precision`` says otherwise; always fp32 on the CPU."""
    if device.type != "cuda":
        return None
    return gpu_amp_dtype(precision, gpu_has_native_bf16(device))


def _build(cfg: AtomConfig, device: torch.device) -> _Parts:
    inputs = load_atom_inputs(cfg, cache_device=device)
    ds, beads = inputs.dataset, inputs.reference.beads
    reference = torch.as_tensor(beads.coords_A, dtype=torch.float32)
    forward = AtomForwardModel(ds.box, ds.apix, torch.as_tensor(beads.amplitudes), cfg.bead_sigma_A,
                               inputs.low_pass_A, cfg.mask_radius, device,
                               centres=(residue_centres(beads, inputs.graph.continuity)
                                        if cfg.bead_centre == "residue" else None))
    overlap = signal_overlap(forward, ds, reference.to(device), device, seed=cfg.seed)
    if not cfg.skip_signal_check:
        check_signal_overlap(overlap)
    model = AtomVAE(ds.box, len(beads), cfg.zdim, cfg.encoder_hidden, cfg.decoder_hidden, reference,
                    zero_output=cfg.decoder_init == "zero").to(device)
    optimizer = make_optimizer(model, cfg.lr, cfg.weight_decay)
    restraints = restraint_tensors(inputs.graph, device)
    rows = np.linspace(0, len(ds) - 1, min(len(ds), 512)).astype(int)
    with torch.no_grad():
        t = forward.target(ds.batch(rows, device)) * forward.mask
        scale = float(t.flatten(1).std(1).mean().clamp_min(1e-12))
    estimate = estimate_step_bytes(cfg.batch, ds.box, len(beads), len(restraints.pairs),
                                   sum(t.numel() for t in model.parameters()))
    memory_note = check_gpu_memory(estimate, device, cfg.batch, ds.box)
    amp = _amp_dtype(device, cfg.precision)
    setup = AtomStepSetup(model, optimizer, forward, restraints, LossSettings.from_config(cfg), scale,
                          amp=amp, scaler=fp16_loss_scaler(device) if amp == torch.float16 else None)
    return _Parts(inputs, model, setup, device, memory_note=memory_note)


COMPILE_MIN_STEPS = 2000     # --compile auto: compile only runs that amortise its ~1 min


def _use_compile(cfg: AtomConfig, device: torch.device, n: int, distributed: bool) -> bool:
    """``--compile auto``: single-process CPU runs of at least :data:`COMPILE_MIN_STEPS` steps
    (where it was measured); GPU and torchrun runs only with ``--compile on``."""
    if cfg.compile != "auto":
        return cfg.compile == "on"
    return (device.type == "cpu" and not distributed
            and math.ceil(cfg.epochs * n / cfg.batch) >= COMPILE_MIN_STEPS)


def _kl_beta(cfg: AtomConfig, images_seen: int) -> float:
    """KL weight: rises linearly to ``kl_beta_max`` over ``kl_warmup_images`` images."""
    return cfg.kl_beta_max * min(images_seen / max(cfg.kl_warmup_images, 1), 1.0)


def _back_off(micro: int, local_batch: int, log, device) -> int:
    """After a CUDA out-of-memory error: split each step into twice as many chunks."""
    if 2 * micro > local_batch:
        raise InputError(f"out of GPU memory even with one image per chunk on {device}; "
                         "use a smaller --box (or a larger --low-pass)")
    torch.cuda.empty_cache()
    log.warning("out of GPU memory: each step of %d images now runs as %d chunks of %d "
                "(same batch and schedule)", local_batch, 2 * micro, local_batch // (2 * micro))
    return 2 * micro


def _checkpoint(cfg, p: _Parts, run_dir, step, images_seen, noise_gen):
    scaler = p.setup.scaler
    state = {"model": p.model.state_dict(), "optimizer": p.optimizer.state_dict(), "step": step,
             "loss_scaler": scaler.state_dict() if scaler is not None else None,
             "images_seen": images_seen, "noise_rng": noise_gen.get_state(), "box": p.inputs.dataset.box,
             "apix": p.inputs.dataset.apix, "scale": p.scale, "engine_version": __version__}
    save_checkpoint(run_dir, state, step, keep=cfg.keep_checkpoints)


def _evaluate(cfg, p: _Parts, run_dir, step, images_seen, log, status="running", last=None):
    z = encode_all(p.model, p.forward, p.inputs.dataset, p.scale, p.device)
    save_z(run_dir, z)
    if last is not None:
        write_preview(run_dir / "preview.png", *last)
    ds, ref = p.inputs.dataset, p.inputs.reference
    write_manifest(run_dir, "atom", status, ds.box, ds.apix, frame=ref.frame,
                   low_pass={"A": cfg.low_pass_A, "source": p.inputs.low_pass_source},
                   step=step, images_seen=images_seen, particles=len(ds), original_box_px=ds.meta.box,
                   original_apix_A=ds.meta.apix, zdim=cfg.zdim, beads=len(ref.beads), z="z.npy",
                   config="config.json", reference=REFERENCE_FILE, losses="losses.csv", log="run.log",
                   preview="preview.png" if (run_dir / "preview.png").is_file() else None)
    log.info("step %d: wrote z.npy (%d × %d)", step, *z.shape)


def _open_run(cfg: AtomConfig, p: _Parts, ctx: DistContext):
    """Rank 0 creates (or reopens) the run folder; the others learn whether it worked."""
    error = None
    if ctx.is_main:
        try:
            run_dir = prepare_run_dir(cfg.out, "atom", resume=cfg.resume, overwrite=cfg.overwrite)
            write_json(run_dir / "config.json", cfg.to_json())
            beads, frame = p.inputs.reference.beads, p.inputs.reference.frame
            write_beads_pdb(run_dir / REFERENCE_FILE, beads, frame.to_user(beads.coords_A))   # user frame
            if cfg.resume:       # the resumed config holds the resolved number: keep how it was found
                p.inputs.low_pass_source = ((read_manifest(run_dir) or {}).get("low_pass") or {}).get(
                    "source", p.inputs.low_pass_source)
        except InputError as err:
            error = err
    if not ctx.broadcast_flag(error is None, p.device):
        raise error if error is not None else InputError("the run folder could not be prepared")
    ctx.barrier()
    run_dir = Path(cfg.out)
    log = run_logger(run_dir) if ctx.is_main else logging.getLogger("cryostar_engine.worker")
    return run_dir, log


def train_atom(cfg: AtomConfig) -> dict:
    """Train (or resume) a stage-1 run; return its manifest.  See the module docstring.

    Under ``torchrun`` each process trains on its share of every global batch (DDP), the
    elastic-network relaxation sees the gathered global batch, and only rank 0 writes.
    """
    if cfg.resume and not (Path(cfg.out) / "run.json").is_file():
        raise InputError(f"{cfg.out}: there is no run to resume here; drop --resume to start one")
    cfg = _resolve_config(cfg)
    ctx, device_name = init_distributed(cfg.device)
    try:
        if cfg.batch % ctx.world_size:
            raise InputError(f"--batch {cfg.batch} must be a multiple of the number of processes "
                             f"({ctx.world_size})")
        device = resolve_device(device_name)
        if device.type == "cpu":
            configure_cpu(cfg.threads)
        seed_everything(cfg.seed)
        p = _build(cfg, device)        # every input check happens before the run folder exists
        cfg = cfg.replace(low_pass_A=p.inputs.low_pass_A)     # config.json records the resolved value
        if cfg.epochs is None:
            cfg = cfg.replace(epochs=default_epochs(len(p.inputs.dataset)))
        p.ctx = ctx
        run_dir, log = _open_run(cfg, p, ctx)
        for note in [*p.inputs.meta.notes, *p.inputs.reference.beads.notes] if ctx.is_main else []:
            log.warning("note: %s", note)          # accepted inputs with a caveat reach run.log
        if cfg.decoder_init == "fit" and not list_checkpoints(run_dir):
            # before DDP wraps the model: its construction gives every rank rank 0's weights
            fit_reference(p.model, p.forward, p.inputs.dataset, p.scale, cfg.batch, cfg.seed, device, log=log)
        if _use_compile(cfg, device, len(p.inputs.dataset), ctx.enabled):
            p.setup.losses_fn = CompiledOrEager(atom_losses, log)
            log.info("torch.compile: on (the first steps include the compilation)")
        if ctx.enabled:
            p.setup.net = DistributedDataParallel(p.model, device_ids=[device.index] if device.type == "cuda" else None)
            p.setup.gather = ctx.all_gather_rows
        _train(cfg, p, run_dir, log)
    finally:
        ctx.close()
    return read_json(run_dir / "manifest.json")


def _train(cfg: AtomConfig, p: _Parts, run_dir, log) -> None:
    n = len(p.inputs.dataset)
    total_steps = max(1, math.ceil(cfg.epochs * n / cfg.batch))
    noise_gen = torch.Generator(device=p.device).manual_seed(cfg.seed + 1)
    state = (load_latest_checkpoint(run_dir, map_location=p.device, resuming=True)
             if cfg.resume else None)
    if state is not None:
        p.model.load_state_dict(state["model"])
        p.optimizer.load_state_dict(state["optimizer"])
        ensure_fused(p.optimizer)
        if p.setup.scaler is not None and state.get("loss_scaler"):
            p.setup.scaler.load_state_dict(state["loss_scaler"])
        noise_gen.set_state(state["noise_rng"].cpu() if p.device.type == "cpu" else state["noise_rng"])
        step, images_seen = int(state["step"]), int(state["images_seen"])
        log.info("resuming at step %d (%d images seen) of %d", step, images_seen, total_steps)
    else:
        log.info("%d particles, box %d px at %.3f Å/px, %d beads, %d steps of %d images on %s%s",
                 n, p.inputs.dataset.box, p.inputs.dataset.apix, len(p.inputs.reference.beads),
                 total_steps, cfg.batch, p.device,
                 f" × {p.ctx.world_size} processes" if p.ctx.enabled else "")
        log.info("low-pass %.1f Å (%s); model frame: %s, shift %s Å", cfg.low_pass_A,
                 p.inputs.low_pass_source, p.inputs.reference.frame.source,
                 tuple(round(v, 2) for v in p.inputs.reference.frame.shift_A))
        step = images_seen = 0
        if p.ctx.is_main:
            _checkpoint(cfg, p, run_dir, step, images_seen, noise_gen)
    log.info(p.memory_note)
    _train_loop(cfg, p, run_dir, log, step, images_seen, total_steps, noise_gen)


def _should_stop(cfg, p: _Parts, step: int, t0: float, check_time: bool) -> str | None:
    """``"steps"`` after ``--stop-after-steps``; ``"time"`` past ``--max-minutes`` (looked at only
    when ``check_time``: rank 0's clock is broadcast, a sync under torchrun)."""
    if cfg.stop_after_steps is not None and step >= cfg.stop_after_steps:
        return "steps"
    if cfg.max_minutes is not None and check_time:
        late = time.perf_counter() - t0 > 60 * cfg.max_minutes
        if p.ctx.broadcast_flag(late, p.device):
            return "time"
    return None


READBACK_STEPS = 20     # losses and applied/skipped flags are read back every this many steps


def _train_loop(cfg, p: _Parts, run_dir, log, step, images_seen, total_steps, noise_gen):
    """Steps until ``total_steps``; every :data:`READBACK_STEPS` steps (and before each
    checkpoint, evaluation or stop) the pending losses and flags are read back in one transfer."""
    n, main = len(p.inputs.dataset), p.ctx.is_main
    progress = Progress(run_dir, total_steps * cfg.batch, images_seen) if main else None
    if main:
        progress.truncate_after(step)
    pending = PendingSteps(SkippedSteps(p.optimizer, log, advice="lower --lr, raise --low-pass, or "
                                                            "check the input particles",
                                        last_step=total_steps))
    eval_every = max(1, int(cfg.eval_every_epochs * n / cfg.batch))
    last, micro = None, cfg.micro_batches
    ds = p.inputs.dataset

    def rows_of(s: int) -> np.ndarray:
        return shard(batch_rows(s, cfg.batch, n, cfg.seed), p.ctx)
    # a stack larger than the cache streams from disk, read ahead in a thread (pinned on a GPU)
    streaming = None if ds.in_memory else BatchPrefetcher(ds, rows_of, p.device, start=step)
    batch, batch_step = None, -1
    t0 = last_preview = time.perf_counter()
    try:
        while step < total_steps:
            stop = _should_stop(cfg, p, step, t0, check_time=step % READBACK_STEPS == 0)
            if stop:
                pending.read_back(progress)
                log.info("stopping at step %d (%s); continue with --resume", step,
                         "--stop-after-steps" if stop == "steps" else f"time limit of {cfg.max_minutes:g} min")
                if main:
                    _checkpoint(cfg, p, run_dir, step, images_seen, noise_gen)
                    _evaluate(cfg, p, run_dir, step, images_seen, log, status="stopped",
                              last=(last[0][:8].detach(), last[1][:8].detach()) if last else None)
                break
            if batch_step != step:          # (an out-of-memory retry keeps its batch and noise)
                batch = streaming.get(step) if streaming else ds.batch(rows_of(step), p.device)
                eps = torch.randn((cfg.batch, cfg.zdim), generator=noise_gen, device=p.device)
                batch_step = step
            apply_lr_factor(p.optimizer, lr_factor(cfg.lr_schedule, step, total_steps, cfg.lr_final_fraction))
            try:
                total, terms, ok, last = train_step(p.setup, batch, shard(eps, p.ctx), _kl_beta(cfg, images_seen),
                                                    micro, poison=cfg.debug_nan_at_step == step + 1)
            except torch.OutOfMemoryError:
                micro = _back_off(micro, len(batch.rows), log, p.device)
                continue
            step += 1
            images_seen += cfg.batch
            pending.add(step, cfg.batch, {"loss": total, **terms}, ok)
            checkpoint = step % cfg.checkpoint_every == 0 or step == total_steps
            evaluate = step % eval_every == 0 or step == total_steps
            if checkpoint or evaluate or step % READBACK_STEPS == 0:
                pending.read_back(progress)
            if not main:
                continue
            if checkpoint:
                _checkpoint(cfg, p, run_dir, step, images_seen, noise_gen)
            if evaluate:
                final = step == total_steps
                preview = final or time.perf_counter() - last_preview > 600
                if preview:
                    last_preview = time.perf_counter()
                _evaluate(cfg, p, run_dir, step, images_seen, log, status="finished" if final else "running",
                          last=(last[0][:8].detach(), last[1][:8].detach()) if preview else None)
        pending.read_back(progress)
    finally:
        if streaming is not None:
            streaming.close()
    if main:
        progress.close()
        log.info("finished %d steps in %.1f s (%.0f images/s)", step, time.perf_counter() - t0,
                 progress.images_per_s)
        if p.device.type == "cuda":
            log.info("peak GPU memory: %.2f GiB", torch.cuda.max_memory_allocated(p.device) / 2**30)
    p.ctx.barrier()
