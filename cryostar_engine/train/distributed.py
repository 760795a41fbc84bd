"""Several processes (GPUs) with PyTorch's own distributed engine, launched by ``torchrun``.

``torchrun --nproc_per_node=K -m cryostar_engine train-atom ...`` starts K processes with the
environment variables RANK, WORLD_SIZE and LOCAL_RANK set.  :func:`init_distributed` turns them
into a :class:`DistContext`: the NCCL backend on GPUs (process k uses ``cuda:LOCAL_RANK``), gloo on
the CPU.  The global batch of each step is split between ranks by :func:`shard`; gradients are
averaged by DistributedDataParallel; only rank 0 writes files.  A single process gets a context
with ``world_size == 1`` and every helper below is a no-op.
"""
from __future__ import annotations

import gc
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from ..errors import InputError

__all__ = ["DistContext", "init_distributed", "shard"]


@dataclass
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def all_gather_rows(self, t: torch.Tensor) -> torch.Tensor:
        """Concatenate equally shaped ``(b, ...)`` tensors of all ranks along dim 0 (rank order)."""
        if not self.enabled:
            return t
        parts = [torch.empty_like(t) for _ in range(self.world_size)]
        dist.all_gather(parts, t.contiguous())
        return torch.cat(parts)

    def broadcast_flag(self, flag: bool, device) -> bool:
        """Rank 0's value of ``flag`` on every rank (keeps wall-clock decisions in step)."""
        if not self.enabled:
            return flag
        t = torch.tensor([1 if flag else 0], device=device)
        dist.broadcast(t, 0)
        return bool(t.item())

    def wrap(self, model: torch.nn.Module, device: torch.device, **ddp_options) -> torch.nn.Module:
        """``model`` in a DistributedDataParallel wrapper when several processes train (on
        ``device``), else ``model`` itself.  Whoever holds the wrapper drops it before
        :meth:`close`."""
        if not self.enabled:
            return model
        ids = [device.index] if device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids, **ddp_options)

    def close(self) -> None:
        """Destroy the process group.  Drop every DistributedDataParallel wrapper first: one
        that outlives the group destroys it on its own deallocation while holding the GIL, and
        gloo's worker threads, which need the GIL to free their last work, then deadlock with it
        (a torch bug, seen as a rank that never exits)."""
        if self.enabled and dist.is_initialized():
            gc.collect()
            dist.destroy_process_group()


def init_distributed(device_name: str) -> tuple[DistContext, str]:
    """Read torchrun's environment; start the process group; return the context and the device
    this process must use (``cuda:LOCAL_RANK`` under NCCL)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistContext(), device_name
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = device_name.startswith("cuda") or (device_name == "auto" and torch.cuda.is_available())
    if use_cuda:
        if torch.cuda.device_count() <= local:
            raise InputError(f"process {rank} needs GPU {local} but only {torch.cuda.device_count()} "
                             "are visible; use --nproc_per_node ≤ the number of GPUs")
        torch.cuda.set_device(local)
        device_name = f"cuda:{local}"
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return DistContext(rank=rank, world_size=world, local_rank=local), device_name


def shard(rows, ctx: DistContext):
    """This rank's share of a global batch (every ``world_size``-th row, starting at ``rank``)."""
    return rows[ctx.rank::ctx.world_size]
