"""Benchmark: what Block and Full AttnRes cost over the PreNorm baseline in time and memory.

    .venv/bin/python bench/bench_models.py            # CPU: demo sizes + d_model 128/256 (~2-3 min); CUDA if present
    .venv/bin/python bench/bench_models.py --quick    # a short run (~1 min): fewer sizes and rounds
    .venv/bin/python bench/bench_models.py --no-cpu   # the CUDA section only
    .venv/bin/python bench/bench_models.py --compile  # every model under torch.compile (slow start)

The paper reports < 4% training and < 2% inference overhead for Block AttnRes at scale (PAPER.md
section 1); these tables say what this implementation (harness/residuals.py) costs here.

Method. For each size, every variant is built from the same seed and fed the same batch, and the
variants take turns step by step ("rounds", the starting variant rotating), so a change in machine
load hits all of them alike. A ratio is the median over rounds of (variant time / baseline time in
the same round); [lo-hi] is its interquartile range over rounds. Rows:
  train   one optimizer step: forward + backward + AdamW (the training loop's work per step)
  infer   forward under torch.no_grad (the default path: the per-layer loop of training); "2-phase"
          is Block with the paper's two-phase inference computation (PAPER.md section 1)
  mem     peak bytes of the step: parameters and optimizer state plus the peak of the tensors the
          step allocates (CPU: a dispatch-mode tracker of live tensor storage; CUDA: the allocator's
          peak); "x" is over the baseline's
CPU runs use one intra-op thread and the environment training workers get (sweeps/launch.py). On a
CUDA device the same rows are measured at d_model >= 1024 in bf16 autocast (as harness/train.py
trains), plus the baseline's model FLOP utilisation (MFU): FLOPs per token of the project's formula
(harness/accounting.py, training = 3 x forward) x tokens/s, over the datasheet dense bf16 peak
(harness/devices.py, what training's metrics rows use) and over the device's measured bf16 matmul
peak. Timings on a shared machine are noisy: compare ratios, not absolute times, across runs.
"""

from __future__ import annotations

import argparse
import functools
import math
import os
import statistics
import sys
import time
import weakref
from contextlib import nullcontext
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from harness import devices
from harness.accounting import flops_per_token
from harness.ladder import model_config
from harness.model import LM
from records.config import ModelConfig
from sweeps.launch import WORKER_ENV


@dataclass(frozen=True)
class Arm:
    label: str
    cfg: ModelConfig
    two_phase: bool = False  # AttnRes inference by the two-phase computation (ignored by the baseline)


@dataclass(frozen=True)
class Size:
    label: str
    arms: tuple[Arm, ...]  # the first is the baseline every ratio is taken over
    batch: int  # sequences per step


def cpu_sizes(quick: bool) -> list[Size]:
    """The demo ladder (sweeps/demo.toml: Block with S = 2 layers per block, batch 16) and mid
    sizes with 8 Transformer blocks (L = 16): Block N = 8 (S = 2, the paper's N) and N = 4, Full."""
    sizes = []
    for name in ("d2", "d5") if quick else ("d2", "d3", "d4", "d5"):
        base = model_config("tiny", name, vocab_size=256)
        sizes.append(Size(f"tiny-{name} d{base.d_model}", (
            Arm("baseline", base),
            Arm(f"block S=2 (N={base.n_blocks})", replace(base, variant="block", layers_per_block=2)),
            Arm(f"full (N={base.n_layers})", replace(base, variant="full"))), batch=16))
    for d_model in (256,) if quick else (128, 256):
        base = ModelConfig(n_blocks=8, d_model=d_model, n_heads=d_model // 64, d_ff=_ff(d_model),
                           seq_len=256, vocab_size=256)
        sizes.append(Size(f"mid d{d_model} 8 blocks", (
            Arm("baseline", base),
            Arm("block N=8 (S=2)", replace(base, variant="block", attnres_blocks=8)),
            Arm("block N=4 (S=4)", replace(base, variant="block", attnres_blocks=4)),
            Arm("full (N=16)", replace(base, variant="full"))), batch=4))
    return sizes


def cuda_sizes(quick: bool) -> list[Size]:
    """GPU ladder d16 (d_model 1024, 16 blocks, context 1024) and the paper's 436M shape
    (d_model 1168, 16 blocks, context 8192; dense here); Block with the paper's N = 8."""
    shapes = [("small", "d16", 16)] if quick else [("small", "d16", 16), ("paper", "436M", 2)]
    sizes = []
    for ladder, name, batch in shapes:
        base = model_config(ladder, name, vocab_size=256)
        sizes.append(Size(f"{ladder}-{name} d{base.d_model}", (
            Arm("baseline", base),
            Arm("block N=8", replace(base, variant="block", attnres_blocks=8)),
            Arm("full", replace(base, variant="full"))), batch=batch))
    return sizes


def _ff(d_model: int) -> int:
    return math.ceil(8 * d_model / 3 / 64) * 64  # SwiGLU 8/3 d, rounded up to 64 (the "small" ladder's rule)


# ----------------------------------------------------------------------------- measurement
class Runner:
    """One model, optimizer and batch; ``train()`` and ``infer()`` run one step each."""

    def __init__(self, arm: Arm, batch: int, device: torch.device, bf16: bool, compile: bool) -> None:
        torch.manual_seed(0)
        self.model = LM(arm.cfg).to(device)
        if hasattr(self.model.residual, "two_phase"):
            self.model.residual.two_phase = arm.two_phase
        self.forward = torch.compile(self.model) if compile else self.model
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=1e-3)
        g = torch.Generator().manual_seed(0)
        data = torch.randint(0, arm.cfg.vocab_size, (batch, arm.cfg.seq_len + 1), generator=g).to(device)
        self.idx, self.tgt = data[:, :-1], data[:, 1:]
        self.autocast = torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else nullcontext()
        self.tokens = batch * arm.cfg.seq_len
        self.device = device

    def train(self) -> None:
        with self.autocast:
            logits = self.forward(self.idx)
        loss = F.cross_entropy(logits.float().flatten(0, 1), self.tgt.flatten())
        loss.backward()
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)

    def infer(self) -> None:
        with torch.no_grad(), self.autocast:
            self.forward(self.idx)

    def sync(self) -> None:
        sync(self.device)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def interleaved(runners: list[Runner], step: str, rounds: int) -> list[list[float]]:
    """Seconds per step, [arm][round]; the arms take turns, the first one rotating by round."""
    for r in runners:  # warm-up: allocations, optimizer state, kernels
        getattr(r, step)()
        r.sync()
    times = [[0.0] * rounds for _ in runners]
    for k in range(rounds):
        for j in range(len(runners)):
            a = (j + k) % len(runners)
            r = runners[a]
            t = time.perf_counter()
            getattr(r, step)()
            r.sync()
            times[a][k] = time.perf_counter() - t
    return times


class LiveBytes(TorchDispatchMode):
    """Peak bytes of tensor storage allocated inside the context and still alive (CPU has no
    allocator statistics). Each new storage is counted once and released when it is freed."""

    def __init__(self) -> None:
        super().__init__()
        self.live = self.peak = 0
        self.refs: dict[int, weakref.ref] = {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_leaves(out):
            if isinstance(t, torch.Tensor):
                st = t.untyped_storage()
                key, nbytes = id(st), st.nbytes()
                if key not in self.refs and nbytes:
                    self.live += nbytes
                    self.refs[key] = weakref.ref(st, functools.partial(self._free, key, nbytes))
        self.peak = max(self.peak, self.live)
        return out

    def _free(self, key: int, nbytes: int, _ref: weakref.ref) -> None:
        self.live -= nbytes
        self.refs.pop(key, None)


def peak_bytes(r: Runner, step: str) -> int:
    """Static bytes (parameters, optimizer state, persistent buffers) + peak bytes the step allocates."""
    getattr(r, step)()  # optimizer state exists from here on
    static = sum(t.numel() * t.element_size() for t in [*r.model.parameters(), *r.model.buffers()])
    static += sum(v.numel() * v.element_size() for s in r.opt.state.values() for v in s.values()
                  if isinstance(v, torch.Tensor))
    if r.device.type == "cuda":
        r.sync()
        before = torch.cuda.memory_allocated(r.device)
        torch.cuda.reset_peak_memory_stats(r.device)
        getattr(r, step)()
        r.sync()
        return torch.cuda.max_memory_allocated(r.device) - before + static
    with LiveBytes() as tracker:
        getattr(r, step)()
    return tracker.peak + static


def matmul_peak(device: torch.device, n: int = 8192, reps: int = 20) -> float:
    """Measured dense bf16 matmul throughput, FLOP/s (best of ``reps``)."""
    a = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    best = float("inf")
    for _ in range(reps):
        sync(device)
        t = time.perf_counter()
        a @ b
        sync(device)
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best


# ----------------------------------------------------------------------------- report
@dataclass(frozen=True)
class Row:
    size: str
    arm: str
    variant: str
    d_model: int
    step: str
    ms: float  # median seconds per step, in ms
    tokens_per_s: float
    ratio: float  # median over rounds of arm/baseline
    lo: float  # interquartile range of that ratio
    hi: float
    mem_ratio: float | None
    mem_mib: float | None


def measure(size: Size, step: str, rounds: int, device: torch.device, bf16: bool, memory: bool,
            compile: bool) -> list[Row]:
    runners = [Runner(a, size.batch, device, bf16, compile) for a in size.arms]
    times = interleaved(runners, step, rounds)
    mems = [peak_bytes(r, step) for r in runners] if memory else None
    rows = []
    for a, (arm, ts, r) in enumerate(zip(size.arms, times, runners)):
        ratios = sorted(t / b for t, b in zip(ts, times[0]))
        q = statistics.quantiles(ratios, n=4, method="inclusive") if len(ratios) > 1 else [ratios[0]] * 3
        med = statistics.median(ts)
        rows.append(Row(size.label, arm.label, arm.cfg.variant, arm.cfg.d_model, step, 1e3 * med, r.tokens / med, q[1], q[0], q[2],
                        mems[a] / mems[0] if mems else None, mems[a] / 2**20 if mems else None))
    del runners
    return rows


def table(title: str, rows: list[Row]) -> str:
    head = (f"{'size':<24}{'variant':<24}{'ms/step':>9}{'tokens/s':>11}{'x baseline':>12}  "
            f"{'[IQR]':<14}{'peak MiB':>9}{'mem x':>7}")
    lines = [title, head, "-" * len(head)]
    last = None
    for r in rows:
        mem = f"{r.mem_mib:>9.1f}{r.mem_ratio:>7.2f}" if r.mem_ratio is not None else ""
        lines.append(f"{r.size if r.size != last else '':<24}{r.arm:<24}{r.ms:>9.1f}{r.tokens_per_s:>11,.0f}"
                     f"{r.ratio:>12.3f}  {f'[{r.lo:.3f}-{r.hi:.3f}]':<14}{mem}")
        last = r.size
    return "\n".join(lines)


def run_device(sizes: list[Size], device: torch.device, bf16: bool, rounds: int, memory: bool,
               compile: bool, tag: str) -> tuple[list[Row], list[Row]]:
    train, infer = [], []
    for size in sizes:
        print(f"  [{tag}] {size.label} ...", file=sys.stderr, flush=True)
        train += measure(size, "train", rounds, device, bf16, memory, compile)
        two_phase = [Arm(f"{a.label} 2-phase", a.cfg, two_phase=True) for a in size.arms[1:]
                     if a.cfg.variant == "block"][:1]
        infer += measure(Size(size.label, (*size.arms, *two_phase), size.batch), "infer", rounds,
                         device, bf16, memory, compile)
    print(table(f"\n== {tag}: training step (forward + backward + AdamW) ==", train))
    print(table(f"\n== {tag}: inference (forward, no grad) ==", infer))
    return train, infer


def check_targets(train: list[Row], infer: list[Row], gpu: bool) -> None:
    """The project's overhead targets, met or missed by the rows just measured. CPU training step:
    Block <= 1.15x and Full (up to 16 blocks) <= 1.35x the baseline at d_model >= 128. CUDA, bf16,
    d_model >= 1024: Block <= 1.05x training step and <= 1.02x inference."""
    print("\n== targets ==")
    for r in train + infer:
        if gpu:
            limit = {"train": 1.05, "infer": 1.02}[r.step] if r.variant == "block" else None
        else:
            limit = {"block": 1.15, "full": 1.35}.get(r.variant) if r.step == "train" and r.d_model >= 128 else None
        if limit is not None:
            verdict = "met" if r.ratio <= limit else "MISSED"
            print(f"  {r.size:<24}{r.arm:<22}{r.step:<6} {r.ratio:.3f} <= {limit:.2f}: {verdict}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="fewer sizes and rounds (~1 min)")
    p.add_argument("--rounds", type=int, default=None, help="interleaved rounds per measurement")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory measurement")
    p.add_argument("--no-cuda", action="store_true", help="skip the CUDA section even if a device is present")
    p.add_argument("--no-cpu", action="store_true", help="skip the CPU section")
    p.add_argument("--compile", action="store_true",
                   help="torch.compile every model (slow to start; CPU memory is then not measured)")
    args = p.parse_args(argv)
    rounds = args.rounds or (3 if args.quick else 9)
    torch.set_num_threads(1)
    mode = "torch.compile" if args.compile else "eager"
    print(f"torch {torch.__version__}, {mode}; ratio = median over rounds of variant/baseline, "
          "[IQR] its interquartile range over rounds")
    if not args.no_cpu:
        print(f"CPU: 1 thread, float32, {rounds} rounds")
        train, infer = run_device(cpu_sizes(args.quick), torch.device("cpu"), False, rounds,
                                  not (args.no_memory or args.compile), args.compile, "CPU")
        check_targets(train, infer, gpu=False)
    if args.no_cuda or not torch.cuda.is_available():
        print("\nCUDA: no device available, GPU section skipped (it runs when torch.cuda.is_available())")
        return 0
    device = torch.device("cuda")
    peak = matmul_peak(device)
    print(f"\nCUDA: {torch.cuda.get_device_name(device)}; bf16 autocast; measured bf16 matmul peak "
          f"{peak / 1e12:.0f} TFLOP/s")
    sizes = cuda_sizes(args.quick)
    train, infer = run_device(sizes, device, True, max(rounds, 5), not args.no_memory, args.compile, "CUDA")
    sheet, source = devices.peak_flops(torch.cuda.get_device_name(device))
    for size in sizes:
        base = next(r for r in train if r.size == size.label and r.arm == "baseline")
        fpt = flops_per_token(size.arms[0].cfg).train
        vs_sheet = f"{fpt * base.tokens_per_s / sheet:.1%} of the datasheet peak ({source}), " if sheet else ""
        print(f"  MFU baseline {size.label}: {vs_sheet}{fpt * base.tokens_per_s / peak:.1%} of the measured matmul "
              f"peak ({fpt * base.tokens_per_s / 1e12:.0f} TFLOP/s model FLOPs, harness/accounting.py)")
    check_targets(train, infer, gpu=True)
    return 0


def _worker_env() -> None:
    """Measure in the environment training workers get (sweeps/launch.py WORKER_ENV: one thread,
    glibc malloc keeping freed memory mapped). glibc reads it at start-up, hence the re-exec;
    variables the caller set are left alone."""
    missing = {k: v for k, v in WORKER_ENV.items() if k not in os.environ}
    if missing:
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, **missing})


if __name__ == "__main__":
    _worker_env()
    sys.exit(main())
