"""The ``blechrs`` command line.

``blechrs run DIR`` sorts a recording folder end to end; every stage is also a subcommand
(``init``, ``extract``, ``cluster``, ``autosort``, ``post-process --sort-file F``, ``plot``,
``arrays``) and ``blechrs demo`` sorts a simulated recording and scores it against its ground
truth. Nothing ever prompts. An error is one line and exit code 1 (a traceback with --debug).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any, Sequence

from rich import box
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from blechrs.errors import BlechrsError

console = Console(stderr=True, highlight=False, markup=False, soft_wrap=True)
out = Console(highlight=False, markup=False)


class _Bars:
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


def _jobs(args) -> int:
    return args.jobs if args.jobs and args.jobs > 0 else (os.cpu_count() or 1)


def _params(directory):
    from blechrs.pipeline import stages as pipeline
    return pipeline.load_params(directory)


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


def _print_report(report, header: str | None = None) -> None:
    if report.skipped:
        console.print(f"resumed: {len(report.skipped)} electrode(s) already done "
                      f"({', '.join(f'{e:02d}' for e in report.skipped[:12])}{' ...' if len(report.skipped) > 12 else ''}); "
                      "--force redoes them")
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


# ------------------------------------------------------------------------------------------------
# Commands


def cmd_init(args) -> int:
    from blechrs.pipeline import stages as pipeline
    res = pipeline.init(args.dir, force=args.force, auto_car=args.auto_car)
    for line in res.lines():
        console.print(line)
    return 0


def cmd_run(args) -> int:
    from blechrs.pipeline import stages as pipeline
    with _Bars(not args.quiet) as bars:
        report = pipeline.run(args.dir, force=args.force, jobs=_jobs(args), plots=not args.no_plots,
                              progress=bars, auto_car=args.auto_car)
    if args.copy_raw:
        _copy_raw(args.dir)
    _print_report(report)
    return 0


def cmd_extract(args) -> int:
    from blechrs.pipeline import stages as pipeline
    params = _params(args.dir)
    params.run.n_jobs = _jobs(args)
    with _Bars(not args.quiet) as bars:
        report = pipeline.extract(args.dir, params, force=args.force, progress=bars)
    _print_report(report)
    return 0


def cmd_cluster(args) -> int:
    from blechrs.pipeline import stages as pipeline
    with _Bars(not args.quiet) as bars:
        report = pipeline.cluster(args.dir, force=args.force, jobs=_jobs(args), progress=bars)
    _print_report(report)
    return 0


def cmd_autosort(args) -> int:
    from blechrs.pipeline import stages as pipeline
    with _Bars(not args.quiet) as bars:
        report = pipeline.cluster(args.dir, force=args.force, jobs=_jobs(args), progress=bars, only_autosort=True)
        pipeline.save_autosort(args.dir, force=args.force, report=report)
    _print_report(report)
    console.print(f"auto-sort's choices: {pipeline.autosort_sort_file_path(args.dir)} "
                  "(edit it and run `blechrs post-process DIR --sort-file FILE`)")
    return 0


def cmd_post_process(args) -> int:
    from blechrs.pipeline import stages as pipeline
    report, problems, applied = pipeline.post_process(args.dir, args.sort_file)
    for p in problems:
        console.print(f"{args.sort_file}: {p} (nothing saved from it)")
    if not args.no_plots and report.store_written:  # unchanged units keep their pictures
        from blechrs.pipeline import pictures as plots
        with _Bars(not args.quiet) as bars:
            plots.plot_recording(args.dir, pipeline.load_params(args.dir), jobs=_jobs(args), progress=bars)
    _print_report(report)
    console.print(f"applied report: {applied}")
    return 1 if problems else 0


def cmd_plot(args) -> int:
    from blechrs.pipeline import pictures as plots
    with _Bars(not args.quiet) as bars:
        index = plots.plot_recording(args.dir, _params(args.dir), jobs=_jobs(args), progress=bars)
    console.print(f"pictures: {index}")
    return 0


def cmd_arrays(args) -> int:
    from blechrs.pipeline import trial_arrays as arrays
    from blechrs.pipeline import stages as pipeline

    result = arrays.make_arrays(args.dir, pipeline.load_params(args.dir))
    out.print(result)
    return 0


def cmd_qa(args) -> int:
    from blechrs.pipeline import unit_qa as qa
    from blechrs.pipeline import stages as pipeline

    out.print(qa.unit_qa(args.dir, pipeline.load_params(args.dir), pictures=not args.no_plots))
    return 0


def cmd_demo(args) -> int:
    from blechrs.cli.main import demo
    return demo.main(args, console, out)


def _copy_raw(directory) -> None:
    """Store the raw amplifier channels in ``<name>.h5:/raw/electrodeNN`` (blech_clust's layout)."""
    from blechrs.io import paths
    from blechrs.io import copy_raw, open_recording
    from blechrs.pipeline import stages as pipeline

    written = copy_raw(open_recording(directory), paths.h5_path(directory), pipeline.sorted_electrodes(directory))
    console.print(f"raw channels copied to {paths.h5_path(directory)}:/raw ({len(written)} electrodes)")


# ------------------------------------------------------------------------------------------------


def _common(suppress: bool) -> argparse.ArgumentParser:
    # The options work before or after the command; after it, SUPPRESS keeps a sub-command's
    # defaults from overwriting what was given before it.
    d = (lambda v: argparse.SUPPRESS) if suppress else (lambda v: v)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", default=d(False), help="show tracebacks")
    common.add_argument("--jobs", "-j", type=int, default=d(0), help="worker processes (default: all cores)")
    common.add_argument("--force", action="store_true", default=d(False),
                        help="redo finished work / replace existing files")
    common.add_argument("--no-plots", action="store_true", default=d(False), help="skip the pictures")
    common.add_argument("--quiet", "-q", action="store_true", default=d(False), help="no progress bars")
    return common


def build_parser() -> argparse.ArgumentParser:
    common = _common(suppress=True)
    p = argparse.ArgumentParser(prog="blechrs", description="Fast, non-interactive spike sorting of Intan recordings.",
                                parents=[_common(suppress=False)])
    p.add_argument("--version", action="version", version=f"blechrs {_version()}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    def add(name, fn, help_text, needs_dir=True):
        sp = sub.add_parser(name, help=help_text, description=help_text, parents=[common])
        if needs_dir:
            sp.add_argument("dir", type=Path, help="recording folder")
        sp.set_defaults(func=fn)
        return sp

    r = add("run", cmd_run, "sort a recording folder end to end")
    r.add_argument("--copy-raw", action="store_true", help="also store the raw channels in DIR/<name>.h5:/raw")
    i = add("init", cmd_init, "write <name>.info, the electrode layout and <name>.params, check the raw data")
    auto_car_help = "split CAR groups by channel correlation when the layout is written (spec 3.4)"
    i.add_argument("--auto-car", action="store_true", help=auto_car_help)
    r.add_argument("--auto-car", action="store_true", help=auto_car_help)
    add("extract", cmd_extract, "reference, filter, detect and cut waveforms per electrode")
    add("cluster", cmd_cluster, "features and every clustering solution per electrode")
    add("autosort", cmd_autosort, "choose units automatically, store them and write the sort file applied")
    pp = add("post-process", cmd_post_process, "store the units chosen in a sort file")
    pp.add_argument("--sort-file", "-f", type=Path, required=True, help="CSV: Unit,Chan,Solution,Cluster,Split,single_unit,Type,Comments")
    add("plot", cmd_plot, "pictures of every electrode, solution and unit, and an index.html")
    add("arrays", cmd_arrays, "spike-train arrays per trial")
    add("qa", cmd_qa, "unit QA: similarity, drift across trials, a picture per unit")
    d = add("demo", cmd_demo, "simulate a recording with ground truth, sort it and score it", needs_dir=False)
    d.add_argument("--out", type=Path, default=None, help="folder for the simulated recording (default: a temp folder)")
    d.add_argument("--seconds", type=float, default=60.0)
    d.add_argument("--channels", type=int, default=32)
    d.add_argument("--seed", type=int, default=0)
    return p


def _version() -> str:
    try:
        from blechrs import __version__
        return __version__
    except ImportError:
        return "unknown"


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 1
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        console.print("blechrs: interrupted")
        return 130
    except (BlechrsError, OSError) as e:  # the user's to fix: one clear line unless --debug
        if args.debug:
            raise
        msg = str(e) or type(e).__name__
        if isinstance(e, OSError) and e.filename:
            msg = f"{e.filename}: {e.strerror}"
        console.print(f"blechrs: error: {msg}")
        return 1
    except Exception:  # a bug: the traceback, and where to report it
        console.print("blechrs: internal error (a bug in blechrs; please report it with the traceback below)")
        raise

if __name__ == "__main__":
    sys.exit(main())
