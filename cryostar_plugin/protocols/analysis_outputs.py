"""Register what ``cryostar-engine analyze`` wrote as Scipion atomic-structure sets.

Used by ``train atom generator`` (its built-in analysis) and ``analyze latent space`` (a re-run
with other settings).  Outputs:

* ``ClusterCentres``: SetOfAtomStructFlex, one model per k-means state (cluster order), each with
  its latent vector (``getZFlex()``), state, population and the particle it snaps to;
* ``Trajectories``: SetOfAtomStructFlex, the points along PC1…PCn (PC, then position), each with
  its latent vector, PC and position.

The models are the decoded bead models (one bead per residue) moved back into the frame of the
user's reference model, so they overlay the consensus map as Scipion displays it; each set
carries a ChimeraX script (``_chimeraScript``, opened by pwem's ChimeraX viewer) that shows them
as a movie over the map.
"""
import os

from pwem.objects import AtomStructFlex
from pyworkflow.object import Integer, String

from ..constants import (CHIMERA_SCRIPT, CLUSTER, CLUSTER_SIZE, CRYOSTAR, FRAME, KIND, PARTICLE_ID,
                         PARTICLE_ROW, PC, RUN_DIR)
from ..outputs import (analysisPoints, readAnalysisManifest, readStarImageIds,
                       writeChimeraxScript, writeUserFrameModels)

#: Output names (also the keys of the protocols' ``_possibleOutputs``).
CENTRES = "ClusterCentres"
TRAJECTORIES = "Trajectories"


class AnalysisOutputsMixin:
    """For protocols deriving from ProtFlexBase (``_createSetOfAtomStructFlex``)."""

    def _modelsDir(self, *p):
        return self._getExtraPath("models", *p)

    def _newStruct(self, path, point, ids):
        item = AtomStructFlex(progName=CRYOSTAR)
        item.setFileName(path)
        item.setZFlex(list(point.z))
        setattr(item, KIND, String(point.kind))
        setattr(item, PARTICLE_ROW, Integer(point.particleRow))
        setattr(item, PARTICLE_ID, Integer(int(ids[point.particleRow])))
        return item

    def _structSet(self, suffix, analysisFolder, script):
        out = self._createSetOfAtomStructFlex(suffix=suffix, progName=CRYOSTAR)
        out.getFlexInfo().setAttr(RUN_DIR, os.path.abspath(analysisFolder))
        setattr(out, CHIMERA_SCRIPT, String(os.path.abspath(script)))
        return out

    def _userModels(self, analysisFolder, pdbName, stem, shift, nExpected):
        series, singles = writeUserFrameModels(os.path.join(analysisFolder, pdbName),
                                               self._modelsDir(), stem, shift)
        if len(singles) != nExpected:
            raise RuntimeError(f"{pdbName} holds {len(singles)} models, the analysis manifest "
                               f"lists {nExpected}")
        return series, singles

    def registerAnalysisOutputs(self, trainProt, analysisFolder):
        """Read ``analysisFolder/manifest.json`` of ``trainProt``'s run and define the outputs.

        Returns the dict of defined outputs (empty when the analysis decoded no structures).
        """
        manifest = readAnalysisManifest(analysisFolder)
        if not manifest.get("structures"):
            self.warning("The analysis decoded no structures: no atomic-model outputs.")
            return {}
        points = analysisPoints(analysisFolder, manifest)
        ids = readStarImageIds(trainProt._enginePath("particlesStar"))
        shift = trainProt.getEngineShift()
        mapDisplay = trainProt.getMapDisplay()

        km = manifest["kmeans"]
        series, singles = self._userModels(analysisFolder, km["pdb"], "kmeans", shift,
                                           len(points["kmeans"]))
        script = writeChimeraxScript(
            self._modelsDir("kmeans.cxc"),
            f"CryoSTAR: {km['k']} k-means states (model i = cluster i-1) over the consensus map",
            [("k-means centres", series, len(singles))], mapDisplay)
        centres = self._structSet("Centres", analysisFolder, script)
        for point, path in zip(points["kmeans"], singles):
            item = self._newStruct(path, point, ids)
            setattr(item, CLUSTER, Integer(point.cluster))
            setattr(item, CLUSTER_SIZE, Integer(point.clusterSize))
            centres.append(item)

        trajSeries, trajItems = [], []
        for t in manifest["trajectories"]:
            pc = int(t["pc"])
            pts = points["pca"][pc]
            series, singles = self._userModels(analysisFolder, t["pdb"], f"pca_{pc}", shift,
                                               len(pts))
            writeChimeraxScript(self._modelsDir(f"pca_{pc}.cxc"),
                                f"CryoSTAR: trajectory along PC{pc} over the consensus map",
                                [(f"PC{pc}", series, len(singles))], mapDisplay)
            trajSeries.append((f"PC{pc} trajectory", series, len(singles)))
            trajItems += list(zip(pts, singles))
        script = writeChimeraxScript(
            self._modelsDir("trajectories.cxc"),
            "CryoSTAR: PC trajectories over the consensus map (PC1 shown; 'show #3 models' "
            "for the next)", trajSeries, mapDisplay, showOnly=0)
        trajectories = self._structSet("Trajectories", analysisFolder, script)
        for point, path in trajItems:
            item = self._newStruct(path, point, ids)
            setattr(item, PC, Integer(point.pc))
            setattr(item, FRAME, Integer(point.frame))
            trajectories.append(item)

        outputs = {CENTRES: centres, TRAJECTORIES: trajectories}
        self._defineOutputs(**outputs)
        for out in outputs.values():
            self._defineSourceRelation(trainProt._getAtomStructPointer(), out)
        return outputs
