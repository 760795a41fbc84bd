"""``train atom generator``: form, validation, engine command line, z → particle mapping (the
end-to-end run is in :mod:`.test_workflow`, on the shared project)."""
import os
import unittest

import numpy as np

from cryostar_engine.io import read_star_tables
from cryostar_plugin.convert import writeParticlesStar
from cryostar_plugin.protocols import ProtCryoStarTrainAtom
from cryostar_plugin.protocols.protocol_train_atom import zRowsByObjId
from cryostar_plugin.tests.shared_project import SharedChainTest


class TestCryoStarTrainAtom(SharedChainTest):
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
        self.assertIn("--resume", prot._getTrainArgs(resume=True))
        full = self._new(doDownsample=False)._getTrainArgs()
        self.assertEqual(full[full.index("--box") + 1], "48")   # never the engine's default
        self.assertNotIn("--invert-contrast", args)
        self.assertNotIn("--epochs", self._new()._getTrainArgs())   # empty: the engine's default
        self.assertIn("--invert-contrast", self._new(doInvert=True)._getTrainArgs())
        self.assertEqual(flags["--threads"], "4")
        self.assertEqual(flags["--lr-schedule"], "cosine")
        self.assertIn("constant", self._new(lrSchedule=1)._getTrainArgs())
        self.assertEqual(flags["--bead-centre"], "residue")
        self.assertEqual(flags["--en-tolerance"], "0.5")
        self.assertIn("backbone", self._new(beadCentre=1)._getTrainArgs())
        # every argument the protocol passes is one the engine accepts, with the value intended
        from cryostar_engine.cli import build_parser
        parsed = build_parser().parse_args(["train-atom"] + args)
        self.assertEqual((parsed.lr_schedule, parsed.en_keep_ratio, parsed.box, parsed.bead_centre),
                         ("cosine", 0.9, 32, "residue"))
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


if __name__ == "__main__":
    unittest.main()
