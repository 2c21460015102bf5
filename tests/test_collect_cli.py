"""The collector's command line, progress, locking and atomic writes (sweeps/collect/, sweeps/cli.py)."""

from __future__ import annotations

import argparse
import fcntl
import multiprocessing as mp
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest
from collect_runs import SWEEP, files, make_run, read, write_rows

import sweeps.collect as collect_mod
from sweeps.cli import collect_main, register_collect
from sweeps.collect import collect


@pytest.fixture
def roots(tmp_path: Path) -> tuple[Path, Path]:
    return tmp_path / "runs", tmp_path / "results"


def test_progress_while_reading_runs(roots, capsys):
    """collect reports each run read (the long stage) to its progress callback; the CLI turns that
    into 'reading runs i/n (..%), rate, ETA' lines on stderr."""
    runs, results = roots
    for name in ("a", "b", "c"):
        make_run(runs, name)
    calls = []
    collect(SWEEP, runs, results, progress=lambda done, total: calls.append((done, total)))
    assert calls == [(1, 3), (2, 3), (3, 3)]
    make_run(runs, "d")
    assert collect_main([SWEEP, "--runs-root", str(runs), "--results-root", str(tmp := results.parent / "r2"),
                             "--progress-every", "0"]) == 0
    err = capsys.readouterr().err
    assert "collect demo: reading runs 1/4 (25%)" in err and "ETA" in err and "reading runs 4/4 (100%)" in err, err
    assert (tmp / SWEEP / "runs.parquet").exists()


def test_missing_runs_root_is_refused(roots, capsys):
    """A mistyped --runs-root is an error, not a table of pending runs (it was, before)."""
    runs, results = roots
    with pytest.raises(FileNotFoundError, match="runs root does not exist"):
        collect(SWEEP, runs, results, expected_run_ids=["x", "y"])
    assert not (results / SWEEP).exists()
    assert collect_main(["demo", "--runs-root", "/nonexistent", "--results-root", str(results)]) == 2
    assert "/nonexistent: the runs root does not exist" in capsys.readouterr().err
    assert not (results / "demo").exists()


def test_missing_sweep_directory(roots):
    runs, results = roots
    runs.mkdir()
    with pytest.raises(FileNotFoundError, match="no run directories"):
        collect(SWEEP, runs, results)
    assert not (results / SWEEP).exists()
    s = collect(SWEEP, runs, results, expected_run_ids=["x", "y"])
    assert s.counts == {"pending": 2} and s.n_curve_rows == 0
    assert [r["status"] for r in read(results / SWEEP / "runs.parquet")] == ["pending", "pending"]


# --------------------------------------------------------------------------- concurrency and atomicity


def test_two_collectors_at_once_both_finish_with_identical_valid_files(roots, tmp_path):
    runs, results = roots
    for i in range(16):
        make_run(runs, f"r{i:02d}", variant=("baseline", "full")[i % 2], seed=i % 3)
    (runs / SWEEP / "r03" / "metrics.jsonl").open("a").write('{"kind":"ev')  # one problem
    with ProcessPoolExecutor(2, mp_context=mp.get_context("spawn")) as pool:  # spawn: pyarrow has threads
        summaries = list(pool.map(collect, [SWEEP] * 2, [runs] * 2, [results] * 2))
    assert sorted(s.n_reread for s in summaries) == [0, 16]  # the lock made them take turns
    assert [len(s.problems) for s in summaries] == [1, 1]
    collect(SWEEP, runs, tmp_path / "serial")  # in this process, one run after another
    assert files(results) == files(tmp_path / "serial")
    assert len(read(results / SWEEP / "curves.parquet")) == 64


def test_a_collector_waits_for_the_lock_then_reads_in_worker_processes(roots, tmp_path):
    runs, results = roots
    for i in range(4):
        make_run(runs, f"r{i}", variant=("baseline", "block")[i % 2], attnres_blocks=(None, 2)[i % 2])
    (runs / SWEEP / "r1" / "metrics.jsonl").open("a").write('{"kind":"ev')
    (results / SWEEP).mkdir(parents=True)
    with open(results / SWEEP / ".collect.lock", "a") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        proc = mp.get_context("spawn").Process(target=collect, args=(SWEEP, runs, results), kwargs={"workers": 2})
        proc.start()
        time.sleep(1.0)
        assert proc.is_alive() and not (results / SWEEP / "runs.parquet").exists()
    proc.join(60)
    assert proc.exitcode == 0
    collect(SWEEP, runs, tmp_path / "serial", workers=1)
    assert files(results) == files(tmp_path / "serial")


def test_a_failed_write_leaves_the_previous_files_and_no_temporary_file(roots, monkeypatch):
    runs, results = roots
    rd = make_run(runs, "a", state="running", n_evals=4, evals_done=2)
    collect(SWEEP, runs, results)
    before = files(results)
    write_rows(rd, rd.read_spec(), 20, 30)

    def crash(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(collect_mod.os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        collect(SWEEP, runs, results)
    monkeypatch.undo()
    assert files(results) == before and not list((results / SWEEP).glob("*.tmp"))
    (results / SWEEP / ".runs.parquet.killed.tmp").write_bytes(b"half")  # a collector killed mid-write
    assert collect(SWEEP, runs, results).n_curve_rows == 3
    assert not list((results / SWEEP).glob(".*.tmp"))


# --------------------------------------------------------------------------- CLI


def test_cli_prints_the_summary_and_strict_fails_on_problems(roots, capsys):
    runs, results = roots
    make_run(runs, "a")
    parser = argparse.ArgumentParser()
    register_collect(parser.add_subparsers())
    args = parser.parse_args(["collect", "sweeps/demo.toml", "--runs-root", str(runs), "--results-root", str(results)])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    # never-launched runs of the sweep file are listed as pending, the stray run is flagged
    from sweeps.spec import expand, load_sweep

    n = len(expand(load_sweep("sweeps/demo.toml")))
    assert f"collect demo: {n + 1} runs (done 1, pending {n})" in out and "a: not one of the sweep's planned runs" in out
    make_run(runs, "b", n_evals=4, evals_done=3)
    args = parser.parse_args(["collect", SWEEP, "--strict", "--runs-root", str(runs), "--results-root", str(results)])
    assert args.func(args) == 1
    assert "b: status is done but the last evaluation is at step 30 of 40" in capsys.readouterr().out
    assert collect_main(["nosuch", "--runs-root", str(runs)]) == 2
