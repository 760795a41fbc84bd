"""Reference models → beads: PDB = mmCIF, residue-name mapping, reporting what is dropped."""
import numpy as np
import pytest
from Bio.PDB import MMCIFIO, PDBParser

from cryostar_engine.errors import InputError
from cryostar_engine.io import read_beads, write_beads_pdb

from conftest import ADK_REF


def test_adk_reference_beads():
    beads = read_beads(ADK_REF)
    assert len(beads) == 214
    assert set(beads.chain_ids) == {"A"}
    np.testing.assert_array_equal(beads.res_ids, np.arange(1, 215))
    assert beads.amplitudes[0] == 61  # MET heavy atoms: N + 5 C + O + S = 7 + 30 + 8 + 16
    gly = beads.amplitudes[beads.res_names == "GLY"]
    assert (gly[:-1] == 27).all() and gly[-1] == 27 + 8  # the C-terminal Gly also has OXT
    assert beads.dropped == {}


def test_pdb_and_mmcif_give_identical_beads(tmp_path):
    structure = PDBParser(QUIET=True).get_structure("adk", str(ADK_REF))
    io = MMCIFIO()
    io.set_structure(structure)
    io.save(str(tmp_path / "adk.cif"))
    a, b = read_beads(ADK_REF), read_beads(tmp_path / "adk.cif")
    np.testing.assert_allclose(a.coords_A, b.coords_A, atol=1e-3)
    np.testing.assert_array_equal(a.amplitudes, b.amplitudes)
    np.testing.assert_array_equal(a.res_ids, b.res_ids)
    np.testing.assert_array_equal(a.res_names, b.res_names)
    np.testing.assert_array_equal(a.chain_ids, b.chain_ids)


def test_charmm_histidines_are_kept_and_ligands_reported(tmp_path):
    text = ADK_REF.read_text().replace(" HIS A", " HSD A")
    assert " HSD A" in text
    hetatm = ("HETATM 9001  O   HOH W   1      30.000  30.000  30.000  1.00  0.00           O\n"
              "HETATM 9002 ZN    ZN Z   1      31.000  30.000  30.000  1.00  0.00          ZN\n")
    lines = [ln for ln in text.splitlines(keepends=True) if not ln.startswith(("CONECT", "END"))]
    (tmp_path / "charmm.pdb").write_text("".join(lines) + hetatm + "END\n")
    beads = read_beads(tmp_path / "charmm.pdb")
    assert len(beads) == 214
    assert beads.renamed == {"HSD": (beads.res_names == "HIS").sum()} and beads.renamed["HSD"] > 0
    assert beads.dropped == {"water": 1, "ZN": 1}


def test_model_without_polymer_residues_is_refused(tmp_path):
    (tmp_path / "ligand.pdb").write_text(
        "HETATM    1  C1  LIG A   1       0.000   0.000   0.000  1.00  0.00           C\nEND\n")
    with pytest.raises(InputError, match="no protein or nucleic-acid residues.*LIG"):
        read_beads(tmp_path / "ligand.pdb")


def test_multi_model_bead_pdb_round_trip(tmp_path):
    beads = read_beads(ADK_REF)
    models = np.stack([beads.coords_A, beads.coords_A + 1.0])
    write_beads_pdb(tmp_path / "traj.pdb", beads, models)
    structure = PDBParser(QUIET=True).get_structure("t", str(tmp_path / "traj.pdb"))
    assert len(structure) == 2
    second = np.array([a.get_coord() for a in structure[1].get_atoms()])
    np.testing.assert_allclose(second, beads.coords_A + 1.0, atol=1e-3)
    again = read_beads(tmp_path / "traj.pdb")
    np.testing.assert_array_equal(again.res_names, beads.res_names)


def test_negative_residue_numbers_survive_the_round_trip(tmp_path):
    """Expression tags are numbered -4…-1 in many deposited models (7K98): the written beads must
    keep those numbers (they were once wrapped to 9996…9999 and matched no reference residue)."""
    beads = read_beads(ADK_REF)
    beads.res_ids = beads.res_ids - 5                      # residues -4 … 209
    write_beads_pdb(tmp_path / "neg.pdb", beads, beads.coords_A[None])
    again = read_beads(tmp_path / "neg.pdb")
    np.testing.assert_array_equal(again.res_ids, beads.res_ids)
