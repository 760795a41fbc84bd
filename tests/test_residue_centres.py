"""Beads rendered at their residues' electron-weighted centres (cryostar_engine.atom.centres)."""
import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from cryostar_engine.atom import AtomConfig
from cryostar_engine.atom.centres import residue_centres, scattering_centres
from cryostar_engine.atom.forward import AtomForwardModel
from cryostar_engine.atom.graph import build_graph
from cryostar_engine.atom.inputs import load_atom_inputs, signal_overlap
from cryostar_engine.errors import InputError
from cryostar_engine.io.pdb import read_beads, write_beads_pdb

from conftest import ADK_REF

ASTIG_STAR = ADK_REF.parents[1] / "adk_astig48" / "particles.star"
Z = {"C": 6, "N": 7, "O": 8, "S": 16}


def _centres_from_pdb_text(path):
    """Electron-weighted residue centres read straight from the PDB columns (independent of
    Biopython and of our reader)."""
    sums = {}
    for line in open(path):
        if line.startswith("ATOM"):
            key = (line[21], int(line[22:26]))
            xyz = np.array([float(line[30:38]), float(line[38:46]), float(line[46:54])])
            w = Z[line[76:78].strip()]
            s = sums.setdefault(key, [np.zeros(3), 0.0])
            s[0] += w * xyz
            s[1] += w
    return np.array([s[0] / s[1] for s in sums.values()])


@pytest.fixture(scope="module")
def adk():
    beads = read_beads(ADK_REF)
    return beads, residue_centres(beads, build_graph(beads).continuity)


def test_reference_renders_at_the_residue_centres(adk):
    beads, centres = adk
    got = scattering_centres(torch.as_tensor(beads.coords_A).float()[None], centres)[0].numpy()
    expected = _centres_from_pdb_text(ADK_REF)
    assert np.abs(got - expected).max() < 1e-4
    # the centres are not the Cα atoms: 1.3 Å away on average (towards the side chains)
    assert np.sqrt(((expected - beads.coords_A) ** 2).sum(1).mean()) > 1.0


def test_centres_move_rigidly_with_the_structure(adk):
    beads, centres = adk
    x0 = torch.as_tensor(beads.coords_A).float()[None]
    c0 = scattering_centres(x0, centres)
    rot = torch.as_tensor(Rotation.from_euler("zyz", [40, 70, -20], degrees=True).as_matrix()).float()
    shift = torch.tensor([3.0, -2.0, 5.0])
    moved = scattering_centres(x0 @ rot.T + shift, centres)
    assert (moved - (c0 @ rot.T + shift)).abs().max() < 1e-4
    # offsets that do not turn with the backbone would miss by more than an ångström
    fixed = x0 @ rot.T + shift + (c0 - x0)
    assert (fixed - (c0 @ rot.T + shift)).norm(dim=-1).mean() > 1.0


def test_a_bead_only_model_renders_at_its_beads(adk, tmp_path):
    beads, _ = adk
    write_beads_pdb(tmp_path / "beads.pdb", beads, beads.coords_A[None])
    bead_only = read_beads(tmp_path / "beads.pdb")
    centres = residue_centres(bead_only, build_graph(bead_only).continuity)
    x = torch.as_tensor(bead_only.coords_A).float()[None]
    assert (scattering_centres(x, centres) - x).abs().max() < 1e-5


def _overlap(bead_centre, offsets_sign=1.0):
    cfg = AtomConfig(particles=str(ASTIG_STAR), model=str(ADK_REF), out="unused", low_pass_A=6.0,
                     bead_sigma_A=2.0)
    inputs = load_atom_inputs(cfg)
    ds, beads = inputs.dataset, inputs.reference.beads
    beads = dataclasses.replace(beads, centre_offsets_A=offsets_sign * beads.centre_offsets_A)
    centres = residue_centres(beads, inputs.graph.continuity) if bead_centre == "residue" else None
    forward = AtomForwardModel(ds.box, ds.apix, torch.as_tensor(beads.amplitudes), cfg.bead_sigma_A,
                               cfg.low_pass_A, cfg.mask_radius, "cpu", centres=centres)
    return signal_overlap(forward, ds, torch.as_tensor(beads.coords_A).float(), "cpu", n=150)


def test_residue_centres_fit_independently_simulated_particles_better():
    """Noiseless full-atom particles (cryojax, frame 48) against the frame-48 model rendered
    both ways: the residue centres explain the images better than the Cα atoms (0.97 vs 0.95),
    and offsets of the wrong sign clearly worse."""
    backbone = _overlap("backbone")
    residue = _overlap("residue")
    wrong = _overlap("residue", offsets_sign=-1.0)
    assert residue > backbone + 0.01
    assert wrong < backbone - 0.01


def test_unknown_bead_centre_is_refused(tmp_path):
    """Refused when the config is built, before any input is read."""
    with pytest.raises(InputError, match="--bead-centre 'side-chain'"):
        AtomConfig(particles=str(ASTIG_STAR), model=str(ADK_REF), out=str(tmp_path / "r"),
                   bead_centre="side-chain")


def _atoms_from_pdb_text(path):
    """(K, 3) atom coordinates and (K,) atomic numbers read straight from the PDB columns."""
    xyz, z = [], []
    for line in open(path):
        if line.startswith("ATOM"):
            xyz.append([float(line[30:38]), float(line[38:46]), float(line[46:54])])
            z.append(Z[line[76:78].strip()])
    return np.array(xyz), np.array(z, float)


def test_atoms_mode_renders_the_reference_atoms_and_carries_them_rigidly():
    """``--bead-centre atoms``: at the reference the scattering points are the PDB's atoms with
    their atomic numbers; a rigid motion of the beads moves every atom rigidly (an atom offset
    left unrotated would miss by over an ångström)."""
    from cryostar_engine.atom.centres import atom_scatterers, scatterers
    beads = read_beads(ADK_REF)
    atoms = atom_scatterers(beads, build_graph(beads).continuity)
    xyz, z = _atoms_from_pdb_text(ADK_REF)
    x0 = torch.as_tensor(beads.coords_A).float()[None]
    got = scattering_centres(x0, atoms)[0].numpy()
    assert got.shape == xyz.shape and np.abs(got - xyz).max() < 1e-4
    assert np.array_equal(atoms.amplitudes.numpy(), z.astype(np.float32))
    assert float(atoms.amplitudes.sum()) == pytest.approx(beads.amplitudes.sum())
    rot = torch.as_tensor(Rotation.from_euler("zyz", [40, 70, -20], degrees=True).as_matrix()).float()
    shift = torch.tensor([3.0, -2.0, 5.0])
    moved = scattering_centres(x0 @ rot.T + shift, atoms)
    a0 = torch.as_tensor(got)[None]
    assert (moved - (a0 @ rot.T + shift)).abs().max() < 1e-4
    owner = atoms.point_bead
    unturned = (x0 @ rot.T + shift)[:, owner] + (a0 - x0[:, owner])
    assert (unturned - (a0 @ rot.T + shift)).norm(dim=-1).mean() > 1.0
    # the mode switch: residue centres one per bead, atoms one per atom, backbone none
    cont = build_graph(beads).continuity
    assert scatterers("residue", beads, cont).local_offsets.shape[0] == len(beads)
    assert scatterers("atoms", beads, cont).local_offsets.shape[0] == len(xyz)
    assert scatterers("backbone", beads, cont) is None


def test_atoms_mode_images_match_the_atomic_density_better_than_one_bead_per_residue():
    """The forward model in atoms mode renders the reference's atomic density: its image agrees
    with a projection of the atoms themselves (Gaussians of 1 Å at every atom, rendered
    independently here) exactly, where one Gaussian per residue differs."""
    from cryostar_engine.atom.centres import scatterers
    from cryostar_engine.physics.render import project_beads
    beads = read_beads(ADK_REF)
    cont = build_graph(beads).continuity
    xyz, z = _atoms_from_pdb_text(ADK_REF)
    centre = beads.coords_A.mean(0)
    x0 = torch.as_tensor(beads.coords_A - centre).float()[None]
    truth = project_beads(torch.as_tensor(xyz - centre).float()[None], torch.as_tensor(z).float(),
                          1.0, 48, 1.5)
    def image(mode, sigma):
        c = scatterers(mode, beads, cont)
        amps = c.amplitudes if c.amplitudes is not None else torch.as_tensor(beads.amplitudes).float()
        return project_beads(scattering_centres(x0, c), amps, sigma, 48, 1.5)
    def corr(a, b):
        return float((a * b).sum() / (a.norm() * b.norm()))
    assert corr(image("atoms", 1.0), truth) > 0.9999
    assert corr(image("residue", 2.0), truth) < 0.99


def test_groups_mode_points_are_the_electron_weighted_group_centres():
    """``--bead-centre groups``: one point per residue's backbone (N, Cα, C, O) and one per side
    chain (none for glycine), at the group's electron-weighted centre computed independently
    here from the PDB text, with the group's atomic numbers summed, carried rigidly; its image in
    a 5 Å band is 5x closer to the atomic density's than one Gaussian per residue."""
    from cryostar_engine.atom.centres import scatterers
    from cryostar_engine.physics.fourier import lowpass_mask_rfft
    from cryostar_engine.physics.render import project_beads
    beads = read_beads(ADK_REF)
    cont = build_graph(beads).continuity
    groups = scatterers("groups", beads, cont)
    n_gly = int((beads.res_names == "GLY").sum())
    assert groups.local_offsets.shape[0] == 2 * len(beads) - n_gly
    assert float(groups.amplitudes.sum()) == pytest.approx(beads.amplitudes.sum())
    # residue 0's backbone point, from the file's own lines
    first = [ln for ln in ADK_REF.read_text().splitlines() if ln.startswith("ATOM")
             and int(ln[22:26]) == beads.res_ids[0] and ln[12:16].strip() in ("N", "CA", "C", "O")]
    xyz = np.array([[float(ln[30:38]), float(ln[38:46]), float(ln[46:54])] for ln in first])
    z = np.array([{"N": 7, "C": 6, "O": 8}[ln[76:78].strip()] for ln in first], float)
    x0 = torch.as_tensor(beads.coords_A).float()[None]
    got = scattering_centres(x0, groups)[0].numpy()
    assert np.abs(got[0] - (z[:, None] * xyz).sum(0) / z.sum()).max() < 1e-3
    assert float(groups.amplitudes[0]) == z.sum()
    rot = torch.as_tensor(Rotation.from_euler("zyz", [10, 50, 80], degrees=True).as_matrix()).float()
    moved = scattering_centres(x0 @ rot.T, groups)[0]
    assert (moved - torch.as_tensor(got) @ rot.T).abs().max() < 1e-4
    # images in a 5 Å band against the atoms' own
    band = lowpass_mask_rfft(48, 1.5, 5.0)
    centre = torch.as_tensor(beads.coords_A.mean(0)).float()
    def image(mode, sigma):
        c = scatterers(mode, beads, cont)
        amps = c.amplitudes if c.amplitudes is not None else torch.as_tensor(beads.amplitudes).float()
        proj = project_beads(scattering_centres(x0 - centre, c), amps, sigma, 48, 1.5)
        return torch.fft.irfft2(torch.fft.rfft2(proj) * band, s=(48, 48))
    def misfit(a, b):
        return 1 - float((a * b).sum() / (a.norm() * b.norm()))
    truth = image("atoms", 1.0)
    assert misfit(image("groups", 1.3), truth) < 0.2 * misfit(image("residue", 2.0), truth)


def test_groups_mode_on_nucleotides():
    """A nucleotide gets three points (phosphate, sugar, base; two at a 5′ end without a
    phosphate), an amino acid two (one for glycine), all amplitudes kept."""
    from cryostar_engine.atom.centres import atom_groups, scatterers
    ref = Path(__file__).parent / "data" / "protein_rna" / "ref_frame048.pdb"
    beads = read_beads(ref)
    groups = scatterers("groups", beads, build_graph(beads).continuity)
    per_bead = np.bincount(groups.point_bead.numpy(), minlength=len(beads))
    nt = beads.is_nucleotide
    assert nt.any() and set(per_bead[nt]) <= {2, 3} and (per_bead[nt] == 3).mean() > 0.9
    assert set(per_bead[~nt]) <= {1, 2}
    names = beads.model_atom_names[atom_groups(beads) == 2]
    assert {"N1", "C2"} <= set(names) and "P" not in set(names)          # base atoms, no phosphate
    assert float(groups.amplitudes.sum()) == pytest.approx(beads.amplitudes.sum())
