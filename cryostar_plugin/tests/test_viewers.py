"""Viewers and the low-pass wizard on the shared trained project, headless: every figure and
ChimeraX script is written and parseable, and the numbers behind them are the run's."""
import os
import re
import unittest

import numpy as np
from pwem.viewers import ChimeraView, ChimeraViewer
from pyworkflow.viewer import MessageView

from cryostar_plugin.constants import CHIMERA_SCRIPT
from cryostar_plugin.lowpass import suggestLowPass
from cryostar_plugin.outputs import readJson, splitPdbModels
from cryostar_plugin.tests.shared_project import N_PART, SharedChainTest
from cryostar_plugin.viewers import CryoStarViewer, writeAllFigures
from cryostar_plugin.viewers.plots import latentTable, pcaScores
from cryostar_plugin.wizards import CryoStarLowPassWizard

PNG = b"\x89PNG\r\n\x1a\n"


def isPng(path):
    with open(path, "rb") as f:
        return f.read(8) == PNG


def cxcCommands(view):
    """The lines of the .cxc a ChimeraView opens."""
    path = re.search(r'"([^"]+\.cxc)"', view._cmd).group(1)
    with open(path) as f:
        return path, [ln.strip() for ln in f if ln.strip() and not ln.startswith("#")]


class _Form:
    """The two things a wizard uses of Scipion's form window."""

    def __init__(self, protocol):
        self.protocol, self.values, self.errors = protocol, {}, []

    def setVar(self, name, value):
        self.values[name] = value

    def showError(self, msg):
        self.errors.append(msg)


class TestCryoStarViewerDiscovery(unittest.TestCase):
    def test_viewer_and_wizard_found_by_domain(self):
        import pwem
        from pyworkflow.viewer import DESKTOP_TKINTER

        from cryostar_plugin.protocols import (ProtCryoStarAnalyze, ProtCryoStarTrainAtom,
                                               ProtCryoStarTrainDensity)
        self.assertIn("CryoStarViewer", pwem.Domain.getViewers())
        self.assertIn("CryoStarLowPassWizard", pwem.Domain.getWizards())
        for prot in (ProtCryoStarTrainAtom, ProtCryoStarAnalyze, ProtCryoStarTrainDensity):
            viewers = pwem.Domain.findViewers(prot.__name__, DESKTOP_TKINTER)
            self.assertIn(CryoStarViewer, viewers, prot.__name__)


class TestCryoStarViewers(SharedChainTest):
    def _viewer(self, prot):
        viewer = CryoStarViewer(project=self.proj, protocol=prot)
        viewer.setProtocol(prot)
        return viewer

    def test_pca_scatter_and_density(self):
        viewer = self._viewer(self.analyze)
        (plotter,) = viewer._showPcaScatter()
        (density,) = viewer._showPcaDensity()
        paths = viewer.getWrittenFiles()
        self.assertEqual([os.path.basename(p) for p in paths],
                         ["pca_scatter_1_2.png", "pca_density_1_2.png"])
        self.assertTrue(all(isPng(p) for p in paths))
        # the scatter shows every particle once, grouped by the analysis' k-means states
        ax = plotter.getFigure().axes[0]
        sizes = [len(c.get_offsets()) for c in ax.collections]
        labels = np.load(os.path.join(self.analyze.getAnalysisDir(), "labels.npy"))
        self.assertEqual(sizes, np.bincount(labels).tolist())
        self.assertEqual(sum(sizes), N_PART)
        # its axes are the PCs of getZFlex(): the same spread as the engine's PC scores
        table = latentTable(self.train.Particles, self.train._enginePath("particlesStar"),
                            self.analyze.getAnalysisDir())
        scores, _ = pcaScores(table.z)
        engine = np.load(os.path.join(self.analyze.getAnalysisDir(), "pc_scores.npy"))
        np.testing.assert_allclose(np.abs(scores[:, 0]).std(), np.abs(engine[:, 0]).std(),
                                   rtol=1e-3)
        bad = self._viewer(self.analyze)
        bad.pcY.set(9)
        self.assertIsInstance(bad._showPcaScatter()[0], MessageView)

    def test_umap_or_a_clear_message(self):
        views = self._viewer(self.train)._showUmap()
        try:
            import umap  # noqa: F401
        except ImportError:
            self.assertIsInstance(views[0], MessageView)
            self.assertIn("umap-learn", views[0].getMessage())
        else:
            self.assertTrue(isPng(self._viewer(self.train).getWrittenFiles()[-1]))

    def test_training_curves(self):
        for prot in (self.train, self.density):
            viewer = self._viewer(prot)
            (plotter,) = viewer._showTrainingCurves()
            path = viewer.getWrittenFiles()[-1]
            self.assertTrue(isPng(path))
            titles = {ax.get_title() for ax in plotter.getFigure().axes}
            self.assertIn("loss", titles)

    def test_structures_in_chimerax(self):
        viewer = self._viewer(self.train)
        for name, nModels in (("_showCentres", 3), ("_showTrajectory", 4)):
            (view,) = getattr(viewer, name)()
            self.assertIsInstance(view, ChimeraView)
            path, cmds = cxcCommands(view)
            opened = [re.match(r'open "([^"]+)"', c).group(1) for c in cmds
                      if c.startswith("open")]
            self.assertTrue(all(os.path.exists(p) for p in opened))
            self.assertEqual(len(splitPdbModels(opened[1])), nModels)
            self.assertIn(f"coordset #2 1,{nModels} pauseFrames 10 loop 5 bounce true", cmds)
        path, cmds = cxcCommands(viewer._showAllTrajectories()[0])
        self.assertIn("hide #3 models", cmds)
        # pwem's own ChimeraX viewer of the output set opens the same script
        views = ChimeraViewer(project=self.proj, protocol=self.train)._visualize(
            self.train.ClusterCentres)
        self.assertIn(getattr(self.train.ClusterCentres, CHIMERA_SCRIPT).get(),
                      views[0]._cmd)

    def test_volumes_views(self):
        viewer = self._viewer(self.density)
        (series,) = viewer._showVolumeSeries()
        path, cmds = cxcCommands(series)
        opens = [re.findall(r'"([^"]+)"', c) for c in cmds if c.startswith("open")]
        man = self.density.getRunManifest()
        # the consensus map, then one series per k-means / PC set, every file there
        self.assertEqual([len(o) for o in opens[1:]],
                         [len(s["volumes"]) for s in man["series"].values()])
        self.assertTrue(all(os.path.exists(f) for o in opens for f in o))
        self.assertEqual(sum("vseries true" in c for c in cmds), len(man["series"]))
        # every series at the consensus map's origin (the user's frame), 6 Å voxels
        self.assertIn("volume #2 voxelSize 6 origin 0,0,0", cmds)
        self.assertIn("volume #1 voxelSize 2 origin 0,0,0", cmds)
        (slices,) = viewer._showVolumeSlices()
        self.assertEqual(type(slices).__name__, "ObjectView")
        # colours of the density run's latent plots come from the training's analysis
        (plotter,) = viewer._showPcaScatter()
        self.assertEqual(len(plotter.getFigure().axes[0].collections), 3)

    def test_write_all_figures(self):
        paths = writeAllFigures(self.proj, [self.train, self.analyze, self.density])
        self.assertGreaterEqual(len(paths), 9)
        self.assertTrue(all(isPng(p) for p in paths))

    # ------------------------------------------------------------------ wizard
    def test_low_pass_wizard_agrees_with_check_inputs(self):
        report = readJson(os.path.join(self.train._enginePath("checkDir"), "report.json"))
        parts, model = self.parts, self.model
        full = suggestLowPass(model, parts, trainBox=48)
        self.assertAlmostEqual(full.fsc05_A, report["map"]["model_map_fsc05_A"], places=6)
        self.assertAlmostEqual(full.suggested_A, report["suggested_low_pass_A"], places=6)
        # at the 24-px training box the floor is 2.5 × 4 Å
        form = _Form(self.train)
        CryoStarLowPassWizard().show(form)
        self.assertEqual(form.errors, [])
        expected = max(report["map"]["model_map_fsc05_A"], 10.0)
        self.assertAlmostEqual(form.values["lowPass"], expected, delta=0.051)
        self.assertGreater(form.values["lowPass"], 2 * 4.0)       # coarser than Nyquist
        # no reference model chosen yet: a message, no value
        form = _Form(self.newProtocol(type(self.train), inputParticles=self.parts))
        CryoStarLowPassWizard().show(form)
        self.assertEqual(form.values, {})
        self.assertTrue(form.errors)


if __name__ == "__main__":
    unittest.main()
