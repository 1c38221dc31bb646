"""The phy round trip of a recording folder.

``export_phy``: the unit store's units -> a folder phy's template-gui opens (``DIR/phy/`` by
default). ``import_phy``: what a person saved there -> a new ``"phy"`` solution in the work file of
every electrode with kept clusters, the sort file ``DIR/<name>_phy.csv`` selecting them, applied by
``post_process`` (all or nothing). Anything wrong (a merge across electrodes, an unlabelled
cluster, a spike that is not an event of its electrode) is found before anything is written; if
applying fails, the work files and the sort file are put back as they were.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from blechrs.curation import phy as conversion
from blechrs.curation.sort_file import RowProblem, format_sort_file
from blechrs.errors import PhyError, PipelineError
from blechrs.io import atomic, paths, unit_store, work_files
from blechrs.io.phy import read_phy_folder, write_phy_folder
from blechrs.model import Solution
from blechrs.params import SortParams
from blechrs.pipeline.folder import load_params
from blechrs.pipeline.lock import holds_folder_lock
from blechrs.pipeline.report import RunReport
from blechrs.pipeline.store_units import post_process


@dataclass
class PhyExport:
    folder: Path
    units: int
    spikes: int


@holds_folder_lock
def export_phy(directory: str | os.PathLike, out: str | os.PathLike | None = None, force: bool = False,
               params: SortParams | None = None) -> PhyExport:
    """Write the unit store's units as a phy folder (``out``, default ``DIR/phy``). A folder
    holding a phy curation is kept unless ``force``."""
    directory = Path(directory)
    h5 = unit_store.existing_store(directory)
    params = params or load_params(directory)
    units = unit_store.read_units(h5)
    content = conversion.units_to_phy(units, params.extract.sampling_rate, params.extract.samples_before,
                                      recording=paths.recording_name(directory))
    folder = write_phy_folder(Path(out) if out is not None else paths.phy_dir(directory), content, force=force)
    return PhyExport(folder=folder, units=len(units), spikes=len(content.arrays["spike_times"]))


def work_solutions(directory: Path, electrode: int, add: dict[int, np.ndarray] | None = None,
                   kind: str = conversion.SOLUTION_KIND) -> tuple[np.ndarray, dict[int, tuple[str, np.ndarray]]]:
    """The one access to a work file here: its event times and solutions (number -> (kind,
    labels)); with ``add`` (number -> labels), first saves those as solutions of ``kind``."""
    path = paths.electrode_path(directory, electrode)
    if not path.exists():
        raise PhyError(f"electrode {electrode}: no work file {path} (not sorted here?)")
    work = work_files.load_electrode(path)
    if work.stage != "clustered":
        raise PhyError(f"electrode {electrode}: not clustered yet; run `blechrs run {directory}` first")
    if add:
        for number, labels in add.items():
            work.solutions[number] = Solution(number, np.asarray(labels, dtype=np.int64), kind)
        work_files.save_electrode(path, work)
    solutions = {n: (sol.kind, sol.labels) for n, sol in work.solutions.items()}
    return np.asarray(work.times, dtype=np.int64), solutions


@contextlib.contextmanager
def restored_on_failure(files: Sequence[Path]) -> Iterator[None]:
    """Put ``files`` back as they were (or remove them if they did not exist) unless the block
    succeeds. The old contents are kept as hard links (a copy where links are impossible)."""
    backups: dict[Path, Path] = {}
    for f in files:
        if f.exists():
            backup = f.with_name(f".{f.name}.before-phy-import")
            backup.unlink(missing_ok=True)
            try:
                os.link(f, backup)
            except OSError:
                shutil.copy2(f, backup)
            backups[f] = backup
    ok = False
    try:
        yield
        ok = True
    finally:
        for f in files:
            b = backups.get(f)
            if not ok and b is not None:
                os.replace(b, f)
            elif not ok:
                f.unlink(missing_ok=True)
            elif b is not None:
                b.unlink(missing_ok=True)


class _NotSaved(Exception):
    pass


def plan_import(directory: Path, phy_folder: Path, params: SortParams
                ) -> tuple[list[dict], dict[int, dict[int, np.ndarray]], list[str]]:
    """Read the phy folder and decide, writing nothing: (sort-file rows, new solutions per
    electrode, notes). Raises PhyError naming the folder when the curation cannot be applied."""
    folder = read_phy_folder(phy_folder)
    rate = folder.params.get("sample_rate")
    if rate is not None and abs(float(rate) - params.extract.sampling_rate) > 1e-6:
        raise PhyError(f"{phy_folder}: sample_rate {rate} in params.py, but {directory.name} is sorted at "
                       f"{params.extract.sampling_rate:g} Hz (a phy folder of another recording?)")
    try:
        clusters = conversion.kept_clusters(folder)
    except PhyError as err:
        raise PhyError(f"{phy_folder}: {err}") from None
    if not clusters:
        raise PhyError(f"{phy_folder}: every cluster is labelled noise; nothing to save "
                       f"({paths.h5_path(directory).name} left as it was)")
    notes = []
    exported_from = folder.record.get("recording")
    if exported_from and exported_from != paths.recording_name(directory):
        notes.append(f"{phy_folder} was exported from {exported_from}; its spikes match {directory.name}'s events")
    adds: dict[int, dict[int, np.ndarray]] = {}
    number_of: dict[int, int] = {}
    counts: dict[int, int] = {}
    for e in sorted({c.electrode for c in clusters}):
        mine = [c for c in clusters if c.electrode == e]
        times, solutions = work_solutions(directory, e)
        try:
            events = conversion.event_indices(times, mine)
        except PhyError as err:
            raise PhyError(f"{phy_folder}: {err}") from None
        adds[e], numbers = conversion.new_solutions(len(times), mine, events, solutions)
        number_of.update(numbers)
        counts.update({c.cluster: len(idx) for c, idx in zip(mine, events)})
        notes.append(f"phy: electrode {e:02d}: cluster(s) {', '.join(str(c.cluster) for c in mine)} -> "
                     f"solution {', '.join(map(str, sorted(set(numbers.values()))))}"
                     + (" (new)" if adds[e] else " (as imported before)"))
    return conversion.sort_entries(clusters, number_of, counts), adds, notes


@holds_folder_lock
def import_phy(directory: str | os.PathLike, phy_folder: str | os.PathLike, params: SortParams | None = None,
               report: RunReport | None = None) -> tuple[RunReport, list[RowProblem], Path | None]:
    """Apply a person's phy curation (see the module doc). Returns post_process's (report,
    problems, applied report); with problems nothing is kept (work files and sort file restored)."""
    directory, phy_folder = Path(directory), Path(phy_folder)
    if not any(paths.work_dir(directory).glob("electrode*.npz")):
        raise PipelineError(f"{directory}: not sorted yet; run `blechrs run {directory}` first")
    params = params or load_params(directory)
    entries, adds, notes = plan_import(directory, phy_folder, params)
    sort_path = paths.phy_sort_file_path(directory)
    changed = [paths.electrode_path(directory, e) for e, add in adds.items() if add]
    report = report or RunReport(directory)
    try:
        with restored_on_failure([*changed, sort_path]):
            for e, add in adds.items():
                if add:
                    work_solutions(directory, e, add)
            atomic.write_text_atomic(sort_path, format_sort_file(entries))
            result = post_process(directory, sort_path, params, report)
            if not result[0].store_written:
                raise _NotSaved(result)
    except _NotSaved as not_saved:
        report, problems, applied = not_saved.args[0]
        report.notes.append(f"{sort_path.name} and the work files were put back as they were")
        return report, problems, applied
    report.notes[:0] = notes
    return result
