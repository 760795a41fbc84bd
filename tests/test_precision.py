"""Mixed precision of stage 1, checked on the CPU (autocast runs there too): which dtype a GPU
gets, and fp16's dynamic loss scale.  Without the scale, fp16 gradients of the image loss (a
mean over ~10⁵ pixels) fall below fp16's range and a third of them are lost; with it they match
fp32.  An overflow of the scaled gradients skips the update and halves the scale without
counting as a diverging step."""
import numpy as np
import pytest
import torch

from cryostar_engine.atom import AtomConfig
from cryostar_engine.atom.step import fp16_loss_scaler, train_step
from cryostar_engine.atom.training import _build
from cryostar_engine.errors import InputError
from cryostar_engine.train import gpu_amp_dtype, seed_everything

from conftest import ADK_REF, ADK_STAR


def test_gpu_precision_choice():
    assert gpu_amp_dtype("auto", native_bf16=True) is torch.bfloat16
    assert gpu_amp_dtype("auto", native_bf16=False) is torch.float16          # V100, T4: fp16 + scale
    assert gpu_amp_dtype("auto", native_bf16=False, fp16_ok=False) is None    # stage 2: fp32
    assert gpu_amp_dtype("fp32", native_bf16=True) is None
    assert gpu_amp_dtype("fp16", native_bf16=True) is torch.float16
    assert gpu_amp_dtype("bf16", native_bf16=True) is torch.bfloat16
    with pytest.raises(InputError, match="compute capability 8.0"):
        gpu_amp_dtype("bf16", native_bf16=False)


@pytest.fixture(scope="module")
def parts():
    torch.set_num_threads(2)
    seed_everything(0)
    cfg = AtomConfig(particles=str(ADK_STAR), model=str(ADK_REF), out="unused", batch=16)
    p = _build(cfg, torch.device("cpu"))
    for group in p.optimizer.param_groups:      # lr 0 (refused as a setting): nothing moves
        group["lr"] = 0.0
    with torch.no_grad():                       # away from the zero-displacement start
        gen = torch.Generator().manual_seed(1)
        for q in p.model.parameters():
            q.add_(0.01 * torch.randn(q.shape, generator=gen))
    batch = p.inputs.dataset.batch(np.arange(16), torch.device("cpu"))
    eps = torch.randn((16, cfg.zdim), generator=torch.Generator().manual_seed(2))
    return p, batch, eps


def _gradients(p, batch, eps, amp, scaler=None):
    """One train_step (lr 0: the parameters do not move) and the gradients it left."""
    p.setup.amp, p.setup.scaler = amp, scaler
    try:
        total, _, ok, _ = train_step(p.setup, batch, eps, beta=0.1)
    finally:
        p.setup.amp, p.setup.scaler = None, None
    grads = torch.cat([q.grad.flatten() for q in p.model.parameters()])
    return grads, bool(ok), float(total)


def test_fp16_needs_the_loss_scale(parts):
    p, batch, eps = parts
    ref, ok, loss32 = _gradients(p, batch, eps, None)
    assert ok and np.isfinite(loss32)
    nonzero = ref != 0

    def lost(g):
        return float(((g == 0) & nonzero).float().sum() / nonzero.sum())

    unscaled, _, _ = _gradients(p, batch, eps, torch.float16)
    scaler = fp16_loss_scaler("cpu")
    scaled, ok, loss16 = _gradients(p, batch, eps, torch.float16, scaler)
    assert ok and loss16 == pytest.approx(loss32, abs=1e-3)
    assert scaler.get_scale() == 2.0 ** 16            # no overflow: the scale stays
    assert lost(unscaled) > 0.1                       # the fault: fp16 alone loses gradients
    assert lost(scaled) < 0.002
    assert float((scaled - ref).norm() / ref.norm()) < 0.02
    bf16, ok, _ = _gradients(p, batch, eps, torch.bfloat16)   # bf16 has fp32's range
    assert ok and lost(bf16) < 0.002


def test_an_overflow_skips_the_update_and_halves_the_scale(parts):
    p, batch, eps = parts
    for group in p.optimizer.param_groups:
        group["lr"] = 1e-3
    try:
        before = [q.detach().clone() for q in p.model.parameters()]
        scaler = torch.amp.GradScaler("cpu", init_scale=1e30)   # scaled fp16 gradients overflow
        _, ok, _ = _gradients(p, batch, eps, torch.float16, scaler)
        assert ok                                    # a sound step: the guard must not cut the lr
        assert scaler.get_scale() == pytest.approx(0.5e30)
        assert all(torch.equal(a, q) for a, q in zip(before, p.model.parameters()))
        scaler = fp16_loss_scaler("cpu")             # a sane scale: the update is applied
        _, ok, _ = _gradients(p, batch, eps, torch.float16, scaler)
        assert ok and not all(torch.equal(a, q) for a, q in zip(before, p.model.parameters()))
    finally:
        for group in p.optimizer.param_groups:
            group["lr"] = 0.0
