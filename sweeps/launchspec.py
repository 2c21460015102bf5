"""[launch]: the Slurm resources of a sweep's jobs and the device assumed for estimates.

Every string here reaches a generated sbatch script, so each is held to what Slurm names and
expressions use (``LaunchSpec.RULES``), and ``additional`` keys to sbatch option names that the
harness does not set itself (``additional_problems``).
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field
from typing import Any, ClassVar

from records.config import AT_LEAST_1, NON_NEGATIVE, POSITIVE, ConfigError, Rule, check_setting
from sweeps.checker import Checker


@dataclass(frozen=True)
class LaunchSpec:
    """Resources of one run's job (submitit's update_parameters), and throughput for estimates."""

    partition: str | None = None
    time_min: int = 60  # per job attempt; longer runs are requeued after a timeout and resume
    nodes: int = 1
    tasks_per_node: int = 1  # > 1: DDP with one process per task
    cpus_per_task: int = 1  # also the torch threads of each training process
    gpus_per_node: int = 0
    mem_gb: float | None = None
    array_parallelism: int = 64  # at most this many tasks of a job array run at once
    max_num_timeout: int = 20  # requeues after timeouts before giving up (preemptions don't count)
    account: str | None = None
    qos: str | None = None
    constraint: str | None = None
    additional: dict[str, Any] = field(default_factory=dict)  # further sbatch options
    # estimates only (harness/devices.py is the one source of throughput): the device kind (None:
    # cpu-core, or H100 when gpus_per_node > 0), an assumed MFU for GPUs, and GPU memory (GB)
    device: str | None = None
    mfu: float | None = None
    gpu_mem_gb: float | None = None

    # Every string here reaches a generated sbatch script (submitit writes `#SBATCH --key=value`,
    # shell-quoted but line by line: a newline in a value starts a line bash runs). So strings are
    # held to what Slurm names and expressions use, and `additional` keys to sbatch option names.
    RULES: ClassVar[dict[str, Rule]] = {
        **dict.fromkeys(("partition", "account", "qos"), Rule(pattern=r"[A-Za-z0-9_.,:=@%+/\[\]-]+",
                                                              allowed="letters, digits and _ . , : = @ % + / [ ] -")),
        "constraint": Rule(pattern=r"[A-Za-z0-9_.,:=@%+/\[\]&|!*()-]+",
                           allowed="letters, digits and _ . , : = @ % + / [ ] - & | ! * ( )"),
        **dict.fromkeys(("time_min", "nodes", "tasks_per_node", "cpus_per_task", "array_parallelism"), AT_LEAST_1),
        **dict.fromkeys(("gpus_per_node", "max_num_timeout"), NON_NEGATIVE),
        **dict.fromkeys(("mem_gb", "gpu_mem_gb"), POSITIVE),
        "mfu": Rule(lo=0, hi=1, lo_open=True),
    }

    def __post_init__(self) -> None:
        from harness.devices import KINDS

        for f in dataclasses.fields(self):
            check_setting(LaunchSpec, f.name, getattr(self, f.name))
        for problem in additional_problems(self.additional):
            raise ConfigError(problem, field="additional")
        if self.device is not None and self.device not in KINDS:
            raise ConfigError(f"device: {self.device!r} is not a device of harness/devices.py; fix: use one of "
                              f"{sorted(KINDS)} (or add a DeviceKind line for yours)", field="device")

    @property
    def devices_per_run(self) -> int:
        per_node = self.gpus_per_node if self.gpus_per_node else self.tasks_per_node
        return max(1, self.nodes * per_node)


# sbatch options that have their own [launch] key, or that submitit and the harness set themselves
# (logs, the array, requeue signal, WSD dependencies): `additional` must not override them
_OWN_KEY = {"partition": "partition", "account": "account", "qos": "qos", "constraint": "constraint",
            "time": "time_min", "nodes": "nodes", "ntasks-per-node": "tasks_per_node",
            "cpus-per-task": "cpus_per_task", "gpus-per-node": "gpus_per_node", "mem": "mem_gb"}
_HARNESS_SET = ("output", "error", "array", "job-name", "open-mode", "signal", "dependency", "wrap")
_SBATCH_KEY = r"[a-z][a-z0-9-]*"
_SBATCH_VALUE = r"[A-Za-z0-9_.,:=@%+/\[\]-]+"


def additional_problems(additional: dict[str, Any]) -> list[str]:
    """Problems of [launch].additional (sbatch options), each 'additional.<key>: problem; fix: ...'."""
    out = []
    for key, value in additional.items():
        name = key.replace("_", "-")  # submitit's spelling of the option
        where = f"additional.{key!r}" if not re.fullmatch(r"[A-Za-z0-9_-]+", key) else f"additional.{key}"
        if not re.fullmatch(_SBATCH_KEY, name):
            out.append(f"{where}: not an sbatch option name; fix: use lowercase letters, digits and '-' "
                       "(the long option without '--', e.g. mail-type)")
        elif name in _OWN_KEY:
            out.append(f"{where}: has its own key; fix: set [launch].{_OWN_KEY[name]} instead")
        elif name in _HARNESS_SET:
            out.append(f"{where}: set by the harness (logs, job arrays, requeue, WSD dependencies); fix: remove it")
        elif value is False or not isinstance(value, (bool, int, float, str)):
            out.append(f"{where}: {value!r} is not an sbatch value; fix: use a string, a number, or true for a "
                       "flag (drop the key to leave it off)")
        elif isinstance(value, float) and not math.isfinite(value):
            out.append(f"{where}: {value!r} is not finite; fix: use a finite number")
        elif isinstance(value, str) and not re.fullmatch(_SBATCH_VALUE, value):
            out.append(f"{where}: {value!r} has characters outside letters, digits and _ . , : = @ % + / [ ] -; "
                       "fix: use only those (no spaces, quotes or newlines)")
    return out


def parse_launch(c: Checker, t: dict[str, Any]) -> LaunchSpec | None:
    """[launch]: every key by LaunchSpec's rules (strings safe to write into an sbatch script)."""
    from harness.devices import KINDS

    for old in ("device_flops", "device_name"):  # replaced by one table of device rates
        if old in t:
            c.problems.append(f"{c.file}: [launch].{old}: removed: every estimate now uses one table of device "
                              "rates (harness/devices.py), so a run has one estimate in every sweep; fix: delete it; "
                              f"set [launch].device = one of {sorted(KINDS)} (and mfu = 0.4 for a GPU)")
    t = {k: v for k, v in t.items() if k not in ("device_flops", "device_name")}
    unknown = c.known(t, {f.name for f in dataclasses.fields(LaunchSpec)}, "[launch]")
    before = len(c.problems)
    values = {k: c.attempt(c.setting, LaunchSpec, k, v, "[launch]") for k, v in t.items() if k not in unknown}
    if isinstance(values.get("additional"), dict):
        c.problems.extend(f"{c.file}: [launch].{p}" for p in additional_problems(values["additional"]))
    if len(c.problems) > before or unknown:
        return None
    try:
        return LaunchSpec(**values)
    except ConfigError as e:  # a rule the per-key checks above did not cover
        c.problems.append(f"{c.file}: [launch].{e}")
        return None

