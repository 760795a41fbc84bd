"""Propose the image low-pass of a training from the fit of the model to the consensus map.

The proposal is the resolution where the Fourier shell correlation between the reference model's
bead density (one Gaussian bead per residue at its residue's centre, σ = 2 Å, as the engine
renders it) and the consensus map falls to 0.5, but never finer than 2.5 pixels of the training
box (Nyquist is 2):
structure that the model cannot represent is not fitted.  This is what ``check-inputs`` reports
as ``suggested_low_pass_A`` at its own box; here it is computed for the training box.

Uses the engine's library (``cryostar_engine.metrics.fsc`` / ``resolution_at`` and
``checks.model_density``), so it needs the engine importable by Scipion's Python.
"""
import os
import tempfile
from dataclasses import dataclass

from .convert import getModelVolume, writeMapForEngine, writeModelForEngine

__all__ = ["LowPassSuggestion", "suggestLowPass", "MAX_CHECK_BOX"]

MAX_CHECK_BOX = 128
MIN_PIXELS = 2.5


@dataclass(frozen=True)
class LowPassSuggestion:
    """fsc05_A : model-map FSC = 0.5 resolution (Å) at the check box; floor_A : 2.5 training
    pixels (Å); suggested_A : the larger of the two; checkApix_A : pixel size of the comparison."""

    fsc05_A: float
    floor_A: float
    suggested_A: float
    checkApix_A: float


def suggestLowPass(atomStruct, particles, volume=None, trainBox=None):
    """Low-pass (Å) for training on ``particles`` with ``atomStruct`` and its consensus map.

    Parameters
    ----------
    atomStruct : AtomStruct docked into the consensus map.
    particles : SetOfParticles (box and pixel size of the frame).
    volume : the consensus map; default the one linked to the model at import.
    trainBox : training box (px); default the particle box.

    Raises
    ------
    ValueError : no consensus map (given or linked).
    """
    import numpy as np
    import torch

    from cryostar_engine.io import read_beads, read_map
    from cryostar_engine.metrics import fsc, resolution_at
    from cryostar_engine.physics.fourier import fourier_crop_volume
    from cryostar_engine.checks import model_density

    vol = getModelVolume(atomStruct, volume)
    if vol is None:
        raise ValueError("a consensus map is needed (give one, or link it to the model)")
    box, apix = particles.getXDim(), float(particles.getSamplingRate())
    trainBox = trainBox or box
    with tempfile.TemporaryDirectory() as tmp:
        model = os.path.join(tmp, "model.pdb")
        writeModelForEngine(atomStruct, model, box, apix, volume=vol)
        mapData = read_map(writeMapForEngine(vol, os.path.join(tmp, "map.mrc")))
        beads = read_beads(model)
    checkBox = min(mapData.data.shape[-1], MAX_CHECK_BOX)
    checkApix = mapData.voxel_size_A * mapData.data.shape[-1] / checkBox
    target = fourier_crop_volume(torch.from_numpy(mapData.data), checkBox)
    density = model_density(beads, checkBox, checkApix)
    freq, curve = fsc(density, target, checkApix)
    fsc05 = resolution_at(freq, curve, 0.5)
    floor = MIN_PIXELS * apix * box / trainBox
    return LowPassSuggestion(float(fsc05), float(floor), float(np.maximum(fsc05, floor)),
                             float(checkApix))
