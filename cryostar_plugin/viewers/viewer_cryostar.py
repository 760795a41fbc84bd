"""``analyze results``: the viewer of the CryoSTAR training, analysis and density protocols.

Every button calls a ``_show*`` method that writes its file (PNG under the protocol's
``extra/viewer``) or finds the engine's, and returns views; the GUI shows them, tests and
scripts call the methods directly (headless).  Every action either works with what the plugin
installs (matplotlib figures and slice galleries) or returns a message saying what is missing
and where the files are (ChimeraX scripts to open by hand).  The plugin computes no PCA: the
scatter plots the engine's ``pc_scores.npy``.
"""
import os

import numpy as np
import pyworkflow.protocol.params as params
from pwem.viewers import EmProtocolViewer
from pyworkflow.viewer import DESKTOP_TKINTER, WEB_DJANGO

from ..constants import PLUGIN_NAME
from ..outputs import readAnalysisManifest
from ..protocols import (ProtCryoStarAnalyze, ProtCryoStarCheckInputs, ProtCryoStarSubset,
                         ProtCryoStarTrainAtom, ProtCryoStarTrainDensity)
from . import gallery, plots
from .check import CheckInputsViews
from .chimerax import chimeraxView
from .validation import ValidationViews

__all__ = ["CryoStarViewer", "writeAllFigures"]

#: The engine's analysis figures (manifest "figures" names) in the order the viewer lists them.
ENGINE_FIGURES = {"pc_scatter": "PCA scatter", "pc_density": "PCA density",
                  "explained_variance": "explained variance", "cluster_populations":
                  "k-means populations", "training_curves": "training curves", "umap": "UMAP"}


class CryoStarViewer(CheckInputsViews, ValidationViews, EmProtocolViewer):
    """Latent space (the engine's PCA as scatter and density coloured by k-means state, the
    particles of a PC range, UMAP), the engine's figures, training curves, structures and
    volumes in ChimeraX, a slice gallery of the density generator's volumes and its model-map
    validation."""
    _label = "analyze results"
    _targets = [ProtCryoStarTrainAtom, ProtCryoStarAnalyze, ProtCryoStarTrainDensity,
                ProtCryoStarSubset, ProtCryoStarCheckInputs]
    _environments = [DESKTOP_TKINTER, WEB_DJANGO]

    @classmethod
    def getClassPackageName(cls):
        """The plugin's display name: the window reads "cryostar - analyze results"."""
        return PLUGIN_NAME

    # --------------------------- form ------------------------------------------------------
    def _isDensity(self):
        return isinstance(self.protocol, ProtCryoStarTrainDensity)

    def _isSubset(self):
        return isinstance(self.protocol, ProtCryoStarSubset)

    def _defineParams(self, form):
        if self._isCheck():
            self._defineCheckParams(form)
            return
        form.addSection(label="Latent space")
        line = form.addLine("Axes (PCs)", help="1-based principal components to plot: the "
                                               "engine's PCA of the decoded structures (of z "
                                               "for an analysis run with --pca-space latent).")
        line.addParam("pcX", params.IntParam, default=1, label="x")
        line.addParam("pcY", params.IntParam, default=2, label="y")
        form.addParam("doShowPcaScatter", params.LabelParam,
                      label="PCA scatter coloured by k-means state")
        form.addParam("doShowPcaDensity", params.LabelParam, label="PCA density (hexbin)")
        form.addParam("rangePc", params.IntParam, default=1, label="PC of the range",
                      help="The PC whose scores select particles, as in 'particles subset'.")
        line = form.addLine("Score range", help="Inclusive range of scores on that PC (the "
                                                "units of the scatter's axes).")
        line.addParam("rangeLow", params.FloatParam, default=-1.0, label="from")
        line.addParam("rangeHigh", params.FloatParam, default=1.0, label="to")
        form.addParam("doShowPcRange", params.LabelParam,
                      label="Particles in that range (what 'particles subset' exports)")
        form.addParam("doShowUmap", params.LabelParam, label="UMAP coloured by k-means state",
                      help="Needs umap-learn (pip install umap-learn) unless the analysis "
                           "computed it.")
        form.addSection(label="Figures")
        choices = [label for _, label, _ in self._engineFigures()] or ["(none written)"]
        form.addParam("engineFigure", params.EnumParam, choices=choices, default=0,
                      display=params.EnumParam.DISPLAY_COMBO, label="Figure of the analysis",
                      help="The figures the engine's analysis wrote (PNG, 200 dpi).")
        form.addParam("doShowEngineFigure", params.LabelParam, label="Show that figure")
        form.addParam("doShowTrainingCurves", params.LabelParam, label="Training curves")
        if self._checkDir():
            self._defineCheckParams(form)
        if self._isDensity():
            form.addSection(label="Volumes")
            names = list(self._volumeSeries()) or ["(none)"]
            form.addParam("volumeSeries", params.EnumParam, default=0,
                          choices=[gallery.seriesLabel(n) for n in names],
                          display=params.EnumParam.DISPLAY_COMBO, label="Series")
            form.addParam("doShowVolumeSlices", params.LabelParam,
                          label="Slice gallery of that series")
            form.addParam("doShowVolumeSeries", params.LabelParam,
                          label="All series in ChimeraX")
            self._defineValidationParams(form)
        elif self._isSubset():
            form.addSection(label="Subset")
            form.addParam("doShowSelection", params.LabelParam,
                          label="The selected particles on the PCA scatter",
                          help="Each output set in its colour, the other particles grey; the "
                               "axes are the PCs chosen in 'Latent space'.")
        else:
            form.addSection(label="Structures")
            form.addParam("pcTrajectory", params.IntParam, default=1,
                          label="PC of the trajectory")
            form.addParam("doShowTrajectory", params.LabelParam,
                          label="Trajectory along that PC in ChimeraX")
            form.addParam("doShowCentres", params.LabelParam,
                          label="k-means centres in ChimeraX")

    def _getVisualizeDict(self):
        check = {"doShowCheckReport": self._showCheckReport,
                 "doShowCheckMaps": self._showCheckMaps}
        if self._isCheck():
            return check
        d = dict(check) if self._checkDir() else {}
        d.update(doShowPcaScatter=self._showPcaScatter, doShowPcaDensity=self._showPcaDensity,
                 doShowPcRange=self._showPcRange, doShowUmap=self._showUmap,
                 doShowEngineFigure=self._showEngineFigure,
                 doShowTrainingCurves=self._showTrainingCurves)
        if self._isDensity():
            d.update(doShowVolumeSlices=self._showVolumeSlices,
                     doShowVolumeSeries=self._showVolumeSeries)
            d.update(self._validationVisualizeDict())
        elif self._isSubset():
            d.update(doShowSelection=self._showSelection)
        else:
            d.update(doShowTrajectory=self._showTrajectory, doShowCentres=self._showCentres)
        return d

    # --------------------------- data ------------------------------------------------------
    def _getTraining(self):
        prot = self.protocol
        if isinstance(prot, ProtCryoStarTrainAtom):
            return prot
        return prot.getTraining()

    def _getAnalysisDir(self):
        """The analysis whose PCA and k-means states are shown (None: there is none)."""
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
        """Files written by this viewer so far (figures)."""
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

    def _noAnalysis(self):
        return self.errorMessage(
            "These particles have no latent-space analysis (PCA, k-means states). Run "
            "'cryostar - analyze latent space' on the training that produced them.",
            "No analysis")

    def _checkPcs(self, nPcs, *pcs):
        bad = [pc for pc in pcs if not 1 <= pc <= nPcs]
        if bad:
            return self.errorMessage(f"PC{bad[0]} does not exist: the analysis kept {nPcs} "
                                     f"PCs (1 to {nPcs}).", "Wrong PC")
        return None

    def _engineFigures(self):
        """``[(name, label, absolute path)]`` of the analysis figures that exist."""
        try:
            folder = self._getAnalysisDir()
            man = readAnalysisManifest(folder) if folder else {}
        except (FileNotFoundError, AttributeError, ValueError):
            return []
        figs = man.get("figures") or {}
        names = [n for n in ENGINE_FIGURES if n in figs] + \
            [n for n in figs if n not in ENGINE_FIGURES]
        out = [(n, ENGINE_FIGURES.get(n, n.replace("_", " ")), os.path.join(folder, figs[n]))
               for n in names]
        return [o for o in out if os.path.exists(o[2])]

    def _volumeSeries(self):
        try:
            return gallery.seriesVolumes(self.protocol.getRunManifest())
        except (FileNotFoundError, AttributeError, ValueError):
            return {}

    # --------------------------- latent-space figures -----------------------------------------
    def _pca(self):
        """``(table, scores, ratio)`` of the engine's PCA, or ``(None, message, None)``."""
        folder = self._getAnalysisDir()
        if folder is None or not os.path.exists(os.path.join(folder, "manifest.json")):
            return None, self._noAnalysis(), None
        table = self._table()
        scores, ratio = plots.enginePca(table, folder)
        return table, scores, ratio

    def _pcaPair(self):
        """``(table, scores, ratio, x, y, None)`` for the form's PC pair (1-based x, y), or six
        values ending with the message view to show instead (no analysis, PCs out of range)."""
        table, scores, ratio = self._pca()
        if table is None:
            return None, None, None, None, None, scores
        x, y = self.pcX.get(), self.pcY.get()
        return table, scores, ratio, x, y, self._checkPcs(scores.shape[1], x, y)

    def _axisLabel(self, ratio, i):
        """``PC1 score (42.0 % of variance, 1 SD = 3.1 Å RMS)``: the RMS displacement per
        residue of one standard deviation, when the PCA is of the decoded structures."""
        rms = plots.pcaRmsDisplacement(self._getAnalysisDir())
        extra = f", 1 SD = {rms[i]:.1f} Å RMS" if rms is not None and i < len(rms) else ""
        return f"PC{i + 1} score ({100 * ratio[i]:.1f} % of variance{extra})"

    def _pcaPlot(self, density):
        table, scores, ratio, x, y, problem = self._pcaPair()
        if problem is not None:
            return [problem]
        xy = scores[:, [x - 1, y - 1]]
        xl, yl = self._axisLabel(ratio, x - 1), self._axisLabel(ratio, y - 1)
        kind = "density" if density else "scatter"
        path = self._path(f"pca_{kind}_{x}_{y}.png")
        title = f"CryoSTAR latent space, {len(table.ids)} particles"
        if density:
            return [plots.plotLatentDensity(path, xy, xl, yl, title)]
        return [plots.plotLatentScatter(path, xy, table.labels, xl, yl, title)]

    def _showPcaScatter(self, paramName=None):
        return self._pcaPlot(density=False)

    def _showPcaDensity(self, paramName=None):
        return self._pcaPlot(density=True)

    def _showPcRange(self, paramName=None):
        """The scatter of the range's PC against another, the range shaded and counted."""
        table, scores, ratio = self._pca()
        if table is None:
            return [scores]
        pc, low, high = self.rangePc.get(), self.rangeLow.get(), self.rangeHigh.get()
        bad = self._checkPcs(scores.shape[1], pc)
        if bad:
            return [bad]
        if low > high:
            return [self.errorMessage(f"The range is empty: from {low:g} > to {high:g}.",
                                      "Empty range")]
        ids = plots.pcRangeParticleIds(table, self._getAnalysisDir(), pc, low, high)
        other = 2 if pc == 1 else 1
        other = other if other <= scores.shape[1] else pc
        xy = scores[:, [pc - 1, other - 1]]
        title = (f"{len(ids)} of {len(table.ids)} particles with PC{pc} score in "
                 f"[{low:g}, {high:g}]")
        return [plots.plotLatentScatter(self._path(f"pc{pc}_range.png"), xy, table.labels,
                                        self._axisLabel(ratio, pc - 1),
                                        self._axisLabel(ratio, other - 1), title,
                                        band=(low, high))]

    def _showSelection(self, paramName=None):
        """The subset's output sets on the PCA scatter (particle ids of each output)."""
        table, scores, ratio, x, y, problem = self._pcaPair()
        if problem is not None:
            return [problem]
        labels = np.full(len(table.ids), -1, dtype=np.int64)
        names = {-1: "not selected"}
        outputs = [(n, o) for n, o in self.protocol.iterOutputAttributes()
                   if hasattr(o, "getIdSet")]
        for i, (name, out) in enumerate(outputs):
            labels[np.isin(table.ids, list(out.getIdSet()))] = i
            names[i] = name
        if not outputs:
            return [self.errorMessage("The subset has no output yet (has it finished?).",
                                      "No subset")]
        title = f"{(labels >= 0).sum()} of {len(table.ids)} particles selected"
        return [plots.plotLatentScatter(self._path(f"subset_{x}_{y}.png"),
                                        scores[:, [x - 1, y - 1]], labels,
                                        self._axisLabel(ratio, x - 1),
                                        self._axisLabel(ratio, y - 1), title, names=names,
                                        legendTitle="output")]

    def _showUmap(self, paramName=None):
        table = self._table()
        emb = plots.umapEmbedding(table, self._getAnalysisDir())
        if emb is None:
            return [self.warnMessage("UMAP needs umap-learn, which is not installed: pip "
                                     "install umap-learn (in Scipion's Python), then open "
                                     "this viewer again. The PCA plots need nothing more.",
                                     "UMAP not available")]
        return [plots.plotLatentScatter(self._path("umap.png"), emb, table.labels, "UMAP 1",
                                        "UMAP 2", "CryoSTAR latent space (UMAP)")]

    # --------------------------- figures of the engine ---------------------------------------
    def _showEngineFigure(self, paramName=None):
        figures = self._engineFigures()
        if not figures:
            return [self._noAnalysis()]
        i = min(self.engineFigure.get() or 0, len(figures) - 1)
        _, label, path = figures[i]
        return [plots.plotPng(path, f"CryoSTAR analysis: {label}")]

    def _showTrainingCurves(self, paramName=None):
        """The engine's figure when the analysis has one, else drawn from ``losses.csv``."""
        if not self._isDensity():
            engine = [f for f in self._engineFigures() if f[0] == "training_curves"]
            if engine:
                return [plots.plotPng(engine[0][2], "CryoSTAR training curves")]
        prot = self.protocol if self._isDensity() else self._getTraining()
        csvPath = os.path.join(prot.getRunDir(), "losses.csv")
        if not os.path.exists(csvPath):
            return [self.errorMessage(f"{csvPath} was not found: has the training started?",
                                      "No training log")]
        plotter = plots.plotTrainingCurves(self._path("training_curves.png"), csvPath)
        return [plotter] if plotter else [self.errorMessage(f"{csvPath} has no step yet.",
                                                            "No training log")]

    # --------------------------- structures --------------------------------------------------
    def _analysisScript(self, key, what):
        """The analysis' ChimeraX script named ``key`` in its manifest's ``"cxc"``."""
        folder = self._getAnalysisDir()
        try:
            scripts = readAnalysisManifest(folder).get("cxc") or {} if folder else {}
        except FileNotFoundError:
            scripts = {}
        if key not in scripts:
            return [self.errorMessage(f"The analysis has no ChimeraX script for {what} "
                                      f"(its manifest lists: {', '.join(scripts) or 'none'}).",
                                      "No ChimeraX script")]
        return [chimeraxView(self, os.path.join(os.path.abspath(folder), scripts[key]), what)]

    def _showTrajectory(self, paramName=None):
        pc = self.pcTrajectory.get()
        return self._analysisScript(f"pca_{pc}", f"the structures along PC{pc}")

    def _showCentres(self, paramName=None):
        return self._analysisScript("kmeans", "the k-means centre structures")

    # --------------------------- volumes (density generator) -----------------------------------
    def _showVolumeSlices(self, paramName=None):
        series = self._volumeSeries()
        if not series:
            return [self.errorMessage("The density run has no volumes yet (has it finished?).",
                                      "No volumes")]
        names = list(series)
        name = names[min(self.volumeSeries.get() or 0, len(names) - 1)]
        runDir = self.protocol.getRunDir()
        files = [os.path.join(runDir, f) for f in series[name]]
        missing = [f for f in files if not os.path.exists(f)]
        if missing:
            return [self.errorMessage(f"{missing[0]} was not found.", "Missing volume")]
        title = f"CryoSTAR density: {gallery.seriesLabel(name)}"
        return [gallery.plotVolumeGallery(self._path(f"gallery_{name}.png"), files, title,
                                          series=name)]

    def _showVolumeSeries(self, paramName=None):
        what = "the density volumes"
        try:
            man = self.protocol.getRunManifest()
        except FileNotFoundError:
            man = {}
        script = (man.get("cxc") or {}).get("volumes")
        if script is None:
            return [self.errorMessage("The density run has no ChimeraX script yet (has it "
                                      "finished?).", "No ChimeraX script")]
        return [chimeraxView(self, os.path.join(os.path.abspath(self.protocol.getRunDir()),
                                                script), what)]


def writeAllFigures(project, prots):
    """Write the viewer's figures for ``prots`` (headless); return the paths written."""
    written = []
    for prot in prots:
        viewer = CryoStarViewer(project=project, protocol=prot)
        viewer.setProtocol(prot)
        names = ["_showPcaScatter", "_showPcaDensity", "_showUmap", "_showTrainingCurves"]
        if isinstance(prot, ProtCryoStarTrainDensity):
            names.append("_showVolumeSlices")
        for name in names:
            getattr(viewer, name)()
        written += [p for p in viewer.getWrittenFiles() if os.path.exists(p)]
    return written
