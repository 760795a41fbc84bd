"""Each ``_validate`` error of the CryoSTAR protocols, provoked by one bad input, next to the
same protocol with good inputs validating cleanly; plus a failed engine run that must fail the
protocol with the engine's one-line error, and the info methods of finished runs."""
import os
import tempfile
import unittest

import mrcfile
import numpy as np
from pwem.constants import ALIGN_NONE
from pwem.objects import SetOfParticles, Volume
from pwem.protocols import ProtImportPdb

from cryostar_plugin.protocols import (ProtCryoStarAnalyze, ProtCryoStarSubset,
                                       ProtCryoStarTrainAtom, ProtCryoStarTrainDensity)
from cryostar_plugin.protocols.protocol_subset import clusterOutputName, parseClusterList
from cryostar_plugin.tests.shared_project import MAP, TRAIN, WATERS, SharedChainTest

class TestCryoStarClusterList(unittest.TestCase):
    def test_parse(self):
        self.assertEqual(parseClusterList("2,5"), [2, 5])
        self.assertEqual(parseClusterList(" 0-3, 2 7"), [0, 1, 2, 3, 7])
        self.assertEqual(parseClusterList(""), [])
        for bad in ("a", "3-1", "-2", "1.5"):
            with self.assertRaises(ValueError):
                parseClusterList(bad)
        self.assertEqual(clusterOutputName(3, 10), "ParticlesCluster03")
        self.assertEqual(clusterOutputName(3, 120), "ParticlesCluster003")


class TestCryoStarValidation(SharedChainTest):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.tmp = tempfile.mkdtemp(prefix="cryostar-validate-", dir=cls.chain.tmp)

    # ------------------------------------------------------------------ helpers
    def _train(self, **kwargs):
        params = dict(TRAIN, inputParticles=self.parts, inputAtomStruct=self.model)
        params.update(kwargs)
        return self.newProtocol(ProtCryoStarTrainAtom, **params)

    def _particles(self, name, edit):
        """A few input particles in a new set, with ``edit(set)`` applied (in memory)."""
        out = SetOfParticles(filename=os.path.join(self.tmp, f"{name}.sqlite"))
        out.copyInfo(self.parts)
        for i, p in enumerate(self.parts.iterItems()):
            if i == 4:
                break
            out.append(p.clone())
        edit(out)
        return out

    def _volume(self, path, apix):
        vol = Volume(location=path)
        vol.setSamplingRate(apix)
        return vol

    def _errors(self, prot, needle):
        errors = prot.validate()
        self.assertTrue(any(needle in e for e in errors), f"'{needle}' not in {errors}")
        return errors

    # ------------------------------------------------------------------ train atom generator
    def test_good_inputs_validate(self):
        self.assertEqual(self._train().validate(), [])
        self.assertEqual(self._train(inputVolume=self.map).validate(), [])

    def test_no_alignment(self):
        bad = self._particles("noalign", lambda s: s.setAlignment(ALIGN_NONE))
        self._errors(self._train(inputParticles=bad), "no 3-D alignment")

    def test_no_ctf(self):
        bad = self._particles("noctf", lambda s: s.setHasCTF(False))
        self._errors(self._train(inputParticles=bad), "no CTF")

    def test_model_not_centred(self):
        # the model docked on the corner-origin map, but linked to nothing and given no map:
        # refused (the engine's inspect-model line) rather than trained half a box off
        prot = self.newProtocol(ProtImportPdb, inputPdbData=ProtImportPdb.IMPORT_FROM_FILES,
                                pdbFile=self.modelFile)
        self.launchProtocol(prot)
        self._errors(self._train(inputAtomStruct=prot.outputPdb), "near the box corner")

    def test_pixel_size_mismatch_with_map(self):
        self._errors(self._train(inputVolume=self._volume(MAP, 2.5)), "pixel size (2.5 Å)")

    def test_box_mismatch_with_map(self):
        path = os.path.join(self.tmp, "map64.mrc")
        with mrcfile.new(path, overwrite=True) as m:
            m.set_data(np.zeros((64, 64, 64), np.float32))
            m.voxel_size = 2.0
        self._errors(self._train(inputVolume=self._volume(path, 2.0)), "box (64 px)")

    def test_box_above_the_original(self):
        self._errors(self._train(boxSize=64), "no upsampling")
        self._errors(self._train(boxSize=25), "must be even")

    def test_low_pass_beyond_nyquist(self):
        self._errors(self._train(lowPass=8.0), "Nyquist")        # 24 px → 4 Å/px → 8 Å

    def test_batch_shared_by_several_gpus(self):
        from pyworkflow.protocol.constants import GPU_LIST
        prot = self._train(useGpu=True, batchSize=63)
        getattr(prot, GPU_LIST).set("0 1")
        self._errors(prot, "multiple of the number of GPUs (2)")
        prot.batchSize.set(64)
        self.assertEqual(prot.validate(), [])
        dens = self.newProtocol(ProtCryoStarTrainDensity, boxSize=16, useGpu=True, batchSize=10)
        dens.inputParticles.set(self.train)
        dens.inputParticles.setExtended("Particles")
        getattr(dens, GPU_LIST).set("0,1,2")
        self._errors(dens, "multiple of the number of GPUs (3)")

    def test_missing_inputs(self):
        errors = self.newProtocol(ProtCryoStarTrainAtom).validate()
        self.assertTrue(any("Input particles" in e for e in errors), errors)

    def test_continue_validation(self):
        prot = self.newProtocol(ProtCryoStarTrainAtom, doContinue=True, continueRun=self.train,
                                numEpochs=2)
        self._errors(prot, "at least the previous run's")
        prot = self.newProtocol(ProtCryoStarTrainAtom, doContinue=True, continueRun=self.train,
                                numEpochs=5)
        self.assertEqual(prot.validate(), [])
        prot.numEpochs.set(None)                      # empty: the previous run's length
        self.assertEqual(prot.validate(), [])
        prot.numEpochs.set(0)
        self._errors(prot, "must be positive")
        self.assertEqual(prot.getInputParticles().getObjId(), self.parts.getObjId())
        self._errors(self.newProtocol(ProtCryoStarTrainAtom, doContinue=True),
                     "Choose the previous training run")

    # ------------------------------------------------------------------ analyze, subset, density
    def test_analyze_validation(self):
        ok = self.newProtocol(ProtCryoStarAnalyze, inputTraining=self.train, numClusters=5)
        self.assertEqual(ok.validate(), [])
        self._errors(self.newProtocol(ProtCryoStarAnalyze, inputTraining=self.train,
                                      numClusters=500), "exceed the number of particles")
        unfinished = self._train()
        self.proj.saveProtocol(unfinished)
        self._errors(self.newProtocol(ProtCryoStarAnalyze, inputTraining=unfinished),
                     "has not finished")
        self.assertTrue(any("Only 3 PCs" in w for w in self.newProtocol(
            ProtCryoStarAnalyze, inputTraining=self.train, numPcs=5).warnings()))

    def test_subset_validation(self):
        def sub(**kw):
            return self.newProtocol(ProtCryoStarSubset, inputAnalysis=self.analyze, **kw)
        self.assertEqual(sub(clusters="0,2").validate(), [])
        self._errors(sub(clusters="x"), "not a state number")
        self._errors(sub(clusters="1,4"), "states 0-3 only")
        self._errors(sub(clusters=""), "Give the states")
        self._errors(sub(doPerCluster=True, doInvert=True), "cannot be combined")
        self._errors(sub(selectBy=1, pcLow=1.0, pcHigh=0.0), "range is empty")
        self._errors(sub(selectBy=1, pcIndex=4), "3 PCs only")

    def test_density_validation(self):
        def dens(**kw):
            prot = self.newProtocol(ProtCryoStarTrainDensity, **kw)
            prot.inputParticles.set(self.train)
            prot.inputParticles.setExtended("Particles")
            return prot
        self.assertEqual(dens(boxSize=16).validate(), [])
        self._errors(dens(boxSize=64), "no upsampling")
        plain = self.newProtocol(ProtCryoStarTrainDensity, boxSize=16,
                                 inputParticles=self.parts)   # plain particles, no z
        self._errors(plain, "no latent vectors")

    # ------------------------------------------------------------------ failures and info
    def test_engine_error_fails_the_protocol_with_its_line(self):
        waters = os.path.join(self.tmp, "waters.pdb")
        with open(waters, "w") as f:
            f.write(WATERS)
        imp = self.newProtocol(ProtImportPdb, inputPdbData=ProtImportPdb.IMPORT_FROM_FILES,
                               pdbFile=waters)
        self.launchProtocol(imp)
        # the engine reads the model at validation (inspect-model) and its line is the error
        self._errors(self._train(inputAtomStruct=imp.outputPdb),
                     "no protein or nucleic-acid residues")
        # a value only the engine checks (an extra flag) fails the run with the engine's line
        prot = self._train(doCheckInputs=False, extraParams="--en-keep-ratio 1.5")
        self.assertEqual(prot.validate(), [])
        self.proj.launchProtocol(prot, wait=True)
        self.assertTrue(prot.isFailed())
        self.assertIn("CryoSTAR engine: ", prot.getErrorMessage())
        self.assertIn("--en-keep-ratio must", prot.getErrorMessage())
        log = ""
        for path in prot.getLogPaths():
            if os.path.exists(path):
                with open(path, errors="replace") as f:
                    log += f.read()
        self.assertIn("cryostar-engine: error:", log)
        self.assertNotIn("Traceback (most recent call last)", open(prot._getLogsPath(
            "engine.stderr")).read())

    def test_form_ranges_are_the_engines(self):
        self._errors(self._train(zDim=0), "Latent dimension must be at least 1")
        self._errors(self._train(enKeepRatio=1.5), "Elastic network keep ratio must be between 0 "
                                                   "and 1 (0 excluded)")

    def test_info_methods(self):
        for prot in (self.train, self.analyze, self.density, self.subset):
            self.assertTrue(prot.summary() and prot.methods(), prot.getClassName())
            self.assertIn("Li2024cryostar", prot._citations())
        self.assertTrue(any("384 particles" in s for s in self.train.summary()))
        methods = " ".join(self.train.methods())
        self.assertIn("(tolerance 0.5 Å)", methods)
        # --bead-centre auto: atom groups, 0.6 px of the 24-px box at 4 Å/px wide
        self.assertIn("rendered as one Gaussian per group (σ 2.4 Å)", methods)
        self.assertIn("low-pass at 10 Å", methods)
        self.assertNotIn("scipion-em-cryostar):", methods)           # no garbled run-on
        self.assertTrue(self._train(useGpu=False).warnings())
        # the subset of every state, one set each, says so in words
        self.assertIn("every k-means state, one set each", " ".join(self.subset.methods()))
        self.assertNotIn("all)", " ".join(self.subset.methods() + self.subset.summary()))
        names = {"Particles", "ClusterCentres", "Trajectories"}
        self.assertEqual(set(ProtCryoStarTrainAtom._possibleOutputs), names)
        self.assertEqual(set(ProtCryoStarTrainDensity._possibleOutputs), {"Volumes"})


if __name__ == "__main__":
    unittest.main()
