"""Load results into typed tables: the first step of the analysis pipeline.

    results/<sweep>/runs.parquet    -> RunTable     (one row per run; docs/SCHEMAS.md)
    results/<sweep>/curves.parquet  -> CurveTable   (one row per evaluation point)
    any CSV/parquet + column names  -> Observations (what every fit consumes)

    runs = load_runs(resolve_results_dir("demo"))
    obs = load_table("published.csv", n_col="N", d_col="D", c_col="C", loss_col="loss")

Every input problem raises ``AnalysisInputError`` with a message that names the file or column and
the fix; the CLI prints it instead of a traceback.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

CHINCHILLA_FLOPS_PER_PARAM_TOKEN = 6.0  # C = 6 N D (Kaplan et al. 2020; Hoffmann et al. 2022)

# runs.parquet columns the analysis reads (docs/SCHEMAS.md); the rest are carried along untouched
RUN_COLUMNS = ("run_id", "sweep", "arm", "size", "seed", "status", "axes", "tokens", "target_tokens",
               "params_non_embedding", "params_total", "compute_pfdays", "final_val_loss")
CURVE_COLUMNS = ("run_id", "arm", "size", "seed", "step", "tokens", "compute_pfdays", "val_loss")


class AnalysisInputError(ValueError):
    """An input file or column is missing or unusable; the message names it and says how to fix it."""


def resolve_results_dir(sweep_or_dir: str, results_root: str | Path = "results") -> Path:
    """``demo`` -> <results_root>/demo; a path (``results/demo``, ``/data/x``) or a directory holding a
    runs.parquet is used as is."""
    p = Path(sweep_or_dir)
    if len(p.parts) > 1 or p.is_absolute() or (p / "runs.parquet").exists():
        return p
    return Path(results_root) / sweep_or_dir


def _sweep_hint(results_dir: Path) -> str:
    return f"run `attnres collect {results_dir.name}` first (or pass --results-root DIR)"


def _read_parquet(path: Path, what: str) -> pd.DataFrame:
    if not path.exists():
        raise AnalysisInputError(f"{path} not found: no {what} for sweep {path.parent.name!r}; "
                                 f"{_sweep_hint(path.parent)}")
    try:
        return pd.read_parquet(path)
    except Exception as e:  # pyarrow raises several unrelated types for a corrupt file
        raise AnalysisInputError(f"{path} is not a readable parquet file ({e}); "
                                 f"re-create it with `attnres collect {path.parent.name}`") from e


def _require(frame: pd.DataFrame, columns: tuple[str, ...], path: Path | str, fix: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise AnalysisInputError(f"{path} lacks column(s) {', '.join(missing)} (docs/SCHEMAS.md); {fix}")


@dataclass(frozen=True)
class RunTable:
    """runs.parquet, validated: one row per run, every status (the analysis keeps only "done")."""

    frame: pd.DataFrame
    path: Path
    axes: tuple[str, ...]  # extra sweep axes (each has a column axis_<name>), sorted

    def __post_init__(self) -> None:
        object.__setattr__(self, "frame", _with_arm(self.frame))

    @property
    def sweep(self) -> str:
        names = sorted(set(self.frame["sweep"].dropna()))
        return names[0] if len(names) == 1 else self.path.parent.name


@dataclass(frozen=True)
class CurveTable:
    """curves.parquet, validated: one row per evaluation point, sorted by (run_id, step)."""

    frame: pd.DataFrame
    path: Path


def _with_arm(frame: pd.DataFrame) -> pd.DataFrame:
    """Collections before the `arm` column held the arm's name in `variant`."""
    if "arm" not in frame.columns and "variant" in frame.columns:
        frame = frame.assign(arm=frame["variant"])
    return frame


def load_runs(results_dir: Path) -> RunTable:
    path = Path(results_dir) / "runs.parquet"
    frame = _with_arm(_read_parquet(path, "runs table"))
    _require(frame, RUN_COLUMNS, path, f"re-collect with the current harness: `attnres collect {path.parent.name}`")
    axes = sorted({a for s in frame["axes"].dropna() for a in str(s).split(",") if a})
    missing = [f"axis_{a}" for a in axes if f"axis_{a}" not in frame.columns]
    if missing:
        raise AnalysisInputError(f"{path}: the axes column names {', '.join(axes)} but column(s) "
                                 f"{', '.join(missing)} are missing; re-collect with `attnres collect "
                                 f"{path.parent.name}`")
    return RunTable(frame=frame.reset_index(drop=True), path=path, axes=tuple(axes))


def load_curves(results_dir: Path, required: bool = False) -> CurveTable | None:
    """curves.parquet, or None when it is absent and not ``required`` (fits do not need it)."""
    path = Path(results_dir) / "curves.parquet"
    if not path.exists() and not required:
        return None
    frame = _with_arm(_read_parquet(path, "curves table"))
    _require(frame, CURVE_COLUMNS, path, f"re-collect with `attnres collect {path.parent.name}`")
    frame = frame.sort_values(["run_id", "step"], kind="stable").reset_index(drop=True)
    return CurveTable(frame=frame, path=path)


@dataclass(frozen=True)
class Observations:
    """The table every fit consumes: one row per (run, checkpoint) loss measurement.

    ``run`` is the bootstrap's resampling unit: rows of the same run (several checkpoints) are
    resampled together. ``compute`` is in ``compute_unit`` and is what L(C) fits use; ``n_params``
    and ``tokens`` are what L(N, D) fits use. Columns that a source does not have are NaN.
    """

    arm: np.ndarray  # str, the sweep's arm (what is compared; several arms may share a model variant)
    size: np.ndarray  # str, a label of the model size (same size = same shape across arms)
    run: np.ndarray  # str, resampling cluster
    seed: np.ndarray  # int
    n_params: np.ndarray  # float, N
    tokens: np.ndarray  # float, D
    compute: np.ndarray  # float, C in compute_unit
    loss: np.ndarray  # float, nats/token
    compute_unit: str = "PF-days"
    source: str = ""  # where the rows came from (a path), for reports
    unit: np.ndarray | None = None  # str, the pairing unit; None: (size, seed), see unit_keys

    def __post_init__(self) -> None:
        n = len(self.loss)
        for name in ("arm", "size", "run", "seed", "n_params", "tokens", "compute"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"Observations.{name} has {len(getattr(self, name))} rows, loss has {n}")
        if self.unit is not None and len(self.unit) != n:
            raise ValueError(f"Observations.unit has {len(self.unit)} rows, loss has {n}")

    def unit_keys(self) -> np.ndarray:
        """The pairing unit of each row: runs of different arms with the same key share their initial
        weights and batch order (same size, same seed). Default: size label + seed."""
        if self.unit is not None:
            return np.asarray(self.unit).astype(str)
        return np.char.add(np.char.add(self.size.astype(str), " seed "), self.seed.astype(str))

    def __len__(self) -> int:
        return len(self.loss)

    @property
    def arms(self) -> list[str]:
        return sorted(set(self.arm.tolist()))

    def take(self, mask_or_index: np.ndarray) -> Observations:
        f = lambda a: np.asarray(a)[mask_or_index]
        return Observations(arm=f(self.arm), size=f(self.size), run=f(self.run), seed=f(self.seed),
                            n_params=f(self.n_params), tokens=f(self.tokens), compute=f(self.compute),
                            loss=f(self.loss), compute_unit=self.compute_unit, source=self.source,
                            unit=None if self.unit is None else f(self.unit))

    def of(self, arm: str) -> Observations:
        return self.take(self.arm == arm)

    def size_order(self) -> list[str]:
        """Size labels from smallest to largest (by mean compute, then N)."""
        labels, inv = np.unique(self.size, return_inverse=True)
        count = np.bincount(inv, minlength=len(labels))
        c = np.bincount(inv, weights=self.compute, minlength=len(labels)) / count
        n = np.bincount(inv, weights=np.nan_to_num(self.n_params), minlength=len(labels)) / count
        return [str(labels[i]) for i in np.lexsort((labels, n, c))]

    def n_seeds(self) -> int:
        """Most runs in any (arm, size) cell (1 = one seed per point, as in the paper)."""
        if len(self) == 0:
            return 0
        df = pd.DataFrame({"v": self.arm, "s": self.size, "r": self.run})
        return int(df.drop_duplicates().groupby(["v", "s"]).size().max())

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame({"arm": self.arm, "size": self.size, "run": self.run, "seed": self.seed,
                             "n_params": self.n_params, "tokens": self.tokens, "compute": self.compute,
                             "loss": self.loss})


def observations_from_runs(runs: pd.DataFrame, loss_col: str = "final_val_loss", source: str = "",
                           size_col: str = "size") -> Observations:
    """One row per run: the run's final loss, its compute in PF-days, N = non-embedding parameters.
    ``size_col`` labels the point (analysis.select adds "cell": the size plus any data-axis values)."""
    if loss_col not in runs.columns:
        raise AnalysisInputError(f"{source or 'runs table'} has no loss column {loss_col!r}; "
                                 f"use final_val_loss or best_val_loss")
    return Observations(
        arm=_with_arm(runs)["arm"].astype(str).to_numpy(),
        size=runs[size_col].astype(str).to_numpy(),
        run=runs["run_id"].astype(str).to_numpy(),
        seed=runs["seed"].fillna(0).astype(np.int64).to_numpy(),
        n_params=runs["params_non_embedding"].astype(float).to_numpy(),
        tokens=runs["tokens"].astype(float).to_numpy(),
        compute=runs["compute_pfdays"].astype(float).to_numpy(),
        loss=runs[loss_col].astype(float).to_numpy(),
        compute_unit="PF-days",
        source=source,
    )


def observations_from_curves(curves: CurveTable, runs: pd.DataFrame, min_fraction: float = 0.0) -> Observations:
    """One row per evaluation point of the given runs (intermediate checkpoints), clustered by run.

    ``min_fraction`` drops checkpoints before that fraction of the run's token budget. Only meaningful
    for schedules whose intermediate losses are final losses of shorter runs (constant LR, WSD branch
    points); a cosine schedule's intermediate losses overstate the loss a shorter run would reach."""
    meta = runs.set_index("run_id")
    df = curves.frame[curves.frame["run_id"].isin(meta.index)]
    df = df[np.isfinite(df["val_loss"].astype(float))]
    target = meta.loc[df["run_id"], "target_tokens"].to_numpy(dtype=float)
    df = df[df["tokens"].to_numpy(dtype=float) >= min_fraction * target]
    n = meta.loc[df["run_id"], "params_non_embedding"].to_numpy(dtype=float)
    size = meta.loc[df["run_id"], "cell" if "cell" in meta.columns else "size"].astype(str).to_numpy()
    return Observations(
        arm=df["arm"].astype(str).to_numpy(), size=size,
        run=df["run_id"].astype(str).to_numpy(), seed=df["seed"].astype(np.int64).to_numpy(),
        n_params=n, tokens=df["tokens"].astype(float).to_numpy(),
        compute=df["compute_pfdays"].astype(float).to_numpy(), loss=df["val_loss"].astype(float).to_numpy(),
        compute_unit="PF-days", source=str(curves.path))


def read_table(path: str | Path) -> pd.DataFrame:
    """A CSV (``#`` lines are comments) or parquet file as a DataFrame; its index counts data rows
    from 0 (header and comments not counted), which is what messages call 'row'."""
    path = Path(path)
    if not path.exists():
        raise AnalysisInputError(f"{path} not found; pass an existing CSV or parquet file to --table")
    if path.is_dir():
        raise AnalysisInputError(f"{path} is a directory; pass a CSV or parquet file to --table")
    kind = "parquet" if path.suffix.lower() in (".parquet", ".pq") else "CSV"
    try:
        frame = pd.read_parquet(path) if kind == "parquet" else pd.read_csv(path, comment="#")
    except Exception as e:
        raise AnalysisInputError(f"{path} could not be read as {kind} ({e}); check the file format") from e
    return frame.reset_index(drop=True)


def _numeric(frame: pd.DataFrame, name: str, flag: str, path: Path, *, positive: bool = True,
             whole: bool = False) -> np.ndarray:
    """A numeric column, or AnalysisInputError naming the file, the column and its first bad row:
    text, a missing value, and (``positive``) a non-positive or non-finite number."""
    raw = frame[name]
    values = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=float)
    text = np.isnan(values) & raw.notna().to_numpy()
    if text.any():
        i = int(np.argmax(text))
        raise AnalysisInputError(f"{path}: column {name!r} ({flag}) holds text at row {frame.index[i]}: "
                                 f"{raw.iloc[i]!r} (and {int(text.sum()) - 1} more rows); fix: make the column "
                                 "numeric, or drop those rows with --query")
    bad = ~np.isfinite(values) | (values <= 0 if positive else False)
    if whole:
        bad |= np.isfinite(values) & (values != np.round(values))
    if bad.any():
        i = int(np.argmax(bad))
        what = "missing, non-finite or non-positive" if positive else "missing, non-finite or fractional"
        raise AnalysisInputError(f"{path}: column {name!r} ({flag}) has {int(bad.sum())} {what} value(s), the first "
                                 f"at row {frame.index[i]} ({raw.iloc[i]!r}); fix: correct them or drop those "
                                 "rows with --query")
    return values


def load_table(path: str | Path, *, loss_col: str, n_col: str | None = None, d_col: str | None = None,
               c_col: str | None = None, arm_col: str | None = None, size_col: str | None = None,
               run_col: str | None = None, seed_col: str | None = None, query: str | None = None,
               compute_unit: str | None = None,
               flops_per_param_token: float = CHINCHILLA_FLOPS_PER_PARAM_TOKEN) -> Observations:
    """Observations from any CSV/parquet, given the names of its columns.

    Missing columns are derived where possible, with the convention stated: no C column ->
    C = 6 N D in FLOPs; no D column -> D = C / (6 N) (Epoch's convention for Chinchilla's data).
    ``query`` filters rows first (pandas syntax, e.g. "excluded == 0"). Without ``arm_col`` all
    rows are one arm "all"; without ``run_col`` each row is its own run; without ``size_col`` the
    size label is N (or C) and no rows are paired (each run is its own unit); with it, runs of
    different arms at the same size and seed are paired."""
    path = Path(path)
    frame = read_table(path)
    named = {"--loss-col": loss_col, "--n-col": n_col, "--d-col": d_col, "--c-col": c_col,
             "--arm-col": arm_col, "--size-col": size_col, "--run-col": run_col, "--seed-col": seed_col}
    for flag, col in named.items():
        if col is not None and col not in frame.columns:
            raise AnalysisInputError(f"{path} has no column {col!r} (given as {flag}); its columns are: "
                                     f"{', '.join(map(str, frame.columns))}")
    if query:
        try:
            frame = frame.query(query)
        except Exception as e:
            raise AnalysisInputError(f"--query {query!r} failed on {path}: {e}") from e
    if len(frame) == 0:
        raise AnalysisInputError(f"{path}: no rows left" + (f" after --query {query!r}" if query else ""))
    flags = {col: flag for flag, col in named.items() if col is not None}
    col = lambda name: _numeric(frame, name, flags[name], path) if name else np.full(len(frame), np.nan)
    n, d, c = col(n_col), col(d_col), col(c_col)
    unit = compute_unit or ("as given" if c_col else "FLOPs")
    if c_col is None and n_col and d_col:
        c = flops_per_param_token * n * d
    if d_col is None and n_col and c_col:
        d = c / (flops_per_param_token * n)
    if c_col is None and not (n_col and d_col):
        raise AnalysisInputError("a compute column is needed: pass --c-col, or --n-col and --d-col "
                                 "(then C = 6 N D)")
    loss = col(loss_col)
    rows = np.arange(len(frame))
    size = (frame[size_col].astype(str).to_numpy() if size_col
            else np.array([f"{v:.4g}" for v in (n if n_col else c)]))
    run = frame[run_col].astype(str).to_numpy() if run_col else np.array([f"row{i}" for i in rows])
    return Observations(
        arm=frame[arm_col].astype(str).to_numpy() if arm_col else np.full(len(frame), "all"),
        size=size,
        run=run,
        seed=(_numeric(frame, seed_col, "--seed-col", path, positive=False, whole=True).astype(np.int64) if seed_col
              else np.zeros(len(frame), np.int64)),
        n_params=n, tokens=d, compute=c, loss=loss, compute_unit=unit, source=str(path),
        unit=None if size_col else run)  # without a size column rows are not paired: each run its own unit
