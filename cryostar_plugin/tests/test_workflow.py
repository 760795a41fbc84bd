"""The whole CryoSTAR chain in one headless Scipion project (see :mod:`.shared_project`):
set sizes, z row for row, models and volumes in the user's frame, subsets, relations, resume."""
import json
import os
import re
import unittest

import numpy as np

from cryostar_plugin.constants import (CHECKPOINT, CHIMERA_SCRIPT, CLUSTER, CLUSTER_SIZE, CONFIG,
                                       FRAME, PARTICLE_ID, PARTICLE_ROW, PC, RUN_DIR)
from cryostar_plugin.outputs import readStarImageIds
from cryostar_plugin.protocols import ProtCryoStarSubset, ProtCryoStarTrainAtom
from cryostar_plugin.tests.shared_project import N_PART, TOTAL_STEPS, SharedChainTest, pdbCoords


def cxcOpenedFiles(path):
    """Files a .cxc opens (``open FILE …`` lines; relative names from the script's folder)."""
    folder = os.path.dirname(path)
    with open(path) as f:
        names = re.findall(r'^open "?([^"\s]+)"?', f.read(), flags=re.M)
    return [os.path.join(folder, n) for n in names]


class TestCryoStarWorkflow(SharedChainTest):
    def _runDir(self, *p):
        return os.path.join(self.train.getRunDir(), *p)

    def _engineZ(self):
        return np.load(self._runDir("z.npy"))

    def _starIds(self):
        return readStarImageIds(self.train._enginePath("particlesStar"))

    # ------------------------------------------------------------------ continue / resume
    def test_stopped_run_failed_then_resumed_from_checkpoint(self):
        self.assertTrue(self.chain.stoppedFailed)
        self.assertIn("use 'Continue' to resume", self.chain.stoppedError)
        with open(self._runDir("run.log")) as f:
            log = f.read()
        self.assertIn("stopping at step 6", log)
        # resumed from a checkpoint taken after the start: step 4 (checkpoints every 4) or the
        # stop itself (6), depending on whether the engine checkpoints when it stops
        resumed = [int(n) for n in re.findall(r"resuming at step (\d+)", log)]
        self.assertEqual(len(resumed), 1)
        self.assertIn(resumed[0], (4, 6))
        self.assertEqual(log.count(f"{TOTAL_STEPS} steps of 64 images"), 1)   # started once
        steps = np.loadtxt(self._runDir("losses.csv"), delimiter=",", skiprows=1)[:, 0]
        np.testing.assert_array_equal(steps, np.arange(1, TOTAL_STEPS + 1))
        man = self.train.getRunManifest()
        self.assertEqual((man["status"], man["step"]), ("finished", TOTAL_STEPS))

    def test_continue_a_previous_run_for_more_epochs(self):
        prot = self.newProtocol(ProtCryoStarTrainAtom, doContinue=True, continueRun=self.train,
                                numEpochs=4, numClusters=3, numPcs=1, numPoints=3,
                                useGpu=False, numberOfThreads=1)
        self.launchProtocol(prot)
        more = TOTAL_STEPS * 4 // 3
        man = prot.getRunManifest()
        self.assertEqual((man["status"], man["step"]), ("finished", more))
        with open(os.path.join(prot.getRunDir(), "run.log")) as f:
            self.assertIn(f"resuming at step {TOTAL_STEPS} ", f.read())
        steps = np.loadtxt(os.path.join(prot.getRunDir(), "losses.csv"), delimiter=",",
                           skiprows=1)[:, 0]
        np.testing.assert_array_equal(steps, np.arange(1, more + 1))
        self.assertEqual(self.train.getRunManifest()["step"], TOTAL_STEPS)   # source untouched
        self.assertSetSize(prot.Particles, N_PART)
        self.assertEqual(prot.getInputParticles().getObjId(), self.parts.getObjId())
        z = np.load(os.path.join(prot.getRunDir(), "z.npy"))
        zById = {p.getObjId(): p.getZFlex() for p in prot.Particles.iterItems()}
        for row, pid in enumerate(self._starIds()):
            np.testing.assert_allclose(zById[int(pid)], z[row], rtol=1e-6, atol=1e-7)
        self.assertSetSize(prot.Trajectories, 3)

    # ------------------------------------------------------------------ Particles
    def test_particles_carry_engine_z_row_for_row(self):
        out = self.train.Particles
        self.assertSetSize(out, N_PART)
        self.assertEqual(out.getFlexInfo().getProgName(), "CryoSTAR")
        zById = {p.getObjId(): p.getZFlex() for p in out.iterItems()}
        z = self._engineZ()
        self.assertEqual(z.shape, (N_PART, 3))
        for row, pid in enumerate(self._starIds()):
            np.testing.assert_allclose(zById[int(pid)], z[row], rtol=1e-6, atol=1e-7)
        # the same particles as the input: poses, CTF and images untouched
        self.assertAlmostEqual(out.getSamplingRate(), 2.0)
        self.assertEqual(out.getXDim(), 48)
        self.assertTrue(out.hasCTF() and out.hasAlignmentProj())
        info = out.getFlexInfo()
        self.assertTrue(os.path.isfile(info.getAttr(CHECKPOINT)))
        self.assertTrue(info.getAttr(CHECKPOINT).endswith(f"step_{TOTAL_STEPS:07d}.pt"))
        self.assertTrue(os.path.isfile(info.getAttr(CONFIG)))
        self.assertEqual(info.getAttr(RUN_DIR), self.train.getRunDir())

    def test_relations(self):
        parents = {o.getObjId() for o in self.proj.getSourceParents(self.train.Particles)}
        self.assertIn(self.parts.getObjId(), parents)
        self.assertIn(self.model.getObjId(), parents)
        for out in (self.train.ClusterCentres, self.train.Trajectories,
                    self.analyze.ClusterCentres):
            self.assertIn(self.model.getObjId(),
                          {o.getObjId() for o in self.proj.getSourceParents(out)})
        # the density run's input pointer names the training run and its 'Particles' output
        self.assertIn(self.train.getObjId(),
                      {o.getObjId() for o in self.proj.getSourceParents(self.density.Volumes)})
        self.assertEqual(self.density.getTraining().getObjId(), self.train.getObjId())
        self.assertIn(self.parts.getObjId(), {o.getObjId() for o in self.proj.getSourceParents(
            self.subset.ParticlesCluster00)})

    # ------------------------------------------------------------------ atomic models
    def _checkStructures(self, prot, k, pcs, points):
        z = self._engineZ()
        ids = self._starIds()
        centres = prot.ClusterCentres
        self.assertSetSize(centres, k)
        self.assertEqual(centres.getFlexInfo().getProgName(), "CryoSTAR")
        sizes = []
        refCentre = pdbCoords(self.modelFile).mean(0)
        for c, item in enumerate(centres.iterItems(orderBy="id")):
            self.assertEqual(getattr(item, CLUSTER).get(), c)
            row = getattr(item, PARTICLE_ROW).get()
            np.testing.assert_allclose(item.getZFlex(), z[row], rtol=1e-5, atol=1e-6)
            self.assertEqual(getattr(item, PARTICLE_ID).get(), ids[row])
            sizes.append(getattr(item, CLUSTER_SIZE).get())
            coords = pdbCoords(item.getFileName())
            self.assertEqual(coords.shape, (214, 3))           # one bead per residue
            # back in the user's frame (the engine frame is 48 Å away on every axis)
            self.assertLess(np.abs(coords.mean(0) - refCentre).max(), 3.0)
        self.assertEqual(sum(sizes), N_PART)
        traj = prot.Trajectories
        self.assertSetSize(traj, pcs * points)
        keys = [(getattr(t, PC).get(), getattr(t, FRAME).get()) for t in traj.iterItems(orderBy="id")]
        self.assertEqual(keys, [(pc, f) for pc in range(1, pcs + 1) for f in range(points)])
        for t in traj.iterItems():
            np.testing.assert_allclose(t.getZFlex(), z[getattr(t, PARTICLE_ROW).get()],
                                       rtol=1e-5, atol=1e-6)
        # ChimeraX: the script pwem's viewer opens is the engine's; it shows the map given to
        # the engine (Scipion's origin in its header) and plays the models as coordinate sets
        script = getattr(centres, CHIMERA_SCRIPT).get()
        opened = cxcOpenedFiles(script)
        self.assertTrue(all(os.path.exists(p) for p in opened), opened)
        self.assertEqual(opened[0], self.train._enginePath("map"))
        import mrcfile
        with mrcfile.open(opened[0], header_only=True) as m:
            self.assertEqual([float(m.header.origin[a]) for a in "xyz"], [0.0] * 3)
        with open(script) as f:
            self.assertIn(f"coordset #2 1,{k}", f.read())

    def test_training_structures(self):
        self._checkStructures(self.train, k=3, pcs=2, points=4)

    def test_analyze_structures_in_own_folder(self):
        self._checkStructures(self.analyze, k=4, pcs=2, points=5)
        with open(os.path.join(self.analyze.getAnalysisDir(), "manifest.json")) as f:
            self.assertEqual(json.load(f)["kmeans"]["k"], 4)
        with open(os.path.join(self.train.getAnalysisDir(), "manifest.json")) as f:
            self.assertEqual(json.load(f)["kmeans"]["k"], 3)   # the training's is untouched
        self.assertTrue(any("k-means states" in s for s in self.analyze.summary()))

    # ------------------------------------------------------------------ subsets
    def test_subset_per_state_keeps_every_attribute(self):
        counts = [getattr(c, CLUSTER_SIZE).get()
                  for c in self.analyze.ClusterCentres.iterItems(orderBy="id")]
        originals = {p.getObjId(): p.clone() for p in self.parts.iterItems()}
        seen = set()
        for c, n in enumerate(counts):
            out = getattr(self.subset, f"ParticlesCluster{c:02d}")
            self.assertSetSize(out, n)
            self.assertAlmostEqual(out.getSamplingRate(), 2.0)
            self.assertEqual(out.getXDim(), 48)                  # full-size images
            self.assertTrue(out.hasCTF() and out.hasAlignmentProj())
            self.assertEqual(out.getAcquisition().getVoltage(), 300.0)
            for p in out.iterItems():
                self.assertTrue(p.equalAttributes(originals[p.getObjId()]), p.getObjId())
                seen.add(p.getObjId())
            self.assertTrue(os.path.isfile(self.subset.getSubsetStars()[
                f"ParticlesCluster{c:02d}"]))
        self.assertEqual(seen, set(originals))                   # a partition of all particles
        labels = np.load(os.path.join(self.analyze.getAnalysisDir(), "labels.npy"))
        self.assertEqual(np.bincount(labels).tolist(), counts)

    def test_subset_pc_range_and_its_complement(self):
        scores = np.load(os.path.join(self.train.getAnalysisDir(), "pc_scores.npy"))[:, 0]
        lo, hi = (float(f"{np.percentile(scores, q):.6g}") for q in (25, 60))   # as typed
        expected = set(self._starIds()[(scores >= lo) & (scores <= hi)].tolist())
        sizes = {}
        for invert in (False, True):
            prot = self.newProtocol(ProtCryoStarSubset, inputAnalysis=self.train, selectBy=1,
                                    pcIndex=1, pcLow=lo, pcHigh=hi, doInvert=invert)
            self.launchProtocol(prot)
            ids = {p.getObjId() for p in prot.Particles.iterItems()}
            if not invert:
                self.assertEqual(ids, expected)
            else:
                self.assertEqual(ids, set(self._starIds().tolist()) - expected)
            sizes[invert] = len(ids)
        self.assertEqual(sum(sizes.values()), N_PART)

    def test_viewer_pc_range_selects_what_the_subset_exports(self):
        """A PC range read off the viewer (its own selection function, on the engine's scores)
        selects exactly the particles 'particles subset' exports, for the training's analysis
        and for a re-analysis."""
        from cryostar_plugin.viewers.plots import latentTable, pcRangeParticleIds
        for prot in (self.train, self.analyze):
            folder = prot.getAnalysisDir()
            with open(os.path.join(folder, "manifest.json")) as f:
                scores = np.load(os.path.join(folder, json.load(f)["pca"]["scores"]))[:, 1]
            # typed as a user types them: a FloatParam keeps 15 significant digits (SQLite's
            # text of a REAL), so a percentile passed with all 17 moves by one ulp, and a
            # particle whose (float32) score is exactly that value falls out of the subset
            lo, hi = (float(f"{np.percentile(scores, q):.6g}") for q in (20, 70))
            table = latentTable(self.train.Particles, self.train._enginePath("particlesStar"),
                                folder)
            shown = pcRangeParticleIds(table, folder, 2, lo, hi)
            sub = self.newProtocol(ProtCryoStarSubset, inputAnalysis=prot, selectBy=1,
                                   pcIndex=2, pcLow=lo, pcHigh=hi)
            self.launchProtocol(sub)
            exported = sorted(p.getObjId() for p in sub.Particles.iterItems())
            self.assertGreater(len(exported), N_PART // 3)
            self.assertEqual(exported, shown.tolist())
            self.assertIn(f"PC2 scores from {lo:g} to {hi:g}", " ".join(sub.summary()))

    # ------------------------------------------------------------------ volumes
    def test_density_volumes_sampling_origin_and_z(self):
        vols = self.density.Volumes
        man = self.density.getRunManifest()
        self.assertSetSize(vols, 3 + 2 * 3)
        self.assertAlmostEqual(vols.getSamplingRate(), 6.0)        # 48 px × 2 Å → 16 px
        zByRow = dict(enumerate(self._engineZ()))
        for v in vols.iterItems():
            self.assertEqual(v.getDim(), (16, 16, 16))
            self.assertAlmostEqual(v.getSamplingRate(), 6.0)
            # the engine writes the volumes in the frame of the input map (origin at its corner)
            np.testing.assert_allclose(man["origin_A"], [0.0] * 3)
            np.testing.assert_allclose(v.getOrigin(force=True).getShifts(),
                                       self.map.getOrigin(force=True).getShifts(), atol=1e-6)
            row = getattr(v, PARTICLE_ROW).get()
            np.testing.assert_allclose(v.getZFlex(), zByRow[row], rtol=1e-4, atol=1e-5)
        kinds = [(getattr(v, CLUSTER).get(), getattr(v, PC).get()) for v in vols]
        self.assertEqual(sum(1 for c, _ in kinds if c >= 0), 3)
        self.assertEqual(sorted({p for _, p in kinds if p > 0}), [1, 2])

    def test_density_trained_on_the_flex_particles(self):
        z = np.load(self.density._enginePath("z"))
        ids = readStarImageIds(self.density._enginePath("particlesStar"))
        zById = {p.getObjId(): p.getZFlex() for p in self.train.Particles.iterItems()}
        np.testing.assert_allclose(z, [zById[int(i)] for i in ids], rtol=1e-6, atol=1e-7)


if __name__ == "__main__":
    unittest.main()
