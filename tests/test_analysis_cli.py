"""`attnres fit | figures | report`: JSON carries every fitted parameter, input errors are messages
(not tracebacks) that name the file or column and the fix, and `--table` fits foreign data."""

from __future__ import annotations

import dataclasses
import json
from importlib import resources

import numpy as np
import pytest

from analysis.pipeline import AnalysisOptions, analyse_results
from analysis.synthetic import SyntheticSweep, synthetic_frames, write_results
from attnres.cli import build_parser, main

FAST = ["--n-boot", "50", "--n-starts", "8"]


def _run(capsys, argv: list[str]) -> tuple[int, str, str]:
    rc = main(argv)
    out, err = capsys.readouterr()
    return rc, out, err


def _laws(a) -> list[tuple[str, str, object]]:
    """(JSON path prefix, variant, law or params) of every fit in an Analysis."""
    items = []
    for form, fits in a.curve_fits.items():
        items += [(f"fits.{form}.{v}.params", v, f.law) for v, f in fits.items()]
    items += [(f"fits.chinchilla.{v}.params", v, f.law) for v, f in a.chinchilla.items()]
    for v, f in a.isoflop.items():
        if f.n_opt is not None:
            items += [(f"fits.isoflop_allocation.{v}.n_opt", v, f.n_opt), (f"fits.isoflop_allocation.{v}.d_opt", v, f.d_opt)]
    return items


def _get(doc: dict, dotted: str):
    for key in dotted.split("."):
        doc = doc[key]
    return doc


@pytest.mark.parametrize("design", ["ladder", "isoflop"])
def test_fit_json_carries_every_fitted_parameter(design, tmp_path, capsys):
    if design == "ladder":  # 3 arms x 6 sizes, 2 seeds: shift, paper and saturating fits
        spec = SyntheticSweep(sweep="demo", seeds=(0, 1), depths=(2, 3, 4, 5, 6, 7))
    else:  # isoFLOP grid: chinchilla and isoflop fits
        spec = SyntheticSweep(sweep="demo", multipliers={"baseline": 1.0, "block": 1.25}, depths=(2, 3, 4, 5, 6),
                              budgets=(3e-7, 1e-6, 3e-6))
    runs, _ = synthetic_frames(spec, with_curves=False)
    write_results(runs, None, tmp_path / "demo")
    rc, out, err = _run(capsys, ["fit", "demo", "--results-root", str(tmp_path), "--json", *FAST])
    assert rc == 0, err
    doc = json.loads(out)
    assert json.loads((tmp_path / "demo" / "fits.json").read_text()) == doc
    a = analyse_results(tmp_path / "demo", AnalysisOptions(n_boot=50, chinchilla_n_starts=8))
    laws = _laws(a)
    forms = {"ladder": {"paper", "saturating"},
             "isoflop": {"isoflop", "chinchilla", "isoflop_allocation"}}[design]
    assert forms <= set(doc["fits"])
    n_checked = 0
    for prefix, _variant, law in laws:
        for field in dataclasses.fields(law):
            value = getattr(law, field.name)
            if value is None:
                continue
            got = _get(doc, f"{prefix}.{field.name}")
            assert got == pytest.approx(float(value), rel=1e-8), f"{prefix}.{field.name}"
            n_checked += 1
    # ladder: paper 3 x (A, alpha) + saturating 3 x (E, A, alpha) = 15;
    # isoflop: frontier 2 x (A, alpha) + chinchilla 2 x 5 + allocations 2 x 2 x 2 = 22
    assert n_checked == (15 if design == "ladder" else 22)
    assert doc["headline_form"] == a.headline_form == ("shift" if design == "ladder" else "isoflop")
    for v, h in a.headline.items():
        got = doc["headline"][v]
        for key in ("estimate", "low", "high", "level", "log_estimate", "half_width_log"):
            want = float(getattr(h.value, key, getattr(h, key, None)))
            assert (got[key] is None and not np.isfinite(want)) or got[key] == pytest.approx(want, rel=1e-8), key
        assert got["form"] == a.headline_form and got["method"] == h.method and got["method"]
    if design == "ladder":  # the shift model's curve and per-arm estimates are all in fits.json
        assert doc["shift"]["curve"]["coef"] == pytest.approx(list(a.shift.curve.coef), rel=1e-8)
        for v, e in a.shift.arms.items():
            assert doc["shift"]["arms"][v]["log_estimate"] == pytest.approx(e.log_estimate, rel=1e-8)
            assert len(doc["shift"]["arms"][v]["per_size"]) == 6


def test_fit_table_paper_table2(capsys):
    table = resources.files("analysis") / "reference" / "paper_table2.csv"
    rc, out, err = _run(capsys, ["fit", "--table", str(table), "--c-col", "compute_pfdays", "--loss-col", "val_loss",
                                 "--arm-col", "variant", "--size-col", "size", "--n-col", "params_active",
                                 "--d-col", "tokens", "--compute-unit", "PF-days", "--forms", "paper",
                                 "--headline-form", "paper", "--json"])
    assert rc == 0, err
    doc = json.loads(out)
    published = {"baseline": (1.891, 0.057), "block": (1.870, 0.058), "full": (1.865, 0.057)}
    for v, (a_pub, alpha_pub) in published.items():
        p = doc["fits"]["paper"][v]["params"]
        assert abs(p["A"] - a_pub) < 0.01 and abs(p["alpha"] - alpha_pub) < 0.001
    assert 1.15 <= doc["headline"]["block"]["estimate"] <= 1.35
    assert doc["headline"]["block"]["form"] == "paper" and doc["compute_unit"] == "PF-days"


def test_missing_results_name_the_file_and_the_fix(tmp_path, capsys):
    rc, out, err = _run(capsys, ["fit", "nosuch", "--results-root", str(tmp_path)])
    assert rc == 2 and "Traceback" not in err
    assert "runs.parquet not found" in err and "attnres collect nosuch" in err


def test_missing_column_names_the_column(tmp_path, capsys):
    runs, _ = synthetic_frames(SyntheticSweep(sweep="demo"), with_curves=False)
    d = tmp_path / "demo"
    d.mkdir()
    runs.drop(columns=["compute_pfdays"]).to_parquet(d / "runs.parquet")
    rc, out, err = _run(capsys, ["figures", "demo", "--results-root", str(tmp_path)])
    assert rc == 2 and "compute_pfdays" in err and "attnres collect demo" in err
    rc, out, err = _run(capsys, ["fit", "--table", str(d / "runs.parquet"), "--loss-col", "final_val_loss",
                                 "--c-col", "compute"])
    assert rc == 2 and "'compute'" in err and "compute_flops" in err  # lists the columns it does have


def test_no_finished_runs_is_a_message(tmp_path, capsys):
    runs, _ = synthetic_frames(SyntheticSweep(sweep="demo"), with_curves=False)
    runs["status"] = "running"
    runs["final_val_loss"] = np.nan
    write_results(runs, None, tmp_path / "demo")
    rc, out, err = _run(capsys, ["report", "demo", "--results-root", str(tmp_path)])
    assert rc == 2 and "no finished run" in err and "attnres status demo" in err


def test_figures_command_without_curves(tmp_path, capsys):
    """curves.parquet is optional: the fit figures are drawn, the training-curve ones skipped."""
    runs, _ = synthetic_frames(SyntheticSweep(sweep="demo", multipliers={"baseline": 1.0, "block": 1.25},
                                              depths=(2, 3, 4)), with_curves=False)
    write_results(runs, None, tmp_path / "demo")
    rc, out, err = _run(capsys, ["figures", str(tmp_path / "demo"), "--n-boot", "20", "--forms", "shift,paper"])
    assert rc == 0, err
    made = sorted(p.name for p in (tmp_path / "demo" / "figures").iterdir())
    assert made == ["loss_vs_compute.png", "loss_vs_compute.svg", "multiplier_vs_compute.png",
                    "multiplier_vs_compute.svg"]


def test_subcommands_registered_with_help(capsys):
    parser = build_parser()
    for cmd in ("fit", "figures", "report"):
        with pytest.raises(SystemExit) as e:
            parser.parse_args([cmd, "--help"])
        assert e.value.code == 0
        assert "--results-root" in capsys.readouterr().out


def test_ci_including_one_is_warned(tmp_path, capsys):
    """No true advantage (multiplier 1) and 0.5% noise per run: the headline interval includes 1 and the
    output says so."""
    runs, _ = synthetic_frames(SyntheticSweep(sweep="demo", multipliers={"baseline": 1.0, "block": 1.0}, noise=0.005,
                                              random_seed=3), with_curves=False)
    write_results(runs, None, tmp_path / "demo")
    rc, out, err = _run(capsys, ["fit", "demo", "--results-root", str(tmp_path)])
    assert rc == 0
    doc = json.loads((tmp_path / "demo" / "fits.json").read_text())
    iv = doc["headline"]["block"]
    assert iv["low"] <= 1.0 <= iv["high"] and iv["includes_one"]
    assert "includes 1" in out and any("includes 1" in w for w in doc["warnings"])


def test_seed_spread_matches_the_data(tmp_path):
    runs, _ = synthetic_frames(SyntheticSweep(sweep="demo", seeds=(0, 1, 2), noise=0.004), with_curves=False)
    write_results(runs, None, tmp_path / "demo")
    a = analyse_results(tmp_path / "demo", AnalysisOptions(n_boot=0, forms=("paper",)))
    expected = runs.groupby(["variant", "size"])["final_val_loss"].std(ddof=1)
    assert len(a.seed_spread) == len(expected) == 12
    for s in a.seed_spread:
        assert s.std == pytest.approx(expected[(s.variant, s.size)], rel=1e-9) and s.n_seeds == 3


def test_leave_largest_out_is_exact_on_an_exact_power_law(tmp_path):
    runs, _ = synthetic_frames(SyntheticSweep(sweep="demo", noise=0.0), with_curves=False)
    write_results(runs, None, tmp_path / "demo")
    a = analyse_results(tmp_path / "demo", AnalysisOptions(n_boot=0, forms=("paper",)))
    assert {c.variant for c in a.extrapolation} == {"baseline", "block", "full"}
    for c in a.extrapolation:
        assert c.held_out == "d5" and abs(c.error) < 1e-9
    # a curved truth (irreducible loss) extrapolated with the pure power law: the check sees it
    runs2, _ = synthetic_frames(SyntheticSweep(sweep="demo", noise=0.0, E=2.0, A=0.5, alpha=0.3), with_curves=False)
    write_results(runs2, None, tmp_path / "curved")
    b = analyse_results(tmp_path / "curved", AnalysisOptions(n_boot=0, forms=("paper",)))
    assert all(c.error < -1e-3 for c in b.extrapolation)  # a power law without floor undershoots
