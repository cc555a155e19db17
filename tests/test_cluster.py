"""engine.clusters: local clusters, attaching to real schedulers, cluster YAML files. Real processes, no mocks.

Tasks use module-level stdlib functions (os.getenv, operator.add): they pickle by reference, so workers
started from the ``dask`` command line can run them without importing this test module.
"""

from __future__ import annotations

import json
import operator
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.clusters import WORKER_ENV, build_cluster, connect, describe, load_config
from engine.errors import UserError

ROOT = Path(__file__).resolve().parents[1]
CLUSTER_DIR = ROOT / "cluster"
OURS = WORKER_ENV["MALLOC_TRIM_THRESHOLD_"]


def _env_of_workers(client) -> dict:
    return client.run(os.getenv, "MALLOC_TRIM_THRESHOLD_")


def test_local_two_single_threaded_processes_with_our_malloc_env(monkeypatch):
    # A leftover from an earlier default Dask cluster in this process must not leak into the workers.
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "65536")
    with connect("local", workers=2) as client:
        info = client.scheduler_info(n_workers=-1)["workers"]
        assert len(info) == 2
        assert all(w["nthreads"] == 1 for w in info.values())
        pids = client.run(os.getpid)
        assert len(set(pids.values())) == 2 and os.getpid() not in pids.values()
        assert set(_env_of_workers(client).values()) == {OURS}
        assert set(client.run(os.getenv, "MALLOC_MMAP_THRESHOLD_").values()) == {WORKER_ENV["MALLOC_MMAP_THRESHOLD_"]}
        # a task (not only client.run) sees it too
        assert client.submit(os.getenv, "MALLOC_TRIM_THRESHOLD_", pure=False).result() == OURS
        assert describe(client).startswith("LocalCluster: 2 workers x 1 thread")
        limits = {w["memory_limit"] for w in info.values()}
        assert len(limits) == 1 and limits.pop() > 0
    assert os.environ["MALLOC_TRIM_THRESHOLD_"] == "65536"  # this process's environment is restored


def test_local_closes_cluster_when_the_body_raises():
    with pytest.raises(RuntimeError, match="boom"), connect("local", workers=1) as client:
        cluster = client.cluster
        raise RuntimeError("boom")
    assert client.status == "closed"
    assert cluster.status.name == "closed"


# ------------------------------------------------------------------------- attached schedulers

def _wait_file(path: Path, proc: subprocess.Popen, timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"dask scheduler exited: {proc.stderr.read().decode()[-2000:]}")
        try:
            return json.loads(path.read_text())
        except (FileNotFoundError, ValueError):
            time.sleep(0.1)
    raise RuntimeError("the scheduler did not write its file")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@pytest.fixture(scope="module")
def scheduler(tmp_path_factory):
    """A real `dask scheduler` and one `dask worker` (exported malloc env, as the batch templates do)."""
    sched_file = tmp_path_factory.mktemp("sched") / "scheduler.json"
    quiet = {**os.environ, "DASK_LOGGING__DISTRIBUTED": "warning"}
    sched = subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
                              "--port", "0", "--no-dashboard", "--dashboard-address", ":0", "--scheduler-file", str(sched_file)],
                             env=quiet, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    procs = [sched]
    try:
        address = _wait_file(sched_file, sched)["address"]
        worker = subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", "--scheduler-file",
                                   str(sched_file), "--nthreads", "1", "--no-dashboard"],
                                  env={**quiet, **WORKER_ENV}, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        procs.append(worker)
        yield {"file": sched_file, "address": address}
    finally:
        for p in reversed(procs):
            _stop(p)
        sched.stderr.close()


def test_attach_by_scheduler_file(scheduler):
    with connect(scheduler_file=str(scheduler["file"]), worker_timeout=30) as client:
        assert client.submit(operator.add, 1, 2).result() == 3
        # `dask worker` keeps an exported value (the nanny only fills in what is missing)
        assert set(_env_of_workers(client).values()) == {OURS}
        assert describe(client) == f"scheduler {scheduler['address']}: 1 worker x 1 thread"
    assert client.status == "closed"


def test_attach_by_address(scheduler):
    with connect(scheduler=scheduler["address"], worker_timeout=30) as client:
        assert client.submit(operator.mul, 6, 7).result() == 42
    with connect(scheduler=scheduler["address"].removeprefix("tcp://")) as client:  # HOST:PORT is fine
        assert client.submit(operator.neg, 5).result() == -5


def test_unreachable_address_is_a_user_error():
    t0 = time.monotonic()
    with pytest.raises(UserError) as err, connect(scheduler="tcp://127.0.0.1:1", timeout=1):
        pass
    msg = str(err.value)
    assert "cannot reach scheduler tcp://127.0.0.1:1 within 1 s" in msg and "dask scheduler" in msg
    assert "\n" not in msg
    assert time.monotonic() - t0 < 10


def test_bad_address_is_a_user_error():
    with pytest.raises(UserError, match="not a scheduler address; expected tcp://HOST:PORT"), \
            connect(scheduler="http://127.0.0.1:8787"):
        pass


def test_missing_scheduler_file_is_a_user_error(tmp_path):
    missing = tmp_path / "nope.json"
    with pytest.raises(UserError, match=r"scheduler file .*nope\.json does not exist.*dask scheduler "
                                        r"--scheduler-file"), connect(scheduler_file=str(missing), timeout=0.3):
        pass
    with pytest.raises(UserError, match="does not exist; check the path"), \
            connect(scheduler_file=str(tmp_path / "no-such-dir" / "s.json")):
        pass
    garbage = tmp_path / "garbage.json"
    garbage.write_text("not json")
    with pytest.raises(UserError, match="is not a Dask scheduler file"), \
            connect(scheduler_file=str(garbage), timeout=0.3):
        pass


def test_stale_scheduler_file_names_the_address(tmp_path):
    stale = tmp_path / "stale.json"
    stale.write_text(json.dumps({"address": "tcp://127.0.0.1:1", "type": "Scheduler"}))
    with pytest.raises(UserError, match=r"cannot reach scheduler tcp://127.0.0.1:1 \(from .*stale\.json\) "
                                        r"within 1 s; the file may be stale"), \
            connect(scheduler_file=str(stale), timeout=1):
        pass


# ------------------------------------------------------------------------- cluster YAML files

@pytest.mark.parametrize("name, marker", [("slurm", "#SBATCH -t 02:00:00"),
                                          ("pbs", "#PBS -l walltime=02:00:00")])
def test_jobqueue_files_build_job_scripts_without_submitting(name, marker):
    pytest.importorskip("dask_jobqueue")
    cfg = load_config(CLUSTER_DIR / f"{name}.yaml")
    assert cfg["kind"] == name and cfg["workers"] == 8
    cluster = build_cluster(cfg)  # starts a scheduler in this process; submits nothing
    try:
        script = cluster.job_script()
        assert marker in script
        assert "--lifetime 110m" in script and "--lifetime-stagger 4m" in script
        assert f"export MALLOC_TRIM_THRESHOLD_={OURS}" in script
        assert "bin/activate" in script  # the environment prologue
        assert "--local-directory $TMPDIR" in script
        assert script.index("export MALLOC_TRIM") < script.index("distributed.cli.dask_worker")
        assert len(cluster.workers) == 0
    finally:
        cluster.close()


# A fresh interpreter, as `rankstab run` is: dask-jobqueue not imported yet, the cluster started in
# BackgroundCluster's thread. submit=False: nothing is submitted even where the batch system exists.
BACKGROUND_JOB_SCRIPT = """
import json, signal, sys
assert "dask_jobqueue" not in sys.modules
from engine.clusters import BackgroundCluster
bg = BackgroundCluster(sys.argv[1], submit=False)
try:
    cluster = bg.client().cluster
    out = {"script": cluster.job_script(), "workers": len(cluster.workers), "kind": type(cluster).__name__,
           "ctrl_c_interrupts": signal.getsignal(signal.SIGINT) is signal.default_int_handler}
finally:
    bg.close()
print(json.dumps(out))
"""


@pytest.mark.parametrize("name, cls, marker", [("slurm", "SLURMCluster", "#SBATCH -t 02:00:00"),
                                               ("pbs", "PBSCluster", "#PBS -l walltime=02:00:00")])
def test_background_cluster_builds_jobqueue_clusters(tmp_path, name, cls, marker):
    # issue #17: dask-jobqueue first imported in the background thread -> "signal only works in main thread"
    pytest.importorskip("dask_jobqueue")
    res = subprocess.run([sys.executable, "-c", BACKGROUND_JOB_SCRIPT, str(CLUSTER_DIR / f"{name}.yaml")],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    out = json.loads(res.stdout.splitlines()[-1])
    assert out["kind"] == cls and out["workers"] == 0
    assert out["ctrl_c_interrupts"]  # dask-jobqueue's import-time SIGINT handler (sys.exit) is undone
    script = out["script"]
    assert marker in script and "--lifetime 110m" in script
    assert f"export MALLOC_TRIM_THRESHOLD_={OURS}" in script
    assert script.index("export MALLOC_TRIM") < script.index("distributed.cli.dask_worker")
    (tmp_path / "job.sh").write_text(script)
    subprocess.run(["bash", "-n", str(tmp_path / "job.sh")], check=True)


@pytest.mark.parametrize("name, command", [("slurm", "sbatch"), ("pbs", "qsub")])
def test_run_with_a_jobqueue_file_reaches_the_batch_system(tmp_path, name, command):
    # The user's command of issue #17, on a machine without the batch system (an empty PATH, so that
    # nothing is submitted where it exists): the one-line error about the batch system, not a crash.
    pytest.importorskip("dask_jobqueue")
    from test_sweep import small_spec

    empty = tmp_path / "bin"
    empty.mkdir()
    config = CLUSTER_DIR / f"{name}.yaml"
    res = subprocess.run([sys.executable, "-m", "engine.cli", "run", str(small_spec(tmp_path)), "--out",
                          str(tmp_path / "out.zarr"), "--cluster", str(config), "--quiet"],
                         env={**os.environ, "PATH": str(empty)}, capture_output=True, text=True, timeout=300)
    assert res.returncode == 2, res.stderr[-3000:]
    last = res.stderr.strip().splitlines()[-1]  # after the --quiet progress line
    assert last.startswith(f"rankstab run: error: {config}: `{command}` is not available here")
    assert "Traceback" not in res.stderr and "signal" not in res.stderr


def test_jobqueue_is_first_imported_in_the_main_thread():
    code = """
import threading
from engine.clusters import jobqueue
errors = []
def load():
    try:
        jobqueue.load()
    except RuntimeError as exc:
        errors.append(str(exc))
t = threading.Thread(target=load)
t.start()
t.join()
print(errors[0])
"""
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert "dask-jobqueue must first be imported in the main thread" in res.stdout


def test_jobqueue_without_the_batch_system_is_a_user_error(tmp_path):
    pytest.importorskip("dask_jobqueue")
    import shutil

    if shutil.which("sbatch"):
        pytest.skip("sbatch exists here: connecting would submit real jobs")
    with pytest.raises(UserError, match=r"`sbatch` is not available here.*cluster/slurm-sweep.sbatch"), \
            connect(str(CLUSTER_DIR / "slurm.yaml")):
        pass


def test_local_yaml_gives_a_working_cluster(monkeypatch):
    assert load_config(CLUSTER_DIR / "local.yaml")["kind"] == "local"
    # a value the user exported deliberately wins, as it does for `dask worker`
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "262144")
    with connect(str(CLUSTER_DIR / "local.yaml"), workers=1) as client:
        assert client.submit(operator.add, 2, 2).result() == 4
        assert set(_env_of_workers(client).values()) == {"262144"}


@pytest.mark.parametrize("name", ["slurm-sweep.sbatch", "pbs-sweep.pbs"])
def test_batch_templates_are_valid_bash(name):
    text = (CLUSTER_DIR / name).read_text()
    subprocess.run(["bash", "-n", str(CLUSTER_DIR / name)], check=True)
    assert '--scheduler-file "$SCHED"' in text and "--resume" in text and "--quiet" in text
    assert "MALLOC_TRIM_THRESHOLD_=134217728" in text and "MALLOC_MMAP_THRESHOLD_=33554432" in text
    assert str(WORKER_ENV["MALLOC_TRIM_THRESHOLD_"]) == "134217728"


def _write(tmp_path: Path, text: str) -> str:
    p = tmp_path / "c.yaml"
    p.write_text(text)
    return str(p)


@pytest.mark.parametrize("text, message", [
    ("kind: slrum\n", r'unknown kind "slrum" \(did you mean "slurm"\?\); choose one of: local, slurm, pbs'),
    ("kind: local\nworkres: 2\n", r'unknown key "workres" \(did you mean "workers"\?\)'),
    ("kind: local\noptions: {threads_per_workr: 1}\n",
     r'unknown option "threads_per_workr" for LocalCluster \(did you mean "threads_per_worker"\?\)'),
    ("kind: local\noptions: {n_workers: 3}\n", "use the top-level workers:"),
    ("kind: local\nworkers: zero\n", "workers: must be a whole number"),
    ("kind: local\nadapt: {minimum: 1, maximum: 2}\n", "adapt: is for batch clusters"),
    ("workers: 2\n", "missing kind:"),
    ("kind: local\n  workers: [2\n", "malformed YAML"),
    ("- kind: local\n", "a cluster file is a YAML mapping"),
])
def test_bad_cluster_files_are_user_errors(tmp_path, text, message):
    with pytest.raises(UserError, match=message):
        load_config(_write(tmp_path, text))


def test_jobqueue_option_errors(tmp_path):
    pytest.importorskip("dask_jobqueue")
    with pytest.raises(UserError, match=r'unknown option "walltme" for SLURMCluster \(did you mean "walltime"\?\)'):
        load_config(_write(tmp_path, "kind: slurm\noptions: {cores: 1, memory: 1GB, walltme: '01:00:00'}\n"))
    with pytest.raises(UserError, match="--lifetime 2h .* must end before the walltime 01:00:00"):
        load_config(_write(tmp_path, "kind: pbs\noptions: {cores: 1, memory: 1GB, walltime: '01:00:00',\n"
                                     "  worker_extra_args: [--lifetime, 2h]}\n"))
    with pytest.raises(UserError, match="give workers: or adapt:, not both"):
        load_config(_write(tmp_path, "kind: slurm\nworkers: 2\nadapt: {minimum: 0, maximum: 4}\n"))


def test_missing_cluster_file_and_unknown_name(tmp_path):
    with pytest.raises(UserError, match='cluster file ".*missing.yaml" does not exist'):
        load_config(tmp_path / "missing.yaml")
    with pytest.raises(UserError, match=r'unknown cluster "locla" \(did you mean "local"\?\)'), connect("locla"):
        pass


def test_scheduler_without_workers_times_out_clearly(tmp_path):
    sched_file = tmp_path / "lonely.json"
    sched = subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
                              "--port", "0", "--no-dashboard", "--dashboard-address", ":0", "--scheduler-file", str(sched_file)],
                             env={**os.environ, "DASK_LOGGING__DISTRIBUTED": "warning"},
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        address = _wait_file(sched_file, sched)["address"]
        with pytest.raises(UserError, match=rf"scheduler {address} has 0 of 1 worker after 1 s; start workers "
                                            r"with `dask worker"), \
                connect(scheduler_file=str(sched_file), worker_timeout=1):
            pass
    finally:
        _stop(sched)
        sched.stderr.close()


def test_shutdown_closes_workers_then_scheduler_all_exit_0(tmp_path):
    """`python -m engine.clusters.shutdown FILE` (the batch templates' and mpi.md's last step): a worker under
    a nanny and a nanny-less one close first, then the scheduler; every process exits 0 and logs nothing."""
    sched_file = tmp_path / "sched.json"
    quiet = {**os.environ, "DASK_LOGGING__DISTRIBUTED": "warning"}
    logs = [tmp_path / f"{name}.log" for name in ("scheduler", "nanny", "plain")]
    cmds = [["distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
             "--dashboard-address", ":0", "--scheduler-file", str(sched_file)],
            ["distributed.cli.dask_worker", "--scheduler-file", str(sched_file), "--nthreads", "1", "--no-dashboard"],
            ["distributed.cli.dask_worker", "--scheduler-file", str(sched_file), "--nthreads", "1", "--no-dashboard",
             "--no-nanny"]]
    procs = []
    try:
        for cmd, log in zip(cmds, logs, strict=True):
            with open(log, "wb") as out:
                procs.append(subprocess.Popen([sys.executable, "-m", *cmd], env=quiet, stdout=out,
                                              stderr=subprocess.STDOUT))
            if not procs[1:]:
                _wait_file(sched_file, procs[0])
        with connect(scheduler_file=str(sched_file), worker_timeout=60) as client:
            client.wait_for_workers(2, timeout=60)
            nannies = [w["nanny"] for w in client.scheduler_info(n_workers=-1)["workers"].values()]
            assert sum(n is not None for n in nannies) == 1  # one worker under a nanny, one without
        res = subprocess.run([sys.executable, "-m", "engine.clusters.shutdown", str(sched_file)],
                             capture_output=True, text=True, timeout=120)
        assert res.returncode == 0 and not res.stderr, res.stderr
        assert [p.wait(60) for p in procs] == [0, 0, 0]
        for log in logs:
            assert not log.read_text().strip(), f"{log.name}: {log.read_text()[-2000:]}"
    finally:
        for p in reversed(procs):
            _stop(p)
