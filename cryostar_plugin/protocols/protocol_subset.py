"""``particles subset``: the particles of chosen k-means states or of a PC range, ready for RELION.

The selection is made by ``cryostar-engine export-subset`` on the star file the training read
(so the semantics of states and PC ranges are the engine's, and RELION-ready ``.star`` files are
left in ``extra/subset`` as a by-product).  The output sets are then copied item by item from
the ORIGINAL particles given to the training (``copyItems``), matched through ``rlnImageId``:
every attribute is kept (poses, CTF, micrograph, coordinates, optics, full-resolution images),
whatever box the training used.
"""
import os
import re

import numpy as np
import pyworkflow.protocol.params as params
from pwem.objects import SetOfParticles
from pwem.protocols import ProtProcessParticles

from ..constants import SELECT_CLUSTERS, SELECT_PC_RANGE
from ..outputs import readAnalysisManifest, readStarImageIds
from .protocol_base import ProtCryoStarBase

__all__ = ["ProtCryoStarSubset", "parseClusterList", "clusterOutputName"]


def parseClusterList(text):
    """States from ``"2,5"``, ``"0-3"``, ``"1 4-6"`` (0-based, sorted, unique).

    Raises
    ------
    ValueError : anything else.
    """
    out = set()
    for token in re.split(r"[\s,]+", (text or "").strip()):
        if not token:
            continue
        m = re.fullmatch(r"(\d+)(?:-(\d+))?", token)
        if not m:
            raise ValueError(f"'{token}' is not a state number or range (e.g. 2,5 or 0-3)")
        lo, hi = int(m.group(1)), int(m.group(2) or m.group(1))
        if hi < lo:
            raise ValueError(f"empty range '{token}'")
        out.update(range(lo, hi + 1))
    return sorted(out)


def clusterOutputName(cluster, k):
    """Output attribute of one state's set: ``ParticlesCluster02`` (zero-padded like the
    engine's file names)."""
    return f"ParticlesCluster{cluster:0{max(2, len(str(k - 1)))}d}"


class ProtCryoStarSubset(ProtCryoStarBase, ProtProcessParticles):
    """Select the particles of chosen k-means states, or with a PC score in a range, from a
    CryoSTAR analysis. The output keeps every attribute of the particles given to the training
    (poses, CTF, micrographs, coordinates, optics groups, full-resolution images), so it can go
    straight to RELION 3D auto-refine or any other refinement. Optionally one set per state."""
    _label = "particles subset"
    _possibleOutputs = {"Particles": SetOfParticles}

    # --------------------------- DEFINE param functions -------------------------------------
    def _defineParams(self, form):
        form.addSection(label="Input")
        form.addParam("inputAnalysis", params.PointerParam,
                      pointerClass="ProtCryoStarTrainAtom, ProtCryoStarAnalyze", important=True,
                      label="CryoSTAR analysis",
                      help="A 'train atom generator' run (its own analysis) or an 'analyze "
                           "latent space' run: its k-means states and PCs are used.")
        form.addParam("selectBy", params.EnumParam, choices=["k-means states", "PC range"],
                      default=SELECT_CLUSTERS, display=params.EnumParam.DISPLAY_HLIST,
                      label="Select by")
        form.addParam("clusters", params.StringParam, default="",
                      condition=f"selectBy=={SELECT_CLUSTERS}", label="States",
                      help="0-based k-means states as in the analysis plots, e.g. '2,5' or "
                           "'0-3'. Empty with 'one set per state' = all states.")
        form.addParam("doPerCluster", params.BooleanParam, default=False,
                      condition=f"selectBy=={SELECT_CLUSTERS}", label="One set per state?",
                      help="Yes: one output set per state (ParticlesClusterNN); no: one set "
                           "with all the chosen states.")
        form.addParam("pcIndex", params.IntParam, default=1, validators=[params.Positive],
                      condition=f"selectBy=={SELECT_PC_RANGE}", label="PC",
                      help="1-based principal component of the engine's PCA (of the "
                           "decoded structures; of z for an analysis run with --pca-space "
                           "latent).")
        line = form.addLine("PC score range", condition=f"selectBy=={SELECT_PC_RANGE}",
                            help="Inclusive range of scores on that PC, in the units of the "
                                 "analysis plots' axes.")
        line.addParam("pcLow", params.FloatParam, default=-1.0, label="from")
        line.addParam("pcHigh", params.FloatParam, default=1.0, label="to")
        form.addParam("doInvert", params.BooleanParam, default=False,
                      label="Keep the others?",
                      help="Yes: output the particles NOT selected (not with one set per state).")

    # --------------------------- INSERT steps functions ---------------------------------------
    def _insertAllSteps(self):
        self._insertFunctionStep(self.selectStep, needsGPU=False)
        self._insertFunctionStep(self.createOutputStep, needsGPU=False)

    # --------------------------- STEPS functions ----------------------------------------------
    def selectStep(self):
        os.makedirs(self._getSubsetDir(), exist_ok=True)
        train = self.getTraining()
        args = ["--particles", train._enginePath("particlesStar"), "--out", self._getStem()]
        if self.selectBy.get() == SELECT_CLUSTERS:
            args += ["--labels", self._getLabelsPath()]
            clusters = self._getChosenClusters()
            if self.doPerCluster:
                args += ["--per-cluster", "--keep", ",".join(map(str, clusters))]
            else:
                args += ["--keep", ",".join(map(str, clusters))]
        else:
            # the scores of the analysis chosen, the axes its viewer shows
            args += ["--pc", self.pcIndex.get(), "--range", self.pcLow.get(), self.pcHigh.get(),
                     "--analysis", self.getAnalysisDir()]
        if self.doInvert and not self._isPerCluster():
            args.append("--invert")
        self.runEngine("export-subset", args)

    def createOutputStep(self):
        parts = self.getTraining().getInputParticles()
        outputs = {}
        for name, star in self.getSubsetStars().items():
            ids = set(readStarImageIds(star).tolist())
            suffix = name.replace("Particles", "")
            out = self._createSetOfParticles(suffix=suffix)
            out.copyInfo(parts)
            out.copyItems(parts, itemSelectedCallback=lambda item, keep=ids:
                          item.isEnabled() and item.getObjId() in keep)
            if out.getSize() != len(ids):
                raise RuntimeError(f"{star} lists {len(ids)} particles but {out.getSize()} were "
                                   "found in the input set")
            outputs[name] = out
        self._defineOutputs(**outputs)
        for out in outputs.values():
            self._defineSourceRelation(self.getTraining()._getParticlesPointer(), out)

    # --------------------------- UTILS functions ----------------------------------------------
    def getTraining(self):
        """The 'train atom generator' run whose particles are selected."""
        prot = self.inputAnalysis.get()
        return prot.getTraining() if hasattr(prot, "getTraining") else prot

    def getAnalysisDir(self):
        return self.inputAnalysis.get().getAnalysisDir()

    def _getAnalysisManifest(self):
        return readAnalysisManifest(self.getAnalysisDir())

    def _getLabelsPath(self):
        return os.path.join(self.getAnalysisDir(), self._getAnalysisManifest()["kmeans"]["labels"])

    def _getNumClusters(self):
        return int(self._getAnalysisManifest()["kmeans"]["k"])

    def _getChosenClusters(self):
        """The states asked for; all non-empty ones when none is given (one set per state)."""
        chosen = parseClusterList(self.clusters.get())
        if not chosen and self.doPerCluster:
            labels = np.load(self._getLabelsPath())
            chosen = sorted(int(c) for c in np.unique(labels))
        return chosen

    def _isPerCluster(self):
        return self.selectBy.get() == SELECT_CLUSTERS and bool(self.doPerCluster)

    def _getSubsetDir(self):
        return os.path.abspath(self._getExtraPath("subset"))

    def _getStem(self):
        return os.path.join(self._getSubsetDir(), "particles.star")

    def getSubsetStars(self):
        """Output name → RELION star written by the engine (``extra/subset``)."""
        if not self._isPerCluster():
            return {"Particles": self._getStem()}
        k = self._getNumClusters()
        width = max(2, len(str(k - 1)))
        return {clusterOutputName(c, k):
                os.path.join(self._getSubsetDir(), f"particles_cluster{c:0{width}d}.star")
                for c in self._getChosenClusters()}

    # --------------------------- INFO functions -----------------------------------------------
    def _validate(self):
        prot = self.inputAnalysis.get()
        if prot is None:
            return []
        if not prot.isFinished():
            return ["The analysis has not finished yet."]
        errors = []
        if self.selectBy.get() == SELECT_CLUSTERS:
            try:
                chosen = parseClusterList(self.clusters.get())
            except ValueError as err:
                return [f"States: {err}."]
            k = self._getNumClusters()
            if not chosen and not self.doPerCluster:
                errors.append("Give the states to keep (e.g. '2,5' or '0-3').")
            bad = [c for c in chosen if c >= k]
            if bad:
                errors.append(f"The analysis has states 0-{k - 1} only (asked for "
                              f"{', '.join(map(str, bad))}).")
            if self.doPerCluster and self.doInvert:
                errors.append("'Keep the others?' cannot be combined with one set per state.")
        else:
            if self.pcLow.get() > self.pcHigh.get():
                errors.append("The PC score range is empty (from > to).")
            n = len(self._getAnalysisManifest()["pca"]["explained_variance"])
            if self.pcIndex.get() > n:
                errors.append(f"The latent space has {n} PCs only.")
        return errors

    def _selectionText(self):
        """The selection in words, e.g. "k-means states 2 and 5", "every k-means state, one set
        each", "PC1 scores from -1 to 0.5"; "(the others)" appended when inverted."""
        if self.selectBy.get() == SELECT_CLUSTERS:
            chosen = parseClusterList(self.clusters.get())
            if not chosen:
                what = "every k-means state"
            else:
                what = ("k-means state " if len(chosen) == 1 else "k-means states ") + \
                    ", ".join(map(str, chosen))
            if self.doPerCluster:
                what += ", one set each"
        else:
            what = (f"PC{self.pcIndex.get()} scores from {self.pcLow.get():g} to "
                    f"{self.pcHigh.get():g}")
        return what + (" (the particles not selected)" if self.doInvert and
                       not self._isPerCluster() else "")

    def _summary(self):
        if not self.isFinished():
            return ["Not finished yet."]
        lines = [f"Selected by {self._selectionText()}."]
        for name, _ in self.iterOutputAttributes(SetOfParticles):
            out = getattr(self, name)
            lines.append(f"{name}: {out.getSize()} particles.")
        lines.append(f"RELION star files: {self._getSubsetDir()}")
        return lines

    def _methods(self):
        if not self.isFinished():
            return []
        return [f"Particles were selected from the CryoSTAR [Li2024cryostar] latent space "
                f"({self._selectionText()}) and kept with their original poses, CTF and "
                "images."]

    def _citations(self):
        return ["Li2024cryostar"]
