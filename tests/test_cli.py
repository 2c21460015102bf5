"""The `attnres` front end: cheap start (no torch, pandas or scipy to parse arguments), --version,
`attnres train` on an existing run directory, and the one rule for where runs/, results/, data/ live.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from attnres import cli
from records.config import DataConfig, RunSpec, TrainConfig
from records.progress import Progress
from records.rundir import RunDir

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("torch", "pandas", "scipy", "matplotlib", "pyarrow")


def test_help_and_argument_parsing_import_no_heavy_module():
    """One fresh interpreter parses each command line in turn and says which heavy modules got
    imported (a module list, not a timing: the machine is shared)."""
    argvs = [["--help"], ["--version"], ["plan", "--help"], ["launch", "--help"], ["status", "--help"],
             ["collect", "--help"], ["train", "--help"], ["data", "prepare", "--help"], ["fit", "--help"],
             ["figures", "--help"], ["report", "--help"], ["nosuch"]]
    code = f"""
import contextlib, io, json, sys
from attnres.cli import main
out = []
for argv in {argvs!r}:
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        try:
            main(argv)
        except SystemExit:
            pass
    out.append([argv, sorted(m for m in {HEAVY!r} if m in sys.modules)])
print(json.dumps(out))
"""
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert res.returncode == 0, res.stderr
    for argv, heavy in json.loads(res.stdout):
        assert heavy == [], f"`attnres {' '.join(argv)}` imported {heavy}"


def test_version(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["--version"])
    assert e.value.code == 0
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert capsys.readouterr().out.strip() == f"attnres {version}"


def test_top_level_help_matches_each_command_help(capsys):
    """COMMANDS repeats each command's one-line help so listing needs no import: they must agree."""
    parser = cli.build_parser()  # every module registered
    sub = next(a for a in parser._actions if a.dest == "command")
    registered = {a.dest: a.help for a in sub._choices_actions}
    assert registered == {name: help_line for name, (_, help_line) in cli.COMMANDS.items()}
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    out = capsys.readouterr().out
    assert all(name in out for name in cli.COMMANDS)


def test_progress_lines_have_rate_and_eta():
    now = [0.0]
    stream = io.StringIO()
    p = Progress("collect demo: reading runs", every_s=2.0, stream=stream, clock=lambda: now[0])
    p(1, 100)  # before every_s: quiet
    now[0] = 2.0
    p(40, 100)
    now[0] = 3.0
    p(50, 100)  # within every_s of the last line: quiet
    now[0] = 5.0
    p(100, 100)
    assert stream.getvalue().splitlines() == ["collect demo: reading runs 40/100 (40%), 20/s, ETA 3 s",
                                              "collect demo: reading runs 100/100 (100%), 20/s"]


# ----------------------------------------------------------------------------- attnres train


def _tiny_spec(corpus, run_id: str, **train) -> dict:
    from harness.ladder import model_config
    from records.tokens import read_meta

    corpus = Path(corpus).resolve()
    model = model_config("tiny", "d2", vocab_size=read_meta(corpus)["vocab_size"], seq_len=32)
    tc = TrainConfig(**{"tokens": 1024, "batch_size": 4, "eval_tokens": 256, "log_every_steps": 4, **train})
    return RunSpec(run_id=run_id, model=model, train=tc, data=DataConfig(str(corpus)), ladder="tiny", size="d2").to_dict()


def _files(run_dir: Path) -> dict[str, bytes]:
    return {str(p.relative_to(run_dir)): p.read_bytes() for p in sorted(run_dir.rglob("*")) if p.is_file()}


def test_train_refuses_a_different_spec_and_keeps_a_finished_run(tmp_path, corpus, capsys):
    run_dir = tmp_path / "runs" / "adhoc" / "r1"
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(json.dumps(_tiny_spec(corpus, "r1")))
    assert cli.main(["train", "--run-dir", str(run_dir), "--spec", str(spec_file)]) == 0
    assert RunDir(run_dir).state == "done"
    finished = _files(run_dir)

    # ad-hoc settings that differ: refused, the differences named, nothing written
    assert cli.main(["train", "--run-dir", str(run_dir), "--lr", "1e-3"]) == 2
    err = capsys.readouterr().err
    assert "holds a different run" in err and "train.lr: 0.003 -> 0.001" in err and "--force" in err, err
    assert _files(run_dir) == finished

    # --spec with another lr onto the finished run: refused; spec.json and the done state stay
    other = tmp_path / "other.json"
    other.write_text(json.dumps(_tiny_spec(corpus, "r1", lr=1e-3)))
    assert cli.main(["train", "--run-dir", str(run_dir), "--spec", str(other)]) == 2
    assert "train.lr: 0.003 -> 0.001" in capsys.readouterr().err
    assert _files(run_dir) == finished and RunDir(run_dir).state == "done"

    # the same spec again, or a bare resume: already done, nothing written
    for argv in (["--spec", str(spec_file)], []):
        assert cli.main(["train", "--run-dir", str(run_dir), *argv]) == 0
        assert "already done" in capsys.readouterr().out
    assert _files(run_dir) == finished

    # --force: trained over with the new spec; the old run is kept aside, byte for byte
    assert cli.main(["train", "--run-dir", str(run_dir), "--spec", str(other), "--force"]) == 0
    assert RunDir(run_dir).state == "done" and RunDir(run_dir).read_spec()["train"]["lr"] == 1e-3
    (kept,) = (run_dir / ".replaced").iterdir()
    assert _files(kept) == finished


# ----------------------------------------------------------------------------- where files live


def test_runs_results_and_data_follow_the_working_directory(tmp_path, monkeypatch):
    """One rule (records/paths.py): ./runs, ./results, ./data of the directory attnres runs in;
    $ATTNRES_RUNS_ROOT and $ATTNRES_DATA_DIR override. (data/ used to follow the checkout.)"""
    from records.tokens import default_data_dir
    from sweeps.launch import default_runs_root
    from sweeps.spec import load_sweep

    monkeypatch.delenv("ATTNRES_RUNS_ROOT", raising=False)
    monkeypatch.delenv("ATTNRES_DATA_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    assert default_runs_root() == "runs"
    assert default_data_dir().resolve() == tmp_path / "data" / "wiki-byte"
    assert load_sweep("demo").data.path == str(tmp_path / "data" / "wiki-byte")
    parser = cli.build_parser(["collect"])
    assert parser.parse_args(["collect", "demo"]).results_root is None  # -> records.paths.results_root()
    monkeypatch.setenv("ATTNRES_RUNS_ROOT", str(tmp_path / "elsewhere"))
    monkeypatch.setenv("ATTNRES_DATA_DIR", str(tmp_path / "shared-data"))
    assert default_runs_root() == str(tmp_path / "elsewhere")
    assert default_data_dir() == tmp_path / "shared-data" / "wiki-byte"
    assert os.path.isabs(load_sweep("demo").data.path)


def test_tracking_is_not_part_of_a_runs_identity(corpus):
    """Turning a tracker on for a finished or partial run is not 'a different run' (execution only)."""
    from harness.train_cli import spec_differences

    base = _tiny_spec(corpus, "r1")
    tracked = json.loads(json.dumps(base))
    tracked["tracking"] = {"backends": ["tensorboard"], "project": None, "entity": None, "wandb_mode": "offline"}
    assert spec_differences(base, tracked) == []
    assert spec_differences(base, _tiny_spec(corpus, "r1", lr=1e-3)) == ["train.lr: 0.003 -> 0.001"]
