"""A cluster that starts while the caller works: :class:`BackgroundCluster`."""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import AbstractContextManager, ExitStack
from functools import partial

import distributed

from .config import resolve
from .core import CONNECT_TIMEOUT, WORKER_TIMEOUT, attached, check_arguments, started


class BackgroundCluster:
    """:func:`~.core.connect` started in a thread, so that workers spawn and import while this process
    reads the spec and creates the store; :meth:`client` waits for it. :meth:`release` starts shutting
    it down in the background (the caller finishes the store meanwhile); :meth:`close` waits for that.

    The cluster file is read in the calling (main) thread: a batch cluster imports dask-jobqueue there,
    which sets a signal handler and so cannot be first imported from the background thread. Errors are
    kept and raised by :meth:`client`, as if everything had happened in the background.
    """

    def __init__(self, cluster: str = "local", *, scheduler: str | None = None, scheduler_file: str | None = None,
                 workers: int | None = None, timeout: float = CONNECT_TIMEOUT,
                 worker_timeout: float | None = WORKER_TIMEOUT, submit: bool = True) -> None:
        self._stack = ExitStack()
        self._client: distributed.Client | None = None
        self._error: BaseException | None = None
        opened: Callable[[], AbstractContextManager[distributed.Client]] | None = None
        try:
            check_arguments(scheduler, scheduler_file, workers)
            if scheduler or scheduler_file:
                opened = partial(attached, scheduler, scheduler_file, timeout=timeout, worker_timeout=worker_timeout)
            else:
                opened = partial(started, resolve(cluster, workers), timeout=timeout, submit=submit)
        except Exception as exc:  # noqa: BLE001 - re-raised by client()
            self._error = exc
        self._started = threading.Thread(target=self._start, args=(opened,), name="rankstab-cluster")
        self._stopped: threading.Thread | None = None
        self._started.start()

    def _start(self, opened: Callable[[], AbstractContextManager[distributed.Client]] | None) -> None:
        if opened is None:
            return
        try:
            self._client = self._stack.enter_context(opened())
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread by client()
            self._error = exc

    def client(self) -> distributed.Client:
        self._started.join()
        if self._error is not None:
            raise self._error
        assert self._client is not None
        return self._client

    def release(self) -> None:
        if self._stopped is None:
            self._started.join()
            self._stopped = threading.Thread(target=self._stack.close, name="rankstab-cluster-close")
            self._stopped.start()

    def close(self) -> None:
        self.release()
        assert self._stopped is not None
        self._stopped.join()
