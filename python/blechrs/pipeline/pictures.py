"""``blechrs plot``: every picture of a sorted recording, and the page that links them.

- ``DIR/blechrs_plots/electrodeNN/solutionKK.png``: one figure per electrode and clustering
  solution (:mod:`blechrs.figures.solutions`);
- ``DIR/blechrs_plots/units/unitNNN.png``: the same three panels for every stored unit
  (:mod:`blechrs.figures.units`);
- ``DIR/blechrs_plots/index.html``: every unit (with its metrics), every electrode's solutions and
  the quality checks (:mod:`blechrs.figures.index_page`).

Figures are made in a process pool, one task per electrode.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Sequence

from blechrs.figures.index_page import IndexContents, index_html
from blechrs.figures.solutions import plot_solution
from blechrs.figures.units import plot_unit
from blechrs.io import layout, paths, unit_store, work_files
from blechrs.io.atomic import write_text_atomic
from blechrs.model import ElectrodeWork
from blechrs.params import SortParams
from blechrs.pipeline.executors import map_jobs
from blechrs.pipeline.lock import holds_folder_lock


def _stamp(work: ElectrodeWork) -> str:
    return f"{work.fp_extract or ''}-{work.fp_cluster or ''}\n"


def _peak(work: ElectrodeWork, params: SortParams) -> int:
    return min(params.extract.samples_before, max(work.waveforms.shape[1] - 1, 0))


def solutions_current(directory, electrode: int, meta: ElectrodeWork) -> bool:
    """Whether the electrode's solution figures were drawn from its current clustering."""
    stamp = paths.plot_dir(directory) / f"electrode{electrode:02d}" / "solutions.stamp"
    return stamp.exists() and stamp.read_text() == _stamp(meta)


def plot_solutions(directory, work: ElectrodeWork, params) -> list[str]:
    """One figure per clustering solution of one electrode."""
    fs = params.extract.sampling_rate
    electrode = work.electrode
    peak = _peak(work, params)
    out_dir = paths.plot_dir(directory) / f"electrode{electrode:02d}"
    if out_dir.exists():  # solutions of an earlier clustering (e.g. another max_clusters)
        for p in out_dir.glob("solution*.png"):
            p.unlink()
    made = []
    threshold = work.threshold or None
    duration = work.duration_s(fs, or_last_event=True)
    for number, sol in sorted(work.solutions.items()):
        made.append(str(plot_solution(out_dir / f"solution{number:02d}.png", electrode, number, sol.labels,
                                      work.times, work.waveforms, fs, peak, duration, threshold)))
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "solutions.stamp").write_text(_stamp(work))
    return made


def plot_electrode(directory: str, electrode: int, params: SortParams, solutions: bool = True) -> list[str]:
    """The pictures of one electrode: its solutions (if ``solutions``) and its stored units."""
    fs = params.extract.sampling_rate
    work = work_files.load_electrode(paths.electrode_path(directory, electrode))
    peak = _peak(work, params)
    duration = work.duration_s(fs, or_last_event=True)
    made = plot_solutions(directory, work, params) if solutions else []
    for u in unit_store.read_units(paths.h5_path(directory), waveforms=True, electrode=electrode):
        sub = (f"{'single' if u.single_unit else 'multi'}-unit"
               + (", RS" if u.regular_spiking else ", FS" if u.fast_spiking else "")
               + f", SNR {u.snr:.1f}, solution {u.solution} cluster {u.label}")
        made.append(str(plot_unit(u.name, u.electrode, u.times, u.waveforms, fs, peak, duration,
                                  paths.plot_dir(directory) / "units" / f"{u.name}.png", sub)))
    return made


def write_index(directory: str | os.PathLike, electrodes: Sequence[int]) -> Path:
    """``blechrs_plots/index.html``: every unit and every electrode's solutions, linked."""
    directory = Path(directory)
    root = paths.plot_dir(directory)
    units = unit_store.read_units(paths.h5_path(directory), waveforms=False)
    solutions = []
    for e in electrodes:
        d = root / f"electrode{e:02d}"
        solutions.append((e, [p.name for p in sorted(d.glob("solution*.png"))] if d.exists() else None))
    qa_out = paths.qa_dir(directory)
    contents = IndexContents(
        recording=paths.recording_name(directory), units=units, solutions=solutions,
        qa_dir=os.path.relpath(qa_out, root),
        qa_entries=[(p.name, p.is_file()) for p in sorted(qa_out.glob("*"))] if qa_out.exists() else [],
        unit_qa=[u.name for u in units if (root / "qa" / f"{u.name}.png").exists()],
    )
    path = root / "index.html"
    root.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, index_html(contents))
    return path


@holds_folder_lock
def plot_recording(directory: str | os.PathLike, params, jobs: int = 1,
                   progress: Callable[[str, int, int], None] | None = None,
                   electrodes: Sequence[int] | None = None, redraw_solutions: bool = True) -> Path:
    """Every picture of a recording, one process-pool task per electrode, then the index page.
    With ``redraw_solutions`` False, solution figures already drawn from the current clustering
    (``run`` draws them in the clustering workers) are kept."""
    directory = Path(directory)
    if electrodes is None:
        electrodes = layout.sorted_electrodes(layout.load_layout(directory))
    old_units = paths.plot_dir(directory) / "units"
    if old_units.exists():  # unit numbers change between sorts; stale pictures would mislead
        for p in old_units.glob("unit*.png"):
            p.unlink()
    args = []
    for e in electrodes:
        redo = redraw_solutions or not solutions_current(
            directory, e, work_files.read_meta(paths.electrode_path(directory, e)))
        args.append((str(directory), int(e), params, redo))
    # Unit pictures alone are cheap: no worker processes for them.
    heavy = sum(1 for a in args if a[3])
    map_jobs(plot_electrode, args, jobs if heavy > 1 else 1, "plots", progress)
    return write_index(directory, electrodes)
