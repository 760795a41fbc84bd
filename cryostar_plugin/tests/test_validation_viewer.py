"""The density protocol's model-map validation, through the real engine, and its viewer.

On the shared project (:mod:`.shared_project`) the 'train density generator' run keeps the form's
default "Validate models against maps" = yes, so after training it ran ``cryostar-engine
validate`` on its atom-generator run.  Here: that step ran with only the two runs, its folder
and Scipion's run settings; its report (found through the folder's manifest) covers every
volume the run registered; the summary ends with the report's verdict; the viewer's table,
overview, per-point figures and ChimeraX button are built from the engine's files.  A run with
the box unticked inserts no validation step and its viewer says how to run it.
"""
import os
import re
import shutil
import tempfile
import unittest

import numpy as np
from pyworkflow.viewer import MSG_WARN, CommandView, MessageView

from cryostar_plugin.modelmap import (SCHEMA, pointLabel, residueRanges, tableRows,
                                      verdictLine)
from cryostar_plugin.protocols import ProtCryoStarTrainDensity
from cryostar_plugin.tests.shared_project import DENSITY, SharedChainTest
from cryostar_plugin.viewers import CryoStarViewer
from cryostar_plugin.viewers.validation import ValidationTableView

RANGE = re.compile(r"([A-Za-z0-9]?)(-?\d+)(?:–(-?\d+))?")


def parseRanges(text):
    """``{(chain, resseq, flag text)}`` back from :func:`residueRanges`' text."""
    out = set()
    for group in filter(None, text.split("; ")):
        ranges, flag = group.rsplit(" (", 1)
        for item in ranges.split(", "):
            chain, a, b = RANGE.fullmatch(item).groups()
            out |= {(chain, r, flag.rstrip(")")) for r in range(int(a), int(b or a) + 1)}
    return out


def _point(name, series, index, fsc, cc, chainFlag=None, residues=()):
    """A report point in the engine's layout (``cryostar-validation/1``)."""
    return {"name": name, "series": series, "index": index, "fsc_0.5_A": fsc,
            "mean_local_cc": cc, "figure": f"{name}.png",
            "chains": [{"chain": "A", "n": 214, "mean_cc": cc, "flag": chainFlag}],
            "flagged_residues": [dict(chain="A", resseq=r, cc=0.1, flag=f) for r, f in residues]}


class TestReportTexts(unittest.TestCase):
    """The verdict line and table rows on reports in the engine's layout, flagged or not."""

    def test_flagged_verdict_names_chains_kinds_and_points(self):
        moves = "model_moves_map_not"
        report = {"verdict": "flagged", "points": [
            _point("state_00", "kmeans", 0, 8.2, 0.61),
            _point("pc1_03", "pc1", 3, 9.5, 0.48, moves, [(30, moves), (31, moves)]),
            _point("pc1_04", "pc1", 4, 9.9, 0.45, moves, [(32, moves)])],
            "chains": [{"chain": "A", "flag": moves,
                        "points_flagged": {moves: ["pc1_03", "pc1_04"]}}]}
        line = verdictLine(report)
        self.assertEqual(line, "Model-map validation: flagged: chain A: model moves, map does not "
                               "(2 points); chains flagged at 2 of 3 states and trajectory points "
                               "(model-map FSC 0.5 at 8.2–9.9 Å, mean local CC 0.45–0.61); 3 "
                               "residues flagged at 2 of them.")
        rows = tableRows(report)
        self.assertEqual([r[0] for r in rows], ["state 0", "PC1 point 4", "PC1 point 5"])
        self.assertEqual(rows[0][3:], ("none", "none"))
        self.assertEqual(rows[1][1:], ("9.5", "0.48", "A (model moves, map does not)",
                                       "A30–31 (model moves, map does not)"))

    def test_supported_verdict_still_counts_flagged_residues(self):
        rigid = "map_changes_model_rigid"
        report = {"verdict": "supported", "points": [
            _point("state_00", "kmeans", 0, 7.0, 0.65, residues=[(12, rigid)]),
            _point("state_01", "kmeans", 1, 7.5, 0.60)], "chains": []}
        self.assertEqual(verdictLine(report),
                         "Model-map validation: supported: no chain is flagged at any of the 2 "
                         "states and trajectory points (model-map FSC 0.5 at 7.0–7.5 Å, mean "
                         "local CC 0.60–0.65); 1 residue flagged at 1 of them.")

    def test_consecutive_residues_of_a_chain_and_flag_are_joined(self):
        res = [dict(chain="A", resseq=r, flag="model_moves_map_not") for r in (5, 3, 4, 9)]
        res += [dict(chain="B", resseq=4, flag="model_moves_map_not"),
                dict(chain="A", resseq=10, flag="map_changes_model_rigid")]
        text = residueRanges(res)
        self.assertEqual(text, "A3–5, A9, B4 (model moves, map does not); "
                               "A10 (map changes, model rigid)")
        self.assertEqual(parseRanges(text), {(r["chain"], r["resseq"],
                                              "model moves, map does not"
                                              if r["flag"] == "model_moves_map_not"
                                              else "map changes, model rigid") for r in res})


class TestCryoStarValidationViewer(SharedChainTest):
    def _viewer(self, prot=None):
        prot = prot or self.density
        viewer = CryoStarViewer(project=self.proj, protocol=prot)
        viewer.setProtocol(prot)
        return viewer

    def _report(self):
        man, report = self.density.getValidation()
        return man, report

    def test_density_run_validated_through_the_engine(self):
        self.assertTrue(self.density.doValidate.get())                   # the form's default
        self.assertNotIn("doValidate", DENSITY)
        man, report = self._report()
        self.assertEqual(man["schema"], SCHEMA)
        self.assertEqual(report["schema"], SCHEMA)
        self.assertIn(report["verdict"], ("supported", "flagged", "inconclusive"))
        folder = self.density.getValidationDir()
        self.assertEqual(folder, os.path.abspath(self.density._getExtraPath("validation")))
        for name in man["files"]:
            self.assertTrue(os.path.exists(os.path.join(folder, name)), name)
        # the engine was given the two runs, the folder and Scipion's run settings, nothing else
        args = self.density._getValidateArgs()
        self.assertEqual(args[:6], ["--atom-run", self.train.getRunDir(),
                                    "--density-run", self.density.getRunDir(),
                                    "--out", folder])
        self.assertEqual({a for a in args[6:] if a.startswith("--")}, {"--device", "--threads"})
        # one point per registered volume: the z the density run wrote maps for
        vols = self.density.Volumes
        self.assertEqual(len(report["points"]), vols.getSize())
        zs = sorted(tuple(np.round(v.getZFlex(), 4)) for v in vols)
        self.assertEqual(sorted(tuple(np.round(p["z"], 4)) for p in report["points"]), zs)
        labels = [pointLabel(p) for p in report["points"]]
        self.assertEqual(sum(lab.startswith("state ") for lab in labels), DENSITY["numClusters"])
        self.assertEqual(len(set(labels)), len(labels))
        # the summary ends with the engine's verdict
        summary = self.density.summary()
        self.assertEqual(summary[-1], verdictLine(report) +
                         " Details: Analyze results > Model-map validation.")
        self.assertTrue(summary[-1].startswith(f"Model-map validation: {report['verdict']}: "))
        self.assertIn(report["verdict"], " ".join(self.density.methods()))

    def test_table_rows_are_the_reports_numbers_and_flags(self):
        _, report = self._report()
        (view,) = self._viewer()._showValidationTable()
        self.assertIsInstance(view, ValidationTableView)
        self.assertEqual(view.verdict, verdictLine(report))
        self.assertEqual(len(view.rows), len(report["points"]))
        for row, point, figure in zip(view.rows, report["points"], view.figures):
            label, fsc, cc, chains, residues = row
            self.assertEqual(label, pointLabel(point))
            self.assertAlmostEqual(float(fsc), point["fsc_0.5_A"], delta=0.05)
            self.assertAlmostEqual(float(cc), point["mean_local_cc"], delta=0.005)
            flaggedChains = {c["chain"] for c in point["chains"] if c.get("flag")}
            self.assertEqual(chains == "none", not flaggedChains)
            for chain in flaggedChains:
                self.assertIn(f"{chain} (", chains)
            shown = parseRanges(residues) if residues != "none" else set()
            self.assertEqual({(c, r) for c, r, _ in shown},
                             {(str(r["chain"]), int(r["resseq"]))
                              for r in point["flagged_residues"]})
            self.assertEqual(figure, os.path.join(self.density.getValidationDir(),
                                                  point["figure"]))
            self.assertTrue(os.path.exists(figure))
        self.assertEqual(tableRows(report), view.rows)

    def test_overview_and_per_point_figures_are_the_engines(self):
        import matplotlib.image as mpimg
        _, report = self._report()
        viewer = self._viewer()
        (plotter,) = viewer._showValidationOverview()
        image = plotter.getFigure().axes[0].images[0].get_array()
        png = mpimg.imread(os.path.join(self.density.getValidationDir(), "validation.png"))
        self.assertEqual(image.shape, png.shape)
        for i, point in enumerate(report["points"]):
            viewer.validationPoint.set(i)
            (plotter,) = viewer._showValidationPoint()
            ax = plotter.getFigure().axes[0]
            self.assertEqual(ax.get_title(), point["figure"])
            png = mpimg.imread(os.path.join(self.density.getValidationDir(), point["figure"]))
            self.assertEqual(ax.images[0].get_array().shape, png.shape)

    def test_chimerax_button(self):
        saved = os.environ.get("PATH", "")
        os.environ["PATH"] = "/usr/bin:/bin"
        try:
            (view,) = self._viewer()._showValidationChimera()
        finally:
            os.environ["PATH"] = saved
        self.assertIsInstance(view, MessageView)
        self.assertEqual(view._msgType, MSG_WARN)
        path = re.search(r"chimerax (\S+\.cxc)", view.getMessage()).group(1)
        self.assertEqual(path, os.path.join(self.density.getValidationDir(), "validation.cxc"))
        self.assertTrue(os.path.exists(path))
        folder = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, folder, True)
        fake = os.path.join(folder, "chimerax")
        with open(fake, "w") as f:
            f.write("#!/bin/sh\nexit 0\n")
        os.chmod(fake, 0o755)
        os.environ["PATH"] = f"{folder}:/usr/bin:/bin"
        try:
            (view,) = self._viewer()._showValidationChimera()
        finally:
            os.environ["PATH"] = saved
        self.assertIsInstance(view, CommandView)
        self.assertIn(path, view._cmd)

    def test_unticked_box_inserts_no_step_and_the_viewer_says_how(self):
        prot = self.newProtocol(ProtCryoStarTrainDensity, doValidate=False, **DENSITY)
        prot.inputParticles.set(self.train)
        prot.inputParticles.setExtended("Particles")
        self.saveProtocol(prot)
        prot._insertAllSteps()
        names = [s.funcName.get() for s in prot._steps]
        self.assertEqual(names, ["convertInputStep", "trainStep", "createOutputStep"])
        ticked = self.newProtocol(ProtCryoStarTrainDensity, **DENSITY)
        ticked.inputParticles.set(self.train)
        ticked.inputParticles.setExtended("Particles")
        ticked._insertAllSteps()
        self.assertEqual([s.funcName.get() for s in ticked._steps][-1], "validateStep")
        (view,) = self._viewer(prot)._showValidationTable()
        self.assertIsInstance(view, MessageView)
        self.assertIn("cryostar-engine validate --atom-run", view.getMessage())
        self.assertIn(self.train.getRunDir(), view.getMessage())


if __name__ == "__main__":
    unittest.main()
