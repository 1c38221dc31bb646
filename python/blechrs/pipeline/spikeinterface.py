"""The SpikeInterface curation round trip of a recording folder.

``export_si_curation``: the unit store -> ``DIR/<name>_si_curation.json``, a SpikeInterface
curation (format 2) of the sorting ``blechrs.to_spikeinterface(DIR)`` returns: every unit with its
labels, nothing removed, merged or split (``curation.spikeinterface``). A file there that is not
what the export writes (a person's curation) is kept unless ``force``.

``import_si_curation``: a curation of that sorting (spikeinterface-gui's, or a dict for
``spikeinterface.curation.apply_curation`` saved as JSON) -> the sort file ``DIR/<name>_si.csv``,
applied by ``post_process`` (all or nothing). A curated unit that its original row still makes
(a kept unit, a merge of clusters of one solution) is selected by that row; any other (a split, a
merge across solutions) by its cluster of a new ``"si"`` solution in the electrode's work file.
Everything is checked before anything is written; if applying fails, the work files and the sort
file are put back as they were (``pipeline.phy.restored_on_failure``).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from blechrs.curation import spikeinterface as conversion
from blechrs.curation.phy import new_solutions
from blechrs.curation.sort_file import RowProblem, format_sort_file
from blechrs.errors import PipelineError, SpikeInterfaceError
from blechrs.interop.spikeinterface import unit_number
from blechrs.io import atomic, paths, unit_store
from blechrs.model import Unit
from blechrs.params import SortParams
from blechrs.pipeline.folder import load_params
from blechrs.pipeline.lock import holds_folder_lock
from blechrs.pipeline.phy import restored_on_failure, work_solutions
from blechrs.pipeline.report import RunReport
from blechrs.pipeline.store_units import post_process


@dataclass
class CurationExport:
    path: Path
    units: int


def stored_units(directory: Path) -> dict[int, Unit]:
    """The store's units (times, no waveforms) by their SpikeInterface unit id."""
    units = unit_store.read_units(unit_store.existing_store(directory), waveforms=False)
    return {unit_number(u.name): u for u in units}


@holds_folder_lock
def export_si_curation(directory: str | os.PathLike, out: str | os.PathLike | None = None,
                       force: bool = False) -> CurationExport:
    """Write the store's units as a SpikeInterface curation (``out``, default
    ``DIR/<name>_si_curation.json``); another file there is kept unless ``force``."""
    directory = Path(directory)
    stored = stored_units(directory)
    if not stored:
        raise PipelineError(f"{paths.h5_path(directory)}: no units to export (sort the recording first)")
    text = json.dumps(conversion.units_to_curation(list(stored.values()), list(stored),
                                                   store=paths.h5_path(directory).name), indent=1) + "\n"
    path = Path(out) if out is not None else paths.si_curation_path(directory)
    if path.exists() and not force and path.read_text(errors="replace") != text:
        raise SpikeInterfaceError(f"{path}: exists and is not this store's export (a curation of yours?); kept it "
                                  "(--force replaces it, --out FILE writes elsewhere)")
    atomic.write_text_atomic(path, text)
    return CurationExport(path=path, units=len(stored))


def read_curation_file(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SpikeInterfaceError(f"{path}: no such curation file") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise SpikeInterfaceError(f"{path}: not a JSON curation file ({e})") from None


def plan_import(directory: Path, curation_file: Path) -> tuple[list[dict], dict[int, dict[int, np.ndarray]], list[str]]:
    """Read the curation and decide, writing nothing: (sort-file rows, new solutions per
    electrode, notes). Raises SpikeInterfaceError naming the file when it cannot be applied."""
    stored = stored_units(directory)
    data = read_curation_file(curation_file)  # its errors name the file already
    try:
        curated, notes = conversion.curated_units(data, stored)
    except SpikeInterfaceError as err:
        raise SpikeInterfaceError(f"{curation_file}: {err}") from None
    if not curated:
        raise SpikeInterfaceError(f"{curation_file}: every unit is removed or labelled noise; nothing to save "
                                  f"({paths.h5_path(directory).name} left as it was)")
    entries: list[dict] = []
    adds: dict[int, dict[int, np.ndarray]] = {}
    for e in sorted({c.electrode for c in curated}):
        mine = [c for c in curated if c.electrode == e]
        times, solutions = work_solutions(directory, e)
        try:
            events = conversion.event_indices(times, mine)
        except SpikeInterfaceError as err:
            raise SpikeInterfaceError(f"{curation_file}: {err}") from None
        rows: dict[int, tuple[int, tuple[int, ...]]] = {}
        rest = []
        for k, (c, idx) in enumerate(zip(mine, events)):
            row = conversion.provenance(c, stored)
            if row is not None and row[0] in solutions and np.array_equal(
                    np.flatnonzero(np.isin(solutions[row[0]][1], row[1])), idx):
                rows[k] = row
            else:
                rest.append(k)
        adds[e], numbers = new_solutions(len(times), [mine[k] for k in rest], [events[k] for k in rest],
                                         solutions, kind=conversion.SOLUTION_KIND)
        rows.update({k: (numbers[mine[k].cluster], (mine[k].cluster,)) for k in rest})
        entries.extend(conversion.sort_entry(c, *rows[k], stored) for k, c in enumerate(mine))
        if rest:
            notes.append(f"SpikeInterface: electrode {e:02d}: unit(s) {', '.join(str(mine[k].unit_id) for k in rest)} "
                         f"-> solution {', '.join(map(str, sorted(set(numbers.values()))))}"
                         + (" (new)" if adds[e] else " (as imported before)"))
    return entries, adds, notes


class _NotSaved(Exception):
    pass


@holds_folder_lock
def import_si_curation(directory: str | os.PathLike, curation_file: str | os.PathLike | None = None,
                       params: SortParams | None = None, report: RunReport | None = None
                       ) -> tuple[RunReport, list[RowProblem], Path | None]:
    """Apply a SpikeInterface curation (module doc; default file ``DIR/<name>_si_curation.json``).
    Returns post_process's (report, problems, applied report); with problems nothing is kept."""
    directory = Path(directory)
    curation_file = Path(curation_file) if curation_file is not None else paths.si_curation_path(directory)
    if not any(paths.work_dir(directory).glob("electrode*.npz")):
        raise PipelineError(f"{directory}: not sorted yet; run `blechrs run {directory}` first")
    params = params or load_params(directory)
    entries, adds, notes = plan_import(directory, curation_file)
    sort_path = paths.si_sort_file_path(directory)
    changed = [paths.electrode_path(directory, e) for e, add in adds.items() if add]
    report = report or RunReport(directory)
    try:
        with restored_on_failure([*changed, sort_path]):
            for e, add in adds.items():
                if add:
                    work_solutions(directory, e, add, kind=conversion.SOLUTION_KIND)
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
