"""``validation.cxc``: each point's map with its model coloured by local agreement.

Point k (1-based) opens its map as model ``#(2k-1)`` (mesh surface) and its model as ``#(2k)``,
with residues coloured by their local CC: green ≥ 0.7, yellow 0.5–0.7, orange < 0.5; flagged
residues red (model moves, map does not) or blue (map changes, model rigid).  Only the first
pair is shown.  The files are named relative to the script (ChimeraX runs a ``.cxc`` from its own
folder) and overlay one another in the user frame.  Only commands valid in ``chimerax --nogui``.
The PDBs also carry the local CC in their B-factor column.
"""
from __future__ import annotations

import numpy as np

from ..analysis.chimerax import quote
from ..io.atomic import write_text_atomic
from .figures import FLAG_COLOURS

__all__ = ["CC_BINS", "residue_spec", "validation_script", "write_validation_cxc"]

CC_BINS = ((0.7, "#1a9850"), (0.5, "#fee08b"), (-1.01, "#fc8d59"))   # (lower bound, colour)


def _ranges(numbers) -> str:
    """Sorted residue numbers → ``"3-7,10,12-13"``."""
    nums = sorted(set(int(n) for n in numbers))
    parts, start = [], None
    for i, n in enumerate(nums):
        if start is None:
            start = n
        if i + 1 == len(nums) or nums[i + 1] != n + 1:
            parts.append(str(start) if start == n else f"{start}-{n}")
            start = None
    return ",".join(parts)


def residue_spec(model: int, chain_ids, res_ids, select: np.ndarray) -> list[str]:
    """ChimeraX atom specs (``#2/A:3-7,10``) of the selected beads, one per chain."""
    chains = np.asarray([str(c) for c in chain_ids])
    out = []
    for chain in dict.fromkeys(chains[select].tolist()):
        out.append(f"#{model}/{chain}:{_ranges(np.asarray(res_ids)[select & (chains == chain)])}")
    return out


def _colour_lines(model: int, res, beads) -> list[str]:
    lines, done = [], np.zeros(len(beads), bool)
    groups = [(res.flags == kind, colour) for kind, colour in FLAG_COLOURS.items()]
    for lower, colour in CC_BINS:
        groups.append((res.cc >= lower, colour))
    for sel, colour in groups:
        sel = sel & ~done
        done |= sel
        lines += [f"color {spec} {colour}" for spec in
                  residue_spec(model, beads.chain_ids, beads.res_ids, sel)]
    return lines


def validation_script(results, beads) -> str:
    """Text of ``validation.cxc`` (see the module docstring)."""
    names = [r.maps.point.name for r in results]
    lines = ["# CryoSTAR model–map validation: each latent point's map (stage 2) with its model",
             "# (stage 1) coloured by local correlation: green >= 0.7, yellow 0.5-0.7, orange < 0.5;",
             "# red: the model moves where the map does not; blue: the map changes where the model",
             "# is rigid.  Point k: map #(2k-1), model #(2k): "
             + ", ".join(f"#{2 * k + 1},{2 * k + 2} {n}" for k, n in enumerate(names)) + ".",
             "# Only the first point is shown; to see another, e.g. the second:",
             "#   hide #1-2 models; show #3-4 models",
             "# The B-factor column of each model holds the local CC (color byattribute bfactor)."]
    for k, res in enumerate(results):
        m, s = 2 * k + 1, 2 * k + 2
        name = res.maps.point.name
        lines += [f"open {quote(name + '.mrc')}", f"volume #{m} style mesh color silver",
                  f"open {quote(name + '.pdb')}", f"show #{s} atoms", f"style #{s} ball"]
        lines += _colour_lines(s, res, beads)
    if len(results) > 1:
        lines.append(f"hide #3-{2 * len(results)} models")
    lines.append("view")
    return "\n".join(lines) + "\n"


def write_validation_cxc(path, results, beads) -> None:
    write_text_atomic(path, validation_script(results, beads))
