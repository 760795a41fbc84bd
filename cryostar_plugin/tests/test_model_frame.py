"""Reference model → engine frame, with maps and models imported through real protocols.

Bundled data: ``adk_ref_frame048.pdb`` is docked into ``ideal_map_frame048.mrc`` (48³, 2 Å) whose
voxel 24 sits at PDB 0 Å, i.e. the map shown with origin -48 Å (Scipion's default) overlays the
model.  A copy moved by +D/2·apix = +48 Å mimics a model docked on the raw MRC (origin 0).
"""
import os
import shutil
import tempfile
import unittest

import numpy as np
from pwem.protocols import ProtImportPdb, ProtImportVolumes
from pyworkflow.tests import BaseTest, setupTestProject

from cryostar_engine.io import read_beads, read_map
from cryostar_plugin.convert import writeModelForEngine
from cryostar_plugin.model_frame import (centre_model_for_engine, read_atom_coords,
                                         write_shifted_model)

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DATA = os.path.join(REPO, "data")
MAP = os.path.join(DATA, "adk_sim48", "ideal_map_frame048.mrc")
MODEL = os.path.join(DATA, "adk_models", "adk_ref_frame048.pdb")
BOX, APIX = 48, 2.0
HALF = BOX * APIX / 2  # 48 Å


def densityCentre(path):
    """Centre of mass (Å, xyz) of a map's positive density in the engine frame (voxel D//2 = 0)."""
    m = read_map(path)
    rho = np.clip(np.asarray(m.data, dtype=np.float64), 0, None)   # [z, y, x]
    idx = (np.arange(rho.shape[0]) - rho.shape[0] // 2) * m.voxel_size_A
    z, y, x = np.meshgrid(idx, idx, idx, indexing="ij")
    return np.array([(rho * c).sum() / rho.sum() for c in (x, y, z)])


class TestCryoStarModelFrame(BaseTest):
    @classmethod
    def setUpClass(cls):
        setupTestProject(cls)
        cls.tmp = tempfile.mkdtemp(prefix="cryostar-frame-")
        cls.shifted = str(write_shifted_model(MODEL, os.path.join(cls.tmp, "adk_uncentred.pdb"),
                                              [HALF, HALF, HALF]))
        cls.volCentred = cls._importMap("map origin -48", origin=-HALF)
        cls.volCorner = cls._importMap("map origin 0", origin=0.0)
        cls.refOnCentred = cls._importModel("ref on centred map", MODEL, cls.volCentred)
        cls.shiftedOnCentred = cls._importModel("uncentred on centred map", cls.shifted,
                                                cls.volCentred)
        cls.shiftedOnCorner = cls._importModel("uncentred on corner map", cls.shifted, cls.volCorner)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    @classmethod
    def _importMap(cls, label, origin):
        # the import form asks for the map-centre offset; Scipion stores origin = -offset
        prot = cls.newProtocol(ProtImportVolumes, objLabel=label, filesPath=os.path.dirname(MAP),
                               filesPattern=os.path.basename(MAP), samplingRate=APIX,
                               setOrigCoord=True, x=-origin, y=-origin, z=-origin)
        cls.launchProtocol(prot)
        return prot.outputVolume

    @classmethod
    def _importModel(cls, label, path, volume):
        prot = cls.newProtocol(ProtImportPdb, objLabel=label,
                               inputPdbData=ProtImportPdb.IMPORT_FROM_FILES, pdbFile=path,
                               inputVolume=volume)
        cls.launchProtocol(prot)
        return prot.outputPdb

    def setUp(self):
        os.chdir(self.proj.getPath())  # Scipion file names are relative to the project

    def _out(self, name):
        return os.path.join(self.tmp, name)

    def test_scipion_origins(self):
        np.testing.assert_allclose(self.volCentred.getOrigin(force=True).getShifts(), [-HALF] * 3)
        np.testing.assert_allclose(self.volCorner.getOrigin(force=True).getShifts(), [0.0] * 3)
        self.assertIsNotNone(self.refOnCentred.getVolume())

    def test_docked_model_is_already_centred(self):
        report = writeModelForEngine(self.refOnCentred, self._out("ref.pdb"), BOX, APIX)
        self.assertEqual(report.frame, "map")
        np.testing.assert_allclose(report.shift_A, [0, 0, 0], atol=1e-9)
        self.assertFalse(report.looks_uncentred)
        self.assertEqual(report.errors(), [])
        self.assertEqual(report.outside_fraction, 0.0)
        # the engine reads the same beads from the copy
        np.testing.assert_allclose(read_beads(report.output_path).coords_A,
                                   read_beads(MODEL).coords_A, atol=1e-3)

    def test_engine_frame_agrees_with_the_map(self):
        # The box-centred model and the map's density (voxel D//2 at 0 Å) coincide; the
        # half-box-shifted model is ~83 Å away.
        report = writeModelForEngine(self.refOnCentred, self._out("ref2.pdb"), BOX, APIX)
        beads = read_beads(report.output_path)
        model_centre = (beads.coords_A * beads.amplitudes[:, None]).sum(0) / beads.amplitudes.sum()
        self.assertLess(np.linalg.norm(model_centre - densityCentre(MAP)), 1.0)
        self.assertGreater(np.linalg.norm(model_centre + HALF - densityCentre(MAP)), 80.0)

    def test_uncentred_model_is_flagged(self):
        report = writeModelForEngine(self.shiftedOnCentred, self._out("bad.pdb"), BOX, APIX)
        self.assertTrue(report.looks_uncentred)
        errors = report.errors()
        self.assertEqual(len(errors), 1)
        self.assertIn("half a box", errors[0])
        np.testing.assert_allclose(report.centre_out_A,
                                   read_atom_coords(MODEL).mean(0) + HALF, atol=1e-3)

    def test_corner_origin_map_recentres_the_model(self):
        report = writeModelForEngine(self.shiftedOnCorner, self._out("fixed.pdb"), BOX, APIX)
        np.testing.assert_allclose(report.shift_A, [-HALF] * 3)
        self.assertFalse(report.looks_uncentred)
        self.assertEqual(report.errors(), [])
        np.testing.assert_allclose(read_atom_coords(report.output_path), read_atom_coords(MODEL),
                                   atol=2e-3)

    def test_explicit_volume_wins_over_linked(self):
        report = writeModelForEngine(self.shiftedOnCentred, self._out("fixed2.pdb"), BOX, APIX,
                                     volume=self.volCorner)
        np.testing.assert_allclose(report.shift_A, [-HALF] * 3)
        self.assertEqual(report.errors(), [])

    def test_without_map(self):
        ok = centre_model_for_engine(MODEL, self._out("nomap.pdb"), BOX, APIX)
        self.assertEqual(ok.frame, "as-is")
        self.assertFalse(ok.looks_uncentred)
        bad = centre_model_for_engine(self.shifted, self._out("nomap_bad.cif"), BOX, APIX)
        self.assertTrue(bad.looks_uncentred)
        # mmCIF output is readable by the engine and keeps every bead
        self.assertEqual(len(read_beads(bad.output_path)), len(read_beads(MODEL)))

    def test_model_outside_a_small_box(self):
        report = centre_model_for_engine(MODEL, self._out("small.pdb"), 16, APIX)  # 32 Å box
        self.assertFalse(report.looks_uncentred)
        self.assertGreater(report.outside_fraction, 0.1)
        self.assertIn("outside", report.errors()[0])


if __name__ == "__main__":
    unittest.main()
