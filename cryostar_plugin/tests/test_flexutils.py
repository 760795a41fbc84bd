"""FlexHub neighbours: flexutils' own protocols run on our ``train atom generator`` output.

Our ``Particles`` output is a FlexHub ``SetOfParticlesFlex`` (progName ``CryoSTAR``, one z
vector of ``zDim`` floats per particle, see ``docs/flexhub.md``).  Two of flexutils' Scipion
protocols need none of flexutils' conda environments or Xmipp binaries, and run here in-process
on a real, tiny training run (import particles + model → train atom generator, 3 epochs):

* ``ProtFlexFilterPCA`` ("filter PCA"): PCA of ``getZFlex()`` over the set, keeps the chosen
  components and writes the back-projected z as a new ``SetOfParticlesFlex``.  Keeping every
  component must give our z back; keeping PC 1 must give the rank-1 reconstruction of our z
  (computed here with a NumPy SVD, independently of flexutils' scikit-learn).
* ``ProtFlexAssociateSpace`` ("associate flex space to particles"): carries our z and FlexInfo
  to another particle set.
* ``ProtFlexDimRedSpace`` ("dimred space"): only its ``_validate`` runs here (it reads the z
  dimension of our first particle); its step calls ``conda activate flexutils``.

flexutils is not a dependency of this plugin.  The tests skip, saying why, unless
``scipion-em-flexutils`` (which itself imports ``scipion-app`` and ``scipion-em-xmipp``) is
importable::

    pip install scipion-em-flexutils scipion-em-xmipp   # ~20 s, no conda, no binaries
    pytest -q cryostar_plugin/tests/test_flexutils.py
"""
import os
import unittest

import numpy as np

from pwem.objects import SetOfParticlesFlex
from pwem.protocols import ProtImportParticles, ProtImportPdb
from pyworkflow.tests import BaseTest, setupTestProject

from cryostar_plugin.constants import CHECKPOINT, CONFIG, CRYOSTAR, RUN_DIR
from cryostar_plugin.protocols import ProtCryoStarTrainAtom
from cryostar_plugin.tests.shared_project import MODEL, N_PART, STAR, TRAIN

try:
    from flexutils.protocols import (ProtFlexAssociateSpace, ProtFlexDimRedSpace,
                                     ProtFlexFilterPCA)
    FLEXUTILS_ERROR = None
except ImportError as exc:            # flexutils, or scipion-app / xmipp3 that it imports
    FLEXUTILS_ERROR = (f"scipion-em-flexutils is not importable ({exc}); "
                       "install it with: pip install scipion-em-flexutils scipion-em-xmipp")

ZDIM = TRAIN["zDim"]


def zRows(parts):
    """``(N, zdim)`` z of a particle set in its iteration (id) order."""
    return np.array([p.getZFlex() for p in parts.iterItems(orderBy="id")], dtype=float)


def rankOneZ(z):
    """Rank-1 PCA reconstruction of ``z`` ``(N, d)``: mean + projection on the first PC."""
    mean = z.mean(axis=0)
    _, _, vt = np.linalg.svd(z - mean, full_matrices=False)
    pc1 = vt[0]
    return mean + np.outer((z - mean) @ pc1, pc1)


@unittest.skipIf(FLEXUTILS_ERROR is not None, FLEXUTILS_ERROR or "")
class TestFlexutilsOnCryoStarParticles(BaseTest):
    """flexutils protocols fed with ``ProtCryoStarTrainAtom.Particles``."""

    @classmethod
    def setUpClass(cls):
        setupTestProject(cls)
        imp = cls.newProtocol(ProtImportParticles,
                              importFrom=ProtImportParticles.IMPORT_FROM_RELION,
                              starFile=STAR, samplingRate=2.0, magnification=10000)
        cls.launchProtocol(imp)
        cls.parts = imp.outputParticles
        pdb = cls.newProtocol(ProtImportPdb, inputPdbData=ProtImportPdb.IMPORT_FROM_FILES,
                              pdbFile=MODEL)
        cls.launchProtocol(pdb)
        cls.train = cls.newProtocol(ProtCryoStarTrainAtom, inputParticles=cls.parts,
                                    inputAtomStruct=pdb.outputPdb, **TRAIN)
        cls.launchProtocol(cls.train)
        cls.flex = cls.train.Particles
        cls.z = zRows(cls.flex)

    def setUp(self):
        os.chdir(self.proj.getPath())

    def test_our_output_is_what_flexutils_expects(self):
        self.assertIsInstance(self.flex, SetOfParticlesFlex)
        self.assertEqual(self.flex.getFlexInfo().getProgName(), CRYOSTAR)
        self.assertEqual(self.z.shape, (N_PART, ZDIM))
        self.assertGreater(self.z.std(axis=0).min(), 0.0)          # a real, varying latent
        info = self.flex.getFlexInfo()
        self.assertEqual(int(info.getAttr("_cryostarZDim")), ZDIM)
        for attr in (RUN_DIR, CHECKPOINT, CONFIG):
            self.assertTrue(os.path.exists(str(info.getAttr(attr))), attr)

    def _filterPca(self, keep):
        prot = self.newProtocol(ProtFlexFilterPCA, keepPCA=keep)
        prot.particles.set(self.train)                     # as the GUI links an output
        prot.particles.setExtended("Particles")
        return prot

    def test_filter_pca_keeping_every_component_gives_our_z_back(self):
        prot = self._filterPca(",".join(str(i + 1) for i in range(ZDIM)))
        self.assertEqual(prot.validate(), [])
        self.launchProtocol(prot)
        out = prot.outputParticles
        self.assertEqual(out.getSize(), N_PART)
        self.assertEqual(out.getFlexInfo().getProgName(), CRYOSTAR)
        np.testing.assert_allclose(zRows(out), self.z, atol=1e-4)
        ours = [p.getFileName() + ":%d" % p.getIndex() for p in self.flex.iterItems(orderBy="id")]
        theirs = [p.getFileName() + ":%d" % p.getIndex() for p in out.iterItems(orderBy="id")]
        self.assertEqual(theirs, ours)                     # same images, same order

    def test_filter_pca_first_component_is_the_rank_one_z(self):
        prot = self._filterPca("1")
        self.launchProtocol(prot)
        got = zRows(prot.outputParticles)
        np.testing.assert_allclose(got, rankOneZ(self.z), atol=1e-4)
        self.assertGreater(np.abs(got - self.z).max(), 1e-3)      # something was removed
        self.assertEqual(np.linalg.matrix_rank(got - got.mean(axis=0), tol=1e-4), 1)

    def test_validate_reads_our_z_dimension(self):
        errors = self._filterPca(str(ZDIM + 1)).validate()
        self.assertTrue(any(f"original dimensions = {ZDIM}" in e for e in errors), errors)
        dimred = self.newProtocol(ProtFlexDimRedSpace, mode=1, dimensions=ZDIM)
        dimred.particles.set(self.flex)
        self.assertEqual(dimred.validate(), [])
        dimred = self.newProtocol(ProtFlexDimRedSpace, mode=1, dimensions=ZDIM + 1)
        dimred.particles.set(self.flex)
        self.assertTrue(any(f"original dimensions = {ZDIM}" in e for e in dimred.validate()))

    def test_associate_space_carries_our_z_to_other_particles(self):
        prot = self.newProtocol(ProtFlexAssociateSpace, particlesFlex=self.flex,
                                particles=self.parts)
        self.launchProtocol(prot)
        out = prot.flexParticles
        self.assertEqual(out.getSize(), N_PART)
        self.assertEqual(out.getFlexInfo().getProgName(), CRYOSTAR)
        checkpoint = str(out.getFlexInfo().getAttr(CHECKPOINT))      # FlexInfo goes along
        self.assertEqual(checkpoint, str(self.flex.getFlexInfo().getAttr(CHECKPOINT)))
        self.assertTrue(os.path.isfile(checkpoint), checkpoint)
        got = zRows(out)
        self.assertEqual(got.shape, (N_PART, ZDIM))
        np.testing.assert_array_equal(got, self.z)
