"""``blechrs plot``: every picture of a sorted recording, and the page that links them.

- ``DIR/blechrs_plots/electrodeNN/solutionKK.png``: one figure per electrode and clustering
  solution (:mod:`blechrs.figures.solutions`);
- ``DIR/blechrs_plots/electrodeNN/units.png``: the electrode's thumbnail (its stored units);
- ``DIR/blechrs_plots/units/unitNNN.png``: one picture per stored unit (:mod:`blechrs.figures.units`);
- ``DIR/blechrs_plots/index.html``: the units with their QA flags, the electrodes' thumbnails and
  every picture (:mod:`blechrs.figures.index_page`); it links only pictures and QA results that
  describe the store's current units.

Figures are made in a process pool, one task per electrode. Every picture of an electrode has the
same voltage range (:func:`electrode_scale`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from blechrs.core.rows import mean_rows
from blechrs.errors import PipelineError
from blechrs.mapped import mapping
from blechrs.figures.canvas import picture_info
from blechrs.figures.cluster_panels import ElectrodeScale, voltage_range
from blechrs.figures.index_page import ElectrodeEntry, IndexContents, UnitRow, index_html
from blechrs.figures.solutions import FeatureView, plot_solution
from blechrs.figures.units import plot_electrode_units, plot_unit
from blechrs.io import layout, paths, unit_store, work_files
from blechrs.io.atomic import write_text_atomic
from blechrs.io.qa_files import read_json, removed_reference_echoes
from blechrs.model import ElectrodeWork, Unit
from blechrs.params import SortParams
from blechrs.pipeline.executors import map_jobs
from blechrs.pipeline.init_recording import raw_qa_pictures
from blechrs.pipeline.lock import holds_folder_lock
from blechrs.schemes.sort_electrode import too_few_events

#: An electrode with more events has its pictures drawn from its waveforms memory-mapped in its
#: work file, read a span at a time (smaller ones are read whole: faster). 100 000 events are
#: ~30 MB of waveforms; a 2 h electrode's plots worker went 377 -> 198 MB (docs/benchmarks.md).
PICTURES_MAP_EVENTS = 100_000
#: PNG text keys saying what a picture shows (compared with the store by the index page; a
#: thumbnail's WORK_KEY: the clustering it shows, as ``_stamp``).
UNIT_KEY, UNITS_KEY, TITLE_KEY, WORK_KEY = "blechrs-unit", "blechrs-units", "blechrs-title", "blechrs-work"


def _stamp(directory, work: ElectrodeWork) -> str:
    """What the solution pictures were drawn from: the clustering and auto-sort's choices (its
    template solution and the marks on its units' clusters, less the reference echoes removed
    when the units were stored)."""
    gone = sorted(f"{s}:{c}" for e, s, c in _removed_echoes(directory) if e == work.electrode)
    return (f"{work.fp_extract or ''}-{work.fp_cluster or ''}-{work.fp_autosort or ''}"
            + (f"-echoes {' '.join(gone)}" if gone else "") + "\n")


def _removed_echoes(directory) -> set[tuple[int, int, str]]:
    return removed_reference_echoes(paths.reference_echoes_path(directory))


def _peak(work: ElectrodeWork, params: SortParams) -> int:
    return min(params.extract.samples_before, max(work.waveforms.shape[1] - 1, 0))


def electrode_scale(work: ElectrodeWork, params: SortParams) -> ElectrodeScale:
    """What every picture of the electrode shares: one voltage range, time axis, threshold."""
    fs = params.extract.sampling_rate
    lo, hi = voltage_range(work.waveforms)
    limits = params.autosort.ISI_violations_thresholds
    return ElectrodeScale(lo, hi, fs, _peak(work, params), work.waveforms.shape[1],
                          work.duration_s(fs, or_last_event=True), float(work.threshold or 0.0) or None,
                          (float(limits[0]), float(limits[1])))


def _view(work: ElectrodeWork, scale: ElectrodeScale) -> FeatureView:
    return FeatureView.of(work.waveforms, work.features, scale.peak)


def _auto_units(work: ElectrodeWork, solution: int, removed=frozenset()) -> dict[int, str]:
    """The clusters of ``solution`` auto-sort made into units: cluster -> "single" or "multi"(-unit);
    not those of units removed as reference echoes (``removed``: (electrode, solution, clusters))."""
    out = {}
    for u in work.units or []:
        if u.solution == solution and (work.electrode, u.solution, u.label) not in removed:
            for c in u.clusters:
                out[int(c)] = "single" if u.single_unit else "multi"
    return out


def solutions_current(directory, electrode: int, meta: ElectrodeWork) -> bool:
    """Whether the electrode's solution figures were drawn from its current clustering."""
    stamp = paths.plot_dir(directory) / f"electrode{electrode:02d}" / "solutions.stamp"
    return stamp.exists() and stamp.read_text() == _stamp(directory, meta)


def plot_solutions(directory, work: ElectrodeWork, params) -> list[str]:
    """One figure per clustering solution of one electrode; none for an electrode with fewer
    events than a unit needs (``too_few_events``: nothing in them to judge, and on short
    recordings they were most of the run's time)."""
    electrode = work.electrode
    out_dir = paths.plot_dir(directory) / f"electrode{electrode:02d}"
    made = []
    removed = _removed_echoes(directory)
    drawn = {} if too_few_events(len(work.times), params) else work.solutions
    if drawn:
        scale = electrode_scale(work, params)
        view = _view(work, scale)
    for number, sol in sorted(drawn.items()):
        made.append(str(plot_solution(out_dir / f"solution{number:02d}.png", electrode, number, sol.labels, work.times,
                                      work.waveforms, scale, view, _auto_units(work, number, removed), sol.kind)))
    out_dir.mkdir(parents=True, exist_ok=True)
    for p in out_dir.glob("solution*.png"):  # solutions of an earlier clustering (e.g. another max_clusters)
        if str(p) not in made:
            p.unlink()
    (out_dir / "solutions.stamp").write_text(_stamp(directory, work))
    return made


def wants_thumbnail(n_events: int, has_units: bool, params: SortParams) -> bool:
    """Whether an electrode gets a thumbnail: not without units and with too few events for any
    (an empty thumbnail says nothing; the index page says why)."""
    return has_units or not too_few_events(n_events, params)


def unit_identity(u: Unit) -> str:
    """What tells a stored unit from any other that may later bear its name."""
    t = np.asarray(u.times, dtype=np.int64)
    span = f"{int(t[0])}-{int(t[-1])}" if len(t) else "-"
    return f"{u.name} electrode {u.electrode} spikes {len(t)} hash {u.hash} span {span} sum {int(t.sum()) % 1000000007}"


def _unit_title(u: Unit, scale: ElectrodeScale) -> str:
    kind = ("single-unit" if u.single_unit else "multi-unit") + (", RS" if u.regular_spiking else ", FS"
                                                                  if u.fast_spiking else "")
    return (f"{u.name} · electrode {u.electrode:02d} · {kind} · {len(u.times)} spikes, "
            f"{len(u.times) / max(scale.duration_s, 1e-9):.2f} Hz · SNR {u.snr:.1f} · "
            f"{u.source or 'sorted'}: solution {u.solution}, cluster {u.label}")


def plot_electrode(directory: str, electrode: int, params: SortParams, solutions: bool = True) -> list[str]:
    """The pictures of one electrode: its solutions (if ``solutions``), its thumbnail and its stored units."""
    path = paths.electrode_path(directory, electrode)
    # A long electrode's waveforms stay in its work file, the rows the pictures show read from it
    # (core/rows.py): two workers each holding a 2 h electrode's waveforms whole (~140 MB) came
    # close to the 1 GB of the whole run.
    work = work_files.load_electrode(path, arrays=None if solutions else ("times", "waveforms", "features"),
                                     map_waveforms=min(PICTURES_MAP_EVENTS, params.autosort.max_refine_events))
    long = mapping(work.waveforms) is not None
    made = plot_solutions(directory, work, params) if solutions else []
    units = unit_store.read_units(paths.h5_path(directory), waveforms=not long, electrode=electrode, metrics=False)
    thumbnail = paths.plot_dir(directory) / f"electrode{electrode:02d}" / "units.png"
    if not wants_thumbnail(len(work.times), bool(units), params):
        thumbnail.unlink(missing_ok=True)
        return made
    scale = electrode_scale(work, params)
    view = _view(work, scale)
    shown_times = work.times[view.index]
    unit_of_view = np.full(len(view.index), -1, dtype=np.int64)
    means = []
    for k, u in enumerate(units):
        waveforms, rows_of_unit = (work.waveforms, unit_rows(work, u)) if long else (u.waveforms, None)
        in_view = np.isin(shown_times, u.times)
        unit_of_view[in_view] = k
        if long:
            means.append(mean_rows(waveforms, rows_of_unit) if len(u.times) else np.zeros(scale.n_samples))
        else:
            means.append(u.waveforms.mean(axis=0, dtype=np.float64) if len(u.waveforms) else np.zeros(scale.n_samples))
        picture = paths.plot_dir(directory) / "units" / f"{u.name}.png"
        info = {UNIT_KEY: unit_identity(u), TITLE_KEY: _unit_title(u, scale)}
        if picture_info(picture).items() >= info.items():
            continue  # the same unit, labelled the same: its picture is current
        made.append(str(plot_unit(picture, info[TITLE_KEY], u.times, waveforms, scale, view, in_view, info,
                                  index=rows_of_unit)))
    made.append(_draw_thumbnail(directory, work, [u.name for u in units], means, scale, view, unit_of_view,
                                "; ".join(unit_identity(u) for u in units)))
    return made


def _draw_thumbnail(directory, work: ElectrodeWork, names: list[str], means: list, scale: ElectrodeScale,
                    view: FeatureView, unit_of_view: np.ndarray, identity: str) -> str:
    thumbnail = paths.plot_dir(directory) / f"electrode{work.electrode:02d}" / "units.png"
    return str(plot_electrode_units(thumbnail, work.electrode, names, means, scale, view, unit_of_view,
                                    {UNITS_KEY: identity, WORK_KEY: _stamp(directory, work)}))


def plot_thumbnail_without_units(directory, work: ElectrodeWork, params: SortParams) -> list[str]:
    """The thumbnail of an electrode auto-sort gave no unit, drawn by the worker that clustered it
    (the electrode is in memory there, and a run storing no unit then needs no drawing in its
    main process): kept by :func:`plot_recording` while the store has no unit of the electrode
    and its clustering is the one it shows (``WORK_KEY``)."""
    if not wants_thumbnail(len(work.times), False, params):
        return []
    scale = electrode_scale(work, params)
    view = _view(work, scale)
    return [_draw_thumbnail(directory, work, [], [], scale, view, np.full(len(view.index), -1, dtype=np.int64), "")]


def _thumbnail_without_units_current(directory, electrode: int, meta: ElectrodeWork, params: SortParams) -> bool:
    """Whether an electrode with no stored unit has the thumbnail it needs: none with too few
    events for a unit (an older one is removed here), else one of no unit drawn from its current
    clustering."""
    thumbnail = paths.plot_dir(directory) / f"electrode{electrode:02d}" / "units.png"
    if not wants_thumbnail(int(meta.n_events), False, params):
        thumbnail.unlink(missing_ok=True)
        return True
    return picture_info(thumbnail).items() >= {UNITS_KEY: "", WORK_KEY: _stamp(directory, meta)}.items()


def unit_rows(work: ElectrodeWork, unit: Unit) -> np.ndarray:
    """The rows of a stored unit's spikes among its electrode's events (the store took its
    waveforms from there)."""
    rows = np.searchsorted(work.times, unit.times)
    if len(rows) and (rows.max() >= len(work.times) or not np.array_equal(work.times[rows], unit.times)):
        raise PipelineError(f"{unit.name}: its spikes are not electrode {unit.electrode:02d}'s events "
                            f"any more; run `blechrs run` again to store the units of the current clustering")
    return rows


def _qa_by_unit(directory: Path, units: Sequence[Unit]) -> tuple[dict[str, dict], list[dict], str]:
    """unit QA's records of the units it describes as they are now (same name, electrode and spike
    count in the same store), its similarity violations among those, and a note on what it covers."""
    doc = read_json(paths.qa_dir(directory) / "unit_qa.json")
    if not isinstance(doc, dict):
        return {}, [], "Unit QA (drift, similarity) has not run: blechrs qa DIR."
    records = {r.get("unit"): r for r in doc.get("units") or []}
    current = {}
    if doc.get("store") == paths.h5_path(directory).name:
        for u in units:
            r = records.get(u.name)
            if r and r.get("electrode") == u.electrode and r.get("n_spikes") == len(u.times):
                current[u.name] = r
    stale = len(units) - len(current)
    viol = [v for v in doc.get("similarity_violations") or [] if v["unit_a"] in current and v["unit_b"] in current]
    note = ("Unit QA results are current." if not stale else
            f"Unit QA results describe other units than {stale} of the store's: run blechrs qa DIR.")
    return current, viol, note


def _unit_row(u: Unit, root: Path, qa: dict[str, dict], viol: list[dict], limits, solution_pictures) -> UnitRow:
    m = u.metrics
    isi1, isi2 = m.get("isi_violations_1ms", float("nan")), m.get("isi_violations_2ms", float("nan"))
    pic = root / "units" / f"{u.name}.png"
    row = UnitRow(
        name=u.name, electrode=u.electrode, n_spikes=len(u.times), rate_hz=m.get("firing_rate", float("nan")),
        snr=u.snr, isi_1ms=isi1, isi_2ms=isi2,
        kind=("single" if u.single_unit else "multi") + (" RS" if u.regular_spiking else " FS" if u.fast_spiking else ""),
        source=f"{u.source}: solution {u.solution}, {u.label}",
        solution_picture=solution_pictures.get((u.electrode, u.solution)),
        picture=f"units/{u.name}.png" if picture_info(pic).get(UNIT_KEY) == unit_identity(u) else None,
        isi_flag=bool(isi1 > limits[0] or isi2 > limits[1]))
    r = qa.get(u.name)
    if r is not None:
        d = r.get("drift") or {}
        row.qa_current = True
        row.drift_flag = bool(d.get("flagged"))
        row.drift_p = ((d.get("baseline") or {}).get("p"), (d.get("response") or {}).get("p"))
        row.similar = [f"{v['unit_b']} {v['pct_a_in_b']:.0f}%/{v['pct_b_in_a']:.0f}%" if v["unit_a"] == u.name else
                       f"{v['unit_a']} {v['pct_b_in_a']:.0f}%/{v['pct_a_in_b']:.0f}%"
                       for v in viol if u.name in (v["unit_a"], v["unit_b"])]
        if r.get("most_similar"):
            row.closest = f"{r['most_similar']} {r['pct_self_in_other']:.0f}%/{r['pct_other_in_self']:.0f}%"
        if (root / "qa" / f"{u.name}.png").exists():
            row.qa_picture = f"qa/{u.name}.png"
    return row


def write_index(directory: str | os.PathLike, electrodes: Sequence[int], params: SortParams | None = None) -> Path:
    """``blechrs_plots/index.html``: the store's units and every electrode's pictures, linked."""
    directory = Path(directory)
    root = paths.plot_dir(directory)
    units = unit_store.read_units(paths.h5_path(directory), waveforms=False)
    entries, solution_pictures = [], {}
    for e in electrodes:
        d = root / f"electrode{e:02d}"
        mine = [u for u in units if u.electrode == e]
        entry = ElectrodeEntry(e, [u.name for u in mine])
        if d.exists():
            entry.solutions = [(int(p.stem[8:]), f"{d.name}/{p.name}") for p in sorted(d.glob("solution*.png"))]
            work = paths.electrode_path(directory, e)
            meta = work_files.read_meta(work) if work.exists() else None
            entry.solutions_current = meta is not None and solutions_current(directory, e, meta)
            if meta is not None and not entry.solutions:
                entry.no_solutions_why = too_few_events(int(meta.n_events), params or SortParams())
            if entry.solutions_current:
                solution_pictures.update({(e, k): p for k, p in entry.solutions})
            thumb = d / "units.png"
            if picture_info(thumb).get(UNITS_KEY) == "; ".join(unit_identity(u) for u in mine):
                entry.thumbnail = f"{d.name}/units.png"
        entries.append(entry)
    qa, viol, note = _qa_by_unit(directory, units)
    limits = tuple((params or SortParams()).autosort.ISI_violations_thresholds)
    qa_out = paths.qa_dir(directory)
    contents = IndexContents(
        recording=paths.recording_name(directory),
        units=[_unit_row(u, root, qa, viol, limits, solution_pictures) for u in units],
        electrodes=entries, qa_note=note if units else "", qa_dir=os.path.relpath(qa_out, root),
        qa_files=[p.name for p in sorted(qa_out.glob("*")) if p.is_file()] if qa_out.exists() else [],
        isi_limits=(float(limits[0]), float(limits[1])),
    )
    path = root / "index.html"
    root.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, index_html(contents))
    return path


def stale_solution_pictures(directory, electrodes: Sequence[int]) -> int:
    """How many electrodes' solution pictures :func:`plot_recording` would redraw after a run (not
    drawn from their current clustering, or marks of units the store removed as reference echoes)."""
    return sum(not solutions_current(directory, e, work_files.read_meta(paths.electrode_path(directory, e)))
               for e in electrodes)


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
    # Unit numbers change between sorts: a picture of a unit no longer in the store would mislead.
    # Pictures of units that are still there, unchanged, are kept (plot_electrode skips them).
    stored = unit_store.read_units(paths.h5_path(directory), waveforms=False, metrics=False)
    current = {u.name: unit_identity(u) for u in stored}
    for p in (paths.plot_dir(directory) / "units").glob("unit*.png"):
        if p.stem not in current or picture_info(p).get(UNIT_KEY) != current[p.stem]:
            p.unlink()
    with_units = {u.electrode for u in stored}
    args = []
    for e in electrodes:
        meta = work_files.read_meta(paths.electrode_path(directory, e))
        redo = redraw_solutions or not solutions_current(directory, e, meta)
        if not redo and e not in with_units and _thumbnail_without_units_current(directory, e, meta, params):
            continue  # nothing to draw (most electrodes of a short recording): no task reading its work file
        args.append((str(directory), int(e), params, redo))
    # Unit pictures alone are cheap: no worker processes for them.
    heavy = sum(1 for a in args if a[3])
    map_jobs(plot_electrode, args, jobs if heavy > 1 else 1, "plots", progress)
    raw_qa_pictures(directory)  # those a run without pictures left out
    return write_index(directory, electrodes, params)
