"""Where a study's independent runs execute: local worker processes, or a Dask cluster.

A *scheduler string* names the place:

* ``None`` (the default): a ``concurrent.futures.ProcessPoolExecutor`` of ``spawn`` processes on
  this machine that die with their parent (:mod:`pinn_lam.studies.workers`), or, for one worker,
  this process itself (each run done at submission);
* ``"local:N"``: a ``dask.distributed.LocalCluster`` of ``N`` worker processes on this machine
  (loopback only), started and stopped with the executor;
* ``"tcp://HOST:PORT"`` (or ``tls://``): a running ``dask.distributed`` scheduler, whose workers
  may be on any number of machines (``dask worker tcp://HOST:PORT`` on each, or dask-jobqueue on
  SLURM/PBS; see docs/scale-out.md).

Dask is an optional extra (``pip install 'pinn-lam[dask]'``); asking for it without it installed
is a one-line :class:`ValueError`.

Every place hands out ``concurrent.futures.Future`` objects, so a study waits on them with
``concurrent.futures.as_completed`` whatever ran them. Each run gets
:math:`\\max(1, \\lfloor c / r \\rfloor)` torch threads, where :math:`c` is the number of cores of
the machine it runs on and :math:`r` the number of runs that machine executes at once (its
worker processes times their threads). On Dask, a worker process that dies in the middle of a
run loses only that run: the scheduler gives it to another worker (up to Dask's
``distributed.scheduler.allowed-failures`` times, then the future raises ``KilledWorker``, which
:meth:`RunExecutor.lost_worker` recognises).
"""
from __future__ import annotations

import contextlib
import os
import uuid
from concurrent.futures import Future, ProcessPoolExecutor
from multiprocessing import get_context
from typing import Any, Callable, Iterator

from pinn_lam.machine import usable_cores

#: the optional extra that brings Dask
DASK_EXTRA = "pip install 'pinn-lam[dask]'"
#: URL schemes of a remote Dask scheduler
REMOTE_SCHEMES = ("tcp://", "tls://", "inproc://", "ucx://", "ws://", "wss://")

#: per-process record of the preparations (:func:`_prepare_once`) a Dask worker has done, by token
_PREPARED: set[str] = set()


def parse_scheduler(scheduler: str | None) -> tuple[str, Any]:
    """``("processes", None)``, ``("local", n_workers)`` or ``("remote", address)``.

    >>> parse_scheduler("local:4"), parse_scheduler("tcp://10.0.0.1:8786")
    (('local', 4), ('remote', 'tcp://10.0.0.1:8786'))
    """
    if scheduler is None:
        return "processes", None
    text = str(scheduler).strip()
    if text.startswith("local:"):
        count = text[len("local:"):]
        if not count.isdigit() or int(count) < 1:
            raise ValueError(f"--scheduler local:N takes a positive number of workers, got {scheduler!r}")
        return "local", int(count)
    if text.startswith(REMOTE_SCHEMES) and len(text.split("://", 1)[1]) > 0:
        return "remote", text
    raise ValueError(f"unknown scheduler {scheduler!r}; give tcp://HOST:PORT (a running Dask scheduler) "
                     "or local:N (a local Dask cluster of N workers)")


def _require_dask() -> Any:
    """The ``distributed`` module, or a one-line error naming the extra that provides it."""
    try:
        import distributed
    except ImportError:
        raise ValueError(f"--scheduler needs Dask, which is not installed; {DASK_EXTRA}") from None
    return distributed


def set_threads(threads: int) -> None:
    """``torch.set_num_threads(max(1, threads))`` for the calling thread's process."""
    import torch

    torch.set_num_threads(max(1, int(threads)))


def _init_process(threads: int, prepare: Callable[[], None] | None, parent: int) -> None:
    """Start of a local pool worker: die with ``parent``, set the threads, tune malloc, ``prepare()``."""
    from pinn_lam.machine import tune_malloc
    from pinn_lam.studies.workers import guard_worker

    guard_worker(parent)
    set_threads(threads)
    tune_malloc()  # the worker's process is the study's own: keep freed memory for reuse, as the command line does
    if prepare is not None:
        prepare()


def _prepare_once(token: str, prepare: Callable[[], None] | None) -> None:
    """Tune malloc and run ``prepare()`` the first time this process sees ``token``."""
    if token in _PREPARED:
        return
    from pinn_lam.machine import tune_malloc

    tune_malloc()
    if prepare is not None:
        prepare()
    _PREPARED.add(token)


def runs_on_host(workers: dict[str, dict[str, Any]]) -> dict[str, int]:
    """Host -> runs it executes at once, from ``Client.scheduler_info()["workers"]`` (the sum
    of its workers' threads)."""
    hosts: dict[str, int] = {}
    for address, info in workers.items():
        host = info.get("host") or address.split("://", 1)[-1].rsplit(":", 1)[0]
        hosts[host] = hosts.get(host, 0) + int(info.get("nthreads", 1))
    return hosts


def _dask_task(fn: Callable[..., Any], args: tuple, threads: int | None, per_host: dict[str, int],
               token: str, prepare: Callable[[], None] | None) -> Any:
    """One run on a Dask worker: its torch threads, the worker's one-off preparation, ``fn(*args)``."""
    if threads is None:
        from distributed import get_worker

        worker = get_worker()
        host = worker.address.split("://", 1)[-1].rsplit(":", 1)[0]
        runs = per_host.get(host, worker.state.nthreads)  # a worker that joined later: its own threads
        threads = usable_cores() // max(1, runs)
    set_threads(threads)
    _prepare_once(token, prepare)
    return fn(*args)


class RunExecutor:
    """Submits runs to one place (see the module docstring) and says how their futures end.

    ``submit(fn, *args)`` returns a ``concurrent.futures.Future``; ``writes_results`` is false when
    the runs may execute on another machine (the caller then writes each result itself);
    ``lost_worker(error)`` tells a run that lost its worker too often from one that raised.
    """

    def __init__(self, kind: str, submit: Callable[..., Future], cancel: Callable[[], None],
                 capacity: Callable[[], int]) -> None:
        self.kind, self._submit, self._cancel, self._capacity = kind, submit, cancel, capacity

    @property
    def writes_results(self) -> bool:
        return self.kind in ("processes", "inline")

    @property
    def capacity(self) -> int:
        """How many runs execute at once (for a cluster: its workers' threads at this moment, at least 1)."""
        return max(1, int(self._capacity()))

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future:
        return self._submit(fn, *args)

    def cancel(self) -> None:
        """Drop the runs not yet started (on an interrupt or an error)."""
        self._cancel()

    def lost_worker(self, error: BaseException) -> bool:
        if self.kind in ("processes", "inline"):
            return False
        from distributed import KilledWorker

        return isinstance(error, KilledWorker)


@contextlib.contextmanager
def open_executor(scheduler: str | None = None, *, workers: int = 1, threads: int | None = None,
                  prepare: Callable[[], None] | None = None) -> Iterator[RunExecutor]:
    """The place ``scheduler`` names (module docstring), for the duration of the ``with`` block.

    Args:
        scheduler: ``None``, ``"local:N"`` or ``"tcp://HOST:PORT"``.
        workers: local pool processes (``scheduler=None`` only; 1: this process).
        threads: torch threads of every run (``None``: cores // runs at once on its machine; in
            this process, its own setting).
        prepare: picklable, run once in each worker process before its first run (e.g. a warm-up).
    """
    kind, where = parse_scheduler(scheduler)
    if kind == "processes" and workers < 1:
        raise ValueError(f"workers must be a positive integer, got {workers}")
    if kind == "processes" and workers == 1:
        if threads is not None:
            set_threads(threads)
        if prepare is not None:
            prepare()
        yield RunExecutor("inline", _run_now, lambda: None, lambda: 1)
        return
    if kind == "processes":
        per_run = threads if threads is not None else max(1, usable_cores() // workers)
        pool = ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn"), initializer=_init_process,
                                   initargs=(per_run, prepare, os.getpid()))
        try:
            yield RunExecutor(kind, pool.submit, lambda: pool.shutdown(wait=False, cancel_futures=True),
                              lambda: workers)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        return
    distributed = _require_dask()
    with contextlib.ExitStack() as stack:
        if kind == "local":
            import logging

            cluster = stack.enter_context(distributed.LocalCluster(
                n_workers=where, threads_per_worker=1, processes=True, host="127.0.0.1",
                dashboard_address=":0", silence_logs=logging.ERROR))
            client = stack.enter_context(distributed.Client(cluster))
        else:
            client = stack.enter_context(distributed.Client(where, timeout="30s"))
        per_host = runs_on_host(_workers(client))
        token = uuid.uuid4().hex
        futures: list[Any] = []

        def submit(fn: Callable[..., Any], *args: Any) -> Future:
            # pure=False: two submissions of one run are two runs (a rerun after --no-resume)
            future = client.submit(_dask_task, fn, args, threads, per_host, token, prepare, pure=False)
            futures.append(future)
            return _as_concurrent(future)

        def cancel() -> None:
            client.cancel([f for f in futures if not f.done()])

        try:
            yield RunExecutor(kind, submit, cancel,
                              lambda: sum(runs_on_host(_workers(client)).values()))
        finally:
            cancel()


def _workers(client: Any) -> dict[str, dict[str, Any]]:
    """Every worker of ``client``'s cluster: address -> its information (host, nthreads, ...)."""
    try:
        info = client.scheduler_info(n_workers=-1)  # -1: all of them, not the first few
    except TypeError:  # a Dask without the argument returns them all
        info = client.scheduler_info()
    return dict(info.get("workers", {}))


def _run_now(fn: Callable[..., Any], *args: Any) -> Future:
    """``fn(*args)`` in this process, as a finished future (its exception included)."""
    future: Future = Future()
    future.set_running_or_notify_cancel()
    try:
        future.set_result(fn(*args))
    except Exception as error:  # noqa: BLE001 - handed to whoever waits on the future
        future.set_exception(error)
    return future


def _as_concurrent(future: Any) -> Future:
    """A ``concurrent.futures.Future`` that ends as the Dask ``future`` does."""
    mirror: Future = Future()
    mirror.set_running_or_notify_cancel()

    def copy(done: Any) -> None:
        try:
            mirror.set_result(done.result())
        except BaseException as error:  # noqa: BLE001 - handed to whoever waits on the mirror
            mirror.set_exception(error)

    future.add_done_callback(copy)
    return mirror
