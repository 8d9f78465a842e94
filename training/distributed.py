"""Rank, world size and the one collective training needs, under torchrun; a no-op without it."""

from __future__ import annotations

import os

import torch
import torch.distributed as dist


class Distributed:
    """Reads torchrun's RANK / WORLD_SIZE; joins the process group (gloo on CPU, NCCL on CUDA)."""

    def __init__(self, device: torch.device):
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.active = self.world > 1
        if self.active and not dist.is_initialized():
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")

    def any(self, flag: bool) -> bool:
        """True on every rank if `flag` is true on any: keeps ranks stepping in lockstep."""
        if not self.active:
            return flag
        t = torch.tensor([1.0 if flag else 0.0])
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item())

    def close(self) -> None:
        if self.active and dist.is_initialized():
            dist.destroy_process_group()
