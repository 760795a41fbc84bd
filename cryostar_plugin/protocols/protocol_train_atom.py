"""``train atom generator``: CryoSTAR stage 1 (``cryostar-engine train-atom``), then its analysis.

Steps: convert the inputs → ``check-inputs`` → ``train-atom`` → ``analyze`` → register outputs.
Learns a latent vector z per particle and a decoder that deforms the coarse-grained reference
model.  Outputs:

* ``Particles``: FlexHub ``SetOfParticlesFlex`` (progName ``CryoSTAR``) with z per particle:
  flexutils' "filter PCA" and "associate flex space to particles" run on it (tested); its
  dimensionality reduction and FlexConsensus need flexutils' conda environments
  (docs/flexhub.md); its FlexInfo holds the run folder, the last checkpoint and the engine config;
* ``ClusterCentres`` / ``Trajectories``: the decoded k-means centre and PC-trajectory models
  (see :mod:`.analysis_outputs`).

A run stopped or killed before the end keeps its checkpoints: "Continue" (Scipion's run mode)
or a new run with "Continue a previous run?" resumes from the last one (``--resume``).
"""
import os
import shutil

import numpy as np
import pyworkflow.protocol.params as params
from pwem.objects import ParticleFlex, SetOfAtomStructFlex, SetOfParticlesFlex
from pwem.protocols import ProtFlexBase

from ..constants import CHECKPOINT, CLUSTER_SIZE, CONFIG, CRYOSTAR, RUN_DIR
from ..formsettings import ATOM, FormSetting, addSettingParam, settingArgs, settingErrors
from ..outputs import readJson, zRowsByObjId
from .analysis_outputs import CENTRES, TRAJECTORIES, AnalysisOutputsMixin
from .protocol_base import ProtCryoStarBase

__all__ = ["ProtCryoStarTrainAtom", "zRowsByObjId", "ESSENTIAL", "OPTIMISATION", "RESTRAINTS",
           "PRIOR", "RENDERING", "SPECS"]

S = FormSetting
#: Form fields bound to ``cryostar-engine train-atom`` settings (see :mod:`..formsettings`):
#: defaults, choices and help are the engine's; only the fields a user changed become flags.
ESSENTIAL = [
    S("boxSize", "box", "Training box (px)",
      "The particles are Fourier-cropped to it on the fly; the input set is not changed."),
    S("numEpochs", "epochs", "Epochs",
      "When continuing a run: the new total (not the extra epochs); empty keeps the previous "
      "run's."),
    S("zDim", "zdim", "Latent dimension",
      "The size of each particle's latent vector z (the conformational coordinates)."),
    S("lowPass", "low_pass_A", "Low-pass (Å)",
      "The form takes a number: its wizard fills in the automatic value ('auto') that the "
      "engine computes for these inputs."),
    S("doInvert", "invert_contrast", "Invert contrast?",
      "Yes for dark particles (protein black); RELION-extracted particles are white. 'check "
      "inputs' warns when the back-projection anti-correlates with the map."),
]
OPTIMISATION = [
    S("batchSize", "batch", "Batch size"),
    S("learningRate", "lr", "Learning rate"),
    S("lrSchedule", "lr_schedule", "Learning-rate schedule"),
    S("seed", "seed", "Random seed"),
    S("precision", "precision", "Precision"),
    S("checkpointEvery", "checkpoint_every", "Checkpoint every (steps)",
      "A stopped or killed run resumes from its last checkpoint ('Continue')."),
]
RESTRAINTS = [
    S("continuityWeight", "continuity_weight", "Bond continuity weight"),
    S("enWeight", "en_weight", "Elastic network weight"),
    S("enCutoff", "en_cutoff_A", "Elastic network cutoff (Å)"),
    S("enKeepRatio", "en_keep_ratio", "Elastic network keep ratio"),
    S("enTolerance", "en_tolerance_A", "Elastic network tolerance (Å)"),
    S("clashWeight", "clash_weight", "Clash weight"),
    S("clashMin", "clash_min_A", "Clash distance (Å)"),
]
PRIOR = [
    S("klBetaMax", "kl_beta_max", "Final KL weight"),
    S("klFreeBits", "kl_free_bits", "KL free bits (nats per dimension)"),
]
RENDERING = [
    S("beadSigma", "bead_sigma_A", "Bead width σ (Å)"),
    S("beadCentre", "bead_centre", "Render beads at"),
    S("maskRadius", "mask_radius", "Mask radius (fraction of half box)"),
]
SPECS = ESSENTIAL + OPTIMISATION + RESTRAINTS + PRIOR + RENDERING
NEW_RUN = "not doContinue"


class ProtCryoStarTrainAtom(ProtCryoStarBase, ProtFlexBase, AnalysisOutputsMixin):
    """Train CryoSTAR's atom generator: a variational encoder gives each particle a latent
    vector z, and a decoder moves the beads of the reference model (one per residue) so that
    their projections, with each particle's pose and CTF, match the images. Structural
    restraints keep the bonds and local distances of the reference and prevent clashes. The
    latent vectors are the conformational landscape: the run ends with an analysis (PCA
    trajectories and k-means states, decoded as atomic models) and feeds 'analyze latent
    space', 'particles subset' and 'train density generator'."""
    _label = "train atom generator"
    _possibleOutputs = {"Particles": SetOfParticlesFlex, CENTRES: SetOfAtomStructFlex,
                        TRAJECTORIES: SetOfAtomStructFlex}

    # --------------------------- DEFINE param functions -------------------------------------
    def _defineParams(self, form):
        form.addSection(label="Input")
        self._defineGpuParams(form)
        form.addParam("doContinue", params.BooleanParam, default=False,
                      label="Continue a previous run?",
                      help="Resume a stopped, killed or finished training from its last "
                           "checkpoint, e.g. to train for more epochs. Inputs and settings are "
                           "those of the previous run; only the number of epochs may grow. "
                           "(To resume this same run after a failure, use the 'Continue' run "
                           "mode instead.)")
        form.addParam("continueRun", params.PointerParam, pointerClass="ProtCryoStarTrainAtom",
                      condition="doContinue", label="Previous training run",
                      help="The 'train atom generator' run to resume.")
        self._defineInputParams(form, condition=NEW_RUN)
        self._defineEssentialParams(form)
        self._defineAdvancedParams(form)
        self._defineAnalysisParams(form)
        self._defineExtraParams(form)
        form.addParallelSection(threads=4, mpi=0)

    def _addSettings(self, container, specs, **kwargs):
        for spec in specs:
            addSettingParam(container, spec, ATOM, SPECS, **kwargs)

    def _defineEssentialParams(self, form):
        group = form.addGroup("Training")
        for spec in ESSENTIAL:
            cond = {} if spec.param == "numEpochs" else {"condition": NEW_RUN}
            addSettingParam(group, spec, ATOM, SPECS, **cond)

    def _defineAdvancedParams(self, form):
        form.addSection(label="Advanced")
        new = dict(condition=NEW_RUN)
        adv = dict(expertLevel=params.LEVEL_ADVANCED, condition=NEW_RUN)
        self._addSettings(form.addGroup("Optimisation", **new), OPTIMISATION, **new)
        form.addParam("doCheckInputs", params.BooleanParam, default=True, condition=NEW_RUN,
                      label="Check inputs first?",
                      help="Run 'check inputs' (model/map fit, back-projection from the poses) "
                           "before training; its report is in extra/check.")
        self._addSettings(form.addGroup("Structural restraints", **adv), RESTRAINTS, **adv)
        self._addSettings(form.addGroup("Latent prior", **adv), PRIOR, **adv)
        self._addSettings(form.addGroup("Bead rendering", **adv), RENDERING, **adv)

    def _defineAnalysisParams(self, form):
        form.addSection(label="Analysis")
        form.addParam("numClusters", params.IntParam, default=10, validators=[params.GE(2)],
                      label="k-means states",
                      help="Number of k-means clusters of z; their centres are decoded as "
                           "models (ClusterCentres). 'analyze latent space' redoes this with "
                           "another k without retraining.")
        form.addParam("numPcs", params.IntParam, default=3, validators=[params.Positive],
                      label="PC trajectories", help="Trajectories along PC1 … PCn.")
        form.addParam("numPoints", params.IntParam, default=10, validators=[params.GE(2)],
                      label="Points per trajectory",
                      help="Real particles from the 5th to the 95th percentile of each PC.")

    # --------------------------- continued runs ----------------------------------------------
    def _isContinued(self):
        return bool(self.doContinue.get()) and self.continueRun.hasValue()

    def _source(self):
        """The protocol whose inputs and settings this run uses (itself, or the one continued,
        followed back to the run that started the training)."""
        prot = self
        while prot._isContinued():
            prot = prot.continueRun.get()
        return prot

    def _getParticlesPointer(self):
        return self._source().inputParticles

    def _getAtomStructPointer(self):
        return self._source().inputAtomStruct

    def _getVolumePointer(self):
        return self._source().inputVolume

    # --------------------------- INSERT steps functions ---------------------------------------
    def _insertAllSteps(self):
        self._createFilenameTemplates()
        self._insertFunctionStep(self.convertInputStep, needsGPU=False)
        if self._isContinued():
            self._insertFunctionStep(self.copyPreviousRunStep, needsGPU=False)
        elif self.doCheckInputs:
            self._insertFunctionStep(self.checkInputsStep, needsGPU=False)
        self._insertFunctionStep(self.trainStep, needsGPU=True)
        self._insertFunctionStep(self.analyzeStep, needsGPU=False)
        self._insertFunctionStep(self.createOutputStep, needsGPU=False)

    def _createFilenameTemplates(self):
        super()._createFilenameTemplates()
        self._updateFilenamesDict({
            "checkDir": self._getExtraPath("check"),
            "runDir": self._getExtraPath("train_atom"),
            "runManifest": self._getExtraPath("train_atom", "manifest.json"),
            "runMarker": self._getExtraPath("train_atom", "run.json"),
            "analysisDir": self._getExtraPath("train_atom", "analysis"),
        })

    # --------------------------- STEPS functions ----------------------------------------------
    def copyPreviousRunStep(self):
        """Copy the previous run's engine folder (checkpoints, config, logs) to resume it here."""
        src = self.continueRun.get()._enginePath("runDir")
        dst = self._enginePath("runDir")
        if os.path.exists(dst):
            return
        if not os.path.isdir(src):
            raise RuntimeError(f"The previous run has no training folder ({src})")
        shutil.copytree(src, dst, symlinks=True, ignore=shutil.ignore_patterns("analysis"))
        self.info(f"Copied {src} to {dst}; training resumes from its last checkpoint.")

    def checkInputsStep(self):
        args = self._inputArgs() + ["--out", self._enginePath("checkDir")]
        self.runEngine("check-inputs", args, useExtraParams=False)

    def _getTrainArgs(self, resume=False):
        """The engine's command-line arguments (list of str): the inputs, the run folder, the
        device and threads (Scipion's run settings) and only the settings the user changed
        (:func:`~cryostar_plugin.formsettings.settingArgs`); a continued run takes them from
        the run it continues, apart from the epochs."""
        src = self._source()
        specs = [s for s in SPECS if s.param != "numEpochs"]
        epochs = [s for s in SPECS if s.param == "numEpochs"]
        args = (self._inputArgs() + ["--out", self._enginePath("runDir")]
                + self._runArgs() + settingArgs(src, specs, ATOM) + settingArgs(self, epochs, ATOM))
        if resume:
            # the engine never inherits a step or time limit from the run it resumes
            args += ["--resume"]
        return [str(a) for a in args]

    def trainStep(self):
        self._createFilenameTemplates()
        resume = os.path.isfile(self._enginePath("runMarker"))  # continued or re-launched run
        if resume:
            self.info("Resuming the training from its last checkpoint.")
        try:
            self.runEngine("train-atom", self._getTrainArgs(resume), gpus=self._getEngineGpus())
        except Exception as err:
            raise RuntimeError(f"{err}{self._resumeHint()}") from err
        manifest = self._readRunManifest()
        if manifest is None or manifest.get("status") != "finished":
            step = manifest.get("step") if manifest else None
            raise RuntimeError(f"The engine stopped before the end of training (last "
                               f"evaluation at step {step}).{self._resumeHint()}")

    def _resumeHint(self):
        """Tells the user how to resume when the run already has a checkpoint."""
        folder = os.path.join(self._enginePath("runDir"), "checkpoints")
        if os.path.isdir(folder) and any(f.endswith(".pt") for f in os.listdir(folder)):
            return (f" Its checkpoints are kept in {folder}: use 'Continue' to resume from the "
                    "last one.")
        return ""

    def analyzeStep(self):
        self._createFilenameTemplates()
        args = ["--run", self._enginePath("runDir")] + self._analysisArgs(self._source())
        self.runEngine("analyze", args, useExtraParams=False)

    def createOutputStep(self):
        self._createFilenameTemplates()
        parts = self.getInputParticles()
        manifest = self._readRunManifest()
        runDir = self._enginePath("runDir")
        zById = zRowsByObjId(self._enginePath("particlesStar"),
                             np.load(os.path.join(runDir, manifest["z"])))
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
        info.setAttr("_cryostarZDim", int(manifest["zdim"]))
        info.setAttr(RUN_DIR, runDir)
        info.setAttr(CHECKPOINT, self._lastCheckpoint(manifest))
        info.setAttr(CONFIG, os.path.join(runDir, manifest["config"]))
        self._defineOutputs(Particles=out)
        self._defineSourceRelation(self._getParticlesPointer(), out)
        self._defineSourceRelation(self._getAtomStructPointer(), out)
        self.registerAnalysisOutputs(self, self._enginePath("analysisDir"))

    # --------------------------- UTILS functions ----------------------------------------------
    def _readRunManifest(self):
        """The engine's ``RUN/manifest.json`` (None before the first evaluation)."""
        path = self._enginePath("runManifest")
        return readJson(path) if os.path.exists(path) else None

    def _lastCheckpoint(self, manifest):
        """The newest checkpoint the run manifest lists (absolute path)."""
        return os.path.join(self._enginePath("runDir"), manifest["checkpoints"][-1])

    def getRunDir(self):
        """Absolute engine run folder (``extra/train_atom``)."""
        return self._enginePath("runDir")

    def getAnalysisDir(self):
        return self._enginePath("analysisDir")

    def getRunManifest(self):
        return self._readRunManifest()

    # --------------------------- INFO functions -----------------------------------------------
    def _validate(self):
        epochs = self.numEpochs.get()
        if epochs is not None and epochs <= 0:
            return [f"Epochs ({epochs:g}) must be positive, or empty for the default."]
        if self.doContinue:
            return self._validateContinue()
        errors = (self._validateInputs() + self._validateGpuBatch(self.batchSize.get())
                  + settingErrors(self, SPECS, ATOM))
        box = self.boxSize.get()
        if self._getParticlesPointer().hasValue() and box is not None:
            xdim = self.getInputParticles().getXDim()
            if box % 2:
                errors.append(f"The training box ({box} px) must be even.")
            if xdim and box > xdim:
                errors.append(f"The training box ({box} px) is larger than the particles' "
                              f"({xdim} px): no upsampling.")
            elif xdim and self.lowPass.get() is not None and not errors:
                apix = self.getInputParticles().getSamplingRate() * xdim / box
                if self.lowPass.get() <= 2 * apix:
                    errors.append(f"The low-pass ({self.lowPass.get():g} Å) must be coarser "
                                  f"than Nyquist at the training box ({2 * apix:.2f} Å): raise "
                                  f"it (e.g. {2.5 * apix:.1f} Å), enlarge the box, or leave "
                                  "both empty (automatic).")
        return errors

    def _validateContinue(self):
        prev = self.continueRun.get()
        if prev is None:
            return ["Choose the previous training run to continue."]
        if prev.getObjId() == self.getObjId():
            return ["A run cannot continue itself; use the 'Continue' run mode instead."]
        errors = []
        if not os.path.isfile(prev._enginePath("runMarker")):
            errors.append("The previous run has no training folder to resume (did it start "
                          "training?).")
        before = prev.trainedEpochs()
        if self.numEpochs.get() is not None and before and self.numEpochs.get() < before:
            errors.append(f"Epochs ({self.numEpochs.get():g}) must be at least the previous "
                          f"run's ({before:g}): it is the new total.")
        return errors

    def _warnings(self):
        warnings = []
        if not self.usesGpu():
            warnings.append("Training on the CPU is very slow; use it only for tiny tests.")
        if not self.doContinue and self._getParticlesPointer().hasValue():
            parts = self.getInputParticles()
            if parts.getSize() and parts.getSize() < 1000:
                warnings.append(f"Only {parts.getSize()} particles: the latent space will be "
                                "poorly determined.")
            if self._getConsensusVolume() is None:
                warnings.append("No consensus map: the model is assumed to be centred in the "
                                "particle box already, and the ChimeraX scripts show no map.")
        return warnings

    def trainedEpochs(self, manifest=None):
        """Epochs the engine has trained so far (images seen / particles, from its run manifest,
        read here unless given), or None before its first evaluation."""
        man = manifest if manifest is not None else (self._readRunManifest() or {})
        if not man.get("particles"):
            return None
        return round(man["images_seen"] / man["particles"], 2)

    def _readRunConfig(self):
        """The engine's resolved ``config.json`` of the run (every setting as trained), or {}."""
        man = self._readRunManifest() or {}
        path = os.path.join(self._enginePath("runDir"), man.get("config", "config.json"))
        return readJson(path) if os.path.exists(path) else {}

    def _summary(self):
        if not self.isFinished():
            return ["Not finished yet."]
        out = getattr(self, "Particles", None)
        if out is None:
            return ["No output registered."]
        man = self._readRunManifest() or {}
        cfg = self._readRunConfig()
        lowPass = cfg.get("low_pass_A")
        lines = [f"{out.getSize()} particles with a {man.get('zdim', cfg.get('zdim', '?'))}-D "
                 f"latent vector z after {self.trainedEpochs(man) or 0:g} epochs "
                 f"({man.get('step', '?')} steps).",
                 f"Training box {man.get('box_px', '?')} px ({man.get('apix_A', 0):.2f} Å/px), "
                 + (f"low-pass {lowPass:g} Å." if lowPass is not None else "low-pass unknown.")]
        centres = getattr(self, CENTRES, None)
        if centres is not None:
            sizes = [getattr(c, CLUSTER_SIZE).get() for c in centres]
            lines.append(f"{len(sizes)} k-means states of {', '.join(map(str, sizes))} "
                         "particles (ClusterCentres); PC trajectories in Trajectories.")
        if self._isContinued():
            lines.append(f"Continued from run {self.continueRun.get().getRunName()}.")
        return lines

    def _methods(self):
        if not self.isFinished() or not hasattr(self, "Particles"):
            return []
        man = self._readRunManifest() or {}
        cfg = self._readRunConfig()
        rendered = {
            "residue": "each rendered as a Gaussian at its residue's electron-weighted centre",
            "atoms": "each carrying its residue's atoms, rendered as one Gaussian per atom",
            "groups": ("each carrying its residue's atom groups (backbone and side chain; "
                       "phosphate, sugar and base), rendered as one Gaussian per group"),
        }.get(cfg.get("bead_centre"), "each rendered as a Gaussian at its Cα/C1′ atom")
        if cfg.get("bead_sigma_A"):
            rendered += f" (σ {cfg['bead_sigma_A']:g} Å)"
        final, start = cfg.get("low_pass_A") or 0, cfg.get("low_pass_start_A")
        lowPassText = (f"a low-pass widening from {start:g} Å to {final:g} Å (coarse to fine)"
                       if start and start > final else f"a low-pass at {final:g} Å")
        return [
            f"Conformational heterogeneity was analysed with CryoSTAR [Li2024cryostar] in "
            f"Scipion (scipion-em-cryostar). The reference model was coarse-grained to "
            f"{man.get('beads', '?')} beads, one per residue, {rendered}. The {self.Particles.getSize()} particles were Fourier-cropped to "
            f"{man.get('box_px', '?')} px ({man.get('apix_A', 0):.2f} Å/px) and compared with "
            f"the projections after {lowPassText}. A variational "
            f"auto-encoder with a {man.get('zdim', cfg.get('zdim', '?'))}-dimensional latent "
            f"space was trained for {self.trainedEpochs(man) or 0:g} epochs, with bond, "
            f"elastic-network (tolerance {cfg.get('en_tolerance_A', 0):g} Å) and clash "
            f"restraints on the beads. The latent space was summarised by PCA and "
            f"{self.numClusters.get()} k-means states, whose centres were decoded into atomic "
            f"models."]

    def _citations(self):
        return ["Li2024cryostar", "Li2023cryostarPreprint"]
