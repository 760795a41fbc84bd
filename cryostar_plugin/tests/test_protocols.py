"""CryoSTAR protocols run end to end in a real project, with the real engine on the CPU.

``check inputs`` is fed the hardest frame case: a model docked against the map *with origin 0*
(model moved by +48 Å) linked to that map.  The plugin hands the engine the model file as it is
and the map with Scipion's origin; the engine finds the shift (-48 Å), the model centred and
fitting the map, and the back-projection from the converted poses matching the map.  A model
docked on the corner but linked to the centred map is refused with the engine's own line.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

from pwem.protocols import ProtImportParticles, ProtImportPdb, ProtImportVolumes
from pyworkflow.tests import BaseTest, setupTestProject

from cryostar_plugin.protocols import ProtCryoStarCheckInputs
from cryostar_plugin.protocols.protocol_base import engineErrorFrom
from cryostar_plugin.tests.shared_project import WATERS, shiftPdb

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DATA = os.path.join(REPO, "data")
STAR = os.path.join(DATA, "adk_sim48", "particles.star")
MAP = os.path.join(DATA, "adk_sim48", "ideal_map_frame048.mrc")
MODEL = os.path.join(DATA, "adk_models", "adk_ref_frame048.pdb")
HALF = 48.0


class TestCryoStarEngineErrorLine(unittest.TestCase):
    def test_last_error_line_is_picked(self):
        text = ("[ 10.0%] step 3\rcryostar-engine: error: first\nnoise\n"
                "cryostar-engine: error: model.pdb: no protein residues; give the model\n")
        self.assertEqual(engineErrorFrom(text), "model.pdb: no protein residues; give the model")
        self.assertIsNone(engineErrorFrom("Traceback (most recent call last):\n  boom\n"))


class TestCryoStarCheckInputs(BaseTest):
    @classmethod
    def setUpClass(cls):
        setupTestProject(cls)
        cls.tmp = tempfile.mkdtemp(prefix="cryostar-prot-")
        cls.shifted = shifted = shiftPdb(MODEL, os.path.join(cls.tmp, "adk_corner.pdb"),
                                         [HALF] * 3)
        waters = os.path.join(cls.tmp, "waters.pdb")
        with open(waters, "w") as f:
            f.write(WATERS)
        imp = cls.newProtocol(ProtImportParticles, importFrom=ProtImportParticles.IMPORT_FROM_RELION,
                              starFile=STAR, samplingRate=2.0, magnification=10000)
        cls.launchProtocol(imp)
        cls.parts = imp.outputParticles
        cls.volCorner = cls._importMap(origin=0.0)
        cls.volCentred = cls._importMap(origin=-HALF)
        cls.modelCorner = cls._importModel(shifted, cls.volCorner)
        cls.modelCornerOnCentred = cls._importModel(shifted, cls.volCentred)
        cls.waters = cls._importModel(waters, None)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    @classmethod
    def _importMap(cls, origin):
        prot = cls.newProtocol(ProtImportVolumes, filesPath=os.path.dirname(MAP),
                               filesPattern=os.path.basename(MAP), samplingRate=2.0,
                               setOrigCoord=True, x=-origin, y=-origin, z=-origin)
        cls.launchProtocol(prot)
        return prot.outputVolume

    @classmethod
    def _importModel(cls, path, volume):
        prot = cls.newProtocol(ProtImportPdb, inputPdbData=ProtImportPdb.IMPORT_FROM_FILES,
                               pdbFile=path, inputVolume=volume)
        cls.launchProtocol(prot)
        return prot.outputPdb

    def setUp(self):
        os.chdir(self.proj.getPath())

    def _newCheck(self, model, label):
        return self.newProtocol(ProtCryoStarCheckInputs, objLabel=label, inputParticles=self.parts,
                                inputAtomStruct=model, maxParticles=128)

    def test_corner_docked_model_runs_centred(self):
        prot = self._newCheck(self.modelCorner, "corner-docked model")
        self.assertEqual(prot.validate(), [])
        self.launchProtocol(prot)
        report = prot.getReport()
        model = report["model"]
        # the engine received the model as docked and the map at its Scipion origin (0): it
        # moved the model by -48 Å itself and found it centred
        self.assertEqual(model["shift_applied_A"], [-HALF] * 3)
        self.assertLess(max(abs(c) for c in model["centre_A"]), 1.0)
        self.assertEqual(report["map"]["origin_A"], [0.0] * 3)
        self.assertGreater(report["map"]["model_map_correlation"], 0.9)
        self.assertGreater(report["backprojection"]["correlation_lowpass"], 0.5)
        self.assertEqual(report["particles"]["count"], 384)
        vol = getattr(prot, "BackProjection")
        self.assertAlmostEqual(vol.getSamplingRate(), 2.0)
        self.assertEqual(vol.getDim(), (48, 48, 48))
        # registered where the engine put it: over the input map (origin at its corner)
        self.assertEqual(list(vol.getOrigin(force=True).getShifts()),
                         list(self.volCorner.getOrigin(force=True).getShifts()))
        self.assertTrue(any(line.startswith("Back-proj.") for line in prot.summary()))
        # the engine's doctor report on the same inputs ends the summary (issue 16)
        summary = prot.summary()
        start = summary.index("This machine (cryostar-engine doctor):")
        doctor = summary[start + 1:]
        self.assertTrue(doctor[0].startswith("cryostar-engine "), doctor)
        self.assertTrue(any(line.startswith("Plan        384 particles, 214 beads")
                            for line in doctor), doctor)
        self.assertTrue(any(line.startswith("Speed ") and "per epoch" in line
                            for line in doctor), doctor)

    def test_half_box_off_model_is_refused_with_the_engines_line(self):
        prot = self._newCheck(self.modelCornerOnCentred, "model half a box off")
        errors = prot.validate()
        model = os.path.join(self.proj.getPath(), self.modelCornerOnCentred.getFileName())
        done = subprocess.run([sys.executable, "-m", "cryostar_engine", "inspect-model",
                               "--model", model, "--map", MAP, "--box", "48",
                               "--apix", "2", "--json"], capture_output=True, text=True,
                              timeout=300)
        expected = json.loads(done.stdout)["frame"]["error"]
        self.assertIn("near the box corner", expected)
        self.assertIn(expected, errors)

    def test_engine_refusals_reach_the_form_and_the_run(self):
        # a model the engine cannot use: refused at validation, with the engine's own line
        errors = self._newCheck(self.waters, "waters only").validate()
        self.assertTrue(any("no protein or nucleic-acid residues" in e for e in errors), errors)
        # a bad value only the engine sees (an extra flag): the run fails with its line
        prot = self._newCheck(self.modelCorner, "bad extra flag")
        prot.extraParams.set("--max-particles 0")
        self.assertEqual(prot.validate(), [])
        self.proj.launchProtocol(prot, wait=True)
        self.assertTrue(prot.isFailed())
        msg = prot.getErrorMessage()
        self.assertIn("CryoSTAR engine:", msg)
        self.assertIn("--max-particles must be ≥ 1, got 0", msg)


if __name__ == "__main__":
    unittest.main()
