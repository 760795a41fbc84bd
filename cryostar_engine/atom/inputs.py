"""Load and validate everything a stage-1 run needs, before any run folder or GPU time."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from ..data.particles import ParticleDataset
from ..errors import InputError
from ..io.mrc import read_map
from ..io.relion import ParticleMetadata, read_particles
from ..lowpass import resolve_low_pass
from ..reference import Reference, load_reference
from ..train.schedule import SCHEDULES
from .config import BEAD_CENTRES, COMPILE_MODES, DECODER_INITS, AtomConfig
from .graph import RestraintGraph, build_graph

__all__ = ["AtomInputs", "load_atom_inputs", "default_box", "signal_overlap", "check_signal_overlap"]


@dataclass
class AtomInputs:
    meta: ParticleMetadata
    reference: Reference
    dataset: ParticleDataset
    graph: RestraintGraph
    low_pass_A: float = 10.0       # the resolved image low-pass (Å)
    low_pass_source: str = "set"   # "set", "default", "auto: FSC(model,map)=0.5 at …", "auto: no map, 6 Å"


def fft_friendly(n: int) -> int:
    """The smallest even number ≥ ``n`` with no prime factor above 7: a size FFTs handle fast
    (one thread, 64 images: 58 px takes 4× the time of 60 px, whose factors are 2, 3 and 5)."""
    n += n % 2
    while True:
        m = n
        for p in (2, 3, 5, 7):
            while m % p == 0:
                m //= p
        if m == 1:
            return n
        n += 2


def default_box(original_box: int, apix: float, low_pass_A: float, oversampling: float = 1.25) -> int:
    """Working box when none is given: the smallest even box whose Nyquist frequency exceeds the
    loss's low-pass by ``oversampling`` (so nothing the loss can see is lost) and with no prime
    factor above 7 (:func:`fft_friendly`), at least 24 px and at most the particles' box.
    E.g. 128 px at 1 Å/px with an 8 Å low-pass → 40 px.

    Every image and every rendering of stage 1 is band-limited at the low-pass, so a larger box
    only costs time: rendering, FFTs and the encoder's first layer all scale with box².
    """
    n = fft_friendly(math.ceil(2 * oversampling * original_box * apix / low_pass_A))
    return int(min(original_box, max(24, n)))


def load_atom_inputs(cfg: AtomConfig, cache_device="cpu") -> AtomInputs:
    """Read particles, model and map; resolve the low-pass (``cfg.low_pass_A`` None = auto, see
    :func:`cryostar_engine.lowpass.resolve_low_pass`) and then the box (None = :func:`default_box`
    of that low-pass); check box, low-pass and frame; build the restraint graph."""
    if not cfg.particles or not cfg.model:
        raise InputError("--particles and --model are required")
    if cfg.lr_schedule not in SCHEDULES:
        raise InputError(f"--lr-schedule {cfg.lr_schedule!r}: choose one of {', '.join(SCHEDULES)}")
    if cfg.bead_centre not in BEAD_CENTRES:
        raise InputError(f"--bead-centre {cfg.bead_centre!r}: choose one of {', '.join(BEAD_CENTRES)}")
    if cfg.decoder_init not in DECODER_INITS:
        raise InputError(f"--decoder-init {cfg.decoder_init!r}: choose one of {', '.join(DECODER_INITS)}")
    if cfg.compile not in COMPILE_MODES:
        raise InputError(f"--compile {cfg.compile!r}: choose one of {', '.join(COMPILE_MODES)}")
    if not 0.0 <= cfg.lr_final_fraction <= 1.0:
        raise InputError(f"--lr-final-fraction must lie in [0, 1], got {cfg.lr_final_fraction:g}")
    meta = read_particles(cfg.particles, datadir=cfg.datadir, apix=cfg.apix,
                          amplitude_contrast=getattr(cfg, "amplitude_contrast", None),
                          passthrough=getattr(cfg, "passthrough", None))
    map_data = read_map(cfg.map) if cfg.map else None
    reference = load_reference(cfg.model, meta.box, meta.apix, map_data, cfg.map)
    low_pass, low_pass_source = resolve_low_pass(getattr(cfg, "low_pass_A", None), reference.beads,
                                                 map_data, meta.box, meta.apix, cfg.box)
    if low_pass_source == "set" and cfg.low_pass_A == type(cfg).low_pass_A:
        low_pass_source = "default"      # not given: say so in the log, manifest and summaries
    box = cfg.box or default_box(meta.box, meta.apix, low_pass)
    if box > meta.box:
        raise InputError(f"--box {box} is larger than the particles' {meta.box} px; "
                         f"choose at most {meta.box}")
    if box < 16 or box % 2:
        raise InputError(f"--box must be an even number of pixels ≥ 16, got {box}")
    apix = meta.apix * meta.box / box
    if low_pass < 2 * apix:
        raise InputError(f"--low-pass {low_pass:g} Å is beyond Nyquist ({2 * apix:.2f} Å) at "
                         f"box {box}; raise --low-pass or --box")
    if cfg.epochs is not None and not cfg.epochs > 0:
        raise InputError(f"--epochs must be positive, got {cfg.epochs:g}")
    if cfg.batch < 2:
        raise InputError("--batch must be at least 2 (the elastic-network relaxation needs a batch)")
    dataset = ParticleDataset(meta, box=box, invert=cfg.invert_contrast,
                              max_cache_bytes=cfg.max_cache_gb * 1e9, cache_device=cache_device)
    graph = build_graph(reference.beads, cfg.en_cutoff_A, cfg.en_nt_cutoff_A, cfg.clash_min_A,
                        cfg.clash_max_ref_A)
    return AtomInputs(meta=meta, reference=reference, dataset=dataset, graph=graph,
                      low_pass_A=low_pass, low_pass_source=low_pass_source)


def signal_overlap(forward, dataset: ParticleDataset, reference_A: torch.Tensor, device,
                   n: int = 256, seed: int = 0) -> float:
    """Mean correlation between the reference's rendered projections and up to ``n`` particles.

    Clearly positive when the model, its frame, the poses and the contrast agree with the data
    (0.39 on the bundled AdK set); about 0 when the beads do not overlap the particles' signal;
    negative for dark particles.
    """
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.permutation(len(dataset))[:n])
    b = dataset.batch(rows, device)
    with torch.no_grad():
        target = forward.target(b)
        pred = forward.render(reference_A.expand(len(rows), -1, -1), b)
        m = forward.mask
        p = (pred - pred.mean((1, 2), keepdim=True)) * m
        t = (target - target.mean((1, 2), keepdim=True)) * m
        cc = (p * t).sum((1, 2)) / (p.norm(dim=(1, 2)) * t.norm(dim=(1, 2))).clamp_min(1e-12)
    return float(cc.mean())


def check_signal_overlap(cc: float) -> None:
    """Refuse to train when the reference does not match the particles at all."""
    if cc < -0.02:
        raise InputError(f"the reference's projections anti-correlate with the particles "
                         f"({cc:.3f}): the particles look dark; pass --invert-contrast")
    if cc < 0.01:
        raise InputError(f"the reference's projections do not correlate with the particles "
                         f"({cc:.3f}): the beads do not overlap the particles' signal; check that the "
                         "model is docked into the consensus map of these particles (give it with "
                         "--map) and run check-inputs")
