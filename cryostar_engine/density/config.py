"""The typed configuration of a density-generator run (stage 2), saved as ``RUN/config.json``.

Every field has a default that follows the spec (§4, §10): D′ = min(D, 256), a 1024-wide MLP with
1 + 3 residual GELU layers, Gaussian Fourier features (3·D′ frequencies), AdamW lr 1e-4, batch 16.
The schedule is defined by *images seen* (``epochs × N``), never by steps, so changing the batch
size does not silently change the length of a run.

Fields prefixed ``debug_`` exist for tests only: they deliberately break a convention (to prove
that a test can fail) or simulate an interruption / a non-finite loss.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from ..errors import InputError

__all__ = ["DensityConfig", "SCHEMA_VERSION"]

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class DensityConfig:
    """Everything that defines a density-generator run.

    Inputs
    ------
    particles : RELION star file (poses, CTF, image names).
    z_path : ``.npy`` of shape ``(N, z_dim)``, one row per star row (stage-1 ``z.npy``).
    datadir : folder the star's image paths are relative to (optional).
    box : working box D′ in px (Fourier-cropped); None → min(D, 256).

    Model
    -----
    hidden : width of the MLP.
    residual_layers : residual GELU blocks after the first layer (spec: 3).
    pe_dim : number of random 3-D frequencies / 3 (None → D′, so 3·D′ frequencies).
    pe_scale : frequencies ~ N(0, (pe_scale·D′)²) rad per (cycle/px); 0.25 equals CryoSTAR's
        ``gau2`` (N(0,1)·D′/8 on coordinates spanning ±1).
    mask_radius : fraction of D′/2 (px) of the Fourier disc/ball that is modelled and fitted.

    Training
    --------
    epochs, batch_size, lr, weight_decay : AdamW schedule; total images = epochs × N.
    f_std : Fourier normalisation; None → estimated from ``f_std_particles`` evenly spaced images.
    precision : "auto" (bf16 autocast of the MLP on CUDA and on CPUs with native bf16, i.e.
        AVX512-BF16 or AMX; fp32 elsewhere), "fp32" or "bf16".
    compile : ``torch.compile`` the MLP for training (falls back to eager when it fails):
        +5-16 % images/s on the CPU after 4-40 s of compilation; worth it for long runs.
    checkpoint_interval_s : seconds between checkpoints (also one at every epoch end).
    guard_interval_steps : steps between read-backs of the losses and skip flags (the step
        itself never waits for the device).
    batch_size : the global batch; under ``torchrun`` it is split between the processes.
    """

    particles: str
    z_path: str
    datadir: str | None = None
    box: int | None = None
    # model
    hidden: int = 1024
    residual_layers: int = 3
    pe_dim: int | None = None
    pe_scale: float = 0.25
    mask_radius: float = 1.0
    # training
    epochs: int = 20
    batch_size: int = 16
    lr: float = 1e-4
    weight_decay: float = 0.01
    f_std: float | None = None
    f_std_particles: int = 100
    seed: int = 0
    device: str = "auto"
    threads: int | None = None
    precision: str = "auto"
    compile: bool = False
    checkpoint_interval_s: float = 600.0
    keep_checkpoints: int = 3
    guard_interval_steps: int = 10
    max_minutes: float | None = None     # stop cleanly (checkpoint) after this wall time; one invocation only
    # outputs
    n_clusters: int = 10
    n_pcs: int = 3
    n_pc_points: int = 10
    volume_chunk_points: int = 65536
    # tests only: deliberately broken conventions and simulated failures
    debug_rotation: str = "RT"          # "RT" (correct: k3 = Rᵀk2) or "R" (wrong)
    debug_ctf_sign: float = 1.0         # +1 correct; -1 flips the CTF
    debug_stop_after_steps: int | None = None
    debug_nan_at_step: int | None = None

    def __post_init__(self):
        self.validate()

    def validate(self) -> None:
        """Raise :class:`InputError` on values that cannot work."""
        checks = [
            (self.box is None or self.box >= 8, f"--box must be ≥ 8 px, got {self.box}"),
            (self.hidden >= 1 and self.residual_layers >= 0, "hidden ≥ 1 and residual_layers ≥ 0"),
            (self.epochs >= 1, f"--epochs must be ≥ 1, got {self.epochs}"),
            (self.batch_size >= 1, f"--batch must be ≥ 1, got {self.batch_size}"),
            (self.lr > 0, f"--lr must be > 0, got {self.lr}"),
            (0 < self.mask_radius <= 1, f"mask_radius must be in (0, 1], got {self.mask_radius}"),
            (self.f_std is None or self.f_std > 0, f"--f-std must be > 0, got {self.f_std}"),
            (self.precision in ("auto", "fp32", "bf16"), "precision must be auto, fp32 or bf16"),
            (self.debug_rotation in ("RT", "R"), "debug_rotation must be 'RT' or 'R'"),
            (self.debug_ctf_sign in (1.0, -1.0), "debug_ctf_sign must be +1 or -1"),
        ]
        for ok, message in checks:
            if not ok:
                raise InputError(message)

    def replace(self, **changes) -> "DensityConfig":
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        """Plain JSON-able dict, with ``schema_version``."""
        return {"schema_version": SCHEMA_VERSION, **dataclasses.asdict(self)}

    @classmethod
    def from_dict(cls, data: dict) -> "DensityConfig":
        """Inverse of :meth:`to_dict`; unknown keys are an error (a newer engine wrote them)."""
        data = dict(data)
        version = data.pop("schema_version", SCHEMA_VERSION)
        if version > SCHEMA_VERSION:
            raise InputError(f"config schema {version} is newer than this engine's "
                             f"{SCHEMA_VERSION}; update cryostar-engine")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise InputError(f"unknown density config field(s) {unknown}")
        return cls(**data)
