"""``train density generator``: CryoSTAR stage 2 (``cryostar-engine train-density``).

Input: a SetOfParticlesFlex with CryoSTAR latent vectors (the ``Particles`` of ``train atom
generator``, or any subset of it); z stays fixed.  The particles are written as a star and their
``getZFlex()`` as ``z.npy`` in the same row order, so a subset trains on exactly its particles.
Output ``Volumes`` (SetOfVolumesFlex): the densities at the k-means centres and along the PC
trajectories (the engine's PCA of the decoded structures), each with its latent vector, at the
training box and pixel size, with the origin that overlays them on the reference model and the
consensus map as Scipion shows them.

Then (form: "Validate models against maps", default yes) ``cryostar-engine validate`` compares
the atom generator's model with this run's map at each of those z (``extra/validation``: report,
figures, ChimeraX script; the verdict ends the summary; the viewer shows it).
"""
import os

import numpy as np
import pyworkflow.protocol.params as params
from pwem.objects import SetOfParticlesFlex, SetOfVolumesFlex, Transform, VolumeFlex
from pwem.protocols import ProtFlexBase
from pyworkflow.object import Integer, String

from ..constants import CLUSTER, CRYOSTAR, FRAME, KIND, PARTICLE_ID, PARTICLE_ROW, PC, RUN_DIR
from ..convert import writeParticlesStar
from ..formsettings import DENSITY, FormSetting, addSettingParam, settingArgs, settingErrors
from ..modelmap import ValidationMissing, readValidation, verdictLine
from ..outputs import readJson, readStarImageIds
from .protocol_base import ProtCryoStarBase

__all__ = ["ProtCryoStarTrainDensity", "SPECS"]

NO_ATOM_RUN = ("the particles do not name the 'train atom generator' run that decoded their "
               "models (use its Particles output, or a subset of it).")

S = FormSetting
#: Form fields bound to ``cryostar-engine train-density`` settings (see :mod:`..formsettings`).
TRAINING = [
    S("boxSize", "box", "Training box (px)",
      "The particles are Fourier-cropped to it on the fly; the volumes have this box."),
    S("numEpochs", "epochs", "Epochs"),
]
OPTIMISATION = [
    S("batchSize", "batch", "Batch size"),
    S("learningRate", "lr", "Learning rate"),
    S("seed", "seed", "Random seed"),
    S("precision", "precision", "Precision"),
]
NETWORK = [
    S("hidden", "hidden", "Network width"),
    S("residualLayers", "residual_layers", "Residual layers"),
]
VALIDATE_HELP = (
    "After training, run 'cryostar-engine validate': at every k-means state and PC trajectory "
    "point, the model decoded by the atom generator is compared with this run's map at the same "
    "z (model-map FSC at 0.5, a local correlation per residue, a summary per chain). Flagged: "
    "residues and chains that the model moves but the map does not (motion that comes from the "
    "prior, not from the images), and those where the map changes but the model stays rigid (a "
    "missing degree of freedom or a change of composition). The maps are learnt without the "
    "atomic model, which is what makes this check possible. Report, per-state figures and a "
    "ChimeraX script in extra/validation; the verdict in the summary; 'Analyze results' shows "
    "them. It needs the atom generator run the particles come from, and costs little next to "
    "the training (40 points on 48³ maps: about 35 CPU seconds). The command line's "
    "train-density does not validate: there it is the separate command 'cryostar-engine "
    "validate'.")
VOLUMES = [
    S("numClusters", "n_clusters", "k-means states"),
    S("numPcs", "n_pcs", "PC trajectories"),
    S("numPoints", "n_pc_points", "Volumes per trajectory"),
]
SPECS = TRAINING + OPTIMISATION + NETWORK + VOLUMES


class ProtCryoStarTrainDensity(ProtCryoStarBase, ProtFlexBase):
    """Train CryoSTAR's density generator: with the latent vectors z of the atom generator kept
    fixed, a neural field learns a 3-D density for every z from the particle images (poses and
    CTF as given), free of the atomic model, so that features the model lacks (ligands,
    unmodelled regions, lipids) appear. Outputs the volumes at the k-means states and along the
    principal components of the decoded structures, then validates the atom generator's models
    against them."""
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
        self._addSettings(form.addGroup("Training"), TRAINING)
        form.addParam("doValidate", params.BooleanParam, default=True,
                      label="Validate models against maps", help=VALIDATE_HELP)
        form.addSection(label="Advanced")
        self._addSettings(form.addGroup("Optimisation"), OPTIMISATION)
        adv = dict(expertLevel=params.LEVEL_ADVANCED)
        self._addSettings(form.addGroup("Network", **adv), NETWORK, **adv)
        form.addSection(label="Volumes")
        self._addSettings(form, VOLUMES)
        self._defineExtraParams(form)
        form.addParallelSection(threads=4, mpi=0)

    def _addSettings(self, container, specs, **kwargs):
        for spec in specs:
            addSettingParam(container, spec, DENSITY, SPECS, **kwargs)

    # --------------------------- INSERT steps functions ---------------------------------------
    def _insertAllSteps(self):
        self._createFilenameTemplates()
        self._insertFunctionStep(self.convertInputStep, needsGPU=False)
        self._insertFunctionStep(self.trainStep, needsGPU=True)
        self._insertFunctionStep(self.createOutputStep, needsGPU=False)
        if self.doValidate:
            self._insertFunctionStep(self.validateStep, needsGPU=True)

    def _createFilenameTemplates(self):
        self._updateFilenamesDict({
            "inputDir": self._getExtraPath("input"),
            "particlesStar": self._getExtraPath("input", "particles.star"),
            "z": self._getExtraPath("input", "z.npy"),
            "runDir": self._getExtraPath("train_density"),
            "runMarker": self._getExtraPath("train_density", "run.json"),
            "runManifest": self._getExtraPath("train_density", "manifest.json"),
            "validationDir": self._getExtraPath("validation"),
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
        """Inputs, run folder, Scipion's run settings and only the settings the user changed
        (an untouched form runs the engine's defaults)."""
        args = ["--out", self._enginePath("runDir")]
        if resume:
            epochs = [s for s in SPECS if s.param == "numEpochs"]
            return [str(a) for a in args + settingArgs(self, epochs, DENSITY) + ["--resume"]]
        args += ["--particles", self._enginePath("particlesStar"), "--z", self._enginePath("z")]
        args += self._frameArgs() + self._runArgs() + settingArgs(self, SPECS, DENSITY)
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
        """Register the volumes the engine lists in its manifest, where they are, with the
        sampling and header origin it reports (they overlay the input model and map)."""
        self._createFilenameTemplates()
        man = self.getRunManifest()
        runDir = self._enginePath("runDir")
        apix, box = float(man["apix_A"]), int(man["box_px"])
        ids = readStarImageIds(self._enginePath("particlesStar"))
        out = self._createSetOfVolumesFlex(progName=CRYOSTAR)
        out.setSamplingRate(apix)
        out.getFlexInfo().setAttr(RUN_DIR, runDir)
        for name, volumes in man["series"].items():
            latents = man["latents"][name]
            zs = np.loadtxt(os.path.join(runDir, latents["z"]), ndmin=2)
            for i, (vol, row) in enumerate(zip(volumes, latents["star_rows"])):
                item = VolumeFlex(progName=CRYOSTAR)
                item.setFileName(os.path.join(runDir, vol))
                item.setSamplingRate(apix)
                t = Transform()
                t.setShifts(*(float(v) for v in man["origin_A"]))
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
        self._defineOutputs(Volumes=out)
        self._defineSourceRelation(self.inputParticles, out)

    def _getValidateArgs(self):
        """``validate``'s arguments: the two runs, the output folder and Scipion's run settings
        (device, threads); None when the particles name no finished atom-generator run."""
        atomRun = self._trainingRunDir()
        if not atomRun or not os.path.exists(os.path.join(atomRun, "manifest.json")):
            return None
        args = ["--atom-run", atomRun, "--density-run", self._enginePath("runDir"),
                "--out", self._enginePath("validationDir")] + self._runArgs()
        return [str(a) for a in args]

    def validateStep(self):
        """``cryostar-engine validate`` on the atom run of the particles and this run
        (``extra/validation``); skipped, with a line in the log and the summary, when the
        particles do not name their atom-generator run."""
        self._createFilenameTemplates()
        args = self._getValidateArgs()
        if args is None:
            self.info("Model-map validation skipped: " + NO_ATOM_RUN)
            return
        if os.path.exists(self._enginePath("validationDir")):   # a re-run of this step
            args.append("--overwrite")
        self.runEngine("validate", args, gpus=self._getEngineGpus(), useExtraParams=False)

    # --------------------------- UTILS functions ----------------------------------------------
    def getValidationDir(self):
        """Absolute folder of the model-map validation (``extra/validation``)."""
        return self._enginePath("validationDir")

    def getValidation(self):
        """``(manifest, report)`` of the validation; raises ValidationMissing (one line)."""
        return readValidation(self.getValidationDir())

    def _trainingRunDir(self):
        """The stage-1 run folder recorded in the particles' FlexInfo, or None."""
        try:
            value = self.inputParticles.get().getFlexInfo().getAttr(RUN_DIR)
        except AttributeError:
            return None
        return str(value) if value else None

    def _frameArgs(self):
        """``--map`` naming the map that set the stage-1 frame (from the stage-1 manifest), so
        the volumes overlay the same model and map; nothing when stage 1 had none."""
        runDir = self._trainingRunDir()
        path = os.path.join(runDir, "manifest.json") if runDir else None
        if not path or not os.path.exists(path):
            return []
        mapPath = (readJson(path).get("frame") or {}).get("map")
        return ["--map", mapPath] if mapPath and os.path.exists(mapPath) else []

    def getRunDir(self):
        return self._enginePath("runDir")

    def getRunManifest(self):
        path = self._enginePath("runManifest")
        return readJson(path) if os.path.exists(path) else None

    def getChimeraScript(self):
        """The engine's ChimeraX script of the volume series (in the user's frame)."""
        man = self.getRunManifest() or {}
        return os.path.join(self._enginePath("runDir"), man.get("cxc", {}).get("volumes",
                                                                               "volumes.cxc"))

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
        errors += settingErrors(self, SPECS, DENSITY)
        box, xdim = self.boxSize.get(), parts.getXDim()
        if box is not None:
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
        if self.inputParticles.get() is not None and self._trainingRunDir() is None:
            warnings.append("The particles do not name their atom-generator run: the volumes "
                            "are placed as if the model were centred in the box"
                            + (", and the model-map validation will be skipped."
                               if self.doValidate else "."))
        return warnings

    def _trainedEpochs(self, man):
        return round(man["images_seen"] / man["n_particles"], 2) if man.get("n_particles") else 0

    def _summary(self):
        if not self.isFinished():
            return ["Not finished yet."]
        man = self.getRunManifest() or {}
        vols = getattr(self, "Volumes", None)
        if vols is None:
            return ["No output registered."]
        return [f"{vols.getSize()} volumes ({', '.join(man.get('series', {}))}) of "
                f"{man.get('box_px')}³ px at {man.get('apix_A', 0):.2f} Å/px from "
                f"{man.get('n_particles')} particles after {self._trainedEpochs(man):g} epochs.",
                self._validationSummary()]

    def _validationSummary(self):
        """The verdict line of the model-map validation, or why there is none."""
        if not self.doValidate:
            return ("Model-map validation: not run ('Validate models against maps' = no); "
                    "'cryostar-engine validate' runs it on this run's folder.")
        if self._getValidateArgs() is None:
            return "Model-map validation: skipped: " + NO_ATOM_RUN
        try:
            _, report = self.getValidation()
        except ValidationMissing as err:
            return f"Model-map validation: not available ({err})."
        return verdictLine(report) + " Details: Analyze results > Model-map validation."

    def _methods(self):
        if not self.isFinished():
            return []
        man = self.getRunManifest() or {}
        return [f"A CryoSTAR density generator [Li2024cryostar] was trained on "
                f"{man.get('n_particles')} particles with their latent vectors from the atom "
                f"generator kept fixed ({man.get('box_px')} px, {man.get('apix_A', 0):.2f} Å/px, "
                f"{self._trainedEpochs(man):g} epochs). Volumes were generated at the k-means "
                "centres and along the principal components of the latent space."
                + self._validationMethods()]

    def _validationMethods(self):
        try:
            _, report = self.getValidation()
        except ValidationMissing:
            return ""
        n = len(report.get("points", []))
        return (f" At each of these {n} points, the model decoded by the atom generator was "
                "compared with the map (model-map FSC, per-residue local correlation): "
                f"{report.get('verdict')}.")

    def _citations(self):
        return ["Li2024cryostar"]
