"""One trained CryoSTAR project on the bundled AdK data, built once per test process.

import particles (RELION star) + consensus map + reference model → train atom generator (tiny:
box 24, 3 epochs; first stopped by the engine after 6 steps, then continued with Scipion's
'Continue': it must resume from the step-4 checkpoint) → analyze latent space (k = 4) → train
density generator (tiny network) → particles subset (one set per state).

The map is imported with its origin at its corner (0, 0, 0) and the model docked against it
(moved by +48 Å): the plugin gives the engine the model file as it is and the map with that
origin; the engine finds the frame and writes every output (models, volumes, ChimeraX scripts)
in it.

The test classes that use it call :func:`sharedChain` in ``setUpClass`` and adopt its project
(``cls.proj = chain.proj``), so the few minutes of CPU are spent once.
"""
import atexit
import os
import shutil
import tempfile
import types

import numpy as np

from pwem.protocols import ProtImportParticles, ProtImportPdb, ProtImportVolumes
from pyworkflow.tests import BaseTest, setupTestProject

from cryostar_plugin.protocols import (ProtCryoStarAnalyze, ProtCryoStarSubset,
                                       ProtCryoStarTrainAtom, ProtCryoStarTrainDensity)

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DATA = os.path.join(REPO, "data")
STAR = os.path.join(DATA, "adk_sim48", "particles.star")
MAP = os.path.join(DATA, "adk_sim48", "ideal_map_frame048.mrc")
MODEL = os.path.join(DATA, "adk_models", "adk_ref_frame048.pdb")
HALF = 48.0          # half the 48-px box at 2 Å/px
N_PART = 384
TRAIN = dict(boxSize=24, numEpochs=3, zDim=3, batchSize=64, lowPass=10.0, numClusters=3,
             numPcs=2, numPoints=4, checkpointEvery=4, useGpu=False, numberOfThreads=1)
TOTAL_STEPS = 18     # 3 epochs × 384 / 64
DENSITY = dict(boxSize=16, numEpochs=1, batchSize=64, hidden=32, residualLayers=1,
               numClusters=3, numPcs=2, numPoints=3, useGpu=False, numberOfThreads=1)

# a model with no protein or nucleic-acid residue: the engine must refuse it
WATERS = """\
HETATM    1  O   HOH A   1       0.000   0.000   0.000  1.00  0.00           O
HETATM    2  O   HOH A   2       1.000   0.000   0.000  1.00  0.00           O
END
"""

#: The engine's test-only stop: "as if killed" after this many steps (not a CLI flag).
STOP_ENV = "CRYOSTAR_TEST_STOP_AFTER_STEPS"

_CHAIN = None


def shiftPdb(src, dst, shift_A):
    """Copy a PDB with every ATOM/HETATM record moved by ``shift_A`` (Å, xyz); return ``dst``."""
    with open(src) as f, open(dst, "w") as out:
        for line in f:
            if line.startswith(("ATOM", "HETATM")):
                xyz = [float(line[30 + 8 * i:38 + 8 * i]) + shift_A[i] for i in range(3)]
                line = line[:30] + "".join(f"{v:8.3f}" for v in xyz) + line[54:]
            out.write(line)
    return dst


def pdbCoords(path):
    """Coordinates ``(N, 3)`` (Å) of the ATOM/HETATM records of the first model of a PDB."""
    coords = []
    with open(path) as f:
        for line in f:
            if line.startswith("ENDMDL"):
                break
            if line.startswith(("ATOM", "HETATM")):
                coords.append([float(line[30 + 8 * i:38 + 8 * i]) for i in range(3)])
    return np.array(coords)


class TestCryoStarSharedProject(BaseTest):
    """Holder of the shared project (its name is the project's); it has no tests."""


def _build():
    cls = TestCryoStarSharedProject
    setupTestProject(cls)
    c = types.SimpleNamespace(proj=cls.proj)
    c.tmp = tempfile.mkdtemp(prefix="cryostar-workflow-")
    atexit.register(shutil.rmtree, c.tmp, True)
    c.modelFile = shiftPdb(MODEL, os.path.join(c.tmp, "adk_corner.pdb"), [HALF] * 3)
    imp = cls.newProtocol(ProtImportParticles, importFrom=ProtImportParticles.IMPORT_FROM_RELION,
                          starFile=STAR, samplingRate=2.0, magnification=10000)
    cls.launchProtocol(imp)
    c.parts = imp.outputParticles
    vol = cls.newProtocol(ProtImportVolumes, filesPath=os.path.dirname(MAP),
                          filesPattern=os.path.basename(MAP), samplingRate=2.0,
                          setOrigCoord=True, x=0.0, y=0.0, z=0.0)
    cls.launchProtocol(vol)
    c.map = vol.outputVolume
    pdb = cls.newProtocol(ProtImportPdb, inputPdbData=ProtImportPdb.IMPORT_FROM_FILES,
                          pdbFile=c.modelFile, inputVolume=c.map)
    cls.launchProtocol(pdb)
    c.model = pdb.outputPdb

    # train, stopped by the engine after 6 steps (checkpoints every 4; the engine's test hook
    # reaches it through the environment the protocol's job inherits) ...
    c.train = cls.newProtocol(ProtCryoStarTrainAtom, inputParticles=c.parts,
                              inputAtomStruct=c.model, **TRAIN)
    os.environ[STOP_ENV] = "6"
    try:
        cls.proj.launchProtocol(c.train, wait=True)
    finally:
        del os.environ[STOP_ENV]
    c.stoppedFailed = c.train.isFailed()
    c.stoppedError = c.train.getErrorMessage() or ""
    # ... then continued (Scipion's Continue run mode): resumes from the step-4 checkpoint
    cls.launchProtocol(c.train)

    c.analyze = cls.newProtocol(ProtCryoStarAnalyze, inputTraining=c.train, numClusters=4,
                                numPcs=2, numPoints=5)
    cls.launchProtocol(c.analyze)
    c.density = cls.newProtocol(ProtCryoStarTrainDensity, **DENSITY)
    c.density.inputParticles.set(c.train)              # as the GUI links an output
    c.density.inputParticles.setExtended("Particles")
    cls.launchProtocol(c.density)
    c.subset = cls.newProtocol(ProtCryoStarSubset, inputAnalysis=c.analyze, doPerCluster=True)
    cls.launchProtocol(c.subset)
    return c


def sharedChain():
    """The shared project and its protocols (built on the first call)."""
    global _CHAIN
    if _CHAIN is None:
        _CHAIN = _build()
    os.chdir(_CHAIN.proj.getPath())
    return _CHAIN


class SharedChainTest(BaseTest):
    """Base of the test classes working on the shared project."""

    @classmethod
    def setUpClass(cls):
        cls.chain = sharedChain()
        cls.proj = cls.chain.proj
        for name in ("parts", "map", "model", "modelFile", "train", "analyze", "density",
                     "subset"):
            setattr(cls, name, getattr(cls.chain, name))

    def setUp(self):
        os.chdir(self.proj.getPath())
