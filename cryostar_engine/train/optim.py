"""The optimiser side of a training step, shared by both stages, without host–device syncs.

A step's gradients are checked for finiteness **on the device** (:func:`finite_gradients`, one
fused norm) and the flag is handed to the fused AdamW as ``found_inf`` (the mechanism AMP's
``GradScaler`` uses): a step with a non-finite gradient leaves the parameters, the moments and
the step count unchanged, i.e. the model stays at its last good state.  The caller reads the
flags back every few steps and reports them to :class:`~cryostar_engine.train.guard.SkippedSteps`.
"""
from __future__ import annotations

import logging

import torch
from torch import nn

__all__ = ["make_optimizer", "ensure_fused", "finite_gradients", "guarded_step", "CompiledOrEager"]


def make_optimizer(model: nn.Module, lr: float, weight_decay: float) -> torch.optim.AdamW:
    """Fused AdamW (one kernel for all parameters; accepts a device-side ``found_inf``)."""
    return torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay, fused=True)


def ensure_fused(optimizer: torch.optim.Optimizer) -> None:
    """Keep an optimiser fused after ``load_state_dict`` of a checkpoint written by a non-fused
    one (which overwrites the ``fused`` flag and leaves the step counters on the CPU)."""
    for group in optimizer.param_groups:
        if group.get("fused"):
            continue
        group.update(fused=True, foreach=None)
        for p in group["params"]:
            state = optimizer.state.get(p, {})
            if "step" in state:
                state["step"] = torch.as_tensor(state["step"], dtype=torch.float32,
                                                device=p.device)


def finite_gradients(optimizer: torch.optim.Optimizer) -> torch.Tensor:
    """0-d bool on the device: every gradient is finite (one fused norm, no sync)."""
    grads = [p.grad for g in optimizer.param_groups for p in g["params"] if p.grad is not None]
    if not grads:
        return torch.ones((), dtype=torch.bool)
    norms = torch._foreach_norm(grads)
    return torch.isfinite(torch.stack(norms).sum())


def guarded_step(optimizer: torch.optim.Optimizer, loss: torch.Tensor | None = None) -> torch.Tensor:
    """Apply the fused AdamW update unless a gradient (or ``loss``) is not finite; return that
    decision as a 0-d bool on the device (True = applied).  Nothing is read back to the host."""
    ok = finite_gradients(optimizer)
    if loss is not None:
        ok = ok & torch.isfinite(loss.detach()).all()
    optimizer.found_inf = (~ok).to(torch.float32)
    try:
        optimizer.step()
    finally:
        del optimizer.found_inf
    return ok


class CompiledOrEager:
    """``torch.compile(fn, dynamic=True)`` that falls back to ``fn`` for good when compiling (or
    the first compiled call) fails, e.g. without a C++ compiler.  Dynamic shapes: the short last
    batch of an epoch and uneven shares of a distributed batch reuse the one compiled graph.
    """

    def __init__(self, fn, log: logging.Logger | None = None):
        self.fn, self.log = fn, log or logging.getLogger("cryostar_engine")
        self.compiled = torch.compile(fn, dynamic=True)
        self.failed = False

    def __call__(self, *args):
        if not self.failed:
            try:
                return self.compiled(*args)
            except Exception as err:       # noqa: BLE001 - any compiler failure: run eagerly
                self.failed = True
                self.log.warning("torch.compile failed (%s: %s); continuing without it",
                                 type(err).__name__, str(err).splitlines()[0][:200])
        return self.fn(*args)
