"""``blechrs qa``: unit quality checks after sorting: similarity (:mod:`blechrs.quality.similarity`),
drift across trials (:mod:`blechrs.quality.drift`) and a waveform + raster picture per unit
(:mod:`blechrs.figures.waveform_raster`), spec 8.2, 8.3.

Written: ``DIR/QA_output/unit_qa.json``, ``DIR/QA_output/unit_similarity_violations.txt``, the
pictures ``DIR/blechrs_plots/qa/unitNNN.png`` (beside the other pictures, for the picture index)
and the similarity matrix as ``/unit_distances`` in the unit store.
"""

from __future__ import annotations

import hashlib
import dataclasses
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from blechrs.figures.canvas import picture_info
from blechrs.figures.waveform_raster import RasterGroup, WaveformRaster
from blechrs.io import paths
from blechrs.io.atomic import write_text_atomic
from blechrs.io.info import find_info
from blechrs.io.qa_files import write_json
from blechrs.io.trial_table import read_trial_table
from blechrs.io.unit_store import (StoredWaveforms, UnitSpikes, existing_store, read_unit_spikes, stored_waveforms,
                                   write_unit_distances)
from blechrs.params import SortParams
from blechrs.pipeline.executors import map_jobs
from blechrs.pipeline.lock import holds_folder_lock
from blechrs.pipeline.trial_arrays import params_or_defaults
from blechrs.quality.drift import drift_check
from blechrs.quality.similarity import closest_unit, similarity_violations, unit_similarity
from blechrs.trials.settings import trial_config
from blechrs.trials.table import TrialTable, build_trials

#: Fewest pictures worth starting worker processes for: a picture took ~55 ms, a worker ~1 s to
#: start (52 pictures took 3.3 s in one process and in two, 32 x 600 s, with matplotlib drawing).
PARALLEL_PICTURES = 64


@dataclass
class QAResult:
    """What :func:`unit_qa` found; ``print(result)`` or ``rich`` ``console.print(result)``."""

    directory: Path
    units: list[dict[str, Any]]
    violations: list[dict[str, Any]]
    similarity: np.ndarray
    qa_file: Path | None = None
    violations_file: Path | None = None
    pictures: list[Path] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0

    # short headers: the table fits 80 columns (the CLI's rule). "closest" = the unit sharing the
    # most coincident spikes; "%this" / "%that" = % of this unit's / of that unit's spikes coinciding
    columns = ("unit", "elec", "spikes", "closest", "%this", "%that", "base p", "resp p", "flags")

    @property
    def drifting(self) -> list[str]:
        return [u["unit"] for u in self.units if (u.get("drift") or {}).get("flagged")]

    def rows(self) -> list[tuple[str, ...]]:
        def p(v: Any) -> str:
            return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.2g}"

        out = []
        flagged_pairs = {v["unit_a"] for v in self.violations} | {v["unit_b"] for v in self.violations}
        for u in self.units:
            d = u.get("drift") or {}
            flags = []
            if u["unit"] in flagged_pairs:
                flags.append("similar")
            if d.get("flagged"):
                flags.append("drift")
            ms = u["most_similar"]
            out.append((u["unit"], f"{u['electrode']:02d}", str(u["n_spikes"]), ms or "-",
                        "-" if ms is None else f"{u['pct_self_in_other']:.0f}",
                        "-" if ms is None else f"{u['pct_other_in_self']:.0f}",
                        p(d.get("baseline", {}).get("p")), p(d.get("response", {}).get("p")), " ".join(flags)))
        return out

    def _pair_lines(self) -> list[str]:
        return [f"similar: {v['unit_a']}/{v['unit_b']} {v['pct_a_in_b']:.0f}%/{v['pct_b_in_a']:.0f}% of their spikes "
                "coincide" + (", similar counts" if v["similar_counts"] else "")
                for v in self.violations]

    def _title(self) -> str:
        return (f"unit QA: {len(self.units)} units, {len(self.violations)} similar pairs, "
                f"{len(self.drifting)} drifting ({self.seconds:.2f} s)")

    def __str__(self) -> str:
        rows = [self.columns] + self.rows()
        widths = [max(len(r[i]) for r in rows) for i in range(len(self.columns))]
        lines = [self._title()]
        lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
        lines += self._pair_lines()
        lines += [f"warning: {w}" for w in self.warnings]
        if self.qa_file:
            lines.append(f"written: {self.qa_file}")
        return "\n".join(lines)

    def __rich__(self):
        from rich import box
        from rich.console import Group
        from rich.table import Table
        from rich.text import Text

        table = Table(title=self._title(), title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False,
                      collapse_padding=True)
        for c in self.columns:
            table.add_column(c, justify="left" if c in ("unit", "closest", "flags") else "right", no_wrap=True)
        for r in self.rows():
            table.add_row(*r, style="yellow" if r[-1] else None)
        extra = [Text(line, style="yellow") for line in self._pair_lines()]
        extra += [Text(f"warning: {w}", style="yellow") for w in self.warnings]
        if self.qa_file:
            extra.append(Text(f"written: {self.qa_file}"))
        return Group(table, *extra)


# ------------------------------------------------------------------------------------------------
# Pictures


def raster_groups(trials: TrialTable | None) -> list[RasterGroup]:
    """The raster's rows: each taste input's trials in delivery order, labelled by taste."""
    groups = []
    if trials is not None and len(trials):
        for name in trials.dig_ins:
            taste = trials.taste[trials.rows_of(name)[0]]
            groups.append(RasterGroup(name if taste == name else f"{taste} ({name})", trials.onsets(name)))
    return groups


def _drawer(groups: list[RasterGroup], fs: float, params: SortParams) -> WaveformRaster:
    return WaveformRaster(groups, fs, params.trials.spike_array_durations, params.extract.samples_before,
                          seed=params.cluster.random_seed)


def _draw_chunk(groups: list[RasterGroup], fs: float, params: SortParams, chunk: list, h5path: Path,
                progress: Callable[[int, int], None] | None = None) -> list[Path]:
    """Pictures of (path, title, unit name, times, info); each unit's waveforms read from the
    store as it is drawn (only the rows shown)."""
    drawer = _drawer(groups, fs, params)
    out = []
    with stored_waveforms(h5path) as waveforms_of:
        for i, (path, title, name, t, info) in enumerate(chunk):
            out.append(drawer.save(path, title, waveforms_of(name), t, info))
            if progress is not None:
                progress(i + 1, len(chunk))
    return out


def _draw_unit_pictures(groups: list[RasterGroup], fs: float, params: SortParams, to_draw: list, jobs: int,
                        progress: Callable[[int, int], None] | None, h5path: Path) -> list[Path]:
    """The unit pictures, in one process or split between ``jobs`` worker processes."""
    if jobs <= 1 or len(to_draw) < PARALLEL_PICTURES:
        return _draw_chunk(groups, fs, params, to_draw, h5path, progress)
    chunks = [to_draw[k::jobs] for k in range(jobs)]
    sizes = np.cumsum([0] + [len(c) for c in chunks])

    def chunks_done(stage: str, done: int, total: int) -> None:
        if progress is not None and done:  # pictures in that many chunks (as if the first finished first)
            progress(int(sizes[done]), len(to_draw))

    results = map_jobs(_draw_chunk, [(groups, fs, params, c, h5path) for c in chunks], jobs, "qa pictures",
                       chunks_done)
    drawn = {path for paths_ in results for path in paths_}
    return [path for path, *_ in to_draw if path in drawn]


#: The PNG text chunk that says what a unit QA picture shows (a current picture is not drawn again).
QA_PICTURE_KEY = "blechrs-qa-unit"


def _picture_context(trials: TrialTable | None, fs: float, p: SortParams) -> str:
    """What every unit QA picture depends on besides its unit: the trials and the settings."""
    h = hashlib.sha256(repr((fs, dataclasses.asdict(p.trials), dataclasses.asdict(p.quality),
                             p.extract.samples_before)).encode())
    if trials is not None:
        for value in trials.columns().values():
            a = np.asarray(value)
            h.update(a.tobytes() if a.dtype.kind in "biuf" else repr(a.tolist()).encode())
    return h.hexdigest()


def _picture_identity(u: UnitSpikes, title: str, context: str, waveforms: Any) -> str:
    """What a unit's QA picture shows; ``waveforms``: its stored waveforms (read block by block)."""
    h = hashlib.sha256(f"{context} {u.electrode} {title}".encode())
    h.update(np.ascontiguousarray(u.times).tobytes())
    for block in waveforms.blocks() if isinstance(waveforms, StoredWaveforms) else [waveforms]:
        h.update(np.ascontiguousarray(block).tobytes())
    return h.hexdigest()


def _unit_title(u: UnitSpikes, d: dict[str, Any] | None) -> str:
    return (f"{u.name} (electrode {u.electrode}): {len(u.times)} spikes"
            + (f"; drift p baseline {d['baseline']['p']:.3g}, response {d['response']['p']:.3g}"
               if d and not math.isnan(d["baseline"]["p"]) and not math.isnan(d["response"]["p"]) else ""))


def _pictures(directory: Path, h5path: Path, units: list[UnitSpikes], drift: list, trials: TrialTable | None,
              fs: float, p: SortParams, jobs: int, progress: Callable[[int, int], None] | None) -> list[Path]:
    pic_dir = paths.plot_dir(directory) / "qa"
    to_draw, kept = [], []
    context = _picture_context(trials, fs, p)
    with stored_waveforms(h5path) as waveforms_of:
        for u, d in zip(units, drift):
            pic_dir.mkdir(parents=True, exist_ok=True)
            path, title = pic_dir / f"{u.name}.png", _unit_title(u, d)
            info = {QA_PICTURE_KEY: _picture_identity(u, title, context, waveforms_of(u.name))}
            if picture_info(path).get(QA_PICTURE_KEY) == info[QA_PICTURE_KEY]:
                kept.append(path)  # the same unit, trials and settings: the picture is current
            else:
                to_draw.append((path, title, u.name, u.times, info))
    pics = kept + (_draw_unit_pictures(raster_groups(trials), fs, p, to_draw, jobs, progress, h5path)
                   if to_draw else [])
    if pic_dir.exists():  # pictures of units that no longer exist would mislead
        keep = {x.name for x in pics}
        for old in pic_dir.glob("unit*.png"):
            if old.name not in keep:
                old.unlink()
    return pics


# ------------------------------------------------------------------------------------------------
# The checks


def _trials(directory: Path, trials: TrialTable | None, recording: Any, fs: float) -> TrialTable | None:
    """The trials given, else the trial table, else the recording's digital inputs."""
    if trials is None:
        csv_path = paths.trial_table_path(directory)
        if csv_path.exists():
            trials = TrialTable.from_rows(read_trial_table(csv_path), fs)
        elif recording is not None:
            info, src = find_info(directory)
            trials = build_trials(recording.digital_inputs, trial_config(info, recording.digital_inputs, str(src)), fs)
    return trials


def _drift(times: list[np.ndarray], trials: TrialTable | None, fs: float, p: SortParams, n_samples: int | None,
           warnings: list[str]) -> list:
    limit: Any = n_samples
    if limit is None and trials is not None and trials.valid_end_bin is not None:
        # the trial table says which bins of each spike window hold recorded samples
        pre_bins = round(p.trials.spike_array_durations[0] / p.trials.spike_array_bin_ms)
        spb = fs * p.trials.spike_array_bin_ms / 1000.0
        limit = np.floor(trials.start - pre_bins * spb + trials.valid_end_bin * spb).astype(np.int64)
    drift = (drift_check(times, trials.start, trials.taste, fs, p, limit)
             if trials is not None and len(trials) else [None] * len(times))
    if drift and drift[0] is not None and drift[0]["too_few_trials"]:
        warnings.append(f"only {drift[0]['n_trials']} usable trials: too few for a drift test (no unit tested)")
    if drift and drift[0] is not None and drift[0].get("n_overlapping"):
        warnings.append(f"drift check: {drift[0]['n_overlapping']} trials left out, their windows overlap an earlier "
                        f"trial's (drift_baseline_ms + drift_post_ms = "
                        f"{p.quality.drift_baseline_ms + p.quality.drift_post_ms:.0f} ms); "
                        f"{drift[0]['n_trials']} trials used")
    return drift


def _unit_record(u: UnitSpikes, i: int, names: list[str], sim: np.ndarray, drift: dict | None) -> dict[str, Any]:
    near = closest_unit(sim, i)
    j, self_in_other, other_in_self = near if near is not None else (-1, 0.0, 0.0)
    return {
        "unit": u.name, "electrode": u.electrode, "n_spikes": int(len(u.times)),
        "most_similar": names[j] if near is not None else None,
        "max_similarity_pct": max(self_in_other, other_in_self),
        # the two directions for that unit: % of this unit's spikes near it, % of its near this
        "pct_self_in_other": self_in_other,
        "pct_other_in_self": other_in_self,
        "drift": drift,
    }


def _report(directory: Path, h5path: Path, fs: float, p: SortParams, names: list[str], sim: np.ndarray,
            result: QAResult) -> dict[str, Any]:
    """``unit_qa.json``."""
    return {
        "store": h5path.name,
        "sampling_rate": fs,
        "similarity": {
            "definition": "matrix[i][j] = % of unit i's spikes with a unit-j spike at most window_ms away",
            "window_ms": p.quality.similarity_window_ms, "cutoff_pct": p.quality.similarity_cutoff,
            "units": names, "matrix": sim,
        },
        "similarity_violations": result.violations,
        "drift": {
            "n_trial_bins": p.quality.n_trial_bins, "baseline_ms": p.quality.drift_baseline_ms,
            "response_ms": p.quality.drift_post_ms, "alpha": p.quality.drift_alpha,
            "test": "F test of trial group beyond taste (linear model); flagged if p < alpha / 2 in either "
                    "window (Bonferroni)",
        },
        "units": result.units,
        "pictures": [str(x.relative_to(directory)) for x in result.pictures],
        "warnings": result.warnings,
    }


def _violations_text(p: SortParams, viol: list[dict[str, Any]]) -> str:
    """``unit_similarity_violations.txt``."""
    lines = [f"# pairs with > {p.quality.similarity_cutoff:g}% of either unit's spikes within "
             f"{p.quality.similarity_window_ms:g} ms of the other's"]
    lines += [f"{v['unit_a']}\t{v['unit_b']}\t{v['pct_a_in_b']:.2f}% of {v['unit_a']}\t{v['pct_b_in_a']:.2f}% of "
              f"{v['unit_b']}\tspikes {v['spikes_a']}/{v['spikes_b']}" + ("\tsimilar counts" if v["similar_counts"] else "")
              for v in viol]
    return "\n".join(lines) + "\n"


@holds_folder_lock
def unit_qa(
    directory: str | os.PathLike,
    params: SortParams | None = None,
    *,
    trials: TrialTable | None = None,
    sampling_rate: float | None = None,
    n_samples: int | None = None,
    recording: Any = None,
    pictures: bool = True,
    write_store: bool = True,
    progress: Callable[[int, int], None] | None = None,
    jobs: int = 1,
) -> QAResult:
    """Similarity, drift and a picture per unit of the unit store in ``directory``.

    Trials come from ``trials``, else ``DIR/trial_info_frame.csv`` (written by
    :func:`blechrs.pipeline.trial_arrays.make_arrays`), else the digital inputs of ``recording``
    if given; without any, drift is skipped and rasters are empty. Writes the files of the module
    docstring (the store's ``/unit_distances`` only with ``write_store``, atomically).
    ``progress(done, total)`` is called after each unit's picture. ``params`` default to
    ``DIR/<name>.params`` (else SortParams()). With ``jobs`` > 1 the pictures are drawn by that
    many worker processes (each picture depends only on its unit: the same files either way).
    """
    t0 = time.perf_counter()
    directory = Path(directory)
    p = params or params_or_defaults(directory)
    if recording is not None:
        sampling_rate = sampling_rate or float(recording.sampling_rate)
        n_samples = n_samples if n_samples is not None else int(recording.n_samples)
    fs = float(sampling_rate or p.extract.sampling_rate)
    h5path = existing_store(directory)
    units = read_unit_spikes(h5path)  # waveforms are read unit by unit, for the pictures
    warnings: list[str] = []
    if not units:
        warnings.append(f"{h5path}: no sorted units")
    trials = _trials(directory, trials, recording, fs)
    if trials is None or len(trials) == 0:
        warnings.append("no trials (no trial table or digital inputs): drift check skipped")

    names = [u.name for u in units]
    times = [u.times for u in units]
    sim = unit_similarity(times, fs, p.quality.similarity_window_ms)
    viol = similarity_violations(sim, [len(t) for t in times], names, p.quality.similarity_cutoff,
                                 p.quality.similarity_waveform_count_cutoff)
    drift = _drift(times, trials, fs, p, n_samples, warnings)
    out_dir = paths.qa_dir(directory)
    out_dir.mkdir(exist_ok=True)
    records = [_unit_record(u, i, names, sim, drift[i]) for i, u in enumerate(units)]
    pics = _pictures(directory, h5path, units, drift, trials, fs, p, jobs, progress) if pictures else []
    result = QAResult(directory=directory, units=records, violations=viol, similarity=sim, pictures=pics,
                      warnings=warnings, qa_file=out_dir / "unit_qa.json",
                      violations_file=out_dir / "unit_similarity_violations.txt")
    write_json(result.qa_file, _report(directory, h5path, fs, p, names, sim, result))
    if write_store and units:
        write_unit_distances(h5path, sim, names, p.quality.similarity_window_ms)
    write_text_atomic(result.violations_file, _violations_text(p, viol))
    result.seconds = time.perf_counter() - t0
    return result
