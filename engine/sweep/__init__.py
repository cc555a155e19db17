"""The sweep: a spec's scenarios computed chunk by chunk into a zarr store.

``core`` (sweep, extend) decides what to compute; ``layout`` builds the store of a spec; ``job`` is what a
task needs; ``tasks`` runs on the workers; ``execute`` runs the tasks in process or on Dask; ``gather``
collects the workers' summaries after the sweep; ``progress`` shows how far it got."""

from .core import RESULTS, default_out, extend, sweep
from .job import Job, store_job
from .tasks import compute_chunk, given_plan, outputs, warm_up

__all__ = ["RESULTS", "Job", "compute_chunk", "default_out", "extend", "given_plan", "outputs", "store_job",
           "sweep", "warm_up"]
