"""Where the per-electrode work runs: in this process, in a pool of spawned worker processes (the
default), or on a cluster (a :class:`RemoteExecutor`: ``pipeline.dask_cluster``).

Workers get one BLAS/OpenMP/engine thread each (the parallelism is across electrodes) and a
pre-started pool imports the clustering code while the extraction still runs. A worker exits
when its parent dies (SIGKILL leaves the pool no chance to stop it), so a killed run leaves no
process behind.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from multiprocessing import get_context
from typing import Callable

Progress = Callable[[str, int, int], None]
"""progress(stage, done, total)."""


def _one_thread_each() -> None:
    # One BLAS/OpenMP thread per worker process: the parallelism is across electrodes.
    for var in THREAD_VARS:
        os.environ[var] = "1"


def _worker_init() -> None:
    # Ctrl-C is the parent's to handle (one line, then the pool is shut down): a worker that took
    # it too would print its own traceback. Ignored first, then unblocked (see start_pool).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    _one_thread_each()


#: Seconds between a worker's checks that its parent still runs.
PARENT_POLL_S = 0.5


def _exit_with_parent(parent: int) -> None:
    """Watch the parent from a daemon thread: an orphaned worker (its parent killed, it re-parented
    to init) exits at once instead of waiting for work that never comes. ``parent`` is passed in,
    not read here: a worker still starting when its parent died would see its new parent.
    Windows re-parents nothing (``getppid`` keeps the dead parent's pid): there the worker waits
    on multiprocessing's handle of its parent process, which is signalled when the parent exits."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_POLL_S)
        os._exit(1)

    def watch_handle(sentinel: int) -> None:
        from multiprocessing.connection import wait

        wait([sentinel])
        os._exit(1)

    if os.getppid() != parent:
        os._exit(1)
    if os.name == "nt":
        from multiprocessing import parent_process

        proc = parent_process()
        if proc is None or proc.sentinel is None:
            return
        target, args = watch_handle, (proc.sentinel,)
    else:
        target, args = watch, ()
    threading.Thread(target=target, args=args, name="blechrs-parent-watch", daemon=True).start()


def _start_worker(parent: int) -> None:
    _worker_init()
    _exit_with_parent(parent)


def own_memory_mb() -> float:
    """This process's resident memory, MB (0 where /proc is not there: the budgets then trust
    their estimates alone)."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return 0.0


def n_workers(jobs: int | None) -> int:
    return max(1, jobs or os.cpu_count() or 1)


THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "RAYON_NUM_THREADS", "BLECHRS_THREADS")
"""The thread counts a worker sets to 1 (``BLECHRS_THREADS``: the engine's kernels called with
``threads=0``)."""


class RemoteExecutor:
    """Per-electrode work run elsewhere (a cluster). Tasks get folder paths and parameters, never
    arrays: the machines running them must see the recording folders under the same paths. Each
    task runs with one engine and one BLAS thread (:func:`one_thread_task`): a worker's
    parallelism is its task slots, so workers do not oversubscribe their cores."""

    #: What the summary says the work ran on.
    name = "remote"

    def map_tasks(self, fn, args: list[tuple], stage: str, progress: Progress | None) -> list:
        """fn(*a) for every a, each a task; results in input order."""
        raise NotImplementedError

    def close(self) -> None:
        """Let go of the cluster (and stop it if this executor started it)."""


def one_thread_task(fn, *args):
    """Run fn(*args) in a cluster worker with one BLAS/OpenMP thread and ``BLECHRS_THREADS``
    engine threads (1 unless the worker was started with it set: a worker with one task slot on a
    machine of its own may give the engine more)."""
    engine = os.environ.get("BLECHRS_THREADS", "1")
    _one_thread_each()
    os.environ["BLECHRS_THREADS"] = engine  # read by the engine on every call
    from threadpoolctl import threadpool_limits  # scikit-learn's own dependency

    with threadpool_limits(limits=1):
        return fn(*args)


def _warm_worker() -> None:
    """A pre-started worker's first task: import the clustering code."""
    import blechrs.schemes.sort_electrode  # noqa: F401


def start_pool(jobs: int) -> ProcessPoolExecutor | None:
    """``jobs`` spawned worker processes, started now and importing the clustering code (None for
    one job). ``run`` starts them before the extraction, which leaves part of a core idle, so their
    start-up (~0.4 s each) is off the critical path."""
    if jobs <= 1:
        return None
    return spawn_workers(jobs)


def spawn_workers(jobs: int) -> ProcessPoolExecutor:
    """:func:`start_pool`'s pool of ``jobs`` (>= 1) spawned workers, one also for one job (work
    done beside this process's own)."""
    saved = {v: os.environ.get(v) for v in THREAD_VARS}
    _one_thread_each()  # inherited by the spawned workers before they import numpy
    # Ctrl-C is held back while the workers start: they inherit the blocked signal and ignore it
    # before unblocking it (an interpreter interrupted while it starts prints a traceback of its
    # own), while the parent gets a Ctrl-C pressed meanwhile as soon as the workers are up.
    # Without signal masks (Windows) it is ignored meanwhile instead.
    blocking = hasattr(signal, "pthread_sigmask")
    main_thread = threading.current_thread() is threading.main_thread()  # only it may set handlers
    if blocking:
        # multiprocessing starts its resource tracker with the first worker and then *unblocks*
        # SIGINT in this thread (resource_tracker.ensure_running), so the later workers would start
        # interruptible: started first, it leaves the mask below alone.
        from multiprocessing import resource_tracker
        resource_tracker.ensure_running()
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT}) if blocking else None
    handler = signal.signal(signal.SIGINT, signal.SIG_IGN) if main_thread and not blocking else None
    try:
        pool = ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("spawn"), initializer=_start_worker,
                                   initargs=(os.getpid(),))
        for _ in range(jobs):  # a process is spawned per submitted task while none is idle
            pool.submit(_warm_worker)
    finally:
        # The parent keeps its own thread settings (the engine's thread pool may start later).
        for v, old in saved.items():
            if old is None:
                os.environ.pop(v, None)
            else:
                os.environ[v] = old
        # Last: a Ctrl-C held back meanwhile arrives here.
        if blocking:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        elif main_thread:
            signal.signal(signal.SIGINT, handler)
    return pool


def map_jobs(fn, args: list[tuple], jobs: int, stage: str, progress: Progress | None,
             pool: ProcessPoolExecutor | RemoteExecutor | None = None,
             memory: tuple[list[float], float] | None = None) -> list:
    """Run fn(*a) for every a, in a process pool when jobs > 1 (``pool`` if given, else a new
    one) or on a cluster (``pool`` a RemoteExecutor, whatever ``jobs``); results in input order.

    ``memory`` = (each job's memory, what the pool's jobs may use together): jobs start in order,
    side by side only while their sum fits (the first later job that fits goes ahead of one that
    does not; a job runs alone when nothing else fits beside it)."""
    if isinstance(pool, RemoteExecutor):
        return pool.map_tasks(fn, args, stage, progress)
    results: list = [None] * len(args)
    if progress:
        progress(stage, 0, len(args))
    if jobs <= 1 or len(args) <= 1:
        for i, a in enumerate(args):
            results[i] = fn(*a)
            if progress:
                progress(stage, i + 1, len(args))
        return results
    own = pool is None
    if own:
        pool = start_pool(min(jobs, len(args)))
    cost, budget = memory if memory is not None else ([0.0] * len(args), float("inf"))
    pending = list(range(len(args)))
    running: dict = {}
    try:
        done = 0
        while pending or running:
            while pending and len(running) < jobs:
                used = sum(cost[i] for i in running.values())
                pick = next((i for i in pending if not running or used + cost[i] <= budget), None)
                if pick is None:
                    break
                pending.remove(pick)
                running[pool.submit(fn, *args[pick])] = pick
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for fut in finished:
                results[running.pop(fut)] = fut.result()
                done += 1
                if progress:
                    progress(stage, done, len(args))
    finally:
        if own:
            pool.shutdown(cancel_futures=True)
    return results
