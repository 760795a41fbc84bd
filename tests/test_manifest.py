"""Manifests and the user frame, end to end: a small stage-1 run on a model docked against a
corner-origin map (origin 0, so the model sits at +48 Å), its analysis, eval-atom and a small
density run.  Every folder's manifest lists exactly the files in it, and every model and volume
comes back in the frame of the input model and map."""
import json
from types import SimpleNamespace

import mrcfile
import numpy as np
import pytest
from conftest import ADK_MAP, ADK_REF, ADK_STAR

from cryostar_engine.atom.evaluate import load_decoder
from cryostar_engine.cli import main as cli
from cryostar_engine.density.results import density_frame
from cryostar_engine.errors import InputError
from cryostar_engine.io import read_beads, read_map
from cryostar_engine.io.mrc import write_mrc
from test_analysis_outputs import pdb_models
from test_chimerax_scripts import check_cxc_file
from test_lowpass import shifted_pdb

SHIFT = np.array([-48.0, -48.0, -48.0])      # box frame = file + SHIFT


def listing(folder, skip=()):
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")
                  if p.is_file() and not p.relative_to(folder).parts[0] in skip)


def check_manifest(folder, kind, skip=()) -> dict:
    man = json.loads((folder / "manifest.json").read_text())
    assert man["schema"].startswith(f"cryostar-{kind}/") and man["kind"] == kind
    assert man["engine_version"] and man["status"] == "finished"
    assert man["files"] == listing(folder, skip), "the manifest must list exactly the folder's files"
    for name in man["checkpoints"] + [f for s in man["series"].values() for f in s] + \
            list(man["cxc"].values()):
        assert name in man["files"], name
    steps = [int(c.split("_")[-1][:-3]) for c in man["checkpoints"]]
    assert steps == sorted(steps)
    for name in man["cxc"].values():
        assert check_cxc_file(folder / name) == [], name
    return man


@pytest.fixture(scope="module")
def corner(tmp_path_factory):
    d = tmp_path_factory.mktemp("corner")
    write_mrc(d / "corner.mrc", read_map(ADK_MAP).data, 2.0, origin_A=[0.0, 0.0, 0.0])
    return shifted_pdb(ADK_REF, d / "corner.pdb", -SHIFT), d / "corner.mrc"


@pytest.fixture(scope="module")
def atom_run(corner, tmp_path_factory):
    model, corner_map = corner
    run = tmp_path_factory.mktemp("atom") / "run"
    assert cli(["train-atom", "--particles", str(ADK_STAR), "--model", str(model),
                "--map", str(corner_map), "--out", str(run), "--box", "32", "--epochs", "1",
                "--threads", "1"]) == 0
    return run


def test_stage1_manifest_records_the_frame_and_lists_every_file(atom_run, corner):
    model, corner_map = corner
    man = check_manifest(atom_run, "atom", skip=("analysis",))
    assert man["frame"] == {"shift_A": SHIFT.tolist(), "source": "map",
                            "map": str(corner_map.resolve()), "map_origin_A": [0.0, 0.0, 0.0]}
    assert (man["box_px"], man["apix_A"]) == (32, 3.0) and len(man["checkpoints"]) >= 1
    assert man["low_pass"]["A"] > 0 and man["low_pass"]["source"]
    # the reference is written in the input model's frame: its beads are the file's CA atoms
    ref = pdb_models(atom_run / man["reference"])[0]
    np.testing.assert_allclose(ref, read_beads(model).coords_A, atol=1e-3)


def test_analysis_and_eval_atom_write_models_in_the_input_frame(atom_run, tmp_path):
    assert cli(["analyze", "--run", str(atom_run), "--k", "3", "--pcs", "1", "--points", "4",
                "--no-umap"]) == 0
    out = atom_run / "analysis"
    man = check_manifest(out, "analysis")
    assert man["frame"]["shift_A"] == SHIFT.tolist() and man["box_px"] == 32
    assert set(man["series"]) == {"kmeans", "pca_1"} and len(man["series"]["pca_1"]) == 4
    decode, _ = load_decoder(atom_run)
    z = np.load(atom_run / "z.npy")
    ind = np.loadtxt(out / "z_pca_1_ind.txt", dtype=int)
    box_frame = decode(z[ind])
    np.testing.assert_allclose(pdb_models(out / "pca_1.pdb"), box_frame - SHIFT, atol=1e-3)
    np.testing.assert_allclose(pdb_models(out / man["series"]["pca_1"][2])[0], box_frame[2] - SHIFT,
                               atol=1e-3)
    # the scripts open the run's own map (origin 0) as it is: it overlays the models
    cmds = [ln for ln in (out / "pca_1.cxc").read_text().splitlines() if not ln.startswith("#")]
    assert cmds[0] == f"open {man['frame']['map']}" and not any("origin" in c for c in cmds)
    # the run's manifest still lists only the run's own files (analysis/ has its own)
    check_manifest(atom_run, "atom", skip=("analysis",))
    np.save(tmp_path / "z2.npy", z[:2])
    assert cli(["eval-atom", "--run", str(atom_run), "--z", str(tmp_path / "z2.npy"),
                "--out", str(tmp_path / "two.pdb")]) == 0
    np.testing.assert_allclose(pdb_models(tmp_path / "two.pdb"), decode(z[:2]) - SHIFT, atol=1e-3)
    np.save(tmp_path / "one.npy", z[3])                  # one latent vector as a 1-D array
    assert cli(["eval-atom", "--run", str(atom_run), "--z", str(tmp_path / "one.npy"),
                "--out", str(tmp_path / "one.pdb")]) == 0
    np.testing.assert_allclose(pdb_models(tmp_path / "one.pdb"), decode(z[3:4]) - SHIFT, atol=1e-3)


def test_density_volumes_overlay_the_input_map(atom_run, tmp_path):
    """train-density takes the frame from the stage-1 manifest next to --z: its volumes carry
    the corner map's origin (0), so they overlay it and the input model."""
    run = tmp_path / "density"
    assert cli(["train-density", "--particles", str(ADK_STAR), "--z", str(atom_run / "z.npy"),
                "--out", str(run), "--box", "16", "--hidden", "32", "--residual-layers", "1",
                "--epochs", "1", "--batch", "64", "--k", "2", "--pcs", "1", "--points", "2",
                "--device", "cpu", "--threads", "1"]) == 0
    man = check_manifest(run, "density")
    assert man["frame"]["shift_A"] == SHIFT.tolist() and (man["box_px"], man["apix_A"]) == (16, 6.0)
    assert set(man["series"]) == {"kmeans", "pca_1"} and man["cxc"] == {"volumes": "volumes.cxc"}
    for name in man["series"]["kmeans"] + man["series"]["pca_1"]:
        with mrcfile.open(run / name) as m:
            origin = [float(m.header.origin.x), float(m.header.origin.y), float(m.header.origin.z)]
        assert origin == pytest.approx([0.0, 0.0, 0.0]) == man["origin_A"]
    # voxel D'//2 = 8 (6 Å voxels) is the box centre, i.e. +48 Å in the corner map's frame
    assert man["origin_A"][0] + 8 * 6.0 == pytest.approx(-SHIFT[0])
    vols = tmp_path / "eval"
    np.save(tmp_path / "z1.npy", np.load(atom_run / "z.npy")[:1])
    assert cli(["eval-density", "--run", str(run), "--z", str(tmp_path / "z1.npy"),
                "--out", str(vols), "--device", "cpu"]) == 0
    ev = check_manifest(vols, "density-eval")
    assert ev["frame"] == man["frame"] and ev["origin_A"] == man["origin_A"]


def test_density_frame_from_a_map_or_the_box(corner, tmp_path):
    _, corner_map = corner
    given = density_frame(SimpleNamespace(map=str(corner_map), z_path=str(tmp_path / "z.npy")), 48, 2.0)
    assert given.shift_A == tuple(SHIFT) and given.volume_origin_A(48, 2.0) == [0.0, 0.0, 0.0]
    with pytest.raises(InputError, match="map is 48 px × 2 Å = 96 Å across but the particles are 64 px"):
        density_frame(SimpleNamespace(map=str(corner_map), z_path="z.npy"), 64, 2.0)
    bare = density_frame(SimpleNamespace(map=None, z_path=str(tmp_path / "z.npy")))
    assert bare.source == "as-is" and bare.volume_origin_A(48, 2.0) == [-48.0] * 3


def test_manifest_listing_rules_and_the_check_fails_on_an_unlisted_file(tmp_path):
    from cryostar_engine.train.manifest import write_manifest

    (tmp_path / "checkpoints").mkdir()
    for name in ("z.npy", "checkpoints/step_0000010.pt", "checkpoints/step_0000002.pt",
                 ".z.npy.abc.tmp", "sub/a.txt", "analysis/x.png"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x")
    (tmp_path / "analysis" / "manifest.json").write_text("{}")     # a folder with its own manifest
    man = write_manifest(tmp_path, "atom", "finished", 32, 3.0, series={"a": ["z.npy"]})
    assert man["files"] == ["checkpoints/step_0000002.pt", "checkpoints/step_0000010.pt",
                            "manifest.json", "sub/a.txt", "z.npy"]
    assert man["checkpoints"] == ["checkpoints/step_0000002.pt", "checkpoints/step_0000010.pt"]
    assert man["frame"] == {"shift_A": [0.0, 0.0, 0.0], "source": "as-is", "map": None,
                            "map_origin_A": None}
    (tmp_path / ".z.npy.abc.tmp").unlink()
    check_manifest(tmp_path, "atom", skip=("analysis",))
    (tmp_path / "late.png").write_text("x")          # written after the manifest: caught
    with pytest.raises(AssertionError, match="exactly the folder's files"):
        check_manifest(tmp_path, "atom", skip=("analysis",))


def test_run_log_states_the_low_pass_and_the_frame(atom_run):
    log = (atom_run / "run.log").read_text()
    man = json.loads((atom_run / "manifest.json").read_text())
    assert f"low-pass {man['low_pass']['A']:.1f} Å ({man['low_pass']['source']})" in log
    assert "model frame: map, shift (-48.0, -48.0, -48.0) Å" in log


def test_load_decoder_gives_box_frame_beads_and_structures(atom_run, corner):
    """The run's reference PDB is in the user frame; the decoder and its beads stay in the box
    frame (what the figures compare with box-frame truths)."""
    model, _ = corner
    decode, beads = load_decoder(atom_run)
    np.testing.assert_allclose(beads.coords_A, read_beads(model).coords_A + SHIFT, atol=1e-3)
    z = np.load(atom_run / "z.npy")[:5]
    assert np.abs(decode(z) - beads.coords_A).max() < 20.0


TINY_DENSITY = ["--box", "16", "--hidden", "32", "--residual-layers", "1", "--epochs", "1",
                "--batch", "64", "--k", "2", "--pcs", "1", "--points", "2", "--device", "cpu",
                "--threads", "1"]


def test_train_density_map_sets_the_frame_and_a_wrong_map_is_refused(corner, tmp_path, capsys):
    _, corner_map = corner
    np.save(tmp_path / "z.npy", np.random.default_rng(0).standard_normal((384, 2)).astype(np.float32))
    run = tmp_path / "run"
    assert cli(["train-density", "--particles", str(ADK_STAR), "--z", str(tmp_path / "z.npy"),
                "--map", str(corner_map), "--out", str(run), *TINY_DENSITY]) == 0
    man = check_manifest(run, "density")
    assert man["frame"]["source"] == "map" and man["origin_A"] == [0.0, 0.0, 0.0]
    small = tmp_path / "small.mrc"
    write_mrc(small, read_map(ADK_MAP).data[8:40, 8:40, 8:40], 2.0)
    capsys.readouterr()
    assert cli(["train-density", "--particles", str(ADK_STAR), "--z", str(tmp_path / "z.npy"),
                "--map", str(small), "--out", str(tmp_path / "bad"), *TINY_DENSITY]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "map is 32 px × 2 Å = 64 Å across but the particles are 48 px" in err[0]
    assert not (tmp_path / "bad").exists()
