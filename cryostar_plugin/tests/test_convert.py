"""Scipion → engine files, checked against the original RELION star, in real pyworkflow projects.

The bundled 384-particle AdK stack (``data/adk_sim48``) is imported with ``ProtImportParticles``
(RELION), written back with :func:`cryostar_plugin.convert.writeParticlesStar` (the RELION
plugin's writer) and read by the engine's own reader.  Poses are compared as rotation matrices
(Euler triplets may legitimately differ), shifts in Å and every CTF/optics value; each check
comes with a negative control showing that a transposed rotation, a negated shift or an
unscaled shift would fail it.
"""
import os
import shutil
import tempfile
import unittest

import mrcfile
import numpy as np
import torch
from pwem.constants import ALIGN_NONE
from pwem.objects import SetOfParticles
from pwem.protocols import ProtImportParticles
from pyworkflow.tests import BaseTest, setupTestProject

from cryostar_engine.geometry import euler_to_matrix
from cryostar_engine.io import StackCache, read_particles
from cryostar_engine.physics.fourier import fourier_crop
from cryostar_plugin.convert import writeMapAsShown, writeParticlesStar

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SIM = os.path.join(REPO, "data", "adk_sim48")
STAR = os.path.join(SIM, "particles.star")

ROT_TOL = 1e-4      # max |ΔR| entry
SHIFT_TOL_A = 1e-4  # Å


def importAdkParticles(testClass):
    """Import the bundled AdK star into the test project; return the finished protocol."""
    prot = testClass.newProtocol(
        ProtImportParticles, objLabel="adk sim48", importFrom=ProtImportParticles.IMPORT_FROM_RELION,
        starFile=STAR, samplingRate=2.0, magnification=10000, voltage=300,
        sphericalAberration=2.7, amplitudeContrast=0.1)
    testClass.launchProtocol(prot)
    return prot


def rotationError(meta_a, meta_b):
    """Largest entry of |R_a - R_b| over all particles (RELION A matrices)."""
    return float(np.abs(euler_to_matrix(meta_a.euler_deg) - euler_to_matrix(meta_b.euler_deg)).max())


class TestCryoStarParticlesToEngine(BaseTest):
    @classmethod
    def setUpClass(cls):
        setupTestProject(cls)
        cls.prot = importAdkParticles(cls)
        cls.parts = cls.prot.outputParticles
        cls.orig = read_particles(STAR)
        cls.outDir = os.path.abspath(cls.proj.getPath("engine_input"))
        cls.star = writeParticlesStar(cls.parts, os.path.join(cls.outDir, "particles.star"),
                                      cls.outDir)
        cls.conv = read_particles(cls.star)

    def setUp(self):
        os.chdir(self.proj.getPath())  # Scipion file names are relative to the project

    def test_map_written_as_scipion_shows_it(self):
        """The map goes to the engine with Scipion's sampling and origin in its header, the
        data untouched: a corner origin (0) and Scipion's default (-D/2·apix) both survive."""
        import mrcfile
        from pwem.protocols import ProtImportVolumes

        for label, extra, origin in (("corner", dict(setOrigCoord=True, x=0.0, y=0.0, z=0.0),
                                      0.0), ("default", {}, -48.0)):
            imp = self.newProtocol(ProtImportVolumes, objLabel=label, filesPath=SIM,
                                   filesPattern="ideal_map_frame048.mrc", samplingRate=2.0,
                                   **extra)
            self.launchProtocol(imp)
            out = writeMapAsShown(imp.outputVolume, os.path.join(self.outDir, f"{label}.mrc"))
            with mrcfile.open(out) as m, mrcfile.open(os.path.join(
                    SIM, "ideal_map_frame048.mrc")) as ref:
                self.assertEqual([float(m.header.origin[a]) for a in "xyz"], [origin] * 3)
                self.assertAlmostEqual(float(m.voxel_size.x), 2.0)
                np.testing.assert_array_equal(m.data, ref.data)

    def test_import_kept_poses(self):
        self.assertEqual(self.parts.getSize(), 384)
        self.assertTrue(self.parts.hasAlignmentProj())
        self.assertTrue(self.parts.hasCTF())
        self.assertAlmostEqual(self.parts.getSamplingRate(), 2.0)

    def test_star_names_absolute_linked_stacks(self):
        paths = {str(p) for p in self.conv.image_paths}
        self.assertEqual(len(paths), 1)
        path = paths.pop()
        self.assertTrue(path.startswith(os.path.join(self.outDir, "input") + os.sep), path)
        np.testing.assert_array_equal(self.conv.image_indices, self.orig.image_indices)
        # the engine reads exactly the original pixels through the link
        rows = np.arange(0, 384, 37)
        ours = StackCache().read([self.conv.image_paths[r] for r in rows], self.conv.image_indices[rows])
        ref = StackCache().read([self.orig.image_paths[r] for r in rows], self.orig.image_indices[rows])
        np.testing.assert_array_equal(ours, ref)

    def test_rotations_match(self):
        self.assertEqual(len(self.conv), len(self.orig))
        self.assertLess(rotationError(self.conv, self.orig), ROT_TOL)
        # negative control: the transposed (inverse) rotation is far off
        transposed = self.orig.subset(slice(None))
        rt = np.swapaxes(euler_to_matrix(self.orig.euler_deg), -1, -2)
        from cryostar_engine.geometry import matrix_to_euler
        transposed.euler_deg = matrix_to_euler(rt)
        self.assertGreater(rotationError(self.conv, transposed), 0.5)

    def test_shifts_match_in_angstrom(self):
        err = np.abs(self.conv.shifts_A - self.orig.shifts_A).max()
        self.assertLess(err, SHIFT_TOL_A)
        self.assertGreater(np.abs(self.orig.shifts_A).max(), 1.0)  # the data do have shifts
        self.assertGreater(np.abs(self.conv.shifts_A + self.orig.shifts_A).max(), 1.0)  # negated

    def test_ctf_and_optics_match(self):
        for name in ("defocus_u_A", "defocus_v_A", "defocus_angle_deg", "phase_shift_deg",
                     "voltage_kv", "cs_mm", "amplitude_contrast"):
            np.testing.assert_allclose(getattr(self.conv, name), getattr(self.orig, name),
                                       atol=1e-3, err_msg=name)
        self.assertAlmostEqual(self.conv.apix, 2.0)
        self.assertEqual(self.conv.box, 48)
        # negative control: defocus U/V swapped with another particle's would not pass
        self.assertGreater(np.abs(self.conv.defocus_u_A - np.roll(self.orig.defocus_u_A, 1)).max(), 100)

    def test_no_alignment_is_refused(self):
        sqlite = os.path.abspath(self.proj.getPath("noalign.sqlite"))
        unaligned = SetOfParticles(filename=sqlite)
        unaligned.copyInfo(self.parts)
        unaligned.setAlignment(ALIGN_NONE)
        with self.assertRaises(ValueError):
            writeParticlesStar(unaligned, self.proj.getPath("x.star"), self.proj.getPath("x"))


class TestCryoStarDownsampledToEngine(BaseTest):
    """A 2× Fourier-cropped copy of the set (24 px, 4 Å/px) built the way cryoDRGN's preprocess
    does (new stack, ``scaleShifts``, new sampling): pwem has no particle-downsampling protocol
    of its own (that needs xmipp or RELION binaries)."""

    @classmethod
    def setUpClass(cls):
        setupTestProject(cls)
        cls.prot = importAdkParticles(cls)
        parts = cls.prot.outputParticles
        cls.orig = read_particles(STAR)
        cls.tmp = tempfile.mkdtemp(prefix="cryostar-ds-")
        stack = os.path.join(cls.tmp, "particles_24.mrcs")
        images = StackCache().read(cls.orig.image_paths, cls.orig.image_indices)
        small = fourier_crop(torch.from_numpy(images), 24).numpy().astype(np.float32)
        with mrcfile.new(stack) as m:
            m.set_data(small)
            m.voxel_size = 4.0
        cls.small = SetOfParticles(filename=os.path.join(cls.tmp, "particles_24.sqlite"))
        cls.small.copyInfo(parts)
        cls.small.setSamplingRate(4.0)
        for i, p in enumerate(parts.iterItems(orderBy="id"), start=1):
            q = p.clone()
            q.setLocation(i, stack)
            q.setSamplingRate(4.0)
            q.getTransform().scaleShifts(0.5)  # pixel shifts follow the new pixel size
            cls.small.append(q)
        cls.small.write()
        out = os.path.join(cls.tmp, "engine")
        cls.conv = read_particles(writeParticlesStar(cls.small, os.path.join(out, "p.star"), out))

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_downsampled_geometry(self):
        self.assertEqual(self.conv.box, 24)
        self.assertAlmostEqual(self.conv.apix, 4.0)
        self.assertEqual(len(self.conv), 384)
        self.assertLess(rotationError(self.conv, self.orig), ROT_TOL)
        # shifts in Å do not change with the pixel size ...
        self.assertLess(np.abs(self.conv.shifts_A - self.orig.shifts_A).max(), SHIFT_TOL_A)
        # ... and forgetting scaleShifts (px shifts kept at 2 Å/px) would double them
        self.assertGreater(np.abs(2 * self.conv.shifts_A - self.orig.shifts_A).max(), 1.0)
        np.testing.assert_allclose(self.conv.defocus_u_A, self.orig.defocus_u_A, atol=1e-3)


if __name__ == "__main__":
    unittest.main()
