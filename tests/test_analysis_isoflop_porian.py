"""The `isoflop` form against Porian et al. 2024's published allocation exponents (OpenWebText2;
tests/data/README.md): per budget the Akima-spline minimum over log N, then least squares of log N*
on log C, must land within 0.015 of their a (N* ∝ C^a) for every one of their 5 configurations."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.isoflop import IsoflopFit, fit_isoflop
from analysis.load import load_table

DATA = Path(__file__).parent / "data"
ISOFLOP = DATA / "porian2024_isoflop_owt2.csv"
PUBLISHED = DATA / "porian2024_published_a_owt2.csv"
# the upstream files, next to the repository on developer machines (not in CI)
SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "reference"
TOLERANCE = 0.015  # the shared reference README's acceptance bound on |a - a_published|


@pytest.fixture(scope="module")
def fits() -> dict[str, IsoflopFit]:
    # no D column: load_table derives D = C / (6 N), the convention of the upstream table
    obs = load_table(ISOFLOP, loss_col="loss", n_col="N", c_col="C_flops_budget", arm_col="config",
                     compute_unit="FLOPs")
    return {v: fit_isoflop(obs.of(v), v) for v in obs.arms}


@pytest.fixture(scope="module")
def published() -> pd.DataFrame:
    return pd.read_csv(PUBLISHED).set_index("config")


def test_allocation_exponents_match_the_published_ones(fits, published):
    assert sorted(fits) == sorted(published.index) and len(fits) == 5
    lines = [f"\n{'configuration':<28} {'published a (95% CI)':<24} {'fitted a':>8} {'diff':>8}  budgets used"]
    misses = []
    for cfg, row in published.iterrows():
        f = fits[cfg]
        assert f.n_opt is not None, (cfg, f.notes)
        diff = f.n_opt.exponent - row.a_n_exponent
        lines.append(f"{cfg:<28} {row.a_n_exponent:.4f} [{row.a_CI95_lo:.3f}, {row.a_CI95_hi:.3f}]  "
                     f"{f.n_opt.exponent:8.4f} {diff:+8.4f}  {len(f.accepted)} of {len(f.budgets)}")
        if abs(diff) > TOLERANCE:
            misses.append(cfg)
    print("\n".join(lines))
    assert not misses, f"{misses}: |a - a_published| > {TOLERANCE}"


def test_minima_carry_tokens_and_loss(fits):
    """D* and L* at each minimum (the L*(C) frontier feeds the multiplier): on this table D = C / (6 N)
    exactly, so D* must satisfy it at N*; L* is the spline at its argmin, so it cannot lie far above
    the lowest measured loss nor far below the curve's measured points."""
    for cfg, f in fits.items():
        assert len(f.accepted) >= 11, (cfg, f.notes)
        for b in f.accepted:
            assert b.n_params[0] < b.n_opt < b.n_params[-1]
            assert 6 * b.n_opt * b.d_opt == pytest.approx(b.compute, rel=1e-9)
            assert b.loss.min() - 0.02 < b.loss_opt <= b.loss.min() + 1e-3, (cfg, b.compute)
        assert f.frontier is not None and f.frontier.law.alpha > 0
        assert f.d_opt.exponent == pytest.approx(1 - f.n_opt.exponent, abs=1e-9)  # C = 6 N* D*


@pytest.mark.skipif(not (SHARED / "porian2024_isoflop_owt2.csv").exists(),
                    reason="the shared reference folder is not next to this checkout (CI)")
def test_derived_copy_matches_the_shared_reference():
    src = pd.read_csv(SHARED / "porian2024_isoflop_owt2.csv")
    copy = pd.read_csv(ISOFLOP)
    assert list(copy.columns) == ["config", "C_flops_budget", "N", "loss"] and len(copy) == len(src) == 581
    for col in ("C_flops_budget", "N", "loss"):
        np.testing.assert_array_equal(copy[col].to_numpy(float), src[col].to_numpy(float))
    assert (copy["config"] == src["config"]).all()
    np.testing.assert_allclose(src["D_tokens"], src["C_flops_budget"] / (6 * src["N"]), rtol=1e-12)
    pub = pd.read_csv(SHARED / "porian2024_published_fits_owt2.csv").set_index("config")
    mine = pd.read_csv(PUBLISHED).set_index("config")
    for col in mine.columns:
        assert (mine[col] == pub.loc[mine.index, col]).all(), col


def test_bad_budgets_fail_naming_the_budget_and_the_fix():
    from analysis.isoflop import budget_minimum

    n, d = np.array([1e6, 2e6, 4e6]), np.array([4e9, 2e9, 1e9])
    with pytest.raises(ValueError, match=r"C = 2.4e\+16 \(base\).*finite and positive.*fix: drop"):
        budget_minimum("base", 2.4e16, n, d, np.array([3.1, np.nan, 3.2]))
    with pytest.raises(ValueError, match=r"repeated sizes.*fix: average the seeds"):
        budget_minimum("base", 2.4e16, np.array([1e6, 1e6, 4e6]), d, np.array([3.1, 3.0, 3.2]))
    assert budget_minimum("base", 2.4e16, n[:2], d[:2], np.array([3.1, 3.0])).status == "too few sizes"
    assert budget_minimum("base", 2.4e16, n, d, np.array([3.3, 3.2, 3.1])).status == "edge"
    ok = budget_minimum("base", 2.4e16, n, d, np.array([3.3, 3.1, 3.2]))
    assert ok.status == "ok" and 1e6 < ok.n_opt < 4e6 and ok.loss_opt <= 3.1 + 1e-9
