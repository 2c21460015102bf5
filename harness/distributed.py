"""torch.distributed setup from the environment: torchrun, Slurm (srun / submitit tasks) or nothing.

torchrun sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT. A Slurm task (srun, or a
submitit job with tasks_per_node > 1) sets SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID; the master is
the first host of the job (SLURM_LAUNCH_NODE_IPADDR on one node, else the first name of
SLURM_JOB_NODELIST) and the port is derived from the job id so concurrent jobs do not collide.

One process per GPU: the process of local rank r uses ``cuda:r`` when it sees several devices (an
sbatch with ``--gpus-per-node=8 --ntasks-per-node=8`` and no per-task binding shows every task all
8), or ``cuda:0`` when it sees one (per-task binding through CUDA_VISIBLE_DEVICES). ``setup`` calls
``torch.cuda.set_device`` before anything touches CUDA and binds the NCCL process group to that
device (``device_id``), so NCCL never guesses. NCCL moves CUDA tensors only
(``Backend.backend_capability['nccl'] == ['cuda']``): every tensor handed to a collective must live
on the training device (``tests/test_train.py::test_collectives_on_training_device``).
"""

from __future__ import annotations

import datetime
import os
import re
from dataclasses import dataclass

import torch
import torch.distributed as dist

# the first collective waits for every rank; rank 0 may first check the data (harness.train), so
# give it more than NCCL's 10-minute default before a slow start is taken for a hung peer
PG_TIMEOUT = datetime.timedelta(minutes=30)


class DeviceError(RuntimeError):
    """The process cannot get the device it is meant to use; the message says how to fix it."""


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


def select_device(kind: str, info: DistInfo, device_count: int | None = None,
                  cuda_available: bool | None = None) -> torch.device:
    """The training device of this process. ``kind``: 'auto' (CUDA when available), 'cuda' or 'cpu'.
    ``device_count``/``cuda_available`` default to torch.cuda's (tests inject them)."""
    if kind == "cpu":
        return torch.device("cpu")
    available = torch.cuda.is_available() if cuda_available is None else cuda_available
    if not available:
        if kind == "cuda":
            raise DeviceError("train.device is 'cuda' but torch sees no CUDA device; fix: run on a GPU node "
                              "with a CUDA build of torch, or set device = 'auto'")
        return torch.device("cpu")
    n = torch.cuda.device_count() if device_count is None else device_count
    if n == 1:  # one GPU bound to this task (CUDA_VISIBLE_DEVICES), whatever its local rank
        return torch.device("cuda", 0)
    if info.local_rank >= n:
        raise DeviceError(f"local rank {info.local_rank} but only {n} visible CUDA devices; fix: start at most "
                          f"one task per GPU ([launch] tasks_per_node <= gpus_per_node)")
    return torch.device("cuda", info.local_rank)


def setup(kind: str, device_count: int | None = None) -> tuple[torch.device, DistInfo]:
    """Pick this process's device from its local rank, make it current, and initialise the process
    group when the environment asks for several processes."""
    info = env_dist_info()
    device = select_device(kind, info, device_count)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    init_distributed(device, info)
    return device, info


def init_distributed(device: torch.device, info: DistInfo | None = None) -> DistInfo:
    """Initialise the default process group when the environment asks for several processes:
    gloo on CPU, NCCL bound to ``device`` on CUDA."""
    info = info or env_dist_info()
    if not info.enabled or dist.is_initialized():
        return info
    if "MASTER_ADDR" not in os.environ:
        os.environ["MASTER_ADDR"] = os.environ.get("SLURM_LAUNCH_NODE_IPADDR") or _first_host(
            os.environ.get("SLURM_JOB_NODELIST", "127.0.0.1"))
    if "MASTER_PORT" not in os.environ:
        job = int(os.environ.get("SLURM_JOB_ID", "0"))
        os.environ["MASTER_PORT"] = str(20000 + job % 20000)
    if device.type == "cuda":
        dist.init_process_group(backend="nccl", rank=info.rank, world_size=info.world_size, timeout=PG_TIMEOUT,
                                device_id=device)
    else:
        dist.init_process_group(backend="gloo", rank=info.rank, world_size=info.world_size, timeout=PG_TIMEOUT)
    return info


def all_reduce_sum(t: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Sum ``t`` over the processes, in place (on t's device: keep it on the training device)."""
    if info.enabled:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def broadcast(t: torch.Tensor, info: DistInfo, src: int = 0) -> torch.Tensor:
    """Rank ``src``'s ``t`` on every process, in place."""
    if info.enabled:
        dist.broadcast(t, src=src)
    return t


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def shutdown(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()
