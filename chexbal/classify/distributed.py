"""Running `chexbal train` under torchrun: process group, shards of the in-memory data, gathers.

Without torchrun (no WORLD_SIZE in the environment) everything here is a no-op for one process.
Each rank holds the whole uint8 split in memory and trains on its shard of every epoch's shuffled
order; validation and test predictions are gathered so every rank computes the same metrics, and
only rank 0 writes files.
"""

from __future__ import annotations

import dataclasses
import os

import torch
import torch.distributed as dist


@dataclasses.dataclass(frozen=True)
class Ranks:
    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0


SINGLE = Ranks()


def setup(device: torch.device) -> tuple[Ranks, torch.device]:
    """Join the process group torchrun describes; on CUDA each rank takes its local GPU."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return SINGLE, device
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    return Ranks(dist.get_rank(), dist.get_world_size()), device


def wrap(model: torch.nn.Module, ranks: Ranks, device: torch.device) -> torch.nn.Module:
    if ranks.world == 1:
        return model
    if device.type == "cuda":  # batch statistics over the global batch, as in one process
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    return torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The plain model inside torch.compile's and DDP's wrappers (their state_dict keys differ)."""
    model = getattr(model, "_orig_mod", model)
    return model.module if isinstance(model, torch.nn.parallel.DistributedDataParallel) else model


def shard(order: torch.Tensor, ranks: Ranks) -> torch.Tensor:
    """This rank's part of an order; every rank gets the same count so collective steps stay in step."""
    usable = len(order) // ranks.world * ranks.world
    return order[:usable][ranks.rank :: ranks.world]


def gather_rows(part: torch.Tensor, n: int, ranks: Ranks) -> torch.Tensor:
    """Rows predicted as rank r's rows r, r + world, ... put back in order, on every rank."""
    if ranks.world == 1:
        return part
    size = -(-n // ranks.world)
    padded = torch.zeros(size, *part.shape[1:], dtype=part.dtype, device=part.device)
    padded[: len(part)] = part
    pieces = [torch.empty_like(padded) for _ in range(ranks.world)]
    dist.all_gather(pieces, padded)
    full = torch.empty(n, *part.shape[1:], dtype=part.dtype, device=part.device)
    for r, piece in enumerate(pieces):
        full[r :: ranks.world] = piece[: len(range(r, n, ranks.world))]
    return full


def total(value: torch.Tensor, ranks: Ranks) -> torch.Tensor:
    if ranks.world > 1:
        dist.all_reduce(value)
    return value


def barrier(ranks: Ranks) -> None:
    if ranks.world > 1:
        dist.barrier()


def teardown(ranks: Ranks) -> None:
    if ranks.world > 1 and dist.is_initialized():
        dist.destroy_process_group()
