"""Real batch schedulers for the tests: a one-node Slurm (munged + slurmctld + slurmd on this host, started
from a slurm.conf written here) and a dask-mpi cluster started with Debian's Open MPI `mpirun`.

Nothing here imports the engine: the fixtures only start, watch and stop real daemons. Every process a
fixture starts is stopped by its pid (process group) at the end; job processes that Slurm started for
the tests are cancelled first, then any left over (found by the fixture's own SLURM_CONF in their
environment) are killed by pid. `.ci/run` installs the Debian packages (slurm-wlm, munge, openmpi-bin);
where they are missing the fixtures skip with the reason.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

SLURM_BINARIES = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "scontrol", "sinfo", "scancel")
MPI_BINARIES = ("mpirun",)
INSTALL_HINT = "apt-get install -y slurm-wlm munge openmpi-bin libopenmpi-dev (see .ci/run)"


def free_port() -> int:
    """A TCP port nobody listens on right now (the daemons bind it a moment later)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tail(path: Path, n: int = 3000) -> str:
    try:
        return path.read_text(errors="replace")[-n:]
    except OSError:
        return f"({path} not written)"


def stop_group(proc: subprocess.Popen, timeout: float = 15) -> None:
    """SIGTERM the process group of `proc` (started with start_new_session=True), SIGKILL after `timeout`."""
    if proc.poll() is not None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)  # children the leader left behind
        return
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 10)):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(wait)
            break
        except subprocess.TimeoutExpired:
            continue
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


def pids_with_env(marker: str) -> list[int]:
    """Pids (other than this process) whose environment contains the exact entry `marker` (KEY=value)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            env = (entry / "environ").read_bytes()
        except OSError:
            continue
        if marker.encode() in env.split(b"\0"):
            found.append(int(entry.name))
    return found


# ------------------------------------------------------------------------------------------------ Slurm

SLURM_CONF = """\
# Written by tests/hpc.py: a one-node Slurm on this host for the tests. No cgroups, no accounting.
ClusterName=rankstab-test
SlurmctldHost={node}(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={munge_socket},cred_expire=5
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
SlurmctldLogFile={root}/slurmctld.log
SlurmdLogFile={root}/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SwitchType=switch/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
SchedulerParameters=bf_interval=1,sched_interval=1,batch_sched_delay=0
SlurmdParameters=config_overrides
ReturnToService=2
JobRequeue=1
MinJobAge=600
KillWait=5
InactiveLimit=0
SlurmctldTimeout=30
SlurmdTimeout=30
MessageTimeout=10
MailProg=/bin/true
NodeName={node} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={memory_mb} State=UNKNOWN
PartitionName=debug Nodes={node} Default=YES MaxTime=INFINITE State=UP
"""


@dataclass
class Slurm:
    """A running one-node Slurm: its slurm.conf, the environment for its client commands, helpers."""

    root: Path
    conf: Path
    node: str
    cpus: int
    env: dict[str, str]
    daemons: dict[str, subprocess.Popen] = field(default_factory=dict)

    # --------------------------------------------------------------------------------- commands
    def run(self, *args: str, check: bool = True, timeout: float = 60, **kw) -> subprocess.CompletedProcess:
        env = {**self.env, **kw.pop("env", {})}
        res = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout, env=env, **kw)
        if check and res.returncode:
            raise RuntimeError(f"{' '.join(args)} exited {res.returncode}: {res.stderr.strip()}\n"
                               f"slurmctld log:\n{_tail(self.root / 'slurmctld.log', 1500)}")
        return res

    def sbatch(self, *args: str, env: dict[str, str] | None = None, cwd: str | Path | None = None) -> str:
        """Submit (`sbatch --parsable ARGS`) and return the job id."""
        res = self.run("sbatch", "--parsable", *args, env=env or {}, cwd=cwd)
        return res.stdout.strip().split(";")[0]

    def scontrol(self, *args: str, check: bool = True) -> str:
        return self.run("scontrol", *args, check=check).stdout

    def squeue(self) -> dict[str, str]:
        """{job id: state} of every job the controller still lists as pending/running/completing."""
        out = self.run("squeue", "-h", "-o", "%i %T").stdout
        return dict(line.split(None, 1) for line in out.splitlines() if line.strip())

    def job(self, jobid: str) -> dict[str, str]:
        """`scontrol show job -o JOBID` as a dict (JobState, ExitCode, Restarts, NodeList, StdOut, ...)."""
        out = self.scontrol("show", "job", "-o", str(jobid)).strip()
        return dict(re.findall(r"(\w+)=(\S*)", out))

    def state(self, jobid: str) -> str:
        return self.job(jobid)["JobState"]

    def wait_for_job(self, jobid: str, states: str | tuple[str, ...], timeout: float = 120) -> dict[str, str]:
        """Wait until the job is in one of `states`; return its record. Fails early if it ends otherwise."""
        wanted = (states,) if isinstance(states, str) else tuple(states)
        final = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "PREEMPTED", "OUT_OF_MEMORY",
                 "BOOT_FAIL", "DEADLINE"}
        deadline = time.monotonic() + timeout
        info: dict[str, str] = {}
        while time.monotonic() < deadline:
            info = self.job(jobid)
            if info.get("JobState") in wanted:
                return info
            if info.get("JobState") in final:
                break
            time.sleep(0.25)
        raise AssertionError(f"job {jobid} is {info.get('JobState')}, not {'/'.join(wanted)} "
                             f"(after {timeout:.0f} s at most): {info}\n{self.output(info)}")

    @staticmethod
    def output(info: dict[str, str]) -> str:
        path = info.get("StdOut")
        return f"--- {path}:\n{_tail(Path(path), 4000)}" if path else ""

    def cancel_all(self, timeout: float = 60) -> None:
        """Cancel every job and wait until the controller lists none running and the node is idle."""
        self.run("scancel", "--user", pwd.getpwuid(os.getuid()).pw_name, check=False)
        self.run("scancel", "--state", "PENDING", check=False)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            active = {j: s for j, s in self.squeue().items() if s not in ("COMPLETED", "CANCELLED", "FAILED")}
            if not active and self.node_state() == "idle":
                return
            if active:
                self.run("scancel", *active, check=False)
            time.sleep(0.5)
        raise AssertionError(f"jobs still active after cancel: {self.squeue()}, node {self.node_state()}")

    def node_state(self) -> str:
        return self.run("sinfo", "-h", "-N", "-o", "%T", check=False).stdout.strip()

    # --------------------------------------------------------------------------------- lifecycle
    def stop(self) -> None:
        with contextlib.suppress(Exception):
            if self.daemons.get("slurmctld") and self.daemons["slurmctld"].poll() is None:
                self.cancel_all(timeout=30)
        for name in ("slurmd", "slurmctld", "munged"):
            if name in self.daemons:
                stop_group(self.daemons[name])
        # slurmstepd and job processes are started by slurmd in their own sessions: any left over
        # (a job that ignored its cancel) carries this Slurm's SLURM_CONF in its environment.
        for pid in pids_with_env(f"SLURM_CONF={self.conf}"):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)


def _missing(binaries: tuple[str, ...]) -> list[str]:
    return [b for b in binaries if not (shutil.which(b) or Path("/usr/sbin", b).exists())]


def _which(binary: str) -> str:
    return shutil.which(binary) or str(Path("/usr/sbin", binary))


def start_slurm(root: Path, cpus: int = 2) -> Slurm:
    """Write slurm.conf and a munge key under `root`, start munged, slurmctld and slurmd, wait for idle."""
    node = socket.gethostname().split(".")[0]
    (root / "state").mkdir(parents=True)
    (root / "spool").mkdir()
    (root / "munge").mkdir(mode=0o700)
    key = root / "munge" / "munge.key"
    key.write_bytes(secrets.token_bytes(1024))
    key.chmod(0o400)
    munge_socket = root / "munge" / "munge.socket"
    mem_mb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20
    conf = root / "slurm.conf"
    conf.write_text(SLURM_CONF.format(node=node, ctld_port=free_port(), slurmd_port=free_port(),
                                      munge_socket=munge_socket, root=root, cpus=cpus,
                                      memory_mb=int(mem_mb * 0.8)))
    env = {**os.environ, "SLURM_CONF": str(conf)}
    env.pop("SLURM_JOB_ID", None)  # tests may themselves run inside a Slurm job
    slurm = Slurm(root=root, conf=conf, node=node, cpus=cpus, env=env)

    def spawn(name: str, *cmd: str) -> None:
        log = open(root / f"{name}.out", "wb")  # noqa: SIM115 - closed with the process
        slurm.daemons[name] = subprocess.Popen([_which(cmd[0]), *cmd[1:]], env=env, stdout=log,
                                               stderr=subprocess.STDOUT, start_new_session=True)
        log.close()

    def wait(what: str, ok, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name, proc in slurm.daemons.items():
                if proc.poll() is not None:
                    raise RuntimeError(f"{name} exited {proc.returncode} while waiting for {what}:\n"
                                       f"{_tail(root / f'{name}.out')}\n{_tail(root / f'{name}.log')}")
            if ok():
                return
            time.sleep(0.2)
        raise RuntimeError(f"timed out waiting for {what}:\n" + "\n".join(
            f"--- {n}:\n{_tail(root / f'{n}.out', 1500)}\n{_tail(root / f'{n}.log', 1500)}" for n in slurm.daemons))

    try:
        spawn("munged", "munged", "--foreground", "--force", f"--socket={munge_socket}", f"--key-file={key}",
              f"--pid-file={root / 'munge' / 'munged.pid'}", f"--log-file={root / 'munged.log'}",
              f"--seed-file={root / 'munge' / 'munged.seed'}")
        wait("the munge socket", munge_socket.exists, 30)
        spawn("slurmctld", "slurmctld", "-D", "-i", "-f", str(conf))
        wait("slurmctld", lambda: slurm.run("scontrol", "ping", check=False).stdout.count("UP") >= 1)
        spawn("slurmd", "slurmd", "-D", "-f", str(conf), "-N", node)
        wait(f"node {node} idle", lambda: slurm.node_state() == "idle")
    except BaseException:
        slurm.stop()
        raise
    return slurm


@pytest.fixture(scope="session")
def slurm_session() -> Iterator[Slurm]:
    """One Slurm for the whole test session (started on first use, ~2-3 s)."""
    missing = _missing(SLURM_BINARIES)
    if missing:
        pytest.skip(f"SLURM NOT TESTED: {', '.join(missing)} not installed here; install with: {INSTALL_HINT}")
    if os.geteuid() != 0:
        pytest.skip("SLURM NOT TESTED: the one-node Slurm fixture runs slurmd/slurmctld as root; run as root")
    # short path: the munge socket path must fit a unix socket address (108 bytes)
    root = Path(tempfile.mkdtemp(prefix="rs-slurm-"))
    slurm = start_slurm(root)
    try:
        yield slurm
    finally:
        slurm.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def slurm(slurm_session: Slurm) -> Iterator[Slurm]:
    """The session's Slurm, with every job cancelled (and the node idle again) after the test."""
    yield slurm_session
    slurm_session.cancel_all()


# -------------------------------------------------------------------------------------------------- MPI

@dataclass
class MpiCluster:
    """A dask-mpi cluster (`mpirun -np N dask-mpi`): rank 0 the scheduler, the other ranks workers."""

    scheduler_file: Path
    proc: subprocess.Popen
    log: Path
    workers: int

    @property
    def address(self) -> str:
        return json.loads(self.scheduler_file.read_text())["address"]


def mpirun_command(scheduler_file: Path, ranks: int, local_dir: Path, forward: tuple[str, ...] = ()) -> list[str]:
    """`mpirun ... dask-mpi` as cluster/mpi.md documents it, plus what running as root here needs."""
    exports = [arg for name in forward for arg in ("-x", name)]
    return ["mpirun", "--allow-run-as-root", "--oversubscribe", "-np", str(ranks), *exports,
            sys.executable, "-m", "dask_mpi.cli", "--scheduler-file", str(scheduler_file), "--nthreads", "1",
            "--worker-class", "distributed.Worker", "--local-directory", str(local_dir), "--no-dashboard",
            "--dashboard-address", ":0", "--memory-limit", "1GB"]


def start_mpi(root: Path, ranks: int = 3, timeout: float = 90) -> MpiCluster:
    """Start `mpirun -np ranks dask-mpi`, wait for the scheduler file and ranks - 1 workers."""
    sched = root / "scheduler.json"
    log = root / "mpirun.log"
    env = {**os.environ, "MALLOC_TRIM_THRESHOLD_": "134217728", "MALLOC_MMAP_THRESHOLD_": "33554432",
           "DASK_LOGGING__DISTRIBUTED": "warning",
           # one host: Open MPI's own traffic (dask-mpi's barrier) over loopback TCP, no shared-memory transport
           "OMPI_MCA_btl": "self,tcp", "OMPI_MCA_btl_tcp_if_include": "lo"}
    forward = tuple(k for k in ("MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_", "DASK_LOGGING__DISTRIBUTED",
                                "PYTHONPATH") if env.get(k))
    with open(log, "wb") as out:
        proc = subprocess.Popen(mpirun_command(sched, ranks, root, forward), env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    cluster = MpiCluster(scheduler_file=sched, proc=proc, log=log, workers=ranks - 1)
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"mpirun exited {proc.returncode}:\n{_tail(log)}")
            if sched.exists() and _count_workers(sched) >= ranks - 1:
                return cluster
            time.sleep(0.3)
        raise RuntimeError(f"dask-mpi did not start {ranks - 1} workers within {timeout:.0f} s:\n{_tail(log)}")
    except BaseException:
        stop_group(proc)
        raise


def _count_workers(sched: Path) -> int:
    from distributed import Client

    try:
        with Client(scheduler_file=str(sched), timeout=5) as client:
            return len(client.scheduler_info(n_workers=-1)["workers"])
    except (OSError, TimeoutError, ValueError):
        return 0


@pytest.fixture(scope="module")
def mpi(tmp_path_factory) -> Iterator[MpiCluster]:
    """A 3-rank dask-mpi cluster (1 scheduler + 2 single-threaded workers), one per test module."""
    missing = _missing(MPI_BINARIES)
    if missing:
        pytest.skip(f"MPI NOT TESTED: {', '.join(missing)} not installed here; install with: {INSTALL_HINT}")
    pytest.importorskip("dask_mpi", reason="MPI NOT TESTED: pip install dask-mpi mpi4py")
    pytest.importorskip("mpi4py", reason="MPI NOT TESTED: pip install dask-mpi mpi4py")
    cluster = start_mpi(tmp_path_factory.mktemp("mpi"))
    try:
        yield cluster
    finally:
        stop_group(cluster.proc)
