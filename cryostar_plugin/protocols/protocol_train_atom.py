"""``train atom generator``: CryoSTAR stage 1 (``cryostar-engine train-atom``).

Learns a latent vector z per particle and a decoder that deforms the coarse-grained reference
model; the output is a FlexHub ``SetOfParticlesFlex`` (progName ``CryoSTAR``) carrying z, so
flexutils' dimensionality reduction, annotation and FlexConsensus work on it directly.

Engine contract::

    cryostar-engine train-atom --particles P.star --model ref.pdb [--map consensus.mrc]
        --out RUN --box N [--epochs E] [--batch B] [--zdim Z] [--low-pass Å]
        [--device cpu|cuda] [--invert-contrast] [--threads T] [--resume] [--seed S]

writes ``RUN/z.npy`` (one row per particle, star order) and ``RUN/manifest.json``.  The model
and map given are the plugin's engine-frame copies (see :mod:`cryostar_plugin.convert`), so the
engine adds no shift of its own.
"""
import os

import numpy as np
import pyworkflow.protocol.params as params
from pwem.objects import ParticleFlex, SetOfParticlesFlex
from pwem.protocols import ProtFlexBase

from ..constants import CRYOSTAR, CHECKPOINT, CONFIG
from .protocol_base import ProtCryoStarBase


def zRowsByObjId(starFile, z):
    """Map the engine's z rows (star order) to Scipion particle ids via ``rlnImageId``.

    Parameters
    ----------
    starFile : the star written by :func:`cryostar_plugin.convert.writeParticlesStar`.
    z : ``(N, zdim)`` array, row i = star row i.

    Returns
    -------
    dict : particle objId → ``(zdim,)`` row.
    """
    from cryostar_engine.io import read_star_tables

    _, table = read_star_tables(starFile)
    if len(table) != len(z):
        raise ValueError(f"z.npy has {len(z)} rows but {starFile} has {len(table)} particles")
    ids = table["rlnImageId"].to_numpy(dtype=np.int64)
    return dict(zip(ids.tolist(), np.asarray(z, dtype=np.float64)))


class ProtCryoStarTrainAtom(ProtCryoStarBase, ProtFlexBase):
    """Train CryoSTAR's atom generator: a variational encoder gives each particle a latent
    vector z, and a decoder moves the beads of the reference model (one per residue) so that
    their projections, with each particle's pose and CTF, match the images. Structural
    constraints keep bonds, angles and distances of the reference, and prevent clashes. The
    latent vectors are the conformational landscape used by the analysis and density stages."""
    _label = "train atom generator"
    _possibleOutputs = {"Particles": SetOfParticlesFlex}

    # --------------------------- DEFINE param functions -------------------------------------
    def _defineParams(self, form):
        form.addSection(label="Input")
        self._defineGpuParams(form)
        self._defineInputParams(form)
        form.addSection(label="Training")
        form.addParam("zDim", params.IntParam, default=8, validators=[params.Positive],
                      label="Latent dimension", help="Size of the latent vector z per particle.")
        form.addParam("numEpochs", params.IntParam, default=20, validators=[params.Positive],
                      label="Epochs", help="Passes over all particles.")
        form.addParam("batchSize", params.IntParam, default=64, validators=[params.Positive],
                      expertLevel=params.LEVEL_ADVANCED, label="Batch size")
        form.addParam("doDownsample", params.BooleanParam, default=True,
                      label="Downsample particles?",
                      help="Fourier-crop the particles on the fly (the engine does it); saves "
                           "time and memory, the atom model rarely needs full resolution.")
        form.addParam("boxSize", params.IntParam, default=128, condition="doDownsample",
                      validators=[params.Positive], label="New box size (px)",
                      help="Even, and not larger than the particle box.")
        form.addParam("doInvert", params.BooleanParam, default=False,
                      label="Invert contrast?",
                      help="Yes for dark particles (protein black). RELION-extracted particles "
                           "are white: keep No. 'check inputs' warns when the back-projection "
                           "anti-correlates with the map.")
        form.addParam("lowPass", params.FloatParam, default=0.0,
                      expertLevel=params.LEVEL_ADVANCED, label="Low-pass (Å)",
                      help="Low-pass filter applied to images and projections; 0 lets the "
                           "engine choose (see 'check inputs' for a suggestion).")
        form.addParam("seed", params.IntParam, default=0, expertLevel=params.LEVEL_ADVANCED,
                      label="Random seed")
        self._defineExtraParams(form)
        form.addParallelSection(threads=4, mpi=0)

    # --------------------------- INSERT steps functions ---------------------------------------
    def _insertAllSteps(self):
        self._createFilenameTemplates()
        self._insertFunctionStep(self.convertInputStep, needsGPU=False)
        self._insertFunctionStep(self.trainStep, needsGPU=True)
        self._insertFunctionStep(self.createOutputStep, needsGPU=False)

    def _createFilenameTemplates(self):
        super()._createFilenameTemplates()
        self._updateFilenamesDict({
            "runDir": self._getExtraPath("train_atom"),
            "z": self._getExtraPath("train_atom", "z.npy"),
            "manifest": self._getExtraPath("train_atom", "manifest.json"),
        })

    # --------------------------- STEPS functions ----------------------------------------------
    def _getTrainArgs(self, resume=False):
        """The engine's command-line arguments (list of str)."""
        parts = self.inputParticles.get()
        box = parts.getXDim()
        if self.doDownsample and self.boxSize.get() < box:
            box = self.boxSize.get()
        args = self._inputArgs() + [
            "--out", self._enginePath("runDir"), "--box", box,
            "--epochs", self.numEpochs.get(), "--batch", self.batchSize.get(),
            "--zdim", self.zDim.get(), "--device", self._getDevice(),
            "--threads", self.numberOfThreads.get(), "--seed", self.seed.get()]
        if self.doInvert:
            args.append("--invert-contrast")
        if self.lowPass.get() and self.lowPass.get() > 0:
            args += ["--low-pass", self.lowPass.get()]
        if resume:
            args.append("--resume")
        return [str(a) for a in args]

    def trainStep(self):
        self._createFilenameTemplates()
        runDir = self._enginePath("runDir")
        resume = os.path.isdir(runDir) and bool(os.listdir(runDir))  # a continued run
        self.runEngine("train-atom", self._getTrainArgs(resume), gpus=self._getEngineGpus())

    def createOutputStep(self):
        self._createFilenameTemplates()
        parts = self.inputParticles.get()
        zById = zRowsByObjId(self._enginePath("particlesStar"), np.load(self._enginePath("z")))
        out = self._createSetOfParticlesFlex(progName=CRYOSTAR)
        out.copyInfo(parts)
        out.setHasCTF(parts.hasCTF())
        out.setAlignmentProj()
        for p in parts.iterItems(orderBy="id"):
            fp = ParticleFlex(progName=CRYOSTAR)
            fp.copyInfo(p)
            fp.setObjId(p.getObjId())
            fp.setZFlex(zById[p.getObjId()].tolist())
            out.append(fp)
        info = out.getFlexInfo()
        info.setAttr("_cryostarZDim", int(self.zDim.get()))
        info.setAttr(CHECKPOINT, self._enginePath("runDir"))
        info.setAttr(CONFIG, self._enginePath("manifest"))
        self._defineOutputs(Particles=out)
        self._defineSourceRelation(self.inputParticles, out)
        self._defineSourceRelation(self.inputAtomStruct, out)

    # --------------------------- INFO functions -----------------------------------------------
    def _validate(self):
        errors = self._validateInputs()
        if self.inputParticles.hasValue() and self.doDownsample:
            box, xdim = self.boxSize.get(), self.inputParticles.get().getXDim()
            if box % 2:
                errors.append(f"The new box size ({box} px) must be even.")
            if xdim and box > xdim:
                errors.append(f"The new box size ({box} px) is larger than the particles' "
                              f"({xdim} px): no upsampling.")
        return errors

    def _warnings(self):
        if not self.usesGpu():
            return ["Training on the CPU is very slow; use it only for tiny tests."]
        return []

    def _summary(self):
        if not self.isFinished():
            return ["Not finished yet."]
        out = getattr(self, "Particles", None)
        if out is None:
            return ["No output registered."]
        return [f"{out.getSize()} particles with a {self.zDim.get()}-D latent vector z "
                f"after {self.numEpochs.get()} epochs."]
