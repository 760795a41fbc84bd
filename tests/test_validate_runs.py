"""``cryostar-engine validate``: stage-1 models checked against stage-2 maps at the same z.

One short real pipeline on the bundled AdK stack (384 particles, closed → open): train-atom
(80 epochs, ~30 CPU-s), train-density on its z.npy (box 32, a 128-wide MLP, 10 epochs, 5
k-means states and 5 PC1 points, ~15 CPU-s).  Then:

* the correct pair is **supported** (no chain flagged at any point);
* models made wrong on purpose, through the library's test arguments, are **flagged**:
  (a) the stage-1 z shuffled across particles before decoding (model moves where the map does
  not, or the map changes where the model stays); (b) an extra rigid 20° turn of the LID domain
  (residues 122-159) about its hinge at every point (model moves, map does not, on the LID);
  (c) every model replaced by the mean model, the motion frozen out (map changes, model rigid);
* bad inputs (a stage-1 run as --density-run and the reverse, a density run trained on other
  z, an unfinished density run, a missing folder) stop with one line and exit 2, leaving nothing.

Run time: about 85 CPU-s in all, one thread (stage 1 ~30 s, stage 2 ~15 s, four comparisons
of 10 points, 11 figures); 4 minutes of wall time with the 2 cores shared (load 12).
"""
import json
import shutil

import numpy as np
import pytest

from benchmarks.modelmap_broken import domain_turn, frozen_models
from conftest import ADK_REF, ADK_STAR
from cryostar_engine.atom import AtomConfig, train_atom
from cryostar_engine.cli import main as cli
from cryostar_engine.io import read_map
from cryostar_engine.modelmap import compare_runs, validate_runs
from cryostar_engine.modelmap.figures import overview_figure_obj, point_figure_obj
from cryostar_engine.train import prepare_run_dir

from test_chimerax_scripts import check_cxc_file

LID = (122, 159)
DENSITY = ["--box", "32", "--hidden", "128", "--residual-layers", "2", "--epochs", "10",
           "--batch", "16", "--lr", "1e-3", "--device", "cpu", "--seed", "0", "--threads", "1",
           "--k", "5", "--pcs", "1", "--points", "5"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("validate")
    atom = base / "atom"
    train_atom(AtomConfig(particles=str(ADK_STAR), model=str(ADK_REF), out=str(atom), epochs=80,
                          lr=1e-3, low_pass_A=6.0, seed=0, checkpoint_every=200, threads=1,
                          device="cpu"))
    density = base / "density"
    assert cli(["train-density", "--particles", str(ADK_STAR), "--z", str(atom / "z.npy"),
                "--out", str(density), *DENSITY]) == 0
    return atom, density


@pytest.fixture(scope="module")
def correct(runs, tmp_path_factory):
    out = tmp_path_factory.mktemp("v") / "correct"
    assert cli(["validate", "--atom-run", str(runs[0]), "--density-run", str(runs[1]),
                "--out", str(out), "--device", "cpu"]) == 0
    return out


def _validate(runs, out, **broken) -> dict:
    prepare_run_dir(out, "validation")
    return validate_runs(runs[0], runs[1], out, **broken)


def _flagged_points(report) -> list[str]:
    return [p["name"] for p in report["points"] if any(c["flag"] for c in p["chains"])]


def test_the_correct_pair_is_supported(correct):
    report = json.loads((correct / "report.json").read_text())
    assert report["schema"] == "cryostar-validation/1" and report["verdict"] == "supported"
    assert len(report["points"]) == 10 and _flagged_points(report) == []
    assert [p["name"] for p in report["points"]] == [f"state_{i:02d}" for i in range(5)] + \
        [f"pc1_{i:02d}" for i in range(5)]
    assert all(p["series"] in ("kmeans", "pc1") for p in report["points"])
    # the models move beyond what the map resolves at several points (the test is not idle)
    tested = [p for p in report["points"] if p["chains"][0]["moved_beads"] >= 3]
    assert len(tested) >= 2, [p["chains"] for p in report["points"]]
    assert report["mean_local_cc"] > 0.5
    assert all(4.0 < p["fsc_0.5_A"] < 20.0 for p in report["points"])
    assert report["chains"][0]["chain"] == "A" and report["chains"][0]["flag"] is None


def test_shuffled_z_is_flagged(runs, tmp_path):
    z = np.load(runs[0] / "z.npy")
    report = _validate(runs, tmp_path / "shuffled", atom_z=np.random.default_rng(0).permutation(z))
    assert report["verdict"] == "flagged", [p["chains"] for p in report["points"]]
    # a model from another particle moves where the map does not, or sits still where it moves
    assert report["chains"][0]["flag"] in ("model_moves_map_not", "map_changes_model_rigid")


def test_an_extra_domain_turn_is_flagged_on_that_domain(runs, tmp_path):
    report = _validate(runs, tmp_path / "turned", model_transform=domain_turn(*LID, 20.0))
    assert report["verdict"] == "flagged"
    assert len(_flagged_points(report)) >= 3, [p["chains"] for p in report["points"]]
    residues = [r["resseq"] for p in report["points"] for r in p["flagged_residues"]
                if r["flag"] == "model_moves_map_not"]
    assert residues and np.mean([LID[0] <= r <= LID[1] for r in residues]) > 0.5, residues


@pytest.fixture(scope="module")
def frozen(runs):
    """Every point's model replaced by the mean model (the motion frozen out, a missing degree of
    freedom), compared with maps rendered again in the second pass (as for boxes too large to
    keep every point's map in memory)."""
    from cryostar_engine.modelmap import validate as engine

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(engine, "KEEP_MAPS_BYTES", 0)
        return compare_runs(runs[0], runs[1], model_transform=frozen_models)


def test_models_without_the_motion_are_flagged_where_the_map_changes(frozen):
    flags = [c["flag"] for r in frozen.results for c in r.chains]
    assert "map_changes_model_rigid" in flags and "model_moves_map_not" not in flags, flags


def test_outputs_follow_the_layout(correct, runs):
    report = json.loads((correct / "report.json").read_text())
    man = json.loads((correct / "manifest.json").read_text())
    assert man["schema"] == "cryostar-validation/1" and man["verdict"] == report["verdict"]
    listed = set(man["files"])
    on_disk = {p.relative_to(correct).as_posix() for p in correct.rglob("*") if p.is_file()}
    assert listed == on_disk
    density_man = json.loads((runs[1] / "manifest.json").read_text())
    for p in report["points"]:
        for key in ("model", "map", "figure", "fsc_file"):
            assert p[key] in listed
        m = read_map(correct / p["map"])
        assert m.data.shape == (32, 32, 32) and abs(m.voxel_size_A - 3.0) < 1e-4
        assert np.allclose(m.origin_A, density_man["origin_A"])        # the density run's frame
        pdb = (correct / p["model"]).read_text().splitlines()
        bfac = [float(line[60:66]) for line in pdb if line.startswith("ATOM")]
        assert len(bfac) == 214 and -1 <= min(bfac) and max(bfac) <= 1      # local CC
    assert check_cxc_file(correct / "validation.cxc") == []
    t = report["thresholds"]
    assert t["min_displacement_A"] == pytest.approx(t["resolution_A"] / 2, rel=1e-3)


def test_figures_are_readable(frozen):
    """Every point's figure and the overview, with flags in them (the frozen models)."""
    res, beads, t = frozen.results, frozen.beads, frozen.thresholds
    assert any((r.flags != "").any() for r in res)
    for fig in [point_figure_obj(r, beads, t) for r in res] + \
            [overview_figure_obj(res, beads, t, {"verdict": "flagged"})]:
        fig.canvas.draw()                  # lay the figure out as saving it does
        renderer = fig.canvas.get_renderer()
        (legend,) = fig.legends
        assert min(x.get_fontsize() for x in legend.get_texts()) >= 9
        for ax in fig.axes:
            if ax.get_label() == "<colorbar>":
                continue
            assert ax.get_xlabel() or ax.get_ylabel()
            assert not legend.get_window_extent(renderer).overlaps(ax.get_window_extent(renderer))
    assert "(Å)" in point_figure_obj(res[0], beads, t).axes[1].get_ylabel()
    flagged = next(r for r in res if any(c["flag"] for c in r.chains))
    assert "flagged: chain A" in point_figure_obj(flagged, beads, t).axes[0].get_title()


@pytest.mark.parametrize("case, message", [
    ("swapped", "--atom-run takes a train-atom run"),
    ("atom-as-both", "--density-run takes a train-density run"),
    ("other-z", "was not trained on the z of --atom-run"),
    ("unfinished", "not finished"),
    ("missing", "run folder not found"),
])
def test_bad_inputs_stop_with_one_line_and_leave_nothing(runs, tmp_path, capsys, case, message):
    atom, density = runs
    if case == "other-z":
        density = tmp_path / "other"
        shutil.copytree(runs[1], density)
        np.save(density / "z.npy", np.load(density / "z.npy") + 0.01)
    elif case == "unfinished":
        density = tmp_path / "unfinished"
        shutil.copytree(runs[1], density)
        (density / "manifest.json").unlink()
    args = {"swapped": (density, atom), "atom-as-both": (atom, atom),
            "missing": (tmp_path / "nope", density)}.get(case, (atom, density))
    out = tmp_path / "out"
    status = cli(["validate", "--atom-run", str(args[0]), "--density-run", str(args[1]),
                  "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert status == 2 and len(err.splitlines()) == 1 and message in err, err
    assert not out.exists()


def test_the_verdict_is_inconclusive_when_the_maps_cannot_resolve_the_motion(correct):
    """Maps too coarse for any displacement of the models: nothing flagged is not 'supported'."""
    from cryostar_engine.modelmap.flags import Thresholds
    from cryostar_engine.modelmap.report import verdict_of

    report = json.loads((correct / "report.json").read_text())
    t = Thresholds(**report["thresholds"])
    assert verdict_of(report["points"], t)[0] == "supported"
    still = [{**p, "chains": [{**c, "moved_beads": 0} for c in p["chains"]]}
             for p in report["points"]]
    verdict, reason = verdict_of(still, t)
    assert verdict == "inconclusive" and "cannot test the motion" in reason
    flagged = [{**still[0], "chains": [{**still[0]["chains"][0], "flag": "model_moves_map_not"}]}]
    assert verdict_of(flagged, t)[0] == "flagged"
