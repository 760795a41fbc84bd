"""The peer drivers' own parsing (no peer needed): run folders, log stamps, partial checkpoints."""
import pickle
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import peer_cryodrgn as pd  # noqa: E402
import peer_cryostar as pc  # noqa: E402
from peer_common import (BenchData, load_bench_data, map_rows, run_logged,  # noqa: E402
                         score_particle_maps, thread_env)
from test_benchmark_metrics import _blob_volumes  # noqa: E402

from cryostar_engine.io import write_mrc  # noqa: E402

from conftest import ADK_GT_FRAME, ADK_REF, DATA  # noqa: E402


def test_cryostar_log_timings(tmp_path):
    log = tmp_path / "20261125_134410.log"
    log.write_text(
        "2026/11/25 13:44:10 - cryostar - INFO - Config:\n"
        "2026/11/25 13:44:41 - cryostar - INFO - Init finished with loss 0.0005\n"
        "2026/11/25 13:44:53 - cryostar - INFO - load rank 0 model weights\n"
        "2026/11/25 13:45:10 - cryostar - INFO - Epoch 3 Step 100 start validation\n"
        "2026/11/25 13:46:23 - cryostar - INFO - Epoch 9 Step 436 start validation\n")
    assert pc.log_timings(log) == {"startup_ref_init_s": 31.0, "fit_s": 90.0}


def test_cryostar_last_eval_dir(tmp_path):
    work = tmp_path / "work_dirs" / "atom_x_0"
    for name, files in (("0000_0000000", ["input_image.png"]), ("0004_0000227", ["z.npy", "ckpt.pt"]),
                        ("0009_0000436", ["z.npy", "ckpt.pt"]), ("0010_0000500", ["z.npy"])):
        (work / name).mkdir(parents=True)
        for f in files:
            (work / name / f).write_text("")
    found_work, found = pc.find_eval_dir(tmp_path)
    assert found_work == work and found.name == "0009_0000436"   # 0010 lacks its checkpoint


def test_cryostar_config_has_budget(tmp_path):
    args = pc.parse_args(["--peer-src", str(tmp_path), "--peer-python", "p", "--data", "d",
                          "--minutes", "20.5", "--out", "o"])
    data = type("D", (), dict(root=Path("/d"), star=Path("/d/p.star"), apix=1.5, box=64))
    pc.write_config(args, data, ADK_REF, tmp_path / "c.py")
    text = (tmp_path / "c.py").read_text()
    assert "max_time='00:00:20:30'" in text and "ctf='v2'" in text and "train_batch_per_gpu=64" in text
    assert "low_pass_bandwidth=6.0" in text and "workers_per_gpu=0" in text


def test_cryodrgn_partial_checkpoint_is_skipped(tmp_path):
    mu = np.arange(12.0).reshape(6, 2)
    for e in (1, 2):
        (tmp_path / f"weights.{e}.pkl").write_bytes(b"w")
        with open(tmp_path / f"z.{e}.pkl", "wb") as f:
            pickle.dump(mu * e, f)
            if e == 1:
                pickle.dump(mu, f)          # epoch 2 was cut before its log-variances
    epoch, z = pd.last_complete_epoch(tmp_path)
    assert epoch == 1 and np.array_equal(z, mu)
    (tmp_path / "z.1.pkl").unlink()
    with pytest.raises(SystemExit, match="no complete epoch"):
        pd.last_complete_epoch(tmp_path)


def test_cryodrgn_epoch_seconds():
    text = ("(INFO) # =====> Epoch: 1 Average gen loss = 0.72, KLD = 0.65, total loss = 0.72; "
            "Finished in 0:01:49.641642\n"
            "(INFO) # =====> Epoch: 2 Average gen loss = 0.70, KLD = 0.60, total loss = 0.70; "
            "Finished in 1:00:00.5\n")
    assert pd.epoch_seconds(text) == {1: pytest.approx(109.641642), 2: pytest.approx(3600.5)}


def test_run_logged_deadline_stops_process_group(tmp_path):
    res = run_logged([sys.executable, "-c", "import time; print('start', flush=True); time.sleep(60)"],
                     tmp_path, tmp_path / "log.txt", thread_env(1), deadline_s=1.0)
    assert res["stopped"] and res["rc"] is None and res["wall_s"] < 30
    assert "start" in (tmp_path / "log.txt").read_text()


def test_load_bench_data_reads_optics(tmp_path):
    d = load_bench_data(DATA / "adk_sim48")
    assert d.box == 48 and d.apix == pytest.approx(2.0) and d.n == len(np.load(ADK_GT_FRAME))
    assert d.gt_ca.shape == (98, 214, 3)


def test_map_rows_same_particles_for_every_driver():
    rows, pick = map_rows(3000, None, 100, 0)
    assert np.array_equal(rows, np.arange(3000)) and len(pick) == 100
    assert np.array_equal(pick, map_rows(3000, None, 100, 0)[1])          # reproducible
    rows, small = map_rows(3000, 64, 10, 0)
    assert len(rows) == 64 and len(small) == 10 and small.max() < 64
    assert not np.array_equal(pick, map_rows(3000, None, 100, 1)[1])      # the seed matters


def test_score_particle_maps_truth_and_floors(tmp_path):
    t = np.linspace(0, 1, 8)
    gt_all = _blob_volumes(t)                          # 8 "frames", 24 px at 2 Å
    np.save(tmp_path / "gt_volumes.npy", gt_all)
    write_mrc(tmp_path / "consensus_frame000.mrc", gt_all[0], 2.0)
    frame = np.repeat(np.arange(8), 3)
    data = BenchData(root=tmp_path, star=tmp_path / "p.star", apix=2.0, box=24, frame=frame,
                     gt_ca=np.zeros((8, 1, 3)))
    frames = np.array([0, 2, 4, 6, 7, 1])
    truth = score_particle_maps(gt_all[frames], data, frames)
    assert truth["au_fsc"] == pytest.approx(0.5) and truth["het_carried"] == pytest.approx(1.0)
    assert truth["consensus_het_carried"] == 0.0 and truth["gt_mean_het_carried"] == 0.0
    # a single map is a floor: below the truth, and the population mean beats one end state
    assert truth["consensus_au_fsc"] < truth["gt_mean_au_fsc"] < 0.5 - 0.02
    wrong = score_particle_maps(gt_all[7 - frames], data, frames)    # states reversed
    assert wrong["het_carried"] < -0.2 and wrong["au_fsc"] < truth["au_fsc"] - 0.02
    assert wrong["consensus_au_fsc"] == pytest.approx(truth["consensus_au_fsc"])
