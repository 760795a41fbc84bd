"""Stage-2 defaults that depend on the run (issue 18): the length is sized to the set, the
width is chosen for the device, both are recorded in ``config.json`` and ``run.log``, an
explicit ``--hidden`` wins, a resumed run keeps its recorded width, and the progress of a run
of part epochs never passes 100 %.  Tiny runs (box 16, 384 particles, a few steps)."""
import json
import re

import numpy as np
import pytest
import torch
from conftest import ADK_STAR

from cryostar_engine.cli import main as cli
from cryostar_engine.density import DensityConfig, train_density
from cryostar_engine.density.schedule import (AUTO_HIDDEN, DEFAULT_EPOCHS, MIN_TRAIN_IMAGES,
                                              auto_hidden, default_density_epochs)
from cryostar_engine.density.training import images_to_train
from cryostar_engine.train import list_checkpoints

N = 384                 # particles of the bundled set
TINY = dict(box=16, residual_layers=1, batch=64, lr=1e-3, device="cpu", seed=3, n_clusters=2,
            n_pcs=1, n_pc_points=2, threads=1, f_std_particles=8)
CLI_TINY = ["--box", "16", "--residual-layers", "1", "--batch", "64", "--device", "cpu",
            "--threads", "1", "--k", "2", "--pcs", "1", "--points", "2", "--f-std-particles", "8"]
PROGRESS = re.compile(r"^progress: (\d+)% step (\d+)/(\d+), ([\d,]+)/([\d,]+) images, .*ETA (\w+)$")


@pytest.fixture(scope="module")
def z_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("z") / "z.npy"
    np.save(path, np.random.default_rng(1).standard_normal((N, 2)).astype(np.float32))
    return path


def _saved(run) -> dict:
    return json.loads((run / "config.json").read_text())


def _width_in_checkpoint(run) -> int:
    state = torch.load(list_checkpoints(run)[-1], weights_only=True)["model"]
    first = next(v for k, v in state.items() if k.endswith("weight") and v.ndim == 2)
    return int(first.shape[0])


def test_default_length_is_sized_to_the_set():
    """20 passes on a large set; at least MIN_TRAIN_IMAGES images (whole passes) on a small one."""
    assert default_density_epochs(10 ** 6) == DEFAULT_EPOCHS == 20
    assert default_density_epochs(MIN_TRAIN_IMAGES // 20) == 20
    small = default_density_epochs(N)
    assert small == float(-(-MIN_TRAIN_IMAGES // N)) and small * N >= MIN_TRAIN_IMAGES > (small - 1) * N
    assert default_density_epochs(2000) * 2000 >= MIN_TRAIN_IMAGES


def test_a_default_run_records_its_length_and_width(tmp_path, z_path):
    """No --epochs, no --hidden on the CPU: config.json and run.log say what was decided, and
    the network trained is that wide."""
    run = tmp_path / "run"
    _, finished = train_density(DensityConfig(particles=str(ADK_STAR), z_path=str(z_path),
                                              debug_stop_after_steps=1, **TINY), run)
    assert not finished
    saved = _saved(run)
    assert saved["epochs"] == default_density_epochs(N)
    assert (saved["hidden"], saved["hidden_source"]) == (AUTO_HIDDEN["cpu"], "auto: cpu") == (256, "auto: cpu")
    assert _width_in_checkpoint(run) == 256
    log = (run / "run.log").read_text()
    total = images_to_train(saved["epochs"], N, 64)
    assert f"length: {saved['epochs']:g} epochs ({round(saved['epochs'] * N):,} images) by default" in log
    assert "width: --hidden 256 (auto: cpu; give --hidden to choose)" in log
    assert total >= MIN_TRAIN_IMAGES
    assert auto_hidden(torch.device("cuda")) == (AUTO_HIDDEN["cuda"], "auto: cuda") == (1024, "auto: cuda")
    assert auto_hidden("cuda:1") == (1024, "auto: cuda") and auto_hidden("cpu") == (256, "auto: cpu")


def test_an_explicit_hidden_wins(tmp_path, z_path, capsys):
    run = tmp_path / "run"
    assert cli(["train-density", "--particles", str(ADK_STAR), "--z", str(z_path), "--out", str(run),
                "--hidden", "24", "--epochs", "0.1", *CLI_TINY]) == 0
    saved = _saved(run)
    assert (saved["hidden"], saved["hidden_source"], saved["epochs"]) == (24, "--hidden", 0.1)
    assert "width: --hidden 24 (given)" in (run / "run.log").read_text()
    assert json.loads((run / "manifest.json").read_text())["config"]["hidden"] == 24


def test_a_resumed_run_keeps_its_recorded_width(tmp_path, z_path, capsys):
    """A run whose width was decided elsewhere (here: recorded as auto on a GPU, 40 wide) is
    resumed on the CPU: it keeps 40 and its source; it is not re-decided for the CPU (256)."""
    run = tmp_path / "run"
    cfg = DensityConfig(particles=str(ADK_STAR), z_path=str(z_path), hidden=40,
                        hidden_source="auto: cuda", epochs=0.5, debug_stop_after_steps=1, **TINY)
    assert train_density(cfg, run)[1] is False
    assert cli(["train-density", "--out", str(run), "--resume"]) == 0
    saved = _saved(run)
    assert (saved["hidden"], saved["hidden_source"]) == (40, "auto: cuda")
    assert _width_in_checkpoint(run) == 40
    assert "width: --hidden 40 (recorded: auto: cuda)" in (run / "run.log").read_text()


@pytest.mark.parametrize("epochs, batch", [(0.1, 64), (1.3, 50)], ids=["tenth", "1.3-epochs"])
def test_progress_of_part_epochs_never_passes_100_percent(tmp_path, z_path, capsys, epochs, batch):
    """``--epochs 0.1`` once printed progress over 100 % (126 %): the last batch of a part
    epoch sees more than ``epochs × N`` images.  The total counts those images."""
    run = tmp_path / "run"
    args = [a if a != "64" else str(batch) for a in CLI_TINY]
    assert cli(["train-density", "--particles", str(ADK_STAR), "--z", str(z_path), "--out", str(run),
                "--hidden", "16", "--epochs", str(epochs), *args]) == 0
    lines = [m for ln in capsys.readouterr().out.splitlines() if (m := PROGRESS.match(ln))]
    assert lines
    for m in lines:
        pct, step, steps = int(m.group(1)), int(m.group(2)), int(m.group(3))
        seen, total = (int(m.group(i).replace(",", "")) for i in (4, 5))
        assert pct <= 100 and step <= steps and seen <= total, m.group(0)
    last = lines[-1]
    assert last.group(1) == "100" and last.group(4) == last.group(5) and last.group(6) == "0s"
    seen = json.loads((run / "manifest.json").read_text())["images_seen"]
    assert f"{seen:,}" == last.group(5) and round(epochs * N) <= seen < round(epochs * N) + batch


def test_final_decay_is_flat_then_half_a_cosine():
    """Constant for the first 90 % of the images, then down to the final fraction at the end
    (a run made longer with --epochs decays at its new end)."""
    from cryostar_engine.train.schedule import final_decay_factor
    f = [final_decay_factor(i, 1000, 0.1, 0.1) for i in (0, 500, 900, 950, 1000, 1200)]
    assert f[:3] == [1.0, 1.0, 1.0]
    assert f[3] == pytest.approx(0.55) and f[4] == pytest.approx(0.1) and f[5] == pytest.approx(0.1)
    assert final_decay_factor(1000, 1000, 0.0, 0.1) == 1.0            # 0: constant to the end
    assert final_decay_factor(950, 2000, 0.1, 0.1) == 1.0             # lengthened: flat again


def _last_lr(run) -> float:
    state = torch.load(list_checkpoints(run)[-1], weights_only=False)
    return float(state["optimizer"]["param_groups"][0]["lr"])


def test_a_run_ends_at_the_decayed_rate_and_an_old_run_stays_constant(tmp_path, z_path):
    """The optimiser's rate at the last step of a run is --lr × the decay factor of that step
    (near LR_FINAL_FRACTION); a run whose config.json is of schema 3 (before the decay) trains
    at a constant rate."""
    from cryostar_engine.density.schedule import LR_FINAL_FRACTION
    from cryostar_engine.train.schedule import final_decay_factor
    assert DensityConfig(particles="p", z_path="z").lr_decay_fraction == 0.1     # the default
    run = tmp_path / "run"
    cfg = DensityConfig(particles=str(ADK_STAR), z_path=str(z_path), epochs=4, hidden=16,
                        lr_decay_fraction=0.5, **{**TINY, "lr": 1e-3})
    train_density(cfg, run)                       # 24 steps of 64; the last starts at 1,472
    expected = final_decay_factor(4 * N - 64, 4 * N, 0.5, LR_FINAL_FRACTION)
    assert expected < 0.2
    assert _last_lr(run) == pytest.approx(1e-3 * expected, rel=1e-4)
    saved = _saved(run)
    assert saved["lr_decay_fraction"] == 0.5
    # the same config read back as schema 3: no decay recorded → constant
    schema3 = {k: v for k, v in saved.items() if k != "lr_decay_fraction"} | {"schema_version": 3}
    old = DensityConfig.from_dict(schema3)
    assert old.lr_decay_fraction == 0.0
    flat = tmp_path / "flat"
    train_density(old, flat)
    assert _last_lr(flat) == pytest.approx(1e-3)
