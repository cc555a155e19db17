"""HPC paths against real schedulers started by the fixtures in tests/hpc.py: a one-node Slurm (munged,
slurmctld, slurmd) and dask-mpi under Debian's Open MPI.

First the schedulers themselves (a batch job, a requeue, a walltime signal, a dask-mpi cluster), then the
user's documented paths with rankstab (cluster/slurm.yaml, cluster/slurm-sweep.sbatch as shipped, mpirun +
dask-mpi + --scheduler-file), each compared bit for bit with a local synchronous run. Where a path is known
to be broken today the test runs it, checks everything that works, and xfails with the exact symptom
(pytest.xfail at the point of failure, so a fix makes the test pass without edits).
"""

from __future__ import annotations

import operator
import os
import re
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
# A GTII spec with 64 base samples: 2,176 scenarios in 64 chunks of 34 (one Saltelli block each), so a
# run can be stopped between chunks; a few seconds of work on two workers.
N, CHUNK = 64, 34


@pytest.fixture(scope="module")
def spec(tmp_path_factory) -> Path:
    return small_spec(tmp_path_factory.mktemp("spec"), n=N, chunk=CHUNK)


@pytest.fixture(scope="module")
def reference(spec, tmp_path_factory) -> Path:
    """The same spec run locally in one process: what every scheduler path must reproduce bit for bit."""
    out = tmp_path_factory.mktemp("ref") / "ref.zarr"
    engine.run(spec, out=out, synchronous=True)
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
           "--workers", "2", "--out", str(out), "--quiet", "--no-report"]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=slurm.env, cwd=tmp_path)
    if res.returncode and "signal only works in main thread" in res.stderr:
        pytest.xfail("rankstab run --cluster cluster/slurm.yaml: ValueError: signal only works in main thread "
                     "of the main interpreter (dask_jobqueue/runner.py calls signal.signal(SIGINT) at import; "
                     "rankstab imports it from its background cluster thread); exit 1 with a traceback")
    assert res.returncode == 0, res.stderr[-3000:]
    assert_same(reference, out)
    jobs = sorted(tmp_path.glob("slurm-*.out"))
    assert len(jobs) >= 2, "the workers were not Slurm jobs"


def _submit_sweep(slurm: Slurm, spec: Path, out: Path, tmp_path: Path, *extra: str) -> str:
    """`sbatch cluster/slurm-sweep.sbatch` as shipped, from the project folder, sized for this one node."""
    env = {"SPEC": str(spec), "OUT": str(out), "SCRATCH": str(tmp_path)}
    return slurm.sbatch("--nodes=1", f"--ntasks-per-node={slurm.cpus}", f"--output={tmp_path}/sweep-%j.out",
                        *extra, str(CLUSTER / "slurm-sweep.sbatch"), env=env, cwd=ROOT)


@pytest.fixture(scope="module")
def shipped_sweep(slurm_session, spec, reference, tmp_path_factory):
    """One run of the shipped batch template to completion: (job record, its log, the store)."""
    tmp = tmp_path_factory.mktemp("sweep")
    out = tmp / "sweep.zarr"
    try:
        job = _submit_sweep(slurm_session, spec, out, tmp)
        info = slurm_session.wait_for_job(job, "COMPLETED", timeout=600)
        yield info, _log(info), out
    finally:
        slurm_session.cancel_all()


def test_sbatch_sweep_as_shipped(shipped_sweep, reference):
    info, log, out = shipped_sweep
    assert info["ExitCode"] == "0:0"
    assert f"with 2 workers (job {info['JobId']})" in log and "rankstab exited with code 0" in log, log
    assert_same(reference, out)
    assert not list(out.parent.glob(".rankstab/sched-*.json"))  # the scheduler file is removed at the end


def test_sbatch_sweep_log_has_no_kill_noise(shipped_sweep):
    _, log, _ = shipped_sweep
    noise = [line for line in log.splitlines() if re.search(r"srun: .*(Killed|forcing job termination)", line)]
    if noise:
        pytest.xfail(f"slurm-sweep.sbatch cleanup kills its own srun step: {noise}")


def test_sbatch_sweep_walltime_signal_then_resubmit(slurm, spec, reference, tmp_path):
    """The template's `--signal=B:USR1@180` signals the batch shell; `scancel --signal=USR1 --batch` sends
    the same signal to the same shell at a moment the test chooses (the mechanism itself is tested above)."""
    out = tmp_path / "walltime.zarr"
    job = _submit_sweep(slurm, spec, out, tmp_path)
    _wait_for_chunks(out, 2, slurm, job)
    slurm.run("scancel", "--signal=USR1", "--batch", job)
    first = slurm.wait_for_job(job, ("COMPLETED", "FAILED"), timeout=300)
    first_log = _log(first)
    assert "walltime near: stopping rankstab" in first_log, first_log
    done, total = _chunks(out)
    assert 0 < done < total, f"the signal did not stop the run mid-way ({done} of {total} chunks)"
    assert not lock_path(out).exists(), "a cleanly stopped run left its lock"
    # the user's next step: submit the same command again
    second = slurm.wait_for_job(_submit_sweep(slurm, spec, out, tmp_path), "COMPLETED", timeout=600)
    assert "rankstab exited with code 0" in _log(second)
    assert_same(reference, out)
    if not re.search(rf"\b{done} of {total} chunks stored", first_log):
        said = [line for line in first_log.splitlines() if line.startswith("rankstab run")]
        pytest.xfail(f"walltime stop: job {first['JobState']} with ExitCode={first['ExitCode']}; rankstab said "
                     f"{said} and not '{done} of {total} chunks stored'")


def _lock_elsewhere(out: Path) -> str:
    """Make the store's lock name another host, as after a run on another node that died (a node failure,
    a preemption that killed it hard). Keeps whatever else the lock holds."""
    lf = lock_path(out)
    host = socket.gethostname()
    text = lf.read_text() if lf.exists() else f"{host} 4242"
    text = text.replace(host, "node-b") if host in text else f"node-b {text}"
    lf.write_text(text)
    return text


def test_sbatch_sweep_requeued_mid_run_resumes_from_another_node(slurm, spec, reference, tmp_path):
    out = tmp_path / "requeue.zarr"
    job = _submit_sweep(slurm, spec, out, tmp_path)
    _wait_for_chunks(out, 2, slurm, job)
    slurm.scontrol("requeuehold", job)  # requeue, held so the lock can be rewritten before it restarts
    held = slurm.wait_for_job(job, "PENDING", timeout=120)
    assert held["Restarts"] == "1"
    done, total = _chunks(out)
    assert 0 < done < total
    lock = _lock_elsewhere(out)
    slurm.scontrol("release", job)
    info = slurm.wait_for_job(job, ("COMPLETED", "FAILED"), timeout=600)
    log = _log(info)
    if info["JobState"] == "FAILED" and "is being written by another rankstab run" in log:
        pytest.xfail(f"requeued job refused by the lock of the killed first attempt ('{lock}'): "
                     f"ExitCode={info['ExitCode']}, 'delete {lock_path(out).name} if that run is gone'")
    assert info["JobState"] == "COMPLETED", log
    assert_same(reference, out)


def test_run_on_dask_mpi(mpi, spec, reference, tmp_path):
    """cluster/mpi.md: `mpirun -np 3 dask-mpi --scheduler-file F ...`, then `rankstab run --scheduler-file F`."""
    out = tmp_path / "mpi.zarr"
    res = subprocess.run([sys.executable, "-m", "engine.cli", "run", str(spec), "--scheduler-file",
                          str(mpi.scheduler_file), "--out", str(out), "--quiet", "--no-report"],
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    assert_same(reference, out)
