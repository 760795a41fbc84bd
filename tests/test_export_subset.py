"""export-subset: STAR subsets keep every column, the row order, the optics table and the RELION
version; image paths resolve from the new folder; bad inputs raise one InputError and write
nothing."""
import argparse
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import starfile

from cryostar_engine import cli
from cryostar_engine.analysis import AnalysisConfig, fit_pca, kmeans_states, run_analysis
from cryostar_engine.commands import export_subset
from cryostar_engine.errors import InputError
from cryostar_engine.io import read_particles

DATA = Path(__file__).resolve().parents[1] / "data" / "adk_sim48"
STAR = DATA / "particles.star"
N = 384


def run_cmd(argv):
    p = argparse.ArgumentParser()
    export_subset.add_args(p)
    return export_subset.main(p.parse_args([str(a) for a in argv]))


def read_blocks(path):
    return starfile.read(path, always_dict=True)


@pytest.fixture(scope="module")
def labels_file(tmp_path_factory):
    folder = tmp_path_factory.mktemp("labels")
    z = np.random.default_rng(0).normal(size=(N, 4))
    labels = kmeans_states(z, k=6).labels
    np.save(folder / "labels.npy", labels)
    return folder / "labels.npy", labels


@pytest.fixture
def local_copy(tmp_path):
    """particles.star + .mrcs copied into one folder (relative image paths)."""
    d = tmp_path / "proj"
    d.mkdir()
    shutil.copy(STAR, d)
    shutil.copy(DATA / "particles.mrcs", d)
    return d / "particles.star"


def test_same_folder_subset_is_the_selected_lines_verbatim(local_copy, labels_file, capsys):
    lab_path, labels = labels_file
    out = local_copy.parent / "states_1_4.star"
    assert run_cmd(["--particles", local_copy, "--labels", lab_path, "--keep", "1,4",
                    "--out", out]) == 0
    rows = np.flatnonzero(np.isin(labels, [1, 4]))
    assert f"selected {len(rows)} of {N} particles" in capsys.readouterr().out
    src, dst = read_blocks(local_copy), read_blocks(out)
    assert list(dst) == ["optics", "particles"]
    pd.testing.assert_frame_equal(dst["optics"], src["optics"])
    pd.testing.assert_frame_equal(dst["particles"],
                                  src["particles"].iloc[rows].reset_index(drop=True))
    # byte-level: header identical, rows are the input's lines in the input's order
    src_lines = local_copy.read_text().splitlines()
    data_lines = [ln for ln in src_lines if "@particles.mrcs" in ln]
    out_lines = out.read_text().splitlines()
    assert [ln for ln in out_lines if "@" in ln] == [data_lines[r] for r in rows]
    first = src_lines.index(data_lines[0])
    assert out_lines[:first] == src_lines[:first]


def test_other_folder_gets_absolute_paths_that_resolve(tmp_path, labels_file):
    lab_path, labels = labels_file
    out = tmp_path / "elsewhere" / "deeper" / "sub.star"
    run_cmd(["--particles", STAR, "--labels", lab_path, "--keep", "0-2", "--out", out])
    rows = np.flatnonzero(labels <= 2)
    src, dst = read_blocks(STAR), read_blocks(out)
    pd.testing.assert_frame_equal(dst["optics"], src["optics"])
    expect = src["particles"].iloc[rows].reset_index(drop=True)
    pd.testing.assert_frame_equal(dst["particles"].drop(columns="rlnImageName"),
                                  expect.drop(columns="rlnImageName"))
    stack = str((DATA / "particles.mrcs").resolve())
    assert (dst["particles"]["rlnImageName"] ==
            expect["rlnImageName"].str.replace("particles.mrcs", stack, regex=False)).all()
    # the engine (and RELION, from any folder) reads the subset: same poses, same images
    meta, full = read_particles(out), read_particles(STAR)
    np.testing.assert_array_equal(meta.euler_deg, full.euler_deg[rows])
    np.testing.assert_array_equal(meta.image_indices, full.image_indices[rows])
    assert {p.resolve() for p in meta.image_paths} == {Path(stack)}


@pytest.mark.parametrize("mode", ["relative", "keep"])
def test_relative_and_keep_path_modes(tmp_path, labels_file, mode):
    lab_path, _ = labels_file
    out = tmp_path / "sub" / "s.star"
    run_cmd(["--particles", STAR, "--labels", lab_path, "--keep", "3", "--out", out,
             "--image-paths", mode])
    names = read_blocks(out)["particles"]["rlnImageName"]
    paths = {n.partition("@")[2] for n in names}
    if mode == "keep":
        assert paths == {"particles.mrcs"}
    else:
        rel = os.path.relpath((DATA / "particles.mrcs").resolve(), out.parent)
        assert paths == {rel} and (out.parent / rel).is_file()


def write_relion30_star(path: Path, n: int = 12) -> pd.DataFrame:
    """A RELION 3.0 particle file: one table, optics values on every row, origins in px."""
    src = read_blocks(STAR)["particles"].iloc[:n]
    rows = []
    for i, r in src.iterrows():
        rows.append(f"{r.rlnImageName} {r.rlnAngleRot:.6f} {r.rlnAngleTilt:.6f} "
                    f"{r.rlnAnglePsi:.6f} {r.rlnOriginXAngst / 2:.6f} {r.rlnOriginYAngst / 2:.6f} "
                    f"{r.rlnDefocusU:.6f} {r.rlnDefocusV:.6f} 0.000000 300.000000 2.700000 "
                    f"0.100000 10000.000000 2.000000 {1 + i % 2}")
    cols = ["rlnImageName", "rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi", "rlnOriginX",
            "rlnOriginY", "rlnDefocusU", "rlnDefocusV", "rlnDefocusAngle", "rlnVoltage",
            "rlnSphericalAberration", "rlnAmplitudeContrast", "rlnMagnification",
            "rlnDetectorPixelSize", "rlnRandomSubset"]
    header = "\n".join(f"_{c} #{k + 1} " for k, c in enumerate(cols))
    path.write_text(f"\ndata_\n\nloop_ \n{header}\n" + "\n".join(rows) + "\n \n")
    return read_blocks(path)[""]


def test_relion30_star_stays_30(tmp_path):
    d = tmp_path / "r30"
    d.mkdir()
    shutil.copy(DATA / "particles.mrcs", d)
    star = d / "p30.star"
    table = write_relion30_star(star)
    sel = np.array([1, 4, 5, 11])
    np.save(tmp_path / "idx.npy", sel[::-1].copy())              # order of the list is ignored
    out = d / "sub30.star"
    run_cmd(["--particles", star, "--indices", tmp_path / "idx.npy", "--out", out])
    blocks = read_blocks(out)
    assert list(blocks) == [""] and "data_optics" not in out.read_text()
    pd.testing.assert_frame_equal(blocks[""], table.iloc[sel].reset_index(drop=True))
    meta = read_particles(out)
    np.testing.assert_allclose(meta.apix, 2.0)
    np.testing.assert_array_equal(meta.image_indices, sel)
    # text indices, --invert: the complement, in the original order
    (tmp_path / "idx.txt").write_text("1 4\n5\n11\n")
    run_cmd(["--particles", star, "--indices", tmp_path / "idx.txt", "--invert", "--out", out])
    rest = np.setdiff1d(np.arange(12), sel)
    pd.testing.assert_frame_equal(read_blocks(out)[""], table.iloc[rest].reset_index(drop=True))


def test_pc_range_selection_uses_the_runs_pc_scores(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    z = np.random.default_rng(3).normal(size=(N, 4)) * [3, 1, 1, 1]
    np.save(run / "z.npy", z.astype(np.float32))
    scores = fit_pca(z.astype(np.float32)).scores
    out = tmp_path / "pc.star"
    run_cmd(["--particles", STAR, "--pc", 1, "--range", -1.0, 2.0, "--run", run, "--out", out])
    rows = np.flatnonzero((scores[:, 0] >= -1) & (scores[:, 0] <= 2))
    got = read_blocks(out)["particles"]
    assert len(got) == len(rows) and 0 < len(rows) < N
    assert (got["rlnAngleRot"].to_numpy() ==
            read_blocks(STAR)["particles"]["rlnAngleRot"].to_numpy()[rows]).all()
    # after analyze, the same selection comes from RUN/analysis/pc_scores.npy
    run_analysis(np.load(run / "z.npy"), run / "analysis", AnalysisConfig(k=3, n_pcs=1),
                 z_source=run / "z.npy")
    out2 = tmp_path / "pc2.star"
    run_cmd(["--particles", STAR, "--pc", 1, "--range", -1.0, 2.0, "--run", run, "--out", out2])
    assert out2.read_text() == out.read_text()


def test_analysis_option_selects_on_that_analysis_scores(tmp_path):
    """--analysis DIR selects on the scores that analysis wrote (what its viewer shows), not on
    the run's own analysis: here a re-analysis of other latents gives another subset."""
    run = tmp_path / "run"
    run.mkdir()
    rng = np.random.default_rng(5)
    z = (rng.normal(size=(N, 4)) * [3, 1, 1, 1]).astype(np.float32)
    np.save(run / "z.npy", z)
    run_analysis(z, run / "analysis", AnalysisConfig(k=3, n_pcs=1), z_source=run / "z.npy")
    z2 = z[rng.permutation(N)]
    other = tmp_path / "reanalysis"
    np.save(tmp_path / "z2.npy", z2)
    run_analysis(z2, other, AnalysisConfig(k=3, n_pcs=2), z_source=tmp_path / "z2.npy")
    scores = np.load(other / "pc_scores.npy")
    lo, hi = np.percentile(scores[:, 1], [20, 70])
    out_run, out_other = tmp_path / "run.star", tmp_path / "other.star"
    run_cmd(["--particles", STAR, "--pc", 1, "--range", lo, hi, "--run", run, "--out", out_run])
    run_cmd(["--particles", STAR, "--pc", 2, "--range", lo, hi, "--analysis", other,
             "--out", out_other])
    rows = np.flatnonzero((scores[:, 1] >= lo) & (scores[:, 1] <= hi))
    got = read_blocks(out_other)["particles"]["rlnImageName"].str.partition("@")[0].astype(int)
    assert got.tolist() == (rows + 1).tolist()
    assert out_run.read_text() != out_other.read_text()
    with pytest.raises(InputError, match="holds no PC scores"):
        run_cmd(["--particles", STAR, "--pc", 1, "--range", lo, hi, "--analysis", run,
                 "--out", tmp_path / "none.star"])
    with pytest.raises(InputError, match="leave out --run"):
        run_cmd(["--particles", STAR, "--pc", 1, "--range", lo, hi, "--analysis", other,
                 "--run", run, "--out", tmp_path / "none.star"])


def test_per_cluster_files_partition_the_particles(tmp_path, labels_file):
    lab_path, labels = labels_file
    out = tmp_path / "per" / "state.star"
    run_cmd(["--particles", STAR, "--labels", lab_path, "--per-cluster", "--out", out])
    files = sorted(out.parent.glob("state_cluster*.star"))
    assert [f.name for f in files] == [f"state_cluster{c:02d}.star" for c in range(6)]
    seen = []
    for c, f in enumerate(files):
        part = read_blocks(f)["particles"]
        assert len(part) == (labels == c).sum()
        seen += part["rlnImageName"].str.partition("@")[0].astype(int).tolist()
    assert sorted(seen) == list(range(1, N + 1))


def listing(folder):
    return sorted(p.name for p in Path(folder).rglob("*"))


@pytest.mark.parametrize("case", ["z_rows", "keep_out_of_range", "negative_labels",
                                  "labels_length", "empty_selection", "indices_2d",
                                  "indices_out_of_range", "duplicate_indices", "out_is_input",
                                  "two_selections", "keep_without_labels"])
def test_bad_inputs_raise_and_write_nothing(tmp_path, local_copy, labels_file, case):
    lab_path, _ = labels_file
    work = tmp_path / "work"
    work.mkdir()
    out = tmp_path / "out" / "sub.star"
    before = listing(local_copy.parent)
    base = ["--particles", local_copy, "--out", out]
    if case == "z_rows":
        np.save(work / "z.npy", np.random.default_rng(0).normal(size=(N - 4, 4)))
        argv, msg = base + ["--pc", 1, "--range", -9, 9, "--run", work], "380 rows"
    elif case == "keep_out_of_range":
        argv, msg = base + ["--labels", lab_path, "--keep", "2,12"], "cluster 12 does not exist"
    elif case == "negative_labels":
        np.save(work / "l.npy", np.r_[-1, np.zeros(N - 1, int)])
        argv, msg = base + ["--labels", work / "l.npy", "--keep", "0"], "≥ 0"
    elif case == "labels_length":
        np.save(work / "l.npy", np.zeros(N + 1, int))
        argv, msg = base + ["--labels", work / "l.npy", "--keep", "0"], "one label per particle"
    elif case == "empty_selection":
        np.save(work / "z.npy", np.random.default_rng(0).normal(size=(N, 4)))
        argv, msg = base + ["--pc", 1, "--range", 50, 60, "--run", work], "empty"
    elif case == "indices_2d":
        np.save(work / "i.npy", np.arange(10).reshape(5, 2))
        argv, msg = base + ["--indices", work / "i.npy"], "1-D"
    elif case == "indices_out_of_range":
        np.save(work / "i.npy", np.array([3, N]))
        argv, msg = base + ["--indices", work / "i.npy"], f"row {N} is outside"
    elif case == "duplicate_indices":
        np.save(work / "i.npy", np.array([3, 3, 5]))
        argv, msg = base + ["--indices", work / "i.npy"], "twice"
    elif case == "out_is_input":
        argv = ["--particles", local_copy, "--out", local_copy, "--labels", lab_path, "--keep", "1"]
        msg = "is the input"
    elif case == "two_selections":
        np.save(work / "i.npy", np.array([3]))
        argv, msg = base + ["--indices", work / "i.npy", "--labels", lab_path], "exactly one"
    else:
        np.save(work / "i.npy", np.array([3]))
        argv, msg = base + ["--indices", work / "i.npy", "--keep", "1"], "go with --labels"
    with pytest.raises(InputError, match=msg):
        run_cmd(argv)
    assert not out.parent.exists()
    assert listing(local_copy.parent) == before


def test_cli_reports_one_line_and_exit_status_2(tmp_path, labels_file, capsys):
    lab_path, _ = labels_file
    out = tmp_path / "x.star"
    rc = cli.main(["export-subset", "--particles", str(STAR), "--out", str(out),
                   "--labels", str(lab_path), "--keep", "7"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and "cluster 7 does not exist" in err
    assert not out.exists()
