"""Register what ``cryostar-engine analyze`` wrote as Scipion atomic-structure sets.

Used by ``train atom generator`` (its built-in analysis) and ``analyze latent space`` (a re-run
with other settings).  Outputs:

* ``ClusterCentres``: SetOfAtomStructFlex, one model per k-means state (cluster order), each with
  its latent vector (``getZFlex()``), state, population and the particle it snaps to;
* ``Trajectories``: SetOfAtomStructFlex, the points along PC1…PCn (PC, then position), each with
  its latent vector, PC and position.

The models are the engine's decoded bead models (one bead per residue), one file per model,
already in the frame of the user's reference model and map; they are registered where the
engine wrote them (names from the analysis manifest), never moved or rewritten.  Each set carries
the engine's ChimeraX script (``_chimeraScript``, opened by pwem's ChimeraX viewer), which shows
the models over the consensus map at the map's own origin.
"""
import os

from pwem.objects import AtomStructFlex
from pyworkflow.object import Integer, String

from ..constants import (CHIMERA_SCRIPT, CLUSTER, CLUSTER_SIZE, CRYOSTAR, FRAME, KIND, PARTICLE_ID,
                         PARTICLE_ROW, PC, RUN_DIR)
from ..outputs import analysisPoints, readAnalysisManifest, readStarImageIds

#: Output names (also the keys of the protocols' ``_possibleOutputs``).
CENTRES = "ClusterCentres"
TRAJECTORIES = "Trajectories"


class AnalysisOutputsMixin:
    """For protocols deriving from ProtFlexBase (``_createSetOfAtomStructFlex``)."""

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
        setattr(out, CHIMERA_SCRIPT, String(os.path.join(os.path.abspath(analysisFolder), script)))
        return out

    @staticmethod
    def _files(analysisFolder, names, what, nExpected):
        if len(names) != nExpected:
            raise RuntimeError(f"the analysis manifest lists {len(names)} {what} models but "
                               f"{nExpected} points")
        return [os.path.join(os.path.abspath(analysisFolder), n) for n in names]

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
        series, cxc = manifest["series"], manifest["cxc"]

        centres = self._structSet("Centres", analysisFolder, cxc["kmeans"])
        files = self._files(analysisFolder, series["kmeans"], "k-means", len(points["kmeans"]))
        for point, path in zip(points["kmeans"], files):
            item = self._newStruct(path, point, ids)
            setattr(item, CLUSTER, Integer(point.cluster))
            setattr(item, CLUSTER_SIZE, Integer(point.clusterSize))
            centres.append(item)

        trajectories = None
        for t in manifest["trajectories"]:
            if trajectories is None:   # the script of PC1 (each PC has its own)
                trajectories = self._structSet("Trajectories", analysisFolder, t["cxc"])
            pts = points["pca"][int(t["pc"])]
            for point, path in zip(pts, self._files(analysisFolder, t["point_pdbs"],
                                                    f"PC{t['pc']}", len(pts))):
                item = self._newStruct(path, point, ids)
                setattr(item, PC, Integer(point.pc))
                setattr(item, FRAME, Integer(point.frame))
                trajectories.append(item)

        outputs = {CENTRES: centres}
        if trajectories is not None:
            outputs[TRAJECTORIES] = trajectories
        self._defineOutputs(**outputs)
        for out in outputs.values():
            self._defineSourceRelation(trainProt._getAtomStructPointer(), out)
        return outputs
