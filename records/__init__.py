"""The records every layer shares, torch-free: what crosses from one layer to the next, each with its
one writer and its readers.

    config    ModelConfig, TrainConfig, DataConfig, TrackingConfig, RunSpec (spec.json)
    errors    ConfigError (a setting is invalid; carries the field)
    settings  one setting's type, range and choices (check_setting): configs and sweeps
    choices   the closed sets of names (variants, schedules, run states, fit forms, ...) as string enums
    steps     token counts as whole optimizer steps (budget, warmup, decay): the one rounding rule
    rundir    the run directory: spec.json, derived.json (Derived), status.json, metrics.jsonl rows,
              env.json, checkpoint paths (KeptCheckpoint); atomic writes
    metrics   MetricRow: one metrics.jsonl row, typed, checked when written
    tables    the parquet schemas of runs.parquet and curves.parquet (docs/SCHEMAS.md is tested
              against them)
    units     the compute unit (PF-day)
    paths     where runs/, results/ and data/ live
    tokens    prepared token data, the reader's side: format, checks, load_tokens (corpus/ writes it)
    progress  progress lines with rate and ETA

Nothing here imports torch, pandas or scipy, so the CLI, the planner and the collector can read a
run without loading the training stack.
"""
