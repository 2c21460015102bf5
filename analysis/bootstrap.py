"""Bootstrap replicates over units, as resample counts (replicates x rows) that every fit accepts.

The resampling unit is the (size, seed) pair, drawn jointly across arms: runs of one unit share
their initial weights and batch order, so their noise is shared, and resampling the arms
independently would break the pairing that the comparison rests on. Every row of a unit (each arm,
each checkpoint of a run) carries the unit's count. Two schemes:

    stratified  every size has >= 2 units (seeds): the seeds are resampled within each size, so every
                replicate keeps every size (a curve through fewer sizes is a different experiment)
    cases       one seed per size: units (= sizes) are resampled with replacement; replicates that
                cover fewer than ``min_distinct`` sizes are redrawn (a curve through 2 points is a
                line whatever the data)

Used by the forms without a closed-form interval (saturating, chinchilla). A bootstrap of n units
spreads like the uncorrected sandwich variance, low by about (n - p) / n for p fitted parameters, so
intervals are widened by ``expansion(n, p) = sqrt(n / (n - p))`` in log space (MacKinnon & White 1985).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from analysis.load import Observations


@dataclass(frozen=True)
class Resamples:
    weights: np.ndarray  # (B, n_rows) resample counts, one per unit, shared by its rows
    seed: int
    n_units: int
    scheme: str  # "stratified" or "cases"
    unit: str  # what was resampled, for reports

    @property
    def n(self) -> int:
        return self.weights.shape[0]


def _counts(rng: np.random.Generator, n: int, n_boot: int) -> np.ndarray:
    """(n_boot, n): multinomial counts of n draws with replacement from n items."""
    draws = rng.integers(0, n, size=(n_boot, n))
    counts = np.zeros((n_boot, n), dtype=np.int32)
    np.add.at(counts, (np.arange(n_boot)[:, None], draws), 1)
    return counts


def unit_labels(obs: Observations) -> tuple[np.ndarray, np.ndarray]:
    """(unit index of each row, size label of each unit): units are Observations.unit_keys()."""
    units, first, inv = np.unique(obs.unit_keys(), return_index=True, return_inverse=True)
    return inv, obs.size.astype(str)[first]


def resample_units(obs: Observations, n_boot: int, seed: int = 0, min_distinct: int = 2,
                   max_redraws: int = 100) -> Resamples:
    """``n_boot`` replicates of ``obs`` (all arms at once); see the module docstring."""
    rng = np.random.default_rng(seed)
    unit_of_row, size_of_unit = unit_labels(obs)
    n_units = len(size_of_unit)
    sizes, size_idx = np.unique(size_of_unit, return_inverse=True)
    per_size = np.bincount(size_idx)
    counts = np.zeros((n_boot, n_units), dtype=np.int32)
    if len(sizes) > 1 and per_size.min() >= 2 and len(np.unique(obs.seed)) >= 2:
        scheme = "stratified"
        for k in range(len(sizes)):
            members = np.flatnonzero(size_idx == k)
            counts[:, members] = _counts(rng, len(members), n_boot)
    else:
        scheme = "cases"
        need = min(min_distinct, len(sizes))
        onehot = np.eye(len(sizes))[size_idx]
        counts[:] = _counts(rng, n_units, n_boot)
        for _ in range(max_redraws):
            bad = np.flatnonzero((((counts > 0) @ onehot) > 0).sum(1) < need)
            if len(bad) == 0:
                break
            counts[bad] = _counts(rng, n_units, len(bad))
    rows_per_run = np.bincount(np.unique(obs.run, return_inverse=True)[1]).max() if len(obs) else 1
    unit = (f"(size, seed) units jointly across arms, {scheme}"
            + (" within sizes" if scheme == "stratified" else "") + f", {n_units} units"
            + (f", clustered ({rows_per_run} checkpoints per run)" if rows_per_run > 1 else ""))
    return Resamples(weights=counts[:, unit_of_row], seed=seed, n_units=n_units, scheme=scheme, unit=unit)


def expansion(n: int, p: int) -> float:
    """sqrt(n / (n - p)): the small-sample factor for the spread of a bootstrap over n units fitting p
    parameters (1 when there are not more units than parameters: nothing to correct with)."""
    return float(np.sqrt(n / (n - p))) if n > p else 1.0
