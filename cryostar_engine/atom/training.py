"""Stage-1 training: the VAE fit with restraints, starting from the reference (the decoder's
output layer is zero-initialised, so every latent first decodes to the reference model).

The schedule is defined by images seen: step ``s`` trains on rows ``stream[s·B:(s+1)·B]`` of an
endless stream made of one seeded permutation per epoch (:class:`~cryostar_engine.train.RowStream`),
so the data order is a pure function of (seed, step) and a resumed run continues exactly where
the checkpoint left it.  The run-loop bookkeeping (run folder, counters, checkpoints, read-backs,
stops, progress) is the :class:`~cryostar_engine.train.RunScaffold`'s, shared with stage 2.
"""
from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..errors import InputError
from ..io.pdb import write_beads_pdb

from ..train import (CompiledOrEager, DistContext, RowStream, RunScaffold, SkippedSteps,
                     apply_lr_factor, configure_cpu, gpu_amp_dtype, gpu_has_native_bf16,
                     init_distributed, list_checkpoints, lr_factor, make_optimizer, open_run,
                     read_json, resolve_device, seed_everything, shard, write_json)
from .centres import scatterers
from .config import (AtomConfig, band_images, default_epochs, read_run_config,
                     resolve_rendering)
from .evaluate import REFERENCE_FILE, encode_all, save_z, write_preview
from .forward import AtomForwardModel
from ..lowpass import BandSchedule
from .inputs import AtomInputs, check_signal_overlap, load_atom_inputs, signal_overlap
from .memory import check_gpu_memory, estimate_forward_step_bytes
from .networks import AtomVAE
from .reference_init import fit_reference
from ..data.prefetch import BatchPrefetcher
from ..train.manifest import read_manifest, write_manifest
from .step import (AtomStepSetup, LossSettings, atom_losses, fp16_loss_scaler, restraint_tensors,
                   train_step)

__all__ = ["train_atom", "RESUMABLE_FIELDS", "INVOCATION_FIELDS"]

# Settings a resumed run may change when given; all others come from the run's config.json.
RESUMABLE_FIELDS = ("epochs", "threads", "checkpoint_every", "keep_checkpoints", "eval_every_epochs",
                    "max_cache_gb", "precision", "micro_batches", "compile")
# Settings of one invocation only: never inherited from the run being resumed.
INVOCATION_FIELDS = ("device", "stop_after_steps", "max_minutes", "debug_nan_at_step")


@dataclass
class _Parts:
    cfg: AtomConfig                # the run's config with its band and rendering resolved
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


def band_schedule(cfg: AtomConfig, final_A: float) -> BandSchedule:
    """The run's loss-band schedule (coarse-to-fine with ``--low-pass-start``).  Before the
    run's length is resolved (``band_*_images`` None) only its start and final bands are
    meaningful."""
    return BandSchedule(final_A, cfg.low_pass_start_A, cfg.band_hold_images or 0,
                        cfg.band_ramp_images or 0)


def _encoder_low_pass(cfg: AtomConfig, bands: BandSchedule):
    """The encoder's fixed band (Å, or None for the whole working box): ``--encoder-band``;
    without a schedule "start" and "final" are the loss band itself (``"loss"``)."""
    if cfg.encoder_band == "full":
        return None
    if not bands.active:
        return "loss"
    return bands.at(0) if cfg.encoder_band == "start" else bands.final_A


def _build(cfg: AtomConfig, device: torch.device) -> _Parts:
    inputs = load_atom_inputs(cfg, cache_device=device)
    ds, beads = inputs.dataset, inputs.reference.beads
    reference = torch.as_tensor(beads.coords_A, dtype=torch.float32)
    bands = band_schedule(cfg, inputs.low_pass_A)
    cfg = resolve_rendering(cfg.replace(low_pass_A=inputs.low_pass_A), beads, ds.apix)
    forward = AtomForwardModel(ds.box, ds.apix, torch.as_tensor(beads.amplitudes), cfg.bead_sigma_A,
                               bands.at(0), cfg.mask_radius, device,
                               centres=scatterers(cfg.bead_centre, beads, inputs.graph.continuity),
                               encoder_low_pass_A=_encoder_low_pass(cfg, bands))
    overlap = signal_overlap(forward, ds, reference.to(device), device, seed=cfg.seed)
    if not cfg.skip_signal_check:
        check_signal_overlap(overlap)
    model = AtomVAE(ds.box, len(beads), cfg.zdim, cfg.encoder_hidden, cfg.decoder_hidden, reference,
                    zero_output=cfg.decoder_init == "zero").to(device)
    optimizer = make_optimizer(model, cfg.lr, cfg.weight_decay)
    restraints = restraint_tensors(inputs.graph, device)
    rows = np.linspace(0, len(ds) - 1, min(len(ds), 512)).astype(int)
    with torch.no_grad():
        t = forward.encoder_image(ds.batch(rows, device)) * forward.mask
        scale = float(t.flatten(1).std(1).mean().clamp_min(1e-12))
    estimate = estimate_forward_step_bytes(forward, cfg.batch, len(beads), len(restraints.pairs),
                                           sum(t.numel() for t in model.parameters()))
    memory_note = check_gpu_memory(estimate, device, cfg.batch, ds.box)
    amp = _amp_dtype(device, cfg.precision)
    setup = AtomStepSetup(model, optimizer, forward, restraints, LossSettings.from_config(cfg), scale,
                          amp=amp, scaler=fp16_loss_scaler(device) if amp == torch.float16 else None)
    return _Parts(cfg, inputs, model, setup, device, memory_note=memory_note)


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


def _checkpoint(p: _Parts, sc: RunScaffold) -> None:
    """A checkpoint: the scaffold's common state plus what eval-atom needs (rank 0 only)."""
    sc.save(box=p.inputs.dataset.box, apix=p.inputs.dataset.apix, scale=p.scale)


def _evaluate(cfg, p: _Parts, sc: RunScaffold, status="running", last=None):
    run_dir = sc.run_dir
    z = encode_all(p.model, p.forward, p.inputs.dataset, p.scale, p.device)
    save_z(run_dir, z)
    if last is not None:
        write_preview(run_dir / "preview.png", *last)
    ds, ref = p.inputs.dataset, p.inputs.reference
    write_manifest(run_dir, "atom", status, ds.box, ds.apix, frame=ref.frame,
                   low_pass={"A": cfg.low_pass_A, "source": p.inputs.low_pass_source,
                             "now_A": round(p.forward.low_pass_A, 3),
                             "encoder_A": p.forward.encoder_low_pass_A,
                             "schedule": band_schedule(cfg, cfg.low_pass_A).to_json()},
                   step=sc.step, images_seen=sc.images_seen, particles=len(ds),
                   original_box_px=ds.meta.box, original_apix_A=ds.meta.apix, zdim=cfg.zdim,
                   beads=len(ref.beads), z="z.npy", config="config.json", reference=REFERENCE_FILE,
                   losses="losses.csv", log="run.log",
                   preview="preview.png" if (run_dir / "preview.png").is_file() else None)
    sc.log.info("step %d: wrote z.npy (%d × %d)", sc.step, *z.shape)


def _write_run_files(cfg: AtomConfig, p: _Parts, run_dir: Path) -> None:
    """Rank 0's first files of the run: config.json and the reference model (user frame)."""
    write_json(run_dir / "config.json", cfg.to_json())
    beads, frame = p.inputs.reference.beads, p.inputs.reference.frame
    write_beads_pdb(run_dir / REFERENCE_FILE, beads, frame.to_user(beads.coords_A))
    if cfg.resume:       # the resumed config holds the resolved number: keep how it was found
        p.inputs.low_pass_source = ((read_manifest(run_dir) or {}).get("low_pass") or {}).get(
            "source", p.inputs.low_pass_source)


def train_atom(cfg: AtomConfig) -> dict:
    """Train (or resume) a stage-1 run; return its manifest.  See the module docstring.

    Under ``torchrun`` each process trains on its share of every global batch (DDP), the
    elastic-network relaxation sees the gathered global batch, and only rank 0 writes.
    """
    if cfg.resume and not (Path(cfg.out) / "run.json").is_file():
        raise InputError(f"{cfg.out}: there is no run to resume here; drop --resume to start one")
    cfg = _resolve_config(cfg)
    ctx, device_name = init_distributed(cfg.device)
    p = None
    try:
        if cfg.batch % ctx.world_size:
            raise InputError(f"--batch {cfg.batch} must be a multiple of the number of processes "
                             f"({ctx.world_size})")
        device = resolve_device(device_name)
        if device.type == "cpu":
            configure_cpu(cfg.threads)
        seed_everything(cfg.seed)
        p = _build(cfg, device)        # every input check happens before the run folder exists
        cfg = p.cfg                    # config.json records the resolved values
        if cfg.epochs is None:
            cfg = cfg.replace(epochs=default_epochs(len(p.inputs.dataset)))
        hold, ramp = band_images(_total_steps(cfg, len(p.inputs.dataset)) * cfg.batch,
                                 cfg.band_hold_images, cfg.band_ramp_images)
        cfg = cfg.replace(band_hold_images=hold, band_ramp_images=ramp)
        p.ctx = ctx
        run_dir, log = open_run(cfg.out, "atom", ctx, device, cfg.resume, cfg.overwrite,
                                lambda folder: _write_run_files(cfg, p, folder))
        for note in [*p.inputs.meta.notes, *p.inputs.reference.beads.notes] if ctx.is_main else []:
            log.warning("note: %s", note)          # accepted inputs with a caveat reach run.log
        if cfg.decoder_init == "fit" and not list_checkpoints(run_dir):
            # before DDP wraps the model: its construction gives every rank rank 0's weights
            fit_reference(p.model, p.forward, p.inputs.dataset, p.scale, cfg.batch, cfg.seed, device, log=log)
        if _use_compile(cfg, device, len(p.inputs.dataset), ctx.enabled):
            p.setup.losses_fn = CompiledOrEager(atom_losses, log)
            log.info("torch.compile: on (the first steps include the compilation)")
        if ctx.enabled:
            p.setup.net = ctx.wrap(p.model, device)
            p.setup.gather = ctx.all_gather_rows
        _train(cfg, p, run_dir, log)
    finally:
        if p is not None:
            p.setup.net = p.model                # drop the DDP wrapper before the group (close)
        ctx.close()
    return read_json(run_dir / "manifest.json")


def _total_steps(cfg: AtomConfig, n_particles: int) -> int:
    return max(1, math.ceil(cfg.epochs * n_particles / cfg.batch))


def _train(cfg: AtomConfig, p: _Parts, run_dir, log) -> None:
    n = len(p.inputs.dataset)
    total_steps = _total_steps(cfg, n)
    noise_gen = torch.Generator(device=p.device).manual_seed(cfg.seed + 1)
    sc = RunScaffold(run_dir, log, p.ctx, p.device, p.model, p.optimizer,
                     total_images=total_steps * cfg.batch, keep_checkpoints=cfg.keep_checkpoints,
                     readback_every=READBACK_STEPS,
                     skipped=SkippedSteps(p.optimizer, log, last_step=total_steps,
                                          advice="lower --lr, raise --low-pass, or check the "
                                                 "input particles"),
                     max_minutes=cfg.max_minutes, stop_after_steps=cfg.stop_after_steps,
                     scaler=p.setup.scaler, generators={"noise_rng": noise_gen},
                     step_images=cfg.batch)
    if cfg.resume and sc.resume() is not None:
        log.info("resuming at step %d (%d images seen) of %d", sc.step, sc.images_seen, total_steps)
    else:
        log.info("%d particles, box %d px at %.3f Å/px, %d beads, %d steps of %d images on %s%s",
                 n, p.inputs.dataset.box, p.inputs.dataset.apix, len(p.inputs.reference.beads),
                 total_steps, cfg.batch, p.device,
                 f" × {p.ctx.world_size} processes" if p.ctx.enabled else "")
        log.info("low-pass %.1f Å (%s); model frame: %s, shift %s Å", cfg.low_pass_A,
                 p.inputs.low_pass_source, p.inputs.reference.frame.source,
                 tuple(round(v, 2) for v in p.inputs.reference.frame.shift_A))
        bands = band_schedule(cfg, cfg.low_pass_A)
        if bands.active:
            log.info("coarse-to-fine: loss band %.1f Å for %d images, widening to %.1f Å by "
                     "image %d; encoder band %s", bands.start_A, bands.hold_images, bands.final_A,
                     bands.hold_images + bands.ramp_images,
                     "full box" if p.forward.encoder_low_pass_A is None
                     else f"{p.forward.encoder_low_pass_A:.1f} Å")
        _checkpoint(p, sc)
    log.info(p.memory_note)
    _train_loop(cfg, p, sc, total_steps, noise_gen)


READBACK_STEPS = 20     # losses and applied/skipped flags are read back every this many steps


def _preview(last) -> tuple | None:
    return (last[0][:8].detach(), last[1][:8].detach()) if last else None


def _train_loop(cfg, p: _Parts, sc: RunScaffold, total_steps, noise_gen):
    """Steps until ``total_steps``; every :data:`READBACK_STEPS` steps (and before each
    checkpoint, evaluation or stop) the pending losses and flags are read back in one transfer."""
    n, main, ds, log = len(p.inputs.dataset), p.ctx.is_main, p.inputs.dataset, sc.log
    sc.start()
    eval_every = max(1, int(cfg.eval_every_epochs * n / cfg.batch))
    last, micro = None, cfg.micro_batches
    bands = band_schedule(cfg, cfg.low_pass_A)
    logged_band = None
    stream = RowStream(n, cfg.seed)

    def rows_of(s: int) -> np.ndarray:      # step s trains on the stream's images s·B … (s+1)·B
        return shard(stream.rows(s * cfg.batch, cfg.batch, across_epochs=True).numpy(), p.ctx)
    # a stack larger than the cache streams from disk, read ahead in a thread (pinned on a GPU)
    streaming = None if ds.in_memory else BatchPrefetcher(ds, rows_of, p.device, start=sc.step)
    batch, batch_step = None, -1
    last_preview = time.perf_counter()
    try:
        while sc.step < total_steps:
            stop = sc.should_stop(check_time=sc.readback_due())
            if stop:
                sc.read_back()
                sc.log_stop(stop)
                if main:
                    _checkpoint(p, sc)
                    _evaluate(cfg, p, sc, status="stopped", last=_preview(last))
                break
            if batch_step != sc.step:          # (an out-of-memory retry keeps its batch and noise)
                batch = streaming.get(sc.step) if streaming else ds.batch(rows_of(sc.step), p.device)
                eps = torch.randn((cfg.batch, cfg.zdim), generator=noise_gen, device=p.device)
                batch_step = sc.step
            apply_lr_factor(p.optimizer, lr_factor(cfg.lr_schedule, sc.step, total_steps, cfg.lr_final_fraction))
            p.forward.set_low_pass(bands.at(sc.images_seen))      # a function of images seen
            band_mark = math.ceil(2 * p.forward.low_pass_A) / 2     # logged every 0.5 Å
            if bands.active and main and band_mark != logged_band:
                logged_band = band_mark
                log.info("step %d (%d images): loss band %.2f Å", sc.step, sc.images_seen,
                         p.forward.low_pass_A)
            try:
                total, terms, ok, last = train_step(p.setup, batch, shard(eps, p.ctx), _kl_beta(cfg, sc.images_seen),
                                                    micro, poison=cfg.debug_nan_at_step == sc.step + 1)
            except torch.OutOfMemoryError:
                micro = _back_off(micro, len(batch.rows), log, p.device)
                continue
            sc.advance(cfg.batch, {"loss": total, **terms}, ok)
            checkpoint = sc.step % cfg.checkpoint_every == 0 or sc.step == total_steps
            evaluate = sc.step % eval_every == 0 or sc.step == total_steps
            if checkpoint or evaluate or sc.readback_due():
                sc.read_back()
            if not main:
                continue
            if checkpoint:
                _checkpoint(p, sc)
            if evaluate:
                final = sc.step == total_steps
                preview = final or time.perf_counter() - last_preview > 600
                if preview:
                    last_preview = time.perf_counter()
                _evaluate(cfg, p, sc, status="finished" if final else "running",
                          last=_preview(last) if preview else None)
        sc.read_back()
    finally:
        if streaming is not None:
            streaming.close()
    if main:
        sc.close()
        log.info("finished %d steps in %.1f s (%.0f images/s)", sc.step, sc.elapsed_s,
                 sc.progress.images_per_s)
        if p.device.type == "cuda":
            log.info("peak GPU memory: %.2f GiB", torch.cuda.max_memory_allocated(p.device) / 2**30)
    p.ctx.barrier()
