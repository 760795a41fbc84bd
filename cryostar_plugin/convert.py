"""Scipion objects → the files the CryoSTAR engine reads.

* Particles: a RELION 3.1 star written by scipion-em-relion's own writer (poses as
  ``ALIGN_PROJ``: rot/tilt/psi in degrees, ``rlnOriginX/YAngst`` in Å, CTF, optics table).  Its
  stacks are linked (or converted) under ``<outputDir>/input`` and the image names are written
  as *absolute* paths, so the engine finds them from any working directory.
* Reference model: the user's file as it is (never copied, shifted or rewritten).
* Consensus map: an MRC copy whose header carries Scipion's sampling and origin, i.e. the map
  as Scipion displays it; a model docked against that display sits on the file as it sits on
  the display.  The engine reads the frame from the model and this map, reports it
  (``inspect-model``, the run manifests' ``"frame"``) and writes every output in it.
"""
import os

from pwem.constants import ALIGN_PROJ
from pyworkflow.plugin import Domain

__all__ = ["writeParticlesStar", "getModelVolume", "writeMapAsShown", "inspectModel"]

_INSPECTIONS = {}


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


def _scipionOrigin(volume):
    """Scipion's origin of ``volume`` (Å, xyz): the position of voxel 0 as Scipion shows it."""
    return tuple(float(v) for v in volume.getOrigin(force=True).getShifts())


def writeMapAsShown(volume, outPath):
    """Write ``volume`` as an MRC whose header says what Scipion shows: voxel size = Scipion's
    sampling, origin = Scipion's origin (``getOrigin(force=True)``).  A model docked against
    the map as Scipion displays it sits on this file as it sits on the display, so the engine
    can read the frame from the file alone.  Returns the absolute output path.
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
    os.makedirs(os.path.dirname(outPath), exist_ok=True)
    with mrcfile.new(outPath, overwrite=True) as m:
        m.set_data(data.astype("float32", copy=False))
        m.voxel_size = float(volume.getSamplingRate())
        m.header.origin = _scipionOrigin(volume)
    return outPath


def inspectModel(atomStruct, particles, volume=None, trainBox=None):
    """What the engine makes of the reference model for these particles (and map).

    Runs ``cryostar-engine inspect-model --json`` (a subprocess; see :mod:`.engine`) on the
    ORIGINAL model file and, when there is a consensus map (``volume`` or the one linked to the
    model), on an MRC copy whose header carries Scipion's origin.  Answers are cached per
    inputs in this process.

    Returns
    -------
    dict : the ``cryostar-inspect/1`` object: ``frame`` (``shift_A``, ``source``, ``error``: a
    line for ``_validate`` or None), ``low_pass`` (``suggested_A``, … or None without a map),
    ``default_box``.

    Raises
    ------
    EngineCallError : the engine could not read the model or map (one line), or cannot run.
    """
    import tempfile

    from .engine import engineJson

    vol = getModelVolume(atomStruct, volume)
    box, apix = int(particles.getXDim()), float(particles.getSamplingRate())
    key = (atomStruct.getFileName(), box, apix, trainBox,
           None if vol is None else (vol.getFileName(), _scipionOrigin(vol),
                                     float(vol.getSamplingRate())))
    if key not in _INSPECTIONS:
        args = ["--model", os.path.abspath(atomStruct.getFileName()), "--box", box,
                "--apix", f"{apix:g}", "--json"]
        if trainBox:
            args += ["--train-box", int(trainBox)]
        with tempfile.TemporaryDirectory(prefix="cryostar-inspect-") as tmp:
            if vol is not None:
                args += ["--map", writeMapAsShown(vol, os.path.join(tmp, "map.mrc"))]
            _INSPECTIONS[key] = engineJson("inspect-model", args)
    return _INSPECTIONS[key]
