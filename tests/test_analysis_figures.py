"""Figures and report regenerate from parquet alone, byte for byte; the synthetic parquet used here
follows docs/SCHEMAS.md exactly (checked against the document itself)."""

from __future__ import annotations

import re
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from analysis.figures import FIGURES, isoflop_curves, save
from analysis.pipeline import AnalysisOptions, analyse_results
from analysis.regenerate import regenerate
from analysis.synthetic import SyntheticSweep, write_synthetic

SCHEMAS = Path(__file__).resolve().parents[1] / "docs" / "SCHEMAS.md"
FAST = AnalysisOptions(n_boot=50, chinchilla_n_starts=8)
_TYPES = {"string": pa.string(), "int64": pa.int64(), "float64": pa.float64(), "Int64 (nullable)": pa.int64(),
          "list<float64>": pa.list_(pa.float64()), "list<list<float64>>": pa.list_(pa.list_(pa.float64()))}


def _documented_columns(section: str) -> dict[str, pa.DataType]:
    """Column -> arrow type from a table of docs/SCHEMAS.md ("## results/<sweep>/<section>")."""
    text = SCHEMAS.read_text()
    body = text.split(f"/{section} ", 1)[1].split("\n## ", 1)[0]
    cols: dict[str, pa.DataType] = {}
    for line in body.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 2 or cells[0] in ("column", "---") or "<name>" in cells[0]:
            continue
        names = [n.strip() for n in cells[0].split(",")]
        types = [t.strip() for t in cells[1].split(",")] if "," in cells[1] and "list" not in cells[1] else [cells[1]]
        types = types if len(types) == len(names) else types * len(names)
        for n, t in zip(names, types):
            cols[n] = _TYPES[t]
    return cols


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("results") / "tiny"
    write_synthetic(SyntheticSweep(sweep="tiny", multipliers={"baseline": 1.0, "full": 1.3}, depths=(2, 3, 4)), d)
    return d


def test_synthetic_parquet_follows_the_documented_schema(sweep_dir):
    for name in ("runs.parquet", "curves.parquet"):
        schema = pq.read_schema(sweep_dir / name)
        documented = _documented_columns(name)
        assert len(documented) > 10
        actual = {f.name: f.type for f in schema if not f.name.startswith("axis_")}
        assert actual == documented, name


def test_regenerating_gives_identical_files(sweep_dir, capsys):
    """First through the CLI (`attnres report DIR`), then through regenerate(): same options, same bytes."""
    from attnres.cli import main

    assert main(["report", str(sweep_dir), "--n-boot", "50", "--n-starts", "8"]) == 0
    assert "report.md" in capsys.readouterr().out
    files = sorted(p for p in sweep_dir.rglob("*") if p.is_file() and p.suffix != ".parquet")
    before = {p: p.read_bytes() for p in files}
    names = {p.name for p in files if p.parent.name == "figures"}
    expected = {f"{n}.{ext}" for n in ("loss_vs_compute", "multiplier_vs_compute", "training_curves",
                                       "depth_attention", "layer_rms") for ext in ("png", "svg")}
    assert names == expected  # no isoflop figure: one size per compute budget
    assert {"fits.json", "report.md"} <= {p.name for p in files}
    second = regenerate(sweep_dir, FAST)
    assert sorted(p for p in sweep_dir.rglob("*") if p.is_file() and p.suffix != ".parquet") == files
    for p in files:
        assert p.read_bytes() == before[p], f"{p.name} changed on regeneration"
    assert second.elapsed_s < 60
    svg = (sweep_dir / "figures" / "loss_vs_compute.svg").read_text()
    assert "<dc:date>" not in svg and re.search(r"\d{4}-\d{2}-\d{2}T", svg) is None


def test_report_links_the_figures_relatively(sweep_dir):
    if not (sweep_dir / "report.md").exists():  # when run on its own
        regenerate(sweep_dir, FAST)
    report = (sweep_dir / "report.md").read_text()
    links = re.findall(r"\]\(([^)]+)\)", report)
    assert links and all(not Path(x).is_absolute() for x in links)
    for x in links:
        assert (sweep_dir / x).is_file(), x
    assert "compute multiplier" in report.lower() and "90% CI" in report


def test_isoflop_figure_only_for_isoflop_sweeps(sweep_dir, tmp_path):
    a = analyse_results(sweep_dir, AnalysisOptions(n_boot=0, forms=("paper",)))
    assert isoflop_curves(a) is None
    iso = tmp_path / "iso"
    spec = SyntheticSweep(sweep="iso", multipliers={"baseline": 1.0}, budgets=(3e-7, 1e-6, 3e-6), depths=(2, 3, 4, 5, 6),
                          noise=0.0)
    write_synthetic(spec, iso)
    b = analyse_results(iso, AnalysisOptions(n_boot=0, forms=("isoflop",)))
    fig = isoflop_curves(b)
    assert fig is not None
    assert {p.suffix for p in save(fig, iso / "figures", "isoflop")} == {".png", ".svg"}
    assert set(FIGURES) >= {"isoflop", "depth_attention", "layer_rms", "training_curves"}
