"""Issue 17: the stage-1 memory estimate (:func:`cryostar_engine.atom.memory.estimate_step_bytes`,
what ``train-atom`` checks against a GPU's free memory before any GPU time) agrees within 20 %
with the tensor memory one real training step needs, measured on the CPU.

Measured: every tensor storage that the step's operations allocate (forward, backward, the
optimiser update; views and in-place results share a storage and count once) is tracked from its
creation until it is freed, and the peak of the live bytes is taken, as CUDA's
``max_memory_allocated`` does on a GPU; the parameters and AdamW moments that live across
steps are added.  Cases vary the bead count, box, batch and restraint density (a single compact
chain and a packed protein–RNA complex).  About 15 s on one core.
"""
import weakref

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from benchmarks.throughput_cases import Stage1Case
from cryostar_engine.atom.memory import estimate_forward_step_bytes


class PeakTensorBytes(TorchDispatchMode):
    """Peak bytes of the tensor storages alive at once among those created inside the mode."""

    def __init__(self):
        super().__init__()
        self.live, self.now, self.peak = {}, 0, 0

    def _free(self, key):
        self.now -= self.live.pop(key)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_leaves(out):
            if isinstance(t, torch.Tensor):
                storage = t.untyped_storage()      # one Python object per storage while it lives
                key = id(storage)
                if key not in self.live:
                    self.live[key] = storage.nbytes()
                    self.now += storage.nbytes()
                    self.peak = max(self.peak, self.now)
                    weakref.finalize(storage, self._free, key)
        return out


def measured_step_bytes(case: Stage1Case) -> int:
    """Peak tensor bytes of one training step in steady state (after a first step has created
    the optimiser's moments): the step's own allocations (batch, activations, gradients,
    temporaries) plus the parameters and optimiser state that persist."""
    case.step()
    with PeakTensorBytes() as m:
        case.step()
    params = sum(p.numel() * p.element_size() for p in case.setup.net.parameters())
    state = sum(v.numel() * v.element_size() for s in case.setup.optimizer.state.values()
                for v in s.values() if torch.is_tensor(v) and v.dim() > 0)
    return m.peak + params + state


def estimate(case: Stage1Case) -> int:
    n_params = sum(p.numel() for p in case.setup.net.parameters())
    return estimate_forward_step_bytes(case.setup.forward, case.batch_size, len(case.beads),
                                       len(case.setup.restraints.pairs), n_params)


CASES = [  # box, beads, batch, model
    (64, 2000, 16, "complex"),      # many pairs per bead (RNA network at 15 Å); local splatting
    (96, 3000, 16, "cloud"),        # local splatting's patches dominate (W = 15)
    (128, 500, 8, "cloud"),         # image terms dominate
    (96, 1000, 24, "cloud"),
    (64, 5000, 4, "complex"),       # bead and pair terms dominate
    (256, 500, 4, "cloud"),         # the parameters dominate (the optimiser update's peak)
]


@pytest.mark.parametrize("box,beads,batch,model", CASES)
def test_estimate_within_20_percent_of_measured(box, beads, batch, model):
    torch.manual_seed(0)
    case = Stage1Case(box, beads, batch, "cpu", model=model)
    measured, est = measured_step_bytes(case), estimate(case)
    assert abs(est / measured - 1) < 0.20, (est / 2**20, measured / 2**20)


def test_the_measurement_sees_the_activations():
    """The tracker is not blind: doubling the batch adds the per-image activations (the
    measured step grows by at least half of what the estimate says per extra image), and a
    case's peak is well above its persistent parameters and moments."""
    small = Stage1Case(64, 1000, 4, "cpu")
    large = Stage1Case(64, 1000, 8, "cpu")
    per_image = (estimate(large) - estimate(small)) / 4
    assert measured_step_bytes(large) - measured_step_bytes(small) > 0.5 * 4 * per_image
