"""Data-parallel generation and scoring: which share of a plan this process makes.

``evaluate`` and ``sample --grid`` run unchanged under ``torchrun --nproc-per-node N`` or ``srun``
(SLURM, one task per GPU): the launch is read from the variables torchrun or srun set (rank, world
size, local rank, main address and port) and the processes join one ``torch.distributed`` group
with its env:// init (NCCL on GPUs, gloo on CPUs). Nothing here launches processes, and nothing
imports Lightning (the layer contract: sampling is below training). A plain ``python -m ...`` is one
process of a world of one, and nothing is initialised.

:class:`Ranks` gives each process a deterministic share of a list (item ``i`` to rank ``i % world``),
barriers, and :meth:`Ranks.main_first`: the main process runs a step (e.g. repairing and merging
files) while the others wait, and an error there is raised on every rank, so no rank hangs.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from speakimg.errors import ConfigError

__all__ = ["Ranks", "setup_ranks"]

T = TypeVar("T")


@dataclass(frozen=True)
class Ranks:
    """This process's place in the world: ``rank`` of ``world_size``, ``local_rank`` on its node."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def share(self, items: Sequence[T]) -> list[T]:
        """This rank's items: ``items[rank::world_size]`` (deterministic, balanced within one)."""
        return list(items[self.rank :: self.world_size])

    def barrier(self) -> None:
        """Wait for every rank (nothing in a world of one)."""
        if self.distributed:
            import torch.distributed as dist

            dist.barrier()

    def broadcast(self, value: Any) -> Any:
        """The main rank's ``value`` on every rank (picklable objects)."""
        if not self.distributed:
            return value
        import torch.distributed as dist

        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def gather(self, value: Any) -> list[Any]:
        """Every rank's ``value``, in rank order, on every rank (picklable objects)."""
        if not self.distributed:
            return [value]
        import torch.distributed as dist

        values: list[Any] = [None] * self.world_size
        dist.all_gather_object(values, value)
        return values

    def main_first(self, step: Callable[[], T]) -> T:
        """Run ``step`` on the main rank while the others wait; its result (or its error) on every rank."""
        result: Any = None
        error: BaseException | None = None
        if self.is_main:
            try:
                result = step()
            except Exception as caught:  # re-raised below on every rank
                error = caught
        if not self.distributed:
            if error is not None:
                raise error
            return result
        message = self.broadcast((result, None if error is None else (type(error).__name__, str(error))))
        result, failure = message
        if error is not None:
            raise error
        if failure is not None:
            raise ConfigError(f"rank 0 failed ({failure[0]}): {failure[1]}")
        return result

    def device(self, name: str) -> Any:
        """The device of this rank: ``auto``/``cuda`` become ``cuda:<local_rank>`` when CUDA is used."""
        import torch

        from speakimg.runtime import select_device

        device = select_device(name)
        if device.type == "cuda" and device.index is None:
            device = torch.device("cuda", self.local_rank % max(torch.cuda.device_count(), 1))
        return device


def _launch() -> tuple[int, int, int] | None:
    """``(rank, world size, local rank)`` of a torchrun or srun launch, or ``None`` for a single process.

    torchrun sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``. srun sets
    ``SLURM_PROCID``, ``SLURM_NTASKS`` and ``SLURM_LOCALID``; the main address is then the job's first node
    (``scontrol show hostnames``) unless ``MASTER_ADDR`` is exported, the port ``MASTER_PORT`` or 29500.
    """
    env = os.environ
    if "RANK" in env and "WORLD_SIZE" in env:
        return int(env["RANK"]), int(env["WORLD_SIZE"]), int(env.get("LOCAL_RANK", 0))
    if "SLURM_PROCID" in env and "SLURM_NTASKS" in env and env.get("SLURM_JOB_NAME") not in ("bash", "interactive"):
        if "MASTER_ADDR" not in env:
            import subprocess

            nodes = env.get("SLURM_JOB_NODELIST") or env.get("SLURM_NODELIST") or ""
            try:
                hosts = subprocess.run(["scontrol", "show", "hostnames", nodes], capture_output=True, text=True,
                                       check=True).stdout.split()  # fmt: skip
            except (OSError, subprocess.CalledProcessError):
                hosts = []
            env["MASTER_ADDR"] = hosts[0] if hosts else "127.0.0.1"
        env.setdefault("MASTER_PORT", "29500")
        return int(env["SLURM_PROCID"]), int(env["SLURM_NTASKS"]), int(env.get("SLURM_LOCALID", 0))
    return None


def setup_ranks(device: str = "auto") -> Ranks:
    """This process's :class:`Ranks`; under torchrun or srun with more than one process, also joins
    (once) the process group: NCCL when ``device`` resolves to CUDA, else gloo."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        local = int(os.environ.get("LOCAL_RANK", os.environ.get("SLURM_LOCALID", 0)))
        return Ranks(dist.get_rank(), dist.get_world_size(), local)
    launch = _launch()
    if launch is None or launch[1] <= 1:
        return Ranks()
    ranks = Ranks(*launch)
    backend = "nccl" if ranks.device(device).type == "cuda" else "gloo"
    if backend == "nccl":
        import torch

        torch.cuda.set_device(ranks.device(device))
    dist.init_process_group(backend, init_method="env://", rank=ranks.rank, world_size=ranks.world_size)
    return ranks
