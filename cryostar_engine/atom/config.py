"""The typed configuration of a stage-1 (atom generator) run.

Every hyper-parameter of the method is a field here, declared with
:func:`~cryostar_engine.settings.setting` (help, unit, choices, range).  The CLI exposes each
as ``--field-name`` (essential ones in the main help, the rest under "advanced"), a JSON file
given with ``--config`` can set any of them, ``train-atom --settings-json`` lists them, and the
resolved configuration is saved as ``RUN/config.json`` (``"kind": "atom"``).  Every value is
range-checked when the config is built (:func:`~cryostar_engine.settings.validate_settings`).
The training length is defined by images seen (``epochs × particles``), so changing the batch
size or the number of GPUs does not silently change the run.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from ..settings import (Q0_DEFAULT_TEXT, StageConfig, config_from_dict, hook_for_tests,
                        read_saved_config, read_settings_file, setting)

__all__ = ["AtomConfig", "ESSENTIAL", "load_config_file", "read_run_config", "default_epochs",
           "band_images", "bead_sigma", "MIN_BEAD_SIGMA_PX", "residue_bead_sigma", "resolve_bead_centre",
           "resolve_rendering"]

SCHEMA_VERSION = 2          # 2: "kind", low_pass_A may be None (auto)
COMPILE_MODES = ("auto", "on", "off")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
DEVICES = ("auto", "cpu", "cuda")
BEAD_CENTRES = ("residue", "backbone", "atoms", "groups", "auto")  # appended: a saved form keeps its index
DECODER_INITS = ("fit", "zero")
LR_SCHEDULES = ("cosine", "constant")
ENCODER_BANDS = ("start", "final", "full")


DEFAULT_EPOCHS = 20.0
MIN_TRAIN_IMAGES = 175_000
#: Coarse-to-fine by default: the loss holds the start band for this fraction of the run's
#: images, then widens to the final band over the next :data:`BAND_RAMP_FRACTION`.
BAND_HOLD_FRACTION = 0.2
BAND_RAMP_FRACTION = 0.4


#: ``--bead-centre auto``: atom groups when the model has more atoms than this per residue
#: (bead), else one Gaussian per residue (a Cα or P trace: its one atom per residue is not the
#: residue's density).  With beads at least :data:`MIN_BEAD_SIGMA_PX` wide, groups measured
#: better than residues at every final band tried on AdK (6, 7 and 9 Å; 4–5 Å in session 8).
GROUPS_MIN_ATOMS_PER_BEAD = 2.0


def resolve_bead_centre(bead_centre: str, beads) -> str:
    """``--bead-centre`` with ``auto`` resolved for a reference's :class:`~cryostar_engine.
    reference.Beads`: ``groups`` when it has more than :data:`GROUPS_MIN_ATOMS_PER_BEAD` atoms
    per bead, else ``residue``."""
    if bead_centre != "auto":
        return bead_centre
    atoms = 0 if beads.atom_bead is None else len(beads.atom_bead)
    return "groups" if atoms > GROUPS_MIN_ATOMS_PER_BEAD * len(beads) else "residue"


#: The default --bead-sigma of each --bead-centre (Å): points of an atom group or atoms are
#: narrow; one point per residue stands for the whole residue.
BEAD_SIGMA_BY_CENTRE_A = {"groups": 1.0, "atoms": 1.0, "residue": 2.0, "backbone": 2.0}


#: The narrowest default bead, in pixels of the working box.  Beads are Gaussians sampled at
#: pixel centres; below ~0.6 px a bead's sampled mass depends on where it sits between pixels
#: (per axis by 0.3 % at 0.6 px, 3 % at 0.5 px, 13 % at 0.375 px: 1 Å beads at a 7 Å band's
#: 2.7 Å pixels), which pulls the beads towards pixel centres.
MIN_BEAD_SIGMA_PX = 0.6


def bead_sigma(cfg, apix: float | None = None) -> float:
    """The bead width (Å) of a stage-1 config: ``--bead-sigma``, else the default of its
    ``--bead-centre`` (:data:`BEAD_SIGMA_BY_CENTRE_A`; resolve ``auto`` first), widened to
    :data:`MIN_BEAD_SIGMA_PX` pixels of the working box when its pixel size ``apix`` (Å) is
    given."""
    if cfg.bead_sigma_A is not None:
        return float(cfg.bead_sigma_A)
    sigma = BEAD_SIGMA_BY_CENTRE_A[cfg.bead_centre]
    return float(max(sigma, MIN_BEAD_SIGMA_PX * apix) if apix is not None else sigma)


def resolve_rendering(cfg, beads, apix: float):
    """``cfg`` with ``bead_centre`` (``auto`` resolved for the reference's ``beads``) and
    ``bead_sigma_A`` (:func:`bead_sigma` at the working box's pixel ``apix``, Å) as a run
    renders them: the one place a run, ``doctor`` and config.json take them from."""
    cfg = cfg.replace(bead_centre=resolve_bead_centre(cfg.bead_centre, beads))
    return cfg.replace(bead_sigma_A=bead_sigma(cfg, apix))


def residue_bead_sigma(cfg) -> float:
    """The width (Å) of one Gaussian per residue for a model decoded by this run (model–map
    validation renders the decoded beads so): the run's own with ``residue``/``backbone``
    rendering, else that form's default (the ``groups``/``atoms`` widths are for points much
    narrower than a residue)."""
    if cfg.bead_centre in ("residue", "backbone"):
        return bead_sigma(cfg)
    return BEAD_SIGMA_BY_CENTRE_A["residue"]


def band_images(total_images: int, hold_images: int | None, ramp_images: int | None) -> tuple[int, int]:
    """``(hold, ramp)`` images of the band schedule: the given numbers, or by default
    :data:`BAND_HOLD_FRACTION` and :data:`BAND_RAMP_FRACTION` of the run's ``total_images``
    (so the final band is reached with two fifths of any run left to train at it)."""
    hold = round(BAND_HOLD_FRACTION * total_images) if hold_images is None else int(hold_images)
    ramp = round(BAND_RAMP_FRACTION * total_images) if ramp_images is None else int(ramp_images)
    return hold, ramp


def default_epochs(n_particles: int) -> float:
    """Training length when ``--epochs`` is not given: 20 passes, or more on a set of fewer than
    15,000 particles, so that the networks see at least :data:`MIN_TRAIN_IMAGES` images (the
    latent starts to carry the motion after a few hundred to a few thousand steps)."""
    return max(DEFAULT_EPOCHS, float(math.ceil(MIN_TRAIN_IMAGES / max(n_particles, 1))))


_s = setting
_E = dict(essential=True)
_POSITIVE = dict(min=0, min_inclusive=False)
_AT_LEAST_0 = dict(min=0)
_AT_LEAST_1 = dict(min=1)


@dataclass(frozen=True)
class AtomConfig(StageConfig):
    """Everything that defines a stage-1 run (see the module docstring)."""

    KIND = "atom"
    SCHEMA_VERSION = SCHEMA_VERSION

    # inputs and outputs
    particles: str = _s("", "RELION star file or cryoSPARC .cs file with poses and CTF",
                        required=True, **_E)
    model: str = _s("", "reference atomic model (PDB/mmCIF) docked into the consensus map",
                    required=True, **_E)
    out: str = _s("", "output folder of the run", required=True, **_E)
    datadir: str | None = _s(None, "folder that the star file's image paths are relative to",
                             default_text="the star file's folder", **_E)
    passthrough: str | None = _s(None, "cryoSPARC input only: the job's passthrough .cs, whose "
                                       "fields (poses, CTF) --particles lacks", default_text="none")
    map: str | None = _s(None, "consensus map the model was docked into: its origin sets the frame",
                         default_text="none: the model's coordinates are taken as they are", **_E)
    apix: float | None = _s(None, "pixel size of the particles, overriding the star file",
                            unit="Å", default_text="from the star file", **_POSITIVE, **_E)
    amplitude_contrast: float | None = _s(None, "amplitude contrast of the CTF, replacing the star "
                                                "file's", default_text=Q0_DEFAULT_TEXT,
                                          min=0, max=1, max_inclusive=False)
    # essentials
    box: int | None = _s(None, "working box (Fourier-cropped particles); an even number", unit="px",
                         default_text="the smallest even box whose Nyquist frequency is 1.25 × "
                                      "the low-pass, at least 24 px and at most the particles' "
                                      "box", min=16, even=True, **_E)
    epochs: float | None = _s(None, "training length in passes over the particles",
                              default_text="20, or on smaller sets as many as it takes to show "
                                           f"the networks {MIN_TRAIN_IMAGES:,} images (the latent "
                                           "needs a few thousand steps)", **_POSITIVE, **_E)
    batch: int = _s(64, "images per optimisation step (global batch)", **_AT_LEAST_1, **_E)
    zdim: int = _s(8, "latent dimension", **_AT_LEAST_1, **_E)
    low_pass_A: float | None = _s(
        None, "low-pass of the image loss at the end of training (the final band: the loss "
              "starts coarser and widens to it)", unit="Å", words=("auto",),
        default_text="auto: the resolution where FSC(model, consensus map) = 0.5, at least 2.5 "
                     "pixels of the particles (6 Å without --map), the number check-inputs "
                     "suggests", **_POSITIVE, **_E)
    low_pass_start_A: float | None = _s(
        10.0, "coarse-to-fine: the image loss starts at this low-pass, where the latent forms, "
              "and its band widens to --low-pass (linearly in spatial frequency) over "
              "--band-ramp-images images, after --band-hold-images at the start band; the "
              "working box is chosen for the final band from the start. No effect when "
              "--low-pass is not finer", unit="Å", **_POSITIVE)
    device: str = _s("auto", "where to train (cuda:N picks one GPU; auto: cuda when a GPU "
                                  "is visible, else cpu)", choices=DEVICES, **_E)
    seed: int = _s(0, "random seed", **_AT_LEAST_0, **_E)
    resume: bool = _s(False, "continue the run in --out from its last checkpoint", **_E)
    overwrite: bool = _s(False, "delete the run in --out and start again", **_E)
    invert_contrast: bool = _s(False, "negate the images (dark particles)", **_E)
    # optimiser
    lr: float = _s(1e-3, "AdamW peak learning rate", **_POSITIVE)
    lr_schedule: str = _s("cosine", "learning-rate schedule over the run's steps: cosine (decays to "
                                    "lr × lr_final_fraction at the last step) or constant",
                          choices=LR_SCHEDULES)
    lr_final_fraction: float = _s(0.05, "cosine schedule: final learning rate as a fraction of --lr",
                                  min=0, max=1)
    weight_decay: float = _s(0.01, "AdamW weight decay", **_AT_LEAST_0)
    # networks
    encoder_hidden: tuple = _s((512, 256, 128, 64, 32), "encoder hidden widths", **_AT_LEAST_1)
    decoder_hidden: tuple = _s((64, 128, 256, 512, 1024), "decoder hidden widths", **_AT_LEAST_1)
    decoder_init: str = _s("fit", "start of the decoder: fit (train the whole VAE to decode every "
                                  "particle to the reference before the main fit, as the original) "
                                  "or zero (output layer at zero: no gradient reaches the encoder "
                                  "at first, so the latent starts late)", choices=DECODER_INITS)
    # coarse-to-fine band schedule (with --low-pass-start)
    band_hold_images: int | None = _s(None, "coarse-to-fine: images trained at the start band "
                                              "before it widens (the latent forms at low "
                                              "resolution)", default_text="a fifth of the run's "
                                              "images", **_AT_LEAST_0)
    band_ramp_images: int | None = _s(None, "coarse-to-fine: images over which the band widens "
                                              "from --low-pass-start to --low-pass",
                                      default_text="two fifths of the run's images", **_AT_LEAST_0)
    encoder_band: str = _s("final", "what the encoder sees, fixed for the whole run: the particle "
                                    "low-passed at the start band (start), at the final band "
                                    "(final), or up to the working box's Nyquist (full)",
                           choices=ENCODER_BANDS)
    # forward model
    bead_sigma_A: float | None = _s(None, "Gaussian width of each rendered point", unit="Å",
                                    default_text=f"{BEAD_SIGMA_BY_CENTRE_A['groups']:g} Å for "
                                                 f"groups and atoms, "
                                                 f"{BEAD_SIGMA_BY_CENTRE_A['residue']:g} Å for "
                                                 f"residue and backbone, at least "
                                                 f"{MIN_BEAD_SIGMA_PX:g} pixels of the working "
                                                 "box", **_POSITIVE)
    bead_centre: str = _s("auto", "where each bead's density is rendered: auto (groups, or residue "
                                  "for a model of one atom per residue, e.g. a Cα trace), groups (one point per "
                                  "atom group of its residue, electron-weighted: backbone and "
                                  "side chain, or phosphate, sugar and base; carried by the "
                                  "residue's local backbone frame), residue (one point at the "
                                  "electron-weighted centre of its residue's atoms, carried the "
                                  "same way), atoms (every atom of the residue, carried the same "
                                  "way) or backbone (at the Cα/C1' atom itself, as the original "
                                  "CryoSTAR)", choices=BEAD_CENTRES)
    mask_radius: float = _s(0.9375, "image-loss mask radius as a fraction of the half box",
                            min=0, max=1, min_inclusive=False)
    # restraints
    continuity_weight: float = _s(1.0, "weight of the bond-continuity restraint", **_AT_LEAST_0)
    en_weight: float = _s(0.5, "weight of the elastic-network (local rigidity) restraint", **_AT_LEAST_0)
    en_cutoff_A: float = _s(12.0, "elastic-network cutoff for amino-acid pairs (same chain)",
                            unit="Å", **_POSITIVE)
    en_nt_cutoff_A: float = _s(15.0, "elastic-network cutoff for nucleotide pairs (any chain)",
                               unit="Å", **_POSITIVE)
    en_keep_ratio: float = _s(0.9, "fraction of elastic-network pairs kept each step (adaptive "
                                   "relaxation; the original CryoSTAR used 0.99, and 0.8 for AdK)",
                              min=0, max=1, min_inclusive=False)
    en_tolerance_A: float = _s(0.5, "elastic-network tolerance: a pair's distance may deviate this "
                                    "much from the reference for free (flat-bottom restraint; 0 = "
                                    "the original's harmonic restraint)", unit="Å", **_AT_LEAST_0)
    clash_weight: float = _s(1.0, "weight of the clash restraint", **_AT_LEAST_0)
    clash_min_A: float = _s(4.0, "beads closer than this clash", unit="Å", **_POSITIVE)
    clash_max_ref_A: float = _s(10.0, "clash pairs: reference distance up to this", unit="Å",
                                **_POSITIVE)
    # prior
    kl_free_bits: float = _s(3.0, "KL free bits per latent dimension (nats)", **_AT_LEAST_0)
    kl_beta_max: float = _s(0.5, "final KL weight", **_AT_LEAST_0)
    kl_warmup_images: int = _s(640_000, "images over which the KL weight rises linearly", **_AT_LEAST_0)
    # schedule and bookkeeping
    checkpoint_every: int = _s(200, "steps between checkpoints", **_AT_LEAST_1)
    keep_checkpoints: int = _s(3, "checkpoints kept (the newest)", **_AT_LEAST_1)
    eval_every_epochs: float = _s(5.0, "epochs between z.npy updates and previews", **_POSITIVE)
    threads: int | None = _s(None, "CPU threads", default_text="all available", **_AT_LEAST_1)
    precision: str = _s("auto", "networks on a GPU: auto (bf16 where native, i.e. Ampere or later, "
                                "else fp16 with dynamic loss scaling), fp32, bf16 or fp16; the CPU "
                                "always runs fp32, and FFTs, rendering and losses are fp32 everywhere",
                        choices=PRECISIONS)
    compile: str = _s("auto", "torch.compile the step's networks, rendering and losses: on, off, or "
                              "auto (on for single-process CPU runs of at least 2,000 steps, where "
                              "it measured 1.6-3.4x faster; off on GPUs until measured there); "
                              "falls back to eager mode if compiling fails", choices=COMPILE_MODES)
    micro_batches: int = _s(1, "split each step into this many chunks (gradient accumulation, less "
                               "memory; doubled automatically after a GPU out-of-memory error)",
                            **_AT_LEAST_1)
    max_cache_gb: float = _s(4.0, "keep the downsampled particles in memory up to this size (GB)",
                             **_AT_LEAST_0)
    max_minutes: float | None = _s(None, "stop cleanly (z, checkpoint, manifest written) after this "
                                         "wall time in minutes; continue later with --resume",
                                   default_text="no time limit", **_POSITIVE)
    skip_signal_check: bool = _s(False, "train even when the reference does not correlate with the "
                                        "particles")
    # tests only (not flags; see cryostar_engine.settings.TEST_HOOKS_ENV)
    stop_after_steps: int | None = hook_for_tests(None, "stop (as if killed) after this many steps")
    debug_nan_at_step: int | None = hook_for_tests(None, "make the loss of this step non-finite")


ESSENTIAL = tuple(f.name for f in dataclasses.fields(AtomConfig) if f.metadata.get("essential"))


def load_config_file(path) -> dict:
    """Read a JSON file of AtomConfig fields (a ``--config``); unknown keys, a config of
    stage 2 and values out of range are errors.  Returns the fields it sets."""
    data = read_settings_file(path)
    config_from_dict(AtomConfig, data, str(path), hint="pass a train-atom config")   # checks
    data.pop("schema_version", None)
    data.pop("kind", None)
    return {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}


def read_run_config(run_dir, hint: str = "pass a train-atom run") -> AtomConfig:
    """The saved config of the stage-1 run in ``run_dir`` (a stage-2 run is refused)."""
    return read_saved_config(AtomConfig, run_dir, hint)
