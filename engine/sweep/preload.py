"""Imported by the local workers' forkserver (see :mod:`engine.clusters.forkserver`, which names this module): the engine, warmed up on
the shipped default spec (:func:`engine.sweep.warm_up`), so every forked worker starts its first task
warm. A failed warm-up only costs that time back: it never stops the server.
"""

from ..clusters.forkserver import adopt_parent_main
from .tasks import warm_up

adopt_parent_main()  # first: the workers must not re-run the parent's script, warm-up or not

try:
    warm_up()
except Exception:  # noqa: BLE001,S110 - an optimisation only (e.g. no shipped specs in this installation)
    pass
