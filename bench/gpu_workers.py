"""The worker processes of bench/gpu_check.py's multi-device sections (nccl, ddp): one process per
rank, started with the environment torchrun would give it (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_*).

    python bench/gpu_workers.py allreduce OUT         # an all-reduce over every rank: checked, then timed
    python bench/gpu_workers.py train OUT RUN_DIR     # one rank of a DDP training run (harness.train)

Each rank writes OUT.<rank>.json; spawn() starts the ranks and reads those files back.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def spawn(role: str, world: int, out: Path, extra: list[str], env_extra: dict[str, str],
          timeout: float) -> list[dict[str, Any]]:
    """Start ``world`` ranks of ``role`` and return each rank's result (or its error and stderr)."""
    port = str(free_port())
    procs = []
    for r in range(world):
        env = {**os.environ, "RANK": str(r), "WORLD_SIZE": str(world), "LOCAL_RANK": str(r), "MASTER_ADDR": "127.0.0.1",
               "MASTER_PORT": port, "OMP_NUM_THREADS": "1", **env_extra}
        procs.append(subprocess.Popen([sys.executable, __file__, role, str(out), *extra], env=env,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
    errs = []
    for p in procs:
        try:
            errs.append(p.communicate(timeout=timeout)[1].decode(errors="replace")[-1500:])
        except subprocess.TimeoutExpired:
            p.kill()
            errs.append("timed out")
    res = []
    for r in range(world):
        f = Path(f"{out}.{r}.json")
        res.append({**json.loads(f.read_text()), "stderr": errs[r]} if f.exists() else
                   {"rank": r, "ok": False, "error": errs[r]})
    return res


def _allreduce() -> dict[str, Any]:
    import torch
    import torch.distributed as dist

    from harness.distributed import setup, shutdown

    device, info = setup(os.environ.get("GPU_CHECK_DEVICE", "auto"))
    x = torch.full((int(os.environ["GPU_CHECK_ELEMS"]),), float(info.rank + 1), device=device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    dist.all_reduce(x)
    sync()
    ok = bool((x == info.world_size * (info.world_size + 1) / 2).all().item())
    t0, reps = time.time(), 5
    for _ in range(reps):
        dist.all_reduce(x)
    sync()
    dt = (time.time() - t0) / reps
    busbw = 2 * (info.world_size - 1) / info.world_size * x.numel() * x.element_size() / dt / 1e9
    shutdown(info)
    return {"rank": info.rank, "device": str(device), "ok": ok, "seconds": dt, "busbw_gb_s": busbw}


def _train(run_dir: str) -> dict[str, Any]:
    import torch

    from harness.distributed import env_dist_info
    from harness.train import train_run

    state = train_run(run_dir)
    return {"rank": env_dist_info().rank, "state": state,
            "device": f"cuda:{torch.cuda.current_device()}" if torch.cuda.is_available() else "cpu"}


def main(argv: list[str]) -> int:
    if str(ROOT) not in sys.path:  # run as a script from the checkout
        sys.path.insert(0, str(ROOT))
    role, out = argv[0], argv[1]
    res = _allreduce() if role == "allreduce" else _train(argv[2])
    Path(f"{out}.{res['rank']}.json").write_text(json.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
