"""torch.distributed setup from the environment: torchrun, Slurm (srun / submitit tasks) or nothing.

torchrun sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT. A Slurm task (srun, or a
submitit job with tasks_per_node > 1) sets SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID; the master is
the first host of the job (SLURM_LAUNCH_NODE_IPADDR on one node, else the first name of
SLURM_JOB_NODELIST) and the port is derived from the job id so concurrent jobs do not collide.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def _first_host(nodelist: str) -> str:
    """First host of a Slurm nodelist such as 'node[03-05,07],other1'."""
    m = re.match(r"([^,\[]+)(?:\[([0-9]+))?", nodelist)
    if not m:
        return "127.0.0.1"
    return m.group(1) + (m.group(2) or "")


def env_dist_info() -> DistInfo:
    env = os.environ
    if "RANK" in env and "WORLD_SIZE" in env:
        return DistInfo(int(env["RANK"]), int(env["WORLD_SIZE"]), int(env.get("LOCAL_RANK", 0)))
    if int(env.get("SLURM_NTASKS", "1")) > 1 and "SLURM_PROCID" in env:
        return DistInfo(int(env["SLURM_PROCID"]), int(env["SLURM_NTASKS"]), int(env.get("SLURM_LOCALID", 0)))
    return DistInfo()


def init_distributed(device: torch.device) -> DistInfo:
    """Initialise the default process group when the environment asks for several processes."""
    info = env_dist_info()
    if not info.enabled or dist.is_initialized():
        return info
    if "MASTER_ADDR" not in os.environ:
        os.environ["MASTER_ADDR"] = os.environ.get("SLURM_LAUNCH_NODE_IPADDR") or _first_host(
            os.environ.get("SLURM_JOB_NODELIST", "127.0.0.1"))
    if "MASTER_PORT" not in os.environ:
        job = int(os.environ.get("SLURM_JOB_ID", "0"))
        os.environ["MASTER_PORT"] = str(20000 + job % 20000)
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(backend=backend, rank=info.rank, world_size=info.world_size)
    return info


def all_reduce_sum(t: torch.Tensor, info: DistInfo) -> torch.Tensor:
    if info.enabled:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def shutdown(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()
