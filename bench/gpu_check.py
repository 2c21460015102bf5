"""`make gpu-check`: what only a GPU can check, in one prepared script; writes one JSON file, prints a table.

    make gpu-check                  # on a GPU node (<= ~5 min on one GPU; multi-GPU checks when >= 2 visible)
    make gpu-check DRY=1            # the same code paths on CPU at tiny shapes (CI runs this)
    .venv/bin/python bench/gpu_check.py [--dry] [--out gpu-check.json] [--budget-s 280]

Sections, in this order (each records its result or its error; none stops the others):
  environment   torch/CUDA versions, visible devices, the datasheet peak harness/devices.py uses
  attention     which scaled_dot_product_attention kernel the model's attention actually runs (profiler)
  trainer       a real run (harness.train.train_run, synthetic tokens) with dtype "auto" (bf16 autocast
                on CUDA) and torch.compile: it must finish, write finite losses and mfu in its rows; and
                host synchronisations during training steps without a metrics row (CUDA sync debug
                mode; on CPU: calls of .item()/.tolist()/.cpu()/bool()/float()), which must be 0
  nccl          >= 2 devices: an all-reduce over every visible GPU (NCCL; gloo on CPU), checked, with
                its bus bandwidth
  ddp           >= 2 devices: a DDP training run, one process per GPU (as torchrun or Slurm tasks
                start it): each rank must train on cuda:<local rank> and the run must finish
  shape_500m    the paper ladder's 528M shape at context 4096, micro-batch 2, bf16 + torch.compile,
                baseline, Block (S = 4) and Full: step time, tokens/s, MFU against the datasheet peak,
                peak memory (torch.cuda.max_memory_allocated) against harness/memory.py's estimate, and
                the Block/Full over baseline ratios for training and inference (goal: Block <= 1.05x
                train, <= 1.02x inference at d_model >= 1024)
The multi-device sections' rank processes are bench/gpu_workers.py.
--dry runs every section on CPU at tiny shapes (gloo for the collectives, torch.compile with the
aot_eager backend) so the code paths are exercised in CI; its numbers mean nothing.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import math
import os
import platform
import socket
import sys
import tempfile
import time
import traceback
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from the checkout
    sys.path.insert(0, str(ROOT))

from harness import devices  # noqa: E402
from harness.accounting import flops_per_token  # noqa: E402
from harness.ladder import model_config  # noqa: E402
from harness.memory import memory_estimate  # noqa: E402
from records.config import DataConfig, ModelConfig, RunSpec, TrainConfig  # noqa: E402
from records.rundir import RunDir  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/gpu_workers.py, also when imported
from gpu_workers import spawn  # noqa: E402

GOALS = {"block_train": 1.05, "block_infer": 1.02}


class Budget:
    def __init__(self, seconds: float) -> None:
        self.t0, self.seconds = time.time(), seconds

    @property
    def left(self) -> float:
        return self.seconds - (time.time() - self.t0)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def synthetic_data(root: Path, vocab: int, n_tokens: int) -> Path:
    """A prepared data directory of random token ids (the checks measure speed, not learning)."""
    from corpus.prepare import prepare

    ids = np.random.default_rng(0).integers(0, vocab, n_tokens).astype(np.uint16 if vocab <= 1 << 16 else np.uint32)
    np.save(root / "tokens.npy", ids)
    return prepare(root / "data", token_files=[root / "tokens.npy"], vocab_size=vocab, log=lambda m: None)


# ----------------------------------------------------------------------------- sections


def check_environment(dry: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"torch": torch.__version__, "cuda": torch.version.cuda, "python": platform.python_version(),
                           "host": socket.gethostname(), "dry": dry}
    if torch.cuda.is_available() and not dry:
        names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        peak, source = devices.peak_flops(names[0])
        out.update(devices=names, count=len(names), peak_flops=peak, peak_source=source,
                   memory_gb=torch.cuda.get_device_properties(0).total_memory / 1e9, ok=True)
    else:
        out.update(devices=["cpu"], count=0, peak_flops=None, peak_source="CPU (dry run)", ok=dry)
    return out


def check_attention(device: torch.device, dtype: torch.dtype, cfg: ModelConfig) -> dict[str, Any]:
    from torch.profiler import ProfilerActivity, profile

    from harness.model import LM

    model = LM(cfg).to(device)
    idx = torch.randint(0, cfg.vocab_size, (1, cfg.seq_len), device=device)
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with torch.no_grad(), torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32), \
            profile(activities=acts) as prof:
        model(idx)
        _sync(device)
    ops = sorted({e.key for e in prof.key_averages() if "scaled_dot_product" in e.key or "attention" in e.key.lower()
                  and e.key.startswith("aten::")})
    kernel = next((k for k in ops if k.startswith("aten::_scaled_dot_product") or k.startswith("aten::_flash")
                   or k.startswith("aten::_efficient") or k.startswith("aten::_cudnn")), None)
    fast = kernel is not None and ("flash" in kernel or "efficient" in kernel or "cudnn" in kernel)
    return {"ops": ops, "kernel": kernel, "fused": fast, "ok": fast,
            "note": "math (unfused) attention materialises the T x T scores: slow and memory-hungry" if not fast else ""}


class HostReads:
    """Counts host synchronisations while active: CUDA's sync debug mode on a GPU; on CPU the Python
    calls that would read a tensor back (item, tolist, cpu, bool, float, int)."""

    NAMES = ("item", "tolist", "cpu", "__bool__", "__float__", "__int__")

    def __init__(self, device: torch.device) -> None:
        self.device, self.count, self.where = device, 0, []

    def __enter__(self) -> HostReads:
        if self.device.type == "cuda":
            torch.cuda.set_sync_debug_mode("warn")
            self._warn = warnings.catch_warnings(record=True)
            self._log = self._warn.__enter__()
            warnings.simplefilter("always")
        else:
            self._saved = {n: getattr(torch.Tensor, n) for n in self.NAMES}
            for n in self.NAMES:
                setattr(torch.Tensor, n, self._counting(n, self._saved[n]))
        return self

    def _counting(self, name: str, real):
        def counted(t, *a, **k):
            self.count += 1
            self.where.append(name)
            return real(t, *a, **k)
        return counted

    def __exit__(self, *exc: Any) -> None:
        if self.device.type == "cuda":
            torch.cuda.set_sync_debug_mode("default")
            self._warn.__exit__(*exc)
            syncs = [w for w in self._log if "synchroniz" in str(w.message).lower()]
            self.count += len(syncs)
            self.where += [str(w.message)[:120] for w in syncs[:5]]
        else:
            for n, real in self._saved.items():
                setattr(torch.Tensor, n, real)


def _spec(run_id: str, model: ModelConfig, data: Path, steps: int, batch: int, micro: int, compile: bool) -> RunSpec:
    tokens = steps * batch * model.seq_len
    train = TrainConfig(tokens=tokens, batch_size=batch, micro_batch_size=micro, lr=1e-3, warmup_frac=0.0,
                        eval_tokens=model.seq_len * 4, eval_every_tokens=tokens, log_every_steps=5,
                        ckpt_every_s=3600.0, compile=compile, dtype="auto")
    return RunSpec(run_id=run_id, model=model, train=train, data=DataConfig(str(data)))


def check_trainer(work: Path, data: Path, cfg: ModelConfig, dry: bool) -> dict[str, Any]:
    """A real train_run with dtype auto and torch.compile; then host reads in plain training steps."""
    from harness.train import Trainer, train_run

    rd = RunDir(work / "trainer")
    rd.write_spec(_spec("gpu-check-trainer", cfg, data, steps=20, batch=8, micro=4, compile=True).to_dict())
    t0 = time.time()
    state = train_run(rd.path)
    rows = rd.read_metrics().rows
    env = rd.read_env()
    finite = bool(rows) and all(math.isfinite(r["train_loss"]) for r in rows)
    mfu = [r.get("mfu") for r in rows]
    # host reads: steps that write no row must not wait for the device
    spec = _spec("gpu-check-syncs", cfg, data, steps=50, batch=8, micro=2, compile=False)
    rd2 = RunDir(work / "syncs")
    rd2.write_spec(spec.to_dict())
    trainer = Trainer(rd2, spec)
    trainer.train_step()  # first step: optimizer state, allocator warm-up
    trainer.step += 1
    with HostReads(trainer.device) as reads:
        for _ in range(3):
            trainer.train_step()
            trainer.step += 1
    _sync(trainer.device)
    known_peak = trainer.peak is not None  # an unknown GPU has no MFU (environment says why)
    ok = state == "done" and finite and reads.count == 0 and (not known_peak or all(m is not None for m in mfu))
    return {"state": state, "seconds": round(time.time() - t0, 1), "dtype": env.get("dtype"), "compile": True,
            "rows": len(rows), "finite_losses": finite, "mfu_last": mfu[-1] if mfu else None,
            "host_reads_in_3_steps": reads.count, "host_reads_where": reads.where[:5], "ok": ok}


def check_nccl(work: Path, world: int, dry: bool) -> dict[str, Any]:
    elems = 1 << 10 if dry else 1 << 26  # 256 MB of fp32 on a GPU
    res = spawn("allreduce", world, work / "allreduce", [], {"GPU_CHECK_ELEMS": str(elems),
                                                              "GPU_CHECK_DEVICE": "cpu" if dry else "cuda"}, 300)
    devs = [r.get("device") for r in res]
    ok = all(r.get("ok") for r in res) and (dry or devs == [f"cuda:{i}" for i in range(world)])
    return {"backend": "gloo" if dry else "nccl", "world": world, "devices": devs, "ok": ok,
            "busbw_gb_s": min((r.get("busbw_gb_s") or 0 for r in res), default=0),
            "errors": [r["error"] for r in res if "error" in r]}


def check_ddp(work: Path, data: Path, cfg: ModelConfig, world: int, dry: bool) -> dict[str, Any]:
    rd = RunDir(work / "ddp")
    spec = _spec("gpu-check-ddp", cfg, data, steps=10, batch=4 * world, micro=2, compile=False)
    spec = RunSpec.from_dict({**spec.to_dict(), "train": {**spec.to_dict()["train"],
                                                          "device": "cpu" if dry else "cuda"}})
    rd.write_spec(spec.to_dict())
    res = spawn("train", world, work / "ddp-rank", [str(rd.path)], {}, 300)
    devs = [r.get("device") for r in res]
    ok = all(r.get("state") == "done" for r in res) and rd.read_env().get("world_size") == world and \
        (dry or devs == [f"cuda:{i}" for i in range(world)])
    return {"world": world, "devices": devs, "states": [r.get("state") for r in res], "ok": ok,
            "errors": [r.get("error") or r.get("stderr") for r in res if r.get("state") != "done"]}


def _time_steps(trainer, n: int) -> float:
    _sync(trainer.device)
    t0 = time.time()
    for _ in range(n):
        trainer.train_step()
        trainer.step += 1
    _sync(trainer.device)
    return (time.time() - t0) / n


def _time_inference(trainer, n: int) -> float:
    model = torch.compile(trainer.model, backend=os.environ.get("ATTNRES_COMPILE_BACKEND", "inductor")) \
        if trainer.tc.compile else trainer.model
    x = trainer.val[0][0][: trainer.micro]
    model.eval()
    with torch.no_grad(), trainer.autocast:
        for _ in range(2):
            model(x)
        _sync(trainer.device)
        t0 = time.time()
        for _ in range(n):
            model(x)
        _sync(trainer.device)
    model.train()
    return (time.time() - t0) / n


def check_shape(work: Path, data: Path, shapes: dict[str, ModelConfig], micro: int, budget: Budget,
                dry: bool) -> dict[str, Any]:
    from harness.train import Trainer

    out: dict[str, Any] = {"variants": {}}
    last = 0.0  # seconds the previous variant took: the next one is started only if it fits
    for name, cfg in shapes.items():
        if budget.left < max(30.0, last):
            out["variants"][name] = {"skipped": f"would overrun the time budget (--budget-s; {budget.left:.0f} s left)"}
            continue
        rd = RunDir(work / f"shape-{name}")
        spec = _spec(f"gpu-check-{name}", cfg, data, steps=100, batch=2 * micro, micro=micro, compile=True)
        rd.write_spec(spec.to_dict())
        t0 = time.time()
        trainer = Trainer(rd, spec)
        if trainer.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(trainer.device)
        for _ in range(3):  # compile and warm up
            trainer.train_step()
            trainer.step += 1
        step_s = _time_steps(trainer, 3 if dry else 8)
        peak = torch.cuda.max_memory_allocated(trainer.device) / 1e9 if trainer.device.type == "cuda" else None
        infer_s = _time_inference(trainer, 3 if dry else 10)
        tok_s = trainer.tps / step_s
        est = memory_estimate(cfg, micro, trainer.dtype)
        out["variants"][name] = {
            "d_model": cfg.d_model, "n_blocks": cfg.n_blocks, "seq_len": cfg.seq_len, "micro_batch": micro,
            "dtype": trainer.dtype, "step_s": step_s, "tokens_per_s": tok_s, "infer_s": infer_s,
            "mfu": devices.mfu(flops_per_token(cfg).train, tok_s, trainer.peak, 1),
            "peak_memory_gb": peak, "estimated_memory_gb": est.total_gb,
            "estimate_over_measured": est.total_gb / peak if peak else None, "seconds": round(time.time() - t0, 1)}
        last = time.time() - t0
        del trainer
        gc.collect()
        torch._dynamo.reset()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    v = out["variants"]
    base = v.get("baseline", {})
    for name in ("block", "full"):
        if "step_s" in v.get(name, {}) and "step_s" in base:
            out[f"{name}_train_ratio"] = v[name]["step_s"] / base["step_s"]
            out[f"{name}_infer_ratio"] = v[name]["infer_s"] / base["infer_s"]
    measured = all("step_s" in x for x in v.values())
    goals = {"block_train": out.get("block_train_ratio", math.inf) <= GOALS["block_train"],
             "block_infer": out.get("block_infer_ratio", math.inf) <= GOALS["block_infer"]}
    out.update(goals_met=goals, ok=measured if dry else measured and all(goals.values()))
    return out


# ----------------------------------------------------------------------------- driver


def shapes_for(dry: bool, vocab: int) -> tuple[ModelConfig, dict[str, ModelConfig], int]:
    if dry:
        small = ModelConfig(vocab_size=vocab, n_blocks=2, d_model=32, n_heads=2, d_ff=64, seq_len=32)
        big = {"baseline": small, "block": dataclasses.replace(small, variant="block", layers_per_block=2),
               "full": dataclasses.replace(small, variant="full")}
        return small, big, 2
    small = model_config("paper", "194M", variant="baseline", vocab_size=vocab, seq_len=1024)
    big = {v: model_config("paper", "528M", variant=v, vocab_size=vocab, seq_len=4096, **extra)
           for v, extra in (("baseline", {}), ("block", {"layers_per_block": 4}), ("full", {}))}
    return small, big, 2


def run(dry: bool, out_path: Path, budget_s: float) -> dict[str, Any]:
    if dry:
        os.environ.setdefault("ATTNRES_COMPILE_BACKEND", "aot_eager")
        import harness.trainer as ht

        ht.COMPILE_BACKEND = os.environ["ATTNRES_COMPILE_BACKEND"]
    budget = Budget(budget_s)
    device = torch.device("cuda", 0) if (torch.cuda.is_available() and not dry) else torch.device("cpu")
    n_dev = torch.cuda.device_count() if device.type == "cuda" else 0
    vocab = 256 if dry else 32768
    small, big, micro = shapes_for(dry, vocab)
    report: dict[str, Any] = {"started": time.strftime("%Y-%m-%dT%H:%M:%S"), "dry": dry, "sections": {}}
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp:
        work = Path(tmp)
        data = synthetic_data(work, vocab, 1 << 20 if dry else 1 << 23)
        world = 2 if dry else n_dev
        sections = [
            ("environment", lambda: check_environment(dry)),
            ("attention", lambda: check_attention(device, torch.float32 if dry else torch.bfloat16, small)),
            ("trainer", lambda: check_trainer(work, data, small, dry)),
            ("nccl", lambda: check_nccl(work, world, dry) if world >= 2 else {"skipped": "fewer than 2 devices"}),
            ("ddp", lambda: check_ddp(work, data, small, world, dry) if world >= 2 else {"skipped": "fewer than 2 devices"}),
            ("shape_500m", lambda: check_shape(work, data, big, micro, budget, dry)),
        ]
        for name, fn in sections:
            t0 = time.time()
            try:
                report["sections"][name] = fn()
            except Exception as e:  # noqa: BLE001 - a failed check is a result, not the end of the script
                report["sections"][name] = {"ok": False, "error": f"{type(e).__name__}: {e}",
                                            "traceback": traceback.format_exc()[-3000:]}
            report["sections"][name]["section_s"] = round(time.time() - t0, 1)
    report["seconds"] = round(time.time() - budget.t0, 1)
    report["ok"] = all(s.get("ok", True) for s in report["sections"].values() if "skipped" not in s)
    out_path.write_text(json.dumps(report, indent=2, sort_keys=True, default=str) + "\n")
    return report


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.3g}"
    return str(v)


def table(report: dict[str, Any]) -> str:
    s = report["sections"]
    lines = [f"gpu-check{' (DRY: CPU, tiny shapes; numbers mean nothing)' if report['dry'] else ''}: "
             f"{'all checks passed' if report['ok'] else 'SOME CHECKS FAILED'} in {report['seconds']:.0f} s", ""]
    rows = [("check", "result", "details")]

    def add(name: str, keys: list[str]) -> None:
        sec = s.get(name, {})
        res = "skipped" if "skipped" in sec else ("ok" if sec.get("ok") else "FAIL")
        detail = sec.get("skipped") or sec.get("error") or ", ".join(f"{k} {_fmt(sec.get(k))}" for k in keys)
        rows.append((name, res, detail))

    add("environment", ["devices", "peak_source"])
    add("attention", ["kernel"])
    add("trainer", ["state", "dtype", "mfu_last", "host_reads_in_3_steps", "seconds"])
    add("nccl", ["backend", "world", "busbw_gb_s"])
    add("ddp", ["world", "devices", "states"])
    add("shape_500m", ["block_train_ratio", "block_infer_ratio", "full_train_ratio", "full_infer_ratio"])
    w = [max(len(r[i]) for r in rows) for i in range(2)]
    lines += [f"{r[0]:<{w[0]}}  {r[1]:<{w[1]}}  {r[2]}" for r in rows]
    variants = s.get("shape_500m", {}).get("variants", {})
    if variants:
        lines += ["", "variant    d_model  blocks  ctx   tok/s      MFU     step s   infer s  peak GB  est GB  est/peak"]
        for name, v in variants.items():
            if "skipped" in v:
                lines.append(f"{name:<10} {v['skipped']}")
                continue
            lines.append(f"{name:<10} {v['d_model']:>7}  {v['n_blocks']:>6}  {v['seq_len']:>4}  {v['tokens_per_s']:>9.4g}  "
                         f"{_fmt(v['mfu']):>6}  {v['step_s']:>7.3g}  {v['infer_s']:>7.3g}  {_fmt(v['peak_memory_gb']):>7}  "
                         f"{v['estimated_memory_gb']:>6.3g}  {_fmt(v['estimate_over_measured']):>8}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dry", action="store_true", help="CPU, tiny shapes: exercise the code paths (CI)")
    p.add_argument("--out", default=None, help="the JSON file to write (default gpu-check.json, or gpu-check-dry.json)")
    p.add_argument("--budget-s", type=float, default=280.0, help="skip remaining 500M variants past this many seconds")
    args = p.parse_args(argv)
    if not args.dry and not torch.cuda.is_available():
        print("gpu-check: torch sees no CUDA device; fix: run it on a GPU node with a CUDA build of torch, or "
              "`make gpu-check DRY=1` for the CPU dry run", file=sys.stderr)
        return 2
    out = Path(args.out or ("gpu-check-dry.json" if args.dry else "gpu-check.json"))
    report = run(args.dry, out, args.budget_s)
    print(table(report))
    print(f"\nwrote {out}")
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
