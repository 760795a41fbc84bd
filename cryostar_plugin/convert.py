"""Scipion objects → the files the CryoSTAR engine reads.

* Particles: a RELION 3.1 star written by scipion-em-relion's own writer (poses as
  ``ALIGN_PROJ``: rot/tilt/psi in degrees, ``rlnOriginX/YAngst`` in Å, CTF, optics table).  Its
  stacks are linked (or converted) under ``<outputDir>/input`` and the image names are written
  as *absolute* paths, so the engine finds them from any working directory.
* Reference model: a copy in the engine's box-centred frame, shifted according to the consensus
  map's origin (see :mod:`cryostar_plugin.model_frame`).
* Consensus map: an MRC copy with Scipion's sampling and the engine's box-centred origin
  ``-(D//2)·apix``, so that the engine (which places models with the map header's origin) adds
  no further shift to the already centred model.
"""
import os

from pwem.constants import ALIGN_PROJ
from pyworkflow.plugin import Domain

from .model_frame import ModelFrameReport, centre_model_for_engine

__all__ = ["writeParticlesStar", "writeModelForEngine", "writeMapForEngine", "getModelVolume",
           "ModelFrameReport"]


def _relionConvert():
    return Domain.importFromPlugin("relion.convert", doRaise=True)


def writeParticlesStar(partSet, starFile, outputDir):
    """Write ``partSet`` as a RELION 3.1 star for the engine.

    Parameters
    ----------
    partSet : SetOfParticles with 3-D projection alignment (and, for training, CTF).
    starFile : output ``.star`` path (made absolute).
    outputDir : folder where the writer links or converts the stacks (``<outputDir>/input``);
        made absolute so that ``rlnImageName`` holds absolute paths.

    Returns
    -------
    str : the absolute star path.

    Raises
    ------
    ValueError : the set has no 3-D poses (the engine needs rot/tilt/psi and shifts).
    """
    if not partSet.hasAlignmentProj():
        raise ValueError("the particles have no 3-D alignment (projection angles and shifts); "
                         "use particles from a 3-D refinement")
    starFile = os.path.abspath(starFile)
    outputDir = os.path.abspath(outputDir)
    os.makedirs(outputDir, exist_ok=True)
    os.makedirs(os.path.dirname(starFile), exist_ok=True)
    _relionConvert().writeSetOfParticles(partSet, starFile, outputDir=outputDir,
                                         alignType=ALIGN_PROJ)
    return starFile


def getModelVolume(atomStruct, volume=None):
    """The map a model is docked into: ``volume`` if given, else the one linked at import."""
    if volume is not None:
        return volume
    getter = getattr(atomStruct, "getVolume", None)
    return getter() if getter is not None else None


def writeModelForEngine(atomStruct, outPath, box, apix, volume=None):
    """Write the reference model in the engine frame; report how it sits in the box.

    Parameters
    ----------
    atomStruct : AtomStruct (PDB/mmCIF file) docked into the consensus map.
    outPath : output model path (``.pdb`` or ``.cif``).
    box, apix : particle box (px) and pixel size (Å) given to the engine.
    volume : consensus map (Volume); default: the volume linked to ``atomStruct`` at import.
        Its Scipion origin (``getOrigin(force=True)``: the file header or, when none was set,
        ``-dim/2·sampling``) and sampling define the shift to the box centre.

    Returns
    -------
    ModelFrameReport : ``errors()`` lists what ``_validate`` should refuse (model half a box
    off, as when docked on a raw corner-origin MRC; model outside the box).
    """
    vol = getModelVolume(atomStruct, volume)
    kwargs = {}
    if vol is not None:
        kwargs = dict(map_origin_A=vol.getOrigin(force=True).getShifts(), map_dims=vol.getDim(),
                      map_apix=vol.getSamplingRate())
    return centre_model_for_engine(atomStruct.getFileName(), outPath, box, apix, **kwargs)


def writeMapForEngine(volume, outPath):
    """Write ``volume`` as an MRC map in the engine's frame (voxel ``D//2`` at 0 Å).

    The voxel size is Scipion's sampling (which wins over the file header); the header origin is
    ``-(D//2)·sampling`` whatever the Scipion origin was: the model written by
    :func:`writeModelForEngine` already accounts for it.  Returns the absolute output path.
    """
    import tempfile

    import mrcfile
    from pwem.emlib.image import ImageHandler

    fn = volume.getFileName().split(":")[0]
    outPath = os.path.abspath(outPath)
    with tempfile.TemporaryDirectory() as tmp:
        if not fn.lower().endswith((".mrc", ".map", ".mrcs")):
            converted = os.path.join(tmp, "map.mrc")
            ImageHandler().convert(volume, converted)
            fn = converted
        with mrcfile.open(fn, permissive=True) as m:
            data = m.data.copy()
    if data.ndim != 3:
        raise ValueError(f"{fn}: expected a 3-D map, got shape {data.shape}")
    apix = float(volume.getSamplingRate())
    half = -(data.shape[-1] // 2) * apix
    with mrcfile.new(outPath, overwrite=True) as m:
        m.set_data(data.astype("float32", copy=False))
        m.voxel_size = apix
        m.header.origin = (half, half, half)
    return outPath
