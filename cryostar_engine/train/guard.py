"""Non-finite guard: detect a NaN/Inf loss or gradient, roll back, lower the learning rate."""
from __future__ import annotations

import logging

import torch

__all__ = ["NonFiniteGuard", "TrainingDiverged"]


class TrainingDiverged(RuntimeError):
    """Raised after too many consecutive roll-backs."""


class NonFiniteGuard:
    """Keeps an in-memory copy of the last good state and restores it when a step goes bad.

    Use::

        guard = NonFiniteGuard(model, optimizer, logger)
        ...
        if not guard.step_ok(loss):   # loss not finite (or gradients not finite)
            continue                  # state restored, learning rate × lr_factor
        optimizer.step(); guard.mark_good(step)   # every few steps

    After ``max_failures`` consecutive roll-backs it raises :class:`TrainingDiverged` with a
    message that says what to try.
    """

    def __init__(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                 logger: logging.Logger | None = None, lr_factor: float = 0.5,
                 max_failures: int = 5):
        self.model, self.optimizer = model, optimizer
        self.log = logger or logging.getLogger("cryostar_engine")
        self.lr_factor, self.max_failures = lr_factor, max_failures
        self.failures = 0
        self.rollbacks = 0
        self._good = None
        self.mark_good()

    def mark_good(self) -> None:
        """Remember the current model and optimiser state as good."""
        self._good = ({k: v.detach().clone() for k, v in self.model.state_dict().items()},
                      _clone_state(self.optimizer.state_dict()))
        self.failures = 0

    def grads_finite(self) -> bool:
        return all(torch.isfinite(p.grad).all() for p in self.model.parameters() if p.grad is not None)

    def check(self, loss: torch.Tensor, step: int) -> bool:
        """True when ``loss`` and the gradients are finite; otherwise roll back and return False."""
        if torch.isfinite(loss).all() and self.grads_finite():
            return True
        self.failures += 1
        self.rollbacks += 1
        if self.failures > self.max_failures:
            raise TrainingDiverged(
                f"training diverged: non-finite loss at step {step} after {self.max_failures} "
                "roll-backs; lower --lr, raise --low-pass, or check the input particles")
        model_state, opt_state = self._good
        self.model.load_state_dict(model_state)
        self.optimizer.load_state_dict(_clone_state(opt_state))
        for group in self.optimizer.param_groups:
            group["lr"] *= self.lr_factor ** self.failures
        self.optimizer.zero_grad(set_to_none=True)
        lr = self.optimizer.param_groups[0]["lr"]
        self.log.warning("non-finite loss at step %d: rolled back to the last good state, "
                         "learning rate now %.3g", step, lr)
        return False


def _clone_state(state):
    if isinstance(state, torch.Tensor):
        return state.detach().clone()
    if isinstance(state, dict):
        return {k: _clone_state(v) for k, v in state.items()}
    if isinstance(state, list):
        return [_clone_state(v) for v in state]
    return state
