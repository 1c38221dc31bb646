"""``blechrs demo``: simulate a recording with ground truth, sort it, score the sort.

The score is blechrs.simulate.scoring's (spikeinterface's compare_sorter_to_ground_truth: 0.4 ms,
units paired one to one by the Hungarian algorithm). The recording and its sort stay in ``--out``
(default ``./blechrs_demo``) to look at; a later demo replaces a folder an earlier demo made.
Its ``.info`` gets placeholder subject and session fields (saying the recording is simulated), so
``blechrs export nwb`` works on it as it is.
"""

from __future__ import annotations

import datetime as dt
import shutil
import time
from pathlib import Path

import numpy as np

from blechrs.errors import BlechrsError

#: Marks a folder as made by the demo, so the next demo may replace it.
DEMO_MARKER = ".blechrs_demo"


def describe_simulation(directory: Path, seed: int, start: dt.datetime) -> None:
    """Fill the ``.info`` file's subject and session fields (which ``export nwb`` needs and a
    person fills in for a real recording) with placeholders that say the recording is simulated;
    ``start``: when it was simulated."""
    from blechrs.io.info import load_info, save_info

    info = load_info(directory)
    what = f"simulated by `blechrs demo` (seed {seed}) with ground truth: no animal was recorded"
    info["subject"].update(subject_id="simulated", species="Rattus norvegicus", sex="U", age="P90D",
                           description=f"placeholder values: the recording was {what}")
    info["session"].update(description=f"a recording {what}",
                           start_time=start.astimezone(dt.timezone.utc).replace(microsecond=0).isoformat())
    save_info(directory, info)


def main(args, console, out) -> int:
    from rich import box
    from rich.table import Table

    from blechrs.io import paths, unit_store
    from blechrs.cli.output import ProgressBars, units_table
    from blechrs import pipeline
    from blechrs.simulate import Simulation
    from blechrs.simulate.scoring import score_sorting

    directory = Path(args.out) if args.out is not None else Path("blechrs_demo")
    marker = directory / DEMO_MARKER
    if directory.exists() and any(directory.iterdir()):
        if not (args.force or marker.exists()):
            raise BlechrsError(f"{directory}: not empty and not an earlier demo (use --force to replace it)")
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    marker.write_text("made by `blechrs demo`; the next demo replaces this folder\n")
    if True:
        t0 = time.perf_counter()
        console.print(f"simulating {args.channels} channels x {args.seconds:g} s (seed {args.seed}) in {directory}")
        simulated_at = dt.datetime.now(dt.timezone.utc)
        sim = Simulation(seed=args.seed, n_channels=args.channels, duration_s=args.seconds)
        gt = sim.write(directory, layout="one file per channel")
        t_sim = time.perf_counter() - t0
        t1 = time.perf_counter()
        with ProgressBars(not args.quiet) as bars:
            report = pipeline.run(directory, jobs=args.jobs or None, plots=not args.no_plots, progress=bars,
                                  force=True)
        t_sort = time.perf_counter() - t1
        describe_simulation(directory, args.seed, simulated_at)
        out.print(units_table(report.units, f"{len(report.units)} sorted units"))
        units = unit_store.read_units(paths.h5_path(directory), waveforms=False)
        scores, unmatched = score_sorting(gt.spike_times, gt.unit_channel, {u.name: u.times for u in units},
                                          gt.sampling_rate, sorted_channels={u.name: u.electrode for u in units})
        t = Table(title="accuracy per ground-truth unit (0.4 ms, Hungarian)", title_justify="left", box=box.SIMPLE_HEAD)
        # Short headers: the table must fit 80 columns (pipes and logs are 80 wide).
        for col in ("true", "wire", "Hz", "peak uV", "spikes", "sorted", "acc", "prec", "recall"):
            t.add_column(col, justify="left" if col == "sorted" else "right", no_wrap=True)
        for s in scores:
            t.add_row(f"{s.gt_unit}", f"{s.channel:02d}", f"{gt.unit_rate_hz[s.gt_unit]:.1f}",
                      f"{gt.unit_peak_uv[s.gt_unit]:.0f}", str(s.n_true), s.sorted_unit or "-",
                      f"{s.accuracy:.2f}", f"{s.precision:.2f}", f"{s.recall:.2f}")
        out.print(t)
        acc = np.array([s.accuracy for s in scores]) if scores else np.zeros(0)
        out.print(f"{len(scores)} ground-truth units: {int(np.sum(acc >= 0.8))} well detected (accuracy >= 0.8), "
                  f"mean accuracy {acc.mean() if len(acc) else 0:.2f}; {len(units)} sorted units, "
                  f"{len(unmatched)} matching no ground-truth unit")
        out.print(f"time: simulate {t_sim:.1f} s, sort {t_sort:.1f} s ("
                  + ", ".join(f"{k} {v:.1f} s" for k, v in report.timings.items()) + ")")
        out.print(f"recording, units and pictures kept in {directory} "
                  f"(open {paths.plot_dir(directory) / 'index.html'})")
        out.print(f"as one NWB file (DANDI's format): blechrs export nwb {directory}")
        return 0
