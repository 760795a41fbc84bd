"""``train atom generator``: CryoSTAR stage 1 (``cryostar-engine train-atom``), then its analysis.

Steps: convert the inputs → ``check-inputs`` → ``train-atom`` → ``analyze`` → register outputs.
Learns a latent vector z per particle and a decoder that deforms the coarse-grained reference
model.  Outputs:

* ``Particles``: FlexHub ``SetOfParticlesFlex`` (progName ``CryoSTAR``) with z per particle, so
  flexutils' dimensionality reduction, annotation and FlexConsensus work on it directly; its
  FlexInfo holds the run folder, the last checkpoint and the engine config;
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

from ..constants import CHECKPOINT, CLUSTER_SIZE, CONFIG, CRYOSTAR, MODEL_SHIFT, RUN_DIR
from ..outputs import readJson, zRowsByObjId
from .analysis_outputs import CENTRES, TRAJECTORIES, AnalysisOutputsMixin
from .protocol_base import ProtCryoStarBase

__all__ = ["ProtCryoStarTrainAtom", "zRowsByObjId", "TRAIN_FLAGS"]

#: Form parameter → engine flag (``cryostar-engine train-atom --help`` lists them all).
TRAIN_FLAGS = {
    "batchSize": "--batch", "learningRate": "--lr", "seed": "--seed",
    "continuityWeight": "--continuity-weight", "enWeight": "--en-weight",
    "enCutoff": "--en-cutoff", "enKeepRatio": "--en-keep-ratio", "enTolerance": "--en-tolerance",
    "clashWeight": "--clash-weight", "clashMin": "--clash-min",
    "klBetaMax": "--kl-beta-max", "klFreeBits": "--kl-free-bits",
    "beadSigma": "--bead-sigma", "maskRadius": "--mask-radius",
    "checkpointEvery": "--checkpoint-every",
}
PRECISIONS = ["auto", "fp32", "bf16", "fp16"]
LR_SCHEDULES = ["cosine", "constant"]
BEAD_CENTRES = ["residue", "backbone"]
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

    def _defineEssentialParams(self, form):
        group = form.addGroup("Training")
        group.addParam("doDownsample", params.BooleanParam, default=True, condition=NEW_RUN,
                       label="Downsample particles?",
                       help="Fourier-crop the particles on the fly (the engine does it; the "
                            "input set is not changed). Saves time and memory; the atom model "
                            "rarely needs more than ~4 Å/px.")
        group.addParam("boxSize", params.IntParam, default=128, validators=[params.Positive],
                       condition=f"doDownsample and {NEW_RUN}", label="Training box (px)",
                       help="Box the particles are cropped to. Even, and not larger than the "
                            "particle box.")
        group.addParam("numEpochs", params.FloatParam, default=None, allowsNull=True,
                       label="Epochs",
                       help="Training length in passes over all particles (fractions allowed). "
                            "Empty: 20, or on sets of fewer than 15,000 particles as many as it "
                            "takes to show the networks 300,000 images (the latent needs a few "
                            "thousand steps). When continuing a run, the new total (not the "
                            "extra epochs); empty keeps the previous run's.")
        group.addParam("zDim", params.IntParam, default=8, validators=[params.Positive],
                       condition=NEW_RUN, label="Latent dimension",
                       help="Size of the latent vector z of each particle.")
        group.addParam("lowPass", params.FloatParam, default=10.0,
                       validators=[params.Positive], condition=NEW_RUN, label="Low-pass (Å)",
                       help="Low-pass of the image comparison, in Å. A good value is the "
                            "resolution where the FSC between the model's bead density and the "
                            "consensus map falls to 0.5: use the wizard, or see the "
                            "'check inputs' report (suggested low-pass).")
        group.addParam("doInvert", params.BooleanParam, default=False, condition=NEW_RUN,
                       label="Invert contrast?",
                       help="Yes for dark particles (protein black). RELION-extracted particles "
                            "are white: keep No. 'check inputs' warns when the back-projection "
                            "anti-correlates with the map.")

    def _defineAdvancedParams(self, form):
        form.addSection(label="Advanced")
        adv = dict(expertLevel=params.LEVEL_ADVANCED, condition=NEW_RUN)
        g = form.addGroup("Structural restraints", **adv)
        g.addParam("continuityWeight", params.FloatParam, default=1.0, label="Bond continuity weight",
                   help="Keeps consecutive beads at their reference distance.", **adv)
        g.addParam("enWeight", params.FloatParam, default=1.0, label="Elastic network weight",
                   help="Local rigidity: keeps distances of nearby bead pairs.", **adv)
        g.addParam("enCutoff", params.FloatParam, default=12.0, label="Elastic network cutoff (Å)",
                   help="Amino-acid pairs (same chain) closer than this are restrained.", **adv)
        g.addParam("enKeepRatio", params.FloatParam, default=0.9,
                   label="Elastic network keep ratio",
                   help="Fraction of pairs kept each step (the most deformed are released, "
                        "letting hinges move); lower for large domain motions (e.g. 0.8).",
                   **adv)
        g.addParam("enTolerance", params.FloatParam, default=0.5, label="Elastic network tolerance (Å)",
                   help="A pair's distance may differ from the reference's by this much at no cost "
                        "(0: strictly harmonic, as the original CryoSTAR).", **adv)
        g.addParam("clashWeight", params.FloatParam, default=1.0, label="Clash weight",
                   help="Penalises beads closer than the clash distance.", **adv)
        g.addParam("clashMin", params.FloatParam, default=4.0, label="Clash distance (Å)",
                   help="Beads closer than this are penalised (pairs 4–10 Å apart in the reference).",
                   **adv)
        g = form.addGroup("Latent prior", **adv)
        g.addParam("klBetaMax", params.FloatParam, default=0.5, label="Final KL weight",
                   help="Weight of the KL term after its linear warm-up.", **adv)
        g.addParam("klFreeBits", params.FloatParam, default=3.0,
                   label="KL free bits (nats per dimension)",
                   help="The KL term has no effect below this many nats per latent dimension, so "
                        "the prior only restrains latents that carry a lot of information.", **adv)
        g = form.addGroup("Optimisation and model", **adv)
        g.addParam("batchSize", params.IntParam, default=64, validators=[params.Positive],
                   label="Batch size", help="Images per optimisation step.", **adv)
        g.addParam("learningRate", params.FloatParam, default=5e-4, label="Learning rate",
                   help="AdamW (peak) learning rate. 5e-4 converges in a few tens of epochs; the "
                        "original CryoSTAR used 1e-4 with several times more steps.", **adv)
        g.addParam("lrSchedule", params.EnumParam, choices=LR_SCHEDULES, default=0,
                   label="Learning-rate schedule",
                   help="cosine: from the learning rate down to 5 % of it at the last step; "
                        "constant: as the original CryoSTAR.", **adv)
        g.addParam("beadSigma", params.FloatParam, default=2.0, label="Bead width σ (Å)",
                   help="Width of the Gaussian that renders each residue's bead.", **adv)
        g.addParam("beadCentre", params.EnumParam, choices=BEAD_CENTRES, default=0,
                   display=params.EnumParam.DISPLAY_HLIST, label="Render beads at",
                   help="residue: each bead's Gaussian sits at the electron-weighted centre of its "
                        "residue's atoms and turns with the local backbone (fits the images "
                        "better; the output models are still Cα/C1' beads). backbone: at the "
                        "Cα/C1' atom itself, as the original CryoSTAR.", **adv)
        g.addParam("maskRadius", params.FloatParam, default=0.9375,
                   label="Mask radius (fraction of half box)",
                   help="Circular real-space mask of the image loss.", **adv)
        g.addParam("precision", params.EnumParam, choices=PRECISIONS, default=0,
                   display=params.EnumParam.DISPLAY_HLIST, label="Precision",
                   help="Precision of the networks on a GPU. auto: bf16 on GPUs that have it "
                        "(Ampere and later), else fp16 with dynamic loss scaling (V100, T4). "
                        "The CPU always runs fp32; FFTs, rendering and losses are fp32 everywhere.",
                   **adv)
        g.addParam("checkpointEvery", params.IntParam, default=200, validators=[params.Positive],
                   label="Checkpoint every (steps)",
                   help="A stopped or killed run resumes from its last checkpoint.", **adv)
        g.addParam("seed", params.IntParam, default=0, label="Random seed",
                   help="Same seed, data and settings on the CPU give the same run.", **adv)
        g.addParam("doCheckInputs", params.BooleanParam, default=True,
                   label="Check inputs first?",
                   help="Run 'cryostar-engine check-inputs' (model/map fit, back-projection "
                        "from the poses) before training; its report is in extra/check.", **adv)

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
        args = self._inputArgs() + ["--out", self._enginePath("checkDir"),
                                    "--max-particles", 2000]
        self.runEngine("check-inputs", args, useExtraParams=False)

    def _getTrainBox(self):
        box = self.getInputParticles().getXDim()
        if self.doDownsample and self.boxSize.get() < box:
            box = self.boxSize.get()
        return box

    def getTrainApix(self):
        """Pixel size (Å) of the training box: the particles' × original box / training box."""
        parts = self.getInputParticles()
        return parts.getSamplingRate() * parts.getXDim() / self._getTrainBox()

    def _getTrainArgs(self, resume=False):
        """The engine's command-line arguments (list of str)."""
        src = self._source()
        args = self._inputArgs() + [
            "--out", self._enginePath("runDir"), "--box", src._getTrainBox(),
            "--zdim", src.zDim.get(),
            "--low-pass", src.lowPass.get(), "--device", self._getDevice(),
            "--threads", self.numberOfThreads.get(),
            "--precision", PRECISIONS[src.precision.get()],
            "--lr-schedule", LR_SCHEDULES[src.lrSchedule.get()],
            "--bead-centre", BEAD_CENTRES[src.beadCentre.get()]]
        if self.numEpochs.get() is not None:
            args += ["--epochs", self.numEpochs.get()]
        for name, flag in TRAIN_FLAGS.items():
            args += [flag, getattr(src, name).get()]
        if src.doInvert:
            args.append("--invert-contrast")
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
        args = ["--run", self._enginePath("runDir"), "--k", self.numClusters.get(),
                "--pcs", self.numPcs.get(), "--points", self.numPoints.get(),
                "--seed", self._source().seed.get(), "--device", "cpu"]
        if os.path.exists(self._enginePath("map")):
            args += ["--map", self._enginePath("map")]
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
        info.setAttr(MODEL_SHIFT, [float(v) for v in self.getEngineShift()])
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
        """The checkpoint written at the run's last step (the engine always writes one there)."""
        path = os.path.join(self._enginePath("runDir"), manifest["checkpoints"],
                            f"step_{int(manifest['step']):07d}.pt")
        return path if os.path.exists(path) else os.path.dirname(path)

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
        errors = self._validateInputs() + self._validateGpuBatch(self.batchSize.get())
        if self._getParticlesPointer().hasValue() and self.doDownsample:
            box, xdim = self.boxSize.get(), self.getInputParticles().getXDim()
            if box % 2:
                errors.append(f"The training box ({box} px) must be even.")
            if xdim and box > xdim:
                errors.append(f"The training box ({box} px) is larger than the particles' "
                              f"({xdim} px): no upsampling.")
        if self._getParticlesPointer().hasValue() and not errors:
            nyquist = 2 * self.getTrainApix()
            if self.lowPass.get() <= nyquist:
                errors.append(f"The low-pass ({self.lowPass.get():g} Å) must be coarser than "
                              f"Nyquist at the training box ({nyquist:.2f} Å): raise it (e.g. "
                              f"{2.5 * self.getTrainApix():.1f} Å) or the box.")
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

    def _summary(self):
        if not self.isFinished():
            return ["Not finished yet."]
        out = getattr(self, "Particles", None)
        if out is None:
            return ["No output registered."]
        src = self._source()
        man = self._readRunManifest() or {}
        lines = [f"{out.getSize()} particles with a {man.get('zdim', src.zDim.get())}-D latent "
                 f"vector z after {self.trainedEpochs(man) or 0:g} epochs "
                 f"({man.get('step', '?')} steps) at {man.get('box_px', '?')} px, "
                 f"{man.get('apix_A', 0):.2f} Å/px, low-pass {src.lowPass.get():g} Å."]
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
        src = self._source()
        man = self._readRunManifest() or {}
        return [f"Conformational heterogeneity was analysed with CryoSTAR [Li2024cryostar] "
                f"(scipion-em-cryostar): {self.Particles.getSize()} particles, Fourier-cropped "
                f"to {man.get('box_px', '?')} px ({man.get('apix_A', 0):.2f} Å/px), and the "
                f"reference model coarse-grained to {man.get('beads', '?')} beads, trained a "
                f"{man.get('zdim', src.zDim.get())}-dimensional latent space for "
                f"{self.trainedEpochs(man) or 0:g} epochs with an image low-pass of "
                f"{src.lowPass.get():g} Å and bond, elastic-network (tolerance "
                f"{src.enTolerance.get():g} Å) and clash restraints, each bead rendered at "
                + ("its residue's electron-weighted centre. " if BEAD_CENTRES[src.beadCentre.get()] == "residue"
                   else "its Cα/C1′ atom. ")
                + f"The latent space was summarised by PCA and {self.numClusters.get()} k-means "
                "states, whose centres were decoded into atomic models."]

    def _citations(self):
        return ["Li2024cryostar", "Li2023cryostarPreprint"]
