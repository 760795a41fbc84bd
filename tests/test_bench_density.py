"""benchmarks/bench_density.py: a wall-time budget stops train_density with a checkpoint whose
maps can be rendered, and a training subset keeps star rows and z rows together."""
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import bench_density as bd  # noqa: E402
from peer_common import load_bench_data  # noqa: E402

from conftest import DATA  # noqa: E402
from cryostar_engine.density import DensityConfig, load_trained, write_eval_volumes  # noqa: E402
from cryostar_engine.io import read_particles  # noqa: E402
from cryostar_engine.train import load_latest_checkpoint  # noqa: E402


def test_budget_stops_with_a_checkpoint_and_subset_keeps_rows(tmp_path):
    data = load_bench_data(DATA / "adk_sim48")
    z = np.random.default_rng(0).normal(size=(data.n, 2)).astype(np.float32)
    np.save(tmp_path / "z.npy", z)
    rows = np.arange(40)
    star, z_path = bd.training_inputs(data, tmp_path / "z.npy", rows, tmp_path)
    meta, full = read_particles(star), read_particles(data.star)
    assert len(meta) == 40 and np.array_equal(meta.euler_deg, full.euler_deg[:40])
    assert np.array_equal(np.load(z_path), z[:40])

    cfg = DensityConfig(particles=str(star), z_path=str(z_path), epochs=10**6, device="cpu",
                        threads=1, hidden=16, residual_layers=1, f_std_particles=8, batch=4)
    run = tmp_path / "run"
    assert bd.train_for(cfg, run, minutes=4 / 60) is False           # stopped by the budget
    ckpt = load_latest_checkpoint(run)
    assert ckpt["images_seen"] > 0 and ckpt["images_seen"] % 4 == 0
    loop = bd.loop_seconds((run / "run.log").read_text())
    assert loop is not None and 0 < loop < 60
    trained = load_trained(run)
    write_eval_volumes(tmp_path / "maps", trained, z[:2], source=str(run))
    assert sorted(p.name for p in (tmp_path / "maps").glob("vol_*.mrc")) == ["vol_000.mrc",
                                                                           "vol_001.mrc"]
