"""The typed configuration of a density-generator run (stage 2), saved as ``RUN/config.json``.

Every field has a default that follows the spec (§4, §10): D′ = min(D, 256), an MLP of
1 + 3 residual GELU layers, Gaussian Fourier features (3·D′ frequencies), AdamW lr 5e-4 (constant,
then a half-cosine decay to 10 % over the last ``lr_decay_fraction`` of the images), batch 16.
The schedule is defined by *images seen* (``epochs × N``), never by steps, so changing the batch
size does not silently change the length of a run.  Two defaults depend on the run and are
resolved when it starts (:mod:`~cryostar_engine.density.schedule`): the length (20 epochs, at
least ``MIN_TRAIN_IMAGES`` images) and the width (``--hidden`` auto: 256 on a CPU, 1024 on a
GPU); ``config.json`` records the resolved values and ``hidden_source``, where the width came from.

The fields are declared with :func:`~cryostar_engine.settings.setting`, like stage 1's
:class:`~cryostar_engine.atom.AtomConfig`: one mechanism builds the ``train-density`` command
line, ``--settings-json`` and the range checks (run when the config is built).  A setting both
stages have (``batch``, ``epochs``, ``lr``, ``seed``, ``device``, ``threads``, ``precision``,
``compile``, ``box``, ``max_minutes``, ``keep_checkpoints``, ``particles``, ``datadir``) has
the same name, flag and meaning in both; ``out``, ``resume`` and ``overwrite`` are those of
:class:`DensityRunOptions`.  Schema 1 configs (``batch_size``, a boolean ``compile``) are read.

Fields prefixed ``debug_`` exist for tests only (not flags): they deliberately break a
convention (to prove that a test can fail) or simulate an interruption / a non-finite loss.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import InputError
from .schedule import AUTO_HIDDEN, DEFAULT_EPOCHS, LR_FINAL_FRACTION, MIN_TRAIN_IMAGES
from ..settings import (Q0_DEFAULT_TEXT, StageConfig, config_from_dict, hook_for_tests,
                        read_saved_config, read_settings_file, setting,
                        validate_settings)

__all__ = ["DensityConfig", "DensityRunOptions", "SCHEMA_VERSION", "RESUMABLE_FIELDS",
           "load_density_config_file", "read_run_config"]

SCHEMA_VERSION = 4       # 2: "kind", batch_size → batch, compile auto|on|off, map;
#                          3: hidden and epochs resolved at the start, hidden_source recorded;
#                          4: lr 5e-4 by default, lr_decay_fraction (a run of schema ≤ 3 read
#                             back gets 0: the constant rate it was started with)
PRECISIONS = ("auto", "fp32", "bf16")
COMPILE_MODES = ("auto", "on", "off")
DEVICES = ("auto", "cpu", "cuda")
# Settings a resumed run may change when given; all others come from the run's config.json.
RESUMABLE_FIELDS = ("epochs", "threads", "device", "compile", "keep_checkpoints",
                    "checkpoint_interval_s", "max_minutes")

_s = setting
_E = dict(essential=True)
_POSITIVE = dict(min=0, min_inclusive=False)
_AT_LEAST_0 = dict(min=0)
_AT_LEAST_1 = dict(min=1)


@dataclass(frozen=True)
class DensityConfig(StageConfig):
    """Everything that defines a density-generator run.

    Inputs: ``particles`` (RELION star: poses, CTF, image names), ``z_path`` (``.npy`` of shape
    ``(N, z_dim)``, one row per star row: stage-1 ``z.npy``), ``datadir``, ``map`` and ``box``
    (working box D′ in px, Fourier-cropped; None → min(D, 256)).

    Model: ``hidden`` (MLP width; None → per device when the run starts, with ``hidden_source``
    recording the decision), ``residual_layers`` (spec: 3), ``pe_dim`` (number of random
    3-D frequencies / 3; None → D′), ``pe_scale`` (frequencies ~ N(0, (pe_scale·D′)²) rad per
    cycle/px; 0.25 equals CryoSTAR's ``gau2``), ``mask_radius`` (fraction of D′/2 of the
    Fourier ball that is modelled and fitted).

    Training: ``epochs``, ``batch`` (global; split between ``torchrun`` processes), ``lr``,
    ``weight_decay``: AdamW at a constant learning rate; total images = epochs × N (``epochs``
    None → :func:`~cryostar_engine.density.schedule.default_density_epochs` when the run starts).  ``f_std``: Fourier normalisation
    (None → estimated from ``f_std_particles`` evenly spaced images).  ``precision``: "auto"
    (bf16 autocast of the MLP on CUDA and on CPUs with native bf16), "fp32" or "bf16".
    ``compile``: ``torch.compile`` of the MLP ("auto" = off here).  ``checkpoint_interval_s``:
    seconds between checkpoints (also one at every epoch end).  ``guard_interval_steps``: steps
    between read-backs of the losses and skip flags.
    """

    KIND = "density"
    SCHEMA_VERSION = SCHEMA_VERSION
    LEGACY_NAMES = {"batch_size": "batch"}

    particles: str = _s(help="RELION star file or cryoSPARC .cs file with poses and CTF "
                             "(the stage-1 one)",
                        required=True, **_E)
    z_path: str = _s(help="latents (N, zdim) .npy, one row per star row (stage-1 RUN/z.npy)",
                     flag="--z", required=True, **_E)
    datadir: str | None = _s(None, "folder that the star file's image paths are relative to",
                             default_text="the star file's folder", **_E)
    passthrough: str | None = _s(None, "cryoSPARC input only: the job's passthrough .cs, whose "
                                       "fields (poses, CTF) --particles lacks", default_text="none")
    amplitude_contrast: float | None = _s(None, "amplitude contrast of the CTF, replacing the star "
                                                "file's", default_text=Q0_DEFAULT_TEXT,
                                          min=0, max=1, max_inclusive=False)
    map: str | None = _s(None, "consensus map whose header origin the volumes take",
                         default_text="the frame recorded in the stage-1 manifest next to --z", **_E)
    box: int | None = _s(None, "working box (Fourier-cropped particles)", unit="px",
                         default_text="min(particle box, 256)", min=8, **_E)
    # model
    hidden: int | None = _s(None, "MLP width (on a CPU 256 trains 8-10x faster than 1024); "
                                  "config.json records the width used and where it came from",
                            default_text=f"auto: {AUTO_HIDDEN['cpu']} on a CPU, "
                                         f"{AUTO_HIDDEN['cuda']} on a GPU",
                            **_AT_LEAST_1, **_E)
    # recorded, not a setting: "--hidden" (given) or "auto: <device type>"
    hidden_source: str | None = field(default=None)
    residual_layers: int = _s(3, "residual GELU blocks after the first layer", **_AT_LEAST_0)
    pe_dim: int | None = _s(None, "random 3-D Fourier-feature frequencies / 3",
                            default_text="the working box", **_AT_LEAST_1)
    pe_scale: float = _s(0.25, "Fourier-feature frequencies ~ N(0, (pe_scale·box)²) rad per "
                               "cycle/px (0.25 = CryoSTAR's gau2)", **_POSITIVE)
    mask_radius: float = _s(1.0, "modelled and fitted Fourier radius as a fraction of the half box",
                            min=0, max=1, min_inclusive=False)
    # training
    epochs: float | None = _s(None, "training length in passes over the particles",
                              default_text=f"{DEFAULT_EPOCHS:g}, or on smaller sets as many as it "
                                           f"takes to show the network {MIN_TRAIN_IMAGES:,} "
                                           "images (the learning curve of RESULTS.md)",
                              **_POSITIVE, **_E)
    batch: int = _s(16, "images per optimisation step (global batch; split between torchrun "
                        "processes)", **_AT_LEAST_1, **_E)
    lr: float = _s(5e-4, "AdamW learning rate (constant until the final decay)", **_POSITIVE)
    lr_decay_fraction: float = _s(0.1, "the last fraction of the run's images, over which the "
                                       "learning rate decays (half a cosine) to "
                                       f"{LR_FINAL_FRACTION * 100:g} % of --lr; "
                                       "0: constant to the end", min=0, max=1)
    weight_decay: float = _s(0.01, "AdamW weight decay", **_AT_LEAST_0)
    f_std: float | None = _s(None, "Fourier normalisation of the images",
                             default_text="estimated from --f-std-particles images", **_POSITIVE)
    f_std_particles: int = _s(100, "evenly spaced images that estimate --f-std", **_AT_LEAST_1)
    seed: int = _s(0, "random seed", **_AT_LEAST_0, **_E)
    device: str = _s("auto", "where to train (cuda:N picks one GPU; auto: cuda when a GPU "
                                  "is visible, else cpu)", choices=DEVICES, **_E)
    threads: int | None = _s(None, "CPU threads", default_text="all available", **_AT_LEAST_1)
    precision: str = _s("auto", "MLP precision: auto = bf16 on CUDA and on CPUs with native bf16 "
                                "(AVX512-BF16/AMX), else fp32", choices=PRECISIONS)
    compile: str = _s("auto", "torch.compile the MLP for training: on, off, or auto (off: on the "
                              "CPU it gains 5-16 % images/s after up to a minute of compiling, "
                              "worth it only for long runs); falls back to eager mode if "
                              "compiling fails", choices=COMPILE_MODES)
    checkpoint_interval_s: float = _s(600.0, "seconds between checkpoints (one is also written at "
                                             "every epoch end)", **_POSITIVE)
    keep_checkpoints: int = _s(3, "checkpoints kept (the newest)", **_AT_LEAST_1)
    guard_interval_steps: int = _s(10, "steps between read-backs of the losses and skip flags",
                                   **_AT_LEAST_1)
    max_minutes: float | None = _s(None, "stop cleanly (checkpoint written) after this wall time in "
                                         "minutes; continue later with --resume",
                                   default_text="no time limit", **_POSITIVE)
    # outputs
    n_clusters: int = _s(10, "k-means states given a volume", flag="--k", **_AT_LEAST_1)
    n_pcs: int = _s(3, "PC trajectories given volumes", flag="--pcs", **_AT_LEAST_0)
    n_pc_points: int = _s(10, "volumes per PC trajectory", flag="--points", min=2)
    volume_chunk_points: int = _s(65536, "Fourier points evaluated at once when rendering a volume "
                                         "(less memory, same result)", **_AT_LEAST_1)
    # tests only: deliberately broken conventions and simulated failures (not flags)
    debug_rotation: str = hook_for_tests("RT", "'RT' (correct: k3 = Rᵀk2) or 'R' (wrong)")
    debug_ctf_sign: float = hook_for_tests(1.0, "+1 correct; -1 flips the CTF")
    debug_stop_after_steps: int | None = hook_for_tests(None, "stop (as if killed) after this many steps")
    debug_nan_at_step: int | None = hook_for_tests(None, "make the loss of this step non-finite")

    def validate(self) -> None:
        """Raise :class:`InputError` on values that cannot work (one line naming the flag)."""
        super().validate()
        if self.debug_rotation not in ("RT", "R"):
            raise InputError("debug_rotation must be 'RT' or 'R'")
        if self.debug_ctf_sign not in (1.0, -1.0):
            raise InputError("debug_ctf_sign must be +1 or -1")

    @staticmethod
    def legacy_values(data: dict, schema_version: int = SCHEMA_VERSION) -> dict:
        """Schema 1 stored ``compile`` as a boolean; a run of schema ≤ 3 trained at a constant
        learning rate (``lr_decay_fraction`` 0), and its recorded ``lr`` is kept."""
        if isinstance(data.get("compile"), bool):
            data["compile"] = "on" if data["compile"] else "off"
        if schema_version <= 3:
            data.setdefault("lr_decay_fraction", 0.0)
        return data

    @classmethod
    def from_dict(cls, data: dict, source: str = "density config",
                  hint: str | None = "pass a train-density run") -> "DensityConfig":
        """Inverse of :meth:`to_dict`: schema-1 configs are mapped; unknown keys (a newer engine
        wrote them) and a stage-1 config are refused in one line."""
        return config_from_dict(cls, data, source, hint)


@dataclass(frozen=True)
class DensityRunOptions:
    """What one ``train-density`` invocation does with its run folder (not saved in the config)."""

    out: str = _s(help="output folder of the run", required=True, **_E)
    resume: bool = _s(False, "continue the run in --out from its last checkpoint", **_E)
    overwrite: bool = _s(False, "delete the run in --out and start again", **_E)

    def __post_init__(self):
        validate_settings(self)


def load_density_config_file(path) -> dict:
    """Read a JSON file of DensityConfig fields (a ``--config``): unknown keys and a stage-1
    config are refused.  Returns the fields it sets (schema-1 names mapped)."""
    data = read_settings_file(path)
    full = {"particles": "", "z_path": "", **data}     # the file may leave the inputs to flags
    config_from_dict(DensityConfig, full, str(path), hint="pass a train-density config")
    data = DensityConfig.legacy_values(dict(data))
    for old, new in DensityConfig.LEGACY_NAMES.items():
        if old in data:
            data.setdefault(new, data.pop(old))
    data.pop("schema_version", None)
    data.pop("kind", None)
    data.pop("hidden_source", None)     # a width in a --config file is one the user gives
    return data


def read_run_config(run_dir, hint: str = "pass a train-density run") -> DensityConfig:
    """The saved config of the stage-2 run in ``run_dir`` (a stage-1 run is refused)."""
    return read_saved_config(DensityConfig, run_dir, hint)
