"""RELION star files: 3.0 vs 3.1 layouts, optics groups, origins, image paths, bad input."""
import shutil

import mrcfile
import numpy as np
import pandas as pd
import pytest
import starfile

from cryostar_engine.errors import InputError
from cryostar_engine.io import read_particles, read_star_tables

from conftest import ADK_STAR, TRPV1_STAR

FIELDS = ["euler_deg", "shifts_A", "defocus_u_A", "defocus_v_A", "defocus_angle_deg",
          "phase_shift_deg", "bfactor_A2", "voltage_kv", "cs_mm", "amplitude_contrast"]


def copy_stack(tmp_path):
    shutil.copy(ADK_STAR.parent / "particles.mrcs", tmp_path / "particles.mrcs")


def write_30_style(tmp_path, origins_in_pixels=False):
    """The bundled 3.1 star rewritten as RELION 3.0: one table, optics values on every row."""
    optics, parts = read_star_tables(ADK_STAR)
    parts = parts.copy()
    for col in ["rlnVoltage", "rlnSphericalAberration", "rlnAmplitudeContrast"]:
        parts[col] = optics[col].iloc[0]
    parts["rlnDetectorPixelSize"] = 2.0
    parts["rlnMagnification"] = 10000.0
    if origins_in_pixels:
        parts["rlnOriginX"] = parts.pop("rlnOriginXAngst") / 2.0
        parts["rlnOriginY"] = parts.pop("rlnOriginYAngst") / 2.0
    parts = parts.drop(columns=["rlnOpticsGroup"])
    path = tmp_path / "relion30.star"
    starfile.write(parts, path)
    copy_stack(tmp_path)
    return path


@pytest.mark.parametrize("pixels", [False, True], ids=["origin-angst", "origin-pixels"])
def test_relion30_and_31_load_identically(tmp_path, adk_meta, pixels):
    meta30 = read_particles(write_30_style(tmp_path, origins_in_pixels=pixels))
    assert meta30.apix == adk_meta.apix and meta30.box == adk_meta.box
    for name in FIELDS:
        np.testing.assert_allclose(getattr(meta30, name), getattr(adk_meta, name), rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(meta30.image_indices, adk_meta.image_indices)


def test_two_optics_groups_give_each_particle_its_own_parameters(tmp_path, adk_meta):
    optics, parts = read_star_tables(ADK_STAR)
    g2 = optics.copy()
    g2["rlnOpticsGroup"] = 2
    g2["rlnOpticsGroupName"] = "opticsGroup2"
    g2["rlnVoltage"] = 200.0
    g2["rlnSphericalAberration"] = 1.4
    g2["rlnAmplitudeContrast"] = 0.07
    parts = parts.copy()
    parts.loc[parts.index % 2 == 1, "rlnOpticsGroup"] = 2
    path = tmp_path / "two_groups.star"
    starfile.write({"optics": pd.concat([optics, g2]), "particles": parts}, path)
    copy_stack(tmp_path)
    meta = read_particles(path)
    odd = np.arange(len(meta)) % 2 == 1
    assert (meta.voltage_kv[odd] == 200).all() and (meta.voltage_kv[~odd] == 300).all()
    assert (meta.cs_mm[odd] == 1.4).all() and (meta.cs_mm[~odd] == 2.7).all()
    assert (meta.amplitude_contrast[odd] == 0.07).all() and (meta.amplitude_contrast[~odd] == 0.1).all()
    np.testing.assert_array_equal(meta.optics_group, np.where(odd, 2, 1))


def test_real_trpv1_particles_and_datadir(tmp_path):
    meta = read_particles(TRPV1_STAR)
    assert len(meta) == 10 and meta.box == 48 and meta.apix == pytest.approx(4.88)
    assert (meta.optics_group == 7).all()
    # the same star moved elsewhere resolves its images through --datadir
    moved = tmp_path / "elsewhere.star"
    shutil.copy(TRPV1_STAR, moved)
    with pytest.raises(InputError, match="not found.*--datadir"):
        read_particles(moved)
    assert len(read_particles(moved, datadir=TRPV1_STAR.parent)) == 10


def _bad(tmp_path, edit, name="bad.star"):
    optics, parts = read_star_tables(ADK_STAR)
    optics, parts = edit(optics.copy(), parts.copy())
    path = tmp_path / name
    starfile.write({"optics": optics, "particles": parts} if optics is not None else parts, path)
    if not (tmp_path / "particles.mrcs").exists():
        copy_stack(tmp_path)
    return path


@pytest.mark.parametrize("edit, message", [
    (lambda o, p: (o, p.drop(columns=["rlnAngleTilt"])), "missing pose column.*rlnAngleTilt"),
    (lambda o, p: (o, p.drop(columns=["rlnDefocusU"])), "missing CTF column.*rlnDefocusU"),
    (lambda o, p: (o, p.iloc[:0]), "holds no particles"),
    (lambda o, p: (o, p.assign(rlnImageName=p.rlnImageName.where(p.index != 6, "000999@particles.mrcs"))),
     r"row 7: image 999@particles.mrcs is beyond the stack's 384 images"),
    (lambda o, p: (o.assign(rlnImageSize=64), p), "rlnImageSize.*differs"),
    (lambda o, p: (o, p.assign(rlnOpticsGroup=5)), r"optics group\(s\) \[5\]"),
], ids=["no-pose", "no-ctf", "empty", "index-beyond-stack", "box-mismatch", "unknown-optics-group"])
def test_bad_star_files_give_one_line_errors(tmp_path, edit, message):
    with pytest.raises(InputError, match=message) as err:
        read_particles(_bad(tmp_path, edit))
    assert "\n" not in str(err.value)


def test_stacks_with_different_boxes_or_pixel_sizes_are_refused(tmp_path):
    with mrcfile.new(tmp_path / "other.mrcs") as m:
        m.set_data(np.zeros((4, 32, 32), np.float32))
    path = _bad(tmp_path, lambda o, p: (o, p.assign(rlnImageName=p.rlnImageName.where(
        p.index != 0, "000001@other.mrcs"))))
    with pytest.raises(InputError, match="different box sizes"):
        read_particles(path)
    two = _bad(tmp_path, lambda o, p: (pd.concat([o, o.assign(rlnOpticsGroup=2, rlnImagePixelSize=1.5)]),
                                       p.assign(rlnOpticsGroup=np.where(p.index < 10, 2, 1))), "px.star")
    with pytest.raises(InputError, match=r"optics groups have pixel sizes 1.5, 2 Å \([0-9.]+% apart, more than the 1%"):
        read_particles(two)


def test_truncated_stack_is_reported(tmp_path):
    copy_stack(tmp_path)
    data = (tmp_path / "particles.mrcs").read_bytes()
    (tmp_path / "particles.mrcs").write_bytes(data[: len(data) // 2])
    shutil.copy(ADK_STAR, tmp_path / "p.star")
    with pytest.raises(InputError, match="unreadable or truncated"):
        read_particles(tmp_path / "p.star")
