"""What every CryoSTAR protocol shares: form pieces, input conversion, running the engine.

Subclasses build their form from the ``_define*Params`` helpers, call :meth:`convertInputStep`
(particles → star, map → MRC with Scipion's origin, under ``extra/input``; the model file is
given as it is) and run engine sub-commands with :meth:`runEngine`, which echoes the engine's
stderr to the protocol log and turns its one-line ``cryostar-engine: error: …`` into the step's
error message.
"""
import os
import shlex

import pyworkflow.protocol.params as params
from pwem.protocols import EMProtocol
from pyworkflow import BETA
from pyworkflow.protocol.constants import GPU_LIST, USE_GPU

from .. import Plugin, countGpus
from ..constants import ENGINE_ERROR_PREFIX, PLUGIN_NAME
from ..convert import getModelVolume, inspectModel, writeMapAsShown, writeParticlesStar
from ..engine import EngineCallError

HELP = {
    "gpu": "GPU ids for the engine, e.g. '0' or '0 1' (CUDA_VISIBLE_DEVICES is set to them). "
           "With several GPUs the training runs under torchrun, one process per GPU "
           "(DistributedDataParallel); the batch is the global batch and must be a multiple of "
           "the number of GPUs. "
           "With 'Use GPU' = no the engine runs on the CPU (slow; for tests and tiny data).",
    "particles": "Particles with 3-D poses (angles and shifts) and CTF, e.g. from a RELION "
                 "3D auto-refine imported into Scipion. Their pixel size and box define the "
                 "frame the model is placed in.",
    "model": "Atomic model (PDB/mmCIF) docked into the consensus map of these particles. It is "
             "coarse-grained to one bead per residue (Cα, or C1' for nucleotides).",
    "map": "Consensus map the model was docked into (optional). Its Scipion origin tells where "
           "the model sits relative to the box centre; without it (and without a map linked to "
           "the model at import) the model must already be centred on the box centre, as when "
           "docked against the map displayed by Scipion.",
    "extra": "Extra engine flags, passed verbatim at the end of the command line "
             "(see 'cryostar-engine <command> --help').",
}


def engineErrorFrom(text):
    """The engine's last one-line user error in ``text`` (without the prefix), or None."""
    lines = [ln.strip() for ln in text.replace("\r", "\n").splitlines()]
    errors = [ln[len(ENGINE_ERROR_PREFIX):].strip() for ln in lines
              if ln.startswith(ENGINE_ERROR_PREFIX)]
    return errors[-1] if errors else None


class ProtCryoStarBase(EMProtocol):
    """Base class of the CryoSTAR protocols (not shown in the GUI)."""
    _label = None
    _devStatus = BETA

    @classmethod
    def getClassPackageName(cls):
        """The plugin's display name (the form's threads row reads "cryostar compute"), not the
        Python package ``cryostar_plugin``."""
        return PLUGIN_NAME

    # --------------------------- DEFINE param functions -------------------------------------
    def _defineGpuParams(self, form):
        """GPU is optional: a 'Use GPU' toggle and the GPU ids (shown in the run header)."""
        form.addHidden(USE_GPU, params.BooleanParam, default=True, label="Use GPU?",
                       help=HELP["gpu"])
        form.addHidden(GPU_LIST, params.StringParam, default="0", label="Choose GPU IDs",
                       help=HELP["gpu"])

    def _defineInputParams(self, form, condition=None):
        """Particles with poses, the docked reference model and the optional consensus map
        (shown only when ``condition``, a form expression, holds)."""
        cond = {"condition": condition} if condition else {}
        form.addParam("inputParticles", params.PointerParam, pointerClass="SetOfParticles",
                      pointerCondition="hasAlignmentProj", important=True,
                      label="Input particles", help=HELP["particles"], **cond)
        form.addParam("inputAtomStruct", params.PointerParam, pointerClass="AtomStruct",
                      important=True, label="Reference model", help=HELP["model"], **cond)
        form.addParam("inputVolume", params.PointerParam, pointerClass="Volume", allowsNull=True,
                      label="Consensus map (optional)", help=HELP["map"], **cond)

    def _defineExtraParams(self, form):
        form.addParam("extraParams", params.StringParam, default="",
                      expertLevel=params.LEVEL_ADVANCED, label="Extra engine flags",
                      help=HELP["extra"])

    # --------------------------- inputs (a continued run takes them from its source) ---------
    def _getParticlesPointer(self):
        """Pointer to the input particles (subclasses may take it from another run)."""
        return self.inputParticles

    def _getAtomStructPointer(self):
        return self.inputAtomStruct

    def _getVolumePointer(self):
        return self.inputVolume

    def getInputParticles(self):
        """The SetOfParticles trained on (full-size, as given by the user)."""
        return self._getParticlesPointer().get()

    # --------------------------- file names --------------------------------------------------
    def _createFilenameTemplates(self):
        self._updateFilenamesDict({
            "inputDir": self._getExtraPath("input"),
            "particlesStar": self._getExtraPath("input", "particles.star"),
            "map": self._getExtraPath("input", "consensus.mrc"),
        })

    def _enginePath(self, key, **kwargs):
        """Absolute path of a template (the engine may run elsewhere than the project dir)."""
        try:
            path = self._getFileName(key, **kwargs)
        except KeyError:  # templates not built yet in this process (e.g. a reloaded run)
            self._createFilenameTemplates()
            path = self._getFileName(key, **kwargs)
        return os.path.abspath(path)

    def _getConsensusVolume(self):
        """The consensus map: the one given, else the one linked to the model at import."""
        return getModelVolume(self._getAtomStructPointer().get(), self._getVolumePointer().get())

    def getModelFile(self):
        """Absolute path of the reference model file as the user gave it (never rewritten)."""
        return os.path.abspath(self._getAtomStructPointer().get().getFileName())

    # --------------------------- STEPS functions ----------------------------------------------
    def convertInputStep(self):
        """Write the particles star and, when there is a consensus map, an MRC of it whose
        header carries Scipion's sampling and origin (``extra/input``).  The model is given to
        the engine as it is: the engine reads the frame from the map (see README, Scipion)."""
        self._createFilenameTemplates()
        parts = self.getInputParticles()
        writeParticlesStar(parts, self._enginePath("particlesStar"), self._enginePath("inputDir"))
        vol = self._getConsensusVolume()
        if vol is not None:
            writeMapAsShown(vol, self._enginePath("map"))

    def _inputArgs(self):
        """Engine flags naming the inputs: the converted particles and map, the model file."""
        args = ["--particles", self._enginePath("particlesStar"), "--model", self.getModelFile()]
        if os.path.exists(self._enginePath("map")):
            args += ["--map", self._enginePath("map")]
        return args

    def _changedArgs(self, prot, pairs):
        """``[flag, value, …]`` for the fields of ``prot`` (``(param name, flag)`` pairs) whose
        value differs from the field's default."""
        args = []
        for name, flag in pairs:
            attr = getattr(prot, name)
            default = attr.__class__()           # the form stores defaults as text
            default.set(prot.getParam(name).default.get())
            if attr.get() is not None and attr.get() != default.get():
                args += [flag, attr.get()]
        return args

    def _analysisArgs(self, seedProt):
        """``analyze`` flags: the form's analysis fields (k-means states, PC trajectories, points
        per trajectory) and ``seedProt``'s random seed, each only when it differs from its
        default (the forms' defaults are ``analyze``'s: 10, 3, 10 and 0)."""
        return (["--device", "cpu"]
                + self._changedArgs(self, [("numClusters", "--k"), ("numPcs", "--pcs"),
                                           ("numPoints", "--points")])
                + self._changedArgs(seedProt, [("seed", "--seed")]))

    def _getEngineGpus(self):
        """GPU ids for CUDA_VISIBLE_DEVICES, or None for a CPU run."""
        return self.getGpuList() if self.usesGpu() else None

    def _validateGpuBatch(self, batch):
        """Errors when several GPUs cannot share the global ``batch`` equally."""
        n = countGpus(self.getGpuList()) if self.usesGpu() else 0
        if n > 1 and batch % n:
            return [f"The batch size ({batch}) must be a multiple of the number of GPUs ({n}): "
                    "each GPU trains on an equal share of every batch."]
        return []

    def _runArgs(self):
        """Scipion's run settings for the engine: ``--device cpu`` when 'Use GPU' is off
        (otherwise the engine's default, auto: the GPUs of CUDA_VISIBLE_DEVICES when there are
        some), and ``--threads`` from the form's threads row (the cores Scipion booked)."""
        args = [] if self.usesGpu() else ["--device", "cpu"]
        return args + ["--threads", self.numberOfThreads.get()]

    def runEngine(self, subcommand, args, gpus=None, useExtraParams=True):
        """Run ``cryostar-engine <subcommand> <args> <extraParams>`` as a job of this protocol.

        The engine's stderr is shown as usual and also kept in ``logs/engine.stderr``; when the
        engine fails with its one-line user error, that line becomes the step's error message.

        Parameters
        ----------
        subcommand : engine sub-command, e.g. ``"check-inputs"``.
        args : list of str/number arguments (quoted here).
        gpus : GPU ids for ``CUDA_VISIBLE_DEVICES``; None leaves it unset.
        useExtraParams : append the form's "Extra engine flags" (False for the auxiliary
            commands of a protocol whose extra flags belong to its main command).
        """
        extra = self.extraParams.get() if useExtraParams and hasattr(self, "extraParams") else ""
        argStr = " ".join(shlex.quote(str(a)) for a in args)
        if extra:
            argStr += " " + extra.strip()
        errLog = os.path.abspath(self._getLogsPath("engine.stderr"))
        start = os.path.getsize(errLog) if os.path.exists(errLog) else 0
        # stderr → tee (file + stderr), stdout untouched; pipefail keeps the engine's status
        command = (f"set -o pipefail; {{ {Plugin.getProgram(subcommand, gpus)} {argStr} "
                   f"2>&1 >&3 3>&- | tee -a {shlex.quote(errLog)} >&2 3>&-; }} 3>&1")
        try:
            self.runJob(command, "", env=Plugin.getEnviron(), numberOfMpi=1, numberOfThreads=1,
                        executable="/bin/bash")
        except Exception as err:
            message = None
            if os.path.exists(errLog):
                with open(errLog, errors="replace") as f:
                    f.seek(start)
                    message = engineErrorFrom(f.read())
            if message:
                raise RuntimeError(f"CryoSTAR engine: {message}") from err
            raise

    # --------------------------- INFO functions -----------------------------------------------
    def _validateInputs(self):
        """Errors about the inputs shared by the training protocols."""
        errors = []
        if not (self._getParticlesPointer().hasValue() and self._getAtomStructPointer().hasValue()):
            return errors  # Scipion reports the missing required pointers itself
        parts = self.getInputParticles()
        if not parts.hasAlignmentProj():
            errors.append("The input particles have no 3-D alignment (angles and shifts); use "
                          "particles from a 3-D refinement.")
        if not parts.hasCTF():
            errors.append("The input particles have no CTF information.")
        if parts.getXDim() and parts.getXDim() % 2:
            errors.append(f"The particle box ({parts.getXDim()} px) must be even.")
        mapErrors = self._validateMap(parts)
        errors += mapErrors
        if not mapErrors:
            errors += self._validateModelFrame(parts)
        return errors

    def _validateMap(self, parts):
        """Errors when the consensus map's pixel size or box differ from the particles'."""
        vol = self._getConsensusVolume()
        if vol is None:
            return []
        apix, box = float(parts.getSamplingRate()), parts.getXDim()
        mapApix, dims = float(vol.getSamplingRate()), vol.getDim()
        errors = []
        if abs(mapApix - apix) > 0.01 * apix:
            errors.append(f"The consensus map's pixel size ({mapApix:g} Å) differs from the "
                          f"particles' ({apix:g} Å): give the map refined from these particles, "
                          "or fix the sampling rate of one of them.")
        if dims is None or len(set(dims)) != 1:
            errors.append(f"The consensus map must be a cube (it is {dims}).")
        elif dims[0] != box:
            errors.append(f"The consensus map's box ({dims[0]} px) differs from the particles' "
                          f"({box} px): give the map refined from these particles (same box).")
        return errors

    def _validateModelFrame(self, parts):
        """The engine's verdict on where the model sits in the particle box (``inspect-model``:
        its ``frame.error`` line, e.g. a model docked on a map whose origin was its corner)."""
        try:
            report = inspectModel(self._getAtomStructPointer().get(), parts,
                                  self._getVolumePointer().get())
        except EngineCallError as err:
            return [f"Cannot inspect the reference model: {err}"]
        error = report["frame"]["error"]
        return [error] if error else []
