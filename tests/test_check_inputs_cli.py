"""``cryostar-engine check-inputs`` end to end, and its one-line errors (exit status 2)."""
import json
import subprocess
import sys

import numpy as np
import pytest

from cryostar_engine.cli import main
from cryostar_engine.io import write_mrc, read_map

from conftest import ADK_MAP, ADK_REF, ADK_STAR, REPO


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "cryostar_engine", *map(str, args)],
                          capture_output=True, text=True, cwd=REPO)


def test_report_without_map(tmp_path):
    assert main(["check-inputs", "--particles", str(ADK_STAR), "--model", str(ADK_REF),
                 "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["particles"]["count"] == 384
    assert report["particles"]["box_px"] == 48 and report["particles"]["apix_A"] == 2.0
    assert report["model"]["beads"] == 214
    assert report["backprojection"]["compared_with"] == "model bead density"
    assert report["backprojection"]["correlation_lowpass"] > 0.8
    assert "Back-proj." in (tmp_path / "report.txt").read_text()


def test_model_docked_against_a_corner_origin_map(tmp_path):
    """A model in the frame of a map whose origin is 0 is off by half a box: refused without the
    map (with the shift to apply), accepted when that map is given."""
    shifted = tmp_path / "corner.pdb"
    lines = []
    for line in ADK_REF.read_text().splitlines():
        if line.startswith(("ATOM", "HETATM")):
            x, y, z = (float(line[30:38]) + 48, float(line[38:46]) + 48, float(line[46:54]) + 48)
            line = f"{line[:30]}{x:8.3f}{y:8.3f}{z:8.3f}{line[54:]}"
        lines.append(line)
    shifted.write_text("\n".join(lines) + "\n")
    result = run_cli("check-inputs", "--particles", ADK_STAR, "--model", shifted, "--out", tmp_path / "a")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert "near the box corner" in result.stderr and "-48 Å on every axis" in result.stderr
    corner_map = tmp_path / "corner.mrc"
    write_mrc(corner_map, read_map(ADK_MAP).data, 2.0, origin_A=[0.0, 0.0, 0.0])
    ok = run_cli("check-inputs", "--particles", ADK_STAR, "--model", shifted, "--map", corner_map,
                 "--out", tmp_path / "b")
    assert ok.returncode == 0, ok.stderr
    report = json.loads((tmp_path / "b" / "report.json").read_text())
    np.testing.assert_allclose(report["model"]["shift_applied_A"], [-48, -48, -48])
    assert report["map"]["model_map_correlation"] > 0.95
    assert report["backprojection"]["correlation_lowpass"] > 0.9


@pytest.mark.parametrize("args, message", [
    (["--model", "missing.pdb"], "model file not found"),
    (["--map", "missing.mrc"], "map not found"),
], ids=["no-model", "no-map"])
def test_missing_files(tmp_path, args, message):
    base = {"--particles": str(ADK_STAR), "--model": str(ADK_REF), "--out": str(tmp_path)}
    base.update(dict(zip(args[::2], args[1::2])))
    result = run_cli("check-inputs", *[x for kv in base.items() for x in kv])
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr


def test_map_of_another_box_is_refused(tmp_path):
    small = tmp_path / "small.mrc"
    write_mrc(small, np.zeros((32, 32, 32), np.float32), 2.0)
    result = run_cli("check-inputs", "--particles", ADK_STAR, "--model", ADK_REF, "--map", small,
                     "--out", tmp_path / "o")
    assert result.returncode == 2 and "64 Å across but the particles are 48 px" in result.stderr
