"""``train density generator``: CryoSTAR stage 2 (``cryostar-engine train-density``).

Input: a SetOfParticlesFlex with CryoSTAR latent vectors (the ``Particles`` of ``train atom
generator``, or any subset of it); z stays fixed.  The particles are written as a star and their
``getZFlex()`` as ``z.npy`` in the same row order, so a subset trains on exactly its particles.
Output ``Volumes`` (SetOfVolumesFlex): the densities at the k-means centres and along the PC
trajectories of z, each with its latent vector, at the training box and pixel size, with the
origin that overlays them on the reference model and the consensus map as Scipion shows them.
"""
import os

import numpy as np
import pyworkflow.protocol.params as params
from pwem.objects import SetOfParticlesFlex, SetOfVolumesFlex, Transform, VolumeFlex
from pwem.protocols import ProtFlexBase
from pyworkflow.object import Integer, String

from ..constants import (CLUSTER, CRYOSTAR, FRAME, KIND, MODEL_SHIFT, PARTICLE_ID, PARTICLE_ROW,
                         PC, RUN_DIR)
from ..convert import writeParticlesStar
from ..outputs import readJson, readStarImageIds, volumeSeriesScript
from .protocol_base import ProtCryoStarBase

__all__ = ["ProtCryoStarTrainDensity"]

PRECISIONS = ["auto", "fp32", "bf16"]


class ProtCryoStarTrainDensity(ProtCryoStarBase, ProtFlexBase):
    """Train CryoSTAR's density generator: with the latent vectors z of the atom generator kept
    fixed, a neural field learns a 3-D density for every z from the particle images (poses and
    CTF as given), free of the atomic model, so that features the model lacks (ligands,
    unmodelled regions, lipids) appear. Outputs the volumes at the k-means states and along the
    principal components of z."""
    _label = "train density generator"
    _possibleOutputs = {"Volumes": SetOfVolumesFlex}

    # --------------------------- DEFINE param functions -------------------------------------
    def _defineParams(self, form):
        form.addSection(label="Input")
        self._defineGpuParams(form)
        form.addParam("inputParticles", params.PointerParam, pointerClass="SetOfParticlesFlex",
                      important=True, label="Particles with CryoSTAR z",
                      help="The 'Particles' output of 'train atom generator' (or a subset of "
                           "it): poses, CTF and the latent vector z of each particle.")
        group = form.addGroup("Training")
        group.addParam("doDownsample", params.BooleanParam, default=True,
                       label="Downsample particles?",
                       help="Fourier-crop the particles on the fly (the input set is not "
                            "changed).")
        group.addParam("boxSize", params.IntParam, default=128, validators=[params.Positive],
                       condition="doDownsample", label="Training box (px)",
                       help="Even, not larger than the particle box. The volumes have this "
                            "box.")
        group.addParam("numEpochs", params.IntParam, default=20, validators=[params.Positive],
                       label="Epochs", help="Passes over all particles.")
        form.addSection(label="Advanced")
        adv = dict(expertLevel=params.LEVEL_ADVANCED)
        form.addParam("batchSize", params.IntParam, default=16, validators=[params.Positive],
                      label="Batch size", **adv)
        form.addParam("learningRate", params.FloatParam, default=1e-4, label="Learning rate",
                      **adv)
        form.addParam("hidden", params.IntParam, default=1024, validators=[params.Positive],
                      label="Network width",
                      help="Width of the MLP. 1024 (the method's default) for GPUs; on a CPU, 256 "
                           "trains about 10× faster and gave better maps for the same wall time.",
                      **adv)
        form.addParam("residualLayers", params.IntParam, default=3, validators=[params.GE(0)],
                      label="Residual layers", **adv)
        form.addParam("precision", params.EnumParam, choices=PRECISIONS, default=0,
                      display=params.EnumParam.DISPLAY_HLIST, label="Precision",
                      help="auto: bf16 on GPUs (Ampere and later) and on CPUs with native "
                           "bf16, fp32 otherwise.", **adv)
        form.addParam("seed", params.IntParam, default=0, label="Random seed", **adv)
        form.addSection(label="Volumes")
        form.addParam("numClusters", params.IntParam, default=10, validators=[params.GE(1)],
                      label="k-means states", help="One volume at each k-means centre of z.")
        form.addParam("numPcs", params.IntParam, default=3, validators=[params.GE(0)],
                      label="PC trajectories", help="Volumes along PC1 … PCn of z.")
        form.addParam("numPoints", params.IntParam, default=10, validators=[params.GE(2)],
                      label="Volumes per trajectory")
        self._defineExtraParams(form)
        form.addParallelSection(threads=4, mpi=0)

    # --------------------------- INSERT steps functions ---------------------------------------
    def _insertAllSteps(self):
        self._createFilenameTemplates()
        self._insertFunctionStep(self.convertInputStep, needsGPU=False)
        self._insertFunctionStep(self.trainStep, needsGPU=True)
        self._insertFunctionStep(self.createOutputStep, needsGPU=False)

    def _createFilenameTemplates(self):
        self._updateFilenamesDict({
            "inputDir": self._getExtraPath("input"),
            "particlesStar": self._getExtraPath("input", "particles.star"),
            "z": self._getExtraPath("input", "z.npy"),
            "runDir": self._getExtraPath("train_density"),
            "runMarker": self._getExtraPath("train_density", "run.json"),
            "runManifest": self._getExtraPath("train_density", "manifest.json"),
            "chimeraScript": self._getExtraPath("volumes.cxc"),
        })

    # --------------------------- STEPS functions ----------------------------------------------
    def convertInputStep(self):
        """Particles star plus their z in the same row order (``extra/input``)."""
        self._createFilenameTemplates()
        parts = self.inputParticles.get()
        star = writeParticlesStar(parts, self._enginePath("particlesStar"),
                                  self._enginePath("inputDir"))
        zById = {p.getObjId(): p.getZFlex() for p in parts.iterItems()}
        z = np.array([zById[int(i)] for i in readStarImageIds(star)], dtype=np.float32)
        with open(self._enginePath("z"), "wb") as f:
            np.save(f, z)

    def _getTrainArgs(self, resume=False):
        parts = self.inputParticles.get()
        box = parts.getXDim()
        if self.doDownsample and self.boxSize.get() < box:
            box = self.boxSize.get()
        args = ["--out", self._enginePath("runDir"), "--epochs", self.numEpochs.get()]
        if resume:
            return [str(a) for a in args + ["--resume"]]
        args += ["--particles", self._enginePath("particlesStar"), "--z", self._enginePath("z"),
                 "--box", box, "--batch", self.batchSize.get(), "--lr", self.learningRate.get(),
                 "--hidden", self.hidden.get(), "--residual-layers", self.residualLayers.get(),
                 "--precision", PRECISIONS[self.precision.get()], "--device", self._getDevice(),
                 "--threads", self.numberOfThreads.get(), "--seed", self.seed.get(),
                 "--k", self.numClusters.get(), "--pcs", self.numPcs.get(),
                 "--points", self.numPoints.get()]
        return [str(a) for a in args]

    def trainStep(self):
        self._createFilenameTemplates()
        resume = os.path.isfile(self._enginePath("runMarker"))
        if resume:
            self.info("Resuming the density training from its last checkpoint.")
        self.runEngine("train-density", self._getTrainArgs(resume), gpus=self._getEngineGpus())
        if not os.path.exists(self._enginePath("runManifest")):
            raise RuntimeError("The engine stopped before the end of training; its checkpoints "
                               f"are kept in {self._enginePath('runDir')}. Use 'Continue' to "
                               "resume.")

    def createOutputStep(self):
        self._createFilenameTemplates()
        man = self.getRunManifest()
        runDir = self._enginePath("runDir")
        apix, box = float(man["apix"]), int(man["box"])
        origin = self._userOrigin(man)
        ids = readStarImageIds(self._enginePath("particlesStar"))
        out = self._createSetOfVolumesFlex(progName=CRYOSTAR)
        out.setSamplingRate(apix)
        out.getFlexInfo().setAttr(RUN_DIR, runDir)
        for name, series in man["series"].items():
            zs = np.loadtxt(os.path.join(runDir, series["z"]), ndmin=2)
            for i, (vol, row) in enumerate(zip(series["volumes"], series["star_rows"])):
                item = VolumeFlex(progName=CRYOSTAR)
                item.setFileName(os.path.join(runDir, vol))
                item.setSamplingRate(apix)
                t = Transform()
                t.setShifts(*origin)
                item.setOrigin(t)
                item.setZFlex(zs[i].tolist())
                isKmeans = name == "kmeans"
                setattr(item, KIND, String("kmeans" if isKmeans else "pca"))
                setattr(item, CLUSTER, Integer(i if isKmeans else -1))
                setattr(item, PC, Integer(0 if isKmeans else int(name.split("_")[1])))
                setattr(item, FRAME, Integer(-1 if isKmeans else i))
                setattr(item, PARTICLE_ROW, Integer(int(row)))
                setattr(item, PARTICLE_ID, Integer(int(ids[int(row)])))
                out.append(item)
        if out.getSize() and out.getFirstItem().getDim()[0] != box:
            raise RuntimeError(f"the volumes are not {box}³ as the manifest says")
        train = self.getTraining()
        script = volumeSeriesScript(
            "CryoSTAR density generator: volumes at the k-means states and along the PCs",
            [(name, [os.path.join(runDir, v) for v in series["volumes"]])
             for name, series in man["series"].items()],
            apix, origin, consensus=train.getMapDisplay() if train is not None else None)
        with open(self._enginePath("chimeraScript"), "w") as f:
            f.write(script)
        self._defineOutputs(Volumes=out)
        self._defineSourceRelation(self.inputParticles, out)

    # --------------------------- UTILS functions ----------------------------------------------
    def getRunDir(self):
        return self._enginePath("runDir")

    def getRunManifest(self):
        path = self._enginePath("runManifest")
        return readJson(path) if os.path.exists(path) else None

    def getChimeraScript(self):
        """ChimeraX script of the volume series in the user's frame (``extra/volumes.cxc``)."""
        return self._enginePath("chimeraScript")

    def getTraining(self):
        """The 'train atom generator' run that produced the input particles (None when another
        protocol did, e.g. a subset made elsewhere)."""
        from pyworkflow.protocol import Protocol

        from .protocol_train_atom import ProtCryoStarTrainAtom
        producer = self.inputParticles.getObjValue()
        if not isinstance(producer, Protocol):   # the pointer names the output set itself
            parts = self.inputParticles.get()
            parentId = parts.getObjParentId() if parts is not None else None
            producer = self.getProject().getProtocol(parentId) if parentId else None
        return producer if isinstance(producer, ProtCryoStarTrainAtom) else None

    def _getModelShift(self):
        """Shift (Å, xyz) the training applied to the user's model (engine = user + shift):
        from the particles' FlexInfo, else from the training run; 0 when unknown."""
        try:
            value = self.inputParticles.get().getFlexInfo().getAttr(MODEL_SHIFT)
            if isinstance(value, str):   # a list attribute comes back as "x,y,z"
                value = value.split(",")
            return np.asarray(value, dtype=np.float64)
        except AttributeError:
            train = self.getTraining()
            return np.asarray(train.getEngineShift() if train is not None else [0.0] * 3,
                              dtype=np.float64)

    def _userOrigin(self, man):
        """Volume origin (Å, xyz) in the frame of the user's reference model: the engine's
        ``-(D//2)·apix`` minus the shift the training applied to the model."""
        origin = np.asarray(man["origin_A"], dtype=np.float64) - self._getModelShift()
        return tuple(float(v) + 0.0 for v in origin)

    # --------------------------- INFO functions -----------------------------------------------
    def _validate(self):
        parts = self.inputParticles.get()
        if parts is None:
            return []
        errors = self._validateGpuBatch(self.batchSize.get())
        if not isinstance(parts, SetOfParticlesFlex):
            return ["The particles have no latent vectors: use the Particles of 'train atom "
                    "generator'."]
        if parts.getFlexInfo().getProgName() != CRYOSTAR:
            errors.append(f"The particles' latent vectors come from "
                          f"'{parts.getFlexInfo().getProgName()}', not CryoSTAR: use the "
                          "Particles of 'train atom generator'.")
        if not parts.hasAlignmentProj():
            errors.append("The particles have no 3-D alignment.")
        if not parts.hasCTF():
            errors.append("The particles have no CTF information.")
        if self.doDownsample:
            box, xdim = self.boxSize.get(), parts.getXDim()
            if box % 2:
                errors.append(f"The training box ({box} px) must be even.")
            if xdim and box > xdim:
                errors.append(f"The training box ({box} px) is larger than the particles' "
                              f"({xdim} px): no upsampling.")
        return errors

    def _warnings(self):
        warnings = []
        if not self.usesGpu():
            warnings.append("Training the density generator on the CPU is very slow; use a "
                            "small network (Advanced) for tests only.")
        parts = self.inputParticles.get()
        if parts is not None:
            try:
                parts.getFlexInfo().getAttr(MODEL_SHIFT)
            except AttributeError:
                if self.getTraining() is None:
                    warnings.append("The particles do not say how the reference model was "
                                    "placed: the volumes are put in the box-centred frame.")
        return warnings

    def _summary(self):
        if not self.isFinished():
            return ["Not finished yet."]
        man = self.getRunManifest() or {}
        vols = getattr(self, "Volumes", None)
        if vols is None:
            return ["No output registered."]
        return [f"{vols.getSize()} volumes ({', '.join(man.get('series', {}))}) of "
                f"{man.get('box')}³ px at {man.get('apix', 0):.2f} Å/px from "
                f"{man.get('n_particles')} particles after {self.numEpochs.get()} epochs."]

    def _methods(self):
        if not self.isFinished():
            return []
        man = self.getRunManifest() or {}
        return [f"A CryoSTAR density generator [Li2024cryostar] was trained on "
                f"{man.get('n_particles')} particles with their stage-1 latent vectors fixed "
                f"({man.get('box')} px, {man.get('apix', 0):.2f} Å/px, {self.numEpochs.get()} "
                "epochs); volumes were generated at the k-means centres and along the principal "
                "components of the latent space."]

    def _citations(self):
        return ["Li2024cryostar"]
