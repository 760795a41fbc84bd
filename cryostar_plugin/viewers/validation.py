"""The 'model-map validation' part of the CryoSTAR viewer (a 'train density generator' run).

What ``cryostar-engine validate`` wrote in the run's ``extra/validation`` (names from its
``manifest.json``): the verdict and a table with one row per k-means state and PC trajectory
point (model-map FSC at 0.5, mean local correlation, flagged chains and residues), the overview
figure and each point's per-residue figure (matplotlib in Tk), and the ChimeraX script that
colours the models by their local agreement over the maps.  Nothing is recomputed here.
"""
import os

import pyworkflow.protocol.params as params
from pyworkflow.viewer import View

from ..modelmap import (TABLE_HEADER, ValidationMissing, pointLabel, tableRows,
                        validationFile, verdictLine)
from . import plots
from .chimerax import chimeraxView

__all__ = ["ValidationViews", "ValidationTableView", "thresholdsText"]

TITLE = "CryoSTAR model-map validation"
#: What the table's first number means and how to see more (the engine's notes follow it).
LEGEND = ("FSC 0.5: resolution (Å) at which the Fourier shell correlation of the decoded model's "
          "density and the map falls below 0.5 (smaller: better agreement). Mean local CC: "
          "mean over the residues of their local correlation (1: perfect). Double-click a row "
          "for its per-residue figure.")


def thresholdsText(report):
    """``Thresholds: name = value, …`` of the report (what the engine flagged against)."""
    def name(key):
        return (key[:-2] + " (Å)" if key.endswith("_A") else key).replace("_", " ")

    items = [(k, v) for k, v in (report.get("thresholds") or {}).items()
             if isinstance(v, (int, float, str))]
    return ("Thresholds: " + ", ".join(f"{name(k)} = {v:.4g}" if isinstance(v, (int, float))
                                       else f"{name(k)} = {v}" for k, v in items)
            if items else "")


VERDICT_COLOURS = {"flagged": "#a04000", "inconclusive": "#505050", "supported": "#1e6b1e"}


class ValidationTableView(View):
    """A Tk window: the verdict, one row per state / point, the legend; double-clicking a row
    shows its per-residue figure.  Built in :meth:`show` (headless code reads ``rows``)."""

    def __init__(self, verdict, rows, figures, notes=(), title=TITLE, tkParent=None,
                 kind="supported"):
        """verdict : one line; rows : tuples as :data:`TABLE_HEADER`; figures : per-row PNG
        path (or None); notes : lines shown under the table; tkParent : the viewer's window
        (a pyworkflow ``Window``), or None; kind : the report's ``verdict`` (its colour)."""
        View.__init__(self)
        self.verdict, self.rows, self.figures = verdict, list(rows), list(figures)
        self.kind = kind
        self.notes, self.title, self._tkParent = [n for n in notes if n], title, tkParent
        self.tree = None

    def show(self):
        import tkinter as tk
        from tkinter import ttk

        from pyworkflow.gui import Window

        window = Window(self.title, self._tkParent, minsize=(1150, 300))
        win = window.root
        win.columnconfigure(0, weight=1)
        win.rowconfigure(1, weight=1)
        colour = VERDICT_COLOURS.get(self.kind, VERDICT_COLOURS["supported"])
        tk.Label(win, text=self.verdict, wraplength=1100, justify="left", anchor="w",
                 fg=colour, font=("Helvetica", 11, "bold"),
                 padx=8, pady=6).grid(row=0, column=0, columnspan=2, sticky="ew")
        tree = ttk.Treeview(win, columns=TABLE_HEADER, show="headings",
                            height=min(max(len(self.rows), 3), 20))
        widths = (110, 95, 115, 250, 560)
        for name, width in zip(TABLE_HEADER, widths):
            tree.heading(name, text=name)
            tree.column(name, width=width, anchor="w", stretch=name == TABLE_HEADER[-1])
        tree.tag_configure("flagged", background="#fde3cf")
        for i, row in enumerate(self.rows):
            tags = ("flagged",) if row[3] != "none" or row[4] != "none" else ()
            tree.insert("", "end", iid=str(i), values=row, tags=tags)
        bar = ttk.Scrollbar(win, orient="vertical", command=tree.yview)
        tree.configure(yscrollcommand=bar.set)
        tree.grid(row=1, column=0, sticky="news", padx=(8, 0))
        bar.grid(row=1, column=1, sticky="ns", padx=(0, 8))
        tree.bind("<Double-1>", lambda event: self._showFigure(tree.focus()))
        text = "\n".join([LEGEND] + self.notes)
        tk.Label(win, text=text, wraplength=1100, justify="left", anchor="w", fg="#404040",
                 padx=8, pady=6).grid(row=2, column=0, columnspan=2, sticky="ew")
        ttk.Button(win, text="Close", command=window.close).grid(row=3, column=0, columnspan=2,
                                                                 pady=(0, 8))
        self.tree = tree
        window.show()

    def _showFigure(self, iid):
        if iid and self.figures[int(iid)]:
            plots.plotPng(self.figures[int(iid)],
                          f"{TITLE}: {self.rows[int(iid)][0]}").show()


class ValidationViews:
    """Mixin of :class:`~cryostar_plugin.viewers.CryoStarViewer` for a density run."""

    def _defineValidationParams(self, form):
        form.addSection(label="Model-map validation")
        form.addParam("doShowValidationTable", params.LabelParam,
                      label="Verdict and table of the states and trajectory points",
                      help="Model-map FSC at 0.5, mean local correlation and the chains and "
                           "residues flagged at each k-means state and PC trajectory point.")
        form.addParam("doShowValidationOverview", params.LabelParam,
                      label="Overview figure (all states and points)")
        points = [label for label, _ in self._validationPoints()] or ["(not run)"]
        form.addParam("validationPoint", params.EnumParam, choices=points, default=0,
                      display=params.EnumParam.DISPLAY_COMBO, label="State or point",
                      help="The state or PC trajectory point whose per-residue figure to show.")
        form.addParam("doShowValidationPoint", params.LabelParam,
                      label="Per-residue local correlation of that state or point")
        form.addParam("doShowValidationChimera", params.LabelParam,
                      label="Models coloured by agreement, over the maps, in ChimeraX")

    def _validationVisualizeDict(self):
        return {"doShowValidationTable": self._showValidationTable,
                "doShowValidationOverview": self._showValidationOverview,
                "doShowValidationPoint": self._showValidationPoint,
                "doShowValidationChimera": self._showValidationChimera}

    # --------------------------- data ------------------------------------------------------
    def _validation(self):
        """``(folder, manifest, report)``, or ``(None, message view, None)``."""
        prot = self.protocol
        try:
            man, report = prot.getValidation()
        except ValidationMissing as err:
            if not prot.doValidate:
                why = ("it was not asked for ('Validate models against maps' = no). Run it "
                       f"with: cryostar-engine validate --atom-run {prot._trainingRunDir()} "
                       f"--density-run {prot.getRunDir()} --out VALIDATION_FOLDER")
            elif prot._getValidateArgs() is None:
                why = ("the particles do not name the 'train atom generator' run that decoded "
                       "their models.")
            else:
                why = f"{err} (has the run finished?)."
            return None, self.warnMessage(f"There is no model-map validation: {why}",
                                          "No validation"), None
        return prot.getValidationDir(), man, report

    def _validationPoints(self):
        """``[(label, figure path or None)]`` of the report's points, in its order."""
        try:
            folder, man, report = self._validation()
        except (AttributeError, ValueError):
            return []
        if folder is None:
            return []
        return [(pointLabel(p), validationFile(folder, man, p.get("figure", "")))
                for p in report.get("points", [])]

    # --------------------------- views -----------------------------------------------------
    def _showValidationTable(self, paramName=None):
        folder, man, report = self._validation()
        if folder is None:
            return [man]
        figures = [f for _, f in self._validationPoints()]
        notes = list(report.get("notes") or []) + [thresholdsText(report)]
        return [ValidationTableView(verdictLine(report), tableRows(report), figures, notes,
                                    tkParent=getattr(self, "formWindow", None),
                                    kind=report.get("verdict", "supported"))]

    def _showValidationOverview(self, paramName=None):
        folder, man, report = self._validation()
        if folder is None:
            return [man]
        path = validationFile(folder, man, man.get("figure", "validation.png"))
        if path is None:
            return [self.errorMessage(f"{folder} has no overview figure (validation.png).",
                                      "No figure")]
        return [plots.plotPng(path, f"{TITLE}: overview")]

    def _showValidationPoint(self, paramName=None):
        points = self._validationPoints()
        if not points:
            return [self._validation()[1]]
        label, path = points[min(self.validationPoint.get() or 0, len(points) - 1)]
        if path is None:
            return [self.errorMessage(f"The validation has no figure for {label}.",
                                      "No figure")]
        return [plots.plotPng(path, f"{TITLE}: {label}")]

    def _showValidationChimera(self, paramName=None):
        folder, man, report = self._validation()
        if folder is None:
            return [man]
        name = (man.get("cxc") or {}).get("validation", "validation.cxc")
        script = validationFile(folder, man, name) or os.path.join(folder, name)
        return [chimeraxView(self, script, "the decoded models coloured by their local "
                                           "agreement with the maps")]
