"""A process killed while writing a checkpoint leaves the temporary file of that write; the
next resume removes it, while a reader beside a live training (eval-atom, the viewer) never
touches a write that may be in flight."""
from cryostar_engine.train.checkpoint import load_latest_checkpoint, save_checkpoint


def _leftover(run):
    tmp = run / "checkpoints" / ".step_0000020.pt.k3j9x2.pt.tmp"   # atomic_path's naming
    tmp.write_bytes(b"half a checkpoint")
    return tmp


def test_resume_removes_the_leftover_of_a_killed_write_and_loads_the_last_good_one(tmp_path):
    save_checkpoint(tmp_path, {"step": 10}, 10)
    tmp = _leftover(tmp_path)
    assert load_latest_checkpoint(tmp_path, resuming=True) == {"step": 10}
    assert not tmp.exists()
    assert [p.name for p in (tmp_path / "checkpoints").iterdir()] == ["step_0000010.pt"]


def test_a_reader_leaves_a_write_in_flight_alone(tmp_path):
    save_checkpoint(tmp_path, {"step": 10}, 10)
    tmp = _leftover(tmp_path)
    assert load_latest_checkpoint(tmp_path) == {"step": 10}
    assert tmp.exists()
