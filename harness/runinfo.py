"""Provenance and derived quantities a run records: env.json (versions, commit, host, device) and
derived.json (parameter counts, FLOPs/token, tokens/step, steps; records.rundir.Derived)."""

from __future__ import annotations

import os
import platform
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from harness.accounting import flops_per_token, param_counts
from harness.distributed import DistInfo
from records.config import RunSpec
from records.rundir import Derived
from records.steps import step_plan


def git_commit() -> str:
    try:
        here = Path(__file__).resolve().parent
        out = subprocess.run(["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=5)
        return out.stdout.strip() if out.returncode == 0 else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "cpu"


def environment(device: torch.device, dist_info: DistInfo, **extra: Any) -> dict[str, Any]:
    from importlib.metadata import PackageNotFoundError, version

    try:
        own = version("attnres-scaling")
    except PackageNotFoundError:
        own = "unknown"
    dev = torch.cuda.get_device_name(device) if device.type == "cuda" else _cpu_name()
    return {"versions": {"python": platform.python_version(), "torch": torch.__version__,
                         "numpy": np.__version__, "attnres": own},
            "git_commit": git_commit(), "hostname": socket.gethostname(), "device": f"{device.type}:{dev}",
            "world_size": dist_info.world_size, "started_at": time.time(),
            "slurm_job_id": os.environ.get("SLURM_JOB_ID"), **extra}


def derived(spec: RunSpec) -> Derived:
    """What training derives from the spec: the same counts `attnres plan` shows (harness.accounting,
    records.steps)."""
    steps = step_plan(spec.train, spec.model.seq_len)
    f = flops_per_token(spec.model)
    return Derived(params=param_counts(spec.model).as_dict(), flops_per_token={"forward": f.forward, "train": f.train},
                   tokens_per_step=steps.tokens_per_step, steps=steps.total)
