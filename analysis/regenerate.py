"""Everything derived under results/<sweep>/ from the parquet alone (no training).

    r = regenerate(Path("results/demo"))     # fits.json, figures/*.png|svg, report.md

The last step of the pipeline, kept apart so that the fitting modules never import the figure and
report modules (which read an Analysis).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from analysis.figures import write_figures
from analysis.pipeline import Analysis, AnalysisOptions, analyse_results
from analysis.report import write_report
from analysis.serialize import write_fits


@dataclass(frozen=True)
class Regenerated:
    results_dir: Path
    fits: Path
    figures: list[Path]
    report: Path
    elapsed_s: float
    analysis: Analysis


def regenerate(results_dir: Path, options: AnalysisOptions | None = None) -> Regenerated:
    t0 = time.perf_counter()
    results_dir = Path(results_dir)
    a = analyse_results(results_dir, options or AnalysisOptions())
    fits = write_fits(a, results_dir / "fits.json")
    figs = write_figures(a, results_dir / "figures")
    report = write_report(a, figs, results_dir / "report.md")
    return Regenerated(results_dir, fits, figs, report, time.perf_counter() - t0, a)
