"""Atomic writes: every file blechrs writes appears whole or not at all.

A temporary file beside the target (hidden, unique per writer, so two writers never collide) is
written, given the mode the umask allows (``mkstemp`` would leave 0600: colleagues on a shared
server could not read the outputs), then renamed over the target. On any error the temporary file
is removed and the target is left as it was, and an ``OSError`` (a full disk ...) names the target.

A kill (SIGKILL, power loss) can still leave a temporary file: its name holds the writer's pid, so
:func:`remove_stale_temp_files` (run at the start of every locked pipeline run) can tell it from one
being written now.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Iterable, Iterator, Mapping

_UMASK_LOCK = threading.Lock()
#: A write that failed with less room than this left on its disk failed because the disk is full.
FULL_DISK_BYTES = 1 << 20


def current_umask() -> int:
    with _UMASK_LOCK:  # os.umask can only be read by setting it
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = ".tmp", copy_from_target: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` (mode from the umask).

    ``suffix``: the temporary file's ending, for writers that infer the format from it (".png").
    ``copy_from_target``: start from a copy of the existing file (to modify it in place safely).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        if copy_from_target and path.exists():
            shutil.copyfile(path, tmp)
        yield tmp
        os.chmod(tmp, 0o666 & ~current_umask())
        os.replace(tmp, path)
    except OSError as e:
        if e.filename is None or Path(e.filename) == tmp:
            # "No space left on device" about a hidden temporary file says nothing useful: name the target.
            raise OSError(e.errno, f"{e.strerror or e} (writing {path.name})", str(path)) from e
        raise
    except Exception as e:
        # Writers that wrap the OS error (HDF5 ...) hide a full disk behind their own message.
        if shutil.disk_usage(path.parent).free < FULL_DISK_BYTES:
            raise OSError(errno.ENOSPC, f"No space left on device (writing {path.name})", str(path)) from e
        raise
    finally:
        tmp.unlink(missing_ok=True)


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_texts_atomic(texts: Mapping[Path, str]) -> None:
    """Write several small text files, each atomically, all or nothing: when one write fails, the
    ones written before it are put back as they were (removed if they did not exist), so a
    failure never leaves a set of files that disagree (init's .params, .info and layout). The old
    contents are held in memory: for files of a few kB."""
    before = {Path(p): Path(p).read_bytes() if Path(p).exists() else None for p in texts}
    done: list[Path] = []
    try:
        for p, text in texts.items():
            write_text_atomic(p, text)
            done.append(Path(p))
    except BaseException:  # a kill (KeyboardInterrupt) too: the files go back together
        for p in reversed(done):
            old = before[p]
            if old is None:
                p.unlink(missing_ok=True)
            else:
                write_bytes_atomic(p, old)
        raise


#: atomic_path's temporary files: ``.<name>.<pid>.<random><suffix>``, or ``.<name>.<random><suffix>``
#: as it named them before it wrote the writer's pid (every blechrs writer goes through it).
TEMP_FILE = re.compile(r"^\.(?P<target>.+?)\.(?:(?P<pid>\d+)\.)?[a-z0-9_]{8}\.\w+$")

#: A temporary file without a pid is stale when not modified for this long (a writer keeps writing).
UNNAMED_WRITER_SECONDS = 60.0


def writer_pid(name: str) -> int | None:
    """The pid in a temporary file's name, None when it holds none; raises ValueError when ``name``
    is not a temporary file of ours."""
    m = TEMP_FILE.match(name)
    if m is None:
        raise ValueError(f"{name}: not a blechrs temporary file")
    return int(m["pid"]) if m["pid"] else None


def process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    if os.name == "nt":  # os.kill(pid, 0) would terminate it there
        return _windows_process_alive(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def _windows_process_alive(pid: int) -> bool:
    """Whether process ``pid`` runs (Windows): it can be opened and has no exit code yet."""
    import ctypes
    from ctypes import wintypes

    kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)  # type: ignore[attr-defined]
    kernel32.OpenProcess.restype = wintypes.HANDLE
    kernel32.OpenProcess.argtypes = (wintypes.DWORD, wintypes.BOOL, wintypes.DWORD)
    kernel32.GetExitCodeProcess.argtypes = (wintypes.HANDLE, ctypes.POINTER(wintypes.DWORD))
    kernel32.CloseHandle.argtypes = (wintypes.HANDLE,)
    query_limited_information, still_active, access_denied = 0x1000, 259, 5
    handle = kernel32.OpenProcess(query_limited_information, False, pid)
    if not handle:  # no such process, or someone else's (then it runs)
        return ctypes.get_last_error() == access_denied  # type: ignore[attr-defined]
    try:
        code = wintypes.DWORD()
        if not kernel32.GetExitCodeProcess(handle, ctypes.byref(code)):
            return True
        return code.value == still_active
    finally:
        kernel32.CloseHandle(handle)


def remove_stale_temp_files(places: Iterable[tuple[Path, bool]], now: float | None = None) -> list[Path]:
    """Remove the temporary files a killed writer left in each (directory, recursive) place: those
    whose writer is not running, or, without a pid, not modified for ``UNNAMED_WRITER_SECONDS``.
    Only safe while no other run of ours writes there (the folder lock). Returns what was removed."""
    now = time.time() if now is None else now
    removed = []
    for directory, recursive in places:
        if not directory.is_dir():
            continue
        for p in directory.rglob(".*") if recursive else directory.glob(".*"):
            if not TEMP_FILE.match(p.name) or not p.is_file():
                continue
            pid = writer_pid(p.name)
            try:
                stale = not process_alive(pid) if pid is not None else now - p.stat().st_mtime > UNNAMED_WRITER_SECONDS
                if stale:
                    p.unlink()
                    removed.append(p)
            except FileNotFoundError:  # its writer finished meanwhile
                continue
    return removed
