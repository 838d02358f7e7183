"""Training under ``torchrun``: where this process stands, and the agreements between processes.

Without ``torchrun`` (``WORLD_SIZE`` unset or 1) there is one process and every helper here is
a no-op. With it, each process trains a :class:`~torch.nn.parallel.DistributedDataParallel`
copy of the network (gloo on CPU, nccl on CUDA) and the processes agree on whether to stop (a
non-finite loss, a spent time budget) so that they stop together.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

__all__ = ["Processes"]


@dataclass(frozen=True)
class Processes:
    """Where this process stands under torchrun (one process without it).

    Attributes:
        rank: This process's rank (0 without torchrun).
        world_size: The number of processes.
        local_rank: This process's rank on its machine (its GPU under CUDA).
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @classmethod
    def from_environment(cls) -> Processes:
        """The processes that ``torchrun``'s environment variables describe."""
        world_size = int(os.environ.get("WORLD_SIZE", "1"))
        if world_size <= 1:
            return cls()
        return cls(int(os.environ["RANK"]), world_size, int(os.environ.get("LOCAL_RANK", "0")))

    @property
    def main(self) -> bool:
        """Whether this is rank 0, the process that writes files and prints."""
        return self.rank == 0

    @property
    def several(self) -> bool:
        """Whether there is more than one process."""
        return self.world_size > 1

    def device(self, device: torch.device) -> torch.device:
        """``device``, or this process's own GPU (``cuda:LOCAL_RANK``) under torchrun with CUDA."""
        return torch.device("cuda", self.local_rank) if device.type == "cuda" and self.several else device

    def start(self, device: torch.device) -> bool:
        """Join the process group (nccl on CUDA, gloo on CPU) unless there is one process or a
        group exists already; return whether this call started it (and so must end it)."""
        if not self.several or dist.is_initialized():
            return False
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        return True

    def wrap(self, net: nn.Module, device: torch.device) -> nn.Module:
        """``net`` for training: itself for one process, else wrapped in
        :class:`~torch.nn.parallel.DistributedDataParallel` (gradients averaged over processes)."""
        if not self.several:
            return net
        return DistributedDataParallel(net, device_ids=[device.index] if device.type == "cuda" else None)

    def barrier(self) -> None:
        """Wait until every process is here (nothing for one process)."""
        if self.several:
            dist.barrier()

    def all(self, flag: bool, device: torch.device) -> bool:
        """Whether ``flag`` holds in every process (a collective: all must call it)."""
        return self._reduce(flag, dist.ReduceOp.MIN, device)

    def any(self, flag: bool, device: torch.device) -> bool:
        """Whether ``flag`` holds in some process (a collective: all must call it)."""
        return self._reduce(flag, dist.ReduceOp.MAX, device)

    def mean(self, value: float, device: torch.device) -> float:
        """The mean of ``value`` over the processes (a collective: all must call it)."""
        if not self.several:
            return value
        total = torch.tensor([value], dtype=torch.float64, device=device)
        dist.all_reduce(total)
        return total.item() / self.world_size

    def _reduce(self, flag: bool, op: dist.ReduceOp.RedOpType, device: torch.device) -> bool:
        if not self.several:
            return flag
        tensor = torch.tensor([float(flag)], device=device)
        dist.all_reduce(tensor, op=op)
        return bool(tensor.item())
