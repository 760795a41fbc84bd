"""The stage-1 step's pieces: the elastic-network relaxation (device-side, per chain group), the
non-finite guard (a poisoned step is skipped, the learning rate halves, repeated failures stop
the run with advice) and the learning-rate schedule (a pure function of the step)."""
import json
import math

import numpy as np
import pytest
import torch

from cryostar_engine.atom import AtomConfig, train_atom
from cryostar_engine.atom.losses import ElasticGroups, elastic_network_loss
from cryostar_engine.train import TrainingDiverged, lr_factor

from conftest import ADK_REF, ADK_STAR


def _reference_relaxation(d, d0, group_of_pair, keep_ratio, tolerance=0.0):
    """The definition, written plainly on the host: per group, drop the pairs whose variance of
    (d − d0)² over the batch is at or above the group's keep_ratio quantile; the loss is the
    mean over the rest of e = (|d − d0| beyond the tolerance)²."""
    err = np.maximum(np.abs((d - d0).numpy()) - tolerance, 0.0) ** 2
    var = (((d - d0) ** 2).numpy()).var(0, ddof=1)
    keep = np.ones(err.shape[1], bool)
    for g in np.unique(group_of_pair):
        sel = group_of_pair == g
        keep[sel] = var[sel] < np.quantile(var[sel], keep_ratio)
        if not keep[sel].any():
            keep[sel] = True
    return err[:, keep].mean(), keep


def test_relaxation_releases_the_most_variable_pairs_of_each_group():
    gen = torch.Generator().manual_seed(0)
    d0 = 3 + 5 * torch.rand(300, generator=gen)
    d = d0 + 0.1 * torch.randn(16, 300, generator=gen)
    d[:, 7] += 20 * torch.randn(16, generator=gen)       # a hinge pair in group 0
    d[:, 250] += 20 * torch.randn(16, generator=gen)     # and one in group 1
    group = np.repeat([0, 1], [200, 100])
    groups = ElasticGroups.from_labels(group)
    ours = float(elastic_network_loss(d, d0, groups, 0.9))
    expected, keep = _reference_relaxation(d, d0, group, 0.9)
    assert not keep[7] and not keep[250] and keep.sum() == 180 + 90
    assert ours == pytest.approx(expected, rel=1e-5)
    # the hinge pairs' huge errors do not reach the loss; without relaxation they dominate it
    assert float(elastic_network_loss(d, d0, groups, 1.0)) > 50 * ours
    # one group for all pairs is a different (wrong) filter: it must not give the same value
    one_group = ElasticGroups.from_labels(np.zeros(300, int))
    wrong, _ = _reference_relaxation(d, d0, np.zeros(300, int), 0.9)
    assert float(elastic_network_loss(d, d0, one_group, 0.9)) == pytest.approx(wrong, rel=1e-5)
    assert abs(wrong - expected) > 1e-3 * expected


def test_elastic_network_tolerance_is_a_flat_bottom():
    """Deviations up to the tolerance cost nothing; beyond it the cost is quadratic in the excess
    (so a pair 0.8 Å off with a 0.5 Å tolerance costs 0.09 Å², not 0.64)."""
    gen = torch.Generator().manual_seed(1)
    d0 = 3 + 5 * torch.rand(200, generator=gen)
    d = d0 + 0.6 * torch.randn(16, 200, generator=gen)
    group = np.zeros(200, int)
    groups = ElasticGroups.from_labels(group)
    excess = torch.relu((d - d0).abs() - 0.5)
    assert float(elastic_network_loss(d, d0, groups, 1.0, tolerance_A=0.5)) == pytest.approx(
        float((excess ** 2).mean()), rel=1e-5)
    ours = float(elastic_network_loss(d, d0, groups, 0.9, tolerance_A=0.5))
    expected, _ = _reference_relaxation(d, d0, group, 0.9, tolerance=0.5)
    assert ours == pytest.approx(expected, rel=1e-5)
    assert ours < 0.5 * float(elastic_network_loss(d, d0, groups, 0.9))
    single = elastic_network_loss(torch.tensor([[5.8, 5.3, 4.2]]), torch.full((3,), 5.0),
                                  ElasticGroups.from_labels(np.zeros(3, int)),
                                  1.0, tolerance_A=0.5)
    assert float(single) == pytest.approx((0.3 ** 2 + 0 + 0.3 ** 2) / 3, rel=1e-5)


def test_relaxation_keeps_a_group_that_would_release_everything():
    d0 = torch.full((4,), 5.0)
    d = d0 + torch.tensor([[0.1], [0.2], [0.3]]) * torch.ones(3, 4)   # equal variance: all ≥ quantile
    groups = ElasticGroups.from_labels(np.zeros(4, int))
    assert float(elastic_network_loss(d, d0, groups, 0.5)) == pytest.approx(float(((d - d0) ** 2).mean()))


def _config(out, **kw):
    settings = dict(particles=str(ADK_STAR), model=str(ADK_REF), out=str(out), epochs=1, batch=32,
                    box=32, low_pass_A=6.0, threads=1, eval_every_epochs=1e9, checkpoint_every=5)
    settings.update(kw)
    return AtomConfig(**settings)


def test_a_non_finite_step_is_skipped_and_lowers_the_learning_rate(tmp_path):
    clean = train_atom(_config(tmp_path / "clean", lr_schedule="constant", lr=5e-4))
    poisoned = train_atom(_config(tmp_path / "poisoned", lr_schedule="constant", lr=5e-4,
                                    debug_nan_at_step=3))
    assert clean["status"] == poisoned["status"] == "finished"
    steps = [int(r.split(",")[0]) for r in (tmp_path / "poisoned/losses.csv").read_text().splitlines()[1:]]
    assert 3 not in steps and steps[-1] == poisoned["step"] == 12
    log = (tmp_path / "poisoned/run.log").read_text()
    assert "non-finite loss at step 3" in log and "learning rate now 0.00025" in log
    state = torch.load(sorted((tmp_path / "poisoned/checkpoints").glob("step_*.pt"))[-1], weights_only=True)
    assert state["optimizer"]["param_groups"][0]["lr"] == pytest.approx(2.5e-4)
    z = np.load(tmp_path / "poisoned/z.npy")
    assert np.isfinite(z).all() and not np.allclose(z, np.load(tmp_path / "clean/z.npy"))


def test_repeated_non_finite_steps_stop_the_run_with_advice(tmp_path, monkeypatch):
    import cryostar_engine.atom.step as step_module
    real = step_module.atom_losses

    def always_nan(*args, **kw):
        total, terms, last = real(*args, **kw)
        return total * float("nan"), terms, last
    monkeypatch.setattr(step_module, "atom_losses", always_nan)
    with pytest.raises(TrainingDiverged, match="lower --lr"):
        train_atom(_config(tmp_path / "nan"))


def test_cosine_schedule():
    assert lr_factor("constant", 50, 100, 0.05) == 1.0
    assert lr_factor("cosine", 0, 100, 0.05) == 1.0
    assert lr_factor("cosine", 99, 100, 0.05) == pytest.approx(0.05)
    assert lr_factor("cosine", 500, 100, 0.05) == pytest.approx(0.05)
    mid = lr_factor("cosine", 99 / 2, 100, 0.05)
    assert mid == pytest.approx(0.05 + 0.95 * 0.5)
    values = [lr_factor("cosine", s, 100, 0.0) for s in range(100)]
    assert all(a >= b for a, b in zip(values, values[1:]))
    assert values[25] == pytest.approx(0.5 * (1 + math.cos(math.pi * 25 / 99)))


def test_learning_rate_follows_the_schedule_in_training(tmp_path):
    out = tmp_path / "cos"
    train_atom(_config(out, lr=1e-3, lr_final_fraction=0.1))
    state = torch.load(sorted((out / "checkpoints").glob("step_*.pt"))[-1], weights_only=True)
    group = state["optimizer"]["param_groups"][0]
    assert state["step"] == 12
    assert group["lr_peak"] == pytest.approx(1e-3)
    assert group["lr"] == pytest.approx(1e-4)          # the last step ran at the final fraction
    assert json.loads((out / "config.json").read_text())["lr_schedule"] == "cosine"


def test_a_stack_streamed_from_disk_trains_like_a_cached_one(tmp_path):
    """max_cache_gb=0: the batches are read ahead from the memory-mapped stack in a thread;
    the order and the values are those of the in-memory run (same z to float rounding)."""
    cached = train_atom(_config(tmp_path / "cached"))
    streamed = train_atom(_config(tmp_path / "streamed", max_cache_gb=0.0))
    assert cached["step"] == streamed["step"] == 12
    np.testing.assert_allclose(np.load(tmp_path / "streamed/z.npy"), np.load(tmp_path / "cached/z.npy"),
                               atol=1e-5)


def test_compiled_step_trains_like_the_eager_one(tmp_path):
    """--compile (torch.compile of the forward model and losses, eager fallback) gives the same
    run as eager mode to float rounding.  A compiler failure would fall back to eager and log a
    warning: the log must not have one, so this also shows that compiling works here."""
    eager = train_atom(_config(tmp_path / "eager", compile="off"))
    compiled = train_atom(_config(tmp_path / "compiled", compile="on"))
    assert eager["step"] == compiled["step"] == 12
    assert "torch.compile failed" not in (tmp_path / "compiled/run.log").read_text()
    np.testing.assert_allclose(np.load(tmp_path / "compiled/z.npy"), np.load(tmp_path / "eager/z.npy"),
                               atol=1e-5)


def test_compile_auto_rule():
    from cryostar_engine.atom.training import _use_compile
    cpu, long = torch.device("cpu"), AtomConfig(epochs=400, batch=64)      # 18,750 steps of 3,000
    assert _use_compile(long, cpu, 3000, distributed=False)
    assert not _use_compile(long, cpu, 3000, distributed=True)            # torchrun: only when asked
    assert not _use_compile(long, cpu, 100, distributed=False)            # 625 steps: not worth it
    assert not _use_compile(long.replace(compile="off"), cpu, 3000, distributed=False)
    assert _use_compile(long.replace(compile="on"), cpu, 100, distributed=True)
    assert not _use_compile(long, torch.device("meta"), 3000, distributed=False)  # not a CPU


def test_the_default_length_shows_small_sets_enough_images(tmp_path):
    """Without --epochs: 20 passes, or enough to show the networks 175,000 images; the resolved
    number is the run's (config.json), and a resume without --epochs keeps it."""
    from cryostar_engine.atom import default_epochs
    assert default_epochs(384) == 456 and default_epochs(8_750) == 20 and default_epochs(10**6) == 20
    out = tmp_path / "auto"
    manifest = train_atom(_config(out, epochs=None, stop_after_steps=2))
    assert json.loads((out / "config.json").read_text())["epochs"] == 456
    assert manifest["status"] == "stopped"
    assert "5472 steps of 32 images" in (out / "run.log").read_text()      # ceil(456 × 384 / 32)
    train_atom(AtomConfig(out=str(out), resume=True, stop_after_steps=3))
    assert json.loads((out / "config.json").read_text())["epochs"] == 456
    assert "resuming at step 2 (64 images seen) of 5472" in (out / "run.log").read_text()
