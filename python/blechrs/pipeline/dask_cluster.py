"""The per-electrode work of every recording on a Dask distributed cluster (``--scheduler``).

The extraction runs one task per CAR group and the clustering one task per electrode; a task gets
the recording folder's path, the electrodes and the parameters (never arrays), reads and writes
the folder itself, and returns a small summary. Every machine running workers must therefore see
the recording folders under the same paths (a shared file system). Each task runs with one BLAS
thread and ``BLECHRS_THREADS`` (default 1) engine threads, so a worker with N task slots keeps to N
cores; the result is the same as a local run's, byte for byte (every fit is seeded, BLAS runs on
one thread either way).

Needs the ``dask`` extra (``pip install 'blechrs[dask]'``): ``dask[distributed]``.
"""

from __future__ import annotations

import logging
import signal

from blechrs.errors import PipelineError
from blechrs.pipeline.executors import Progress, RemoteExecutor, one_thread_task


class DaskExecutor(RemoteExecutor):
    """Tasks on a ``distributed.Client``'s cluster; ``cluster`` (a LocalCluster this executor
    started) is closed with it."""

    def __init__(self, client, cluster=None):
        self.client = client
        self.cluster = cluster
        self.name = (f"a local Dask cluster ({len(cluster.workers)} worker processes)" if cluster is not None
                     else f"the Dask cluster at {client.scheduler.address}")

    def map_tasks(self, fn, args: list[tuple], stage: str, progress: Progress | None) -> list:
        from distributed import as_completed

        if progress:
            progress(stage, 0, len(args))
        futures = [self.client.submit(one_thread_task, fn, *a, pure=False) for a in args]
        index = {f.key: i for i, f in enumerate(futures)}
        results: list = [None] * len(args)
        try:
            for done, fut in enumerate(as_completed(futures), start=1):
                i = index[fut.key]
                try:
                    results[i] = fut.result()
                except Exception as e:
                    if not _from_the_cluster(e):  # the task's own error, raised as it is
                        raise
                    raise PipelineError(f"{args[i][0]}: a {stage} task failed on the Dask cluster: "
                                        f"{type(e).__name__}: {e}") from e
                if progress:
                    progress(stage, done, len(args))
        finally:
            # A failed or interrupted recording leaves nothing running on the cluster (a retry
            # would otherwise race its own leftovers).
            self.client.cancel([f for f in futures if not f.done()])
        return results

    def close(self) -> None:
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()


def _from_the_cluster(error: BaseException) -> bool:
    """A worker lost (``KilledWorker``), a task cancelled, a connection closed: not the task's."""
    import concurrent.futures

    return (type(error).__module__.split(".")[0] in ("distributed", "tornado")
            or isinstance(error, (concurrent.futures.CancelledError, TimeoutError)))


def connect(address: str, workers: int) -> DaskExecutor:
    """A Dask executor on the scheduler at ``address`` (``tcp://host:8786``, or a scheduler file's
    path), or on a new LocalCluster of ``workers`` processes with one thread each for ``local``."""
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise PipelineError("--scheduler needs Dask's distributed scheduler: pip install 'blechrs[dask]'") from None
    if address == "local":
        def start():
            # Its logs are Dask's business, not the person's (a worker stopped by Ctrl-C says it
            # was cancelled, its nanny that it had to kill it, and a heartbeat that finds the
            # scheduler gone logs an ERROR with a traceback): critical only. A task's own error
            # reaches this process as an exception all the same.
            cluster = LocalCluster(n_workers=max(1, workers), threads_per_worker=1, processes=True,
                                   dashboard_address=None, silence_logs=logging.CRITICAL)
            return DaskExecutor(Client(cluster), cluster)

        return _quietly_started(start)
    try:
        if address.endswith(".json"):
            client = Client(scheduler_file=address, timeout="30s")
        else:
            client = Client(address, timeout="30s")
    except (OSError, ValueError) as e:  # a timeout is an OSError
        raise PipelineError(f"--scheduler {address}: cannot reach a Dask scheduler there ({e})") from None
    return DaskExecutor(client)


def _quietly_started(start):
    """``start()`` with Ctrl-C blocked meanwhile: the worker processes it spawns inherit the block
    and keep it, so a Ctrl-C in the terminal stops this process alone, which then closes the
    cluster (their tracebacks would bury its one line). A Ctrl-C pressed meanwhile arrives once
    they are up."""
    if not hasattr(signal, "pthread_sigmask"):  # Windows
        return start()
    # Started by its first user otherwise, which unblocks SIGINT in its thread after spawning it.
    from multiprocessing import resource_tracker

    resource_tracker.ensure_running()
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        return start()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
