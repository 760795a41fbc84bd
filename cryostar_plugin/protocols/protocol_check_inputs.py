"""``check inputs``: validate particles, poses, CTF, model and map before any training.

Runs ``cryostar-engine check-inputs`` on the converted inputs (CPU, minutes at most) and
registers its quick CTF-corrected back-projection from the given poses as a Volume, so the user
can overlay it on the model before spending GPU time.
"""
import json
import os

import pyworkflow.protocol.params as params
from pwem.objects import Volume
from pyworkflow.object import String

from .protocol_base import ProtCryoStarBase


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
                      help="A random subset of this size is back-projected.")
        self._defineExtraParams(form)

    # --------------------------- INSERT steps functions ---------------------------------------
    def _insertAllSteps(self):
        self._createFilenameTemplates()
        self._insertFunctionStep(self.convertInputStep, needsGPU=False)
        self._insertFunctionStep(self.checkStep, needsGPU=False)
        self._insertFunctionStep(self.createOutputStep, needsGPU=False)

    def _createFilenameTemplates(self):
        super()._createFilenameTemplates()
        self._updateFilenamesDict({
            "checkDir": self._getExtraPath("check"),
            "report": self._getExtraPath("check", "report.json"),
            "reportText": self._getExtraPath("check", "report.txt"),
        })

    # --------------------------- STEPS functions ----------------------------------------------
    def checkStep(self):
        self._createFilenameTemplates()
        args = self._inputArgs() + ["--out", self._enginePath("checkDir"),
                                    "--max-particles", self.maxParticles.get()]
        self.runEngine("check-inputs", args)

    def createOutputStep(self):
        self._createFilenameTemplates()
        report = self._readReport()
        vol = Volume()
        vol.setFileName(self._getExtraPath("check", "backprojection.mrc"))
        vol.setSamplingRate(report["check_apix_A"])
        vol.setOrigin()  # box-centred, like the engine's maps
        vol._cryostarCorrelation = String("%.3f" % report["backprojection"]["correlation_lowpass"])
        self._defineOutputs(BackProjection=vol)
        self._defineSourceRelation(self.inputParticles, vol)

    # --------------------------- INFO functions -----------------------------------------------
    def _validate(self):
        return self._validateInputs()

    def _summary(self):
        if not self.isFinished():
            return ["Not finished yet."]
        self._createFilenameTemplates()
        path = self._getFileName("reportText")
        if not os.path.exists(path):
            return ["The engine report is missing."]
        with open(path) as f:
            return [line.rstrip() for line in f if line.strip()]

    def _readReport(self):
        with open(self._getFileName("report")) as f:
            return json.load(f)

    def getReport(self):
        """The engine's ``report.json`` as a dict (after the run)."""
        self._createFilenameTemplates()
        return self._readReport()
