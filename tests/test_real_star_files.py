"""Real particle STAR files from other projects (RELION 3.0, 3.1 and 5 layouts; see
tests/data/real_star/README.md) are read, or refused with their documented line.

The files hold no images: each test writes stand-in stacks of the right size (zero-filled, as
sparse files) in a temporary folder given as --datadir.  Expected values are what the files
say (pixel size, box, count, per-particle voltage), and the poses must be the file's columns in
the file's order.
"""
from __future__ import annotations

from pathlib import Path

import mrcfile
import numpy as np
import pytest
import starfile

from cryostar_engine.cli import main
from cryostar_engine.data.particles import ParticleDataset
from cryostar_engine.errors import InputError
from cryostar_engine.io import read_particles

REAL = Path(__file__).parent / "data" / "real_star"


def stand_in_stacks(star: Path, root: Path, box: int = 32, fill=None) -> None:
    """Empty stacks under ``root`` for every ``N@path`` of ``star`` (box from data_optics
    rlnImageSize when present, else ``box``); ``fill(n, box)`` gives images instead of zeros."""
    blocks = starfile.read(star, always_dict=True)
    parts = blocks.get("particles", next(iter(blocks.values())))
    optics = blocks.get("optics")
    if optics is not None and "rlnImageSize" in optics:
        box = int(optics["rlnImageSize"].iloc[0])
    need: dict[str, int] = {}
    for name in parts["rlnImageName"].astype(str):
        index, _, path = name.partition("@")
        need[path] = max(need.get(path, 0), int(index))
    for path, n in need.items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        if fill is None:
            with mrcfile.new_mmap(target, shape=(n, box, box), mrc_mode=2, overwrite=True):
                pass
        else:
            mrcfile.write(target, fill(n, box), overwrite=True)


READ = {   # file: (particles, box px, pixel size Å, fragment of a note or None)
    "cryodrgn_relion31.star": (5, 256, 2.806, None),
    "cryodrgn_relion31.v2.star": (5, 256, 2.806, None),
    "cryodrgn_relion31.6opticsgroups.star": (
        139, 196, None, "optics groups have pixel sizes 1.24, 1.25 Å (0.80% apart): all particles "
                        "are treated at their mean"),
    "cryodrgn_relion5.star": (17, 448, 0.89, None),
    "cryodrgn_FinalRefinement-OriginalParticles-PfCRT.star": (
        5, 32, 1.035, "no _rlnAmplitudeContrast: 0.1 assumed, as RELION does"),
    "aspire_sample_particles_relion31.star": (17, 32, 1.4, None),
    "aspire_sample_particles_relion30.star": (17, 32, 5.0 / 37369.207031 * 1e4,
                                              "origins given in pixels"),
    "aspire_sample_relion_one_image.star": (1, 32, 5.0 / 37369.207031 * 1e4, None),
}

REFUSED = {
    "cryodrgn_empiar_10076_7.star": "missing pose column(s) rlnAngleRot, rlnAngleTilt, rlnAnglePsi",
    "cryodrgn_toy_projections_13.star": "missing pose column(s)",
    "cryodrgn_cryosparc_J2_particles_exported.cs":     # read as .cs (io/cryosparc.py): 2-D only
        "no 3-D poses (field alignments3D/pose): pass --passthrough",
    "aspire_rln_proj_64_shifted.star": "missing CTF column(s) rlnDefocusU, rlnDefocusV",
    "aspire_sample_incomplete_ctf_params.star": "no _rlnVoltage in data_particles or data_optics",
    "starfile_one_loop.star": "missing CTF column(s)",
    "starfile_rln3.1_data_style.star":
        "no data_particles block (found data_block_1, data_block_2, data_block_3)",
}


def test_every_bundled_file_is_covered():
    files = {p.name for p in REAL.iterdir() if p.suffix in (".star", ".cs")}
    assert files == set(READ) | set(REFUSED)


@pytest.mark.parametrize("name", sorted(READ))
def test_real_file_is_read(tmp_path, name):
    star = REAL / name
    count, box, apix, note = READ[name]
    stand_in_stacks(star, tmp_path)
    meta = read_particles(star, datadir=tmp_path)
    assert (len(meta), meta.box) == (count, box)
    if apix is not None:
        assert meta.apix == pytest.approx(apix, rel=1e-6)
    assert any(note in n for n in meta.notes) if note else not any("disagrees" in n for n in meta.notes)
    raw = starfile.read(star, always_dict=True)
    parts = raw.get("particles", next(iter(raw.values())))
    np.testing.assert_allclose(meta.euler_deg, parts[["rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi"]]
                               .to_numpy(float))
    np.testing.assert_allclose(meta.defocus_u_A, parts["rlnDefocusU"].to_numpy(float))


def test_mixed_pixel_sizes_use_the_particle_weighted_mean(tmp_path):
    star = REAL / "cryodrgn_relion31.6opticsgroups.star"
    stand_in_stacks(star, tmp_path)
    meta = read_particles(star, datadir=tmp_path)
    raw = starfile.read(star)
    per_group = dict(zip(raw["optics"]["rlnOpticsGroup"], raw["optics"]["rlnImagePixelSize"]))
    expected = np.mean([per_group[g] for g in raw["particles"]["rlnOpticsGroup"]])
    assert meta.apix == pytest.approx(expected) and 1.24 < meta.apix < 1.25


def test_relion30_keeps_each_particles_own_voltage(tmp_path):
    star = REAL / "aspire_sample_particles_relion30.star"
    stand_in_stacks(star, tmp_path)
    meta = read_particles(star, datadir=tmp_path)
    assert meta.voltage_kv.tolist() == [300.0] * 8 + [200.0] * 9
    # pixel origins converted with the file's pixel size (detector pixel / magnification)
    np.testing.assert_allclose(meta.shifts_A[0], [0.1996 * meta.apix] * 2, rtol=1e-5)


def test_real_file_images_load_into_a_dataset(tmp_path):
    star = REAL / "aspire_sample_particles_relion31.star"
    rng = np.random.default_rng(0)
    stand_in_stacks(star, tmp_path, fill=lambda n, box: rng.standard_normal((n, box, box)).astype(np.float32))
    ds = ParticleDataset(read_particles(star, datadir=tmp_path), box=16)
    assert ds.in_memory and ds.images(np.arange(17)).shape == (17, 16, 16)
    assert ds.apix == pytest.approx(2.8)


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_real_file_is_refused_with_its_line(tmp_path, name, capsys):
    star = REAL / name
    if star.suffix == ".star":
        try:
            stand_in_stacks(star, tmp_path)
        except (KeyError, ValueError, StopIteration):
            pass                 # no usable rlnImageName: nothing to stand in for
    with pytest.raises(InputError, match=None) as err:
        read_particles(star, datadir=tmp_path)
    assert REFUSED[name] in str(err.value) and "\n" not in str(err.value)
    out = tmp_path / "check"
    status = main(["check-inputs", "--particles", str(star), "--datadir", str(tmp_path), "--model",
                   str(Path(__file__).parents[1] / "data/adk_models/adk_ref_frame048.pdb"),
                   "--out", str(out)])
    assert status == 2 and REFUSED[name] in capsys.readouterr().err and not out.exists()
