"""The image low-pass of stage 1, proposed from how well the reference model fits the consensus map.

One function, :func:`suggest_low_pass`, gives the one number that ``check-inputs`` reports, that
``train-atom`` uses with ``--low-pass auto`` (the default is 10 Å: docs/settings.rst says why) and that
``inspect-model`` prints for the Scipion plugin's wizard:

* ``fsc05_A``: the resolution (Å) where the Fourier shell correlation between the model's bead
  density (one Gaussian per residue at its electron-weighted centre, σ = :data:`BEAD_SIGMA_A`, as
  stage 1 renders it) and the consensus map falls to 0.5.  Both are compared on a box of at most
  :data:`MAX_CHECK_BOX` px (the map Fourier-cropped), the model placed in the box frame;
* ``floor_A``: 2.5 pixels of the training box (Nyquist is 2): finer structure cannot be fitted;
* ``suggested_A``: the larger of the two, rounded *up* to 0.1 Å.

Without a map there is nothing to measure: :data:`NO_MAP_LOW_PASS_A` (6 Å, where a docked model
agrees with its map in practice; on the AdK benchmark without a map it beat the former 10 Å:
R² 0.914 and RMSD ratio 0.404 against 0.909 / 0.453) is used.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .io.mrc import MapData
from .metrics import fsc, resolution_at
from .physics.fourier import fourier_crop_volume
from .physics.render import bead_density

__all__ = ["LowPassSuggestion", "suggest_low_pass", "model_density", "resolve_low_pass",
           "BandSchedule", "BEAD_SIGMA_A", "MAX_CHECK_BOX", "MIN_PIXELS", "NO_MAP_LOW_PASS_A"]

BEAD_SIGMA_A = 2.0
MAX_CHECK_BOX = 128
MIN_PIXELS = 2.5
NO_MAP_LOW_PASS_A = 6.0


@dataclass(frozen=True)
class LowPassSuggestion:
    """All in Å: see the module docstring; ``check_apix_A`` is the pixel of the comparison."""

    fsc05_A: float
    floor_A: float
    suggested_A: float
    check_apix_A: float

    def source(self) -> str:
        """How the number was found, for ``low_pass_source`` and logs."""
        return (f"auto: FSC(model,map)=0.5 at {self.fsc05_A:.1f} Å, floor {self.floor_A:.1f} Å "
                f"(2.5 training pixels)")


def model_density(beads, box: int, apix: float) -> torch.Tensor:
    """``(box, box, box)`` float32 density of ``beads`` (box-centred coordinates, Å) as stage 1
    renders them: each bead at its residue's electron-weighted centre, Gaussian σ
    :data:`BEAD_SIGMA_A`, ``apix`` Å per voxel, voxel ``box//2`` at 0 Å."""
    return bead_density(torch.as_tensor(beads.residue_centres_A), torch.as_tensor(beads.amplitudes),
                        BEAD_SIGMA_A, box, apix).float()


def suggest_low_pass(beads, map_data: MapData, box: int, apix: float,
                     train_box: int | None = None) -> LowPassSuggestion:
    """The low-pass for training on particles of ``box`` px at ``apix`` Å with this model and map.

    Parameters
    ----------
    beads : :class:`~cryostar_engine.io.Beads` in the box frame (``Reference.beads``).
    map_data : the consensus map (same physical size as the particle box).
    box, apix : the particles' box (px) and pixel size (Å).
    train_box : the training box (px); None = the particle box (the finest floor).
    """
    map_box = int(map_data.data.shape[-1])
    check_box = min(box, map_box, MAX_CHECK_BOX)
    check_box -= check_box % 2
    check_apix = box * apix / check_box
    target = fourier_crop_volume(torch.from_numpy(map_data.data), check_box)
    freq, curve = fsc(model_density(beads, check_box, check_apix), target, check_apix)
    fsc05 = float(resolution_at(freq, curve, 0.5))
    floor = MIN_PIXELS * apix * box / (train_box or box)
    suggested = math.ceil(max(fsc05, floor) * 10 - 1e-6) / 10
    return LowPassSuggestion(fsc05_A=fsc05, floor_A=float(floor), suggested_A=float(suggested),
                             check_apix_A=float(check_apix))


AUTO = "auto"     # the --low-pass word (None, in configs of schema 2, means the same)


def resolve_low_pass(low_pass_A, beads, map_data: MapData | None, box: int, apix: float,
                     train_box: int | None = None) -> tuple[float, str]:
    """``(low-pass Å, source)``: the set value (``"set"``), else the suggestion with a map, else
    :data:`NO_MAP_LOW_PASS_A` (``"auto: no map, 6 Å"``)."""
    if low_pass_A is not None and low_pass_A != AUTO:
        return float(low_pass_A), "set"
    if map_data is None:
        return NO_MAP_LOW_PASS_A, f"auto: no map, {NO_MAP_LOW_PASS_A:g} Å"
    s = suggest_low_pass(beads, map_data, box, apix, train_box)
    return s.suggested_A, s.source()


@dataclass(frozen=True)
class BandSchedule:
    """Coarse-to-fine: the low-pass (Å) of stage 1's image loss as a function of images seen.

    ``start_A`` for the first ``hold_images`` images, then widening linearly in spatial
    frequency (1/Å) to ``final_A`` over ``ramp_images`` images, then ``final_A``.  A start that
    is not coarser than the final band (or None) means no schedule: ``final_A`` throughout.
    A pure function of images seen, so a resumed run continues at the band it stopped at.
    """

    final_A: float
    start_A: float | None = None
    hold_images: int = 0
    ramp_images: int = 0

    @property
    def active(self) -> bool:
        return self.start_A is not None and self.start_A > self.final_A

    def at(self, images_seen: int) -> float:
        """The loss band (Å) for the step that starts after ``images_seen`` images."""
        if not self.active:
            return float(self.final_A)
        t = (images_seen - self.hold_images) / max(self.ramp_images, 1)
        t = min(max(t, 0.0), 1.0)
        return float(1.0 / ((1 - t) / self.start_A + t / self.final_A))

    def to_json(self) -> dict:
        """``{"start_A", "final_A", "hold_images", "ramp_images", "points": [[images, Å], …]}``
        (the schedule's corners; the band is linear in 1/Å between them)."""
        if not self.active:
            return {"start_A": float(self.final_A), "final_A": float(self.final_A),
                    "hold_images": 0, "ramp_images": 0, "points": [[0, float(self.final_A)]]}
        end = self.hold_images + self.ramp_images
        return {"start_A": float(self.start_A), "final_A": float(self.final_A),
                "hold_images": int(self.hold_images), "ramp_images": int(self.ramp_images),
                "points": [[0, float(self.start_A)], [int(self.hold_images), float(self.start_A)],
                           [int(end), float(self.final_A)]]}
