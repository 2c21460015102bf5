"""Power before spending (analysis/power.py, `attnres plan --power`): the formulas against a direct
simulation of the interval they describe, and the command on a real sweep file."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from analysis.power import default_noise, detectable, half_width, noise_from_estimate, seeds_needed
from analysis.shift import fit_shift
from analysis.simulate import Design, simulate


@pytest.mark.parametrize("n_units,sd", [(4, 0.13), (15, 0.11), (40, 0.03)])
def test_minimum_detectable_multiplier_has_80_percent_power(n_units, sd):
    """Monte Carlo of the t interval the headline uses: with the true log m at the computed minimum
    detectable value, the 90% interval's lower end is above 0 in ~80% of draws; the expected
    half-width is the mean one."""
    rng = np.random.default_rng(n_units)
    truth = np.log(detectable(n_units, sd))
    d = rng.normal(truth, sd, (20000, n_units))
    t = stats.t.ppf(0.95, n_units - 1)
    hw = t * d.std(axis=1, ddof=1) / np.sqrt(n_units)
    power = float(np.mean(d.mean(axis=1) - hw > 0))
    print(f"\nn = {n_units}, sd = {sd}: detectable m = {np.exp(truth):.3f}, simulated power {power:.3f}")
    assert 0.77 <= power <= 0.84
    assert half_width(n_units, sd) == pytest.approx(float(np.mean(hw)), rel=0.01)


def test_seeds_needed_is_the_smallest_design_that_detects():
    k = seeds_needed(1.1, sizes=3, sd=0.11)
    assert detectable(3 * k, 0.11) <= 1.1 < detectable(3 * (k - 1), 0.11)
    assert seeds_needed(1.1, sizes=3, sd=0.11, lost_seeds=1) == k + 1  # one seed spent choosing the lr


def test_noise_from_an_estimate_recovers_the_simulated_noise():
    """Pooled within-size sd of the paired log multipliers vs the truth of the simulation: per-run
    noise 0.007 in log L, paired gap sd 0.0099, over the curve's local slope at each size."""
    d = Design(sizes=4, seeds=8)
    obs = simulate(d, 1.0, np.random.default_rng(3))
    noise = noise_from_estimate(fit_shift(obs).arms["arm"])
    x = d.log_c_smallest + d.log_step * np.arange(d.sizes)
    slope = np.abs(np.polynomial.polynomial.polyval(x - d.x0, np.polynomial.polynomial.polyder(d.curve)))
    truth = float(np.sqrt(np.mean((d.noise.per_run * np.sqrt(2) / slope) ** 2)))
    print(f"\nmeasured {noise.sd:.4f}, truth {truth:.4f}; {noise.source}")
    assert noise.sd == pytest.approx(truth, rel=0.25) and noise.dof == 28


def test_plan_power_prints_the_detectable_multiplier(capsys):
    from attnres.cli import main

    assert main(["plan", "demo", "--power", "--results-root", "/nonexistent-results"]) == 0
    out = capsys.readouterr().out
    assert "power of this design" in out and "detects m >=" in out and "would detect 1.1x with" in out
    assert default_noise("tiny").source.split(":")[0] in out  # no results there: the ladder's default


def test_plan_power_noise_from_a_missing_sweep_is_an_error(capsys):
    from attnres.cli import main

    assert main(["plan", "demo", "--power", "--noise-from", "nosuch", "--results-root", "/nonexistent"]) == 2
    err = capsys.readouterr().err
    assert "nosuch" in err and "attnres collect nosuch" in err and "Traceback" not in err
