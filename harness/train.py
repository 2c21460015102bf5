"""Train one run: AdamW, warmup + cosine/WSD, clipping, accumulation, evaluation, checkpoint/resume.

    attnres train --run-dir runs/adhoc/my-run               # resumes if runs/adhoc/my-run/ckpt/last.pt exists
    attnres train --spec spec.json --run-dir runs/x/y       # copy a RunSpec into a new run directory
    attnres train --ladder tiny --size d3 --variant block --attnres-blocks 3 --tokens 2e6 --run-dir runs/x/y
    torchrun --nproc-per-node 2 -m harness train --run-dir ...   # DDP (gloo on CPU, nccl on GPU)

Determinism: the batch of step s is drawn from a generator seeded with (seed, s), so the data
position is the step itself; a run killed at any point and resumed from its checkpoint (model,
optimizer, step, RNG, metric accumulators) writes exactly the rows an uninterrupted run writes
(tests/test_train.py::test_resume_bit_exact). The global batch is the same for any world size.
"""

from __future__ import annotations

import math
import os
import platform
import socket
import subprocess
import sys
import time
import traceback
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel as DDP

from harness.accounting import flops_per_token, param_counts
from harness.config import ConfigError, RunSpec, TrainConfig
from harness.distributed import DistInfo, all_reduce_sum, init_distributed, shutdown
from harness.model import LM
from harness.rundir import RunDir
from harness.tracking import NullTracker, open_tracker

# ----------------------------------------------------------------------------------------------
# schedule


@dataclass(frozen=True)
class Schedule:
    """LR as a function of the step; ends exactly at the run's own budget (total_steps)."""

    lr: float
    total_steps: int
    warmup_steps: int
    kind: str
    min_ratio: float
    decay_steps: int  # WSD

    def __call__(self, step: int) -> float:  # step: 0-based index of the update being made
        if step < self.warmup_steps:
            return self.lr * (step + 1) / self.warmup_steps
        lo = self.lr * self.min_ratio
        if self.kind == "constant":
            return self.lr
        if self.kind == "cosine":
            span = max(1, self.total_steps - 1 - self.warmup_steps)
            p = min(1.0, (step - self.warmup_steps) / span)
            return lo + (self.lr - lo) * 0.5 * (1 + math.cos(math.pi * p))
        # wsd: constant, then linear decay over the final decay_steps to lr * min_ratio
        start = self.total_steps - self.decay_steps
        if step < start or self.decay_steps == 0:
            return self.lr
        p = (step - start + 1) / self.decay_steps
        return self.lr + (lo - self.lr) * p


def tokens_per_step(spec: RunSpec) -> int:
    return spec.train.batch_size * spec.model.seq_len


def make_schedule(spec: RunSpec) -> Schedule:
    tc = spec.train
    tps = tokens_per_step(spec)
    total = max(1, round(tc.tokens / tps))
    warm_tokens = tc.warmup_tokens if tc.warmup_tokens is not None else tc.warmup_frac * tc.tokens
    warmup = min(total, max(0, math.ceil(warm_tokens / tps)))
    decay = round(tc.decay_frac * total) if tc.schedule == "wsd" else 0
    return Schedule(tc.lr, total, warmup, tc.schedule, tc.min_lr_ratio, decay)


# ----------------------------------------------------------------------------------------------
# data


class Batches:
    """Batch of step s = batch_size windows of seq_len + 1 tokens at offsets drawn by a generator
    seeded with (seed, s). Rank r of w takes rows [r * B/w, (r+1) * B/w)."""

    def __init__(self, tokens: np.ndarray, seq_len: int, batch_size: int, seed: int) -> None:
        if len(tokens) < seq_len + 2:
            raise ConfigError(f"data: the training split has {len(tokens)} tokens, fewer than seq_len + 2; "
                              "fix: prepare more data or lower seq_len")
        self.tokens, self.T, self.B, self.seed = tokens, seq_len, batch_size, seed

    def offsets(self, step: int) -> np.ndarray:
        rng = np.random.default_rng([self.seed, step])
        return rng.integers(0, len(self.tokens) - self.T - 1, size=self.B)

    def get(self, step: int, rows: slice) -> tuple[torch.Tensor, torch.Tensor]:
        offs = self.offsets(step)[rows]
        win = np.stack([np.asarray(self.tokens[o:o + self.T + 1], dtype=np.int64) for o in offs])
        t = torch.from_numpy(win)
        return t[:, :-1], t[:, 1:]


def validation_batches(val: np.ndarray, seq_len: int, eval_tokens: int, batch: int):
    """The fixed validation slice: the first eval_tokens tokens of the validation split, cut into
    non-overlapping windows; identical for every run that shares seq_len and data."""
    n_seq = max(1, min(eval_tokens // seq_len, (len(val) - 1) // seq_len))
    win = np.asarray(val[: n_seq * seq_len + 1], dtype=np.int64)
    x = torch.from_numpy(win[:-1].reshape(n_seq, seq_len).copy())
    y = torch.from_numpy(win[1:].reshape(n_seq, seq_len).copy())
    return [(x[i:i + batch], y[i:i + batch]) for i in range(0, n_seq, batch)]


# ----------------------------------------------------------------------------------------------
# provenance


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


def environment(device: torch.device, dist_info: DistInfo) -> dict[str, Any]:
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
            "slurm_job_id": os.environ.get("SLURM_JOB_ID")}


def derived(spec: RunSpec) -> dict[str, Any]:
    sched = make_schedule(spec)
    f = flops_per_token(spec.model)
    return {"params": param_counts(spec.model).as_dict(),
            "flops_per_token": {"forward": f.forward, "train": f.train},
            "tokens_per_step": tokens_per_step(spec), "steps": sched.total_steps}


# ----------------------------------------------------------------------------------------------
# the loop


class Diverged(Exception):
    pass


def _pick_device(tc: TrainConfig, info: DistInfo) -> torch.device:
    if tc.device == "cuda" or (tc.device == "auto" and torch.cuda.is_available()):
        return torch.device("cuda", info.local_rank if torch.cuda.device_count() > 1 else 0)
    return torch.device("cpu")


def _optimizer(model: LM, tc: TrainConfig, device: torch.device) -> torch.optim.AdamW:
    """Weight decay on matrices only; embeddings, gains and the residual variant's mixing weights
    (zero-init pseudo-queries, key-norm gains) are not decayed."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (decay if p.dim() >= 2 and not name.startswith(("residual.", "embed.")) else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": tc.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=tc.lr, betas=(tc.beta1, tc.beta2), eps=1e-8,
                             fused=device.type == "cuda")


def _save_ckpt(path: Path, state: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def _load_ckpt(path: Path) -> dict[str, Any]:
    return torch.load(path, map_location="cpu", weights_only=False)


class Trainer:
    def __init__(self, run: RunDir, spec: RunSpec, runs_root: Path | None = None) -> None:
        from harness.data import load_tokens

        self.run, self.spec, self.tc = run, spec, spec.train
        self.runs_root = runs_root or run.path.parent
        self.device = _pick_device(self.tc, DistInfo())
        self.dist = init_distributed(self.device)
        if self.device.type == "cpu":
            torch.set_num_threads(self.tc.threads)
        self.sched = make_schedule(spec)
        B, world = self.tc.batch_size, self.dist.world_size
        if B % world:
            raise ConfigError(f"train.batch_size: {B} sequences do not split over {world} processes; "
                              f"fix: use a multiple of {world}")
        self.local_B = B // world
        self.micro = min(self.tc.micro_batch_size or self.local_B, self.local_B)
        if self.local_B % self.micro:
            raise ConfigError(f"train.micro_batch_size: {self.micro} does not divide the per-process batch "
                              f"{self.local_B}; fix: choose a divisor")
        torch.manual_seed(self.tc.seed)
        self.model = LM(spec.model).to(self.device)
        self.ddp = DDP(self.model) if self.dist.enabled else None
        self.forward_model = torch.compile(self.ddp or self.model) if self.tc.compile else (self.ddp or self.model)
        self.opt = _optimizer(self.model, self.tc, self.device)
        data_dir = spec.data.path
        self.batches = Batches(load_tokens(data_dir, "train"), spec.model.seq_len, B, self.tc.seed)
        self.val = validation_batches(load_tokens(data_dir, "val"), spec.model.seq_len, self.tc.eval_tokens,
                                      max(self.micro, 8))
        self.tps = tokens_per_step(spec)
        self.flops_per_token = flops_per_token(spec.model).train
        every = self.tc.eval_every_tokens or self.tc.tokens / 10
        self.eval_every = max(1, round(every / self.tps))
        self.save_at = {max(1, math.ceil(t / self.tps)) for t in self.tc.save_at_tokens}
        self.autocast = (torch.autocast(self.device.type, dtype=torch.bfloat16)
                         if self.tc.dtype == "bfloat16" else nullcontext())
        # loop state (all of it goes into the checkpoint)
        self.step = 0
        self.elapsed = 0.0
        self.acc_loss, self.acc_steps = 0.0, 0  # train loss since the last metrics row
        self.tracker = NullTracker()  # train_run opens the sweep's trackers (harness/tracking.py)

    # -- state
    def state(self) -> dict[str, Any]:
        return {"model": self.model.state_dict(), "optimizer": self.opt.state_dict(), "step": self.step,
                "data_position": self.step, "schedule": vars(self.sched).copy(), "elapsed_s": self.elapsed,
                "acc_loss": self.acc_loss, "acc_steps": self.acc_steps,
                "rng": {"torch": torch.get_rng_state(), "numpy": np.random.get_state()},
                "spec": self.spec.to_dict()}

    def load_state(self, st: dict[str, Any], branch: bool = False) -> None:
        self.model.load_state_dict(st["model"])
        self.opt.load_state_dict(st["optimizer"])
        self.step = int(st["step"])
        torch.set_rng_state(st["rng"]["torch"])
        np.random.set_state(st["rng"]["numpy"])
        self.elapsed = float(st["elapsed_s"])
        self.acc_loss, self.acc_steps = float(st["acc_loss"]), int(st["acc_steps"])
        if branch:  # a WSD cool-down keeps its own schedule; its LR is set per step anyway
            for g in self.opt.param_groups:
                g["lr"] = self.sched(self.step)

    def checkpoint(self) -> None:
        if self.dist.is_main:
            _save_ckpt(self.run.last_ckpt, self.state())
            if self.step in self.save_at:
                _save_ckpt(self.run.kept_ckpt(self.step * self.tps), self.state())

    # -- pieces of a step
    def train_step(self) -> tuple[float, float, float]:
        lr = self.sched(self.step)
        for g in self.opt.param_groups:
            g["lr"] = lr
        rows0 = self.dist.rank * self.local_B
        n_micro = self.local_B // self.micro
        total = torch.zeros((), dtype=torch.float64)
        for k in range(n_micro):
            x, y = self.batches.get(self.step, slice(rows0 + k * self.micro, rows0 + (k + 1) * self.micro))
            x, y = x.to(self.device), y.to(self.device)
            sync = self.ddp.no_sync() if (self.ddp is not None and k < n_micro - 1) else nullcontext()
            with sync, self.autocast:
                loss = self._loss(x, y)
                (loss / n_micro).backward()
            total += loss.detach().double().cpu()
        loss_val = all_reduce_sum(total, self.dist).item() / (n_micro * self.dist.world_size)
        gnorm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.tc.grad_clip).item()
        if not (math.isfinite(loss_val) and math.isfinite(gnorm)):
            raise Diverged(f"non-finite {'loss' if not math.isfinite(loss_val) else 'gradient norm'} at step "
                           f"{self.step} (loss {loss_val}, grad norm {gnorm}, lr {lr:.3g})")
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        return loss_val, gnorm, lr

    def _loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        logits = self.forward_model(x)
        return torch.nn.functional.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), y.reshape(-1))

    @torch.no_grad()
    def evaluate(self) -> dict[str, Any]:
        self.model.eval()
        tot = torch.zeros(2, dtype=torch.float64)
        for i, (x, y) in enumerate(self.val):
            if i % self.dist.world_size != self.dist.rank:
                continue
            with self.autocast:
                loss = self._loss(x.to(self.device), y.to(self.device))
            tot += torch.tensor([loss.item() * y.numel(), y.numel()], dtype=torch.float64)
        all_reduce_sum(tot, self.dist)
        diag = self.model.diagnostics(self.val[0][0][:4].to(self.device))
        self.model.train()
        return {"val_loss": (tot[0] / tot[1]).item(), **diag}

    # -- the loop
    def fit(self) -> str:
        total = self.sched.total_steps
        last_ckpt_t = t_row = time.time()
        tokens_row = self.step * self.tps
        self.progress(f"start at step {self.step}/{total} ({self.spec.model.variant}, "
                      f"{param_counts(self.spec.model).total:,} params, {self.sched.total_steps * self.tps:,} tokens)")
        t_seg = time.time()
        while self.step < total:
            loss, gnorm, lr = self.train_step()
            self.step += 1
            self.acc_loss += loss
            self.acc_steps += 1
            now = time.time()
            self.elapsed += now - t_seg
            t_seg = now
            is_eval = self.step % self.eval_every == 0 or self.step == total
            if is_eval or self.step % self.tc.log_every_steps == 0:
                tokens = self.step * self.tps
                row = {"kind": "eval" if is_eval else "train", "step": self.step, "tokens": tokens,
                       "flops": self.flops_per_token * tokens, "train_loss": self.acc_loss / self.acc_steps,
                       "val_loss": None, "lr": lr, "grad_norm": gnorm,
                       "tokens_per_s": (tokens - tokens_row) / max(now - t_row, 1e-9), "elapsed_s": self.elapsed,
                       "layer_rms": None, "depth_alpha": None}
                if is_eval:
                    row.update(self.evaluate())
                self.acc_loss, self.acc_steps = 0.0, 0
                if self.dist.is_main:
                    self.run.append_metrics(row)
                    self.tracker.log(row)
                    self.run.set_status("running", step=self.step, tokens=tokens)
                self.progress(self.progress_line(row, total))
                t_row, tokens_row = time.time(), tokens
                t_seg = t_row
            if is_eval or self.step in self.save_at or time.time() - last_ckpt_t >= self.tc.ckpt_every_s:
                self.checkpoint()
                last_ckpt_t = t_seg = time.time()
        return "done"

    def progress_line(self, row: dict[str, Any], total: int) -> str:
        eta = (total - self.step) * self.tps / max(row["tokens_per_s"], 1e-9)
        val = f" val {row['val_loss']:.4f}" if row["val_loss"] is not None else ""
        return (f"step {self.step}/{total} tok {row['tokens'] / 1e6:.2f}M loss {row['train_loss']:.4f}{val} "
                f"lr {row['lr']:.2e} {row['tokens_per_s'] / 1e3:.1f}k tok/s ETA {_hms(eta)}")

    def progress(self, msg: str) -> None:
        if self.dist.is_main:
            line = f"[{self.spec.run_id}] {msg}"
            print(line, flush=True)
            self.run.log(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {line}")


def _hms(s: float) -> str:
    s = int(s)
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def train_run(run_dir: str | os.PathLike[str], runs_root: str | os.PathLike[str] | None = None) -> str:
    """Train (or resume) the run in ``run_dir`` (which holds spec.json); returns the final state:
    "done", "diverged" or "failed". Never raises for a failed run; a KeyboardInterrupt/SystemExit
    (preemption, Ctrl-C) marks it "preempted" and propagates."""
    run = RunDir(run_dir)
    spec_dict = run.read_spec()
    spec = RunSpec.from_dict({k: v for k, v in spec_dict.items() if k != "derived"})
    trainer = None
    info = DistInfo()
    try:
        trainer = Trainer(run, spec, Path(runs_root) if runs_root else None)
        info = trainer.dist
        if info.is_main:
            if "derived" not in spec_dict:
                run.write_spec({**spec.to_dict(), "derived": derived(spec)})
            run.write_env(environment(trainer.device, info))
            attempts = int(run.read_status().get("attempts", 0)) + 1
            run.set_status("running", attempts=attempts, step=0, tokens=0)
        if run.last_ckpt.exists():
            st = _load_ckpt(run.last_ckpt)
            trainer.load_state(st)
            if info.is_main:
                run.truncate_metrics(trainer.step)
                trainer.progress(f"resumed from {run.last_ckpt} at step {trainer.step}")
        elif spec.train.init_from:
            src = (trainer.runs_root / spec.train.init_from).resolve()
            trainer.load_state(_load_ckpt(src), branch=True)
            if info.is_main:
                _copy_parent_rows(run, src, trainer.step)
                trainer.progress(f"branched from {src} at step {trainer.step}")
        trainer.tracker = open_tracker(spec, run, info.is_main)
        state = trainer.fit()
        if info.is_main:
            run.set_status("done", step=trainer.step, tokens=trainer.step * trainer.tps)
        return state
    except Diverged as e:
        if info.is_main:
            run.set_status("diverged", str(e))
            run.log(f"DIVERGED: {e}")
            print(f"[{spec.run_id}] diverged: {e}", file=sys.stderr, flush=True)
        return "diverged"
    except Exception as e:  # noqa: BLE001 - a run that fails must say so in its status, not vanish
        if info.is_main:
            run.set_status("failed", f"{type(e).__name__}: {e}")
            run.log(traceback.format_exc())
            print(f"[{spec.run_id}] failed: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
        return "failed"
    except BaseException:
        if info.is_main:
            run.set_status("preempted", "interrupted; relaunch to resume from the last checkpoint")
        raise
    finally:
        if trainer is not None:
            trainer.tracker.close()
        shutdown(info)


def _copy_parent_rows(run: RunDir, ckpt: Path, step: int) -> None:
    """A WSD branch starts with its parent's metrics up to the branch point, so its curve is whole."""
    parent = RunDir(ckpt.parent.parent)
    if run.metrics_path.exists():
        return
    for row in parent.read_metrics().rows:
        if int(row["step"]) <= step:
            run.append_metrics(row)
