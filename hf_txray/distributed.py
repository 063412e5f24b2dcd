"""Process topology for profiling under `accelerate launch` / `torchrun`: rank, contiguous shards, exact reduction.

Profiling is forward-only, so instead of a prepared DataLoader (which pads the last batch with duplicates and so
biases sums) each process takes a contiguous shard of the corpus, accumulates locally, and the states are
gathered and merged in rank order, giving every rank the same result.
"""

from __future__ import annotations

import os
from typing import Any

import torch


def process_info(cpu: bool | None = None) -> tuple[int, int]:
    """(rank, world_size), initialising the process group through Accelerate when launched with several processes."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        from accelerate import PartialState

        state = PartialState(cpu=cpu if cpu is not None else not torch.cuda.is_available())
        return state.process_index, state.num_processes
    return 0, 1


def default_device(world_size: int) -> torch.device:
    if torch.cuda.is_available():
        local = int(os.environ.get("LOCAL_RANK", "0")) if world_size > 1 else torch.cuda.current_device()
        return torch.device("cuda", local)
    return torch.device("cpu")


def shard_bounds(num_items: int, rank: int, world_size: int) -> tuple[int, int]:
    """[start, end) of this rank's contiguous shard; same split as ``datasets`` contiguous sharding."""
    div, mod = divmod(num_items, world_size)
    start = div * rank + min(rank, mod)
    return start, start + div + (1 if rank < mod else 0)


def all_gather(obj: Any, world_size: int) -> list[Any]:
    """Every rank's `obj`, in rank order (every rank must call this)."""
    if world_size == 1:
        return [obj]
    import torch.distributed as dist

    gathered: list[Any] = [None] * world_size
    dist.all_gather_object(gathered, obj)
    return gathered
