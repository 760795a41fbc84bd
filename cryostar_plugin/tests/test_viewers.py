"""Viewers and the low-pass wizard on the shared trained project, headless: every action gives a
figure drawn from the engine's files (its PC scores, figures, volumes) or a message naming what
is missing and where the files are (ChimeraX scripts)."""
import os
import re
import tempfile
import unittest

import numpy as np
from pyworkflow.viewer import MSG_WARN, CommandView, MessageView

from cryostar_plugin.outputs import readJson, readStarImageIds
from cryostar_plugin.tests.shared_project import N_PART, SharedChainTest
from cryostar_plugin.viewers import CryoStarViewer, writeAllFigures
from cryostar_plugin.viewers.plots import latentTable, pcRangeParticleIds
from cryostar_plugin.wizards import CryoStarLowPassWizard

PNG = b"\x89PNG\r\n\x1a\n"


def isPng(path):
    with open(path, "rb") as f:
        return f.read(8) == PNG


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

    def _table(self):
        return latentTable(self.train.Particles, self.train._enginePath("particlesStar"),
                           self.analyze.getAnalysisDir())

    def test_pca_scatter_plots_the_engines_scores(self):
        viewer = self._viewer(self.analyze)
        (plotter,) = viewer._showPcaScatter()
        (density,) = viewer._showPcaDensity()
        paths = viewer.getWrittenFiles()
        self.assertEqual([os.path.basename(p) for p in paths],
                         ["pca_scatter_1_2.png", "pca_density_1_2.png"])
        self.assertTrue(all(isPng(p) for p in paths))
        # every particle once, grouped by the analysis' k-means states ...
        ax = plotter.getFigure().axes[0]
        folder = self.analyze.getAnalysisDir()
        labels = np.load(os.path.join(folder, "labels.npy"))
        self.assertEqual([len(c.get_offsets()) for c in ax.collections],
                         np.bincount(labels).tolist())
        # ... at the engine's PC scores (pc_scores.npy), not a PCA of the plugin's own
        shown = np.concatenate([c.get_offsets() for c in ax.collections])
        engine = np.load(os.path.join(folder, "pc_scores.npy"))[:, :2]
        np.testing.assert_allclose(shown[np.lexsort(shown.T)], engine[np.lexsort(engine.T)],
                                   rtol=1e-6, atol=1e-9)
        # axes: the engine's explained variance and, for its PCA of the decoded structures,
        # the RMS displacement per residue of one SD along the PC (manifest, Å)
        pca = readJson(os.path.join(folder, "manifest.json"))["pca"]
        label = (f"PC1 score ({100 * pca['explained_variance_ratio'][0]:.1f} % of variance")
        if pca["space"] == "structure":
            label += f", 1 SD = {pca['rms_displacement_A'][0]:.1f} Å RMS"
        self.assertEqual(ax.get_xlabel(), label + ")")
        self.assertIn(f"PCA of the {'decoded structures' if pca['space'] == 'structure' else ''}",
                      " ".join(self.analyze.summary()))
        legend = ax.get_legend()
        self.assertGreaterEqual(min(t.get_fontsize() for t in legend.get_texts()), 9)
        renderer = plotter.getFigure().canvas.get_renderer()
        self.assertFalse(legend.get_window_extent(renderer).overlaps(
            ax.get_window_extent(renderer)))                  # the legend hides no point
        bad = self._viewer(self.analyze)
        bad.pcY.set(9)
        self.assertIsInstance(bad._showPcaScatter()[0], MessageView)

    def test_pc_range_ids_are_the_engines_rows_in_range(self):
        folder = self.analyze.getAnalysisDir()
        scores = np.load(os.path.join(folder, "pc_scores.npy"))
        low, high = np.percentile(scores[:, 0], [30, 70])
        ids = pcRangeParticleIds(self._table(), folder, 1, low, high)
        starIds = readStarImageIds(self.train._enginePath("particlesStar"))
        inside = (scores[:, 0] >= low) & (scores[:, 0] <= high)
        np.testing.assert_array_equal(ids, np.sort(starIds[inside]))
        self.assertEqual(len(ids), inside.sum())
        self.assertTrue(0.3 * N_PART < len(ids) < 0.5 * N_PART)
        # the viewer shows the same count
        viewer = self._viewer(self.analyze)
        viewer.rangePc.set(1)
        viewer.rangeLow.set(float(low))
        viewer.rangeHigh.set(float(high))
        (plotter,) = viewer._showPcRange()
        self.assertTrue(plotter.getFigure().axes[0].get_title().startswith(
            f"{len(ids)} of {N_PART} particles"))
        with self.assertRaises(ValueError):
            pcRangeParticleIds(self._table(), folder, 9, low, high)

    def test_umap_or_a_clear_message(self):
        views = self._viewer(self.train)._showUmap()
        try:
            import umap  # noqa: F401
        except ImportError:
            self.assertIsInstance(views[0], MessageView)
            self.assertEqual(views[0]._msgType, MSG_WARN)
            self.assertIn("umap-learn", views[0].getMessage())
        else:
            self.assertTrue(isPng(self._viewer(self.train).getWrittenFiles()[-1]))

    def test_engine_figures_and_training_curves(self):
        viewer = self._viewer(self.train)
        names = [n for n, _, _ in viewer._engineFigures()]
        self.assertIn("pc_scatter", names)
        self.assertIn("training_curves", names)
        for i in range(len(names)):
            viewer.engineFigure.set(i)
            (plotter,) = viewer._showEngineFigure()
            self.assertEqual(len(plotter.getFigure().axes[0].images), 1)   # the engine's PNG
        (plotter,) = viewer._showTrainingCurves()                   # the engine's figure
        self.assertEqual(len(plotter.getFigure().axes[0].images), 1)
        viewer = self._viewer(self.density)                          # drawn from losses.csv
        (plotter,) = viewer._showTrainingCurves()
        self.assertTrue(isPng(viewer.getWrittenFiles()[-1]))
        ax = plotter.getFigure().axes[0]
        self.assertEqual(ax.get_title(), "total loss")
        self.assertEqual(ax.get_xlabel(), "training step")

    def test_chimerax_missing_gives_the_script_path(self):
        saved = os.environ.get("PATH", "")
        os.environ["PATH"] = "/usr/bin:/bin"
        try:
            for prot, name, key in ((self.train, "_showCentres", "kmeans"),
                                    (self.train, "_showTrajectory", "pca_1"),
                                    (self.density, "_showVolumeSeries", "volumes")):
                (view,) = getattr(self._viewer(prot), name)()
                self.assertIsInstance(view, MessageView, name)
                self.assertEqual(view._msgType, MSG_WARN)
                msg = view.getMessage()
                self.assertIn("ChimeraX", msg)
                path = re.search(r"chimerax (\S+\.cxc)", msg).group(1)
                self.assertTrue(os.path.exists(path), path)
                folder = (prot.getAnalysisDir() if prot is self.train else prot.getRunDir())
                man = readJson(os.path.join(folder, "manifest.json"))
                self.assertEqual(os.path.basename(path), man["cxc"][key])
        finally:
            os.environ["PATH"] = saved

    def test_chimerax_on_path_opens_the_script(self):
        folder = tempfile.mkdtemp()
        fake = os.path.join(folder, "chimerax")
        with open(fake, "w") as f:
            f.write("#!/bin/sh\nexit 0\n")
        os.chmod(fake, 0o755)
        saved = os.environ.get("PATH", "")
        os.environ["PATH"] = f"{folder}:/usr/bin:/bin"
        try:
            (view,) = self._viewer(self.analyze)._showCentres()
        finally:
            os.environ["PATH"] = saved
        self.assertIsInstance(view, CommandView)
        self.assertIn(fake, view._cmd)
        self.assertIn("kmeans.cxc", view._cmd)

    def test_volume_slice_gallery(self):
        viewer = self._viewer(self.density)
        series = viewer._volumeSeries()
        man = self.density.getRunManifest()
        self.assertEqual(list(series), list(man["series"]))
        for i, name in enumerate(series):
            viewer.volumeSeries.set(i)
            (plotter,) = viewer._showVolumeSlices()
            path = viewer.getWrittenFiles()[-1]
            self.assertEqual(os.path.basename(path), f"gallery_{name}.png")
            self.assertTrue(isPng(path))
            axes = plotter.getFigure().axes
            self.assertEqual(len(axes), 3 * len(series[name]))    # XY, XZ, YZ per volume
            # the central XY section of the first volume, as the MRC holds it
            import mrcfile
            with mrcfile.open(os.path.join(self.density.getRunDir(), series[name][0])) as m:
                data = np.asarray(m.data)
            np.testing.assert_allclose(axes[0].images[0].get_array(),
                                       data[data.shape[0] // 2], rtol=1e-6)
        # colours of the density run's latent plots come from the training's analysis
        (plotter,) = viewer._showPcaScatter()
        self.assertEqual(len(plotter.getFigure().axes[0].collections), 3)

    def test_subset_selection_on_the_scatter(self):
        viewer = self._viewer(self.subset)
        (plotter,) = viewer._showSelection()
        ax = plotter.getFigure().axes[0]
        outputs = {n: o.getSize() for n, o in self.subset.iterOutputAttributes()}
        shown = {t.get_text().rsplit(" (", 1)[0]: len(c.get_offsets())
                 for t, c in zip(ax.get_legend().get_texts(), ax.collections)}
        shown.pop("not selected", None)
        self.assertEqual(shown, outputs)                    # one colour per output set
        self.assertTrue(isPng(viewer.getWrittenFiles()[-1]))

    def test_check_inputs_report_and_maps(self):
        """The checks the training ran first: their report and the maps' central sections."""
        viewer = self._viewer(self.train)
        self.assertIn("doShowCheckMaps", viewer._getVisualizeDict())
        (text,) = viewer._showCheckReport()
        self.assertEqual(type(text).__name__, "TextView")
        (plotter,) = viewer._showCheckMaps()
        axes = plotter.getFigure().axes
        self.assertEqual([ax.get_title() for ax in axes[:3]],
                         ["consensus map", "back-projection", "model density"])
        self.assertEqual(len(axes), 9)                       # 3 sections × 3 maps
        self.assertTrue(isPng(viewer.getWrittenFiles()[-1]))

    def test_write_all_figures(self):
        paths = writeAllFigures(self.proj, [self.train, self.analyze, self.density])
        self.assertGreaterEqual(len(paths), 8)
        self.assertTrue(all(isPng(p) for p in paths))

    # ------------------------------------------------------------------ wizard
    def test_low_pass_wizard_gives_the_engines_number(self):
        """The wizard writes what ``check inputs`` and the engine's own auto low-pass give
        (one engine function), at the training box of the form."""
        report = readJson(os.path.join(self.train._enginePath("checkDir"), "report.json"))
        form = _Form(self.newProtocol(type(self.train), inputParticles=self.parts,
                                      inputAtomStruct=self.model))        # box empty: full size
        CryoStarLowPassWizard().show(form)
        self.assertEqual(form.errors, [])
        self.assertAlmostEqual(form.values["lowPass"], report["suggested_low_pass_A"], delta=0.006)
        # at a 24-px training box the floor is 2.5 × 4 Å
        form = _Form(self.train)
        CryoStarLowPassWizard().show(form)
        self.assertEqual(form.errors, [])
        self.assertAlmostEqual(form.values["lowPass"],
                               max(report["map"]["model_map_fsc05_A"], 10.0), delta=0.006)
        # no reference model chosen yet: a message, no value
        form = _Form(self.newProtocol(type(self.train), inputParticles=self.parts))
        CryoStarLowPassWizard().show(form)
        self.assertEqual(form.values, {})
        self.assertTrue(form.errors)


if __name__ == "__main__":
    unittest.main()
