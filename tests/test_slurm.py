"""`attnres launch --executor slurm` against a real Slurm cluster (marker ``slurm``).

Needs the single-node cluster of scripts/slurm/setup-slurm.sh (`make slurm-up`; partitions ``debug``
and ``urgent``, whose jobs preempt ``debug`` jobs) and is run by `make test-slurm` and .ci/run:

    make slurm-up && make test-slurm && make slurm-down

Every run is a very small model (d2 at context 32), so each test takes well under a few minutes.
Waits go through squeue with timeouts, never through ``job.result()`` (which can hang on a job
that died without a result).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from test_sweeps import comparable, micro_toml, write_sweep

from records.rundir import RunDir
from sweeps.launch import launch, squeue_states, wait_slurm
from sweeps.spec import expand, load_sweep
from sweeps.status import sweep_status

pytestmark = [pytest.mark.slurm, pytest.mark.timeout(900)]

LAUNCH = """
[launch]
partition = "debug"
time_min = 60          # > 10: submitit counts every interruption of a short job as a timeout
cpus_per_task = 1
mem_gb = 1
"""


@pytest.fixture(scope="module", autouse=True)
def slurm_cluster():
    if shutil.which("sinfo") is None:
        pytest.fail("no Slurm client on this machine; fix: `make slurm-up` (scripts/slurm/setup-slurm.sh)")
    out = subprocess.run(["sinfo", "-h", "-o", "%P %T"], capture_output=True, text=True, timeout=30)
    if out.returncode != 0 or not any(s in out.stdout for s in ("idle", "mixed", "allocated")):
        pytest.fail(f"Slurm is not up ({out.stdout.strip() or out.stderr.strip()}); fix: `make slurm-up`")
    yield


def long_run(corpus, steps: int, variants: str = "baseline = {}") -> str:
    """A run of ``steps`` steps with no periodic checkpoint (ckpt_every_s = 1 h) and evaluations (and
    their checkpoints) only at half time and at the end: whatever a stop does not save is lost."""
    budget = f'mode = "tokens"\ntokens = {steps * 8 * 32}'
    text = micro_toml(corpus, variants=variants, budget=budget, extra=LAUNCH)
    return (text.replace("eval_every_tokens = 2048", f"eval_every_tokens = {steps // 2 * 8 * 32}")
            .replace("ckpt_every_s = 1.0", "ckpt_every_s = 3600.0"))


class StepsBeforeResume:
    """The last step the interrupted attempt wrote, seen while polling, until the run resumes."""

    def __init__(self, rd: RunDir) -> None:
        self.rd, self.max_step = rd, 0

    def poll(self) -> None:
        log = self.rd.log_path.read_text() if self.rd.log_path.exists() else ""
        if log.count("] start at step") < 2:  # the interrupted attempt only
            rows = self.rd.read_metrics().rows
            self.max_step = max([self.max_step] + [r["step"] for r in rows])

    def check_no_lost_steps(self, signame: str) -> int:
        log = self.rd.log_path.read_text()
        m = re.search(r"resumed from \S+ at step (\d+)", log)
        resumed = int(m.group(1)) if m else 0  # no "resumed from": it started again from step 0
        lost = self.max_step - resumed
        assert self.max_step > 0 and lost <= 0, f"{lost} steps lost: resumed at {resumed}, had reached {self.max_step}"
        assert f"stop requested ({signame}): checkpoint saved at step" in log, log[-2000:]
        return resumed


def node_cpus() -> int:
    out = subprocess.run(["sinfo", "-h", "-o", "%c"], capture_output=True, text=True, timeout=30, check=True)
    return int(out.stdout.split()[0].rstrip("+"))


def wait_done(sweep, runs_root: Path, job_ids: list[str], timeout_s: float = 600) -> list:
    wait_slurm(job_ids, timeout_s=timeout_s, poll_s=2.0)
    rows, _ = sweep_status(sweep, runs_root)
    return rows


@pytest.fixture(scope="module")
def finished(tmp_path_factory, corpus):
    """The micro sweep launched on Slurm, re-launched while in flight, and waited for."""
    tmp = tmp_path_factory.mktemp("slurm-sweep")
    sweep = load_sweep(write_sweep(tmp, micro_toml(corpus, extra=LAUNCH)))
    runs_root = tmp / "runs"
    t0 = time.perf_counter()
    first = launch(sweep, executor="slurm", runs_root=runs_root)
    early = [r.state for r in sweep_status(sweep, runs_root)[0]]
    names = subprocess.run(["squeue", "-h", "-r", "-o", "%i|%j|%k"], capture_output=True, text=True, timeout=60).stdout
    in_flight = launch(sweep, executor="slurm", runs_root=runs_root)  # queued or running: nothing new
    rows = wait_done(sweep, runs_root, sorted(first.job_ids.values()))
    return {"sweep": sweep, "runs_root": runs_root, "first": first, "in_flight": in_flight, "early": early,
            "rows": rows, "seconds": time.perf_counter() - t0, "names": names}


def test_sweep_finishes_on_slurm(finished):
    first, rows = finished["first"], finished["rows"]
    assert len(first.submitted) == 2 and len(set(first.job_ids.values())) == 2
    assert len({j.split("_")[0] for j in first.job_ids.values()}) == 1  # one job array
    assert set(finished["early"]) <= {"queued", "running"}, finished["early"]  # status right after launch
    assert [r.state for r in rows] == ["done", "done"], rows
    for r in rows:
        status = RunDir(finished["runs_root"] / "micro" / r.run_id).read_status()
        assert status["executor"] == "slurm" and status["job_id"] == first.job_ids[r.run_id]
    assert (finished["runs_root"] / "micro" / ".submitit" / "launches.jsonl").exists()
    listed = {line.split("|")[0]: line.split("|")[1:] for line in finished["names"].splitlines() if "|" in line}
    for run_id, job in first.job_ids.items():  # squeue tells the runs of one job array apart
        if job in listed:
            assert listed[job] == [run_id, run_id], (job, listed[job])
    print(f"2-run sweep on Slurm: {finished['seconds']:.0f} s")


def test_relaunch_submits_nothing(finished):
    in_flight = finished["in_flight"]
    assert in_flight.submitted == [], in_flight.decisions
    assert all(d.reason.startswith("in flight: Slurm job") for d in in_flight.decisions)
    again = launch(finished["sweep"], executor="slurm", runs_root=finished["runs_root"])
    assert again.submitted == [] and {d.reason for d in again.decisions} == {"done"}
    assert not (squeue_states(list(finished["first"].job_ids.values())) or {})


def test_ddp_two_tasks(tmp_path, corpus, finished):
    """tasks_per_node = 2: one run trained by two processes (DDP, gloo on CPU), same result."""
    text = micro_toml(corpus, variants="baseline = {}", extra=LAUNCH.replace("cpus_per_task = 1",
                                                                             "cpus_per_task = 1\ntasks_per_node = 2"))
    sweep = load_sweep(write_sweep(tmp_path, text))
    t0 = time.perf_counter()
    result = launch(sweep, executor="slurm", runs_root=tmp_path / "runs")
    rows = wait_done(sweep, tmp_path / "runs", list(result.job_ids.values()))
    assert [r.state for r in rows] == ["done"], rows
    run_id = rows[0].run_id
    rd = RunDir(tmp_path / "runs" / "micro" / run_id)
    assert rd.read_env()["world_size"] == 2
    single = RunDir(finished["runs_root"] / "micro" / run_id)  # same spec, one process
    ddp_evals = [r for r in rd.read_metrics().rows if r["kind"] == "eval"]
    one_evals = [r for r in single.read_metrics().rows if r["kind"] == "eval"]
    assert [r["step"] for r in ddp_evals] == [r["step"] for r in one_evals]
    for a, b in zip(ddp_evals, one_evals):
        assert a["val_loss"] == pytest.approx(b["val_loss"], rel=1e-4)
    print(f"2-task DDP run on Slurm: {time.perf_counter() - t0:.0f} s")


def test_preempted_run_resumes_bit_exact(tmp_path, corpus):
    """A run preempted mid-training by a job in the higher-priority partition is requeued by
    submitit (Checkpointable), resumes from its last checkpoint and ends with the same metrics as an
    uninterrupted run of the same spec."""
    steps = 500
    sweep = load_sweep(write_sweep(tmp_path, long_run(corpus, steps)))
    (run,) = expand(sweep)
    ref = launch(sweep, executor="debug", runs_root=tmp_path / "reference")  # uninterrupted, in this process
    assert ref.final_states == {run.run_id: "done"}
    t0 = time.perf_counter()
    result = launch(sweep, executor="slurm", runs_root=tmp_path / "runs")
    job = result.job_ids[run.run_id]
    rd = RunDir(tmp_path / "runs" / "micro" / run.run_id)

    # wait until it is well into training (no checkpoint yet: the first is at step 250), then preempt it
    deadline = time.time() + 300
    while int(rd.read_status().get("step") or 0) < steps // 8:
        assert time.time() < deadline, rd.read_status()
        assert rd.state not in ("done", "failed"), "the run ended before it could be preempted"
        time.sleep(0.2)
    preempted_at = int(rd.read_status()["step"])
    before = StepsBeforeResume(rd)
    urgent = subprocess.run(["sbatch", "--parsable", "-p", "urgent", "-c", str(node_cpus()), "--mem=100M", "-t", "5",
                             "-J", "urgent-blocker", "-o", "/dev/null", "--wrap", "sleep 15"],
                            capture_output=True, text=True, check=True, timeout=60).stdout.strip()
    seen = []  # what `attnres status` reports over time
    try:
        deadline = time.time() + 600
        while (squeue_states([job]) or {}).get(job) is not None:
            state = sweep_status(sweep, tmp_path / "runs")[0][0].state
            if not seen or seen[-1] != state:
                seen.append(state)
            before.poll()
            assert time.time() < deadline, f"job {job} still queued: {squeue_states([job])}"
            time.sleep(0.5)
    finally:
        subprocess.run(["scancel", urgent], timeout=60)
    status = rd.read_status()
    assert status["state"] == "done", status
    assert status["attempts"] >= 2, status
    assert "preempted" in seen and seen.index("preempted") < len(seen) - 1, seen  # reported, then ran again
    resumed = before.check_no_lost_steps("SIGUSR2")
    reference = RunDir(tmp_path / "reference" / "micro" / run.run_id).read_metrics().rows
    assert comparable(rd.read_metrics().rows) == comparable(reference)
    print(f"preempted at step >= {preempted_at}/{steps}, resumed at step {resumed} (last row before: "
          f"{before.max_step}); status went {' -> '.join(seen)}; {time.perf_counter() - t0:.0f} s")


def test_refused_submission_fails_cleanly(tmp_path, corpus):
    """sbatch refusing the array (an unknown partition) is a LaunchError naming [launch]; the runs are
    left failed ("not submitted"), so the next launch retries them instead of thinking them queued."""
    from sweeps.launch import LaunchError

    sweep = load_sweep(write_sweep(tmp_path, micro_toml(corpus, extra=LAUNCH.replace('"debug"', '"nosuch"'))))
    with pytest.raises(LaunchError, match=r"\[launch\]"):
        launch(sweep, executor="slurm", runs_root=tmp_path / "runs")
    rows, _ = sweep_status(sweep, tmp_path / "runs")
    assert {r.state for r in rows} == {"failed"} and all("not submitted" in r.detail for r in rows)


def test_requeue_sigterm_checkpoints_and_resumes(tmp_path, corpus):
    """`scontrol requeue` sends SIGTERM (which submitit ignores): the trainer checkpoints at its next
    step and stops at once instead of running on until KillWait kills it; the requeued job resumes
    from that step and ends with the metrics of an uninterrupted run."""
    steps = 500
    sweep = load_sweep(write_sweep(tmp_path, long_run(corpus, steps)))
    (run,) = expand(sweep)
    launch(sweep, executor="debug", runs_root=tmp_path / "reference")
    result = launch(sweep, executor="slurm", runs_root=tmp_path / "runs")
    job = result.job_ids[run.run_id]
    rd = RunDir(tmp_path / "runs" / "micro" / run.run_id)
    before = StepsBeforeResume(rd)
    deadline = time.time() + 300
    while int(rd.read_status().get("step") or 0) < steps // 8:
        assert time.time() < deadline and rd.state not in ("done", "failed"), rd.read_status()
        time.sleep(0.2)
    subprocess.run(["scontrol", "requeue", job], check=True, timeout=60)
    deadline = time.time() + 600
    while (squeue_states([job]) or {}).get(job) is not None:
        assert time.time() < deadline, squeue_states([job])
        before.poll()
        time.sleep(0.3)
    assert rd.read_status()["state"] == "done", rd.read_status()
    resumed = before.check_no_lost_steps("SIGTERM")
    reference = RunDir(tmp_path / "reference" / "micro" / run.run_id).read_metrics().rows
    assert comparable(rd.read_metrics().rows) == comparable(reference)
    print(f"requeued; resumed at step {resumed} (last row before: {before.max_step})")


def test_scancel_and_attnres_cancel_tell_apart(tmp_path, corpus):
    """A raw `scancel` reads "cancelled" from accounting (and the next launch resubmits it); `attnres
    cancel` also marks the run, so the next launch leaves it. Both trainers checkpoint on the way out."""
    from sweeps.control import cancel

    sweep = load_sweep(write_sweep(tmp_path, long_run(corpus, 2000, variants='baseline = {}\n'
                                                                            'full = {}')))
    runs_root = tmp_path / "runs"
    result = launch(sweep, executor="slurm", runs_root=runs_root)
    raw, marked = expand(sweep)
    dirs = {r.run_id: RunDir(runs_root / "micro" / r.run_id) for r in (raw, marked)}
    deadline = time.time() + 300
    while not all(int(d.read_status().get("step") or 0) >= 50 for d in dirs.values()):
        assert time.time() < deadline, [d.read_status() for d in dirs.values()]
        time.sleep(0.2)
    subprocess.run(["scancel", result.job_ids[raw.run_id]], check=True, timeout=60)
    lines = cancel(sweep, runs_root, [marked.run_id])
    assert "cancelled" in lines[0] and result.job_ids[marked.run_id] in lines[0], lines
    wait_slurm(list(result.job_ids.values()), timeout_s=300, poll_s=1.0)
    time.sleep(2)  # accounting catches up
    rows = {r.run_id: r for r in sweep_status(sweep, runs_root)[0]}
    assert rows[raw.run_id].state == "cancelled" and "ended CANCELLED" in rows[raw.run_id].detail, rows[raw.run_id]
    assert rows[marked.run_id].state == "cancelled", rows[marked.run_id]
    for d in dirs.values():
        assert "stop requested (SIGTERM)" in d.log_path.read_text()
        assert d.last_ckpt.exists()
    again = {d.run.run_id: d for d in launch(sweep, executor="slurm", runs_root=runs_root, dry_run=True).decisions}
    assert again[raw.run_id].action == "submit" and again[raw.run_id].resume
    assert again[marked.run_id].action == "skip" and again[marked.run_id].reason.startswith("cancelled")


def test_plan_warns_beyond_the_partitions_nodes(tmp_path, corpus):
    """Where sinfo answers, plan compares [launch] with the partition's largest node."""
    from sweeps.plan import make_plan

    big = LAUNCH.replace("cpus_per_task = 1", f"cpus_per_task = {node_cpus() + 1}\ngpus_per_node = 1")
    plan = make_plan(load_sweep(write_sweep(tmp_path, micro_toml(corpus, extra=big.replace("mem_gb = 1", "mem_gb = 100000")))))
    text = "\n".join(plan.warnings)
    for what in ("CPUs per node (cpus_per_task x tasks_per_node)", "GPUs per node (gpus_per_node)",
                 "GB of memory per node (mem_gb)"):
        assert what in text and "of debug has" in text, text
    fits = make_plan(load_sweep(write_sweep(tmp_path, micro_toml(corpus, extra=LAUNCH), name="fits")))
    assert not [w for w in fits.warnings if "sinfo" in w], fits.warnings
