"""The one low-pass suggestion: check-inputs reports it, train-atom's auto low-pass uses it, and it
gets coarser when the model does not fit the map (so the check can fail)."""
from pathlib import Path

import numpy as np
import pytest
from conftest import ADK_MAP, ADK_REF, ADK_STAR

from cryostar_engine.atom.config import AtomConfig
from cryostar_engine.atom.inputs import default_box, load_atom_inputs
from cryostar_engine.checks import CheckConfig, check_inputs, format_report
from cryostar_engine.io import read_map, read_particles
from cryostar_engine.lowpass import suggest_low_pass
from cryostar_engine.reference import load_reference


def shifted_pdb(src: Path, dst: Path, shift_A) -> Path:
    """Copy a PDB with every ATOM/HETATM moved by ``shift_A`` (Å, x y z)."""
    lines = []
    for line in src.read_text().splitlines():
        if line.startswith(("ATOM", "HETATM")):
            xyz = [float(line[30 + 8 * i:38 + 8 * i]) + shift_A[i] for i in range(3)]
            line = line[:30] + "".join(f"{v:8.3f}" for v in xyz) + line[54:]
        lines.append(line)
    dst.write_text("\n".join(lines) + "\n")
    return dst


@pytest.fixture(scope="module")
def report():
    return check_inputs(CheckConfig(particles=str(ADK_STAR), model=str(ADK_REF), map=str(ADK_MAP),
                                    max_particles=64))


def _inputs(tmp_path, **kw):
    settings = dict(particles=str(ADK_STAR), model=str(ADK_REF), out=str(tmp_path / "unused"),
                    map=str(ADK_MAP), low_pass_A="auto")
    settings.update(kw)
    return load_atom_inputs(AtomConfig(**settings))


def test_auto_low_pass_is_the_number_check_inputs_reports(report, tmp_path):
    inputs = _inputs(tmp_path)
    assert inputs.low_pass_A == report["suggested_low_pass_A"]
    assert inputs.low_pass_source.startswith("auto: FSC(model,map)=0.5 at ")
    # the ideal map of the model itself: the FSC is fine, so the floor (2.5 px of 2 Å) rules
    assert report["map"]["model_map_fsc05_A"] < 5.0 and report["suggested_low_pass_A"] == 5.0
    assert inputs.dataset.box == default_box(48, 2.0, inputs.low_pass_A) == 48


def test_the_default_is_auto_and_a_word_or_a_number_is_accepted(tmp_path, capsys):
    """The default final band is the suggestion (coarse-to-fine from 10 Å reaches it); 'auto'
    asks for it by name; a number is kept."""
    from cryostar_engine.cli import build_parser
    assert AtomConfig.low_pass_A is None and AtomConfig.low_pass_start_A == 10.0
    inputs = _inputs(tmp_path, low_pass_A=AtomConfig.low_pass_A)
    assert inputs.low_pass_A == 5.0 and inputs.low_pass_source.startswith("auto: FSC(model,map)")
    args = build_parser().parse_args(["train-atom", "--low-pass", "auto"])
    assert args.low_pass_A == "auto"
    assert build_parser().parse_args(["train-atom", "--low-pass", "7.5"]).low_pass_A == 7.5
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train-atom", "--low-pass", "fine"])
    assert "--low-pass: invalid float or auto value: 'fine'" in capsys.readouterr().err


def test_report_text_names_the_low_pass_without_a_flag(report):
    text = format_report(report)
    assert "suggested low-pass 5.0 Å" in text and "--low-pass" not in text


def test_a_model_shifted_off_the_map_gets_a_coarser_suggestion(tmp_path):
    meta, m = read_particles(ADK_STAR), read_map(ADK_MAP)
    fitted = suggest_low_pass(load_reference(ADK_REF, meta.box, meta.apix, m).beads, m, 48, 2.0)
    moved = shifted_pdb(ADK_REF, tmp_path / "moved.pdb", (6.0, -4.0, 3.0))
    off = suggest_low_pass(load_reference(moved, meta.box, meta.apix, m).beads, m, 48, 2.0)
    assert fitted.fsc05_A < 5.0 < 10.0 < off.fsc05_A, (fitted, off)
    assert off.suggested_A >= off.fsc05_A > fitted.suggested_A
    inputs = _inputs(tmp_path, model=str(moved))
    assert inputs.low_pass_A == off.suggested_A and inputs.dataset.box < 48


def test_floor_follows_the_training_box():
    meta, m = read_particles(ADK_STAR), read_map(ADK_MAP)
    beads = load_reference(ADK_REF, meta.box, meta.apix, m).beads
    s = suggest_low_pass(beads, m, 48, 2.0, train_box=24)
    assert s.floor_A == pytest.approx(10.0) and s.suggested_A == 10.0 and s.check_apix_A == 2.0


def test_without_a_map_auto_is_6_A_and_a_set_value_is_kept(tmp_path):
    no_map = _inputs(tmp_path, map=None)
    assert (no_map.low_pass_A, no_map.low_pass_source) == (6.0, "auto: no map, 6 Å")
    assert no_map.dataset.box == default_box(48, 2.0, 6.0) == 40
    kept = _inputs(tmp_path, low_pass_A=7.0)
    assert (kept.low_pass_A, kept.low_pass_source) == (7.0, "set")
    assert np.isclose(kept.dataset.apix, 2.0 * 48 / default_box(48, 2.0, 7.0))
