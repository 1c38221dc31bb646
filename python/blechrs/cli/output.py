"""What a person sees: progress bars on stderr, tables and summaries on stdout (rich)."""

from __future__ import annotations

from typing import Any, Sequence

from rich import box
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

console = Console(stderr=True, highlight=False, markup=False, soft_wrap=True)
out = Console(highlight=False, markup=False)


class ProgressBars:
    """progress(stage, done, total) -> one rich bar per stage."""

    def __init__(self, enabled: bool = True):
        self.progress = Progress(TextColumn("{task.description:<10}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), console=console, transient=False,
                                 disable=not enabled)
        self.tasks: dict[str, Any] = {}

    def __enter__(self):
        self.progress.__enter__()
        return self

    def __exit__(self, *exc):
        return self.progress.__exit__(*exc)

    def __call__(self, stage: str, done: int, total: int) -> None:
        if stage not in self.tasks:
            self.tasks[stage] = self.progress.add_task(stage, total=max(total, 1))
        self.progress.update(self.tasks[stage], completed=done, total=max(total, 1))


class BatchProgress(ProgressBars):
    """A batch's bars: how many recordings are finished, and the stage bars of the one being
    sorted (the next recording's replace them, so a long batch stays a few lines)."""

    def __init__(self, enabled: bool, recordings: int):
        super().__init__(enabled)
        self.recordings = self.progress.add_task("recordings", total=max(recordings, 1))

    def next_recording(self) -> None:
        for task in self.tasks.values():
            self.progress.remove_task(task)
        self.tasks.clear()

    def recording_finished(self) -> None:
        self.progress.advance(self.recordings)


def batch_table(results: Sequence[Any], title: str = "batch") -> Table:
    """One row per recording of a batch (``pipeline.batch.RecordingResult``)."""
    t = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD)
    for col, just in (("recording", "left"), ("result", "left"), ("tries", "right"), ("units", "right"),
                      ("time", "right")):
        t.add_column(col, justify=just, no_wrap=col != "recording", overflow="fold")
    t.add_column("what happened", overflow="fold")
    names = [r.directory.name for r in results]
    if len(set(names)) < len(names):  # the folders' names alone would not tell them apart
        names = [str(r.directory) for r in results]
    for name, r in zip(names, results):
        if r.ok:
            note = f"stored in {r.report.h5.name}" if r.report.h5 else "no unit stored"
            if r.attempts > 1:
                note = f"first try failed: {r.reason}; " + note
        else:
            note = r.reason or {"interrupted": "stopped by Ctrl-C", "not run": "not started"}.get(r.status, "")
        result = "failed" if r.status == "failed" else r.status
        t.add_row(name, result, str(r.attempts), "-" if r.units is None else str(r.units),
                  f"{r.seconds:.1f} s" if r.attempts else "-", note)
    return t


def units_table(units: Sequence[dict[str, Any]], title: str = "units") -> Table:
    t = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD)
    # Short headers: the table must fit 80 columns (pipes and logs are 80 wide).
    for col, just in (("unit", "left"), ("elec", "right"), ("spikes", "right"), ("Hz", "right"),
                      ("SNR", "right"), ("ISI<1ms", "right"), ("ISI<2ms", "right"), ("single", "left"),
                      ("RS/FS", "left")):
        t.add_column(col, justify=just, no_wrap=True)
    for u in units:
        t.add_row(u["unit"], f"{u['electrode']:02d}", str(u["spikes"]), _num(u["rate"], 2), _num(u["snr"], 1),
                  _num(u["isi_1ms"], 2), _num(u["isi_2ms"], 2), "single" if u["single_unit"] else "multi",
                  u["kind"] or "-")
    return t


def _num(x, digits: int) -> str:
    try:
        x = float(x)
    except (TypeError, ValueError):
        return "-"
    return "-" if x != x else f"{x:.{digits}f}"


def print_report(report, header: str | None = None) -> None:
    if report.skipped:
        done = getattr(report, "clustered_before", [])
        console.print(f"resumed: {len(report.skipped)} electrode(s) already extracted"
                      + (f", {len(done)} of them already clustered" if done else ", none clustered yet")
                      + f" ({_electrode_list(report.skipped)}); --force redoes them")
    for e in report.quiet:
        console.print(f"electrode {e['electrode']:02d}: quiet ({e['status']}), no units")
    for note in report.notes:
        console.print(note)
    for summary in getattr(report, "summaries", []):
        out.print(summary)
    if report.units or report.h5:
        out.print(units_table(report.units, header or f"{len(report.units)} units in {report.h5}"))
    if report.timings:
        console.print("time: " + ", ".join(f"{k} {v:.1f} s" for k, v in report.timings.items()))


def _electrode_list(electrodes: Sequence[int]) -> str:
    return ", ".join(f"{e:02d}" for e in electrodes[:12]) + (" ..." if len(electrodes) > 12 else "")
