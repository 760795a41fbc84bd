"""The typed configuration of a stage-1 (atom generator) run.

Every hyper-parameter of the method is a field here; the CLI exposes each as ``--field-name``
(essential ones in the main help, the rest under "advanced"), a JSON file given with
``--config`` can set any of them, and the resolved configuration is saved as ``RUN/config.json``.
The training length is defined by images seen (``epochs × particles``), so changing the batch
size or the number of GPUs does not silently change the run.
"""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field, fields
from pathlib import Path

from ..errors import InputError

__all__ = ["AtomConfig", "ESSENTIAL", "load_config_file", "default_epochs"]

SCHEMA_VERSION = 1
COMPILE_MODES = ("auto", "on", "off")
BEAD_CENTRES = ("residue", "backbone")
DECODER_INITS = ("fit", "zero")


DEFAULT_EPOCHS = 20.0
MIN_TRAIN_IMAGES = 300_000


def default_epochs(n_particles: int) -> float:
    """Training length when ``--epochs`` is not given: 20 passes, or more on a set of fewer than
    15,000 particles, so that the networks see at least :data:`MIN_TRAIN_IMAGES` images (the
    latent starts to carry the motion after a few hundred to a few thousand steps)."""
    return max(DEFAULT_EPOCHS, float(math.ceil(MIN_TRAIN_IMAGES / max(n_particles, 1))))


def _f(default, help_text, **kw):
    return field(default=default, metadata={"help": help_text, **kw})


@dataclass(frozen=True)
class AtomConfig:
    # inputs and outputs
    particles: str = _f("", "RELION star file with poses and CTF")
    model: str = _f("", "reference atomic model (PDB/mmCIF) docked into the consensus map")
    out: str = _f("", "output folder of the run")
    datadir: str | None = _f(None, "folder that the star file's image paths are relative to")
    map: str | None = _f(None, "consensus map the model was docked into: its origin sets the frame")
    apix: float | None = _f(None, "pixel size in Å, overriding the star file")
    # essentials
    box: int | None = _f(None, "working box in px (Fourier-cropped); default: the smallest box "
                               "that keeps every frequency up to the low-pass (×1.25)")
    epochs: float | None = _f(None, "training length in passes over the particles; default: 20, "
                                    "or on smaller sets as many as it takes to show the networks "
                                    "300,000 images (the latent needs a few thousand steps)")
    batch: int = _f(64, "images per optimisation step (global batch)")
    zdim: int = _f(8, "latent dimension")
    low_pass_A: float = _f(10.0, "low-pass of the image loss in Å (FSC(model, map) = 0.5 is a good choice)")
    device: str = _f("auto", "auto, cpu or cuda")
    seed: int = _f(0, "random seed")
    resume: bool = _f(False, "continue the run in --out from its last checkpoint")
    overwrite: bool = _f(False, "delete the run in --out and start again")
    invert_contrast: bool = _f(False, "negate the images (dark particles)")
    # optimiser
    lr: float = _f(5e-4, "AdamW peak learning rate")
    lr_schedule: str = _f("cosine", "learning-rate schedule over the run's steps: cosine (decays to "
                                    "lr × lr_final_fraction at the last step) or constant")
    lr_final_fraction: float = _f(0.05, "cosine schedule: final learning rate as a fraction of --lr")
    weight_decay: float = _f(0.01, "AdamW weight decay")
    # networks
    encoder_hidden: tuple = _f((512, 256, 128, 64, 32), "encoder hidden widths")
    decoder_hidden: tuple = _f((32, 64, 128, 256, 512), "decoder hidden widths")
    decoder_init: str = _f("fit", "start of the decoder: fit (train the whole VAE to decode every "
                                  "particle to the reference before the main fit, as the original) "
                                  "or zero (output layer at zero: no gradient reaches the encoder "
                                  "at first, so the latent starts late)")
    # forward model
    bead_sigma_A: float = _f(2.0, "Gaussian width of each bead in Å")
    bead_centre: str = _f("residue", "where each bead is rendered: residue (the electron-weighted centre of "
                                     "its residue's atoms, turning with the local backbone) or backbone "
                                     "(at the Cα/C1' atom itself, as the original CryoSTAR)")
    mask_radius: float = _f(0.9375, "image-loss mask radius as a fraction of the half box")
    # restraints
    continuity_weight: float = _f(1.0, "weight of the bond-continuity restraint")
    en_weight: float = _f(1.0, "weight of the elastic-network (local rigidity) restraint")
    en_cutoff_A: float = _f(12.0, "elastic-network cutoff for amino-acid pairs (same chain), Å")
    en_nt_cutoff_A: float = _f(15.0, "elastic-network cutoff for nucleotide pairs (any chain), Å")
    en_keep_ratio: float = _f(0.9, "fraction of elastic-network pairs kept each step (adaptive relaxation; "
                                        "the original CryoSTAR used 0.99, and 0.8 for AdK)")
    en_tolerance_A: float = _f(0.5, "elastic-network tolerance in Å: a pair's distance may deviate this "
                                    "much from the reference for free (flat-bottom restraint; 0 = the "
                                    "original's harmonic restraint)")
    clash_weight: float = _f(1.0, "weight of the clash restraint")
    clash_min_A: float = _f(4.0, "beads closer than this clash, Å")
    clash_max_ref_A: float = _f(10.0, "clash pairs: reference distance up to this, Å")
    # prior
    kl_free_bits: float = _f(3.0, "KL free bits per latent dimension (nats)")
    kl_beta_max: float = _f(0.5, "final KL weight")
    kl_warmup_images: int = _f(640_000, "images over which the KL weight rises linearly")
    # schedule and bookkeeping
    checkpoint_every: int = _f(200, "steps between checkpoints")
    keep_checkpoints: int = _f(3, "checkpoints kept")
    eval_every_epochs: float = _f(5.0, "epochs between z.npy updates and previews")
    threads: int | None = _f(None, "CPU threads (default: all available)")
    precision: str = _f("auto", "networks on a GPU: auto (bf16 where native, i.e. Ampere or later, "
                                "else fp16 with dynamic loss scaling), fp32, bf16 or fp16; the CPU "
                                "always runs fp32, and FFTs, rendering and losses are fp32 everywhere")
    compile: str = _f("auto", "torch.compile the step's networks, rendering and losses: on, off, or "
                              "auto (on for single-process CPU runs of at least 2,000 steps, where "
                              "it measured 1.6-3.4x faster; off on GPUs until measured there); "
                              "falls back to eager mode if compiling fails")
    micro_batches: int = _f(1, "split each step into this many chunks (gradient accumulation, less "
                                "memory; doubled automatically after a GPU out-of-memory error)")
    max_cache_gb: float = _f(4.0, "keep the downsampled particles in memory up to this size")
    max_minutes: float | None = _f(None, "stop cleanly (z, checkpoint, manifest written) after this wall time; "
                                   "continue later with --resume")
    skip_signal_check: bool = _f(False, "train even when the reference does not correlate with the particles")
    stop_after_steps: int | None = _f(None, "stop (as if killed) after this many steps; for tests")
    debug_nan_at_step: int | None = _f(None, "make the loss of this step non-finite; for tests of the guard")

    def to_json(self) -> dict:
        return {"schema_version": SCHEMA_VERSION, **dataclasses.asdict(self)}

    def replace(self, **changes) -> "AtomConfig":
        return dataclasses.replace(self, **changes)


ESSENTIAL = ("particles", "model", "out", "datadir", "map", "apix", "box", "epochs", "batch", "zdim",
             "low_pass_A", "device", "seed", "resume", "overwrite", "invert_contrast")


def load_config_file(path) -> dict:
    """Read a JSON file of AtomConfig fields; unknown keys are an error."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as err:
        raise InputError(f"{path}: cannot read the config file ({err})") from None
    data.pop("schema_version", None)
    known = {f.name for f in fields(AtomConfig)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise InputError(f"{path}: unknown setting(s) {', '.join(unknown)}")
    return {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
