"""The paper's numbers (shared PAPER.md section 2): the published fits give the published multipliers,
and fitting Table 2 ourselves, under the compute convention stated in the reference CSV, gets close.

Compute convention (stated in analysis/reference/paper_table2.csv's header):
    C = (6 N + 4 n_blocks d_model T) D / 8.64e19 PF-days, N = activated non-embedding params, T = 8192.
"""

from __future__ import annotations

from importlib import resources

import numpy as np
import pandas as pd
import pytest

from analysis.fits import fit_paper
from analysis.laws import PowerLaw
from analysis.load import load_table
from analysis.multiplier import compute_multiplier

REF = resources.files("analysis") / "reference"
TABLE2 = REF / "paper_table2.csv"
CONVENTION = "compute_pfdays = (6 * params_active + 4 * n_blocks * d_model * seq_len) * tokens / 8.64e19"

# PAPER.md section 2: published A, alpha (also in analysis/reference/paper_fits.csv, checked below)
PUBLISHED = {"baseline": (1.891, 0.057), "block": (1.870, 0.058), "full": (1.865, 0.057)}


def _published_laws() -> dict[str, PowerLaw]:
    df = pd.read_csv(REF / "paper_fits.csv", comment="#").set_index("variant")
    laws = {v: PowerLaw(A=float(r["A"]), alpha=float(r["alpha"])) for v, r in df.iterrows()}
    for v, (a, alpha) in PUBLISHED.items():  # the shipped file holds exactly the paper's coefficients
        assert (laws[v].A, laws[v].alpha) == (a, alpha)
    return laws


@pytest.mark.parametrize("compute,expected", [(5.6, 1.254), (2.0, 1.231), (1.0, 1.216), (0.5, 1.202)])
def test_block_multiplier_from_published_fits(compute, expected):
    laws = _published_laws()
    assert compute_multiplier(laws["baseline"], laws["block"], compute) == pytest.approx(expected, abs=1e-3)


@pytest.mark.parametrize("compute", [0.5, 1.0, 2.0, 5.6, 50.0])
def test_full_multiplier_from_published_fits_is_constant(compute):
    laws = _published_laws()  # equal exponents: m = (A_b / A_v)^(1 / alpha) at every C
    assert compute_multiplier(laws["baseline"], laws["full"], compute) == pytest.approx(1.275, abs=1e-3)


def test_paper_headline_reading():
    """PAPER.md: at 5.6 PF-days Block reaches 1.692, the baseline 1.714 and needs ~7.0 PF-days for 1.692."""
    laws = _published_laws()
    assert laws["block"].loss(5.6) == pytest.approx(1.692, abs=1e-3)
    assert laws["baseline"].loss(5.6) == pytest.approx(1.714, abs=1e-3)
    assert laws["baseline"].compute_for(laws["block"].loss(5.6)) == pytest.approx(7.0, abs=0.05)


def _table2():
    return load_table(TABLE2, loss_col="val_loss", c_col="compute_pfdays", n_col="params_active", d_col="tokens",
                      arm_col="variant", size_col="size", compute_unit="PF-days")


def test_table2_states_and_follows_its_compute_convention():
    text = TABLE2.read_text()
    assert CONVENTION in text
    df = pd.read_csv(TABLE2, comment="#").astype({"params_active": float, "tokens": float})  # N D overflows int64
    expected = (6 * df.params_active + 4 * df.n_blocks * df.d_model * df.seq_len) * df.tokens / 8.64e19
    np.testing.assert_allclose(df.compute_pfdays, expected, rtol=1e-6)
    assert (df.seq_len == 8192).all() and len(df) == 15


def test_table2_paper_fit_reproduces_published_coefficients_and_multiplier():
    obs = _table2()
    fits = {v: fit_paper(obs.of(v)) for v in obs.arms}
    for v, (a_pub, alpha_pub) in PUBLISHED.items():
        law = fits[v].law
        print(f"{v:9s} fitted A = {law.A:.4f} (published {a_pub}), alpha = {law.alpha:.4f} (published {alpha_pub})")
        assert abs(law.A - a_pub) < 0.01  # 0.003-0.004 under our convention; plain 6ND is off by 0.03
        assert abs(law.alpha - alpha_pub) < 0.001  # 0.0003-0.0006
    c_max = float(obs.compute.max())
    m = float(compute_multiplier(fits["baseline"].law, fits["block"].law, c_max))
    print(f"Block multiplier from fitting Table 2 (paper form) at C = {c_max:.3f} PF-days: {m:.4f}")
    assert 1.15 <= m <= 1.35


def test_plain_6nd_does_not_reproduce_the_published_coefficients():
    """PAPER.md: 'plain 6*N*D does not reproduce the published coefficients' (why the convention matters)."""
    df = pd.read_csv(TABLE2, comment="#").astype({"params_active": float, "tokens": float})
    base = df[df.variant == "baseline"]
    c6 = 6 * base.params_active * base.tokens / 8.64e19
    x, y = np.log(c6.to_numpy()), np.log(base.val_loss.to_numpy())
    slope, icpt = np.polyfit(x, y, 1)
    assert abs(np.exp(icpt) - PUBLISHED["baseline"][0]) > 0.02


def test_same_size_gaps_convert_to_published_pointwise_range():
    """PAPER.md: 'same-size loss gaps (0.020-0.026 nats) convert to point-wise multipliers of 1.20-1.30'.
    The paired per-size multipliers of the shift model, converted with the baseline curve's slope."""
    from analysis.pipeline import AnalysisOptions, analyse

    a = analyse(_table2(), AnalysisOptions(forms=("shift",), n_boot=0))
    block = a.shift.arms["block"].per_size
    gaps = [p.gap for p in block]
    ms = [p.estimate for p in block]
    print("Block per-size gaps", np.round(gaps, 3), "multipliers", np.round(ms, 3))
    assert min(gaps) == pytest.approx(0.020, abs=5e-4) and max(gaps) == pytest.approx(0.026, abs=5e-4)
    assert 1.19 <= min(ms) and max(ms) <= 1.32


def test_table2_shift_headline_through_the_cli(capsys):
    """Issue acceptance: the paper's Table 2 through `attnres fit --table` (headline `shift`): Block
    between 1.15 and 1.35 with a 90% interval that excludes 1. Measured: 1.235 [1.196, 1.275]; the
    paper's own reading (separate fits at the largest C) is 1.273, here the secondary line."""
    import json

    from attnres.cli import main

    rc = main(["fit", "--table", str(TABLE2), "--c-col", "compute_pfdays", "--loss-col", "val_loss",
               "--arm-col", "variant", "--size-col", "size", "--n-col", "params_active", "--d-col", "tokens",
               "--compute-unit", "PF-days", "--json"])
    out = capsys.readouterr().out
    assert rc == 0
    doc = json.loads(out)
    h = doc["headline"]["block"]
    print(f"\nTable 2, Block: {h['estimate']:.3f} [{h['low']:.3f}, {h['high']:.3f}] ({h['method']})")
    assert doc["headline_form"] == "shift" and h["form"] == "shift"
    assert 1.15 <= h["estimate"] <= 1.35 and h["low"] > 1.0 and h["high"] < 1.35
    assert "paired shift model" in h["method"] and h["half_width_log"] > 0
    paper = doc["multipliers"]["paper"]["block"]["at_largest"]
    assert 1.15 <= paper["estimate"] <= 1.35  # the paper's convention, as published: ~1.27
