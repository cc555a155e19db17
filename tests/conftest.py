import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import pytest  # noqa: E402
from hpc import mpi, slurm, slurm_session  # noqa: E402,F401 - fixtures: a real one-node Slurm, dask-mpi


@pytest.fixture(scope="session")
def spec_64x34(tmp_path_factory) -> Path:
    """The small GTII spec the stop/resume tests share: 64 base samples, 2,176 scenarios in 64 chunks of 34
    (one Saltelli block each), so that a run can be stopped between chunks."""
    from test_sweep import small_spec

    return small_spec(tmp_path_factory.mktemp("spec64"), n=64, chunk=34)


@pytest.fixture(scope="session")
def reference_64x34(spec_64x34, tmp_path_factory) -> Path:
    """`spec_64x34` run locally in one process: what every cluster, scheduler and stop/resume path must
    reproduce bit for bit (computed once per session)."""
    import engine

    out = tmp_path_factory.mktemp("ref64") / "ref.zarr"
    engine.run(spec_64x34, out=out, synchronous=True)
    return out


#: The files whose tests take longest (seconds of a serial run, in this order), run first: with one
#: process per core and one file per process (`--dist loadfile`), the real-Slurm file alone takes about
#: 400 s, so it must start at once rather than after whatever precedes it alphabetically.
LONGEST_FIRST = ("test_hpc.py", "test_faults.py", "test_elastic.py", "test_sweep.py", "test_lease.py",
                 "test_scale.py", "test_api.py")


def pytest_sessionstart(session) -> None:
    """Before the test processes start (in the xdist controller, or the only process): compile numba's
    kernels into its on-disk cache, one design kind per process, in parallel (see precompile.py). On a fresh
    checkout this saves every test process and command line from compiling them again (measured on fresh
    clones: 927 s before, 863 s after, on a busy day)."""
    if hasattr(session.config, "workerinput") or _kernels_cached():  # an xdist worker: the controller did it
        return
    script = Path(__file__).with_name("precompile.py")
    procs = [subprocess.Popen([sys.executable, str(script), kind]) for kind in ("sobol", "montecarlo")]
    for proc in procs:
        if proc.wait():  # the tests that run sweeps will say what is wrong
            print(f"tests/precompile.py {proc.args[-1]} failed (exit {proc.returncode})", file=sys.stderr)


def _kernels_cached() -> bool:
    """Whether numba's cache has an index newer than the source for every engine module with compiled
    kernels (a warm checkout: running precompile.py would only cost its ~5 s)."""
    for src in (Path(__file__).resolve().parents[1] / "engine").rglob("*.py"):
        if "numba.njit" in src.read_text():
            index = list(src.parent.glob(f"__pycache__/{src.stem}.*.nbi"))
            if not index or max(p.stat().st_mtime for p in index) < src.stat().st_mtime:
                return False
    return True


def pytest_collection_modifyitems(items: list) -> None:
    def rank(item) -> int:
        name = Path(str(item.fspath)).name
        return LONGEST_FIRST.index(name) if name in LONGEST_FIRST else len(LONGEST_FIRST)

    items.sort(key=rank)  # stable: the order within a file, and of the other files, is kept
