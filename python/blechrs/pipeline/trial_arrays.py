"""``blechrs arrays``: the trial table and the spike-train (and EMG) arrays of a sorted recording
(blech_clust's ``blech_make_arrays.py``, spec 2.4 / 8.1).

Written: ``DIR/trial_info_frame.csv`` (:mod:`blechrs.io.trial_table`) and, replacing any earlier
ones, ``/spike_trains`` and ``/emg_data`` in the unit store (:mod:`blechrs.io.spike_trains`).

Trials near the ends of the recording are kept, so trial ``k`` of a digital input is always its
``k``-th delivery and matches the trial table; the table marks trials whose window leaves the
data ``truncated``. "The end" is the earliest point where extraction found the recording cut off
(headstage fell off, spec 4.2) on an electrode with units, if before the recording's last sample
(blech_clust drops only trials beyond the end). A digital input configured as a taste but
without pulses gets no array (a warning says so).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from blechrs.io import layout, open_recording, paths, work_files
from blechrs.io.info import find_info
from blechrs.io.params_file import load_params
from blechrs.io.spike_trains import TasteArrays, has_trial_arrays, write_trial_arrays
from blechrs.io.trial_table import write_trial_table
from blechrs.io.unit_store import existing_store, read_unit_spikes
from blechrs.params import SortParams
from blechrs.pipeline.lock import holds_folder_lock
from blechrs.trials.settings import DigitalInputs, TrialConfig, trial_config
from blechrs.trials.spike_arrays import TrialBlocks, bin_layout, emg_array, window_bins
from blechrs.trials.table import TrialTable, build_trials


def params_or_defaults(directory: str | os.PathLike) -> SortParams:
    """``DIR/<name>.params`` if it exists, else the defaults."""
    p = paths.params_path(directory)
    return load_params(p) if p.exists() else SortParams()


def recording_cutoffs(directory: str | os.PathLike, electrodes: Sequence[int]) -> dict[int, int]:
    """Per electrode, the sample where extraction found the recording cut off (headstage fell
    off, spec 4.2), from the extraction work files; electrodes without one are left out."""
    out = {}
    for e in sorted(set(int(x) for x in electrodes if x >= 0)):
        path = paths.electrode_path(directory, e)
        if not path.exists():
            continue
        try:
            meta = work_files.read_meta(path)
        except (OSError, ValueError, KeyError):
            continue  # an unreadable work file only loses this refinement
        if meta.cutoff_sample is not None:
            out[e] = meta.cutoff_sample
    return out


def emg_channels(directory: str | os.PathLike, n_channels: int | None = None) -> list[int]:
    """Channel indices (``electrode_ind``) whose CAR group names EMG, from the layout CSV (none
    without a layout)."""
    if not paths.layout_path(directory).exists():
        return []
    return layout.emg_electrodes(layout.load_layout(directory, n_channels))


@dataclass
class DigInSummary:
    dig_in: str
    taste: str
    n_trials: int
    n_truncated: int
    n_laser: int | None
    shape: tuple[int, ...]


@dataclass
class ArraysResult:
    """What :func:`make_arrays` did; ``print(result)`` or ``rich`` ``console.print(result)``."""

    directory: Path
    store: Path | None
    trial_table: Path | None
    n_units: int
    sampling_rate: float
    durations_ms: tuple[float, float]
    bin_ms: float
    dig_ins: list[DigInSummary] = field(default_factory=list)
    emg_channels: list[int] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0
    data_end: int | None = None
    """Sample where the data end for the spike arrays: the recording's length, or earlier where
    extraction found it cut off on an electrode with units."""

    @property
    def n_trials(self) -> int:
        return sum(d.n_trials for d in self.dig_ins)

    columns = ("dig_in", "taste", "trials", "truncated", "laser", "spike_array")  # fits 80 columns

    def rows(self) -> list[tuple[str, ...]]:
        return [
            (d.dig_in, d.taste, str(d.n_trials), str(d.n_truncated), "-" if d.n_laser is None else str(d.n_laser),
             " x ".join(map(str, d.shape)))
            for d in self.dig_ins
        ]

    def _title(self) -> str:
        return (
            f"arrays: {self.n_units} units, {self.n_trials} trials, -{self.durations_ms[0]:g}..+"
            f"{self.durations_ms[1]:g} ms, {self.bin_ms:g} ms bins"
            + (f", EMG {self.emg_channels}" if self.emg_channels else "")
        )

    def _written(self) -> str:
        return (f"written: {self.trial_table.name if self.trial_table else '-'}"
                + (" and the store's /spike_trains" if self.store and self.dig_ins else "")
                + f" ({self.seconds:.2f} s)")

    def __str__(self) -> str:
        rows = [self.columns] + self.rows()
        widths = [max(len(r[i]) for r in rows) for i in range(len(self.columns))]
        lines = [self._title()]
        lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
        lines += [f"warning: {w}" for w in self.warnings]
        lines.append(self._written())
        return "\n".join(lines)

    def __rich__(self):
        from rich import box
        from rich.console import Group
        from rich.table import Table
        from rich.text import Text

        table = Table(title=self._title(), title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False,
                      collapse_padding=True)
        for c in self.columns:
            table.add_column(c, justify="left" if c in ("dig_in", "taste") else "right", no_wrap=True)
        for r in self.rows():
            table.add_row(*r)
        return Group(table, *[Text(f"warning: {w}", style="yellow") for w in self.warnings], Text(self._written()))


def _data_end(directory: Path, electrodes: list[int], n_samples: int | None) -> tuple[int | None, dict[int, int]]:
    """Where the spikes end: spikes exist only up to where extraction cut the recording
    (headstage fell off), so bins past the earliest cut of an electrode with units are outside the
    data, like bins past the end."""
    has_work = paths.work_dir(directory).exists()
    cut = recording_cutoffs(directory, electrodes) if electrodes and has_work else {}
    data_end = n_samples
    if cut:
        first_cut = min(cut.values())
        if data_end is None or first_cut < data_end:
            data_end = first_cut
    return data_end, cut


def _warnings(result: ArraysResult, trials: TrialTable, config: TrialConfig, digital_inputs: DigitalInputs,
              n_samples: int | None, cut: dict[int, int]) -> None:
    data_end, fs, durations = result.data_end, result.sampling_rate, result.durations_ms
    if data_end is not None and n_samples is not None and data_end < n_samples:
        e = min(cut, key=cut.get)
        result.warnings.append(
            f"the recording was cut off at {data_end / fs:.1f} s of {n_samples / fs:.1f} s (electrode {e:02d}); "
            f"{int(np.sum(trials.start + durations[1] * fs / 1000.0 > data_end))} trial(s) reach past it"
        )
    result.warnings += config.warnings
    if not digital_inputs:
        result.warnings.append("the recording has no digital inputs: no trials")
    for name in sorted(config.tastes):
        if len(digital_inputs[name][0]) == 0:
            result.warnings.append(f"{name} ({config.tastes[name]}) has no pulses: no spike array")
    if trials.unmatched_laser_pulses:
        result.warnings.append(f"{trials.unmatched_laser_pulses} laser pulse(s) matched no taste trial")
    if not result.n_units:
        result.warnings.append(f"{result.store}: no sorted units; spike arrays have 0 units")


def _taste_arrays(trials: TrialTable, config: TrialConfig, unit_times: list[np.ndarray], valid: np.ndarray,
                  result: ArraysResult, recording: Any, n_samples: int | None) -> list[TasteArrays]:
    fs, durations, bin_ms, emg = result.sampling_rate, result.durations_ms, result.bin_ms, result.emg_channels
    out = []
    for name in trials.dig_ins:
        rows = trials.rows_of(name)
        arr = TrialBlocks(unit_times, trials.start[rows], fs, durations, bin_ms)  # computed as written
        t = TasteArrays(name, str(config.tastes[name]), arr, valid[rows])
        n_laser = None
        if trials.has_laser:
            t.laser_durations = np.asarray(trials.laser_duration_ms[rows], np.float64)
            t.laser_onset_lag = np.asarray(trials.laser_lag_ms[rows], np.float64)
            n_laser = int(trials.laser[rows].sum())
        if emg:
            t.emg_array = emg_array(recording.amplifier, emg, trials.start[rows], fs, durations, bin_ms, n_samples,
                                    scale=recording.gain)
        result.dig_ins.append(
            DigInSummary(name, str(config.tastes[name]), len(rows), int(trials.truncated[rows].sum()), n_laser, arr.shape)
        )
        out.append(t)
    return out


@holds_folder_lock
def make_arrays(
    directory: str | os.PathLike,
    params: SortParams | None = None,
    *,
    digital_inputs: DigitalInputs | None = None,
    sampling_rate: float | None = None,
    n_samples: int | None = None,
    recording: Any = None,
    info: Mapping[str, Any] | None = None,
) -> ArraysResult:
    """Trial table + /spike_trains (+ /emg_data) of the experiment in ``directory``.

    Writes ``DIR/trial_info_frame.csv`` and replaces ``/spike_trains`` and ``/emg_data`` in the unit
    store ``DIR/<name>.h5`` atomically. Digital inputs, sampling rate, length and EMG traces come
    from the recording in ``directory`` (``blechrs.io.open_recording``) unless given:
    ``digital_inputs`` maps ``dig_in_NN`` -> (onsets, offsets) in samples. The taste/laser
    ``params`` default to ``DIR/<name>.params`` (else SortParams()). The taste/laser
    assignment comes from ``DIR/<name>.info`` (or ``info``), with the defaults of
    :func:`blechrs.trials.settings.trial_config`. EMG arrays need the recording (channels whose
    layout CAR group contains ``emg``); with ``digital_inputs`` given and no ``recording`` there
    are none.
    """
    t0 = time.perf_counter()
    directory = Path(directory)
    params = params or params_or_defaults(directory)
    h5path = existing_store(directory)
    if digital_inputs is None:
        if recording is None:
            recording = open_recording(directory)
        digital_inputs = recording.digital_inputs
    if recording is not None:
        sampling_rate = sampling_rate or float(recording.sampling_rate)
        n_samples = n_samples if n_samples is not None else int(recording.n_samples)
    fs = float(sampling_rate or params.extract.sampling_rate)
    info_source = "info"
    if info is None:
        info, p = find_info(directory)
        info_source = str(p) if p else "defaults"
    config = trial_config(info, digital_inputs, source=info_source)
    durations = tuple(float(v) for v in params.trials.spike_array_durations)
    bin_ms = float(params.trials.spike_array_bin_ms)
    bin_layout(durations, bin_ms, fs)  # validate before touching any file

    trials = build_trials(digital_inputs, config, fs)
    units = read_unit_spikes(h5path)
    data_end, cut = _data_end(directory, [u.electrode for u in units], n_samples)
    valid = window_bins(trials.start, fs, durations, bin_ms, data_end)
    n_bins = int(round((durations[0] + durations[1]) / bin_ms))
    trials.valid_first_bin, trials.valid_end_bin = valid[:, 0], valid[:, 1]
    trials.truncated = (valid[:, 0] > 0) | (valid[:, 1] < n_bins)

    emg: list[int] = []
    if recording is not None and getattr(recording, "amplifier", None) is not None:
        emg = emg_channels(directory, int(np.shape(recording.amplifier)[0]))
    result = ArraysResult(
        directory=directory, store=h5path, trial_table=paths.trial_table_path(directory), n_units=len(units),
        sampling_rate=fs, durations_ms=durations, bin_ms=bin_ms, emg_channels=emg, data_end=data_end,
    )
    _warnings(result, trials, config, digital_inputs, n_samples, cut)
    write_trial_table(result.trial_table, trials.columns())

    if len(trials) == 0 and not has_trial_arrays(h5path):
        result.seconds = time.perf_counter() - t0
        return result
    tastes = _taste_arrays(trials, config, [u.times for u in units], valid, result, recording, n_samples)
    write_trial_arrays(h5path, tastes, emg, compact=params.trials.compact_spike_arrays)
    result.emg_channels = emg if len(trials) else []
    result.seconds = time.perf_counter() - t0
    return result
