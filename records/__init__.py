"""The records every layer shares, torch-free: what crosses from one layer to the next, each with its
one writer and its readers.

    config    ModelConfig, TrainConfig, DataConfig, TrackingConfig, RunSpec (spec.json), ConfigError
    choices   the closed sets of names (variants, schedules, run states, fit forms, ...) as string enums
    rundir    the run directory: spec.json (+ derived), status.json, metrics.jsonl rows, env.json,
              checkpoint paths; atomic writes
    tables    the parquet schemas of runs.parquet and curves.parquet (docs/SCHEMAS.md is tested
              against them)
    units     the compute unit (PF-day)
    paths     where runs/, results/ and data/ live
    progress  progress lines with rate and ETA

Nothing here imports torch, pandas or scipy, so the CLI, the planner and the collector can read a
run without loading the training stack.
"""
