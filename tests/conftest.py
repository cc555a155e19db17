import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from hpc import mpi, slurm, slurm_session  # noqa: E402,F401 - fixtures: a real one-node Slurm, dask-mpi
