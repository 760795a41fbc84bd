"""run_analysis / ``analyze``: files, PDB models, figures, ChimeraX scripts and the manifest,
with a stand-in decoder that interpolates the ground-truth AdK morph (the real decoder is the
atom generator's; here we test the analysis, not the network)."""
import argparse
import json
import re
import shutil
from pathlib import Path

import mrcfile
import numpy as np
import pytest
from matplotlib.image import imread

from cryostar_engine.analysis import AnalysisConfig, StructureDecoder, run_analysis
from cryostar_engine.commands import analyze
from cryostar_engine.errors import InputError
from cryostar_engine.geometry.frames import Frame
from test_chimerax_scripts import check_cxc_file
from cryostar_engine.io import read_beads

DATA = Path(__file__).resolve().parents[1] / "data"
FRAMES = np.load(DATA / "adk_models" / "adk_dims_ca.npy").astype(np.float64)   # (98, 214, 3)
MAP = DATA / "adk_sim48" / "ideal_map_frame048.mrc"


def morph_decode(z):
    """z[:, 0] in [-1, 1] → linear interpolation along the 98 DIMS frames, (M, 214, 3) Å."""
    t = np.clip((np.asarray(z)[:, 0] + 1) / 2 * 97, 0, 97)
    i = np.minimum(t.astype(int), 96)
    w = (t - i)[:, None, None]
    return (1 - w) * FRAMES[i] + w * FRAMES[i + 1]


@pytest.fixture(scope="module")
def latents():
    frames = np.load(DATA / "adk_sim48" / "gt_frame.npy").astype(float)
    rng = np.random.default_rng(0)
    z = rng.normal(0, 0.15, (len(frames), 8))
    z[:, 0] = frames / 97 * 2 - 1 + rng.normal(0, 0.03, len(frames))
    return z.astype(np.float32), frames


@pytest.fixture(scope="module")
def decoder():
    return StructureDecoder(decode=morph_decode,
                            beads=read_beads(DATA / "adk_models" / "adk_ref_frame048.pdb"))


def write_losses(path, n=120):
    rng = np.random.default_rng(1)
    lines = ["step,images_seen,image,continuity,kl"]
    for s in range(n):
        lines.append(f"{s * 10},{(s + 1) * 64},{1 - 0.5 * s / n + 0.01 * rng.normal():.5f},"
                     f"{10 ** (-s / 30):.5g},{0.1 + 0.01 * s}")
    lines.append("50,3264,0.9,0.1,nan")      # a resumed run repeats a step: last row wins
    path.write_text("\n".join(lines) + "\n")


def pdb_models(path):
    """(M, N, 3) coordinates of a multi-model PDB (our writer's fixed columns)."""
    models, cur = [], []
    for line in Path(path).read_text().splitlines():
        if line.startswith("ATOM"):
            cur.append([float(line[30:38]), float(line[38:46]), float(line[46:54])])
        elif line.startswith("ENDMDL"):
            models.append(cur)
            cur = []
    return np.array(models)


@pytest.fixture(scope="module")
def analysed(tmp_path_factory, latents, decoder):
    out = tmp_path_factory.mktemp("run") / "analysis"
    losses = out.parent / "losses.csv"
    write_losses(losses)
    z, _ = latents
    man = run_analysis(z, out, AnalysisConfig(k=10, n_pcs=3, n_points=10), decoder=decoder,
                       losses_csv=losses, map_path=MAP, z_source=out.parent / "z.npy")
    return out, man


def test_manifest_lists_every_output(analysed):
    out, man = analysed
    assert json.loads((out / "manifest.json").read_text()) == man
    assert man["schema"] == "cryostar-analysis/2" and man["status"] == "finished"
    for name in man["files"]:
        assert (out / name).is_file(), name
    on_disk = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert man["files"] == on_disk
    assert man["series"]["kmeans"] == man["kmeans"]["centre_pdbs"]
    assert [len(man["series"][f"pca_{k}"]) for k in (1, 2, 3)] == [10, 10, 10]
    assert man["cxc"] == {"kmeans": "kmeans.cxc", "pca_1": "pca_1.cxc", "pca_2": "pca_2.cxc",
                          "pca_3": "pca_3.cxc"}
    assert man["frame"]["shift_A"] == [0.0, 0.0, 0.0] and man["checkpoints"] == []
    assert man["z"]["n_particles"] == 384 and man["z"]["zdim"] == 8
    assert [t["pc"] for t in man["trajectories"]] == [1, 2, 3]
    assert man["kmeans"]["k"] == 10 and sum(man["kmeans"]["counts"]) == 384
    assert man["structures"] is True and man["map"]["origin_A"] == [-48.0] * 3
    assert len(man["kmeans"]["centre_pdbs"]) == 10
    # a PCA of the decoded structures (Å): the kept PCs hold most, not all, of their variance
    assert man["pca"]["space"] == "structure" and man["pca"]["units"] == "Å"
    assert 0.9 < sum(man["pca"]["explained_variance_ratio"]) <= 1.0 + 1e-9
    comps = np.load(out / man["pca"]["components"])
    assert comps.shape == (8, 214, 3)
    np.testing.assert_allclose(np.linalg.norm(comps.reshape(8, -1), axis=1), 1.0, rtol=1e-5)
    scores = np.load(out / "pc_scores.npy").astype(np.float64)
    np.testing.assert_allclose(scores.var(0, ddof=1), man["pca"]["explained_variance"], rtol=1e-4)
    np.testing.assert_allclose(man["pca"]["rms_displacement_A"],
                               np.sqrt(np.array(man["pca"]["explained_variance"]) / 214), rtol=1e-9)


def test_z_point_files_and_labels_match_z(analysed, latents):
    out, man = analysed
    z, _ = latents
    labels = np.load(out / "labels.npy")
    ind = np.loadtxt(out / "z_kmeans_ind.txt", dtype=int)
    np.testing.assert_allclose(np.loadtxt(out / "z_kmeans.txt"), z[ind], rtol=1e-6)
    assert ind.tolist() == man["kmeans"]["centre_indices"]
    d = ((z[:, None].astype(float) - z[ind][None]) ** 2).sum(-1)
    np.testing.assert_array_equal(labels, d.argmin(1))
    assert labels.dtype == np.int64 and labels.min() == 0 and labels.max() == 9
    scores = np.load(out / "pc_scores.npy")
    for t in man["trajectories"]:
        k = t["pc"]
        tind = np.loadtxt(out / f"z_pca_{k}_ind.txt", dtype=int)
        np.testing.assert_allclose(np.loadtxt(out / f"z_pca_{k}.txt"), z[tind], rtol=1e-6)
        lo, hi = np.percentile(scores[:, k - 1], [5, 95])
        np.testing.assert_allclose(t["target_scores"][::9], [lo, hi], rtol=1e-4, atol=1e-6)


def test_decoded_models_follow_the_morph(analysed, latents, decoder):
    out, man = analysed
    z, frames = latents
    traj = pdb_models(out / "pca_1.pdb")
    assert traj.shape == (10, 214, 3)
    ind = np.loadtxt(out / "z_pca_1_ind.txt", dtype=int)
    np.testing.assert_allclose(traj, decoder(z[ind]), atol=1e-3)
    # along PC1 the models move from one end of the closed→open morph to the other
    rmsd_closed = np.sqrt(((traj - FRAMES[0]) ** 2).sum(-1).mean(-1))
    assert abs(np.corrcoef(np.arange(10), rmsd_closed)[0, 1]) > 0.95
    assert abs(rmsd_closed[-1] - rmsd_closed[0]) > 4.0          # Å; closed↔open is 6.8 Å
    centres = pdb_models(out / "kmeans.pdb")
    np.testing.assert_allclose(centres, decoder(z[man["kmeans"]["centre_indices"]]), atol=1e-3)
    single = pdb_models(out / man["kmeans"]["centre_pdbs"][3])
    np.testing.assert_allclose(single[0], centres[3], atol=1e-3)
    point = pdb_models(out / man["series"]["pca_1"][9])
    np.testing.assert_allclose(point[0], traj[9], atol=1e-3)


def test_figures_are_real_images(analysed):
    out, man = analysed
    assert set(man["figures"]) == {"pc_scatter", "pc_density", "explained_variance",
                                   "cluster_populations", "training_curves"}
    for name in man["figures"].values():
        img = imread(out / name)
        assert img.ndim == 3 and min(img.shape[:2]) > 400, (name, img.shape)
        assert img[..., :3].std() > 0.05, name            # not blank
    # the scatter uses the cluster colours (tab10 blue for cluster 0 is present)
    img = imread(out / "pca_scatter.png")[..., :3]
    blue = np.array([0.122, 0.467, 0.706])
    assert (np.abs(img - blue).max(-1) < 0.03).sum() > 50


def test_cxc_scripts_open_models_over_the_map(analysed):
    out, man = analysed
    text = (out / "pca_1.cxc").read_text()
    cmds = [ln for ln in text.splitlines() if ln and not ln.startswith("#")]
    assert cmds[0] == f"open {MAP.resolve()}"
    assert "open pca_1.pdb coordsets true" in cmds        # relative: ChimeraX runs it from its folder
    assert "coordset #2 1,10 pauseFrames 10 loop 5 bounce true" in cmds
    assert not any("slider" in c for c in cmds)           # GUI-only: offered as a comment
    assert "# In the ChimeraX window, a slider over the frames: coordset slider #2" in text
    assert not any("origin" in c for c in cmds)           # the map opens at its own origin
    for path in re.findall(r"^open (\S+)", text, flags=re.M):
        assert (out / path).is_file()
    km = (out / "kmeans.cxc").read_text()
    assert "coordset #2 1,10 " in km and "kmeans.pdb" in km
    for name in man["cxc"].values():                      # runs with and without a GUI
        assert check_cxc_file(out / name) == [], name


def test_models_are_written_in_the_frame_of_a_corner_origin_map(tmp_path, latents, decoder):
    """A run whose model was docked on a map with origin 0 (shift -48 Å into the box frame):
    the models come back +48 Å, and the scripts open that map as it is, with no re-centring."""
    z, _ = latents
    corner_map = tmp_path / "corner.mrc"
    shutil.copy(MAP, corner_map)
    with mrcfile.open(corner_map, mode="r+") as m:
        m.header.origin = (0.0, 0.0, 0.0)
    frame = Frame(shift_A=(-48.0, -48.0, -48.0), source="map", map=str(corner_map),
                  map_origin_A=(0.0, 0.0, 0.0))
    man = run_analysis(z, tmp_path / "a", AnalysisConfig(k=3, n_pcs=1, n_points=4),
                       decoder=decoder, frame=frame, box_px=48, apix_A=2.0)
    assert man["frame"] == frame.to_json() and (man["box_px"], man["apix_A"]) == (48, 2.0)
    assert man["map"]["path"] == str(corner_map.resolve()) and man["map"]["origin_A"] == [0.0] * 3
    ind = np.loadtxt(tmp_path / "a" / "z_pca_1_ind.txt", dtype=int)
    np.testing.assert_allclose(pdb_models(tmp_path / "a" / "pca_1.pdb"), decoder(z[ind]) + 48.0,
                               atol=1e-3)
    text = (tmp_path / "a" / "pca_1.cxc").read_text()
    cmds = [ln for ln in text.splitlines() if ln and not ln.startswith("#")]
    assert cmds[0] == f"open {corner_map.resolve()}" and not any("origin" in c for c in cmds)
    assert "coordset #2 1,4 " in text


def test_rerun_removes_stale_outputs_and_no_decoder_skips_models(tmp_path, latents, decoder):
    z, _ = latents
    out = tmp_path / "analysis"
    run_analysis(z, out, AnalysisConfig(k=4, n_pcs=3, n_points=5), decoder=decoder)
    assert (out / "pca_3.pdb").is_file()
    (out / "my_notes.txt").write_text("a user's file")     # not the analysis's: it stays
    man = run_analysis(z, out, AnalysisConfig(k=4, n_pcs=1, n_points=5), decoder=None)
    assert not (out / "pca_3.pdb").exists() and not (out / "z_pca_2.txt").exists()
    assert not (out / "pca_1.cxc").exists() and (out / "z_pca_1.txt").is_file()
    assert man["structures"] is False and "pdb" not in man["trajectories"][0]
    assert (out / "my_notes.txt").is_file() and "my_notes.txt" in man["files"]
    assert "my_notes.txt" not in man["outputs"] and not (out / "pca_2_points").exists()
    assert any("no decoder" in n for n in man["notes"])


def test_one_dimensional_latent(tmp_path, latents):
    z, _ = latents
    man = run_analysis(z[:, :1], tmp_path, AnalysisConfig(k=3, n_pcs=3, n_points=5))
    assert len(man["trajectories"]) == 1 and any("only 1 PCs" in n for n in man["notes"])
    assert imread(tmp_path / "pca_scatter.png")[..., :3].std() > 0.05


def run_command(argv):
    p = argparse.ArgumentParser()
    analyze.add_args(p)
    return analyze.main(p.parse_args(argv))


def test_analyze_command_on_a_run_folder(tmp_path, latents, capsys):
    z, _ = latents
    run = tmp_path / "run"
    run.mkdir()
    np.save(run / "z.npy", z)
    write_losses(run / "losses.csv")
    assert run_command(["--run", str(run), "--k", "4", "--pcs", "2", "--points", "6",
                        "--no-structures"]) == 0
    man = json.loads((run / "analysis" / "manifest.json").read_text())
    assert man["z"]["source"] == str((run / "z.npy").resolve())
    assert "training_curves" in man["figures"]
    assert np.loadtxt(run / "analysis" / "z_pca_2_ind.txt").shape == (6,)
    assert "explained variance: PC1" in capsys.readouterr().out


def test_analyze_command_bad_inputs(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    with pytest.raises(InputError, match="z.npy"):
        run_command(["--run", str(run)])
    np.save(run / "z.npy", np.zeros((5, 2, 2)))
    with pytest.raises(InputError, match="shape"):
        run_command(["--run", str(run), "--no-structures"])
    np.save(run / "z.npy", np.random.default_rng(0).normal(size=(5, 2)))
    with pytest.raises(InputError, match="--k"):
        run_command(["--run", str(run), "--no-structures", "--k", "10"])
    assert not (run / "analysis" / "manifest.json").exists()


def test_analyze_decodes_a_real_train_atom_run(tmp_path):
    """Wiring: ``analyze`` obtains the run's own decoder (atom.evaluate.load_decoder)."""
    from cryostar_engine import cli
    from cryostar_engine.atom.evaluate import load_decoder

    run = tmp_path / "atom"
    assert cli.main(["train-atom", "--particles", str(DATA / "adk_sim48" / "particles.star"),
                     "--model", str(DATA / "adk_models" / "adk_ref_frame048.pdb"),
                     "--map", str(MAP), "--out", str(run), "--box", "32", "--epochs", "1",
                     "--threads", "1"]) == 0
    assert cli.main(["analyze", "--run", str(run), "--k", "3", "--pcs", "1", "--points", "4",
                     "--map", str(MAP), "--no-umap"]) == 0
    out = run / "analysis"
    man = json.loads((out / "manifest.json").read_text())
    assert man["structures"] is True
    z = np.load(run / "z.npy")
    decode, beads = load_decoder(run)
    ind = np.loadtxt(out / "z_pca_1_ind.txt", dtype=int)
    models = pdb_models(out / "pca_1.pdb")
    assert models.shape == (4, len(beads), 3)
    np.testing.assert_allclose(models, decode(z[ind]), atol=1e-3)
    assert "coordset #2 1,4 " in (out / "pca_1.cxc").read_text()
