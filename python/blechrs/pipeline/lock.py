"""One blechrs run per recording folder at a time.

Two runs on one folder would both write its work files and unit store. The pipeline's entry points
(``run``, ``extract``, ``cluster``: so also ``blechrs autosort``, which clusters first) hold the
folder's lock (:func:`holds_folder_lock`), ``DIR/blechrs_work/blechrs.lock``: an advisory lock (``flock``, or ``msvcrt.locking`` on Windows)
on a file holding the owner's pid. The kernel releases it when its owner dies however it dies, so
a killed run's lock is stale by construction and the next run takes it over (its pid is
overwritten). On a file system without locks the pid decides: a lock whose process is not running
is stale. The lock is re-entrant within a process (``run`` calls ``extract`` ...); the file stays.

Taking the lock first removes the temporary files killed writers left in the folder: while we
hold it, no other run writes there (:func:`blechrs.io.atomic.remove_stale_temp_files`).
"""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import threading
from pathlib import Path
from typing import Callable, Iterator, TypeVar

from blechrs.errors import PipelineError
from blechrs.io import paths
from blechrs.io.atomic import process_alive, remove_stale_temp_files

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]
    import msvcrt

LOCK_NAME = "blechrs.lock"

F = TypeVar("F", bound=Callable)


class FolderBusyError(PipelineError):
    """Another blechrs process is running on the same recording folder."""


_held: dict[Path, list[int]] = {}  # folder -> [fd, depth]
_guard = threading.Lock()


def lock_path(directory: str | os.PathLike) -> Path:
    return paths.work_dir(directory) / LOCK_NAME


@contextlib.contextmanager
def folder_lock(directory: str | os.PathLike) -> Iterator[None]:
    """Hold ``directory``'s lock (re-entrant in this process), or raise :class:`FolderBusyError`
    at once naming the process that holds it. A path that is not a directory is not locked (the
    stage then reports it)."""
    directory = Path(directory)
    if not directory.is_dir():
        yield
        return
    key = directory.resolve()
    with _guard:
        entry = _held.get(key)
        if entry is not None:
            entry[1] += 1
        else:
            _held[key] = [_acquire(directory), 1]
            remove_stale_temp_files([(directory, False), (paths.work_dir(directory), True),
                                     (paths.plot_dir(directory), True), (paths.qa_dir(directory), True)])
    try:
        yield
    finally:
        with _guard:
            entry = _held[key]
            entry[1] -= 1
            if entry[1] == 0:
                del _held[key]
                os.close(entry[0])  # releases the lock; the file stays (unlinking it would race)


def holds_folder_lock(fn: F) -> F:
    """Decorate a stage whose first argument is the recording folder: it runs under the folder's lock."""

    @functools.wraps(fn)
    def locked(directory, *args, **kwargs):
        with folder_lock(directory):
            return fn(directory, *args, **kwargs)

    return locked  # type: ignore[return-value]


def _acquire(directory: Path) -> int:
    path = lock_path(directory)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        else:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
    except OSError as e:
        owner = _read_pid(fd)
        # A file system without locks (some network or FUSE mounts): the pid inside decides, and
        # the lock of a run that is not running any more is stale.
        unsupported = e.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK)
        stale = unsupported and not (owner.isdigit() and process_alive(int(owner)))
        if not stale:
            os.close(fd)
            raise FolderBusyError(f"{directory}: another blechrs process (pid {owner}) is running on this folder; "
                                  f"wait for it to finish, or stop it") from None
    os.ftruncate(fd, 0)  # a killed run's pid (its lock died with it) is replaced by ours
    os.lseek(fd, 0, os.SEEK_SET)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


def _read_pid(fd: int) -> str:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        return os.read(fd, 32).decode().strip() or "unknown"
    except (OSError, UnicodeDecodeError):  # Windows: the locked byte cannot be read
        return "unknown"
