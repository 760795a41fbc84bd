"""Atomic models: what Biopython would merge or drop silently, found by reading the PDB lines.

Biopython files residues under (hetero flag, number, insertion code) within a chain: a residue
number used twice in one chain (two copies with a blank chain id, a renumbering slip) merges two
residues into one, and one of them disappears.  This scan refuses that, and notes what the
reader does with alternate locations, insertion codes and several MODELs.  mmCIF files are not
scanned (their author numbering is checked by Biopython itself).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InputError

__all__ = ["ModelScan", "scan_pdb"]

WATER_NAMES = {"HOH", "WAT", "DOD", "H2O", "SOL", "TIP", "TIP3", "SPC"}


@dataclass
class ModelScan:
    """What the PDB text holds: ``models`` (MODEL records, 1 when none), residues with an
    alternate location (altloc) or an insertion code, and one-line ``notes`` about them."""

    models: int = 1
    altloc_residues: int = 0
    insertion_residues: int = 0
    notes: list = field(default_factory=list)


def _residue_key(line: str) -> tuple:
    name = line[17:20].strip()
    het = " " if line.startswith("ATOM") else ("W" if name in WATER_NAMES else f"H_{name}")
    return line[21], het, line[22:26].strip(), line[26].strip()


def _residues(n: int) -> str:
    return f"{n} residue" + ("s" if n != 1 else "")


def scan_pdb(path: Path) -> ModelScan:
    """Scan the first model of a PDB file; raise :class:`InputError` on a residue id used twice
    in a chain (not contiguously), return a :class:`ModelScan` otherwise."""
    scan, first_line, last_key, names = ModelScan(models=0), {}, None, {}
    altlocs, icodes, in_first = set(), set(), True
    with open(path, errors="replace") as f:
        for lineno, line in enumerate(f, start=1):
            if line.startswith("MODEL"):
                scan.models += 1
                in_first = scan.models == 1
                continue
            if not in_first or not line.startswith(("ATOM  ", "HETATM")) or len(line) < 27:
                continue
            key = _residue_key(line)
            if key != last_key:
                if key in first_line:
                    chain = key[0].strip() or "(blank)"
                    raise InputError(
                        f"{path}: chain {chain} residue {key[2]}{key[3]} ({line[17:20].strip()}) "
                        f"appears twice (lines {first_line[key]} and {lineno}), so one copy would be "
                        "lost; renumber the residues or give each copy its own chain id")
                first_line[key], last_key = lineno, key
            names.setdefault(key, line[17:20].strip())
            if line[16] != " ":
                altlocs.add(key)
            if key[3]:
                icodes.add(key)
    scan.models = max(scan.models, 1)
    scan.altloc_residues, scan.insertion_residues = len(altlocs), len(icodes)
    if scan.models > 1:
        scan.notes.append(f"{scan.models} MODELs in the file: the first is used")
    if altlocs:
        scan.notes.append(f"{_residues(len(altlocs))} with alternate locations: the first altloc "
                          "of each atom is used")
    if icodes:
        scan.notes.append(f"{_residues(len(icodes))} with insertion codes: each is its own bead")
    return scan
