"""Storing units: auto-sort's (with the sort file it applied) or a person's sort file, into the
unit store ``DIR/<name>.h5``."""

from __future__ import annotations

import hashlib
import os
from collections import Counter
import time
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np

from blechrs import kernels
from blechrs.core.rows import mean_rows
from blechrs.mapped import MappedRows, mapping
from blechrs.core.echoes import echo_candidates, own_wire_share
from blechrs.core.judge_units import REJECTION_KINDS
from blechrs.curation import sort_file as sf
from blechrs.errors import PipelineError
from blechrs.io import atomic, paths, unit_store, work_files
from blechrs.io.qa_files import REFERENCE_ECHO_COLUMNS, autosort_rejected_csv
from blechrs.io.recording import open_recording
from blechrs.model import ElectrodeWork, Unit
from blechrs.params import SortParams
from blechrs.quality.similarity import similarity_violations, unit_similarity
from blechrs.pipeline.lock import holds_folder_lock
from blechrs.pipeline.folder import car_group_ids, load_params, read_layout, sorted_electrodes
from blechrs.pipeline.report import RunReport, stored_units_table, units_table
from blechrs.schemes.autosort import drop_reference_echoes
from blechrs.schemes.sort_electrode import unit_metrics


def with_events(directory, units: Iterable[Unit], metrics_of: Callable[[Unit, ElectrodeWork], dict],
                needs_arrays: Sequence[str] | None = None) -> list[Unit]:
    """The units in electrode order (stable within an electrode), each given its spike times,
    waveforms, SNR and metrics (``metrics_of(unit, electrode work)``) from its electrode's work file.
    ``needs_arrays``: the work-file arrays ``metrics_of`` uses besides times and waveforms (None: all)."""
    return list(iter_with_events(directory, units, metrics_of, needs_arrays))


def iter_with_events(directory, units: Iterable[Unit], metrics_of: Callable[[Unit, ElectrodeWork], dict],
                     needs_arrays: Sequence[str] | None = None) -> Iterator[Unit]:
    """:func:`with_events` one electrode at a time (only one electrode's work file in memory)."""
    if needs_arrays is not None:
        needs_arrays = ("times", "waveforms", *needs_arrays)
    by_electrode: dict[int, list[Unit]] = {}
    for u in units:
        by_electrode.setdefault(u.electrode, []).append(u)
    cap = load_params(directory).autosort.max_refine_events
    for electrode in sorted(by_electrode):
        path = paths.electrode_path(directory, electrode)
        # a long electrode's waveforms stay in its work file, read a block at a time (MappedRows)
        work = work_files.load_electrode(path, arrays=needs_arrays, map_waveforms=cap)
        long = mapping(work.waveforms) is not None
        for unit in by_electrode[electrode]:
            m = metrics_of(unit, work)
            unit.times = work.times[unit.indices]
            unit.waveforms = (MappedRows(work.waveforms, unit.indices) if long
                              else work.waveforms[unit.indices])
            unit.snr = float(m.get("snr") or 0.0)
            unit.metrics = {k: (np.nan if v is None else v) for k, v in m.items()
                            if isinstance(v, (int, float)) or v is None}
            yield unit
        work = None


def _mean_waveform(waveforms, mask=None) -> np.ndarray:
    """The mean of a unit's waveforms (rows ``mask``), a block at a time when they are mapped."""
    if isinstance(waveforms, MappedRows):
        return mean_rows(waveforms.source, waveforms.index if mask is None else waveforms.index[mask],
                         dtype=waveforms.dtype)
    return (waveforms if mask is None else waveforms[mask]).mean(axis=0)


def _no_waveforms(waveforms) -> np.ndarray:
    """An empty array of the waveforms' width and type that does not keep them alive (a slice
    ``[:0]`` is a view: it would hold every unit's waveforms in memory)."""
    return np.empty((0,) + waveforms.shape[1:], dtype=waveforms.dtype)


def write_autosort_sort_file(directory, selections: Sequence[Unit], comments: Sequence[str],
                             force: bool = False) -> tuple[Path, bool]:
    """Write the sort file auto-sort applied (``<name>_autosort.csv``). A file a person has edited
    since blechrs wrote it is kept unless ``force``. Returns (path, written)."""
    path = paths.autosort_sort_file_path(directory)
    text = sf.format_sort_file([sf.unit_row(i, s, c) for i, (s, c) in enumerate(zip(selections, comments))])
    stamp = paths.autosort_stamp_path(directory)
    if path.exists() and not force:
        current = hashlib.sha256(path.read_bytes()).hexdigest()
        ours = stamp.read_text().strip() if stamp.exists() else None
        if current != ours:
            return path, False
    atomic.write_text_atomic(path, text)
    stamp.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_text_atomic(stamp, hashlib.sha256(text.encode()).hexdigest() + "\n")
    return path, True


@holds_folder_lock
def save_autosort(directory: str | os.PathLike, params: SortParams | None = None, force: bool = False,
                  report: RunReport | None = None) -> RunReport:
    """Store auto-sort's units of every electrode in ``DIR/<name>.h5`` and write the sort file it
    applied. Units a person chose with a sort file are kept unless ``force``."""
    directory = Path(directory)
    params = params or load_params(directory)
    report = report or RunReport(directory)
    t0 = time.perf_counter()
    h5 = paths.h5_path(directory)
    origin = unit_store.units_from(h5)
    if origin and origin.startswith("sort file") and not force:
        write_autosort_rejected(directory)  # (auto-sort's own account; the store is the person's)
        report.notes.append(f"{h5.name} holds units from a {origin}; kept them (use --force to replace "
                            "them with auto-sort's)")
        report.h5 = h5
        report.units = stored_units_table(h5)
        return report
    selections = []
    for e in sorted_electrodes(directory):
        path = paths.electrode_path(directory, e)
        work = work_files.load_electrode(path, arrays=("auto_labels",))
        if work.stage != "clustered":
            raise PipelineError(f"electrode {e} has not been clustered; run `blechrs cluster {directory}`")
        selections.extend(work.units or [])
    # Reference echoes are judged on times and mean waveforms (one electrode's waveforms in memory at
    # a time), then the kept units are written as they come: memory does not grow with the session.
    units = without_reference_echoes(directory, selections, params, report)
    selections = units  # (the same objects, in electrode order)
    comments = []
    for unit in selections:
        m = unit.metrics
        comments.append(f"auto: {len(unit.indices)} spikes, snr {_f(m.get('snr'))}, "
                        f"isi<2ms {_f(m.get('isi_violations_2ms'))}%" + (f", {unit.reason}" if unit.reason else ""))

    def written_as_they_come():
        for unit in iter_with_events(directory, units, lambda unit, _: unit.metrics, needs_arrays=()):
            yield unit
            unit.waveforms = _no_waveforms(unit.waveforms)  # in the store now

    names = unit_store.write_units(h5, written_as_they_come(), attrs={"units_from": "autosort"})
    report.store_written = True
    report.notes.append(write_autosort_rejected(directory))
    path, written = write_autosort_sort_file(directory, selections, comments, force=force)
    if not written:
        report.notes.append(f"{path.name} was edited since blechrs wrote it; kept it (use --force to replace it)")
    report.units = units_table(units, names)
    report.h5 = h5
    report.timings["store"] = time.perf_counter() - t0
    return report


def write_autosort_rejected(directory: Path) -> str:
    """QA_output/autosort_rejected.csv from the work files: what auto-sort judged and did not keep
    as a unit, and why. A person checking a cluster of a solution picture that is no unit finds
    the reason there. Returns a line for the run report: how many, of which kinds."""
    rows = []
    for e in sorted_electrodes(directory):
        path = paths.electrode_path(directory, e)
        if path.exists():
            rows.extend(dict(r, electrode=e) for r in work_files.read_meta(path).rejected or [])
    out = paths.autosort_rejected_path(directory)
    out.parent.mkdir(exist_ok=True)
    atomic.write_text_atomic(out, autosort_rejected_csv(rows))
    kinds = Counter(r.get("kind", "") for r in rows)
    counted = ", ".join(f"{k}: {kinds[k]}" for k in REJECTION_KINDS if kinds[k])
    return (f"auto-sort did not keep {len(rows)} candidate(s)" + (f" ({counted})" if counted else "")
            + f"; each, and why: {out.parent.name}/{out.name}")


def without_reference_echoes(directory: Path, units: list[Unit], params: SortParams, report: RunReport) -> list[Unit]:
    """Auto-sort's units (given their times here, waveforms left in the work files) less the
    reference echoes of larger units on other wires of their CAR group
    (schemes.autosort.drop_reference_echoes); what was removed or flagged, and why, goes to
    ``QA_output/reference_echoes.csv`` and the report's notes. One electrode's waveforms are in
    memory at a time: a first pass keeps each unit's mean waveform, a second the means over the
    spikes it shares with a larger unit (core.echoes.echo_candidates)."""
    rows = read_layout(directory)
    n = max([r.electrode_ind for r in rows] + [-1]) + 1
    group_of = dict(enumerate(car_group_ids(rows, n, params.extract.use_car)))  # -1: not referenced
    fs = params.extract.sampling_rate
    index = {id(u): i for i, u in enumerate(units)}
    means: list[np.ndarray | None] = [None] * len(units)
    for unit in iter_with_events(directory, units, lambda unit, _: unit.metrics, needs_arrays=()):
        means[index[id(unit)]] = _mean_waveform(unit.waveforms) if len(unit.waveforms) else None
        unit.waveforms = _no_waveforms(unit.waveforms)
    sizes = [float(np.max(np.abs(m))) if m is not None else 0.0 for m in means]
    candidates = echo_candidates([u.times for u in units], sizes, [u.electrode for u in units],
                                 [group_of.get(u.electrode, -1) for u in units], fs)
    shared: dict[tuple[int, int], np.ndarray] = {}
    for unit in iter_with_events(directory, [units[i] for i in sorted(candidates)],
                                 lambda unit, _: unit.metrics, needs_arrays=()):
        u = index[id(unit)]
        for p, _, mask in candidates[u]:
            shared[(u, p)] = _mean_waveform(unit.waveforms, mask)
        unit.waveforms = _no_waveforms(unit.waveforms)
    share = own_wire_shares(directory, units, group_of, params) if params.extract.use_car else {}
    kept, found = drop_reference_echoes(units, group_of, fs, share, means=means,
                                        shared_mean=lambda u, p, mask: shared[(u, p)], candidates=candidates)
    lines = [",".join(REFERENCE_ECHO_COLUMNS)]
    for unit, parent, f in found:
        lines.append(f"{unit.electrode},{unit.solution},{unit.label},{len(unit.times)},"
                     f"{'removed' if f.removed else 'flagged'},{parent.electrode if parent else ''},"
                     f"{parent.label if parent else ''},{f.shared:.3f},{f.correlation:.3f},{f.scale:.3f},"
                     f"{f.own_share:.3f}")
        names = {f.parent: f"electrode {parent.electrode:02d}'s unit (clusters {parent.label})"} if parent else {}
        report.notes.append(f"electrode {unit.electrode:02d} unit (clusters {unit.label}, {len(unit.times)} spikes) "
                            + f.reason(names))
    out = paths.reference_echoes_path(directory)
    out.parent.mkdir(exist_ok=True)
    atomic.write_text_atomic(out, "\n".join(lines) + "\n")
    return kept


#: Spikes per unit whose raw samples the own-wire test reads (evenly spread over the session).
OWN_WIRE_SPIKES = 100
#: Seconds of each group's samples that set its wires' median and MAD in that test.
OWN_WIRE_STATS_S = 10.0
#: Milliseconds read on either side of each window of that test, for its band-pass to settle.
OWN_WIRE_PAD_MS = 4.0
#: Window samples (per wire) referenced in one call of that test: units are taken in batches of
#: this size, so its memory does not grow with the number of units (32 wires x 1 h: 1086 -> 236 MB
#: for the store step). Each call's wire medians and MADs come from the head and its batch; the
#: head dominates them (on the v1.5 fixtures the shares moved by <= 0.005, no decision changed).
OWN_WIRE_BATCH_SAMPLES = 1 << 18


def own_wire_shares(directory: Path, units: list[Unit], group_of: dict[int, int], params: SortParams
                    ) -> dict[int, float]:
    """core.echoes.own_wire_share of each unit on a referenced wire: its wire's samples around up
    to ``OWN_WIRE_SPIKES`` of its spikes, band-passed as the extraction does, without and with the
    group's common reference (the engine's, ``reference_method``, in one call per group over the
    group's first ``OWN_WIRE_STATS_S`` s and every unit's windows appended to them; each window
    has ``OWN_WIRE_PAD_MS`` on either side for the filter to settle, then cut off)."""
    rec = open_recording(directory)
    x = params.extract
    fs = x.sampling_rate
    pad = int(round(OWN_WIRE_PAD_MS * fs / 1000))
    before, after = x.samples_before + pad, x.samples_after + pad
    width = before + after + 1
    n = rec.n_samples
    members: dict[int, list[int]] = {}
    for e, g in group_of.items():
        if g >= 0 and e < rec.n_channels:
            members.setdefault(g, []).append(e)
    out: dict[int, float] = {}
    by_group: dict[int, list[int]] = {}
    for i, u in enumerate(units):
        g = group_of.get(u.electrode, -1)
        if g >= 0 and len(members.get(g, [])) >= 2 and len(u.times):
            by_group.setdefault(g, []).append(i)

    def filtered(windows: np.ndarray) -> np.ndarray:  # n_spikes x width -> the same, band-passed, pad cut off
        y = kernels.bandpass(np.ascontiguousarray(windows, dtype=np.float32), fs, x.bandpass_lower_cutoff,
                             x.bandpass_upper_cutoff)
        return np.asarray(y[:, pad:width - pad], dtype=np.float64)

    for g, idx in by_group.items():
        chans = members[g]
        head = rec.read(chans, 0, min(n, int(OWN_WIRE_STATS_S * fs)))
        spikes = {}
        for i in idx:
            t = units[i].times[(units[i].times >= before) & (units[i].times + after + 1 <= n)]
            if len(t):
                spikes[i] = t[np.unique(np.linspace(0, len(t) - 1, min(len(t), OWN_WIRE_SPIKES)).astype(np.int64))]
        # One reference over the head and a batch of units' windows (the head holds most of the
        # samples that set the wires' median and MAD: the windows are mostly noise around a spike);
        # batches of OWN_WIRE_BATCH_SAMPLES window samples keep the memory small whatever the units.
        ids = list(spikes)
        per_batch = max(1, OWN_WIRE_BATCH_SAMPLES // (OWN_WIRE_SPIKES * width))
        for b in range(0, len(ids), per_batch):
            batch = ids[b:b + per_batch]
            full = np.concatenate([head] + [rec.read(chans, int(s) - before, int(s) + after + 1)
                                            for i in batch for s in spikes[i]], axis=1)
            # the head sets the medians and MADs; only the windows are referenced (skip)
            referenced, _ = kernels.common_average_reference(full, [0] * len(chans), x.reference_method,
                                                             x.reference_clip, skip=head.shape[1])
            windows, start = full[:, head.shape[1]:], 0
            for i in batch:
                t = spikes[i]
                row, stop = chans.index(units[i].electrode), start + len(t) * width
                raw = filtered(np.asarray(windows[row, start:stop]).reshape(len(t), width))
                ref = filtered(np.asarray(referenced[row, start:stop]).reshape(len(t), width))
                out[i] = own_wire_share(raw, ref, x.samples_before, max(1, int(round(0.3 * fs / 1000))))
                start = stop
            full = windows = referenced = None
    return out


def _f(x) -> str:
    return "nan" if x is None else f"{float(x):.2f}"


@holds_folder_lock
def post_process(directory: str | os.PathLike, sort_file: str | os.PathLike, params: SortParams | None = None,
                 report: RunReport | None = None, check: bool = False
                 ) -> tuple[RunReport, list[sf.RowProblem], Path | None]:
    """Apply a person's sort file: its units replace the store's units, all or nothing.

    Any bad row saves nothing: the store (and so its pictures and arrays) stays as it was, and the
    applied report ``DIR/<sort file>_applied.csv`` says what was wrong with each row. ``check``:
    validate and plan only (``report.units`` lists what would be saved), write nothing. Units that
    share most of their spikes with another unit are named in ``report.notes`` either way.
    Returns (report, problems, applied report path or None)."""
    directory = Path(directory)
    parsed = sf.read_sort_file(sort_file)
    if not any(paths.work_dir(directory).glob("electrode*.npz")):
        raise PipelineError(f"{directory}: not sorted yet; run `blechrs run {directory}` before post-process")
    params = params or load_params(directory)
    report = report or RunReport(directory)
    name = Path(sort_file).name
    if parsed.how_read:
        report.notes.append(f"{name}: read as {parsed.how_read}")
    units, more, by_row = sf.apply_sort_rows(parsed.rows, _clustered_work(directory), params)
    problems = sorted(parsed.problems + more, key=lambda p: p.row)
    h5 = paths.h5_path(directory)
    report.h5 = h5
    if problems or not units:
        why = f"{len(problems)} bad row(s)" if problems else "it selects no unit"
        report.notes.append(f"{name}: {why}; nothing saved, {h5.name} left as it was")
        report.units = stored_units_table(h5) if h5.exists() else []
        applied = None if check else sf.write_applied_report(
            applied_report_path(directory, sort_file), sort_file, parsed.cells, problems, by_row, {}, saved=False)
        return report, problems, applied
    units = with_events(directory, units, lambda unit, work: unit_metrics(work, unit.indices, params))
    names = [f"unit{i:03d}" for i in range(len(units))]  # the store numbers units in this order
    report.notes.extend(shared_spike_notes(units, names, params))
    report.units = units_table(units, names)
    if check:
        report.notes.append(f"{name}: {len(units)} unit(s) would be saved (--check: nothing written)")
        return report, problems, None
    names = unit_store.write_units(h5, units, attrs={"units_from": f"sort file {name}"})
    info = {id(unit): dict(unit_name=n, spikes=len(unit.indices),
                           isi_1ms_pct=unit.metrics.get("isi_violations_1ms"),
                           isi_2ms_pct=unit.metrics.get("isi_violations_2ms"))
            for n, unit in zip(names, units)}
    applied = sf.write_applied_report(applied_report_path(directory, sort_file), sort_file, parsed.cells,
                                      problems, by_row, info, saved=True)
    report.store_written = True
    return report, problems, applied


def applied_report_path(directory: str | os.PathLike, sort_file: str | os.PathLike) -> Path:
    """``DIR/<sort file's name>_applied.csv``: in the recording's folder, so one sort file used on
    several recordings leaves one report in each."""
    return Path(directory) / f"{Path(sort_file).stem}_applied.csv"


def _clustered_work(directory: Path) -> Callable[[int], ElectrodeWork | None]:
    """``load(electrode)``: its work if it was sorted and clustered, else None."""
    known = set(sorted_electrodes(directory))

    def load(e: int) -> ElectrodeWork | None:
        path = paths.electrode_path(directory, e)
        if e not in known or not path.exists():
            return None
        work = work_files.load_electrode(path)
        return work if work.stage == "clustered" else None

    return load


def shared_spike_notes(units: Sequence[Unit], names: Sequence[str], params: SortParams) -> list[str]:
    """One line per pair of units (same electrode or not) sharing more than ``similarity_cutoff`` %
    of either's spikes (within ``similarity_window_ms``): likely the same neuron saved twice."""
    sim = unit_similarity([u.times for u in units], params.extract.sampling_rate,
                          params.quality.similarity_window_ms)
    pairs = similarity_violations(sim, [len(u.times) for u in units], names, params.quality.similarity_cutoff,
                                  params.quality.similarity_waveform_count_cutoff)
    return [f"{p['unit_a']} (electrode {units[names.index(p['unit_a'])].electrode:02d}) and {p['unit_b']} "
            f"(electrode {units[names.index(p['unit_b'])].electrode:02d}) share "
            f"{max(p['pct_a_in_b'], p['pct_b_in_a']):.0f} % of their spikes" for p in pairs]
