"""Stage-1 training: the VAE fit with restraints, starting from the reference (the decoder's
output layer is zero-initialised, so every latent first decodes to the reference model).

The schedule is defined by images seen: step ``s`` trains on rows ``stream[s·B:(s+1)·B]`` of an
endless stream made of one seeded permutation per epoch, so the data order is a pure function
of (seed, step) and a resumed run continues exactly where the checkpoint left it.
"""
from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .. import __version__
from ..errors import InputError
from ..io.pdb import write_beads_pdb
from ..train import (NonFiniteGuard, Progress, configure_cpu, load_latest_checkpoint,
                     prepare_run_dir, read_json, resolve_device, run_logger, save_checkpoint,
                     seed_everything, write_json)
from .config import AtomConfig
from .evaluate import REFERENCE_FILE, encode_all, encoder_input, save_z, write_preview
from .forward import AtomForwardModel
from .inputs import AtomInputs, check_signal_overlap, load_atom_inputs, signal_overlap
from .losses import (clash_loss, continuity_loss, elastic_network_loss, image_loss, kl_free_bits,
                     pair_distances)
from .networks import AtomVAE

__all__ = ["train_atom", "batch_rows", "RESUMABLE_FIELDS"]

# Settings a resumed run may change; all others come from the run's config.json.
RESUMABLE_FIELDS = ("epochs", "device", "threads", "stop_after_steps", "max_minutes", "checkpoint_every",
                    "eval_every_epochs", "max_cache_gb", "precision")


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
    forward: AtomForwardModel
    optimizer: torch.optim.Optimizer
    device: torch.device
    pairs: dict
    scale: float
    n_mask: float


def _resolve_config(cfg: AtomConfig) -> AtomConfig:
    """On ``--resume`` the run's saved config.json rules; of the :data:`RESUMABLE_FIELDS`, those
    given with a non-default value (e.g. a longer ``--epochs``) override it."""
    path = Path(cfg.out) / "config.json"
    if not cfg.resume or not path.is_file():
        return cfg
    saved = read_json(path)
    saved.pop("schema_version", None)
    saved = {k: tuple(v) if isinstance(v, list) else v for k, v in saved.items()}
    defaults = AtomConfig()
    saved.update({k: getattr(cfg, k) for k in RESUMABLE_FIELDS if getattr(cfg, k) != getattr(defaults, k)})
    saved.update(resume=True, overwrite=False, out=cfg.out)
    return AtomConfig(**saved)


def _autocast(device: torch.device, precision: str):
    if device.type != "cuda" or precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.float16 if precision == "fp16" else torch.bfloat16
    return torch.autocast("cuda", dtype=dtype)


def _build(cfg: AtomConfig, device: torch.device) -> _Parts:
    inputs = load_atom_inputs(cfg, cache_device=device)
    ds, beads = inputs.dataset, inputs.reference.beads
    reference = torch.as_tensor(beads.coords_A, dtype=torch.float32)
    forward = AtomForwardModel(ds.box, ds.apix, torch.as_tensor(beads.amplitudes), cfg.bead_sigma_A,
                               cfg.low_pass_A, cfg.mask_radius, device)
    overlap = signal_overlap(forward, ds, reference.to(device), device, seed=cfg.seed)
    if not cfg.skip_signal_check:
        check_signal_overlap(overlap)
    model = AtomVAE(ds.box, len(beads), cfg.zdim, cfg.encoder_hidden, cfg.decoder_hidden, reference).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay,
                                  fused=True)
    g = inputs.graph
    sizes = np.cumsum([0, len(g.continuity), len(g.en), len(g.clash)])
    pairs = {"all": torch.as_tensor(np.concatenate([g.continuity, g.en, g.clash]), device=device),
             "cont": slice(sizes[0], sizes[1]), "en": slice(sizes[1], sizes[2]),
             "clash": slice(sizes[2], sizes[3]),
             "cont_d0": torch.as_tensor(g.continuity_d0, dtype=torch.float32, device=device),
             "en_d0": torch.as_tensor(g.en_d0, dtype=torch.float32, device=device),
             "en_group": torch.as_tensor(g.en_group, device=device)}
    rows = np.linspace(0, len(ds) - 1, min(len(ds), 512)).astype(int)
    with torch.no_grad():
        t = forward.target(ds.batch(rows, device)) * forward.mask
        scale = float(t.flatten(1).std(1).mean().clamp_min(1e-12))
    return _Parts(inputs, model, forward, optimizer, device, pairs, scale, float(forward.mask.sum()))


def _losses(cfg, p: _Parts, batch, images_seen, noise_gen):
    with _autocast(p.device, cfg.precision):
        target = p.forward.target(batch)
        mu, logvar = p.model.encoder(encoder_input(p.forward, batch, p.scale, target))
        eps = torch.randn(mu.shape, generator=noise_gen, device=mu.device, dtype=mu.dtype)
        z = mu + eps * torch.exp(0.5 * logvar)
        coords = p.model.structures(z).float()
    pred = p.forward.render(coords, batch)
    q = p.pairs
    d = pair_distances(coords, q["all"])
    terms = {
        "image": image_loss(pred, target, p.forward.mask),
        "continuity": continuity_loss(d[:, q["cont"]], q["cont_d0"]),
        "elastic": elastic_network_loss(d[:, q["en"]], q["en_d0"], q["en_group"], cfg.en_keep_ratio),
        "clash": clash_loss(d[:, q["clash"]], cfg.clash_min_A),
        "kl": kl_free_bits(mu.float(), logvar.float(), cfg.kl_free_bits),
    }
    beta = cfg.kl_beta_max * min(images_seen / max(cfg.kl_warmup_images, 1), 1.0)
    total = (terms["image"] + cfg.continuity_weight * terms["continuity"]
             + cfg.en_weight * terms["elastic"] + cfg.clash_weight * terms["clash"]
             + beta * terms["kl"] / p.n_mask)
    return total, terms, (target, pred)


def _checkpoint(cfg, p: _Parts, run_dir, step, images_seen, noise_gen):
    state = {"model": p.model.state_dict(), "optimizer": p.optimizer.state_dict(), "step": step,
             "images_seen": images_seen, "noise_rng": noise_gen.get_state(), "box": p.inputs.dataset.box,
             "apix": p.inputs.dataset.apix, "scale": p.scale, "engine_version": __version__}
    save_checkpoint(run_dir, state, step, keep=cfg.keep_checkpoints)


def _evaluate(cfg, p: _Parts, run_dir, step, images_seen, log, status="running", last=None):
    z = encode_all(p.model, p.forward, p.inputs.dataset, p.scale, p.device)
    save_z(run_dir, z)
    if last is not None:
        write_preview(run_dir / "preview.png", *last)
    ds = p.inputs.dataset
    write_json(run_dir / "manifest.json", {
        "kind": "atom", "engine_version": __version__, "status": status, "step": step,
        "images_seen": images_seen, "particles": len(ds), "box_px": ds.box, "apix_A": ds.apix,
        "original_box_px": ds.meta.box, "original_apix_A": ds.meta.apix, "zdim": cfg.zdim,
        "beads": len(p.inputs.reference.beads), "z": "z.npy", "config": "config.json",
        "reference": REFERENCE_FILE, "losses": "losses.csv", "log": "run.log",
        "checkpoints": "checkpoints", "preview": "preview.png" if (run_dir / "preview.png").is_file() else None,
        "reference_shift_A": p.inputs.reference.shift_A.tolist(),
    })
    log.info("step %d: wrote z.npy (%d × %d)", step, *z.shape)


def train_atom(cfg: AtomConfig) -> dict:
    """Train (or resume) a stage-1 run; return its manifest.  See the module docstring."""
    if cfg.resume and not (Path(cfg.out) / "run.json").is_file():
        raise InputError(f"{cfg.out}: there is no run to resume here; drop --resume to start one")
    cfg = _resolve_config(cfg)
    device = resolve_device(cfg.device)
    if device.type == "cpu":
        configure_cpu(cfg.threads)
    seed_everything(cfg.seed)
    p = _build(cfg, device)            # every input check happens before the run folder exists
    run_dir = prepare_run_dir(cfg.out, "atom", resume=cfg.resume, overwrite=cfg.overwrite)
    log = run_logger(run_dir)
    write_json(run_dir / "config.json", cfg.to_json())
    write_beads_pdb(run_dir / REFERENCE_FILE, p.inputs.reference.beads, p.inputs.reference.beads.coords_A)
    n = len(p.inputs.dataset)
    total_steps = max(1, math.ceil(cfg.epochs * n / cfg.batch))
    noise_gen = torch.Generator(device=device).manual_seed(cfg.seed + 1)
    state = load_latest_checkpoint(run_dir, map_location=device) if cfg.resume else None
    if state is not None:
        p.model.load_state_dict(state["model"])
        p.optimizer.load_state_dict(state["optimizer"])
        noise_gen.set_state(state["noise_rng"].cpu() if device.type == "cpu" else state["noise_rng"])
        step, images_seen = int(state["step"]), int(state["images_seen"])
        log.info("resuming at step %d (%d images seen) of %d", step, images_seen, total_steps)
    else:
        log.info("%d particles, box %d px at %.3f Å/px, %d beads, %d steps of %d images on %s",
                 n, p.inputs.dataset.box, p.inputs.dataset.apix, len(p.inputs.reference.beads),
                 total_steps, cfg.batch, device)
        step = images_seen = 0
        _checkpoint(cfg, p, run_dir, step, images_seen, noise_gen)
    _train_loop(cfg, p, run_dir, log, step, images_seen, total_steps, noise_gen)
    return read_json(run_dir / "manifest.json")


def _train_loop(cfg, p: _Parts, run_dir, log, step, images_seen, total_steps, noise_gen):
    n = len(p.inputs.dataset)
    guard = NonFiniteGuard(p.model, p.optimizer, log)
    progress = Progress(run_dir, total_steps * cfg.batch, images_seen)
    progress.truncate_after(step)
    eval_every = max(1, int(cfg.eval_every_epochs * n / cfg.batch))
    last = None
    t0 = last_preview = time.perf_counter()
    while step < total_steps:
        if cfg.stop_after_steps is not None and step >= cfg.stop_after_steps:
            log.info("stopping at step %d as asked (--stop-after-steps)", step)
            progress.close()
            return
        if cfg.max_minutes is not None and time.perf_counter() - t0 > 60 * cfg.max_minutes:
            log.info("time limit of %g min reached at step %d; continue with --resume", cfg.max_minutes, step)
            _checkpoint(cfg, p, run_dir, step, images_seen, noise_gen)
            _evaluate(cfg, p, run_dir, step, images_seen, log, status="stopped (time limit)",
                      last=(last[0][:8].detach(), last[1][:8].detach()) if last else None)
            break
        batch = p.inputs.dataset.batch(batch_rows(step, cfg.batch, n, cfg.seed), p.device)
        total, terms, last = _losses(cfg, p, batch, images_seen, noise_gen)
        p.optimizer.zero_grad(set_to_none=True)
        total.backward()
        if not guard.check(total.detach(), step):
            continue
        p.optimizer.step()
        step += 1
        images_seen += cfg.batch
        progress.record(step, cfg.batch, {"loss": total.detach(), **{k: v.detach() for k, v in terms.items()}})
        if step % 50 == 0:
            guard.mark_good()
        if step % cfg.checkpoint_every == 0 or step == total_steps:
            _checkpoint(cfg, p, run_dir, step, images_seen, noise_gen)
        if step % eval_every == 0 or step == total_steps:
            final = step == total_steps
            preview = final or time.perf_counter() - last_preview > 600
            if preview:
                last_preview = time.perf_counter()
            _evaluate(cfg, p, run_dir, step, images_seen, log, status="finished" if final else "running",
                      last=(last[0][:8].detach(), last[1][:8].detach()) if preview else None)
    progress.close()
    log.info("finished %d steps in %.1f s (%.0f images/s)", step, time.perf_counter() - t0,
             progress.images_per_s)
