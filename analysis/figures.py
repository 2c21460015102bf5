"""Figures from an Analysis (and curves.parquet): PNG and SVG, byte-identical when regenerated.

    paths = write_figures(analysis, Path("results/demo/figures"))

    loss_vs_compute        final loss vs compute: every run (seeds) as a dot, size means as markers, the
                           shared baseline curve and each arm's shift (the paper's Figure 4, paired)
    multiplier_vs_compute  per-size paired multipliers with intervals around the shift estimate and its
                           band; the separate fits' m(C) dashed
    training_curves        validation loss vs tokens, one panel per size
    isoflop                loss vs N per compute budget with the local fits at the minima
                           (only when the sweep has several sizes per budget)
    depth_attention        depth-attention weights alpha_{i->l} of the largest AttnRes models at their
                           last evaluation (the paper's Figure 8)
    layer_rms              RMS of each sublayer's output vs depth (the paper's Figure 5)

Determinism: figures are built on matplotlib's object API with the Agg canvas (no pyplot, no global
backend switch), fixed size and dpi, SVG ids salted with a constant (svg.hashsalt) and no dates in the
metadata, so the same inputs give the same bytes.
"""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from analysis.pipeline import Analysis
from records.rundir import atomic_write_bytes

DPI = 150
RC = {
    "svg.hashsalt": "attnres-scaling",  # fixed ids in SVG output
    "svg.fonttype": "path",  # glyphs as paths: no dependence on the viewer's fonts
    "font.size": 10,
    "axes.titlesize": 11,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "legend.fontsize": 9,
    "legend.framealpha": 0.9,
}
PNG_METADATA = {"Software": None}  # no library version in the file
SVG_METADATA = {"Date": None, "Creator": None}

LABELS = {"baseline": "Baseline", "block": "Block AttnRes", "full": "Full AttnRes"}
COLORS = {"baseline": "#444444", "block": "#1f77b4", "full": "#d62728"}
_EXTRA = ("#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf", "#bcbd22")
MARKERS = {"baseline": "o", "block": "s", "full": "^"}


def label(variant: str) -> str:
    return LABELS.get(variant, variant)


def color(variant: str, variants: list[str]) -> str:
    if variant in COLORS:
        return COLORS[variant]
    others = [v for v in variants if v not in COLORS]
    return _EXTRA[others.index(variant) % len(_EXTRA)] if variant in others else "#7f7f7f"


def _new(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save(fig: Figure, out_dir: Path, name: str) -> list[Path]:
    """Write ``name``.png and ``name``.svg deterministically and atomically (a file whose bytes would
    not change is left alone, mtime included); returns both paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    engine = fig.get_layout_engine()
    if engine is not None:  # lay out once, then freeze: each save would redo it (slow, same result)
        with matplotlib.rc_context(RC):
            engine.execute(fig)
        fig.set_layout_engine(None)  # None, not "none": a placeholder engine costs an extra draw per save
    with matplotlib.rc_context(RC):
        for ext, meta in (("png", PNG_METADATA), ("svg", SVG_METADATA)):
            path = out_dir / f"{name}.{ext}"
            buf = io.BytesIO()
            fig.savefig(buf, format=ext, dpi=DPI, metadata=meta)
            if not (path.exists() and path.read_bytes() == buf.getvalue()):
                atomic_write_bytes(path, buf.getvalue())
            paths.append(path)
    return paths


def _unit(a: Analysis) -> str:
    u = a.observations.compute_unit
    return "PFLOP/s-days" if u == "PF-days" else u


def _plain_log_axis(ax: Any, axis: str = "y") -> None:
    fmt = FuncFormatter(lambda v, _: f"{v:.3g}")
    target = ax.yaxis if axis == "y" else ax.xaxis
    target.set_major_formatter(fmt)
    target.set_minor_locator(LogLocator(subs=(2, 3, 5, 7)))
    target.set_minor_formatter(fmt if axis == "y" else NullFormatter())


def _cell_points(a: Analysis, variant: str) -> tuple[np.ndarray, np.ndarray]:
    """(compute, mean loss) per size of an arm, in size order."""
    o = a.observations.of(variant)
    cs, ls = [], []
    for s in o.size_order():
        m = o.size == s
        cs.append(o.compute[m].mean())
        ls.append(np.exp(np.log(o.loss[m]).mean()))
    return np.array(cs), np.array(ls)


def _law_text(fit: Any) -> str:
    law = fit.law
    e = f"{law.E:.3g} + " if hasattr(law, "E") else ""
    return f"L = {e}{law.A:.4g}·C^-{law.alpha:.4f}"


def _annotate(ax: Any, a: Analysis) -> None:
    lines = []
    for v, h in sorted(a.headline.items()):
        iv = h.value
        ci = f" [{iv.low:.2f}, {iv.high:.2f}]" if iv.has_interval else ""
        lines.append(f"{label(v)}: {iv.estimate:.2f}×{ci}")
    if lines:
        h = next(iter(a.headline.values()))
        where = "" if h.compute is None else f" at C = {h.compute:.3g}"
        ax.text(0.98, 0.97, f"multiplier over {label(a.options.baseline)}{where} ({h.value.level:.0%} CI),\n"
                f"{h.form}, {h.design}\n" + "\n".join(lines), transform=ax.transAxes, ha="right", va="top",
                fontsize=8.5, bbox={"boxstyle": "round", "fc": "white", "ec": "#999999", "alpha": 0.9})


def loss_vs_compute(a: Analysis) -> Figure | None:
    """Every run as a faint point (seeds), the per-size mean as a marker, and the fitted curves: for the
    shift headline the shared baseline curve g and each arm's g(log C + log m); else each arm's own fit."""
    form = a.headline_form
    fits = a.curve_fits.get(form)
    if form == "shift" and a.shift is None or form != "shift" and not fits:
        return None
    with matplotlib.rc_context(RC):
        fig = _new(7.0, 4.8)
        ax = fig.add_subplot()
        variants = a.arms
        c_all = a.observations.compute
        grid = np.geomspace(c_all.min() / 1.3, c_all.max() * 1.3, 200)
        for v in variants:
            col = color(v, variants)
            o = a.observations.of(v)
            ax.plot(o.compute, o.loss, ".", color=col, alpha=0.35, ms=4, zorder=2)
            if form == "isoflop":
                c, loss = (fits[v].compute, fits[v].loss) if v in fits else ([], [])
            else:
                c, loss = _cell_points(a, v)
            ax.plot(c, loss, MARKERS.get(v, "D"), color=col, ms=6, mec="black", mew=0.4, zorder=3)
            if form == "shift":
                curve = a.shift.curve
                if v == a.shift.baseline:
                    ax.plot(grid, np.exp(curve.log_loss(np.log(grid))), color=col, lw=1.6,
                            label=f"{label(v)}: g, {curve.rule.split(':')[0]}")
                elif v in a.shift.arms:
                    e = a.shift.arms[v]
                    ax.plot(grid, np.exp(curve.log_loss(np.log(grid) + e.log_estimate)), color=col, lw=1.6, ls="--",
                            label=f"{label(v)}: g(log C + log m), m = {e.estimate:.3f}")  # dashed: the baseline shows through
                else:
                    ax.plot([], [], MARKERS.get(v, "D"), color=col, label=f"{label(v)} (not paired)")
            elif v in fits:
                ax.plot(grid, fits[v].law.loss(grid), color=col, lw=1.6, label=f"{label(v)}: {_law_text(fits[v])}")
            else:
                ax.plot([], [], MARKERS.get(v, "D"), color=col, label=f"{label(v)} (not fitted)")
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())  # under a decade of C, minor labels collide
        ax.set_yscale("log")
        _plain_log_axis(ax, "y")
        ax.set_xlabel(f"training compute C ({_unit(a)})")
        ax.set_ylabel("final validation loss (nats/token)")
        ax.set_title(f"Loss vs compute ({a.sweep or a.source}): runs (dots), size means (markers), {form} fit",
                     fontsize=10)
        ax.legend(loc="lower left", fontsize=8)
        _annotate(ax, a)
    return fig


def multiplier_vs_compute(a: Analysis) -> Figure | None:
    """Per size, the paired multiplier with its interval, around the shift estimate and its band; the
    separate fits' m(C) (the paper's convention) dashed, for comparison."""
    shift = a.shift.arms if a.shift is not None else {}
    sep_form = next((f for f in ("paper", "isoflop", "saturating") if a.multipliers.get(f)), None)
    if not shift and sep_form is None:
        return None
    with matplotlib.rc_context(RC):
        fig = _new(7.0, 4.6)
        ax = fig.add_subplot()
        ax.axhline(1.0, color="black", lw=1.0, zorder=1)
        arms = sorted(set(shift) | set(a.multipliers.get(sep_form, {})))
        span = (a.observations.compute.min() / 1.5, a.observations.compute.max() * 1.5)
        for k, v in enumerate(arms):
            col = color(v, a.arms)
            if v in shift:
                e = shift[v]
                ax.fill_between(span, e.low, e.high, color=col, alpha=0.15, lw=0)
                ax.axhline(e.estimate, color=col, lw=1.6,
                           label=f"{label(v)}: shift {e.estimate:.2f} [{e.low:.2f}, {e.high:.2f}], {e.design}")
                x = np.array([p.compute_arm for p in e.per_size]) * (1.0 + 0.04 * k)  # arms side by side
                y = np.array([p.estimate for p in e.per_size])
                lo, hi = np.array([p.low for p in e.per_size]), np.array([p.high for p in e.per_size])
                yerr = np.vstack([y - lo, hi - y]) if np.isfinite(lo).all() else None
                ax.errorbar(x, y, yerr=yerr, fmt=MARKERS.get(v, "D"), color=col, ms=5, capsize=2, mfc="white",
                            label=f"{label(v)}: paired, per size")
            vm = a.multipliers.get(sep_form, {}).get(v) if sep_form else None
            if vm is not None:
                c = vm.curve
                ax.plot(c.compute, c.estimate, color=col, lw=1.0, ls="--", label=f"{label(v)}: separate {sep_form} fits m(C)")
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlim(*span)
        ax.set_xlabel(f"training compute C ({_unit(a)})")
        ax.set_ylabel(f"compute multiplier over {label(a.options.baseline)} (×)")
        level = next(iter(shift.values())).level if shift else a.options.ci_level
        ax.set_title(f"Effective-compute multiplier ({level:.0%} intervals; band: the shift estimate)", fontsize=10)
        ax.legend(loc="best", fontsize=7.5)
    return fig


def training_curves(a: Analysis) -> Figure | None:
    if a.curves is None or a.selection is None:
        return None
    runs = a.selection.runs
    df = a.curves.frame[a.curves.frame["run_id"].isin(set(runs["run_id"]))]
    if df.empty:
        return None
    size_of = dict(zip(runs["run_id"], runs["size"]))  # one panel per model size (budgets share it)
    order = list(dict.fromkeys(runs.sort_values(["params_non_embedding", "size"])["size"]))
    n = len(order)
    ncols = min(4, n)
    nrows = math.ceil(n / ncols)
    with matplotlib.rc_context(RC):
        fig = _new(3.2 * ncols + 0.4, 2.8 * nrows + 0.6)
        axes = fig.subplots(nrows, ncols, squeeze=False)
        for k, size in enumerate(order):
            ax = axes[k // ncols][k % ncols]
            for _, g in df[df["run_id"].map(size_of) == size].groupby("run_id", sort=True):
                v = str(g["arm"].iloc[0])
                g = g[np.isfinite(g["val_loss"].astype(float))]
                ax.plot(g["tokens"], g["val_loss"], color=color(v, a.arms), lw=1.3, alpha=0.85,
                        label=label(v))
            ax.set_xscale("log")
            ax.xaxis.set_minor_formatter(NullFormatter())
            ax.set_title(size, fontsize=10)
            ax.set_xlabel("training tokens")
            ax.set_ylabel("validation loss (nats/token)")
            handles, labels = ax.get_legend_handles_labels()
            uniq = dict(zip(labels, handles))
            ax.legend(uniq.values(), uniq.keys(), fontsize=7, loc="upper right")
        for k in range(n, nrows * ncols):
            axes[k // ncols][k % ncols].set_visible(False)
        fig.suptitle(f"Training curves per size ({a.sweep})")
    return fig


def isoflop_curves(a: Analysis) -> Figure | None:
    if not a.isoflop:
        return None
    variants = sorted(a.isoflop)
    with matplotlib.rc_context(RC):
        fig = _new(4.0 * len(variants) + 0.4, 3.8)
        axes = fig.subplots(1, len(variants), squeeze=False)[0]
        cmap = matplotlib.colormaps["viridis"]
        for ax, v in zip(axes, variants):
            f = a.isoflop[v]
            budgets = sorted(f.budgets, key=lambda b: b.compute)
            for i, b in enumerate(budgets):
                col = cmap(i / max(1, len(budgets) - 1))
                ok = b.status == "ok"
                ax.plot(b.n_params, b.loss, "o-" if ok else "o--", color=col, mfc=col if ok else "white", ms=4,
                        lw=1.0, label=f"C = {b.compute:.2g}" + ("" if ok else f" ({b.status})"))
                if ok:
                    ax.plot([b.n_opt], [b.loss_opt], "*", color=col, ms=11, mec="black", mew=0.5)
            ax.set_xscale("log")
            ax.xaxis.set_minor_formatter(NullFormatter())
            ax.set_xlabel("parameters N (non-embedding)")
            ax.set_ylabel("final validation loss (nats/token)")
            title = label(v)
            if f.n_opt is not None:
                title += f": N* ∝ C^{f.n_opt.exponent:.2f}"
            ax.set_title(title)
            ax.legend(fontsize=7)
        fig.suptitle(f"IsoFLOP curves ({_unit(a)}; stars: local-fit minima)")
    return fig


def _last_eval_of_largest(a: Analysis, column: str) -> dict[str, tuple[str, Any]]:
    """Per variant with ``column`` logged: (size label, value at the last evaluation of its largest run)."""
    if a.curves is None or a.selection is None:
        return {}
    runs = a.selection.runs
    df = a.curves.frame[a.curves.frame["run_id"].isin(set(runs["run_id"]))]
    df = df[df[column].notna()]
    out = {}
    for v, g in df.groupby("arm", sort=True):
        r = runs[runs["run_id"].isin(set(g["run_id"]))].sort_values(["params_non_embedding", "seed", "run_id"])
        if r.empty:
            continue
        best = r.iloc[-1] if r["seed"].nunique() == 1 else r[r["params_non_embedding"] == r["params_non_embedding"].max()].iloc[0]
        rows = g[g["run_id"] == best["run_id"]].sort_values("step")
        out[str(v)] = (str(best["size"]), rows[column].iloc[-1])
    return out


def depth_attention(a: Analysis) -> Figure | None:
    data = _last_eval_of_largest(a, "depth_alpha")
    if not data:
        return None
    variants = sorted(data)
    with matplotlib.rc_context(RC):
        fig = _new(4.2 * len(variants) + 0.8, 4.4)
        axes = fig.subplots(1, len(variants), squeeze=False)[0]
        im = None
        for ax, v in zip(axes, variants):
            size, rows = data[v]
            rows = [list(r) for r in rows]
            width = max(len(r) for r in rows)
            mat = np.full((len(rows), width), np.nan)
            for i, r in enumerate(rows):
                mat[i, : len(r)] = r
            im = ax.imshow(mat, cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto", interpolation="nearest")
            ax.set_title(f"{label(v)}, {size}")
            # Block AttnRes aggregates fewer sources than there are layers (its rows are shorter than the
            # L + 1 rows of targets); decided from the data, not from the arm's name
            blocks = width < len(rows)
            ax.set_xlabel("source (0 = embedding" + (", then blocks)" if blocks else ", then layers)"))
            ax.set_ylabel("target layer (last row = output)")
            n = len(rows)
            ticks = sorted({0, n - 1, *range(0, n, max(1, n // 6))})
            ax.set_yticks(ticks, [str(t) if t < n - 1 else "out" for t in ticks])
            ax.grid(False)
        fig.colorbar(im, ax=list(axes), label="depth-attention weight α (softmax over sources)", shrink=0.9)
        fig.suptitle("Depth attention at the last evaluation (largest size)")
    return fig


def layer_rms(a: Analysis) -> Figure | None:
    data = _last_eval_of_largest(a, "layer_rms")
    if not data:
        return None
    with matplotlib.rc_context(RC):
        fig = _new(6.4, 4.2)
        ax = fig.add_subplot()
        for v in sorted(data):
            size, values = data[v]
            values = np.asarray(values, dtype=float)
            ax.plot(np.arange(1, len(values) + 1), values, "o-", ms=3, color=color(v, a.arms),
                    label=f"{label(v)} ({size})")
        ax.set_xlabel("layer l (each attention and MLP sublayer is one layer)")
        ax.set_ylabel("RMS of the sublayer output f_l(h_l)")
        missing = [label(v) for v in a.arms if v not in data]
        ax.set_title("Per-layer output magnitude at the last evaluation"
                     + (f"\n(not logged for: {', '.join(missing)})" if missing else ""), fontsize=10)
        ax.legend()
    return fig


FIGURES = {
    "loss_vs_compute": loss_vs_compute,
    "multiplier_vs_compute": multiplier_vs_compute,
    "training_curves": training_curves,
    "isoflop": isoflop_curves,
    "depth_attention": depth_attention,
    "layer_rms": layer_rms,
}


def write_figures(a: Analysis, out_dir: Path) -> list[Path]:
    """Every figure that the data supports, as PNG and SVG under ``out_dir``; returns the paths."""
    out_dir = Path(out_dir)
    paths: list[Path] = []
    for name, make in FIGURES.items():
        fig = make(a)
        if fig is not None:
            paths += save(fig, out_dir, name)
    return paths
