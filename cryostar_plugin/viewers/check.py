"""The 'check inputs' part of the CryoSTAR viewer: the engine's report and the central sections
of the maps it compared (names from the check folder's ``manifest.json``)."""
import json
import os

import pyworkflow.protocol.params as params

from ..protocols import ProtCryoStarCheckInputs, ProtCryoStarTrainAtom
from . import gallery

__all__ = ["CheckInputsViews"]

#: Column titles of the check's maps (by file stem).
MAP_LABELS = {"backprojection": "back-projection", "model_density": "model density"}


class CheckInputsViews:
    """Mixin of :class:`~cryostar_plugin.viewers.CryoStarViewer` for a 'check inputs' run, or the
    checks a training ran first."""

    def _isCheck(self):
        return isinstance(self.protocol, ProtCryoStarCheckInputs)

    def _defineCheckParams(self, form):
        form.addSection(label="Check inputs")
        form.addParam("doShowCheckReport", params.LabelParam, label="Report of the checks")
        form.addParam("doShowCheckMaps", params.LabelParam,
                      label="Consensus map, model density and back-projection (sections)")

    def _checkDir(self):
        """The folder of the engine's check-inputs (a 'check inputs' run, or the one a training
        ran first); None when there is none."""
        prot = self.protocol
        if not isinstance(prot, (ProtCryoStarCheckInputs, ProtCryoStarTrainAtom)):
            return None
        folder = os.path.abspath(prot._enginePath("checkDir"))
        return folder if os.path.exists(os.path.join(folder, "manifest.json")) else None

    def _checkManifest(self):
        folder = self._checkDir()
        if folder is None:
            return None, None
        with open(os.path.join(folder, "manifest.json")) as f:
            return folder, json.load(f)

    def _showCheckReport(self, paramName=None):
        folder, man = self._checkManifest()
        if folder is None:
            return [self.errorMessage("The checks have not run yet.", "No report")]
        return [self.textView([os.path.join(folder, man.get("text", "report.txt"))],
                              "CryoSTAR check inputs")]

    def _showCheckMaps(self, paramName=None):
        folder, man = self._checkManifest()
        if folder is None:
            return [self.errorMessage("The checks have not run yet.", "No maps")]
        consensus = (man.get("frame") or {}).get("map")
        files = ([consensus] if consensus and os.path.exists(consensus) else []) + \
            [os.path.join(folder, f) for f in man.get("maps", [])]
        labels = [("consensus map" if f == consensus else
                   MAP_LABELS.get(os.path.splitext(os.path.basename(f))[0],
                                  os.path.basename(f))) for f in files]
        if not files:
            return [self.errorMessage(f"The checks in {folder} wrote no map.", "No maps")]
        return [gallery.plotVolumeGallery(self._path("check_maps.png"), files,
                                          "CryoSTAR check inputs: central sections",
                                          labels=labels)]
