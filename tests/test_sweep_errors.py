"""Every sweep-file mistake is caught at `plan` (so also at launch, status and collect): one message
per problem naming the file, the key and the fix, never a traceback; and no sweep string can reach
a generated sbatch script as anything but the value of the option the harness wrote.
"""

from __future__ import annotations

import re
import shlex

import pytest

from records import paths
from records.config import ConfigError, TrainConfig
from sweeps import cli as sweeps_cli
from sweeps.launch import slurm_executor
from sweeps.spec import LaunchSpec, SweepError, expand, load_sweep


def micro(data: str = "/nonexistent-data") -> str:
    """A small valid sweep; each case edits one line of it."""
    return f"""
[sweep]
ladder = "tiny"
sizes = ["d2", "d3"]
seeds = [0]
[budget]
mode = "tokens"
tokens = 8192
[variants]
baseline = {{}}
block = {{ variant = "block", layers_per_block = 2 }}
[model]
seq_len = 32
[train]
batch_size = 8
eval_tokens = 2048
lr = 3e-3
[data]
path = "{data}"
[launch]
time_min = 30
"""


def write(tmp_path, text: str, name: str = "bad"):
    path = tmp_path / f"{name}.toml"
    path.write_text(text)
    return path


def problems_of(path) -> list[str]:
    """The problems `plan` reports: load (every key) then expand (the resolved configs)."""
    with pytest.raises(SweepError) as e:
        expand(load_sweep(path))
    return e.value.problems


# (name, edit of the micro sweep, key the message must name, a word the fix must contain)
CASES = [
    ("lr-string", ("lr = 3e-3", 'lr = "0.003"'), "[train].lr", "without quotes"),
    ("seq_len-string", ("seq_len = 32", 'seq_len = "128"'), "[model].seq_len", "without quotes"),
    ("layers_per_block-string", ("layers_per_block = 2", 'layers_per_block = "2"'),
     "[variants.block].layers_per_block", "without quotes"),
    ("arm-batch_size-string", ("layers_per_block = 2 }", 'layers_per_block = 2, train = { batch_size = "16" } }'),
     "[variants.block.train].batch_size", "without quotes"),
    ("threads-string", ("lr = 3e-3", 'lr = 3e-3\nthreads = "2"'), "[train].threads", "without quotes"),
    ("axes-lr-strings", ("[data]", '[axes]\nlr = ["a", "b"]\n[data]'), "[axes].lr", "lr ="),
    ("batch_size-zero", ("batch_size = 8", "batch_size = 0"), "[train].batch_size", ">= 1"),
    ("eval_tokens-string", ("eval_tokens = 2048", 'eval_tokens = "8192"'), "[train].eval_tokens", "without quotes"),
    ("eval_tokens-negative", ("eval_tokens = 2048", "eval_tokens = -5"), "[train].eval_tokens", ">= 1"),
    ("eval_tokens-bool", ("eval_tokens = 2048", "eval_tokens = true"), "[train].eval_tokens", "whole number"),
    ("lr-inf", ("lr = 3e-3", "lr = inf"), "[train].lr", "finite"),
    ("lr-nan", ("lr = 3e-3", "lr = nan"), "[train].lr", "finite"),
    ("grad_clip-negative", ("lr = 3e-3", "lr = 3e-3\ngrad_clip = -1"), "[train].grad_clip", "> 0"),
    ("compile-string", ("lr = 3e-3", 'lr = 3e-3\ncompile = "yes"'), "[train].compile", "true or"),
    ("ckpt_every_s-string", ("lr = 3e-3", 'lr = 3e-3\nckpt_every_s = "60"'), "[train].ckpt_every_s", "without quotes"),
    ("duplicate-variants", ('[variants]\nbaseline = {}\nblock = { variant = "block", layers_per_block = 2 }\n', ""),
     "[variants]", "once"),
    ("duplicate-axis-values", ("[data]", "[axes]\nlr = [1e-3, 1e-3]\n[data]"), "[axes].lr", "once"),
    ("duplicate-budgets", ("tokens = 8192", "tokens = [8192, 8192]"), "[budget].tokens", "once"),
    ("budget-inf", ('mode = "tokens"\ntokens = 8192', 'mode = "ratio"\ntokens_per_param = inf'),
     "[budget].tokens_per_param", "number"),
    ("arm-variant-list", ('variant = "block"', 'variant = ["block"]'), "[variants.block].variant", "quote"),
    ("beta2-one", ("lr = 3e-3", "lr = 3e-3\nbeta2 = 1.0"), "[train].beta2", "[0, 1)"),
    ("rope_theta-zero", ("seq_len = 32", "seq_len = 32\nrope_theta = 0"), "[model].rope_theta", "> 0"),
    ("save_at_tokens-twice", ("lr = 3e-3", "lr = 3e-3\nsave_at_tokens = [1024, 1024]"),
     "[train].save_at_tokens", "once"),
    # every string that reaches the sbatch script
    ("partition-newline", ("time_min = 30", 'time_min = 30\npartition = "debug\\ntouch /tmp/x #"'),
     "[launch].partition", "remove"),
    ("account-newline", ("time_min = 30", 'time_min = 30\naccount = "a\\nrm -rf ~"'), "[launch].account", "remove"),
    ("qos-space", ("time_min = 30", 'time_min = 30\nqos = "normal; reboot"'), "[launch].qos", "use only"),
    ("constraint-cr", ("time_min = 30", 'time_min = 30\nconstraint = "a100\\rtouch x"'), "[launch].constraint", "remove"),
    ("additional-value", ("time_min = 30", 'time_min = 30\nadditional = { comment = "x\\ntouch /tmp/x" }'),
     "[launch].additional.comment", "use only"),
    ("additional-key", ("time_min = 30", 'time_min = 30\nadditional = { "exclusive\\ntouch /tmp/x" = true }'),
     "[launch].additional.", "lowercase"),
    ("additional-own-key", ("time_min = 30", 'time_min = 30\nadditional = { partition = "gpu" }'),
     "[launch].additional.partition", "[launch].partition"),
    ("additional-harness-key", ("time_min = 30", 'time_min = 30\nadditional = { output = "/tmp/elsewhere" }'),
     "[launch].additional.output", "remove"),
    ("device-newline", ("time_min = 30", 'time_min = 30\ndevice = "H100\\nx"'), "[launch].device", "remove"),
    ("device_flops-removed", ("time_min = 30", "time_min = 30\ndevice_flops = 4e14"), "[launch].device_flops",
     "set [launch].device"),
    ("time_min-string", ("time_min = 30", 'time_min = "30"'), "[launch].time_min", "without quotes"),
    ("mem_gb-inf", ("time_min = 30", "time_min = 30\nmem_gb = inf"), "[launch].mem_gb", "finite"),
]


@pytest.mark.parametrize("edit,key,fix", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_sweep_mistake_named_at_plan(tmp_path, edit, key, fix):
    text = micro()
    assert edit[0] in text, edit
    text = text.replace(edit[0], edit[1], 1)
    if edit[1] == "":  # the list form of [variants]: a top-level key, before the first table
        text = 'variants = ["baseline", "baseline", "full"]\n' + text
    path = write(tmp_path, text)
    problems = problems_of(path)
    assert len(problems) == 1, problems
    msg = problems[0]
    assert msg.startswith(f"{path}: {key}") or msg.startswith(f"bad.toml: {key}"), msg
    fix_part = msg.split("; fix: ", 1)
    assert len(fix_part) == 2 and fix in fix_part[1], msg


def test_injected_partition_refused_by_plan_cli(tmp_path, capsys):
    """The issue's exact case through `attnres plan`: exit 2, the key named, no traceback."""
    path = write(tmp_path, micro().replace("time_min = 30", 'time_min = 30\npartition = "debug\\ntouch /tmp/x #"'))
    assert sweeps_cli.main(["plan", str(path)]) == 2
    err = capsys.readouterr().err
    assert "[launch].partition" in err and "control character" in err and "Traceback" not in err, err


def test_every_problem_reported_once(tmp_path, capsys):
    """Three independent mistakes: three messages from one `plan`, one line each."""
    text = micro().replace("lr = 3e-3", 'lr = "0.003"').replace("seq_len = 32", 'seq_len = "32"')
    text = text.replace("time_min = 30", "time_min = 0")
    path = write(tmp_path, text)
    assert sweeps_cli.main(["plan", str(path)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 3, lines
    for key in ("[model].seq_len", "[train].lr", "[launch].time_min"):
        line = next(ln for ln in lines if key in ln)
        assert line.startswith(f"attnres plan: {path}: {key}: ") and "; fix: " in line, line


def test_sweep_file_name_becomes_no_job_name_injection(tmp_path):
    path = tmp_path / "x;touch y.toml"
    path.write_text(micro())
    assert any("file name" in p for p in problems_of(path))


def test_launch_spec_refuses_unsafe_strings_itself():
    """The dataclass holds the rules, so no code path can build an executor from a bad value."""
    with pytest.raises(ConfigError, match="partition"):
        LaunchSpec(partition="debug\ntouch /tmp/x #")
    with pytest.raises(ConfigError, match="additional"):
        LaunchSpec(additional={"mail-type": "END\necho owned"})
    with pytest.raises(ConfigError, match="eval_tokens"):
        TrainConfig(eval_tokens="8192")


GOOD_LAUNCH = ('partition = "gpu,debug"\naccount = "proj-1"\nqos = "high"\nconstraint = "a100&ib"\nmem_gb = 4\n'
               'additional = { exclusive = true, mail-type = "END", gres = "gpu:a100:2" }')
INJECTIONS = {
    "partition": 'partition = "debug\\ntouch /tmp/x #"',
    "additional-value": 'additional = { mail-type = "END\\ntouch /tmp/x" }',
    "additional-key": 'additional = { "exclusive\\ntouch /tmp/x" = true }',
}


def _check_script(sweep, tmp_path) -> dict[str, str | None]:
    """submitit's own sbatch text for the sweep's executor; fails on any line the harness did not
    write; returns the #SBATCH options it holds."""
    executor = slurm_executor(sweep, paths.submitit_dir(tmp_path / "runs", sweep.name))._executor
    command = executor._submitit_command_str  # what submitit runs: python -u -m submitit.core._submit FOLDER
    setup = executor.parameters["setup"]
    assert all(re.fullmatch(r"export [A-Z_]+=[0-9]+", s) for s in setup), setup
    fixed = {"#!/bin/bash", "", "# Parameters", "# setup", "# command", "export SUBMITIT_EXECUTOR=slurm", *setup}
    seen: dict[str, str | None] = {}
    lines = executor._make_submission_file_text(command, "uid").split("\n")
    for line in lines:
        m = re.fullmatch(r"#SBATCH --([a-z0-9-]+)(?:=(.*))?", line)
        if m:
            try:
                seen[m.group(1)] = None if m.group(2) is None else shlex.split(m.group(2))[0]
            except ValueError:  # an unclosed quote: the value goes on over the next line(s)
                raise AssertionError(f"an option value spans lines: {line!r}") from None
        elif line not in fixed and not (line.startswith("srun ") and line.endswith(command)):
            raise AssertionError(f"a line the harness did not write: {line!r}")
    assert sum(line.startswith("srun ") for line in lines) == 1
    return seen


def test_generated_sbatch_holds_only_harness_lines(tmp_path):
    """Valid [launch] strings reach the script as the values of the options the harness set."""
    sweep = load_sweep(write(tmp_path, micro().replace("time_min = 30", "time_min = 30\n" + GOOD_LAUNCH), "good"))
    seen = _check_script(sweep, tmp_path)
    wanted = {"partition": "gpu,debug", "account": "proj-1", "qos": "high", "constraint": "a100&ib",
              "exclusive": None, "mail-type": "END", "gres": "gpu:a100:2", "job-name": "attnres-good",
              "time": "30", "mem": "4GB"}
    for key, value in wanted.items():
        assert seen.get(key, "missing") == value, (key, seen)


@pytest.mark.parametrize("where", sorted(INJECTIONS))
def test_injection_never_reaches_sbatch(tmp_path, where):
    """A newline in a [launch] string: refused at plan with the key named; were it not, the script
    generated from it must still hold only the harness's lines (today it held a `touch` line)."""
    path = write(tmp_path, micro().replace("time_min = 30", "time_min = 30\n" + INJECTIONS[where]), "evil")
    try:
        sweep = load_sweep(path)
    except SweepError as e:
        assert len(e.problems) == 1 and f"[launch].{where.split('-')[0]}" in e.problems[0], e.problems
        return
    _check_script(sweep, tmp_path)  # fails: the injected line is in the script
    pytest.fail("the injected value was accepted")


WEIRD = ['"2"', "true", "-1", "0", "inf", "[1, 2]", "{ a = 1 }", '"x\\ny"', "1.5", "1e30"]


def _all_keys() -> list[tuple[str, str]]:
    from dataclasses import fields

    from records.config import ModelConfig

    keys = [("[train]", f.name) for f in fields(TrainConfig)] + [("[model]", f.name) for f in fields(ModelConfig)]
    keys += [("[launch]", f.name) for f in fields(LaunchSpec)]
    keys += [("[sweep]", k) for k in ("ladder", "sizes", "seeds", "rules", "description")]
    keys += [("[budget]", k) for k in ("mode", "tokens")] + [("[data]", k) for k in ("path", "tokenizer")]
    return keys


@pytest.mark.parametrize("table,key", _all_keys(), ids=[f"{t}.{k}" for t, k in _all_keys()])
def test_no_value_of_any_key_gives_a_traceback(tmp_path, table, key):
    """Every key of every table, set to values of the wrong type or range: plan either accepts the
    file or raises SweepError naming that key; nothing else escapes (no TypeError, no ZeroDivision)."""
    from sweeps.plan import make_plan

    for value in WEIRD:
        lines = micro().splitlines()
        start = lines.index(table)
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("[")), len(lines))
        body = [ln for ln in lines[start + 1:end] if not ln.startswith(f"{key} =")]
        text = "\n".join(lines[:start + 1] + [f"{key} = {value}"] + body + lines[end:])
        path = write(tmp_path, text)
        try:
            make_plan(load_sweep(path))
        except SweepError as e:
            assert all(p.startswith(f"{path}: ") and "; fix: " in p for p in e.problems), e.problems
