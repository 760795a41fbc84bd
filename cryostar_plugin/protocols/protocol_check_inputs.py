"""``check inputs``: validate particles, poses, CTF, model and map before any training.

Runs ``cryostar-engine check-inputs`` on the converted inputs (CPU, minutes at most) and
registers its quick CTF-corrected back-projection from the given poses as a Volume, so the user
can overlay it on the model before spending GPU time.  Then ``cryostar-engine doctor`` on the
same inputs reports the machine the engine runs on (torch and its CUDA build, GPUs, free
memory, bf16) and estimates a training's time and memory per epoch; its text is kept in
``extra/doctor.txt`` and ends the summary.
"""
import json
import os

import pyworkflow.protocol.params as params
from pwem.objects import Transform, Volume
from pyworkflow.object import String

from .protocol_base import ProtCryoStarBase


def headerOrigin(path):
    """The origin (Å, xyz) in an MRC file's header, as a Scipion Transform."""
    import mrcfile

    with mrcfile.open(path, header_only=True, permissive=True) as m:
        origin = m.header.origin
        t = Transform()
        t.setShifts(float(origin.x), float(origin.y), float(origin.z))
    return t


class ProtCryoStarCheckInputs(ProtCryoStarBase):
    """Check that the particles, their poses and CTF, the reference model and the consensus map
    fit together (same frame, pixel size, box, contrast) before training. Reports the particle
    count, defocus range, where the model sits in the box, the model-map fit with a suggested
    low-pass, and the correlation of a quick back-projection (from the given poses) with the map
    or model. Warnings such as 'particles look dark' or 'model outside the box' appear in the
    summary."""
    _label = "check inputs"
    _possibleOutputs = {"BackProjection": Volume}

    # --------------------------- DEFINE param functions -------------------------------------
    def _defineParams(self, form):
        form.addSection(label="Input")
        self._defineInputParams(form)
        form.addParam("maxParticles", params.IntParam, default=5000,
                      validators=[params.Positive], expertLevel=params.LEVEL_ADVANCED,
                      label="Particles for the back-projection",
                      help="A random subset of this size is back-projected (the engine's "
                           "default: 5000).")
        self._defineExtraParams(form)

    # --------------------------- INSERT steps functions ---------------------------------------
    def _insertAllSteps(self):
        self._createFilenameTemplates()
        self._insertFunctionStep(self.convertInputStep, needsGPU=False)
        self._insertFunctionStep(self.checkStep, needsGPU=False)
        self._insertFunctionStep(self.doctorStep, needsGPU=False)
        self._insertFunctionStep(self.createOutputStep, needsGPU=False)

    def _createFilenameTemplates(self):
        super()._createFilenameTemplates()
        self._updateFilenamesDict({
            "checkDir": self._getExtraPath("check"),
            "report": self._getExtraPath("check", "report.json"),
            "reportText": self._getExtraPath("check", "report.txt"),
            "doctorText": self._getExtraPath("doctor.txt"),
        })

    # --------------------------- STEPS functions ----------------------------------------------
    def checkStep(self):
        self._createFilenameTemplates()
        args = (self._inputArgs() + ["--out", self._enginePath("checkDir")]
                + self._changedArgs(self, [("maxParticles", "--max-particles")]))
        self.runEngine("check-inputs", args)

    def doctorStep(self):
        """The engine's machine report and planned-run estimate (``cryostar-engine doctor``), run
        as the jobs run the engine; its text goes to the log and ``extra/doctor.txt``."""
        from ..engine import engineOutput

        self._createFilenameTemplates()
        text = engineOutput("doctor", self._inputArgs())
        with open(self._getFileName("doctorText"), "w") as f:
            f.write(text)
        self.info(text)

    def createOutputStep(self):
        self._createFilenameTemplates()
        report = self._readReport()
        path = report["outputs"]["backprojection"]
        vol = Volume()
        vol.setFileName(path)
        vol.setSamplingRate(report["check_apix_A"])
        vol.setOrigin(headerOrigin(path))     # where the engine placed it
        vol._cryostarCorrelation = String("%.3f" % report["backprojection"]["correlation_lowpass"])
        self._defineOutputs(BackProjection=vol)
        self._defineSourceRelation(self.inputParticles, vol)

    # --------------------------- INFO functions -----------------------------------------------
    def _validate(self):
        return self._validateInputs()

    def _summary(self):
        """The engine's report lines; flags named there read as the training form's labels."""
        if not self.isFinished():
            return ["Not finished yet."]
        self._createFilenameTemplates()
        path = self._getFileName("reportText")
        if not os.path.exists(path):
            return ["The engine report is missing."]
        from ..formsettings import ATOM, toLabels
        from .protocol_train_atom import SPECS
        with open(path) as f:
            lines = [toLabels(line.rstrip(), SPECS, ATOM) for line in f if line.strip()]
        doctor = self._getFileName("doctorText")
        if os.path.exists(doctor):
            with open(doctor) as f:
                lines += ["This machine (cryostar-engine doctor):"] + [
                    line.rstrip() for line in f if line.strip()]
        return lines

    def _methods(self):
        if not self.isFinished():
            return []
        report = self.getReport()
        lines = [f"Before training, the inputs were checked with CryoSTAR's check-inputs "
                 f"[Li2024cryostar]: {report['particles']['count']} particles of "
                 f"{report['particles']['box_px']} px at {report['particles']['apix_A']:g} Å/px "
                 f"and a reference model of {report['model']['beads']} residues."]
        fit = report.get("map") or {}
        if fit.get("model_map_fsc05_A") is not None:
            lines.append(f"The Fourier shell correlation between the model's bead density and "
                         f"the consensus map fell to 0.5 at {fit['model_map_fsc05_A']:.1f} Å.")
        bp = report.get("backprojection") or {}
        if bp.get("correlation_lowpass") is not None:
            lines.append(f"A back-projection of {bp['particles_used']} particles from their "
                         f"given poses correlated at {bp['correlation_lowpass']:.2f} with the "
                         f"{bp.get('compared_with', 'reference')} (low-passed).")
        return [" ".join(lines)]

    def _readReport(self):
        with open(self._getFileName("report")) as f:
            return json.load(f)

    def getReport(self):
        """The engine's ``report.json`` as a dict (after the run)."""
        self._createFilenameTemplates()
        return self._readReport()
