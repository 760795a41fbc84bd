"""The model's frame, decided in one place (geometry/frames.py + reference.py) and published by
``inspect-model --json`` for the plugin: a centred map, a corner-origin map, a model half a box
off, a model partly outside the box, a map of another size, unreadable files."""
import json

import numpy as np
import pytest
from conftest import ADK_MAP, ADK_REF, ADK_STAR

from cryostar_engine.atom.config import AtomConfig
from cryostar_engine.atom.inputs import load_atom_inputs
from cryostar_engine.cli import main as cli
from cryostar_engine.geometry.frames import Frame
from cryostar_engine.io import read_map
from cryostar_engine.io.mrc import write_mrc
from test_lowpass import shifted_pdb


@pytest.fixture(scope="module")
def corner(tmp_path_factory):
    """The AdK model and map as a program with origin-0 maps has them: both moved by +48 Å."""
    d = tmp_path_factory.mktemp("corner")
    write_mrc(d / "corner.mrc", read_map(ADK_MAP).data, 2.0, origin_A=[0.0, 0.0, 0.0])
    return shifted_pdb(ADK_REF, d / "corner.pdb", (48.0, 48.0, 48.0)), d / "corner.mrc"


def inspect(capsys, *args):
    status = cli(["inspect-model", "--json", *map(str, args)])
    out = capsys.readouterr().out
    return status, (json.loads(out) if status == 0 else None)


def test_centred_map_gives_no_shift_and_the_low_pass(capsys):
    status, r = inspect(capsys, "--model", ADK_REF, "--map", ADK_MAP, "--box", 48, "--apix", 2.0)
    assert status == 0 and r["schema"] == "cryostar-inspect/1" and r["engine_version"]
    assert r["model"] == {"atoms": 1656, "beads": 214, "chains": ["A"]}
    f = r["frame"]
    assert f["source"] == "map" and f["error"] is None and f["shift_A"] == [0.0, 0.0, 0.0]
    assert np.abs(f["centre_A"]).max() < 1.0
    assert set(r["low_pass"]) == {"fsc05_A", "floor_A", "suggested_A"}
    assert r["low_pass"]["suggested_A"] == 5.0
    # train-atom's defaults: its final band is the suggestion (auto), so the full 48-px box (what
    # a run without --box and --low-pass trains at)
    assert (r["default_low_pass_A"], r["default_box"]) == (5.0, 48)
    inputs = load_atom_inputs(AtomConfig(particles=str(ADK_STAR), model=str(ADK_REF),
                                         map=str(ADK_MAP), out="unused"))
    assert (inputs.low_pass_A, inputs.dataset.box) == (5.0, 48)


def test_corner_origin_map_is_followed_and_its_frame_overlays_it(capsys, corner):
    model, corner_map = corner
    status, r = inspect(capsys, "--model", model, "--map", corner_map, "--box", 48, "--apix", 2.0)
    assert status == 0 and r["frame"]["error"] is None
    assert r["frame"]["shift_A"] == [-48.0, -48.0, -48.0] and np.abs(r["frame"]["centre_A"]).max() < 1
    assert r["low_pass"]["suggested_A"] == 5.0
    frame = Frame(shift_A=tuple(r["frame"]["shift_A"]), source="map")
    # a 48-px volume at 2 Å in the box frame gets the input map's own origin (0) ...
    assert frame.volume_origin_A(48, 2.0) == [0.0, 0.0, 0.0]
    # ... and a box-frame bead goes back to the file's coordinates
    assert np.allclose(frame.to_user([[0.0, 0.0, 0.0]]), [[48.0, 48.0, 48.0]])
    assert Frame.from_json(json.loads(json.dumps(frame.to_json()))) == frame


def test_model_half_a_box_off_is_an_error_with_the_shift_to_apply(capsys, corner):
    model, _ = corner
    for extra in ([], ["--map", ADK_MAP]):     # no map, or the map with the centred origin
        status, r = inspect(capsys, "--model", model, "--box", 48, "--apix", 2.0, *extra)
        assert status == 0 and r["frame"]["shift_A"] == [0.0, 0.0, 0.0]
        err = r["frame"]["error"]
        assert "near the box corner" in err and "-48 Å on every axis" in err, err
    # training refuses the same model with the same line
    assert cli(["check-inputs", "--particles", str(ADK_MAP.parent / "particles.star"),
                "--model", str(model), "--out", str(model.parent / "check")]) == 2
    assert "near the box corner" in capsys.readouterr().err


def test_model_partly_outside_the_box_is_an_error(capsys):
    status, r = inspect(capsys, "--model", ADK_REF, "--box", 24, "--apix", 2.0)
    assert status == 0
    assert "of the model's beads lie outside the 24-px particle box" in r["frame"]["error"]
    status, r = inspect(capsys, "--model", ADK_REF, "--box", 48, "--apix", 2.0)
    # no map: no suggestion, and train-atom's final band is 6 Å, so a 40-px box
    assert r["frame"]["error"] is None and r["low_pass"] is None and r["default_box"] == 40


def test_map_of_another_size_is_an_error_and_gives_no_low_pass(capsys):
    status, r = inspect(capsys, "--model", ADK_REF, "--map", ADK_MAP, "--box", 64, "--apix", 2.0)
    assert status == 0 and r["low_pass"] is None
    assert r["frame"]["error"].startswith("map is 48 px × 2 Å = 96 Å across but the particles are 64 px")


@pytest.mark.parametrize("args, message", [
    (["--model", "missing.pdb", "--box", "48", "--apix", "2"], "missing.pdb: model file not found"),
    (["--model", str(ADK_REF), "--map", "missing.mrc", "--box", "48", "--apix", "2"],
     "missing.mrc: map not found"),
])
def test_unreadable_files_exit_2_with_one_line(capsys, args, message):
    assert cli(["inspect-model", "--json", *args]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.strip().splitlines() == [
        f"cryostar-engine: error: {message}"]


def test_check_inputs_maps_overlay_a_corner_origin_map(corner, tmp_path):
    """check-inputs writes its back-projection and model density in the input's frame: with the
    model and map of a program whose maps start at 0, both carry origin 0 like that map."""
    import mrcfile
    from cryostar_engine.checks import CheckConfig, check_inputs
    import torch
    from cryostar_engine.metrics import correlation
    from cryostar_engine.physics.fourier import gaussian_lowpass_volume

    model, corner_map = corner
    report = check_inputs(CheckConfig(particles=str(ADK_MAP.parent / "particles.star"),
                                      model=str(model), map=str(corner_map), out=str(tmp_path),
                                      max_particles=128))
    assert report["frame"]["shift_A"] == [-48.0, -48.0, -48.0] and report["frame"]["source"] == "map"
    man = json.loads((tmp_path / "manifest.json").read_text())
    assert man["schema"] == "cryostar-check/1" and man["frame"] == report["frame"]
    assert man["files"] == sorted(p.name for p in tmp_path.iterdir()) and man["box_px"] == 48
    ref = read_map(corner_map)
    for name in ("backprojection.mrc", "model_density.mrc"):
        with mrcfile.open(tmp_path / name) as m:
            origin = [float(m.header.origin.x), float(m.header.origin.y), float(m.header.origin.z)]
            data = np.asarray(m.data)
        assert origin == [0.0, 0.0, 0.0], name
        smooth = [gaussian_lowpass_volume(torch.as_tensor(v), 1.5) for v in (data, ref.data)]
        assert correlation(*smooth) > 0.8, name          # same grid as the map it overlays


def test_inspect_model_text_names_the_error_and_the_low_pass(capsys, corner):
    model, _ = corner
    assert cli(["inspect-model", "--model", str(model), "--box", "48", "--apix", "2"]) == 0
    out = capsys.readouterr().out
    assert "Note      no map given" in out and "ERROR     " in out and "near the box corner" in out
    assert cli(["inspect-model", "--model", str(ADK_REF), "--map", str(ADK_MAP), "--box", "48",
                "--apix", "2", "--train-box", "24"]) == 0
    out = capsys.readouterr().out
    assert "Low-pass  suggested 10.0 Å" in out and "ERROR" not in out
    assert "Box       48 px by default (at train-atom's default low-pass, 5 Å)" in out
