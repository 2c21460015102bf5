"""Sweep files, from the outside: read one, check it, and expand it into runs.

    sweep = load_sweep("demo")       # a name (sweeps/demo.toml) or a .toml path; SweepError lists every problem
    runs = expand(sweep)             # list[PlannedRun]: one RunSpec per run, with a stable id

The sweep file's format is described in sweeps/demo.toml (commented) and the README. The work is
done by small modules, in the order a sweep file goes through them:

    sweeps/sweepfile.py   locate and read the file; every table's keys, types and ranges (Sweep, Arm)
    sweeps/checker.py     SweepError and the checker: '<file>: <key>: <problem>; fix: <fix>'
    sweeps/budget.py      [budget]: the modes (records.choices.BudgetMode) and each run's token budget
    sweeps/launchspec.py  [launch]: Slurm resources, held to what may reach an sbatch script
    sweeps/expand.py      the runs: settings resolved (rules, tables, axes, budget), WSD families
    sweeps/runid.py       run ids, and the settings their hash covers (defined once)

This module only gathers their public names, so callers import from one place.
"""

from sweeps.budget import Budget
from sweeps.checker import SweepError
from sweeps.expand import PlannedRun, branch_point, expand
from sweeps.launchspec import LaunchSpec, additional_problems
from sweeps.runid import EXECUTION_ONLY, config_hash, data_key, hashed_settings
from sweeps.sweepfile import SWEEPS_DIR, Arm, DataChoice, Sweep, available_sweeps, load_sweep, sweep_path

__all__ = ["EXECUTION_ONLY", "SWEEPS_DIR", "Arm", "Budget", "DataChoice", "LaunchSpec", "PlannedRun", "Sweep",
           "SweepError", "additional_problems", "available_sweeps", "branch_point", "config_hash", "data_key",
           "expand", "hashed_settings", "load_sweep", "sweep_path"]
