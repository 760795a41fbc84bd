"""cryoSPARC ``.cs`` input: the same particles read from a ``.cs`` file and from the STAR file
give the same poses, shifts, CTF and back-projection; a real cryoSPARC file's poses equal
cryoDRGN's reading of it; wrong conventions are caught.

The ``.cs`` files of the bundled set are written here by an independent writer (scipy's
rotation vectors, not the engine's pose code) following cryoSPARC's layout.
"""
from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import mrcfile
import numpy as np
import pytest
import starfile
import torch
from scipy.spatial.transform import Rotation

from cryostar_engine.cli import main as cli_main
from cryostar_engine.data.particles import ParticleDataset
from cryostar_engine.errors import InputError
from cryostar_engine.geometry.poses import euler_to_matrix
from cryostar_engine.io.cryosparc import load_cs, read_cryosparc, write_cs_subsets
from cryostar_engine.io.relion import read_particles
from cryostar_engine.metrics import correlation
from cryostar_engine.recon.backproject import Backprojector

ROOT = Path(__file__).resolve().parents[1]
SIM = ROOT / "data" / "adk_sim48"
REAL = Path(__file__).parent / "data" / "real_cs"
REAL_CS = REAL / "cryodrgn_cryosparc_P12_J24_001_particles.cs"


def _dtype(n_path: int, with_poses: bool = True) -> list:
    fields = [("uid", "<u8"), ("blob/path", f"S{n_path}"), ("blob/idx", "<u4"),
              ("blob/shape", "<u4", (2,)), ("blob/psize_A", "<f4"), ("blob/sign", "<f4"),
              ("ctf/exp_group_id", "<u4"), ("ctf/accel_kv", "<f4"), ("ctf/cs_mm", "<f4"),
              ("ctf/amp_contrast", "<f4"), ("ctf/df1_A", "<f4"), ("ctf/df2_A", "<f4"),
              ("ctf/df_angle_rad", "<f4"), ("ctf/phase_shift_rad", "<f4"), ("ctf/bfactor", "<f4"),
              ("ctf/scale", "<f4")]
    if with_poses:
        fields += [("alignments3D/shift", "<f4", (2,)), ("alignments3D/pose", "<f4", (3,)),
                   ("alignments3D/psize_A", "<f4")]
    return fields


def write_cs_from_star(star: Path, project: Path, job: str = "J7", *, transpose=False,
                       flip_shift=False, split=False) -> tuple[Path, Path | None]:
    """Write ``star``'s particles as cryoSPARC would: PROJECT/JOB/JOB_particles.cs with the
    stack at PROJECT/JOB/extract/particles.mrcs ('>'-prefixed path relative to the project).

    RELION (rot, tilt, psi) → rotation vector ``Rotation.from_euler('ZYZ', ...).as_rotvec()``
    (its matrix is the transpose of RELION's A matrix); rlnOrigin*Angst / pixel size → shift in
    pixels, same sign.  ``split`` puts poses in a passthrough file (returned second).
    """
    blocks = starfile.read(star, always_dict=True)
    optics, parts = blocks["optics"].iloc[0], blocks["particles"]
    apix, box = float(optics["rlnImagePixelSize"]), int(optics["rlnImageSize"])
    (project / job / "extract").mkdir(parents=True, exist_ok=True)
    names = parts["rlnImageName"].str.partition("@")
    shutil.copy(star.parent / names[2].iloc[0], project / job / "extract" / "particles.mrcs")
    rel = f">{job}/extract/particles.mrcs".encode()
    euler = parts[["rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi"]].to_numpy(float)
    rotvec = Rotation.from_euler("ZYZ", euler, degrees=True).as_rotvec()
    if transpose:
        rotvec = -rotvec
    shift = parts[["rlnOriginXAngst", "rlnOriginYAngst"]].to_numpy(float) / apix
    n = len(parts)
    t = np.zeros(n, dtype=_dtype(len(rel)))
    t["uid"] = np.random.default_rng(1).choice(2 ** 62, n, replace=False).astype(np.uint64) + 2 ** 62
    t["blob/path"], t["blob/idx"] = rel, names[0].astype(int).to_numpy() - 1
    t["blob/shape"], t["blob/psize_A"], t["blob/sign"] = box, apix, 1.0
    t["ctf/accel_kv"], t["ctf/cs_mm"] = optics["rlnVoltage"], optics["rlnSphericalAberration"]
    t["ctf/amp_contrast"] = optics["rlnAmplitudeContrast"]
    t["ctf/df1_A"], t["ctf/df2_A"] = parts["rlnDefocusU"], parts["rlnDefocusV"]
    t["ctf/df_angle_rad"] = np.deg2rad(parts["rlnDefocusAngle"])
    t["ctf/phase_shift_rad"] = np.deg2rad(parts["rlnPhaseShift"])
    t["ctf/bfactor"], t["ctf/scale"] = parts["rlnCtfBfactor"], 1.0
    t["alignments3D/shift"] = -shift if flip_shift else shift
    t["alignments3D/pose"], t["alignments3D/psize_A"] = rotvec, apix
    main = project / job / f"{job}_particles.cs"
    if not split:
        _save(main, t)
        return main, None
    own = [f for f in t.dtype.names if not f.startswith("alignments3D/")]
    passthrough = project / job / f"{job}_passthrough_particles.cs"
    order = np.random.default_rng(2).permutation(n)            # another row order: join on uid
    _save(main, _fields(t, own))
    _save(passthrough, _fields(t[order], ["uid", "alignments3D/shift", "alignments3D/pose",
                                          "alignments3D/psize_A"]))
    return main, passthrough


def _fields(table, names):
    out = np.zeros(len(table), dtype=[table.dtype.descr[table.dtype.names.index(n)] for n in names])
    for name in names:
        out[name] = table[name]
    return out


def _save(path: Path, table) -> None:
    with open(path, "wb") as f:
        np.save(f, table)


def _backprojection(meta) -> torch.Tensor:
    ds = ParticleDataset(meta, max_cache_bytes=0)
    bp = Backprojector(ds.box, ds.apix)
    rows = np.arange(len(meta))
    for start in range(0, len(rows), 128):
        b = ds.batch(rows[start:start + 128])
        bp.add(b.images, b.rotations, b.shifts_px, b.ctf)
    return bp.volume()


@pytest.fixture(scope="module")
def star_route():
    meta = read_particles(SIM / "particles.star")
    return meta, _backprojection(meta)


def test_cs_reads_like_the_star(tmp_path, star_route):
    meta_star, _ = star_route
    cs, _ = write_cs_from_star(SIM / "particles.star", tmp_path)
    meta = read_particles(cs, datadir=tmp_path)
    assert len(meta) == len(meta_star) == 384 and meta.box == 48 and meta.apix == pytest.approx(2.0)
    assert np.abs(euler_to_matrix(meta.euler_deg) - euler_to_matrix(meta_star.euler_deg)).max() < 1e-5
    assert np.allclose(meta.shifts_A, meta_star.shifts_A, atol=1e-5)
    for key in ("defocus_u_A", "defocus_v_A", "defocus_angle_deg", "phase_shift_deg", "voltage_kv",
                "cs_mm", "amplitude_contrast", "bfactor_A2", "scale", "optics_group"):
        assert np.allclose(getattr(meta, key), getattr(meta_star, key), rtol=1e-6, atol=1e-4), key
    assert np.array_equal(meta.image_indices, meta_star.image_indices)
    assert meta.image_paths[0] == tmp_path / "J7" / "extract" / "particles.mrcs"
    moved = tmp_path / "a" / "b"                   # the stacks' own folder as --datadir
    moved.mkdir(parents=True)
    shutil.copy(cs, moved / cs.name)
    assert read_particles(moved / cs.name, datadir=tmp_path / "J7" / "extract").image_paths[0] == \
        tmp_path / "J7" / "extract" / "particles.mrcs"
    with pytest.raises(InputError, match=r"row 1: image stack 'J7/extract/particles.mrcs' \(blob/path\) "
                                         r"not found .*pass --datadir <the cryoSPARC project folder>"):
        read_particles(moved / cs.name)


def test_passthrough_is_joined_on_uid(tmp_path, star_route):
    meta_star, _ = star_route
    cs, passthrough = write_cs_from_star(SIM / "particles.star", tmp_path, split=True)
    with pytest.raises(InputError, match=r"no 3-D poses \(field alignments3D/pose\): pass "
                                         r"--passthrough <the job's passthrough .cs>"):
        read_particles(cs, datadir=tmp_path)
    meta = read_particles(cs, datadir=tmp_path, passthrough=passthrough)
    assert np.abs(euler_to_matrix(meta.euler_deg) - euler_to_matrix(meta_star.euler_deg)).max() < 1e-5
    assert np.allclose(meta.shifts_A, meta_star.shifts_A, atol=1e-5)


def test_backprojection_equals_the_star_route(tmp_path, star_route):
    meta_star, bp_star = star_route
    cs, _ = write_cs_from_star(SIM / "particles.star", tmp_path)
    cc = correlation(_backprojection(read_particles(cs, datadir=tmp_path)), bp_star)
    assert cc >= 0.99


@pytest.mark.parametrize("fault", ["transpose", "flip_shift"])
def test_a_wrong_convention_changes_the_backprojection(tmp_path, star_route, fault):
    _, bp_star = star_route
    cs, _ = write_cs_from_star(SIM / "particles.star", tmp_path, **{fault: True})
    cc = correlation(_backprojection(read_particles(cs, datadir=tmp_path)), bp_star)
    assert cc < 0.9, cc


def _real_project(root: Path, cs: Path = REAL_CS, box: int = 180) -> Path:
    """A cryoSPARC project folder with ``cs`` in job J24 and empty stand-in stacks."""
    table = load_cs(cs)
    need: dict[str, int] = {}
    for path, idx in zip(table["blob/path"], table["blob/idx"]):
        text = path.decode().lstrip(">")
        need[text] = max(need.get(text, 0), int(idx) + 1)
    for text, n in need.items():
        (root / text).parent.mkdir(parents=True, exist_ok=True)
        with mrcfile.new_mmap(root / text, shape=(n, box, box), mrc_mode=2, overwrite=True):
            pass
    (root / "J24").mkdir(exist_ok=True)
    return Path(shutil.copy(cs, root / "J24" / cs.name))


def test_real_cs_poses_equal_cryodrgns_reading(tmp_path):
    """cryoDRGN's parse_pose_csparc output for this file (pose.cs.pkl: RELION A matrices, and
    shifts / box with the sign of rlnOrigin) pins the conventions."""
    cs = _real_project(tmp_path)
    meta = read_cryosparc(cs)
    with open(REAL / "cryodrgn_pose.cs.pkl", "rb") as f:
        rot, trans = pickle.load(f)
    assert len(meta) == 2019 and meta.box == 180 and meta.apix == pytest.approx(2.95)
    a = euler_to_matrix(meta.euler_deg)
    assert np.abs(a - rot).max() < 1e-5
    assert np.abs(np.swapaxes(a, -1, -2) - rot).max() > 0.5        # the transposed convention fails
    assert np.abs(meta.shifts_A / meta.apix - trans * 180).max() < 1e-4
    assert np.abs(-meta.shifts_A / meta.apix - trans * 180).max() > 1.0  # so does a flipped sign
    table = load_cs(cs)
    assert np.allclose(meta.defocus_u_A, table["ctf/df1_A"]) and meta.voltage_kv[0] == 200.0
    assert np.allclose(meta.defocus_angle_deg, np.rad2deg(table["ctf/df_angle_rad"].astype(float)))
    assert meta.amplitude_contrast[0] == pytest.approx(0.07) and meta.cs_mm[0] == 2.0
    assert any("blob/sign is -1" in n for n in meta.notes)


def test_real_cs_without_3d_poses_is_refused_in_one_line(tmp_path):
    cs = _real_project(tmp_path, ROOT / "tests" / "data" / "real_star" /
                       "cryodrgn_cryosparc_J2_particles_exported.cs", box=300)
    with pytest.raises(InputError) as err:
        read_cryosparc(cs)
    assert str(err.value) == (f"{cs}: no 3-D poses (field alignments3D/pose): pass --passthrough "
                              "<the job's passthrough .cs>")


def _broken(tmp_path, edit) -> Path:
    cs = _real_project(tmp_path)
    table = load_cs(cs)
    table = edit(table)
    _save(cs, table)
    return cs


@pytest.mark.parametrize("edit, message", [
    (lambda t: (t["alignments3D/pose"].__setitem__(4, np.nan), t)[1],
     "row 5: field alignments3D/pose is not a finite number"),
    (lambda t: (t["ctf/df1_A"].__setitem__(9, -1.0), t)[1], "row 10: ctf/df1_A -1 must be positive"),
    (lambda t: (t["blob/idx"].__setitem__(2, 999), t)[1], "row 3: blob/idx 999 is beyond the 51 images"),
    (lambda t: (t["blob/path"].__setitem__(0, b"J19/extract/gone.mrc"), t)[1],
     "row 1: image stack 'J19/extract/gone.mrc' (blob/path) not found"),
    (lambda t: _fields(t, [n for n in t.dtype.names if n != "ctf/cs_mm"]),
     "missing field(s) ctf/cs_mm; pass --passthrough"),
])
def test_bad_cs_is_refused_with_field_and_row(tmp_path, edit, message):
    cs = _broken(tmp_path, edit)
    with pytest.raises(InputError, match=re_escape(message)):
        read_cryosparc(cs)


def re_escape(text: str) -> str:
    import re
    return re.escape(text)


def test_not_a_cs_file_and_foreign_passthrough(tmp_path):
    bad = tmp_path / "x.cs"
    bad.write_text("data_particles\n")
    with pytest.raises(InputError, match="not a readable cryoSPARC .cs file"):
        read_cryosparc(bad)
    cs = _real_project(tmp_path)
    other = tmp_path / "other.cs"
    _save(other, np.zeros(3, dtype=[("uid", "<u8")]))
    with pytest.raises(InputError, match=r"row 1: uid \d+ is not in the passthrough"):
        read_cryosparc(cs, other)


def test_cs_subset_is_a_row_selection(tmp_path):
    cs = _real_project(tmp_path)
    mask = np.zeros(2019, bool)
    mask[[0, 5, 2018]] = True
    (out, k, n), = write_cs_subsets(cs, {tmp_path / "J24" / "subset.cs": mask})
    sub = np.load(out)
    assert (k, n) == (3, 2019) and sub.dtype == load_cs(cs).dtype
    assert np.array_equal(sub, load_cs(cs)[[0, 5, 2018]])
    assert np.allclose(read_cryosparc(out).euler_deg, read_cryosparc(cs).subset([0, 5, 2018]).euler_deg)
    with pytest.raises(InputError, match="the selection is empty"):
        write_cs_subsets(cs, {tmp_path / "empty.cs": np.zeros(2019, bool)})
    with pytest.raises(InputError, match=r"name --out \*.cs"):
        write_cs_subsets(cs, {tmp_path / "subset.star": mask})


def test_export_subset_of_a_cs_input_writes_a_cs(tmp_path, capsys):
    cs = _real_project(tmp_path)
    labels = np.arange(2019) % 3
    np.save(tmp_path / "labels.npy", labels)
    assert cli_main(["export-subset", "--particles", str(cs), "--labels", str(tmp_path / "labels.npy"),
                     "--keep", "1", "--out", str(tmp_path / "J24" / "state1.cs")]) == 0
    assert "selected 673 of 2019 particles" in capsys.readouterr().out
    assert np.array_equal(np.load(tmp_path / "J24" / "state1.cs"), load_cs(cs)[labels == 1])
    assert cli_main(["export-subset", "--particles", str(cs), "--labels", str(tmp_path / "labels.npy"),
                     "--keep", "1", "--out", str(tmp_path / "state1.star")]) == 2
    assert "a subset of a .cs input is written as .cs" in capsys.readouterr().err
    assert not (tmp_path / "state1.star").exists()


def test_train_atom_runs_on_a_cs_with_its_passthrough(tmp_path, monkeypatch):
    """The whole stage-1 input path (dataset, reference, signal check, steps) takes a .cs input;
    the run's config records both files."""
    import json
    cs, passthrough = write_cs_from_star(SIM / "particles.star", tmp_path, split=True)
    monkeypatch.setenv("CRYOSTAR_TEST_STOP_AFTER_STEPS", "2")
    run = tmp_path / "run"
    assert cli_main(["train-atom", "--particles", str(cs), "--passthrough", str(passthrough),
                     "--datadir", str(tmp_path), "--model", str(ROOT / "data" / "adk_models" /
                                                              "adk_ref_frame048.pdb"),
                     "--map", str(SIM / "ideal_map_frame048.mrc"), "--box", "24", "--batch", "16",
                     "--compile", "off", "--out", str(run)]) == 0
    config = json.loads((run / "config.json").read_text())
    assert config["particles"] == str(cs) and config["passthrough"] == str(passthrough)
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["step"] == 2 and manifest["particles"] == 384


def test_check_inputs_reports_the_same_for_cs_and_star(tmp_path, capsys):
    """check-inputs (particle summary, back-projection against the map) on the .cs equals the
    STAR route's."""
    import json
    cs, _ = write_cs_from_star(SIM / "particles.star", tmp_path)
    reports = []
    for name, particles in (("star", SIM / "particles.star"), ("cs", cs)):
        assert cli_main(["check-inputs", "--particles", str(particles), "--datadir", str(tmp_path),
                         "--model", str(ROOT / "data" / "adk_models" / "adk_ref_frame048.pdb"),
                         "--map", str(SIM / "ideal_map_frame048.mrc"), "--max-particles", "192",
                         "--out", str(tmp_path / name)]) == 0
        reports.append(json.loads((tmp_path / name / "report.json").read_text()))
    star, cs_report = reports
    assert cs_report["backprojection"]["correlation_lowpass"] == pytest.approx(
        star["backprojection"]["correlation_lowpass"], abs=1e-6)
    assert star["backprojection"]["correlation_lowpass"] > 0.9
    for key in ("count", "box_px", "apix_A", "defocus_A"):
        assert cs_report["particles"][key] == pytest.approx(star["particles"][key], rel=1e-6), key
    for cs_group, star_group in zip(cs_report["particles"]["optics_groups"],
                                    star["particles"]["optics_groups"], strict=True):
        assert cs_group == pytest.approx(star_group, rel=1e-6)


def test_cryosparc_pose_convention_against_scipy():
    """A = exp([v]x).T for any rotation vector, including the zero vector and angles past pi
    (cryoSPARC does not wrap them); a transposed reading would differ."""
    from cryostar_engine.geometry.poses import cryosparc_pose_to_euler, cryosparc_pose_to_matrix
    rng = np.random.default_rng(3)
    axes = rng.normal(size=(50, 3))
    v = axes / np.linalg.norm(axes, axis=1, keepdims=True) * rng.uniform(0, 2 * np.pi, (50, 1))
    v[0] = 0.0
    a = cryosparc_pose_to_matrix(v)
    expected = np.swapaxes(Rotation.from_rotvec(v).as_matrix(), -1, -2)
    assert np.abs(a - expected).max() < 1e-12 and np.allclose(a[0], np.eye(3))
    assert np.abs(euler_to_matrix(cryosparc_pose_to_euler(v)) - expected).max() < 1e-9
    assert np.abs(np.swapaxes(a, -1, -2) - expected)[1:].max() > 0.5


def test_train_density_runs_on_a_cs_with_its_passthrough(tmp_path, monkeypatch):
    import json
    cs, passthrough = write_cs_from_star(SIM / "particles.star", tmp_path, split=True)
    np.save(tmp_path / "z.npy", np.random.default_rng(0).normal(size=(384, 8)).astype(np.float32))
    monkeypatch.setenv("CRYOSTAR_TEST_STOP_AFTER_STEPS", "2")
    run = tmp_path / "density"
    assert cli_main(["train-density", "--particles", str(cs), "--passthrough", str(passthrough),
                     "--z", str(tmp_path / "z.npy"), "--box", "24", "--batch", "8",
                     "--out", str(run)]) == 0
    assert json.loads((run / "config.json").read_text())["passthrough"] == str(passthrough)
    monkeypatch.delenv("CRYOSTAR_TEST_STOP_AFTER_STEPS")
    (passthrough.parent / "no_poses.cs").write_bytes(cs.read_bytes())
    assert cli_main(["train-density", "--particles", str(passthrough.parent / "no_poses.cs"),
                     "--z", str(tmp_path / "z.npy"), "--out", str(tmp_path / "d2")]) == 2
    assert not (tmp_path / "d2").exists()


def test_per_class_poses_are_refused_with_what_to_do(tmp_path):
    """ab-initio / heterogeneous refinement outputs keep one pose per class: refused naming them."""
    cs = _real_project(tmp_path)
    table = load_cs(cs)
    renamed = table.dtype.descr
    renamed = [(n.replace("alignments3D/", "alignments_class_0/"), *rest) for n, *rest in renamed]
    other = np.zeros(len(table), dtype=renamed)
    for old, new in zip(table.dtype.names, other.dtype.names):
        other[new] = table[old]
    _save(cs, other)
    with pytest.raises(InputError, match=r"no 3-D poses \(field alignments3D/pose\): it has one pose per "
                                         r"class \(alignments_class_0/pose: ab-initio or heterogeneous"):
        read_cryosparc(cs)
