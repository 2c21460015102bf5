"""Recovery of known truths: the multiplier without noise, and the parameters of the saturating and
Chinchilla-allocation (isoFLOP) fits on data generated from them; hyperparameter selection. (The
interval's coverage under realistic noise: tests/test_multiplier_coverage.py.)"""

from __future__ import annotations

import numpy as np
import pytest

from analysis.fits import fit_saturating
from analysis.isoflop import fit_isoflop
from analysis.laws import ChinchillaLaw, SaturatingPowerLaw
from analysis.load import Observations, observations_from_runs
from analysis.pipeline import AnalysisOptions, analyse
from analysis.synthetic import SyntheticSweep, synthetic_frames

TRUE_M = 1.25


def _obs(n, d, c, loss) -> Observations:
    k = len(loss)
    return Observations(arm=np.full(k, "all"), size=np.array([f"{x:.4g}" for x in c]),
                        run=np.array([f"r{i}" for i in range(k)]), seed=np.zeros(k, dtype=np.int64),
                        n_params=np.asarray(n, float), tokens=np.asarray(d, float), compute=np.asarray(c, float),
                        loss=np.asarray(loss, float))


def test_point_estimate_is_unbiased_without_noise():
    """Noise-free power-law sweeps where Block truly needs 1/1.25 and Full 1/1.4 of the baseline's compute:
    the shift estimate, every per-size value and the separate fits give the truth; so does the
    saturating form on a 6-size ladder (it needs 6)."""
    spec = SyntheticSweep(multipliers={"baseline": 1.0, "block": TRUE_M, "full": 1.4}, noise=0.0, depths=(2, 3, 4, 5, 6, 7))
    runs, _ = synthetic_frames(spec, with_curves=False)
    a = analyse(observations_from_runs(runs), AnalysisOptions(forms=("shift", "paper", "saturating"), n_boot=50))
    for v, m in (("block", TRUE_M), ("full", 1.4)):
        e = a.shift.arms[v]
        assert e.estimate == pytest.approx(m, rel=1e-6), v
        for p in e.per_size:
            assert p.estimate == pytest.approx(m, rel=1e-6)
        assert a.headline[v].form == "shift" and a.headline[v].value.estimate == pytest.approx(m, rel=1e-6)
        for form in ("paper", "saturating"):
            vm = a.multipliers[form][v]
            assert vm.at_largest.estimate == pytest.approx(m, rel=1e-4), (form, v)
            np.testing.assert_allclose(vm.curve.estimate, m, rtol=1e-4)


def test_saturating_needs_six_sizes():
    """With 4 sizes the floor E is not identified (1 residual dof); the form is skipped with the reason."""
    spec = SyntheticSweep(multipliers={"baseline": 1.0, "block": TRUE_M}, noise=0.002)
    runs, _ = synthetic_frames(spec, with_curves=False)
    a = analyse(observations_from_runs(runs), AnalysisOptions(forms=("shift", "saturating"), n_boot=20))
    assert "saturating" not in a.curve_fits
    assert "needs 6" in a.skipped["saturating/block"] and "--saturating-floor" in a.skipped["saturating/block"]
    b = analyse(observations_from_runs(runs), AnalysisOptions(forms=("saturating",), saturating_floor=0.5))
    assert b.curve_fits["saturating"]["block"].law.E == 0.5 and "block" in b.multipliers["saturating"]


def test_saturating_fit_recovers_known_parameters():
    truth = SaturatingPowerLaw(E=1.8, A=1.2, alpha=0.3)
    c = np.geomspace(1e-3, 1e2, 8)
    rng = np.random.default_rng(0)
    loss = truth.loss(c) * np.exp(rng.normal(0.0, 0.001, c.size))
    law = fit_saturating(_obs(c * np.nan, c * np.nan, c, loss)).law
    assert law.E == pytest.approx(truth.E, rel=0.01)
    assert abs(law.alpha - truth.alpha) <= 0.01
    assert law.A == pytest.approx(truth.A, rel=0.02)


def _isoflop_grid(law: ChinchillaLaw, seed: int, centres: np.ndarray, span: float = 30.0, n_sizes: int = 13,
                  noise: float = 5e-4) -> Observations:
    rng = np.random.default_rng(seed)
    rows = []
    for c, centre in zip(np.geomspace(1e19, 1e22, len(centres)), centres):
        n_opt, _ = law.optimal_allocation(c)
        for k in np.geomspace(1 / span, span, n_sizes) * centre:
            n = n_opt * k
            d = c / (6 * n)
            rows.append((n, d, c, float(law.loss(n, d)) * np.exp(rng.normal(0.0, noise))))
    n, d, c, loss = map(np.array, zip(*rows))
    return _obs(n, d, c, loss)


def test_isoflop_recovers_the_allocation_exponents():
    """Hoffmann et al.'s law: N* ∝ C^(beta / (alpha + beta)) = C^0.452 under C = 6 N D. Size grids
    deliberately off-centre (from 1/4 to 4 x N*) and wide (1/30 to 30 x their centre). Without noise
    the minima must be unbiased. With 0.05% loss noise the spline's argmin follows the noise of the
    3 sizes around the minimum (13 sizes x1.76 apart): over 200 draws its exponent error has rms 0.009
    (the former 5-point quadratic: 0.002), so one draw cannot carry a 0.01 bound; 20 draws can."""
    law = ChinchillaLaw(E=1.69, A=406.4, B=410.7, alpha=0.34, beta=0.28)
    centres = np.geomspace(0.25, 4, 6)
    fit = fit_isoflop(_isoflop_grid(law, 0, centres, noise=0.0))
    assert [b.status for b in fit.budgets] == ["ok"] * 6
    assert abs(fit.n_opt.exponent - law.n_opt_exponent) < 0.002
    assert abs(fit.d_opt.exponent - (1 - law.n_opt_exponent)) < 0.002
    for b in fit.budgets:  # each minimum at the true optimum (to the grid's step, 1/25 of a gap) and its loss
        n_opt, d_opt = law.optimal_allocation(b.compute)
        assert abs(np.log(b.n_opt / n_opt)) < 0.02
        assert b.loss_opt == pytest.approx(float(law.loss(n_opt, d_opt)), rel=1e-4)
    noisy = [fit_isoflop(_isoflop_grid(law, seed, centres)) for seed in range(20)]
    err = np.array([f.n_opt.exponent - law.n_opt_exponent for f in noisy])
    print(f"\nN* exponent error (truth {law.n_opt_exponent:.4f}): noise-free {fit.n_opt.exponent - law.n_opt_exponent:+.4f}; "
          f"20 noisy draws mean {err.mean():+.4f}, rms {np.sqrt(np.mean(err ** 2)):.4f}, max |err| {np.abs(err).max():.4f}")
    assert abs(err.mean()) < 0.005 and np.sqrt(np.mean(err ** 2)) < 0.012
    for b in noisy[0].budgets:  # each noisy minimum near the true optimum and its loss
        n_opt, d_opt = law.optimal_allocation(b.compute)
        assert b.n_opt == pytest.approx(n_opt, rel=0.15)
        assert b.loss_opt == pytest.approx(float(law.loss(n_opt, d_opt)), rel=2e-3)


def test_isoflop_rejects_minima_at_the_edge_of_the_grid():
    law = ChinchillaLaw(E=1.69, A=406.4, B=410.7, alpha=0.34, beta=0.28)
    # budgets 0 and 1: every size far above N* (minimum at the smallest size), the rest centred
    obs = _isoflop_grid(law, 1, np.array([40.0, 40.0, 1.0, 1.0, 1.0]), span=4.0, n_sizes=7)
    fit = fit_isoflop(obs)
    assert [b.status for b in fit.budgets] == ["edge", "edge", "ok", "ok", "ok"]
    assert len(fit.accepted) == 3 and fit.n_opt is not None


def test_hyperparameter_sweep_picks_the_best_lr_and_flags_edges():
    """Per-variant optimum lr known: the baseline's in the middle of the grid, Block's at its top edge."""
    from analysis.load import RunTable
    from analysis.select import select_runs

    lrs = (1e-3, 3e-3, 1e-2)
    spec = SyntheticSweep(multipliers={"baseline": 1.0, "block": TRUE_M}, lrs=lrs, noise=0.0,
                          lr_opt={"baseline": 3e-3, "block": 1e-2})
    runs, _ = synthetic_frames(spec, with_curves=False)
    sel = select_runs(RunTable(frame=runs, path=_fake_path(), axes=("lr",)))
    assert sel.hparam_axes == ("lr",) and sel.data_axes == ()
    winners = {(c.variant, c.size): c for c in sel.choices}
    for (variant, _size), c in winners.items():
        assert c.winner["lr"] == pytest.approx(spec.lr_opt[variant])
        assert c.grid["lr"] == list(lrs)
        assert c.at_edge == (("lr",) if variant == "block" else ())
    assert set(sel.runs["lr"]) == {3e-3, 1e-2} and len(sel.runs) == 2 * 4 and sel.n_not_selected == 16
    # a diverged run at a larger lr brackets the optimum: no longer at the edge
    runs2 = runs.copy()
    extra = runs2[(runs2["variant"] == "block") & (runs2["lr"] == 1e-2)].copy()
    extra["run_id"] += "-lr3e-2"
    extra["lr"] = extra["axis_lr"] = 3e-2
    extra["status"] = "diverged"
    extra["final_val_loss"] = np.nan
    import pandas as pd

    sel2 = select_runs(RunTable(frame=pd.concat([runs2, extra], ignore_index=True), path=_fake_path(), axes=("lr",)))
    assert all(c.at_edge == () for c in sel2.choices)
    assert {e.status for e in sel2.excluded} == {"diverged"} and len(sel2.excluded) == 4


def test_token_budget_axis_is_data_not_a_choice():
    from analysis.load import RunTable
    from analysis.select import select_runs

    spec = SyntheticSweep(multipliers={"baseline": 1.0}, budgets=(1e-8, 1e-7), depths=(2, 3, 4), noise=0.0)
    runs, _ = synthetic_frames(spec, with_curves=False)
    sel = select_runs(RunTable(frame=runs, path=_fake_path(), axes=("compute",)))
    assert sel.data_axes == ("compute",) and sel.hparam_axes == () and len(sel.runs) == len(runs)


def _fake_path():
    from pathlib import Path

    return Path("results/synthetic/runs.parquet")


def test_bootstrap_resamples_units_jointly_not_checkpoints(tmp_path):
    """With several checkpoints per run (--checkpoints), a replicate draws whole (size, seed) units:
    every checkpoint of a run carries the same count, the arms of one unit carry the same count (they
    are paired), and each arm keeps its number of runs."""
    from analysis.bootstrap import resample_units
    from analysis.load import load_curves, observations_from_curves
    from analysis.pipeline import analyse_results
    from analysis.synthetic import write_synthetic

    spec = SyntheticSweep(sweep="ck", multipliers={"baseline": 1.0, "block": TRUE_M}, depths=(2, 3, 4), n_evals=6)
    write_synthetic(spec, tmp_path / "ck")
    runs, _ = synthetic_frames(spec, with_curves=False)
    obs = observations_from_curves(load_curves(tmp_path / "ck", required=True), runs, min_fraction=0.5)
    assert len(obs) == 6 * 4 and len(set(obs.run)) == 6  # evaluations at 50%..100% of 6 runs
    res = resample_units(obs, 200, seed=1)
    for run in set(obs.run):
        rows = res.weights[:, obs.run == run]
        assert (rows == rows[:, :1]).all()
    for size in set(obs.size):  # one seed: a unit is a size, drawn for both arms at once
        rows = res.weights[:, obs.size == size]
        assert (rows == rows[:, :1]).all()
    for v in obs.arms:
        m = obs.arm == v
        per_run = res.weights[:, m][:, np.unique(obs.run[m], return_index=True)[1]]
        assert (per_run.sum(1) == 3).all()
    a = analyse_results(tmp_path / "ck", AnalysisOptions(n_boot=100, forms=("chinchilla",), checkpoints=True,
                                                         checkpoint_min_fraction=0.5, chinchilla_n_starts=4))
    assert set(a.chinchilla) == {"baseline", "block"} and a.chinchilla["block"].n_points == 12
    assert a.chinchilla["block"].draws is not None and len(a.chinchilla["block"].draws.alpha) == 100
    assert "jointly across arms" in a.bootstrap_unit and "clustered (4 checkpoints per run)" in a.bootstrap_unit
    assert any("cosine" in w for w in a.warnings)  # the synthetic runs use a cosine schedule


def _lr_sweep(**kw):
    from analysis.load import RunTable
    from analysis.select import select_runs

    spec = SyntheticSweep(multipliers={"baseline": 1.0, "block": TRUE_M}, lrs=(1e-3, 3e-3, 1e-2), seeds=(0, 1, 2),
                          noise=0.0005, lr_opt={"baseline": 3e-3, "block": 1e-2}, **kw.pop("spec", {}))
    runs, _ = synthetic_frames(spec, with_curves=False)
    return runs, select_runs(RunTable(frame=runs, path=_fake_path(), axes=("lr",)), **kw)


def test_lr_is_chosen_on_one_seed_and_measured_on_the_others():
    runs, sel = _lr_sweep()
    assert sel.protocol == "per-arm" and sel.selection_seed == 0 and not sel.measured_on_selection_seed
    assert set(sel.runs["seed"]) == {1, 2}  # seed 0 only chose
    for v, lr in (("baseline", 3e-3), ("block", 1e-2)):
        assert set(sel.runs[sel.runs["variant"] == v]["lr"]) == {lr}
    assert len(sel.runs) == 2 * 4 * 2 and sel.n_not_selected == len(runs) - 16


def test_baseline_protocol_gives_every_arm_the_baselines_lr():
    """The paper's protocol: every arm at the baseline's tuned value (chosen on seed 0)."""
    _, sel = _lr_sweep(protocol="baseline")
    assert set(sel.runs["lr"]) == {3e-3} and set(sel.runs["seed"]) == {1, 2}
    assert {c.chosen_by for c in sel.choices} == {"baseline"}


def test_choosing_on_other_seeds_removes_the_winners_curse():
    """The lr does not matter (flat), runs differ by noise only: picking the best of 3 values and
    measuring it on the same runs biases the loss low; measuring on the other seeds does not."""
    from analysis.load import RunTable
    from analysis.select import select_runs

    spec = SyntheticSweep(multipliers={"baseline": 1.0}, lrs=(1e-3, 3e-3, 1e-2), seeds=tuple(range(6)),
                          noise=0.005, lr_curvature=0.0, depths=(2, 3, 4, 5))
    runs, _ = synthetic_frames(spec, with_curves=False)
    truth = runs.groupby("size")["final_val_loss"].mean()  # every run of a size has the same expected loss
    ours = select_runs(RunTable(frame=runs, path=_fake_path(), axes=("lr",)))
    same = select_runs(RunTable(frame=runs[runs["seed"] == 0], path=_fake_path(), axes=("lr",)))
    bias_ours = float((ours.runs.groupby("size")["final_val_loss"].mean() - truth).mean())
    bias_same = float((same.runs.set_index("size")["final_val_loss"] - truth).mean())
    print(f"\nbias of the selected loss: measured on other seeds {bias_ours:+.4f}, on the same runs {bias_same:+.4f}")
    assert same.measured_on_selection_seed and bias_same < -0.005
    assert abs(bias_ours) < 0.25 * abs(bias_same)  # what is left is the noise of the mean (~0.005 nats)


def test_device_time_multiplier_from_measured_throughput():
    """m_time from first principles: the baseline's time to the arm's loss over the arm's time, where
    the baseline needs m times the arm's FLOPs and each arm runs at its own FLOP/s."""
    import pandas as pd

    from analysis.devtime import device_time
    from analysis.multiplier import Interval

    rows = []
    for size, fpt_b, tps_b, tps_a in (("d2", 1e5, 5e4, 4e4), ("d3", 2e5, 3e4, 2.7e4)):
        for seed, jitter in ((0, 1.0), (1, 1.1), (2, 0.9)):
            rows.append({"arm": "baseline", "cell": size, "seed": seed, "flops_per_token": fpt_b,
                         "tokens_per_s": tps_b * jitter, "device": "cpu:test"})
            rows.append({"arm": "block", "cell": size, "seed": seed, "flops_per_token": 1.02 * fpt_b,
                         "tokens_per_s": tps_a * jitter, "device": "cpu:test"})
    m = Interval(1.2, 1.1, 1.3, 0.9, "shift")
    dt = device_time(pd.DataFrame(rows), "block", "baseline", m)
    expected = []
    for _size, fpt_b, tps_b, tps_a in (("d2", 1e5, 5e4, 4e4), ("d3", 2e5, 3e4, 2.7e4)):
        arm_flops = 1e15  # any compute C of the arm
        t_arm = arm_flops / (1.02 * fpt_b * tps_a)
        t_base = m.estimate * arm_flops / (fpt_b * tps_b)
        expected.append(t_base / t_arm)
    assert dt.multiplier.estimate == pytest.approx(float(np.exp(np.mean(np.log(expected)))), rel=1e-12)
    assert [p.size for p in dt.per_size] == ["d2", "d3"] and dt.device == "cpu:test"
    assert dt.multiplier.low == pytest.approx(1.1 * dt.time_factor) and dt.multiplier.high == pytest.approx(1.3 * dt.time_factor)
