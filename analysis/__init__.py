"""Scaling-law analysis: load results, fit power laws, estimate the compute multiplier, draw figures, write reports.

A pipeline of small typed steps (each a module):

    load        results/<sweep>/{runs,curves}.parquet or any table -> RunTable, CurveTable, Observations
    select      finished runs, best hyperparameter value per (variant, size), edge-of-grid flags
    fits        paper L = A C^-alpha, saturating L = E + A C^-alpha, chinchilla L(N, D), shared exponents
    isoflop     per-budget minima by a local fit, N*(C), D*(C), L*(C)
    bootstrap   resampling over runs (clustered by run), small-sample expansion
    multiplier  m(C) = C_baseline(L_variant(C)) / C at the largest compute, as a curve, per size, shared
    checks      leave-largest-out extrapolation, seed spread, intervals that include 1
    pipeline    analyse(), fits.json, regenerate() (everything under results/<sweep>/ from parquet alone)
    figures     PNG + SVG, byte-identical on regeneration
    report      report.md and the `attnres fit` summary
    cli         `attnres fit | figures | report`
    synthetic   sweeps with known answers (tests, benchmark, design checks)

Reference data (the paper's Table 2 and published fits) is in analysis/reference/.
"""
