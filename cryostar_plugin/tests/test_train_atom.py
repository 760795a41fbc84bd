"""``train atom generator``: form, validation, engine command line, z → particle mapping, and
an end-to-end CPU run that starts automatically once the engine registers ``train-atom``."""
import os
import unittest

import numpy as np
from pwem.protocols import ProtImportParticles, ProtImportPdb
from pyworkflow.tests import BaseTest, setupTestProject

from cryostar_engine.cli import COMMANDS
from cryostar_engine.io import read_star_tables
from cryostar_plugin.convert import writeParticlesStar
from cryostar_plugin.protocols import ProtCryoStarTrainAtom
from cryostar_plugin.protocols.protocol_train_atom import zRowsByObjId

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
STAR = os.path.join(REPO, "data", "adk_sim48", "particles.star")
MODEL = os.path.join(REPO, "data", "adk_models", "adk_ref_frame048.pdb")


class TestCryoStarTrainAtom(BaseTest):
    @classmethod
    def setUpClass(cls):
        setupTestProject(cls)
        imp = cls.newProtocol(ProtImportParticles, importFrom=ProtImportParticles.IMPORT_FROM_RELION,
                              starFile=STAR, samplingRate=2.0, magnification=10000)
        cls.launchProtocol(imp)
        cls.parts = imp.outputParticles
        pdb = cls.newProtocol(ProtImportPdb, inputPdbData=ProtImportPdb.IMPORT_FROM_FILES,
                              pdbFile=MODEL)
        cls.launchProtocol(pdb)
        cls.model = pdb.outputPdb

    def setUp(self):
        os.chdir(self.proj.getPath())

    def _new(self, **kwargs):
        return self.newProtocol(ProtCryoStarTrainAtom, inputParticles=self.parts,
                                inputAtomStruct=self.model, **kwargs)

    def test_validation(self):
        self.assertEqual(self._new(boxSize=32).validate(), [])
        self.assertTrue(any("even" in e for e in self._new(boxSize=33).validate()))
        self.assertTrue(any("upsampling" in e for e in self._new(boxSize=64).validate()))
        self.assertTrue(any("Input particles" in e or "inputParticles" in e
                            for e in self.newProtocol(ProtCryoStarTrainAtom).validate()))

    def test_engine_arguments(self):
        prot = self._new(boxSize=32, numEpochs=3, zDim=4, lowPass=8.0, useGpu=False)
        self.proj.saveProtocol(prot)
        prot._createFilenameTemplates()
        args = prot._getTrainArgs()
        flags = dict(zip(args[::2], args[1::2]))
        self.assertEqual(flags["--box"], "32")
        self.assertEqual(flags["--epochs"], "3.0")
        self.assertEqual(flags["--zdim"], "4")
        self.assertEqual(flags["--low-pass"], "8.0")
        self.assertEqual(flags["--device"], "cpu")
        for key in ("--particles", "--model", "--out"):
            self.assertTrue(os.path.isabs(flags[key]), flags[key])
        self.assertNotIn("--resume", args)
        self.assertEqual(prot._getTrainArgs(resume=True)[-1], "--resume")
        full = self._new(doDownsample=False)._getTrainArgs()
        self.assertEqual(full[full.index("--box") + 1], "48")   # never the engine's default
        self.assertNotIn("--invert-contrast", args)
        self.assertIn("--invert-contrast", self._new(doInvert=True)._getTrainArgs())
        self.assertNotIn("--map", args)   # the model was imported without a map
        self.assertEqual(flags["--threads"], "4")
        self.assertEqual(prot._getEngineGpus(), None)
        self.assertEqual(self._new(gpuList="0 1")._getEngineGpus(), [0, 1])

    def test_z_rows_follow_image_ids(self):
        out = os.path.abspath(self.proj.getPath("zmap"))
        star = writeParticlesStar(self.parts, os.path.join(out, "p.star"), out)
        ids = read_star_tables(star)[1]["rlnImageId"].to_numpy()
        z = np.stack([ids * 1.0, -ids * 1.0], 1)      # row i carries its own particle id
        zById = zRowsByObjId(star, z)
        for p in self.parts.iterItems(orderBy="id"):
            np.testing.assert_array_equal(zById[p.getObjId()], [p.getObjId(), -p.getObjId()])
        with self.assertRaises(ValueError):
            zRowsByObjId(star, z[:-1])

    @unittest.skipUnless("train-atom" in COMMANDS, "engine has no train-atom command yet")
    def test_tiny_cpu_run(self):
        prot = self._new(boxSize=24, numEpochs=1, zDim=2, batchSize=64, useGpu=False,
                         numberOfThreads=1)
        self.launchProtocol(prot)
        out = prot.Particles
        self.assertEqual(out.getSize(), 384)
        self.assertEqual(out.getFlexInfo().getProgName(), "CryoSTAR")
        z = np.array([p.getZFlex() for p in out.iterItems()])
        self.assertEqual(z.shape, (384, 2))
        self.assertTrue(np.isfinite(z).all())
        self.assertGreater(z.std(0).min(), 0.0)


if __name__ == "__main__":
    unittest.main()
