"""HPC paths against real schedulers started by the fixtures in tests/hpc.py: a one-node Slurm (munged,
slurmctld, slurmd) and dask-mpi under Debian's Open MPI.

First the schedulers themselves (a batch job, a requeue, a walltime signal, a dask-mpi cluster), then the
user's documented paths with rankstab (cluster/slurm.yaml, cluster/slurm-sweep.sbatch as shipped, mpirun +
dask-mpi + --scheduler-file), each compared bit for bit with a local synchronous run: a walltime signal
(the job stops cleanly, says how many chunks are stored, then is resubmitted, or requeues itself), a
`scontrol requeue` mid-run, and a first attempt that died hard on "another host" (its lease names node-b).
"""

from __future__ import annotations

import json
import operator
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hpc import Slurm
from test_sweep import ROOT, assert_same, small_spec

import engine
from engine.store import done_chunks, lock_path

pytestmark = pytest.mark.slow

CLUSTER = ROOT / "cluster"


@pytest.fixture(scope="module")
def spec(spec_64x34) -> Path:
    return spec_64x34


@pytest.fixture(scope="module")
def reference(reference_64x34) -> Path:
    """The same spec run locally in one process (tests/conftest.py): what every scheduler path must
    reproduce bit for bit."""
    return reference_64x34


@pytest.fixture(scope="module")
def long_spec(tmp_path_factory) -> Path:
    """A spec whose run lasts a few seconds (512 chunks of one Saltelli block, 17,408 scenarios), for the
    tests that stop a run mid-way through Slurm: `scancel` or `scontrol requeue` takes a moment to reach
    rankstab, and the 64 chunks of `spec` can all be stored by then on a fast day."""
    return small_spec(tmp_path_factory.mktemp("long"), n=512, chunk=34, name="long")


@pytest.fixture(scope="module")
def long_reference(long_spec, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("long-ref") / "ref.zarr"
    engine.run(long_spec, out=out, synchronous=True, progress=None)
    return out


def _chunks(out: Path) -> tuple[int, int]:
    done = done_chunks(out)
    return int(done.sum()), int(done.size)


def _wait_for_chunks(out: Path, n: int, slurm: Slurm, jobid: str, timeout: float = 300) -> None:
    """Wait until `n` chunks of `out` are stored, failing early if the job ends first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if _chunks(out)[0] >= n:
                return
        except Exception:  # noqa: BLE001 - the store is still being created
            pass
        info = slurm.job(jobid)
        if info["JobState"] not in ("PENDING", "RUNNING", "CONFIGURING"):
            raise AssertionError(f"job {jobid} ended ({info['JobState']}) before {n} chunks:\n{slurm.output(info)}")
        time.sleep(0.1)
    raise AssertionError(f"job {jobid}: fewer than {n} chunks stored after {timeout} s")


def _log(info: dict[str, str]) -> str:
    return Path(info["StdOut"]).read_text(errors="replace")


# ================================================================================ the schedulers alone

def test_slurm_runs_a_batch_job(slurm, tmp_path):
    out = tmp_path / "hello.out"
    job = slurm.sbatch("--wrap", 'echo "job $SLURM_JOB_ID on $SLURMD_NODENAME"', "--output", str(out))
    info = slurm.wait_for_job(job, "COMPLETED", timeout=60)
    assert info["ExitCode"] == "0:0"
    assert out.read_text().strip() == f"job {job} on {slurm.node}"


def test_slurm_requeue_restarts_a_running_job(slurm, tmp_path):
    out = tmp_path / "requeue.out"
    script = tmp_path / "attempt.sh"
    script.write_text('#!/bin/bash\necho "attempt ${SLURM_RESTART_COUNT:-0}"\nsleep 120\n')
    job = slurm.sbatch("--requeue", "--open-mode=append", "--output", str(out), str(script))
    slurm.wait_for_job(job, "RUNNING", timeout=60)
    deadline = time.monotonic() + 30
    while "attempt 0" not in (out.read_text() if out.exists() else "") and time.monotonic() < deadline:
        time.sleep(0.1)
    slurm.scontrol("requeue", job)
    info = slurm.wait_for_job(job, "RUNNING", timeout=60)  # after AuthInfo cred_expire (5 s here)
    assert info["Restarts"] == "1"
    deadline = time.monotonic() + 30
    while "attempt 1" not in out.read_text() and time.monotonic() < deadline:
        time.sleep(0.1)
    text = out.read_text()
    assert "attempt 0" in text and "attempt 1" in text and "DUE TO JOB REQUEUE" in text, text


def test_slurm_signals_the_batch_shell_before_the_walltime(slurm, tmp_path):
    """`--signal=B:USR1@N` as the batch templates use it. slurmctld checks time limits every 30 s, so with
    a one-minute limit and N = 55 the signal comes 5-35 s after the start, long before the limit."""
    out = tmp_path / "signal.out"
    script = tmp_path / "trap.sh"
    script.write_text("#!/bin/bash\ntrap 'echo \"USR1 after ${SECONDS} s\"; exit 0' USR1\n"
                      "for i in $(seq 900); do sleep 0.1; done\necho 'no signal'\nexit 1\n")
    job = slurm.sbatch("--time=1", "--signal=B:USR1@55", "--output", str(out), str(script))
    info = slurm.wait_for_job(job, "COMPLETED", timeout=120)
    assert info["ExitCode"] == "0:0"
    seconds = int(re.fullmatch(r"USR1 after (\d+) s", out.read_text().strip()).group(1))
    assert seconds < 60  # before the walltime, not a kill at the limit


def test_mpi_dask_cluster_runs_tasks_on_two_ranks(mpi):
    from distributed import Client

    with Client(scheduler_file=str(mpi.scheduler_file), timeout=30) as client:
        ranks = client.run(os.getenv, "OMPI_COMM_WORLD_RANK")  # set by Open MPI in every rank
        assert sorted(ranks.values()) == ["1", "2"]  # rank 0 is the scheduler
        pids = client.run(os.getpid)
        assert len(set(pids.values())) == 2 and os.getpid() not in pids.values()
        futures = [client.submit(operator.mul, i, i, workers=[w], pure=False) for i, w in enumerate(ranks, 3)]
        assert client.gather(futures) == [9, 16]
        assert set(client.run(os.getenv, "MALLOC_TRIM_THRESHOLD_").values()) == {"134217728"}


# ============================================================================== the user's paths

def _slurm_yaml_copy(tmp_path: Path) -> Path:
    """cluster/slurm.yaml with only the partition and the environment line edited, as a user would."""
    text = (CLUSTER / "slurm.yaml").read_text()
    text, n_queue = re.subn(r"(?m)^  queue: null", "  queue: debug", text)
    env_line = f'export PYTHONPATH={os.environ["PYTHONPATH"]}' if os.environ.get("PYTHONPATH") else "true"
    text, n_env = re.subn(r'(?m)^    - "source ~/venvs/rankstab/bin/activate.*$', f'    - "{env_line}"', text)
    assert n_queue == 1 and n_env == 1, "cluster/slurm.yaml changed: update this test's edit"
    path = tmp_path / "slurm.yaml"
    path.write_text(text)
    return path


def test_run_with_the_slurm_yaml(slurm, spec, reference, tmp_path):
    """`rankstab run SPEC --cluster cluster/slurm.yaml`: dask-jobqueue submits the workers as Slurm jobs."""
    pytest.importorskip("dask_jobqueue")
    out = tmp_path / "jobqueue.zarr"
    cmd = [sys.executable, "-m", "engine.cli", "run", str(spec), "--cluster", str(_slurm_yaml_copy(tmp_path)),
           "--workers", "2", "--out", str(out), "--resume", "--quiet", "--no-report"]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=slurm.env, cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    assert_same(reference, out)
    jobs = sorted(tmp_path.glob("slurm-*.out"))
    assert len(jobs) >= 2, "the workers were not Slurm jobs"


def _submit_sweep(slurm: Slurm, spec: Path, out: Path, tmp_path: Path, *extra: str, **env: str) -> str:
    """`sbatch cluster/slurm-sweep.sbatch` as shipped, from the project folder, sized for this one node.
    Without the HTML report (RUN_ARGS=--no-report) unless asked: it is not what these tests compare, and
    it is the costliest step of a small run; the shipped default, with the report, runs once below."""
    env = {"SPEC": str(spec), "OUT": str(out), "SCRATCH": str(tmp_path), "RUN_ARGS": "--no-report", **env}
    return slurm.sbatch("--nodes=1", f"--ntasks-per-node={slurm.cpus}", f"--output={tmp_path}/sweep-%j.out",
                        *extra, str(CLUSTER / "slurm-sweep.sbatch"), env=env, cwd=ROOT)


@pytest.fixture(scope="module")
def shipped_sweep(slurm_session, spec, reference, tmp_path_factory):
    """One run of the shipped batch template to completion: (job record, its log, the store)."""
    tmp = tmp_path_factory.mktemp("sweep")
    out = tmp / "sweep.zarr"
    try:
        job = _submit_sweep(slurm_session, spec, out, tmp, RUN_ARGS="")  # every default, report included
        info = slurm_session.wait_for_job(job, "COMPLETED", timeout=600)
        yield info, _log(info), out
    finally:
        slurm_session.cancel_all()


def test_sbatch_sweep_as_shipped(shipped_sweep, reference):
    info, log, out = shipped_sweep
    assert info["ExitCode"] == "0:0"
    assert f"with 2 workers (job {info['JobId']}, attempt 0)" in log and "rankstab exited with code 0" in log, log
    assert f"{out}: no store yet" in log  # `validate --out` before the workers start; then `run --resume` starts it
    assert f"report: {out.with_suffix('.html')}" in log  # the default run analyses and reports
    assert_same(reference, out)
    assert not list(out.parent.glob(".rankstab/sched-*.json"))  # the scheduler file is removed at the end
    assert not lock_path(out).exists()


def test_sbatch_sweep_log_has_no_kill_noise(shipped_sweep):
    """The workers are stopped by their scheduler (they exit 0), not killed under srun's feet."""
    _, log, _ = shipped_sweep
    noise = [line for line in log.splitlines() if re.search(r"srun: |slurmstepd|Killed|CANCELLED|Traceback", line)]
    assert not noise, log


def test_sbatch_array_of_specs(slurm, tmp_path):
    """`SPECS=specs.txt sbatch --array=1-2 cluster/slurm-sweep.sbatch`: one job per spec, one store each."""
    specs = [small_spec(tmp_path, n=n, chunk=34 * 4, name=f"array{i}") for i, n in ((1, 16), (2, 32))]
    listing = tmp_path / "specs.txt"
    listing.write_text("".join(f"{p}\n" for p in specs))
    job = slurm.sbatch("--array=1-2", "--nodes=1", "--ntasks-per-node=1", f"--output={tmp_path}/array-%A_%a.out",
                       str(CLUSTER / "slurm-sweep.sbatch"), cwd=ROOT,
                       env={"SPECS": str(listing), "OUTDIR": str(tmp_path), "SCRATCH": str(tmp_path),
                            "RUN_ARGS": "--no-report"})
    for i, path in enumerate(specs, 1):
        info = slurm.wait_for_job(f"{job}_{i}", "COMPLETED", timeout=600)
        assert info["ExitCode"] == "0:0", _log(info)
        ref = tmp_path / f"ref{i}.zarr"
        engine.run(path, out=ref, synchronous=True)
        assert_same(ref, tmp_path / f"{path.stem}.zarr")


def _stored_said(log: str) -> list[tuple[int, int]]:
    """Every "N of M chunks stored" rankstab said in a log."""
    return [(int(a), int(b)) for a, b in re.findall(r"rankstab run: stopped by \w+: (\d+) of (\d+) chunks stored", log)]


def test_sbatch_sweep_walltime_signal_then_resubmit_then_requeue_itself(slurm, long_spec, long_reference, tmp_path):
    """The template's `--signal=B:USR1@180` signals the batch shell; `scancel --signal=USR1 --batch` sends
    the same signal to the same shell at a moment the test chooses (the mechanism itself is tested above).
    With REQUEUE=0 the job ends with exit code 75 and says how many chunks are stored; the user submits
    the same command again; with the default REQUEUE=1 the job requeues itself at the next signal."""
    out = tmp_path / "walltime.zarr"
    job = _submit_sweep(slurm, long_spec, out, tmp_path, REQUEUE="0")
    _wait_for_chunks(out, 2, slurm, job)
    slurm.run("scancel", "--signal=USR1", "--batch", job)
    first = slurm.wait_for_job(job, ("COMPLETED", "FAILED"), timeout=300)
    log = _log(first)
    done, total = _chunks(out)
    assert 0 < done < total, f"the signal did not stop the run mid-way ({done} of {total} chunks)"
    assert (first["JobState"], first["ExitCode"]) == ("FAILED", "75:0"), log
    assert "walltime near: stopping rankstab" in log and _stored_said(log) == [(done, total)], log
    assert "rankstab exited with code 75" in log and "submit the same command again" in log
    assert not lock_path(out).exists(), "a cleanly stopped run left its lease"
    # the user's next step: submit the same command again (default: requeue itself at the walltime)
    job = _submit_sweep(slurm, long_spec, out, tmp_path)
    _wait_for_chunks(out, done + 2, slurm, job)
    slurm.run("scancel", "--signal=USR1", "--batch", job)
    info = slurm.wait_for_job(job, "COMPLETED", timeout=600)
    log = _log(info)
    assert info["Restarts"] == "1" and info["ExitCode"] == "0:0", log
    (second, _), = _stored_said(log)
    assert done < second < total, log
    assert f"requeueing job {job}: attempt 1 resumes {out}" in log
    assert f"resuming {out}: {total - second} of {total} chunks to compute" in log
    assert log.count("rankstab exited with code 0") == 1
    assert_same(long_reference, out)


def _rankstab_pid(out: Path, jobid: str, attempt: int, timeout: float = 120) -> int:
    """The pid of the `rankstab run` of this attempt of the job writing `out`, from its lease."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            lease = json.loads(lock_path(out).read_text())
            if (lease["host"], lease["job"], lease["attempt"]) == (socket.gethostname(), f"slurm:{jobid}", attempt):
                return int(lease["pid"])
        except (FileNotFoundError, ValueError):
            pass
        time.sleep(0.1)
    raise AssertionError(f"no lease of attempt {attempt} of job {jobid} for {out} after {timeout} s")


def test_sbatch_sweep_requeued_mid_run_and_after_a_hard_death_on_another_node(slurm, long_spec, long_reference,
                                                                             tmp_path):
    """`scontrol requeue` mid-run: Slurm sends SIGTERM, rankstab stops cleanly, the next attempt resumes.
    Then that attempt dies hard (SIGKILL: a node failure), leaving its lease, which the test rewrites to
    name another host, node-b; Slurm requeues the job (here by hand) and the next attempt, on any node,
    takes the lease over at once, since it belonged to an earlier attempt of the same job."""
    out = tmp_path / "requeue.zarr"
    job = _submit_sweep(slurm, long_spec, out, tmp_path)
    _wait_for_chunks(out, 2, slurm, job)
    slurm.scontrol("requeue", job)
    info = slurm.wait_for_job(job, "RUNNING", timeout=120)
    assert info["Restarts"] == "1"
    done, total = _chunks(out)
    assert 0 < done < total
    pid = _rankstab_pid(out, job, attempt=1)
    _wait_for_chunks(out, done + 2, slurm, job)
    os.kill(pid, signal.SIGKILL)
    info = slurm.wait_for_job(job, "FAILED", timeout=120)
    lease = json.loads(lock_path(out).read_text())
    assert lease["attempt"] == 1 and lease["pid"] == pid
    lease["host"] = "node-b"
    lock_path(out).write_text(json.dumps(lease))
    slurm.scontrol("requeue", job)
    info = slurm.wait_for_job(job, "COMPLETED", timeout=600)
    log = _log(info)
    assert info["Restarts"] == "2" and info["ExitCode"] == "0:0", log
    assert "SIGTERM from Slurm: stopping rankstab" in log and re.search(r"stopped by SIGTERM: \d+ of \d+ chunks", log)
    assert (f"took over the lease of {out} from host node-b, pid {pid}, batch job {job} attempt 1: it was held by "
            "attempt 1 of this batch job, which the batch system ended") in log, log
    assert_same(long_reference, out)


def test_run_on_dask_mpi(mpi, spec, reference, tmp_path):
    """cluster/mpi.md: `mpirun -np 3 dask-mpi --scheduler-file F ...`, then `rankstab run --scheduler-file F
    --resume`, then `python -m engine.clusters.shutdown F`: every rank exits 0 and mpirun returns 0. (The last test
    of the module's dask-mpi cluster: it stops it.)"""
    out = tmp_path / "mpi.zarr"
    res = subprocess.run([sys.executable, "-m", "engine.cli", "run", str(spec), "--scheduler-file",
                          str(mpi.scheduler_file), "--out", str(out), "--resume", "--quiet", "--no-report"],
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    assert_same(reference, out)
    subprocess.run([sys.executable, "-m", "engine.clusters.shutdown", str(mpi.scheduler_file)], check=True,
                   timeout=120)
    assert mpi.proc.wait(timeout=120) == 0, mpi.log.read_text()[-3000:]
    assert "Traceback" not in mpi.log.read_text(), mpi.log.read_text()[-3000:]
