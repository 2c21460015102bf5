"""One process per GPU, and every collective on the training device (issue 16), tested without a GPU.

NCCL moves CUDA tensors only, and a node with 8 GPUs and 8 tasks shows every task all 8 devices:
each process must pick cuda:<local rank>, make it current, and hand collectives only tensors that
live there. The gloo-on-CPU runs of the other tests cannot see either defect (everything is on the
CPU there), so these tests inject what a GPU node would show: the device count, and a default
device that is not the model's.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
from test_train import _free_port, child_env, make_run

from harness import distributed as hd
from harness.distributed import DeviceError, DistInfo, select_device

DIST_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID")


def test_device_per_local_rank(monkeypatch):
    """Local ranks 0-7 of a job with 8 tasks on a node that shows 8 devices train on cuda:0 .. cuda:7,
    chosen from SLURM_LOCALID (Slurm tasks) or LOCAL_RANK (torchrun) and made current with
    torch.cuda.set_device before any CUDA work; one visible device (per-task binding) is cuda:0."""
    made_current: list[torch.device] = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "set_device", lambda d: made_current.append(torch.device(d)))
    monkeypatch.setattr(hd, "init_distributed", lambda device, info=None: info)  # no process group here
    for launcher in ("slurm", "torchrun"):
        for r in range(8):
            for k in DIST_ENV:
                monkeypatch.delenv(k, raising=False)
            if launcher == "slurm":  # global rank 8 + r: the second node of a 2-node job
                env = {"SLURM_PROCID": str(8 + r), "SLURM_NTASKS": "16", "SLURM_LOCALID": str(r)}
            else:
                env = {"RANK": str(8 + r), "WORLD_SIZE": "16", "LOCAL_RANK": str(r)}
            for k, v in env.items():
                monkeypatch.setenv(k, v)
            device, info = hd.setup("auto", device_count=8)
            assert (info.rank, info.world_size, info.local_rank) == (8 + r, 16, r)
            assert device == torch.device("cuda", r), (launcher, r, device)
            assert made_current[-1] == device
    assert len(made_current) == 16
    for r in range(8):  # CUDA_VISIBLE_DEVICES binds one GPU per task: it is cuda:0 for every local rank
        assert select_device("auto", DistInfo(r, 8, r), device_count=1, cuda_available=True) == torch.device("cuda", 0)
    with pytest.raises(DeviceError, match="tasks_per_node <= gpus_per_node"):
        select_device("cuda", DistInfo(8, 16, 8), device_count=8, cuda_available=True)
    with pytest.raises(DeviceError, match="no CUDA device"):
        select_device("cuda", DistInfo(), device_count=0, cuda_available=False)
    assert select_device("auto", DistInfo(), device_count=0, cuda_available=False) == torch.device("cpu")


# The child: a real 2-process gloo training run with every torch.distributed collective wrapped. While
# the loop runs, tensors created without naming a device go to the "meta" device, as CPU-made tensors
# go elsewhere than a CUDA model on a GPU node; the wrapper records the device of every tensor
# handed to a collective, which must be the model's.
CHILD = r"""
import json, sys
import torch
import torch.distributed as dist
from torch.distributed import distributed_c10d as c10d
import harness.train as ht

seen = []
def wrap(name):
    real = getattr(c10d, name)
    def checked(*args, **kwargs):
        flat = []
        for a in list(args) + list(kwargs.values()):
            flat += list(a) if isinstance(a, (list, tuple)) else [a]
        seen.append([name, sorted({str(t.device) for t in flat if isinstance(t, torch.Tensor)})])
        return real(*args, **kwargs)
    setattr(c10d, name, checked)
    setattr(dist, name, checked)

for name in ("all_reduce", "broadcast", "all_gather", "all_gather_into_tensor", "reduce", "reduce_scatter_tensor",
             "all_to_all_single", "gather", "scatter"):
    wrap(name)

model_device = {}
train = ht.Trainer.train
def train_elsewhere(self):
    model_device["device"] = str(next(self.model.parameters()).device)
    torch.set_default_device("meta")
    try:
        return train(self)
    finally:
        torch.set_default_device(None)
ht.Trainer.train = train_elsewhere
state = ht.train_run(sys.argv[1])
with open(sys.argv[2], "w") as f:
    json.dump({"state": state, "model_device": model_device.get("device"), "collectives": seen}, f)
"""


def test_collectives_on_training_device(tmp_path, corpus):
    run = make_run(tmp_path, "ddp", corpus, tokens=8 * 32 * 12, eval_every_tokens=8 * 32 * 4, log_every_steps=2)
    port = str(_free_port())
    reports = [tmp_path / f"rank{r}.json" for r in range(2)]
    procs = [subprocess.Popen([sys.executable, "-c", CHILD, str(run.path), str(reports[r])],
                              env=child_env(RANK=str(r), WORLD_SIZE="2", LOCAL_RANK=str(r), MASTER_ADDR="127.0.0.1",
                                            MASTER_PORT=port), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
             for r in range(2)]
    errs = [p.communicate(timeout=300)[1].decode(errors="replace") for p in procs]
    got = [json.loads(p.read_text()) if p.exists() else None for p in reports]
    assert all(g is not None for g in got), errs
    for rank, g in enumerate(got):
        off = [(name, devs) for name, devs in g["collectives"] if devs != [g["model_device"]]]
        assert not off, f"rank {rank}: collectives off the model's device {g['model_device']}: {off[:5]}"
        assert g["state"] == "done", (rank, g["state"], run.read_status(), errs[rank][-2000:])
        kinds = {name for name, _ in g["collectives"]}
        assert {"all_reduce", "broadcast"} <= kinds, (rank, kinds)  # losses, eval totals; the data verdict
    assert [r["step"] for r in run.read_metrics().rows if r["kind"] == "eval"] == [4, 8, 12]


def test_ddp_evaluation_with_fewer_batches_than_ranks(tmp_path, corpus):
    """One validation batch over two ranks: evaluation must not run a DDP forward (a collective:
    it waited for the rank that has no batch, which was already in the all-reduce of the totals)."""
    run = make_run(tmp_path, "uneven", corpus, variant="baseline", tokens=8 * 32 * 4, eval_every_tokens=8 * 32 * 2,
                   eval_tokens=8 * 32)
    port = str(_free_port())
    procs = [subprocess.Popen([sys.executable, "-m", "attnres", "train", "--run-dir", str(run.path)],
                              env=child_env(RANK=str(r), WORLD_SIZE="2", LOCAL_RANK=str(r), MASTER_ADDR="127.0.0.1",
                                            MASTER_PORT=port), stdout=subprocess.DEVNULL)
             for r in range(2)]
    try:
        assert [p.wait(timeout=120) for p in procs] == [0, 0]
    finally:
        for p in procs:
            p.kill()
    assert [r["step"] for r in run.read_metrics().rows if r["kind"] == "eval"] == [2, 4]
