#!/usr/bin/env python
"""Write the chosen chains of a PDB/mmCIF file (plain or .gz) as a heavy-atom PDB: how the
large benchmark's 30S subunit was cut from the 70S ribosome PDB 7P6Z.

    .venv/bin/python benchmarks/extract_chains.py --structure 7p6z.cif.gz \\
        --chains A B C D E F G H I J K L M N O P Q R S T 5 --out bench_data/7p6z_30S.pdb

Keeps polymer residues only (no waters or ligands), the first alternate location, no hydrogens.
"""
from __future__ import annotations

import argparse
import gzip
from pathlib import Path

from Bio.PDB import PDBIO, MMCIFParser, PDBParser, Select


class _Chains(Select):
    def __init__(self, chains):
        self.chains = set(chains)

    def accept_chain(self, chain):
        return chain.id in self.chains

    def accept_residue(self, residue):
        return residue.id[0] == " "

    def accept_atom(self, atom):
        return atom.element != "H" and (not atom.is_disordered() or atom.get_altloc() in ("A", " "))


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--structure", type=Path, required=True)
    p.add_argument("--chains", nargs="+", required=True, help="author chain ids to keep")
    p.add_argument("--out", type=Path, required=True)
    a = p.parse_args(argv)
    name = a.structure.name.lower().removesuffix(".gz")
    opener = gzip.open if a.structure.name.endswith(".gz") else open
    parser = MMCIFParser(QUIET=True) if name.endswith(".cif") else PDBParser(QUIET=True)
    with opener(a.structure, "rt") as handle:
        model = parser.get_structure(name.split(".")[0], handle)[0]
    missing = set(a.chains) - {c.id for c in model}
    if missing:
        raise SystemExit(f"{a.structure}: no chain(s) {', '.join(sorted(missing))}")
    io = PDBIO()
    io.set_structure(model)
    io.save(str(a.out), _Chains(a.chains))
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
