"""The training loop of one run: AdamW, warmup + cosine/WSD, clipping, accumulation, evaluation,
checkpoints, and the metrics rows (records.metrics.MetricRow) it writes.

    trainer = Trainer(RunDir(path), spec)     # builds model, optimizer, data; harness/train.py's
    trainer.train()                           # train_run wraps this with the lock, status and resume

Determinism: the batch of step s is drawn from a generator seeded with (seed, s), so the data
position is the step itself; a run killed at any point and resumed from its checkpoint (model,
optimizer, step, RNG, metric accumulators) writes exactly the rows an uninterrupted run writes
(tests/test_train.py::test_resume_bit_exact). The global batch is the same for any world size.

One process per device (harness.distributed picks it from the local rank). The step keeps the host
out of the device's way: batches are copied from pinned memory without blocking, losses, the gradient
norm and the non-finite check accumulate on the device, and the host reads them once per logged
step. Every tensor handed to a collective lives on the training device (NCCL moves CUDA tensors
only). Exactly one process trains a run: it holds ``<run_dir>/lock`` (harness.runlock). SIGTERM and
SIGUSR2 stop training at the next step boundary after a checkpoint (harness.stopping).
"""

from __future__ import annotations

import os
import signal
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel as DDP

from harness import checkpoint as ckpt
from harness import devices
from harness.accounting import flops_per_token, param_counts
from harness.distributed import all_reduce_sum, broadcast, setup
from harness.model import LM
from harness.runlock import RunLock, describe_holder
from harness.schedule import Batches, make_schedule, tokens_per_step, validation_batches
from harness.stopping import StopRequested, StopRequests
from harness.tracking import NullTracker
from records.choices import Dtype, MetricKind
from records.config import ConfigError, RunSpec, TrainConfig
from records.rundir import MetricRow, RunDir
from records.steps import nearest_steps, steps_to_reach

# torch.compile's backend for TrainConfig.compile: inductor; `make gpu-check DRY=1` traces the same
# graphs with aot_eager on CPU (no C++ code generation: seconds instead of a minute per graph)
COMPILE_BACKEND = os.environ.get("ATTNRES_COMPILE_BACKEND", "inductor")


class Diverged(Exception):
    pass


class RunLocked(Exception):  # noqa: N818 - a state, not an error
    pass


def resolve_dtype(dtype: Dtype, device: torch.device) -> Dtype:
    """TrainConfig.dtype 'auto': bf16 autocast on CUDA, fp32 on CPU."""
    if dtype == Dtype.AUTO:
        return Dtype.BFLOAT16 if device.type == "cuda" else Dtype.FLOAT32
    return Dtype(dtype)


def _optimizer(model: LM, tc: TrainConfig) -> torch.optim.AdamW:
    """Weight decay on matrices only; embeddings, gains and the residual variant's mixing weights
    (zero-init pseudo-queries, key-norm gains) are not decayed. Fused on every device: one kernel per
    step (on CPU measured 4-10x faster than the foreach path on the tiny ladder), and its state lives
    on the parameters' device."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (decay if p.dim() >= 2 and not name.startswith(("residual.", "embed.")) else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": tc.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=tc.lr, betas=(tc.beta1, tc.beta2), eps=1e-8, fused=True)


class Trainer:
    """One run's training state and loop; ``train()`` runs it to the end of the schedule."""

    def __init__(self, run: RunDir, spec: RunSpec, runs_root: Path | None = None,
                 device_count: int | None = None) -> None:
        self.run, self.spec, self.tc = run, spec, spec.train
        self.runs_root = runs_root or run.path.parent
        self.device, self.dist = setup(self.tc.device, device_count)
        self.lock: RunLock | None = None
        if self.dist.enabled:
            self._claim_run()
        try:
            self._build(spec)
        except BaseException:
            if self.lock is not None:
                self.lock.release()
            raise

    def _build(self, spec: RunSpec) -> None:
        self._setup_device()
        self.sched = make_schedule(spec)
        self._split_batch()
        self.data_check = self._check_data(spec.data.path)
        self._build_model(spec)
        self.opt = _optimizer(self.model, self.tc)
        self._load_data(spec)
        self.tps = tokens_per_step(spec)
        self.flops_per_token = flops_per_token(spec.model).train
        every = self.tc.eval_every_tokens or self.tc.tokens / 10
        self.eval_every = nearest_steps(every, self.tps)
        self.save_at = {max(1, steps_to_reach(t, self.tps)) for t in self.tc.save_at_tokens}
        self.autocast = (torch.autocast(self.device.type, dtype=torch.bfloat16)
                         if self.dtype == Dtype.BFLOAT16 else nullcontext())
        self.stop = StopRequests()  # train_run installs the handlers
        self.tracker = NullTracker()  # train_run opens the sweep's trackers (harness/tracking.py)
        # loop state (all of it goes into the checkpoint); the accumulators live on the device
        self.step = 0
        self.elapsed = 0.0
        self.acc_steps = 0  # steps since the last metrics row
        self._acc_loss = self._zero(torch.float64)  # sum of the global step losses since the last row
        self._first_bad = self._zero(torch.int64) - 1  # first step with a non-finite loss or grad norm
        self._gnorm = self._zero(torch.float32)

    def _setup_device(self) -> None:
        self.dtype = resolve_dtype(self.tc.dtype, self.device)
        self.peak, self.peak_source = (devices.peak_flops(torch.cuda.get_device_name(self.device))
                                       if self.device.type == "cuda" else (None, "CPU: no MFU"))
        if self.device.type == "cpu":
            torch.set_num_threads(self.tc.threads)
        else:  # fp32 matmuls may use TF32 tensor cores (bf16 autocast is the default anyway)
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True

    def _split_batch(self) -> None:
        """The global batch over the processes, and each process's share into micro-batches."""
        B, world = self.tc.batch_size, self.dist.world_size
        if B % world:
            raise ConfigError(f"train.batch_size: {B} sequences do not split over {world} processes; "
                              f"fix: use a multiple of {world}", field="batch_size")
        self.local_B = B // world
        self.micro = min(self.tc.micro_batch_size or self.local_B, self.local_B)
        if self.local_B % self.micro:
            raise ConfigError(f"train.micro_batch_size: {self.micro} does not divide the per-process batch "
                              f"{self.local_B}; fix: choose a divisor", field="micro_batch_size")

    def _build_model(self, spec: RunSpec) -> None:
        torch.manual_seed(self.tc.seed)
        with torch.device("cpu"):  # initialised on the CPU: one seed gives the same weights on any device
            model = LM(spec.model)
        self.model = model.to(self.device)
        self.model.set_activation_checkpointing(self.tc.activation_checkpointing)
        self.ddp = None
        if self.dist.enabled:
            ids = [self.device.index] if self.device.type == "cuda" else None
            # the buffers (RoPE tables) are constants: no broadcast of them before every forward
            self.ddp = DDP(self.model, device_ids=ids, gradient_as_bucket_view=True, broadcast_buffers=False)
        module = self.ddp or self.model
        self.forward_model = torch.compile(module, backend=COMPILE_BACKEND) if self.tc.compile else module
        # evaluation runs the bare model: ranks may hold different numbers of validation batches, and a
        # DDP forward is a collective (it would wait for ranks that have no batch left)
        self.eval_model = torch.compile(self.model, backend=COMPILE_BACKEND) if self.tc.compile else self.model

    def _load_data(self, spec: RunSpec) -> None:
        from records.tokens import load_tokens

        data_dir = spec.data.path
        self.batches = Batches(load_tokens(data_dir, "train", verify=False), spec.model.seq_len,
                               self.tc.batch_size, self.tc.seed)
        val = validation_batches(load_tokens(data_dir, "val", verify=False), spec.model.seq_len,
                                 self.tc.eval_tokens, max(self.micro, 8))
        self.val = [(x.to(self.device), y.to(self.device)) for x, y in val]  # once: the slice is fixed

    def _zero(self, dtype: torch.dtype) -> torch.Tensor:
        return torch.zeros((), dtype=dtype, device=self.device)

    def _claim_run(self) -> None:
        """DDP: rank 0 takes the run's lock and tells the others whether it got it."""
        got = self._zero(torch.int64)
        why = ""
        if self.dist.is_main:  # whatever happens here, the other ranks must hear the verdict
            try:
                self.lock = RunLock(self.run.path)
                got += int(self.lock.acquire(world_size=self.dist.world_size))
                why = describe_holder(self.run.path)
            except OSError as e:
                why = f"cannot take {self.run.path / 'lock'}: {e}"
        if not int(broadcast(got, self.dist).item()):
            raise RunLocked(why or "rank 0 could not take the run's lock (see its log)")

    def _check_data(self, data_dir: str) -> str:
        """Size and sampled checksum of both splits, on rank 0 only; the verdict is shared."""
        from records.tokens import DataError, check_split

        ok, msg = self._zero(torch.int64), ""
        if self.dist.is_main:
            try:
                msg = "; ".join(check_split(data_dir, s) for s in ("train", "val"))
                ok += 1
            except (DataError, OSError, ValueError, KeyError) as e:  # the other ranks wait for the verdict
                msg = str(e) if isinstance(e, DataError) else f"{data_dir}: {type(e).__name__}: {e}"
        if not int(broadcast(ok, self.dist).item()):
            raise DataError(msg or f"{data_dir}: rank 0 found the data corrupt (see its log)")
        return msg

    # -- state
    def _host_accumulators(self) -> tuple[float, int]:
        """The loss accumulator and the first non-finite step, read from the device (one sync)."""
        acc, bad = torch.stack([self._acc_loss, self._first_bad.double()]).tolist()
        return acc, int(bad)

    def state(self) -> dict[str, Any]:
        acc, _ = self._host_accumulators()
        rng = {"torch": torch.get_rng_state(), "numpy": ckpt.numpy_rng_to_plain(np.random.get_state())}
        if self.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(self.device)
        return {"model": self.model.state_dict(), "optimizer": self.opt.state_dict(), "step": self.step,
                "data_position": self.step, "schedule": vars(self.sched).copy(), "elapsed_s": self.elapsed,
                "acc_loss": acc, "acc_steps": self.acc_steps, "rng": rng, "spec": self.spec.to_dict()}

    def load_state(self, st: dict[str, Any], branch: bool = False) -> None:
        self.model.load_state_dict(st["model"])
        self.opt.load_state_dict(st["optimizer"])
        self.step = int(st["step"])
        torch.set_rng_state(st["rng"]["torch"])
        np.random.set_state(ckpt.numpy_rng_from_plain(st["rng"]["numpy"]))
        if "cuda" in st["rng"] and self.device.type == "cuda":
            torch.cuda.set_rng_state(st["rng"]["cuda"], self.device)
        self.elapsed = float(st["elapsed_s"])
        self._acc_loss.fill_(float(st["acc_loss"]))
        self.acc_steps = int(st["acc_steps"])
        if branch:  # a WSD cool-down keeps its own schedule; its LR is set per step anyway
            for g in self.opt.param_groups:
                g["lr"] = self.sched(self.step)

    def checkpoint(self) -> None:
        _, bad = self._host_accumulators()
        if bad >= 0:  # never keep a state with non-finite weights as the run's last checkpoint
            self._raise_diverged(bad)
        if self.dist.is_main:
            state = self.state()
            summary = {"run_id": self.spec.run_id, "step": self.step, "tokens": self.step * self.tps,
                       "elapsed_s": self.elapsed, "world_size": self.dist.world_size, "dtype": self.dtype}
            ckpt.save(self.run.last_ckpt, state, summary)
            if self.step in self.save_at:
                ckpt.save(self.run.kept_ckpt(self.step * self.tps), state, summary)

    def _raise_diverged(self, bad: int) -> None:
        raise Diverged(f"non-finite loss or gradient norm at step {bad} (lr {self.sched(bad):.3g}); the run "
                       f"continued to step {self.step} before the check (one host read per logged step)")

    # -- pieces of a step
    def _to_device(self, t: torch.Tensor) -> torch.Tensor:
        if self.device.type == "cuda":  # pinned host memory: the copy overlaps the previous micro-step
            return t.pin_memory().to(self.device, non_blocking=True)
        return t

    def train_step(self) -> float:
        """One optimizer step; nothing in it waits for the device. Returns the step's learning rate."""
        lr = self.sched(self.step)
        for g in self.opt.param_groups:
            g["lr"] = lr
        rows0 = self.dist.rank * self.local_B
        n_micro = self.local_B // self.micro
        total = self._zero(torch.float64)
        for k in range(n_micro):
            win = self._to_device(self.batches.window(self.step, slice(rows0 + k * self.micro,
                                                                       rows0 + (k + 1) * self.micro)))
            sync = self.ddp.no_sync() if (self.ddp is not None and k < n_micro - 1) else nullcontext()
            with sync, self.autocast:
                loss = self._loss(win[:, :-1], win[:, 1:])
                (loss / n_micro).backward()
            total += loss.detach().double()
        step_loss = all_reduce_sum(total, self.dist) / (n_micro * self.dist.world_size)
        gnorm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.tc.grad_clip)
        bad = ~(torch.isfinite(step_loss) & torch.isfinite(gnorm))
        self._first_bad = torch.where(bad & (self._first_bad < 0), self.step, self._first_bad)
        self._acc_loss += step_loss
        self._gnorm = gnorm.detach()
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        return lr

    def _loss(self, x: torch.Tensor, y: torch.Tensor, model: Any = None) -> torch.Tensor:
        logits = (model if model is not None else self.forward_model)(x)
        return torch.nn.functional.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), y.reshape(-1))

    @torch.no_grad()
    def evaluate(self) -> dict[str, Any]:
        self.model.eval()
        tot = torch.zeros(2, dtype=torch.float64, device=self.device)
        for i, (x, y) in enumerate(self.val):
            if i % self.dist.world_size != self.dist.rank:
                continue
            with self.autocast:
                loss = self._loss(x, y, self.eval_model)
            tot[0] += loss.double() * y.numel()
            tot[1] += y.numel()
        all_reduce_sum(tot, self.dist)
        diag = self.model.diagnostics(self.val[0][0][:4])
        self.model.train()
        loss_sum, n = tot.tolist()
        return {"val_loss": loss_sum / n, **diag}

    def _row(self, lr: float, is_eval: bool, tokens_row: int, t_row: float, t_seg: float) -> MetricRow:
        """The metrics row of this step (an eval row's val_loss and diagnostics come from ``evaluate``):
        the one host read of the logging period (it waits for the device, so the clock read after it
        measures finished work). Adds the training seconds since ``t_seg`` to ``elapsed``."""
        acc, gnorm, bad = torch.stack([self._acc_loss, self._gnorm.double(), self._first_bad.double()]).tolist()
        if bad >= 0:
            self._raise_diverged(int(bad))
        now = time.time()
        self.elapsed += now - t_seg
        tokens = self.step * self.tps
        tok_s = (tokens - tokens_row) / max(now - t_row, 1e-9)
        return MetricRow(kind=MetricKind.EVAL if is_eval else MetricKind.TRAIN, step=self.step, tokens=tokens,
                         flops=self.flops_per_token * tokens, train_loss=acc / self.acc_steps, val_loss=None,
                         lr=lr, grad_norm=gnorm, tokens_per_s=tok_s, elapsed_s=self.elapsed,
                         mfu=devices.mfu(self.flops_per_token, tok_s, self.peak, self.dist.world_size),
                         layer_rms=None, depth_alpha=None)

    # -- the loop
    def train(self) -> str:
        """Train from ``self.step`` to the end of the schedule: a metrics row every log_every_steps and
        at every evaluation, a checkpoint at every evaluation, kept step and ckpt_every_s."""
        total = self.sched.total_steps
        last_ckpt_t = t_seg = t_row = time.time()
        tokens_row = self.step * self.tps
        self.progress(f"start at step {self.step}/{total} ({self.spec.model.variant}, "
                      f"{param_counts(self.spec.model).total:,} params, {self.sched.total_steps * self.tps:,} tokens, "
                      f"{self.device} {self.dtype}, world {self.dist.world_size})")
        while self.step < total:
            if self.stop.requested:
                self._stop_now(t_seg)
            lr = self.train_step()
            self.step += 1
            self.acc_steps += 1
            is_eval = self.step % self.eval_every == 0 or self.step == total
            if is_eval or self.step % self.tc.log_every_steps == 0:
                row = self._row(lr, is_eval, tokens_row, t_row, t_seg)
                if is_eval:
                    row = row.replace(**self.evaluate())
                self._acc_loss.zero_()
                self.acc_steps = 0
                if self.dist.is_main:
                    self.run.append_metrics(row)
                    self.tracker.log(row.as_dict())
                    self.run.set_status("running", step=self.step, tokens=row.tokens)
                self.progress(self.progress_line(row, total))
                t_seg = t_row = time.time()
                tokens_row = row.tokens
            if is_eval or self.step in self.save_at or time.time() - last_ckpt_t >= self.tc.ckpt_every_s:
                t_seg = self._timed_checkpoint(t_seg)
                last_ckpt_t = t_seg
        return "done"

    def _timed_checkpoint(self, t_seg: float) -> float:
        """Checkpoint; the training clock stops while it is written. Returns the new segment start."""
        self._host_accumulators()  # wait for the device, so the clock reads training time
        self.elapsed += time.time() - t_seg
        self.checkpoint()
        return time.time()

    def _stop_now(self, t_seg: float) -> None:
        signum = self.stop.signum
        self._timed_checkpoint(t_seg)
        self.progress(f"stop requested ({signal.Signals(signum).name}): checkpoint saved at step {self.step}; stopping")
        raise StopRequested(signum, self.step)

    def progress_line(self, row: MetricRow, total: int) -> str:
        eta = (total - self.step) * self.tps / max(row.tokens_per_s, 1e-9)
        val = f" val {row.val_loss:.4f}" if row.val_loss is not None else ""
        mfu = f" MFU {row.mfu:.1%}" if row.mfu is not None else ""
        return (f"step {self.step}/{total} tok {row.tokens / 1e6:.2f}M loss {row.train_loss:.4f}{val} "
                f"lr {row.lr:.2e} {row.tokens_per_s / 1e3:.1f}k tok/s{mfu} ETA {_hms(eta)}")

    def progress(self, msg: str) -> None:
        if self.dist.is_main:
            line = f"[{self.spec.run_id}] {msg}"
            print(line, flush=True)
            self.run.log(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {line}")


def _hms(s: float) -> str:
    s = int(s)
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"
