"""``blechrs run DIR1 DIR2 ...``: many recordings, one after another, each with its own lock.

A recording that fails is said at once and retried once after the others (a passing problem, a
network file system or a lost cluster worker, has had time to clear; the retry resumes from what
the first attempt finished). A folder another run holds is not retried: it is reported as busy.
One recording's failure never stops the others; the result says what happened to each.
"""

from __future__ import annotations

import glob
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from blechrs.errors import BlechrsError, PipelineError
from blechrs.pipeline.chain import run
from blechrs.pipeline.lock import FolderBusyError
from blechrs.pipeline.report import RunReport

#: Tries per recording: the first and one retry.
ATTEMPTS = 2


@dataclass
class RecordingResult:
    """What happened to one recording of a batch."""

    directory: Path
    status: str = "not run"
    """'done', 'resumed' (earlier work was reused), 'failed', 'busy' (another run holds it),
    'interrupted' or 'not run'."""
    attempts: int = 0
    reason: str = ""
    """The last failure, one line (empty when the recording was sorted at the first attempt)."""
    seconds: float = 0.0
    """Time spent on it, every attempt together."""
    report: RunReport | None = None
    error: BaseException | None = field(default=None, repr=False)

    @property
    def ok(self) -> bool:
        return self.status in ("done", "resumed")

    @property
    def units(self) -> int | None:
        return len(self.report.units) if self.report is not None else None


#: on_event(kind, result): 'start' (an attempt begins), 'failed' (an attempt failed), 'finished'.
BatchEvent = Callable[[str, RecordingResult], None]


def has_glob(pattern: str) -> bool:
    return glob.has_magic(pattern)


def recording_folders(arguments: Sequence[str | os.PathLike]) -> list[Path]:
    """The folders to sort, in the order given: a glob pattern (``'recs/*'``, quoted so the shell
    leaves it) stands for the folders it matches, sorted; a folder named twice is sorted once. A
    plain path is kept as it is, folder or not (the batch then reports it). A pattern matching no
    folder is an error."""
    folders: list[Path] = []
    for arg in arguments:
        text = os.fspath(arg)
        if has_glob(text) and not Path(text).exists():
            matched = sorted(Path(m) for m in glob.glob(os.path.expanduser(text)) if Path(m).is_dir())
            if not matched:
                raise PipelineError(f"{text}: no recording folder matches this pattern")
            folders.extend(matched)
        else:
            folders.append(Path(os.path.expanduser(text)))
    seen: set[Path] = set()
    unique = []
    for f in folders:
        key = f.resolve()
        if key not in seen:
            seen.add(key)
            unique.append(f)
    return unique


def one_line(error: BaseException) -> str:
    """A failure as the CLI says it: a blechrs error's message, an OS error's file and reason,
    anything else (a bug) its type too."""
    if isinstance(error, OSError) and error.filename:
        text = f"{error.filename}: {error.strerror}"
    elif isinstance(error, (BlechrsError, OSError)):
        text = str(error) or type(error).__name__
    else:
        text = f"internal error: {type(error).__name__}: {error}"
    return " ".join(text.split())


def run_batch(folders: Sequence[Path], on_event: BatchEvent | None = None, **run_options) -> list[RecordingResult]:
    """``run(folder, **run_options)`` for every folder; a failed one again once the others are done.
    Ctrl-C (KeyboardInterrupt) stops the batch at once; the results so far are on the exception
    (``interrupted.results``)."""
    results = [RecordingResult(Path(f)) for f in folders]
    try:
        for res in results:
            _attempt(res, on_event, run_options)
        for res in results:
            if res.status == "failed" and res.attempts < ATTEMPTS:
                _attempt(res, on_event, run_options)
    except KeyboardInterrupt as interrupted:
        interrupted.results = results  # type: ignore[attr-defined]
        raise
    return results


def _attempt(res: RecordingResult, on_event: BatchEvent | None, run_options: dict) -> None:
    res.attempts += 1
    if on_event:
        on_event("start", res)
    t0 = time.perf_counter()
    try:
        report = run(res.directory, **run_options)
    except KeyboardInterrupt:
        res.status = "interrupted"
        raise
    except FolderBusyError as e:  # another run's: it is not ours to retry
        res.status, res.reason, res.error = "busy", one_line(e), e
    except Exception as e:  # noqa: BLE001 - one recording's failure, whatever it is, never stops the batch
        res.status, res.reason, res.error = "failed", one_line(e), e
    else:
        res.report, res.error = report, None
        res.status = "resumed" if report.skipped else "done"
    finally:
        res.seconds += time.perf_counter() - t0
    if on_event:
        on_event("failed" if res.status in ("failed", "busy") else "finished", res)
