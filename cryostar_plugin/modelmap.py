"""The engine's model–map validation (``cryostar-engine validate``), read for Scipion.

The engine compares, at every k-means state and PC trajectory point of a density run, the
model its atom generator decodes with the density generator's map at the same z, and writes
(names listed in the folder's ``manifest.json``, schema ``cryostar-validation/1``):

* ``report.json``: ``verdict`` (``"supported"`` | ``"flagged"`` | ``"inconclusive"``), ``thresholds`` and one entry
  per point: ``name`` (``state_00``, ``pc1_03``), ``series``, ``index``, model–map FSC at 0.5
  (``fsc_0.5_A``, Å), the mean per-residue local correlation (``mean_local_cc``), per-chain
  summaries and flagged residues, each with a ``flag``;
* ``validation.png`` (overview), one figure per point, ``validation.cxc`` (ChimeraX: models
  coloured by their local agreement over the maps).

Here only what the protocol's summary and the viewer show is derived from it: labels a cryo-EM
user reads (``state 0``, ``PC1 point 4``), the verdict line, the table rows.  Nothing is
recomputed.  No Scipion import: the protocol and the viewer both use it.
"""
import os
import re

from .outputs import readJson

__all__ = ["SCHEMA", "FLAGS", "ValidationMissing", "readValidation", "validationFile",
           "pointLabel", "flagText", "residueRanges", "chainsText", "tableRows", "verdictLine",
           "TABLE_HEADER"]

SCHEMA = "cryostar-validation/1"
#: What each engine flag means, in the words shown to the user.
FLAGS = {
    "model_moves_map_not": "model moves, map does not",
    "map_changes_model_rigid": "map changes, model rigid",
}
#: The viewer's table columns (one row per state / trajectory point).
TABLE_HEADER = ("State / point", "FSC 0.5 (Å)", "Mean local CC", "Flagged chains",
                "Flagged residues")


class ValidationMissing(FileNotFoundError):
    """The validation folder has no finished report; ``str(err)`` says why, in one line."""


def readValidation(folder):
    """``(manifest, report)`` of a ``validate`` output folder.

    Raises :class:`ValidationMissing` when the folder or its manifest is missing (the
    manifest is written last: without it the validation did not finish), or when the
    manifest is not a validation's.
    """
    path = os.path.join(folder, "manifest.json")
    if not os.path.exists(path):
        raise ValidationMissing(f"{folder} has no manifest.json: the validation did not run or "
                                "did not finish")
    man = readJson(path)
    if man.get("schema") != SCHEMA:
        raise ValidationMissing(f"{path} is not a model-map validation ({man.get('schema')})")
    report = validationFile(folder, man, man.get("report", "report.json"))
    if report is None:
        raise ValidationMissing(f"{path} lists no report")
    return man, readJson(report)


def validationFile(folder, manifest, name):
    """Absolute path of the file ``name`` of the validation folder, if the manifest lists it
    (the engine's fixed names: ``report.json``, ``validation.png``, ``validation.cxc``,
    ``<point>.png``); None otherwise."""
    if name not in manifest.get("files", []):
        return None
    return os.path.join(os.path.abspath(folder), name)


def pointLabel(point):
    """``state 0`` for a k-means state, ``PC1 point 4`` for the 4th point (1-based, as in the
    volume gallery) along PC1; the engine's name for anything else."""
    series, index = str(point.get("series", "")), point.get("index")
    if series == "kmeans" and index is not None:
        return f"state {index}"
    m = re.fullmatch(r"pca?_?(\d+)", series)
    if m and index is not None:
        return f"PC{m.group(1)} point {int(index) + 1}"
    return str(point.get("name", "?"))


def flagText(flag):
    return FLAGS.get(flag, str(flag).replace("_", " "))


def _fmt(value, spec):
    return "–" if value is None else format(value, spec)


def residueRanges(residues):
    """Flagged residues as short ranges: ``A12–18, A40 (model moves, map does not); B7 (map
    changes, model rigid)``; consecutive residue numbers of a chain with the same flag are
    joined."""
    groups = {}
    for r in residues:
        groups.setdefault(r.get("flag"), []).append((str(r.get("chain", "")), int(r["resseq"])))
    parts = []
    for flag, items in groups.items():
        items = sorted(set(items))
        runs = []
        for chain, seq in items:
            if runs and runs[-1][0] == chain and runs[-1][2] == seq - 1:
                runs[-1][2] = seq
            else:
                runs.append([chain, seq, seq])
        text = ", ".join(f"{c}{a}" if a == b else f"{c}{a}–{b}" for c, a, b in runs)
        parts.append(f"{text} ({flagText(flag)})")
    return "; ".join(parts)


def chainsText(chains):
    """The flagged chains of a point: ``A (model moves, map does not)``; empty when none."""
    return ", ".join(f"{c.get('chain')} ({flagText(c['flag'])})" for c in chains
                     if c.get("flag"))


def tableRows(report):
    """One row per point (the order of the report): label, FSC 0.5 (Å), mean local CC, flagged
    chains, flagged residues (texts; "–" for a missing number, "none" for no flag)."""
    rows = []
    for p in report.get("points", []):
        rows.append((pointLabel(p), _fmt(p.get("fsc_0.5_A"), ".1f"),
                     _fmt(p.get("mean_local_cc"), ".2f"),
                     chainsText(p.get("chains", [])) or "none",
                     residueRanges(p.get("flagged_residues", [])) or "none"))
    return rows


def _flaggedChainPoints(points):
    return [p for p in points if any(c.get("flag") for c in p.get("chains", []))]


def verdictLine(report):
    """One line: the engine's verdict (``flagged`` when any chain is flagged at any point), the
    flagged chains with their kind and number of points, the flagged residues, the FSC and
    local-CC span over the points."""
    points = report.get("points", [])
    fsc = [p["fsc_0.5_A"] for p in points if p.get("fsc_0.5_A") is not None]
    cc = [p["mean_local_cc"] for p in points if p.get("mean_local_cc") is not None]
    span = []
    if fsc:
        span.append(f"model-map FSC 0.5 at {min(fsc):.1f}–{max(fsc):.1f} Å")
    if cc:
        span.append(f"mean local CC {min(cc):.2f}–{max(cc):.2f}")
    span = f" ({', '.join(span)})" if span else ""
    nRes = sum(len(p.get("flagged_residues", [])) for p in points)
    atRes = sum(1 for p in points if p.get("flagged_residues"))
    residues = (f"; {nRes} residue{'s' if nRes != 1 else ''} flagged at {atRes} of them"
                if nRes else "")
    verdict = report.get("verdict", "unknown")
    hits = _flaggedChainPoints(points)
    if verdict == "inconclusive":
        return (f"Model-map validation: inconclusive: {report.get('verdict_reason', '')}"
                f"{span}{residues}.")
    if not hits:
        return (f"Model-map validation: {verdict}: no chain is flagged at any of the "
                f"{len(points)} states and trajectory points{span}{residues}.")
    chains = []
    for c in report.get("chains", []):
        if c.get("flag"):
            n = len((c.get("points_flagged") or {}).get(c["flag"], []))
            chains.append(f"chain {c['chain']}: {flagText(c['flag'])}"
                          + (f" ({n} point{'s' if n != 1 else ''})" if n else ""))
    what = "; ".join(chains) or ", ".join(pointLabel(p) for p in hits)
    return (f"Model-map validation: {verdict}: {what}; chains flagged at {len(hits)} of "
            f"{len(points)} states and trajectory points{span}{residues}.")
