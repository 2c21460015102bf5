"""The one source of device throughput and memory assumptions: plan estimates and training's MFU.

MFU (model FLOPs utilisation, PaLM appendix B) = model FLOPs per second / the device's peak. Model
FLOPs per token are harness.accounting's (3 x forward, matmuls only); the peak is the datasheet's
*dense* bf16 tensor-core rate (no 2:4 sparsity), from the table below, keyed by the name CUDA
reports. A device not in the table has no peak: its rows carry ``mfu = null`` and env.json says why.

`attnres plan` turns FLOPs into device-hours with one rate per device kind, from here only, so a
run has one estimate whichever sweep file it is in:
    GPU       peak x an assumed MFU (DEFAULT_MFU, or [launch].mfu), stated in the plan
    cpu-core  CPU_CORE_FLOPS: the effective rate of one 1-thread training process, measured here
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DeviceKind:
    name: str  # the key a sweep's [launch].device uses
    match: tuple[str, ...]  # substrings of torch.cuda.get_device_name() (first match wins, in table order)
    peak_flops: float  # dense bf16 FLOP/s (datasheet); for cpu-core the measured effective rate
    memory_gb: float  # per device, the common variant (a sweep declares [launch].gpu_mem_gb for others)
    source: str


# Datasheet dense bf16 peaks (NVIDIA H100/H200/A100/L40S/L4/A10 and AMD Instinct product briefs).
# Order matters: the more specific names first ("H100 PCIe" before "H100").
GPUS: tuple[DeviceKind, ...] = (
    DeviceKind("H200", ("H200",), 989e12, 141, "NVIDIA H200 SXM datasheet"),
    DeviceKind("GH200", ("GH200",), 989e12, 96, "NVIDIA GH200 datasheet"),
    DeviceKind("H100-PCIe", ("H100 PCIe",), 756e12, 80, "NVIDIA H100 PCIe datasheet"),
    DeviceKind("H100", ("H100",), 989e12, 80, "NVIDIA H100 SXM datasheet"),
    DeviceKind("A100", ("A100",), 312e12, 80, "NVIDIA A100 datasheet (40 GB and 80 GB variants)"),
    DeviceKind("L40S", ("L40S",), 362e12, 48, "NVIDIA L40S datasheet"),
    DeviceKind("L4", ("L4",), 121e12, 24, "NVIDIA L4 datasheet"),
    DeviceKind("A10", ("A10",), 125e12, 24, "NVIDIA A10 datasheet"),
    DeviceKind("MI300X", ("MI300X",), 1307e12, 192, "AMD Instinct MI300X datasheet"),
    DeviceKind("MI250X", ("MI250X",), 383e12, 128, "AMD Instinct MI250X datasheet"),
)
# measured: 17.9 GFLOP/s of model FLOPs per one-thread training process over the committed demo run
# (results/demo: 30 runs, 1.15e13 FLOPs in 643 s of training, 2 workers on a 2-core VM; per size and
# arm 13.6-22.8 GFLOP/s, the small models furthest below a core's peak)
CPU_CORE = DeviceKind("cpu-core", (), 17.9e9, 0, "measured: one 1-thread process over the demo sweep")
DEFAULT_MFU = 0.40  # assumed for GPU estimates until a run of yours measures it (metrics rows carry mfu)
DEFAULT_GPU = "H100"  # what plan assumes for a sweep with gpus_per_node > 0 and no [launch].device

KINDS: dict[str, DeviceKind] = {k.name: k for k in (*GPUS, CPU_CORE)}


def kind_for(cuda_name: str) -> DeviceKind | None:
    """The table entry for a device name as CUDA reports it (e.g. 'NVIDIA H100 80GB HBM3'); None if
    it is not in the table."""
    for kind in GPUS:
        if any(m in cuda_name for m in kind.match):
            return kind
    return None


def peak_flops(cuda_name: str) -> tuple[float | None, str]:
    """(dense bf16 peak FLOP/s, where it comes from) for a CUDA device name; (None, why) if unknown."""
    kind = kind_for(cuda_name)
    if kind is None:
        return None, (f"{cuda_name!r} is not in harness/devices.py GPUS: no datasheet peak, so metrics rows carry "
                      "mfu = null; add a DeviceKind line for it")
    return kind.peak_flops, f"{kind.peak_flops / 1e12:.0f} TFLOP/s dense bf16 ({kind.source})"


def mfu(flops_per_token: float, tokens_per_s: float, peak: float | None, devices: int) -> float | None:
    """Model FLOPs utilisation of ``devices`` devices that together process ``tokens_per_s``."""
    if peak is None or devices < 1:
        return None
    return flops_per_token * tokens_per_s / (peak * devices)


@dataclass(frozen=True)
class Throughput:
    """One device's assumed training rate for estimates, and the sentence that states it."""

    kind: DeviceKind
    mfu: float | None  # None for cpu-core (its rate is measured, not a fraction of a peak)

    @property
    def flops(self) -> float:
        return self.kind.peak_flops * (self.mfu if self.mfu is not None else 1.0)

    def statement(self) -> str:
        if self.mfu is None:
            return (f"{self.flops:.3g} model FLOP/s per {self.kind.name} ({self.kind.source}; "
                    "harness/devices.py)")
        return (f"{self.mfu:.0%} MFU (assumed) of the {self.kind.name}'s {self.kind.peak_flops / 1e12:.0f} TFLOP/s "
                f"dense bf16 peak ({self.kind.source}) = {self.flops / 1e12:.0f} TFLOP/s per GPU")


def throughput(device: str | None, gpus: bool, assumed_mfu: float | None = None) -> Throughput:
    """The rate plan uses: ``device`` a KINDS name (None: cpu-core, or DEFAULT_GPU when ``gpus``)."""
    name = device or (DEFAULT_GPU if gpus else CPU_CORE.name)
    kind = KINDS[name]
    if kind is CPU_CORE:
        return Throughput(kind, None)
    return Throughput(kind, DEFAULT_MFU if assumed_mfu is None else assumed_mfu)
