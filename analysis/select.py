"""Select the runs to fit: finished runs only, and the best hyperparameter value per (variant, size).

    selection = select_runs(load_runs(results_dir))
    selection.runs        # the kept runs (status done, finite loss, winning hyperparameters)
    selection.choices     # per (variant, size): which value won, the grid, whether it is at an edge
    selection.excluded    # runs left out, with the reason

A sweep axis (runs.parquet column ``axes``, values in ``axis_<name>``) is a *hyperparameter* axis when
changing it leaves the token budget alone (e.g. lr); fits then use the value with the lowest mean
validation loss over seeds, per (variant, size), as a per-variant tuning would. An axis that changes
the token budget (a tokens-per-parameter ratio, an isoFLOP budget) is a *data* axis: each of its
values is a separate point to fit, never a choice. A winner at the smallest or largest value tried
(counting diverged runs: a diverged larger lr brackets the optimum) is flagged: the grid should
extend past it.

Protocol (``protocol``). Picking the best value and measuring the arm on the same runs biases its
loss low (best-of-4 over seed noise: 0.006-0.017 nats on the tiny ladder, more for the arm with the
flatter curve, so it biases the comparison too). With >= 2 seeds the value is therefore chosen on
one seed (the smallest, ``selection_seed``) and the effect is measured on the others:
    per-arm    each (arm, size) takes its own best value (default: each arm at its own best)
    baseline   every arm takes the baseline's best value at that size (the paper's protocol: "all
               variants at a size share the hyperparameters tuned for the baseline")
With one seed the choice and the measurement share runs; the report warns about the bias.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from analysis.load import AnalysisInputError, RunTable
from records.choices import HparamProtocol, choices


@dataclass(frozen=True)
class HparamChoice:
    """The winning hyperparameter values of one (variant, size[, data-axis values]) cell."""

    variant: str
    size: str  # cell label (size, plus data-axis values when the sweep has them)
    winner: dict[str, Any]  # axis name -> winning value
    loss: float  # mean validation loss of the winner over its seeds
    n_seeds: int
    grid: dict[str, list[Any]]  # axis name -> every value tried (any status), sorted
    losses: dict[str, float]  # "axis=value, ..." -> mean loss of that candidate (finished runs)
    at_edge: tuple[str, ...]  # axes whose winning value is the smallest or largest tried
    runner_up_gap: float | None  # loss(runner-up) - loss(winner), nats; None with one candidate
    chosen_by: str = ""  # whose losses chose it: the arm itself, or the baseline (protocol "baseline")


@dataclass(frozen=True)
class ExcludedRun:
    run_id: str
    variant: str
    size: str
    status: str
    reason: str


@dataclass(frozen=True)
class Selection:
    runs: pd.DataFrame  # kept runs, with a "cell" column (size label used by fits)
    hparam_axes: tuple[str, ...]
    data_axes: tuple[str, ...]
    choices: list[HparamChoice] = field(default_factory=list)
    excluded: list[ExcludedRun] = field(default_factory=list)
    n_not_selected: int = 0  # finished runs with a losing hyperparameter value (or the selection seed's)
    protocol: str = "per-arm"  # PROTOCOLS
    selection_seed: int | None = None  # the seed the values were chosen on (None: no hyperparameter axis)
    measured_on_selection_seed: bool = False  # one seed only: chosen and measured on the same runs


def _fmt(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, (float, np.floating)) else str(v)


def classify_axes(frame: pd.DataFrame, axes: tuple[str, ...]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(hyperparameter axes, data axes): an axis is a data axis when, with everything else fixed,
    its values come with different token budgets (target_tokens)."""
    hp, data = [], []
    for a in axes:
        others = [f"axis_{o}" for o in axes if o != a]
        keys = ["arm", "size", *others]
        g = frame.fillna({k: "" for k in others}).groupby(keys, dropna=False)["target_tokens"].nunique()
        (data if (g > 1).any() else hp).append(a)
    return tuple(hp), tuple(data)


PROTOCOLS = choices(HparamProtocol)


def select_runs(table: RunTable, loss_col: str = "final_val_loss",
                hparam_axes: tuple[str, ...] | None = None, protocol: str = "per-arm",
                baseline: str = "baseline") -> Selection:
    if protocol not in PROTOCOLS:
        raise AnalysisInputError(f"hyperparameter protocol {protocol!r}: use one of {', '.join(PROTOCOLS)}")
    frame = table.frame.copy()
    if loss_col not in frame.columns:
        raise AnalysisInputError(f"{table.path} has no column {loss_col!r}; use final_val_loss or best_val_loss")
    if hparam_axes is None:
        hp, data = classify_axes(frame, table.axes)
    else:
        unknown = [a for a in hparam_axes if a not in table.axes]
        if unknown:
            raise AnalysisInputError(f"--hparam-axes names {', '.join(unknown)}, but {table.path} has axes "
                                     f"{', '.join(table.axes) or '(none)'}")
        hp, data = tuple(hparam_axes), tuple(a for a in table.axes if a not in hparam_axes)
    frame["cell"] = frame["size"].astype(str)
    for a in data:  # a data axis value is part of the point's identity
        frame["cell"] = frame["cell"] + f" {a}=" + frame[f"axis_{a}"].map(_fmt)

    excluded = []
    loss = frame[loss_col].astype(float)
    ok = (frame["status"] == "done") & np.isfinite(loss)
    for _, r in frame[~ok].iterrows():
        reason = (f"status {r['status']}" if r["status"] != "done" else f"{loss_col} is missing or not finite")
        excluded.append(ExcludedRun(str(r["run_id"]), str(r["arm"]), str(r["size"]), str(r["status"]), reason))
    if not ok.any():
        raise AnalysisInputError(f"{table.path}: no finished run with a finite {loss_col} "
                                 f"({len(frame)} runs; statuses: {dict(frame['status'].value_counts())}); "
                                 f"wait for runs to finish (`attnres status {table.sweep}`), then collect again")
    if not hp:
        return Selection(runs=frame[ok].reset_index(drop=True), hparam_axes=(), data_axes=data, excluded=excluded)

    return _select_hparams(frame, ok, loss_col, hp, data, excluded, protocol, baseline)


def _candidates(done: pd.DataFrame, hp: tuple[str, ...], loss_col: str) -> pd.DataFrame:
    hp_cols = [f"axis_{a}" for a in hp]
    return done.groupby(hp_cols, dropna=False)[loss_col].agg(["mean", "count"]).sort_values("mean", kind="stable")


def _select_hparams(frame: pd.DataFrame, ok: pd.Series, loss_col: str, hp: tuple[str, ...], data: tuple[str, ...],
                    excluded: list[ExcludedRun], protocol: str, baseline: str) -> Selection:
    """Choose on the selection seed, keep the winners' runs on the other seeds (module docstring)."""
    hp_cols = [f"axis_{a}" for a in hp]
    seeds = sorted(frame.loc[ok, "seed"].dropna().unique().tolist())
    sel_seed = int(seeds[0])
    same_runs = len(seeds) < 2
    key = lambda k: k if len(hp) > 1 else (k,)
    best: dict[tuple[str, str], tuple] = {}
    choices = []
    for (variant, cell), group in frame.groupby(["arm", "cell"], sort=True):
        done = group[ok.loc[group.index] & (group["seed"] == sel_seed)]
        if done.empty:
            continue
        grid = {a: sorted(group[f"axis_{a}"].dropna().unique().tolist()) for a in hp}
        cand = _candidates(done, hp, loss_col)
        best[(str(variant), str(cell))] = key(cand.index[0])
        winner = dict(zip(hp, key(cand.index[0])))
        labels = {", ".join(f"{a}={_fmt(v)}" for a, v in zip(hp, key(k))): float(m) for k, m in cand["mean"].items()}
        choices.append(HparamChoice(
            variant=str(variant), size=str(cell), winner={a: _py(v) for a, v in winner.items()},
            loss=float(cand["mean"].iloc[0]), n_seeds=int(cand["count"].iloc[0]),
            grid={a: [_py(v) for v in vals] for a, vals in grid.items()}, losses=labels,
            at_edge=tuple(a for a in hp if len(grid[a]) > 1 and isinstance(winner[a], (int, float, np.number))
                          and winner[a] in (grid[a][0], grid[a][-1])),
            runner_up_gap=float(cand["mean"].iloc[1] - cand["mean"].iloc[0]) if len(cand) > 1 else None,
            chosen_by=str(variant)))
    if protocol == "baseline":  # every arm at the baseline's value of its size
        choices = [replace(c, winner=next(d.winner for d in choices if d.variant == baseline and d.size == c.size),
                           chosen_by=baseline) if any(d.variant == baseline and d.size == c.size for d in choices)
                   else c for c in choices]
    keep = []
    for c in choices:
        cell = frame[(frame["arm"] == c.variant) & (frame["cell"] == c.size) & ok]
        if protocol == "baseline" and c.chosen_by != baseline:
            excluded += [ExcludedRun(str(r["run_id"]), c.variant, c.size, "done",
                                     f"protocol baseline: no baseline run at {c.size} to take the value from")
                         for _, r in cell.iterrows()]
            continue
        mask = np.logical_and.reduce([cell[col] == c.winner[a] for col, a in zip(hp_cols, hp)])
        if not same_runs:
            mask &= cell["seed"] != sel_seed
        keep.append(cell[mask])
    kept = pd.concat(keep).sort_index().reset_index(drop=True) if keep else frame.iloc[:0]
    return Selection(runs=kept, hparam_axes=hp, data_axes=data, choices=choices, excluded=excluded,
                     n_not_selected=int(ok.sum()) - len(kept), protocol=protocol, selection_seed=sel_seed,
                     measured_on_selection_seed=same_runs)


def _py(v: Any) -> Any:
    return v.item() if hasattr(v, "item") else v
