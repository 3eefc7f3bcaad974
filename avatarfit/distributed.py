"""Several processes started by ``torchrun`` (``torch.distributed``): training shares one
global batch, fitting shares the frames. One process when ``WORLD_SIZE`` is unset or 1."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Callable

import torch

__all__ = ["DistInfo", "setup", "cleanup", "share", "from_main", "total", "wait_all"]


@dataclass(frozen=True)
class DistInfo:
    """This process's place: ``rank`` of ``world`` processes, on ``device``; ``owned``:
    :func:`setup` joined the process group (and :func:`cleanup` leaves it), where a caller
    that joined it before keeps it for its next work."""

    rank: int
    world: int
    device: torch.device
    owned: bool = True

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup(device: str = "auto", argument: str = "train.device") -> DistInfo:
    """Join the process group when ``torchrun`` started several processes (``WORLD_SIZE``
    > 1): NCCL on CUDA, gloo on CPU, each process on GPU ``LOCAL_RANK``. One process
    otherwise. ``device``: ``auto``, ``cpu`` or ``cuda`` (``argument`` names it in errors)."""
    use_cuda = torch.cuda.is_available() if device == "auto" else device == "cuda"
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"{argument}: cuda requested but torch sees no CUDA device")
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo(0, 1, torch.device("cuda" if use_cuda else "cpu"))
    import torch.distributed as dist

    local = int(os.environ.get("LOCAL_RANK", "0"))
    if use_cuda:
        if local >= torch.cuda.device_count():
            raise ValueError(f"{argument}: process LOCAL_RANK {local} has no GPU of its own (this machine shows "
                             f"{torch.cuda.device_count()}); start at most that many processes per machine")
        torch.cuda.set_device(local)
    owned = not dist.is_initialized()
    if owned:
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return DistInfo(dist.get_rank(), dist.get_world_size(), torch.device(f"cuda:{local}" if use_cuda else "cpu"),
                    owned)


def cleanup(info: DistInfo) -> None:
    """Leave the process group :func:`setup` joined."""
    if info.world > 1 and info.owned:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()


def share(value, info: DistInfo):
    """The main process's ``value`` (any picklable object), on every process."""
    if info.world == 1:
        return value
    import torch.distributed as dist

    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def wait_all(info: DistInfo) -> None:
    """Wait until every process gets here."""
    if info.world > 1:
        import torch.distributed as dist

        dist.barrier()


def total(value: int, info: DistInfo) -> int:
    """The sum of every process's ``value``."""
    if info.world == 1:
        return value
    import torch.distributed as dist

    values: list = [None] * info.world
    dist.all_gather_object(values, value)
    return sum(values)


def from_main(info: DistInfo, work: Callable[[], Any]) -> Any:
    """``work()`` run by the main process, its result on every process (its error too:
    re-raised by the main process, named on the others: a ``RuntimeError``)."""
    if info.world == 1:
        return work()
    outcome: tuple[str, Any] = ("ok", None)
    error = None
    if info.main:
        try:
            outcome = ("ok", work())
        except Exception as exc:  # noqa: BLE001 - re-raised below, after the others heard of it
            error, outcome = exc, ("error", f"{type(exc).__name__}: {exc}")
    outcome = share(outcome, info)
    if error is not None:
        raise error
    if outcome[0] == "error":
        raise RuntimeError(f"rank {info.rank}: the main process (rank 0) stopped the job: {outcome[1]}")
    return outcome[1]
