"""``analyze latent space``: redo the latent-space analysis of a training with other settings.

Runs ``cryostar-engine analyze --run <training run> --out extra/analysis`` (another number of
k-means states, other PCs or trajectory points, another seed) without retraining, and registers
the decoded cluster-centre and trajectory models like the training does.  Its cluster labels
feed ``particles subset``.
"""
import os

import pyworkflow.protocol.params as params
from pwem.objects import SetOfAtomStructFlex
from pwem.protocols import ProtAnalysis3D, ProtFlexBase

from .analysis_outputs import CENTRES, TRAJECTORIES, AnalysisOutputsMixin
from .protocol_base import ProtCryoStarBase


class ProtCryoStarAnalyze(ProtCryoStarBase, ProtAnalysis3D, ProtFlexBase, AnalysisOutputsMixin):
    """Analyse the latent space of a finished 'train atom generator' run again, with another
    number of k-means states or other principal components, without retraining: PCA
    trajectories and k-means states are decoded into atomic models (ClusterCentres,
    Trajectories) and plotted (see 'analyze results'). Use its clusters in 'particles
    subset'."""
    _label = "analyze latent space"
    _possibleOutputs = {CENTRES: SetOfAtomStructFlex, TRAJECTORIES: SetOfAtomStructFlex}

    # --------------------------- DEFINE param functions -------------------------------------
    def _defineParams(self, form):
        form.addSection(label="Input")
        form.addParam("inputTraining", params.PointerParam, pointerClass="ProtCryoStarTrainAtom",
                      important=True, label="Training run",
                      help="A finished 'train atom generator' run; its latent vectors (z) and "
                           "decoder are used as they are.")
        form.addParam("numClusters", params.IntParam, default=10, validators=[params.GE(2)],
                      label="k-means states",
                      help="Number of k-means clusters of z, each decoded at its centre.")
        form.addParam("numPcs", params.IntParam, default=3, validators=[params.Positive],
                      label="PC trajectories", help="Trajectories along PC1 … PCn.")
        form.addParam("numPoints", params.IntParam, default=10, validators=[params.GE(2)],
                      label="Points per trajectory",
                      help="Real particles from the 5th to the 95th percentile of each PC.")
        form.addParam("seed", params.IntParam, default=0, expertLevel=params.LEVEL_ADVANCED,
                      label="Random seed", help="k-means (and UMAP) random state.")
        self._defineExtraParams(form)

    # --------------------------- INSERT steps functions ---------------------------------------
    def _insertAllSteps(self):
        self._insertFunctionStep(self.analyzeStep, needsGPU=False)
        self._insertFunctionStep(self.createOutputStep, needsGPU=False)

    def _createFilenameTemplates(self):
        self._updateFilenamesDict({"analysisDir": self._getExtraPath("analysis")})

    # --------------------------- STEPS functions ----------------------------------------------
    def analyzeStep(self):
        train = self.getTraining()
        args = ["--run", train.getRunDir(), "--out", self.getAnalysisDir()]
        self.runEngine("analyze", args + self._analysisArgs(self))

    def createOutputStep(self):
        self.registerAnalysisOutputs(self.getTraining(), self.getAnalysisDir())

    # --------------------------- UTILS functions ----------------------------------------------
    def getTraining(self):
        """The 'train atom generator' protocol analysed."""
        return self.inputTraining.get()

    def getAnalysisDir(self):
        """Absolute folder of this analysis (``extra/analysis``)."""
        self._createFilenameTemplates()
        return os.path.abspath(self._getFileName("analysisDir"))

    # --------------------------- INFO functions -----------------------------------------------
    def _validate(self):
        train = self.getTraining()
        if train is None:
            return []   # Scipion reports the empty pointer
        if not train.isFinished() or train.getRunManifest() is None:
            return ["The training run has not finished: analyse it once it has."]
        zdim = int(train.getRunManifest().get("zdim", 0))
        errors = []
        if zdim < 1:
            errors.append("The training run records no latent dimension.")
        n = train.getRunManifest().get("particles", 0)
        if n and self.numClusters.get() > n:
            errors.append(f"k-means states ({self.numClusters.get()}) exceed the number of "
                          f"particles ({n}).")
        return errors

    def _warnings(self):
        train = self.getTraining()
        man = train.getRunManifest() if train is not None else None
        if man and self.numPcs.get() > int(man.get("zdim", 0)):
            return [f"Only {man['zdim']} PCs exist (latent dimension): trajectories along "
                    f"PC1-{man['zdim']} only."]
        return []

    def _summary(self):
        if not self.isFinished():
            return ["Not finished yet."]
        from ..outputs import readAnalysisManifest
        man = readAnalysisManifest(self.getAnalysisDir())
        pca = man["pca"]
        ratio, rms = pca["explained_variance_ratio"], pca.get("rms_displacement_A") or []
        space = ("decoded structures" if pca.get("space") == "structure" else "latent vectors z")
        return [f"{man['z']['n_particles']} particles, latent dimension {man['z']['zdim']}.",
                f"PCA of the {space}, explained variance: "
                + ", ".join(f"PC{i + 1} {100 * r:.1f}%"
                            + (f" ({rms[i]:.1f} Å RMS)" if i < len(rms) else "")
                            for i, r in enumerate(ratio[:5])),
                f"{man['kmeans']['k']} k-means states of "
                + ", ".join(map(str, man["kmeans"]["counts"])) + " particles."]

    def _methods(self):
        if not self.isFinished():
            return []
        return [f"The CryoSTAR [Li2024cryostar] latent space was re-analysed with "
                f"{self.numClusters.get()} k-means states and trajectories along the first "
                f"{self.numPcs.get()} principal components ({self.numPoints.get()} points "
                "each), decoded into atomic models."]

    def _citations(self):
        return ["Li2024cryostar"]
