"""The reference initialisation of stage 1: after it every particle decodes to the reference
(to a few hundredths of an Å), and, unlike a decoder whose output layer starts at zero, the image
loss's gradient reaches the encoder from the first step (the zero start passes none back)."""
import numpy as np
import pytest
import torch

from cryostar_engine.atom import AtomConfig
from cryostar_engine.atom.evaluate import encoder_input
from cryostar_engine.atom.reference_init import ReferenceInit, fit_reference
from cryostar_engine.atom.step import train_step
from cryostar_engine.atom.training import _build
from cryostar_engine.errors import InputError
from cryostar_engine.train import seed_everything

from conftest import ADK_REF, ADK_STAR


def _parts(decoder_init):
    seed_everything(0)
    cfg = AtomConfig(particles=str(ADK_STAR), model=str(ADK_REF), out="unused", batch=32,
                     decoder_init=decoder_init)
    return _build(cfg, torch.device("cpu"))


def _encoder_gradient(p) -> float:
    """Norm of the encoder's gradient after one training step's backward (lr 0: nothing moves)."""
    for group in p.optimizer.param_groups:
        group["lr"] = 0.0
    batch = p.inputs.dataset.batch(np.arange(32), torch.device("cpu"))
    eps = torch.randn((32, p.model.zdim), generator=torch.Generator().manual_seed(3))
    train_step(p.setup, batch, eps, beta=0.0)
    return float(torch.cat([q.grad.flatten() for q in p.model.encoder.parameters()]).norm())


def test_fit_decodes_to_the_reference_and_lets_gradients_reach_the_encoder():
    torch.set_num_threads(2)
    p = _parts("fit")
    ds = p.inputs.dataset
    out = fit_reference(p.model, p.forward, ds, p.scale, batch=32, seed=0, device="cpu")
    assert 20 <= out["steps"] <= 3 * len(ds) // 32 + 1 and out["final_A2"] < 1e-3
    with torch.no_grad():
        b = ds.batch(np.arange(len(ds)), "cpu")
        mu, _ = p.model.encoder(encoder_input(p.forward, b, p.scale))
        shift = p.model.structures(mu) - p.model.reference_A
    assert float(shift.pow(2).sum(-1).mean().sqrt()) < 0.1      # Å, every particle
    assert _encoder_gradient(p) > 1e-6

    zero = _parts("zero")                                          # the fault this replaces
    assert float(zero.model.decoder.body[-1].weight.detach().abs().max()) == 0.0
    assert _encoder_gradient(zero) == 0.0


def test_fit_is_reproducible_and_stops_at_its_epoch_limit():
    torch.set_num_threads(2)
    a, b = _parts("fit"), _parts("fit")
    strict = ReferenceInit(max_epochs=0.25, threshold_A2=0.0)     # never reached: runs out
    ra = fit_reference(a.model, a.forward, a.inputs.dataset, a.scale, 32, 0, "cpu", strict)
    rb = fit_reference(b.model, b.forward, b.inputs.dataset, b.scale, 32, 0, "cpu", strict)
    assert ra["steps"] == rb["steps"] == 3                         # ceil(0.25 × 384 / 32)
    assert all(torch.equal(x, y) for x, y in zip(a.model.parameters(), b.model.parameters()))


def test_unknown_decoder_init_is_refused(tmp_path):
    from cryostar_engine.atom import train_atom
    with pytest.raises(InputError, match="--decoder-init 'ones'"):
        train_atom(AtomConfig(particles=str(ADK_STAR), model=str(ADK_REF), out=str(tmp_path / "r"),
                              decoder_init="ones"))
