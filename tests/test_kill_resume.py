"""SIGKILL inside a checkpoint write (both stages), then --resume:
the final z (stage 1) and the final weights (stage 2) equal an uninterrupted run's.

Uses benchmarks/kill_resume.py (its 20-point table is in benchmarks/RESULTS.md) with shorter
runs.  The checkpoint-write kill is deterministic: the killed process's torch.save writes half
of the file, pauses, then finishes, and the kill lands while the half-written temporary file
exists; the resumed run must ignore it and continue from the previous complete checkpoint.
A random kill of stage 1 between steps is tests/test_atom_resume.py's.
"""
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import kill_resume as kr  # noqa: E402

from cryostar_engine.cli import main  # noqa: E402

def _with(args, **values):
    """``args`` with the value after each ``--flag`` replaced (``flag_name=value``)."""
    args = list(args)
    for name, value in values.items():
        args[args.index("--" + name.replace("_", "-")) + 1] = str(value)
    return args


SHORT = {1: _with(kr.STAGE_ARGS[1], epochs=4, checkpoint_every=5), 2: _with(kr.STAGE_ARGS[2], epochs=4)}


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    work = tmp_path_factory.mktemp("kill")
    z = work / "z.npy"
    np.save(z, np.random.default_rng(1).standard_normal((384, 2)).astype(np.float32))
    refs = {}
    for stage in (1, 2):
        refs[stage] = work / f"ref{stage}"
        assert main(kr.stage_args(stage, refs[stage], z, SHORT)) == 0
    return work, z, refs


@pytest.mark.parametrize("stage", [1, 2])
def test_run_killed_inside_a_checkpoint_write_resumes_to_the_uninterrupted_result(work, stage):
    work, z, refs = work
    run = work / f"killed{stage}"
    kr.kill_in_checkpoint_write(kr.stage_args(stage, run, z, SHORT), run, skip=2)
    assert kr.kill_state(run) == "checkpoint half-written"
    assert kr.resume(stage, run, z, SHORT) is not None          # continued, not restarted
    assert kr.max_diff(stage, kr.final_result(stage, refs[stage]), kr.final_result(stage, run)) <= 1e-5
