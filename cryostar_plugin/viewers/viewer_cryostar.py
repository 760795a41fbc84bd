"""``analyze results``: the viewer of the CryoSTAR training, analysis and density protocols.

Every button calls a ``_show*`` method that writes its file (PNG under the protocol's
``extra/viewer``, or a ChimeraX ``.cxc``) and returns views; the GUI shows them, tests and
scripts call the methods directly (headless).
"""
import os

import pyworkflow.protocol.params as params
from pwem.viewers import ChimeraView, EmProtocolViewer
from pyworkflow.viewer import DESKTOP_TKINTER, WEB_DJANGO

from ..protocols import ProtCryoStarAnalyze, ProtCryoStarTrainAtom
from . import plots

try:  # the density stage may not be part of this plugin version
    from ..protocols import ProtCryoStarTrainDensity
except ImportError:  # pragma: no cover
    ProtCryoStarTrainDensity = None

__all__ = ["CryoStarViewer", "writeAllFigures"]


class CryoStarViewer(EmProtocolViewer):
    """Latent space (PCA / UMAP scatter and density coloured by k-means state), training
    curves, cluster centres and PC trajectories as movies over the consensus map in ChimeraX,
    and the density generator's volumes (slices and ChimeraX volume series)."""
    _label = "analyze results"
    _targets = [ProtCryoStarTrainAtom, ProtCryoStarAnalyze] + (
        [ProtCryoStarTrainDensity] if ProtCryoStarTrainDensity else [])
    _environments = [DESKTOP_TKINTER, WEB_DJANGO]

    # --------------------------- form ------------------------------------------------------
    def _isDensity(self):
        return ProtCryoStarTrainDensity is not None and isinstance(self.protocol,
                                                                   ProtCryoStarTrainDensity)

    def _defineParams(self, form):
        form.addSection(label="Latent space")
        line = form.addLine("Axes (PCs)", help="1-based principal components of z to plot.")
        line.addParam("pcX", params.IntParam, default=1, label="x")
        line.addParam("pcY", params.IntParam, default=2, label="y")
        form.addParam("doShowPcaScatter", params.LabelParam,
                      label="PCA scatter coloured by k-means state")
        form.addParam("doShowPcaDensity", params.LabelParam, label="PCA density (hexbin)")
        form.addParam("doShowUmap", params.LabelParam, label="UMAP coloured by k-means state",
                      help="Needs umap-learn (pip install umap-learn) unless the analysis "
                           "computed it.")
        form.addParam("doShowTrainingCurves", params.LabelParam, label="Training curves")
        if self._isDensity():
            form.addSection(label="Volumes")
            form.addParam("doShowVolumeSlices", params.LabelParam,
                          label="Volumes (slices and gallery)")
            form.addParam("doShowVolumeSeries", params.LabelParam,
                          label="Volume series in ChimeraX")
        else:
            form.addSection(label="Structures")
            form.addParam("pcTrajectory", params.IntParam, default=1,
                          label="PC of the trajectory")
            form.addParam("doShowTrajectory", params.LabelParam,
                          label="Trajectory along that PC in ChimeraX")
            form.addParam("doShowAllTrajectories", params.LabelParam,
                          label="All PC trajectories in ChimeraX")
            form.addParam("doShowCentres", params.LabelParam,
                          label="k-means centres in ChimeraX")

    def _getVisualizeDict(self):
        d = {"doShowPcaScatter": self._showPcaScatter, "doShowPcaDensity": self._showPcaDensity,
             "doShowUmap": self._showUmap, "doShowTrainingCurves": self._showTrainingCurves}
        if self._isDensity():
            d.update(doShowVolumeSlices=self._showVolumeSlices,
                     doShowVolumeSeries=self._showVolumeSeries)
        else:
            d.update(doShowTrajectory=self._showTrajectory,
                     doShowAllTrajectories=self._showAllTrajectories,
                     doShowCentres=self._showCentres)
        return d

    # --------------------------- data ------------------------------------------------------
    def _getTraining(self):
        prot = self.protocol
        if isinstance(prot, ProtCryoStarTrainAtom):
            return prot
        return prot.getTraining()

    def _getAnalysisDir(self):
        """The analysis whose k-means states colour the plots (None: no colours)."""
        if self._isDensity():
            train = self._getTraining()
            return train.getAnalysisDir() if train is not None else None
        return self.protocol.getAnalysisDir()

    def _path(self, name):
        """Absolute path of a viewer file (``extra/viewer/name``), remembered in
        :meth:`getWrittenFiles`."""
        folder = os.path.abspath(self.protocol._getExtraPath("viewer"))
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, name)
        self.getWrittenFiles().append(path)
        return path

    def getWrittenFiles(self):
        """Files written by this viewer so far (figures and scripts)."""
        if "_writtenFiles" not in self.__dict__:
            object.__setattr__(self, "_writtenFiles", [])
        return self._writtenFiles

    def _table(self):
        train = self._getTraining()
        if train is None:   # density run on particles from elsewhere: its own star, no states
            prot = self.protocol
            return plots.latentTable(prot.inputParticles.get(),
                                     prot._enginePath("particlesStar"))
        return plots.latentTable(train.Particles, train._enginePath("particlesStar"),
                                 self._getAnalysisDir())

    def _pcAxes(self, nPcs):
        x, y = self.pcX.get(), self.pcY.get()
        if not (1 <= x <= nPcs and 1 <= y <= nPcs):
            raise ValueError(f"PCs must be between 1 and {nPcs}")
        return x - 1, y - 1

    # --------------------------- latent-space figures -----------------------------------------
    def _pcaPlot(self, density):
        table = self._table()
        scores, ratio = plots.pcaScores(table.z)
        try:
            i, j = self._pcAxes(scores.shape[1])
        except ValueError as err:
            return [self.errorMessage(str(err), "Wrong PC")]
        xl = f"PC{i + 1} ({100 * ratio[i]:.1f}%)"
        yl = f"PC{j + 1} ({100 * ratio[j]:.1f}%)"
        xy = scores[:, [i, j]]
        kind = "density" if density else "scatter"
        path = self._path(f"pca_{kind}_{i + 1}_{j + 1}.png")
        title = f"CryoSTAR latent space, {len(table.z)} particles"
        if density:
            return [plots.plotLatentDensity(path, xy, xl, yl, title)]
        return [plots.plotLatentScatter(path, xy, table.labels, xl, yl, title)]

    def _showPcaScatter(self, paramName=None):
        return self._pcaPlot(density=False)

    def _showPcaDensity(self, paramName=None):
        return self._pcaPlot(density=True)

    def _showUmap(self, paramName=None):
        table = self._table()
        emb = plots.umapEmbedding(table, self._getAnalysisDir())
        if emb is None:
            return [self.errorMessage("UMAP needs umap-learn: pip install umap-learn (in "
                                      "Scipion's Python), then open this viewer again.",
                                      "UMAP not available")]
        return [plots.plotLatentScatter(self._path("umap.png"), emb, table.labels, "UMAP 1",
                                        "UMAP 2", "CryoSTAR latent space (UMAP)")]

    def _showTrainingCurves(self, paramName=None):
        runDir = self.protocol.getRunDir() if self._isDensity() else self._getTraining().getRunDir()
        csvPath = os.path.join(runDir, "losses.csv")
        if not os.path.exists(csvPath):
            return [self.errorMessage(f"{csvPath} not found", "No training log")]
        plotter = plots.plotTrainingCurves(self._path("training_curves.png"), csvPath)
        return [plotter] if plotter else [self.errorMessage("The training log is empty.")]

    # --------------------------- structures --------------------------------------------------
    def _script(self, name):
        path = os.path.abspath(self.protocol._getExtraPath("models", name))
        if not os.path.exists(path):
            return [self.errorMessage(f"{path} not found (has the run finished?)",
                                      "No ChimeraX script")]
        return [ChimeraView(path)]

    def _showTrajectory(self, paramName=None):
        return self._script(f"pca_{self.pcTrajectory.get()}.cxc")

    def _showAllTrajectories(self, paramName=None):
        return self._script("trajectories.cxc")

    def _showCentres(self, paramName=None):
        return self._script("kmeans.cxc")

    # --------------------------- volumes (density generator) -----------------------------------
    def _showVolumeSlices(self, paramName=None):
        from pwem.viewers import ObjectView
        vols = getattr(self.protocol, "Volumes", None)
        if vols is None:
            return [self.errorMessage("No Volumes output yet.")]
        return [ObjectView(self._project, self.protocol.strId(), vols.getFileName())]

    def _showVolumeSeries(self, paramName=None):
        path = self.protocol.getChimeraScript()
        if not os.path.exists(path):
            return [self.errorMessage(f"{path} not found", "No ChimeraX script")]
        return [ChimeraView(path)]


def writeAllFigures(project, prots):
    """Write the viewer's figures for ``prots`` (headless); return the paths written."""
    written = []
    for prot in prots:
        viewer = CryoStarViewer(project=project, protocol=prot)
        viewer.setProtocol(prot)
        for name in ("_showPcaScatter", "_showPcaDensity", "_showUmap", "_showTrainingCurves"):
            getattr(viewer, name)()
        written += [p for p in viewer.getWrittenFiles() if os.path.exists(p)]
    return written
