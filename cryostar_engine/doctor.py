"""What this machine offers the engine, and what a planned stage-1 run would cost on it.

:func:`environment_report` (fast, reads no input): engine, Python, torch and its CUDA build,
each GPU with its free memory and bf16 support, the CPU threads this process may use and the
versions of the engine's dependencies.  :func:`plan_report` times a few real stage-1 training
steps (:func:`cryostar_engine.atom.step.train_step`) on random images at the planned box, with the
model's own beads and restraint graph, and turns them into a time per epoch, a memory estimate
and a recommended box and batch.
"""
from __future__ import annotations

import math
import os
import platform
import time
from importlib import metadata

import numpy as np
import torch

from .errors import InputError

__all__ = ["environment_report", "plan_report", "time_stage1_steps", "format_doctor"]

PACKAGES = ("numpy", "scipy", "mrcfile", "starfile", "biopython", "scikit-learn", "matplotlib")


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _gpus() -> list[dict]:
    from .train.runtime import gpu_has_native_bf16
    out = []
    for i in range(torch.cuda.device_count() if torch.cuda.is_available() else 0):
        free, total = torch.cuda.mem_get_info(i)
        out.append({"index": i, "name": torch.cuda.get_device_name(i),
                    "free_GiB": round(free / 2**30, 2), "total_GiB": round(total / 2**30, 2),
                    "bf16": bool(gpu_has_native_bf16(i))})
    return out


def _scipion() -> dict:
    """Scipion in this environment, from package metadata only (the engine never imports it):
    pyworkflow's version and whether ``cryostar_plugin`` is registered as a Scipion plugin."""
    plugins = {e.name for e in metadata.entry_points(group="pyworkflow.plugin")}
    return {"pyworkflow": _version("scipion-pyworkflow"),
            "plugin_registered": "cryostar_plugin" in plugins}


def environment_report() -> dict:
    """The machine and software report (see the module docstring); JSON-serialisable."""
    from . import __version__
    from .density.model import cpu_has_native_bf16
    threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "schema": "cryostar-doctor/1", "engine_version": __version__,
        "python": platform.python_version(), "platform": platform.platform(),
        "torch": {"version": torch.__version__, "cuda_build": torch.version.cuda,
                  "cuda_available": torch.cuda.is_available()},
        "gpus": _gpus(),
        "cpu": {"threads_available": threads, "torch_threads": torch.get_num_threads(),
                "bf16_native": bool(cpu_has_native_bf16())},
        "packages": {name: _version(name) for name in PACKAGES},
        "scipion": _scipion(),
    }


def time_stage1_steps(beads, box: int, apix: float, batch: int, device, steps: int = 3,
                      low_pass_A: float = 10.0) -> dict:
    """Seconds per stage-1 step (median of ``steps`` after one warm-up) and peak memory.

    ``beads`` : the model's :class:`~cryostar_engine.io.pdb.Beads` (box-centred Å); the images
    are random ``(batch, box, box)`` with random rotations and defocus (speed does not depend on
    content).  Returns ``{"seconds_per_step", "peak_GiB", "measured_memory"}``; the memory is
    measured on a GPU and estimated on the CPU.
    """
    from .atom.config import AtomConfig, resolve_rendering
    from .atom.centres import scatterers
    from .atom.forward import AtomForwardModel
    from .atom.graph import build_graph
    from .atom.memory import estimate_forward_step_bytes
    from .atom.networks import AtomVAE
    from .atom.step import AtomStepSetup, LossSettings, restraint_tensors, train_step
    from .data.particles import Batch
    from .physics.ctf import CtfParams
    from .train import make_optimizer
    from .train.runtime import gpu_has_native_bf16

    cfg, device = AtomConfig(), torch.device(device)
    cfg = resolve_rendering(cfg, beads, apix)
    graph = build_graph(beads)
    forward = AtomForwardModel(box, apix, torch.as_tensor(beads.amplitudes), cfg.bead_sigma_A,
                               low_pass_A, cfg.mask_radius, device,
                               centres=scatterers(cfg.bead_centre, beads, graph.continuity))
    ref = torch.as_tensor(beads.coords_A, dtype=torch.float32)
    model = AtomVAE(box, len(beads), cfg.zdim, cfg.encoder_hidden, cfg.decoder_hidden, ref).to(device)
    restraints = restraint_tensors(graph, device)
    amp = (torch.bfloat16 if device.type == "cuda" and gpu_has_native_bf16(device) else None)
    setup = AtomStepSetup(model, make_optimizer(model, cfg.lr, cfg.weight_decay), forward, restraints,
                          LossSettings.from_config(cfg), 1.0, amp=amp)
    gen = torch.Generator().manual_seed(0)
    rot = torch.linalg.qr(torch.randn(batch, 3, 3, generator=gen))[0]
    rot = rot * torch.linalg.det(rot)[:, None, None]            # proper rotations
    ones = torch.ones(batch)
    ctf = CtfParams(defocus_u_A=1.5e4 * ones, defocus_v_A=1.5e4 * ones, defocus_angle_deg=0 * ones,
                    voltage_kv=300 * ones, cs_mm=2.7 * ones, amplitude_contrast=0.1 * ones,
                    phase_shift_deg=0 * ones, bfactor_A2=0 * ones, scale=ones)
    b = Batch(rows=torch.arange(batch, device=device),
              images=torch.randn(batch, box, box, generator=gen).to(device), rotations=rot.to(device),
              shifts_px=torch.zeros(batch, 2, device=device), ctf=ctf.to(device))
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    for _ in range(steps + 1):
        eps = torch.randn(batch, cfg.zdim, generator=gen).to(device)
        start = time.perf_counter()
        total = train_step(setup, b, eps, 0.5)[0]
        float(total)                                             # waits for the device
        times.append(time.perf_counter() - start)
    if device.type == "cuda":
        peak, measured = torch.cuda.max_memory_allocated(device), True
    else:
        peak = estimate_forward_step_bytes(forward, batch, len(beads), len(restraints.pairs),
                                           sum(p.numel() for p in model.parameters()))
        measured = False
    return {"seconds_per_step": float(np.median(times[1:])), "peak_GiB": peak / 2**30,
            "measured_memory": measured}


def plan_report(particles, model, map_path=None, box=None, batch=None, datadir=None,
                passthrough=None, device=None, steps: int = 3) -> dict:
    """Estimate memory and time per epoch of a stage-1 run on these inputs on this machine."""
    from .atom.config import AtomConfig
    from .atom.inputs import default_box
    from .io.mrc import read_map
    from .io.relion import read_particles
    from .lowpass import resolve_low_pass
    from .reference import load_reference

    device = _device(device)
    kwargs = {"passthrough": passthrough} if passthrough else {}
    meta = read_particles(particles, datadir=datadir, **kwargs)
    map_data = read_map(map_path) if map_path else None
    beads = load_reference(model, meta.box, meta.apix, map_data, map_path).beads
    default = AtomConfig().low_pass_A                  # train-atom's default (a number or "auto")
    low_pass, source = resolve_low_pass(default, beads, map_data, meta.box, meta.apix, box)
    source = "train-atom's default" if source == "set" else source
    chosen_box = box or default_box(meta.box, meta.apix, low_pass)
    if chosen_box > meta.box or chosen_box < 16 or chosen_box % 2:
        raise InputError(f"--box must be an even number of pixels from 16 to the particles' "
                         f"{meta.box}, got {chosen_box}")
    batch = batch or AtomConfig().batch
    apix = meta.apix * meta.box / chosen_box
    timing = time_stage1_steps(beads, chosen_box, apix, batch, device, steps,
                               max(low_pass, 2 * apix))
    steps_per_epoch = math.ceil(len(meta) / batch)
    return {"particles": len(meta), "particle_box_px": meta.box, "beads": len(beads),
            "box_px": chosen_box, "box_source": "set" if box else "default for the low-pass",
            "low_pass_A": low_pass, "low_pass_source": source, "batch": batch, "device": str(device),
            "seconds_per_step": timing["seconds_per_step"], "steps_per_epoch": steps_per_epoch,
            "seconds_per_epoch": timing["seconds_per_step"] * steps_per_epoch,
            "images_per_second": batch / timing["seconds_per_step"],
            "memory_GiB": timing["peak_GiB"], "memory_measured": timing["measured_memory"],
            "recommended": _recommend(device, timing, batch, chosen_box, meta.box)}


def _device(name) -> torch.device:
    """``--device`` (default: cuda when available, else cpu), refused in one line when absent."""
    try:
        device = torch.device(name or ("cuda" if torch.cuda.is_available() else "cpu"))
    except RuntimeError:
        raise InputError(f"--device {name!r}: not a device name (cpu, cuda, cuda:N)") from None
    if device.type == "cuda" and not (torch.cuda.is_available()
                                      and (device.index or 0) < torch.cuda.device_count()):
        visible = torch.cuda.device_count() if torch.cuda.is_available() else 0
        raise InputError(f"--device {name}: no such GPU here ({visible} visible)")
    if device.type not in ("cpu", "cuda"):
        raise InputError(f"--device {name}: the engine runs on cpu or cuda")
    return device


def _recommend(device, timing: dict, batch: int, box: int, particle_box: int) -> dict:
    """Box: the default (from the low-pass). Batch: on a GPU the largest power of two whose
    memory (scaled from the measured step) fits 80 % of the free memory, at most 512; on the CPU
    the default 64 (larger batches only trade steps for time per step there)."""
    if device.type != "cuda":
        return {"box_px": box, "batch": 64, "why": "CPU: keep the default batch"}
    free = torch.cuda.mem_get_info(device)[0] / 2**30
    per_image = timing["peak_GiB"] / batch
    fit = 2 ** int(math.log2(max(1.0, 0.8 * free / max(per_image, 1e-9))))
    return {"box_px": box, "batch": int(min(fit, 512)),
            "why": f"{per_image * 1024:.1f} MiB per image at {box} px; {free:.1f} GiB free"}


def format_doctor(env: dict, plan: dict | None = None) -> str:
    """The reports as readable lines."""
    t, c = env["torch"], env["cpu"]
    lines = [f"cryostar-engine {env['engine_version']} (Python {env['python']}, {env['platform']})",
             f"torch       {t['version']}, CUDA build {t['cuda_build'] or 'none (CPU-only wheel)'}",
             f"CPU         {c['threads_available']} threads available to this process "
             f"(torch uses {c['torch_threads']}); native bf16: {'yes' if c['bf16_native'] else 'no'}"]
    lines += [f"GPU {g['index']}       {g['name']}: {g['free_GiB']:.1f} of {g['total_GiB']:.1f} GiB free; "
              f"bf16: {'yes' if g['bf16'] else 'no'}" for g in env["gpus"]] or ["GPU         none visible"]
    names = [f"{k} {v or 'MISSING'}" for k, v in env["packages"].items()]
    lines += [("Packages    " if i == 0 else " " * 12) + ", ".join(names[i:i + 4])
              for i in range(0, len(names), 4)]
    sc = env["scipion"]
    lines.append("Scipion     " + (f"pyworkflow {sc['pyworkflow']}; cryostar_plugin "
                                    f"{'registered' if sc['plugin_registered'] else 'NOT registered'}"
                                    if sc["pyworkflow"] else "not in this environment (engine only)"))
    if plan:
        mem = "measured" if plan["memory_measured"] else "estimated"
        lines += [f"Plan        {plan['particles']} particles, {plan['beads']} beads, batch {plan['batch']} "
                  f"on {plan['device']}",
                  f"Box         {plan['box_px']} px ({plan['box_source']}); low-pass {plan['low_pass_A']:.1f} Å",
                  f"            ({plan['low_pass_source']})",
                  f"Speed       {plan['seconds_per_step']:.3f} s per step, {plan['images_per_second']:.0f} "
                  f"images/s, {plan['seconds_per_epoch']:.1f} s per epoch ({plan['steps_per_epoch']} steps)",
                  f"Memory      {plan['memory_GiB']:.2f} GiB per step ({mem})",
                  f"Recommend   box {plan['recommended']['box_px']} px, batch {plan['recommended']['batch']} "
                  f"({plan['recommended']['why']})"]
    return "\n".join(lines) + "\n"
