"""Reference models (PDB / mmCIF, via Biopython) → one bead per residue.

* Amino acids: one bead at Cα.  Nucleotides: one bead at C1′.
* Bead amplitude = the sum of the atomic numbers of all atoms of that residue present in the
  file (hydrogens count if present), e.g. Gly without H = 27.
* Chain ids, residue numbers (with insertion codes) and residue names are kept, in file order.
* Force-field and modified names that are really standard residues (HSD/HSE/HSP/HID/HIE/HIP,
  MSE, CYX, …) are mapped to the standard name; waters, ions, ligands and residues without
  their bead atom are dropped and *reported* by count and name, never silently.
* Only the first model of a multi-model file is used, and the first alternate location of each
  atom (both with a note in :attr:`Beads.notes`).  A residue id used twice in one chain, and a
  model of fewer than 2 residues, are refused (:mod:`cryostar_engine.validate.model`).
* Coordinates are in Å, ordered (x, y, z), in the file's frame.
"""
from __future__ import annotations

import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from Bio.PDB import MMCIFParser, PDBParser
from Bio.PDB.PDBExceptions import PDBConstructionWarning

from ..errors import InputError
from ..validate.model import scan_pdb

__all__ = ["Beads", "read_beads", "write_beads_pdb", "AMINO_ACIDS", "NUCLEOTIDES"]

AMINO_ACIDS = {"ALA", "ARG", "ASN", "ASP", "CYS", "GLN", "GLU", "GLY", "HIS", "ILE", "LEU", "LYS",
               "MET", "PHE", "PRO", "SER", "THR", "TRP", "TYR", "VAL", "SEC", "PYL"}
NUCLEOTIDES = {"A", "C", "G", "U", "I", "DA", "DC", "DG", "DT", "DU", "DI"}
ALIASES = {
    "HSD": "HIS", "HSE": "HIS", "HSP": "HIS", "HID": "HIS", "HIE": "HIS", "HIP": "HIS",
    "HISD": "HIS", "HISE": "HIS", "HISP": "HIS", "HISH": "HIS",
    "MSE": "MET", "CYX": "CYS", "CYM": "CYS", "CSO": "CYS", "CME": "CYS",
    "ASH": "ASP", "GLH": "GLU", "LYN": "LYS", "ARN": "ARG",
    "SEP": "SER", "TPO": "THR", "PTR": "TYR", "HYP": "PRO", "MLY": "LYS",
    "RA": "A", "RC": "C", "RG": "G", "RU": "U", "ADE": "A", "CYT": "C", "GUA": "G", "URA": "U",
    "THY": "DT", "RA5": "A", "RA3": "A", "RC5": "C", "RC3": "C", "RG5": "G", "RG3": "G",
    "RU5": "U", "RU3": "U", "DA5": "DA", "DA3": "DA", "DC5": "DC", "DC3": "DC", "DG5": "DG",
    "DG3": "DG", "DT5": "DT", "DT3": "DT",
}
WATERS = {"HOH", "WAT", "TIP3", "TIP", "SOL", "DOD", "H2O", "TIP4", "SPC"}

_ELEMENTS = ("H He Li Be B C N O F Ne Na Mg Al Si P S Cl Ar K Ca Sc Ti V Cr Mn Fe Co Ni Cu Zn Ga "
             "Ge As Se Br Kr Rb Sr Y Zr Nb Mo Tc Ru Rh Pd Ag Cd In Sn Sb Te I Xe Cs Ba La Ce Pr Nd "
             "Pm Sm Eu Gd Tb Dy Ho Er Tm Yb Lu Hf Ta W Re Os Ir Pt Au Hg Tl Pb Bi Po At Rn").split()
ATOMIC_NUMBER = {e.upper(): z for z, e in enumerate(_ELEMENTS, start=1)}
ATOMIC_NUMBER["D"] = 1


@dataclass
class Beads:
    """A coarse-grained model: N beads, one per residue."""

    coords_A: np.ndarray          # (N, 3) float64, Å, (x, y, z)
    amplitudes: np.ndarray        # (N,) float64, Σ atomic numbers of the residue
    chain_ids: np.ndarray         # (N,) str
    res_ids: np.ndarray           # (N,) int
    insertion_codes: np.ndarray   # (N,) str ('' when none)
    res_names: np.ndarray         # (N,) str, standard names after mapping
    is_nucleotide: np.ndarray     # (N,) bool
    dropped: dict = field(default_factory=dict)   # residue name → count of residues dropped
    renamed: dict = field(default_factory=dict)   # original name → count of residues mapped
    centre_offsets_A: np.ndarray | None = None   # (N, 3) Å, residue's electron-weighted centre − bead
    atom_bead: np.ndarray | None = None          # (K,) int, the bead (residue) of each atom
    atom_offsets_A: np.ndarray | None = None     # (K, 3) Å, atom − its bead, in the reference
    atom_electrons: np.ndarray | None = None     # (K,) float64, atomic number of each atom
    model_atom_names: np.ndarray | None = None   # (K,) str, PDB name of each atom ("N", "CB", "O5'")
    notes: list = field(default_factory=list)    # one line each: what the reader chose (altlocs, …)

    def __len__(self) -> int:
        return len(self.coords_A)

    @property
    def atom_names(self) -> np.ndarray:
        """``'CA'`` for amino-acid beads, ``"C1'"`` for nucleotide beads."""
        return np.where(self.is_nucleotide, "C1'", "CA")

    @property
    def residue_centres_A(self) -> np.ndarray:
        """``(N, 3)`` Å: the electron-weighted centre of each residue's atoms (the bead's own
        coordinate when the model carried no other atoms)."""
        if self.centre_offsets_A is None:
            return self.coords_A
        return self.coords_A + self.centre_offsets_A

    def with_coords(self, coords_A: np.ndarray) -> "Beads":
        """The same beads at other ``(N, 3)`` coordinates."""
        new = Beads(**self.__dict__)
        new.coords_A = np.asarray(coords_A, dtype=np.float64)
        return new


def _element_number(atom) -> int:
    """Atomic number from the element column (Biopython infers it when the column is blank),
    falling back on the first letter of the atom name; 0 when unknown."""
    element = (atom.element or "").strip().upper()
    if element not in ATOMIC_NUMBER:
        element = atom.get_id().strip().lstrip("0123456789")[:1].upper()
    return ATOMIC_NUMBER.get(element, 0)


def _parse_structure(path: Path):
    suffix = "".join(path.suffixes[-2:]).lower() if path.suffix == ".gz" else path.suffix.lower()
    parser = MMCIFParser(QUIET=True) if suffix in (".cif", ".mmcif") else PDBParser(QUIET=True)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PDBConstructionWarning)
            structure = parser.get_structure("ref", str(path))
    except Exception as err:
        raise InputError(f"{path}: cannot read the model ({err})") from None
    models = list(structure)
    if not models:
        raise InputError(f"{path}: the model file holds no atoms")
    return models[0]


def _first_altloc(residue):
    """The residue (the first of a point mutation) with each disordered atom at its first
    alternate location in the file (Biopython would pick the highest occupancy)."""
    if residue.is_disordered() == 2:           # DisorderedResidue: several residue names
        residue.disordered_select(residue.disordered_get_id_list()[0])
        residue = residue.selected_child
    for atom in residue:
        if atom.is_disordered():
            atom.disordered_select(next(iter(atom.child_dict)))
    return residue


def read_beads(path) -> Beads:
    """Read a PDB or mmCIF file and coarse-grain it (see module docstring).

    Raises
    ------
    InputError : the file is missing or unreadable, or holds no amino-acid or nucleotide residue.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: model file not found")
    suffix = path.suffix.lower()
    notes = scan_pdb(path).notes if suffix in (".pdb", ".ent") else []
    model = _parse_structure(path)
    rows, dropped, renamed = [], Counter(), Counter()
    for chain in model:
        for residue in chain:
            residue = _first_altloc(residue)
            raw = residue.get_resname().strip().upper()
            name = ALIASES.get(raw, raw)
            if name in AMINO_ACIDS:
                bead_atom, is_nt = "CA", False
            elif name in NUCLEOTIDES:
                bead_atom, is_nt = "C1'", True
            else:
                dropped["water" if raw in WATERS else raw] += 1
                continue
            atoms = {a.get_id(): a for a in residue.get_atoms()}
            bead = atoms.get(bead_atom)      # (no `or`: a disordered atom has a length)
            if bead is None and is_nt:
                bead = atoms.get("C1*")
            if bead is None:
                dropped[f"{raw} without {bead_atom}"] += 1
                continue
            if name != raw:
                renamed[raw] += 1
            het, resseq, icode = residue.get_id()
            z_atoms = np.array([_element_number(a) for a in atoms.values()], np.float64)
            xyz = np.array([a.get_coord() for a in atoms.values()], np.float64)
            centre = (z_atoms[:, None] * xyz).sum(0) / max(z_atoms.sum(), 1e-9)
            rows.append((bead.get_coord(), z_atoms.sum(), chain.get_id(), resseq, icode.strip(),
                         name, is_nt, centre - bead.get_coord(), xyz - bead.get_coord(), z_atoms,
                         [a.get_id().replace("*", "'") for a in atoms.values()]))
    if not rows:
        found = ", ".join(f"{n}×{k}" for k, n in dropped.most_common(5)) or "no residues"
        raise InputError(f"{path}: no protein or nucleic-acid residues found ({found}); "
                         "give the atomic model docked into the consensus map")
    if len(rows) < 2:
        raise InputError(f"{path}: the model has only {len(rows)} residue; a model of at least 2 "
                         "residues (the structure docked into the consensus map) is needed")
    coords, amps, chains, resids, icodes, names, is_nt, centres, atom_xyz, atom_z, atom_names = zip(*rows)
    atom_bead = np.repeat(np.arange(len(rows)), [len(a) for a in atom_z])
    return Beads(coords_A=np.asarray(coords, np.float64), amplitudes=np.asarray(amps, np.float64),
                 chain_ids=np.asarray(chains), res_ids=np.asarray(resids, np.int64),
                 insertion_codes=np.asarray(icodes), res_names=np.asarray(names),
                 is_nucleotide=np.asarray(is_nt, bool), dropped=dict(dropped), renamed=dict(renamed),
                 centre_offsets_A=np.asarray(centres, np.float64), atom_bead=atom_bead.astype(np.int64),
                 atom_offsets_A=np.concatenate(atom_xyz).astype(np.float64),
                 atom_electrons=np.concatenate(atom_z).astype(np.float64),
                 model_atom_names=np.asarray([n for names_ in atom_names for n in names_]), notes=notes)


def _resseq(res_id) -> int:
    """The residue number as the PDB's 4-column field holds it: -999…9999 unchanged (negative
    numbers of expression tags included), larger ones wrapped modulo 10,000."""
    r = int(res_id)
    return r if -999 <= r <= 9999 else r % 10000


def write_beads_pdb(path, beads: Beads, models, bfactors=None) -> None:
    """Write bead structures as a multi-model PDB (one ``MODEL`` per entry of ``models``).

    ``models``: ``(M, N, 3)`` coordinates in Å.  Atoms are named CA / C1′ with the reference's
    chain ids, residue numbers and names, so the file opens as a trace in ChimeraX or PyMOL and
    ``coordsets true`` plays the models as a movie.  ``bfactors``: ``(M, N)`` values for the
    B-factor column (e.g. a per-residue score; default 0).  Written atomically.
    """
    from .atomic import atomic_path

    models = np.asarray(models, dtype=np.float64)
    if models.ndim == 2:
        models = models[None]
    b = np.zeros(models.shape[:2]) if bfactors is None else np.broadcast_to(bfactors, models.shape[:2])
    lines = []
    for m, xyz in enumerate(models, start=1):
        lines.append(f"MODEL     {m:4d}")
        for i in range(len(beads)):
            name = beads.atom_names[i]
            element = "C"
            atom_field = f" {name:<3s}" if len(name) < 4 else name
            x, y, z = xyz[i]
            lines.append(
                f"ATOM  {(i + 1) % 100000:5d} {atom_field:4s} {beads.res_names[i]:>3s} "
                f"{str(beads.chain_ids[i])[:1]:1s}{_resseq(beads.res_ids[i]):4d}"
                f"{(beads.insertion_codes[i] or ' ')[:1]:1s}   "
                f"{x:8.3f}{y:8.3f}{z:8.3f}{1.0:6.2f}{b[m - 1, i]:6.2f}          {element:>2s}")
        lines.append("ENDMDL")
    lines.append("END")
    with atomic_path(path, suffix=".pdb") as tmp:
        tmp.write_text("\n".join(lines) + "\n")
