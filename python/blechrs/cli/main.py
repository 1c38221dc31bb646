"""The ``blechrs`` command line.

``blechrs run DIR`` sorts a recording folder end to end (``run DIR1 DIR2 ...`` a batch, each
failure retried once, then a summary table; ``--scheduler`` on a Dask cluster); every stage is also a subcommand
(``init``, ``extract``, ``cluster``, ``autosort``, ``post-process --sort-file F``, ``plot``,
``arrays``, ``qa``; ``export phy`` / ``import phy`` for curating in phy, ``export nwb`` for sharing,
``export si-curation`` / ``import si-curation`` for SpikeInterface's curation format) and ``blechrs demo`` sorts a simulated recording and scores it against its ground
truth. Nothing ever prompts. An error is one line and exit code 1 (a traceback with --debug).
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from pathlib import Path
from typing import Sequence

from blechrs.cli.output import BatchProgress, ProgressBars, batch_table, console, out, print_report
from blechrs.errors import BlechrsError, PipelineError

def _jobs(args) -> int:
    return args.jobs if args.jobs and args.jobs > 0 else (os.cpu_count() or 1)


def _params(directory):
    from blechrs import pipeline
    return pipeline.load_params(directory)


# ------------------------------------------------------------------------------------------------
# Commands


def _describe_binary(args, folder: Path) -> None:
    """``--format binary ...``: save the raw binary description in the folder first."""
    if getattr(args, "format", None) is None:
        return
    from blechrs import pipeline
    if args.sampling_rate is None or args.channels is None:
        raise BlechrsError("--format binary needs --sampling-rate HZ and --channels N")
    p = pipeline.describe_binary(folder, args.sampling_rate, args.channels, file=args.file, dtype=args.dtype,
                                 offset=args.offset, gain=args.gain, force=args.force)
    console.print(f"raw binary recording described in {p}")


def cmd_init(args) -> int:
    from blechrs import pipeline
    _describe_binary(args, args.dir)
    res = pipeline.init(args.dir, force=args.force, auto_car=args.auto_car)
    shown = {f"warning: {w}" for w in res.recording.warnings}  # (shown once already: _recording_warnings_once)
    for line in res.lines():
        if line not in shown:
            console.print(line)
    return 0


def cmd_run(args) -> int:
    from blechrs import pipeline
    from blechrs.pipeline import batch

    folders = args.dir
    if len(folders) > 1 or (batch.has_glob(str(folders[0])) and not folders[0].exists()):
        if args.format is not None:
            raise BlechrsError("--format binary describes one recording folder: run it on each folder first")
        return _run_batch(args, batch.recording_folders(folders))
    _describe_binary(args, folders[0])
    executor = _executor(args)
    try:
        with ProgressBars(not args.quiet) as bars:
            report = pipeline.run(folders[0], force=args.force, jobs=_jobs(args), plots=not args.no_plots,
                                  progress=bars, auto_car=args.auto_car, executor=executor)
    finally:
        if executor is not None:
            executor.close()
    if args.copy_raw:
        _copy_raw(folders[0])
    print_report(report)
    return 0


def _executor(args):
    """The cluster the per-electrode work runs on (``--scheduler``), None for the local pool."""
    if not args.scheduler:
        return None
    from blechrs.pipeline import dask_cluster
    return dask_cluster.connect(args.scheduler, _jobs(args))


def _run_batch(args, folders) -> int:
    """Every folder in turn (a failed one retried once, after the others), then a summary table;
    exit code 1 when any recording is not sorted."""
    from blechrs.pipeline import batch

    executor = _executor(args)
    console.print(f"batch: {len(folders)} recordings" + (f", per-electrode work on {executor.name}"
                                                          if executor is not None else ""))
    results = []
    try:
        with BatchProgress(not args.quiet, len(folders)) as bars:
            def on_event(kind: str, res) -> None:
                _batch_event(args, bars, kind, res)

            results = batch.run_batch(folders, on_event=on_event, force=args.force, jobs=_jobs(args),
                                      plots=not args.no_plots, progress=bars, auto_car=args.auto_car,
                                      executor=executor)
            bars.next_recording()  # the last recording's stage bars go: the table says the rest
    except KeyboardInterrupt as e:
        out.print(batch_table(getattr(e, "results", results), "batch (interrupted)"))
        raise
    finally:
        if executor is not None:
            executor.close()
    if args.copy_raw:
        for res in (r for r in results if r.ok):
            try:
                _copy_raw(res.directory)
            except (BlechrsError, OSError) as e:
                res.status, res.reason = "failed", f"--copy-raw: {batch.one_line(e)}"
    failed = [r for r in results if not r.ok]
    out.print(batch_table(results, f"batch: {len(results) - len(failed)} of {len(results)} recordings sorted"))
    return 1 if failed else 0


def _batch_event(args, bars, kind: str, res) -> None:
    """What a person sees while a batch runs: a line per recording started, failed or finished."""
    from blechrs.pipeline import batch
    if kind == "start":
        bars.next_recording()
        console.print(f"{res.directory}: sorting" + (" (retry)" if res.attempts > 1 else ""))
        return
    if kind == "failed":
        if res.status == "failed" and res.attempts < batch.ATTEMPTS:
            console.print(f"{res.directory}: failed: {res.reason}; retried once after the others")
            return
        console.print(f"{res.directory}: {res.status}: {res.reason}")
        if args.debug and res.error is not None:
            import traceback
            console.print("".join(traceback.format_exception(res.error)).rstrip())
    else:
        for note in res.report.notes:
            console.print(f"{res.directory}: {note}")
        units = len(res.report.units)
        console.print(f"{res.directory}: {res.status}, {units} unit{'s' if units != 1 else ''} "
                      f"({res.seconds:.1f} s)")
    bars.recording_finished()


def cmd_extract(args) -> int:
    from blechrs import pipeline
    params = _params(args.dir)
    params.run.n_jobs = _jobs(args)
    with ProgressBars(not args.quiet) as bars:
        report = pipeline.extract(args.dir, params, force=args.force, progress=bars)
    print_report(report)
    return 0


def cmd_cluster(args) -> int:
    from blechrs import pipeline
    with ProgressBars(not args.quiet) as bars:
        report = pipeline.cluster(args.dir, force=args.force, jobs=_jobs(args), progress=bars)
    print_report(report)
    return 0


def cmd_autosort(args) -> int:
    from blechrs import pipeline
    from blechrs.pipeline.lock import folder_lock
    # One lock from the new units to their pictures: no other command sees them half done.
    with folder_lock(args.dir), ProgressBars(not args.quiet) as bars:
        report = pipeline.cluster(args.dir, force=args.force, jobs=_jobs(args), progress=bars, only_autosort=True)
        pipeline.save_autosort(args.dir, force=args.force, report=report)
        if report.store_written:
            pipeline.outputs_after_store(args.dir, pipeline.load_params(args.dir), report,
                                         pictures=not args.no_plots, jobs=_jobs(args), progress=bars)
    print_report(report)
    console.print(f"auto-sort's choices: {pipeline.autosort_sort_file_path(args.dir)} "
                  "(edit it and run `blechrs post-process DIR --sort-file FILE`)")
    return 0


def cmd_post_process(args) -> int:
    from blechrs import pipeline
    from blechrs.pipeline.lock import folder_lock
    with folder_lock(args.dir):  # one lock from the new units to their pictures, arrays and QA
        report, problems, applied = pipeline.post_process(args.dir, args.sort_file, check=args.check)
        return _after_store(args, args.sort_file, report, problems, applied)


def _after_store(args, sort_file, report, problems, applied) -> int:
    """What post-process and import print and redo once a sort file was applied."""
    from blechrs import pipeline
    for p in problems:
        console.print(f"{sort_file}: {p}")
    if report.store_written:  # pictures, arrays, QA and index follow the new units
        with ProgressBars(not args.quiet) as bars:
            pipeline.outputs_after_store(args.dir, pipeline.load_params(args.dir), report,
                                         pictures=not args.no_plots, jobs=_jobs(args), progress=bars)
    print_report(report)
    if applied is not None:
        console.print(f"applied report: {applied}")
    return 1 if problems else 0


def cmd_export(args) -> int:
    if args.format == "nwb":
        return _export_nwb(args)
    if args.raw:
        raise PipelineError("--raw is for `export nwb` (phy's folder and a curation file need no raw data)")
    if args.format == "si-curation":
        from blechrs.pipeline import spikeinterface as si
        made = si.export_si_curation(args.dir, out=args.out, force=args.force)
        console.print(f"SpikeInterface curation: {made.path} ({made.units} units; unit id = the store's unit "
                      f"number, as blechrs.to_spikeinterface gives them); edit it or save one from "
                      f"spikeinterface-gui, then `blechrs import si-curation {args.dir} FILE`")
        return 0
    from blechrs.pipeline import phy
    done = phy.export_phy(args.dir, out=args.out, force=args.force)
    console.print(f"phy folder: {done.folder} ({done.units} units, {done.spikes} spikes); open it with "
                  f"`phy template-gui {done.folder / 'params.py'}`, then `blechrs import phy {args.dir} {done.folder}`")
    return 0


def _export_nwb(args) -> int:
    from blechrs.pipeline.export_nwb import export_nwb
    with ProgressBars(not args.quiet and args.raw) as bars:
        done = export_nwb(args.dir, out=args.out, raw=args.raw, force=args.force, progress=bars)
    for note in done.notes:
        console.print(note)
    console.print(f"NWB file: {done.path} ({done.units} units, {done.spikes} spikes, {done.electrodes} electrodes, "
                  f"{done.trials} trials" + (", raw data" if done.raw else "") + ")")
    return 0


def cmd_import(args) -> int:
    from blechrs.io import paths
    from blechrs.pipeline.lock import folder_lock
    with folder_lock(args.dir):  # one lock from the new units to their pictures, arrays and QA
        if args.format == "si-curation":
            from blechrs.pipeline import spikeinterface as si
            report, problems, applied = si.import_si_curation(args.dir, args.source)
            return _after_store(args, paths.si_sort_file_path(args.dir), report, problems, applied)
        from blechrs.pipeline import phy
        report, problems, applied = phy.import_phy(args.dir, args.source or paths.phy_dir(args.dir))
        return _after_store(args, paths.phy_sort_file_path(args.dir), report, problems, applied)


def cmd_plot(args) -> int:
    from blechrs.pipeline import pictures as plots
    with ProgressBars(not args.quiet) as bars:
        index = plots.plot_recording(args.dir, _params(args.dir), jobs=_jobs(args), progress=bars)
    console.print(f"pictures: {index}")
    return 0


def cmd_arrays(args) -> int:
    from blechrs import pipeline
    from blechrs.pipeline import trial_arrays as arrays

    result = arrays.make_arrays(args.dir, pipeline.load_params(args.dir))
    out.print(result)
    return 0


def cmd_qa(args) -> int:
    from blechrs import pipeline
    from blechrs.pipeline import unit_qa as qa

    out.print(qa.unit_qa(args.dir, pipeline.load_params(args.dir), pictures=not args.no_plots))
    return 0


def cmd_demo(args) -> int:
    from blechrs.cli import demo
    return demo.main(args, console, out)


def _copy_raw(directory) -> None:
    """Store the raw amplifier channels in ``<name>.h5:/raw/electrodeNN`` (blech_clust's layout)."""
    from blechrs.io import paths
    from blechrs.io import copy_raw, open_recording
    from blechrs import pipeline

    written = copy_raw(open_recording(directory), paths.h5_path(directory), pipeline.sorted_electrodes(directory))
    console.print(f"raw channels copied to {paths.h5_path(directory)}:/raw ({len(written)} electrodes)")


# ------------------------------------------------------------------------------------------------


_OPTIONS = {
    "debug": (("--debug",), dict(action="store_true", help="show tracebacks")),
    "jobs": (("--jobs", "-j"), dict(type=int, help="worker processes (default: all cores)")),
    "force": (("--force",), dict(action="store_true", help="redo finished work / replace existing files")),
    "no_plots": (("--no-plots",), dict(action="store_true", help="skip the pictures")),
    "quiet": (("--quiet", "-q"), dict(action="store_true", help="no progress bars")),
}
_DEFAULTS = {"debug": False, "jobs": 0, "force": False, "no_plots": False, "quiet": False}

#: Each command: (what it does, its options, what it reads, what it writes).
_COMMANDS = {
    "run": ("sort a recording folder end to end (several, or a glob pattern: a batch; --scheduler: on a Dask "
            "cluster)", ("jobs", "force", "no_plots", "quiet"),
            "the Intan files; <name>.params, .info and layout (written first by init when missing)",
            "blechrs_work/, <name>.h5, <name>_autosort.csv, blechrs_plots/, QA_output/, trial_info_frame.csv"),
    "init": ("write <name>.info, the electrode layout and <name>.params, check the raw data", ("force",),
             "the Intan files", "<name>.info, <name>_electrode_layout.csv, <name>.params (kept unless --force), "
             "QA_output/"),
    "extract": ("reference, filter, detect and cut waveforms per electrode", ("jobs", "force", "quiet"),
                "the Intan files, <name>.params, the layout", "blechrs_work/electrodeNN.npz"),
    "cluster": ("features and every clustering solution per electrode", ("jobs", "force", "quiet"),
                "blechrs_work/, <name>.params", "blechrs_work/electrodeNN.npz"),
    "autosort": ("choose units automatically, store them and write the sort file applied",
                 ("jobs", "force", "no_plots", "quiet"), "blechrs_work/, <name>.params",
                 "<name>.h5, <name>_autosort.csv (an edited one is kept unless --force), then the pictures, "
                 "arrays and QA of its units"),
    "post-process": ("store the units chosen in a sort file (all rows or nothing)", ("jobs", "no_plots", "quiet"),
                     "the sort file (never modified), blechrs_work/, <name>.params",
                     "<name>.h5, DIR/<sort file>_applied.csv, blechrs_plots/ (nothing with --check)"),
    "plot": ("pictures of every electrode, solution and unit, and an index.html", ("jobs", "quiet"),
             "blechrs_work/, <name>.h5, <name>.params", "blechrs_plots/"),
    "arrays": ("spike-train arrays per trial", (), "the digital inputs, <name>.info, <name>.h5",
               "trial_info_frame.csv, <name>.h5:/spike_trains"),
    "qa": ("unit QA: similarity, drift across trials, a picture per unit", ("no_plots",),
           "<name>.h5, the trial table", "QA_output/, blechrs_plots/qa/"),
    "export": ("write the stored units for another tool: phy (a folder its template-gui opens, no raw file "
               "needed), nwb (one NWB file, DANDI's format) or si-curation (a SpikeInterface curation file)",
               ("force", "quiet"),
               "<name>.h5, <name>.params; nwb: also <name>.info (subject, session), the layout, the Intan files",
               "phy: --out (default DIR/phy/): params.py, spike_*.npy, templates, features, waveforms, cluster_*.tsv "
               "(a folder holding a phy curation is kept unless --force); nwb: --out (default DIR/<name>.nwb; "
               "a file blechrs did not write, or that changed since, is kept unless --force); si-curation: --out "
               "(default DIR/<name>_si_curation.json; another file there is kept unless --force)"),
    "import": ("apply what was saved in phy or a SpikeInterface curation (good = single, mua = multi, "
               "noise = dropped; merges, splits, removed units), all or nothing", ("no_plots", "jobs", "quiet"),
               "phy: SOURCE = the phy folder (default DIR/phy/); si-curation: SOURCE = the curation JSON "
               "(default DIR/<name>_si_curation.json); blechrs_work/, <name>.params",
               "a 'phy' / 'si' solution in blechrs_work/electrodeNN.npz when needed, <name>_phy.csv / <name>_si.csv "
               "(the sort file), <name>.h5, DIR/<sort file>_applied.csv, blechrs_plots/"),
    "demo": ("simulate a recording with ground truth, sort it and score it", ("jobs", "force", "no_plots", "quiet"),
             "nothing", "a simulated recording and its sort in --out (default ./blechrs_demo)"),
}


def _add_options(parser: argparse.ArgumentParser, names, suppress: bool) -> None:
    # After the command, SUPPRESS keeps a sub-command's defaults from overwriting an option given
    # before it (the common options work on either side of the command).
    for name in ("debug", *names):
        flags, kw = _OPTIONS[name]
        parser.add_argument(*flags, **kw, default=argparse.SUPPRESS if suppress else _DEFAULTS[name])


def _add_binary_options(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group(
        "other recordings", "Open Ephys (.continuous) and Neuralynx (.ncs) folders are found by themselves (pip "
        "install 'blechrs[neo]'); a raw binary file is described once with these options (saved in "
        "DIR/blechrs_binary.json, so later commands need none)")
    g.add_argument("--format", choices=("binary",), default=None, help="the folder holds a raw binary recording")
    g.add_argument("--sampling-rate", type=float, default=None, metavar="HZ")
    g.add_argument("--channels", type=int, default=None, metavar="N", help="channels, interleaved sample by sample")
    g.add_argument("--file", default=None, metavar="NAME", help="the data file (default: the folder's one "
                                                                ".raw/.bin/.dat file)")
    g.add_argument("--dtype", default="int16", help="sample type, numpy's name (default int16; '>' for big-endian)")
    g.add_argument("--offset", type=int, default=0, metavar="BYTES", help="header bytes to skip (default 0)")
    g.add_argument("--gain", type=float, default=None, metavar="UV",
                   help="microvolts per unit of the file (default 1: voltages shown are the file's units)")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="blechrs", description="Fast, non-interactive spike sorting of Intan recordings.")
    _add_options(p, ("jobs", "force", "no_plots", "quiet"), suppress=False)
    p.add_argument("--version", action="version", version=f"blechrs {_version()}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    funcs = {"run": cmd_run, "init": cmd_init, "extract": cmd_extract, "cluster": cmd_cluster,
             "autosort": cmd_autosort, "post-process": cmd_post_process, "plot": cmd_plot, "arrays": cmd_arrays,
             "qa": cmd_qa, "export": cmd_export, "import": cmd_import, "demo": cmd_demo}
    parsers = {}
    for name, (what, options, reads, writes) in _COMMANDS.items():
        sp = sub.add_parser(name, help=what, description=what, epilog=f"reads:  {reads}\nwrites: {writes}",
                            formatter_class=argparse.RawDescriptionHelpFormatter)
        _add_options(sp, options, suppress=True)
        if name in ("export", "import"):
            sp.add_argument("format", choices=("phy", "nwb", "si-curation") if name == "export"
                            else ("phy", "si-curation"), help="the other tool's format")
        if name == "run":
            sp.add_argument("dir", type=Path, nargs="+", metavar="DIR",
                            help="recording folder; several, or a quoted glob pattern ('recs/*'), sort a batch")
        elif name != "demo":
            sp.add_argument("dir", type=Path, help="recording folder")
        sp.set_defaults(func=funcs[name])
        parsers[name] = sp
    auto_car_help = "split CAR groups by channel correlation when the layout is written (spec 3.4)"
    parsers["run"].add_argument("--copy-raw", action="store_true", help="also store the raw channels in DIR/<name>.h5:/raw")
    parsers["run"].add_argument("--auto-car", action="store_true", help=auto_car_help)
    parsers["run"].add_argument("--scheduler", metavar="ADDRESS", default=None,
                                help="run the per-electrode work on a Dask cluster: its scheduler's address "
                                     "(tcp://host:8786) or scheduler file, or 'local' for a LocalCluster of "
                                     "--jobs processes (pip install 'blechrs[dask]'; docs/cluster.md)")
    parsers["init"].add_argument("--auto-car", action="store_true", help=auto_car_help)
    for name in ("run", "init"):
        _add_binary_options(parsers[name])
    pp = parsers["post-process"]
    pp.add_argument("--sort-file", "-f", type=Path, required=True, help="CSV: Unit,Chan,Solution,Cluster,Split,single_unit,Type,Comments")
    pp.add_argument("--check", action="store_true",
                    help="validate the sort file and list the units it would save; write nothing")
    parsers["export"].add_argument("--out", type=Path, default=None,
                                   help="the phy folder (default: DIR/phy), NWB file (default: DIR/<name>.nwb) "
                                        "or curation file (default: DIR/<name>_si_curation.json)")
    parsers["export"].add_argument("--raw", action="store_true",
                                   help="nwb: also the raw amplifier channels (an ElectricalSeries, streamed)")
    parsers["import"].add_argument("source", type=Path, nargs="?", default=None,
                                   help="the phy folder phy saved the curation in (default: DIR/phy), or the "
                                        "SpikeInterface curation file (default: DIR/<name>_si_curation.json)")
    d = parsers["demo"]
    d.add_argument("--out", type=Path, default=None, help="folder for the simulated recording and its sort "
                                                            "(default: ./blechrs_demo, replaced on each demo)")
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


def _recording_warnings_once() -> None:
    """A recording's warnings (dropped samples, gaps, an assumed gain) as one plain line each,
    once per command: every stage opens the recording and would repeat them with source lines."""
    from blechrs.io import RecordingWarning

    shown, seen = warnings.showwarning, set()

    def show(message, category, filename, lineno, file=None, line=None):
        if not issubclass(category, RecordingWarning):
            shown(message, category, filename, lineno, file, line)
        elif str(message) not in seen:  # (not the "once" filter: catch_warnings forgets what it showed)
            seen.add(str(message))
            console.print(f"warning: {message}", markup=False, highlight=False)

    warnings.filterwarnings("always", category=RecordingWarning)
    warnings.showwarning = show


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _recording_warnings_once()
    if not getattr(args, "command", None):
        parser.print_help()
        return 1
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        # Interrupted mid-write, a library may warn at exit about what it closes (PyTables: an
        # unclosed temp file, which the next run removes); the person asked to stop: one line.
        warnings.simplefilter("ignore")
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
