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
        self.assertEqual(self._new().validate(), [])             # untouched form: valid
        self.assertTrue(any("even" in e for e in self._new(boxSize=33).validate()))
        self.assertTrue(any("upsampling" in e for e in self._new(boxSize=64).validate()))
        self.assertTrue(any("Input particles" in e or "inputParticles" in e
                            for e in self.newProtocol(ProtCryoStarTrainAtom).validate()))

    def test_engine_arguments(self):
        # untouched form: inputs, run folder and Scipion's run settings only
        prot = self._new()
        self.proj.saveProtocol(prot)
        args = prot._getTrainArgs()
        self.assertEqual([a for a in args if a.startswith("--")],
                         ["--particles", "--model", "--out", "--threads"])
        flags = dict(zip(args[::2], args[1::2]))
        self.assertEqual(flags["--model"], os.path.abspath(self.model.getFileName()))  # as given
        for key in ("--particles", "--model", "--out"):
            self.assertTrue(os.path.isabs(flags[key]), flags[key])
        # what the user changes, and only that, becomes a flag
        prot = self._new(boxSize=32, numEpochs=3, zDim=4, lowPass=8.0, useGpu=False,
                         lrSchedule=1, beadCentre=1, doInvert=True, enTolerance=0.5)
        args = prot._getTrainArgs()
        flags = {a: args[i + 1] for i, a in enumerate(args[:-1])
                 if a.startswith("--") and not args[i + 1].startswith("--")}
        self.assertEqual((flags["--box"], flags["--epochs"], flags["--zdim"], flags["--low-pass"]),
                         ("32", "3", "4", "8"))
        self.assertEqual((flags["--device"], flags["--lr-schedule"], flags["--bead-centre"]),
                         ("cpu", "constant", "backbone"))
        self.assertIn("--invert-contrast", args)
        self.assertNotIn("--en-tolerance", args)         # set to the engine's default
        self.assertNotIn("--resume", args)
        self.assertIn("--resume", prot._getTrainArgs(resume=True))
        # every argument is one the engine accepts, with the value intended
        from cryostar_engine.cli import build_parser
        parsed = build_parser().parse_args(["train-atom"] + args)
        self.assertEqual((parsed.lr_schedule, parsed.box, parsed.bead_centre, parsed.zdim),
                         ("constant", 32, "backbone", 4))
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
