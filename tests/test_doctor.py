"""``cryostar-engine doctor``: the machine report is complete and sane on this machine, and the
planned-run estimate for the bundled data is a positive, finite time per epoch."""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from cryostar_engine.atom.config import AtomConfig
from cryostar_engine.atom.inputs import load_atom_inputs
from cryostar_engine.cli import main as cli_main

ROOT = Path(__file__).resolve().parents[1]
SIM = ROOT / "data" / "adk_sim48"
MODEL = ROOT / "data" / "adk_models" / "adk_ref_frame048.pdb"


def _doctor(*argv) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cryostar_engine", "doctor", *argv], cwd=ROOT,
                          capture_output=True, text=True)


def test_machine_report_json():
    out = _doctor("--json")
    assert out.returncode == 0, out.stderr
    rep = json.loads(out.stdout)
    assert rep["schema"] == "cryostar-doctor/1" and rep["plan"] is None
    assert rep["torch"]["version"] == torch.__version__
    assert rep["torch"]["cuda_available"] == torch.cuda.is_available()
    assert rep["cpu"]["threads_available"] == len(os.sched_getaffinity(0)) >= 1
    assert len(rep["gpus"]) == (torch.cuda.device_count() if torch.cuda.is_available() else 0)
    for gpu in rep["gpus"]:
        assert 0 < gpu["free_GiB"] <= gpu["total_GiB"]
    assert set(rep["packages"]) == {"numpy", "scipy", "mrcfile", "starfile", "biopython",
                                    "scikit-learn", "matplotlib"}
    assert all(rep["packages"][k] for k in ("numpy", "mrcfile", "starfile", "biopython"))
    from importlib import metadata
    registered = any(e.name == "cryostar_plugin" for e in metadata.entry_points(group="pyworkflow.plugin"))
    assert rep["scipion"]["plugin_registered"] == registered


def test_planned_run_estimate_for_the_bundled_data(capsys):
    assert cli_main(["doctor", "--json", "--particles", str(SIM / "particles.star"),
                     "--model", str(MODEL), "--map", str(SIM / "ideal_map_frame048.mrc"),
                     "--batch", "16"]) == 0
    plan = json.loads(capsys.readouterr().out)["plan"]
    assert plan["particles"] == 384 and plan["beads"] == 214 and plan["batch"] == 16
    # what train-atom without --box and --low-pass trains at on these inputs
    train_atom_box = load_atom_inputs(AtomConfig(
        particles=str(SIM / "particles.star"), model=str(MODEL),
        map=str(SIM / "ideal_map_frame048.mrc"), out="unused")).dataset.box
    assert plan["box_px"] == train_atom_box and plan["steps_per_epoch"] == 24
    assert 0 < plan["seconds_per_epoch"] < math.inf
    assert plan["seconds_per_epoch"] == pytest.approx(24 * plan["seconds_per_step"])
    assert 0 < plan["memory_GiB"] < 8 and plan["recommended"]["box_px"] == train_atom_box


def test_planned_run_needs_both_inputs(capsys):
    assert cli_main(["doctor", "--particles", str(SIM / "particles.star")]) == 2
    assert "--particles and --model go together" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["--box", "17"], "--box must be an even number of pixels from 16 to the particles' 48, got 17"),
    (["--box", "96"], "--box must be an even number of pixels from 16 to the particles' 48, got 96"),
    (["--batch", "0"], "--batch"),
    (["--device", "cuda:7"], "--device cuda:7: no such GPU here"),
    (["--device", "foo"], "--device 'foo': not a device name"),
])
def test_planned_run_options_are_refused_in_one_line(argv, message, capsys):
    assert cli_main(["doctor", "--particles", str(SIM / "particles.star"), "--model", str(MODEL),
                     *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
