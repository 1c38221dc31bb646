"""Trials, spike-train arrays and EMG arrays (blech_clust's ``blech_make_arrays.py``, spec 2.4 / 8.1).

Two layers:

* pure functions on arrays, testable without any file: :func:`trial_config`, :func:`build_trials`,
  :func:`spike_array`, :func:`emg_array`;
* one directory-level step the CLI calls: :func:`make_arrays` ``(directory, params) -> ArraysResult``.

What blechrs does differently from blech_clust, on purpose:

* **Names and onsets stay paired.** Trials are kept per digital-input name from the start, never
  as two separately ordered lists zipped together (blech_clust bug 4, spec 11), so the first
  delivered taste need not be alphabetically first.
* **Bins are half-open and floor-based.** A spike at sample ``t`` of a trial with onset ``s`` goes
  to bin ``floor((t - s) / samples_per_bin) + pre_bins`` if that lies in ``[0, n_bins)``: the window
  is ``[s - pre, s + post)``. blech_clust truncates toward zero (``int()``), which makes the bin at
  the onset two bins wide, and its closed upper edge can index one past the array.
* **Counts, not 0/1.** ``spike_array`` holds the number of spikes per bin as unsigned integers
  (``uint8``; ``uint16``/``uint32`` only if a bin holds more than 255 spikes). At 1 ms bins this
  equals blech_clust's 0/1 array except for a unit firing twice within one ms; it is 8x smaller
  than float64 (64 units x 120 trials x 7000 bins is 54 MB, not 430 MB).
* **Trials near the ends of the recording are kept**, so trial ``k`` of a digital input is always
  its ``k``-th delivery and matches the trial table. Bins outside the recording hold 0 spikes (in
  the EMG array: NaN); the trial table marks such trials ``truncated`` and gives the range of bins
  fully inside the recording (``valid_first_bin``, ``valid_end_bin``), also stored beside each
  spike array as ``valid_bins`` (trials x 2). blech_clust drops only trials beyond the end.
  "The end" is the earliest point where extraction found the recording cut off (headstage fell
  off, spec 4.2) on an electrode with units, if before the recording's last sample.
* A digital input configured as a taste but without pulses gets no array (a warning says so).
* Trial onsets are ``blechrs.io``'s: the first high sample of each pulse (blech_clust uses the
  last low sample, one sample earlier).

Written (``make_arrays``): ``DIR/trial_info_frame.csv`` (columns of blech_clust's trial table,
plus ``truncated``, ``valid_first_bin``, ``valid_end_bin``; laser columns only with a laser
input) and, replacing any earlier ones, in the unit store ``DIR/<name>.h5``:
``/spike_trains/<dig_in_NN>/spike_array`` (trials x units x bins, units in ``/sorted_units``
name order, group title = the taste), ``.../valid_bins``, with a laser ``.../laser_durations`` and
``.../laser_onset_lag`` (ms per trial, snapped to the configured (lag, duration) pairs, 0 without
laser); with EMG channels ``/emg_data/<dig_in_NN>/emg_array`` (channels x trials x bins, float32
µV) and ``/emg_data/ind_electrode_map`` (rows [emg index, electrode_ind]). Arrays are
blosc:lz4-compressed; the store is edited on a copy that replaces it (:class:`AtomicStore`).
"""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from blechrs.errors import ParamsError, TrialsError

from blechrs.io.recording import MICROVOLTS_PER_BIT
from blechrs.io.params_file import load_params
from blechrs.params import SortParams

__all__ = [
    "TrialConfig",
    "TrialTable",
    "ArraysResult",
    "trial_config",
    "build_trials",
    "spike_array",
    "emg_array",
    "window_bins",
    "load_unit_times",
    "load_info",
    "unit_electrodes",
    "recording_cutoffs",
    "emg_channels",
    "store_path",
    "directory_params",
    "AtomicStore",
    "DigInSummary",
    "make_arrays",
    "TRIAL_TABLE_NAME",
]

#: The trial table, under the experiment directory (blech_clust's name, so its tools find it).
TRIAL_TABLE_NAME = "trial_info_frame.csv"

DigitalInputs = Mapping[str, tuple[np.ndarray, np.ndarray]]


# ------------------------------------------------------------------------------------------------
# Which digital inputs are tastes / laser
# ------------------------------------------------------------------------------------------------
@dataclass
class TrialConfig:
    """Which digital inputs are taste deliveries (and what taste) and which drive the laser."""

    tastes: dict[str, str]
    """Digital-input name -> taste name, for every taste input."""
    laser_dig_ins: list[str] = field(default_factory=list)
    laser_conditions: list[tuple[float, float]] = field(default_factory=list)
    """Configured (onset lag ms, duration ms) pairs; measured values are snapped to the nearest."""
    warnings: list[str] = field(default_factory=list)


def _dig_in_name(value: Any) -> str:
    """blech_clust writes names (``dig_in_03``); older files may hold bare input numbers."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return f"dig_in_{int(value):02d}"
    return str(value)


def _names(value: Any) -> list[str]:
    if value is None or value == "":
        return []
    if isinstance(value, (str, int, np.integer)):
        value = [value]
    return [_dig_in_name(v) for v in value]


def trial_config(info: Mapping[str, Any] | None, digital_inputs: DigitalInputs, source: str = ".info") -> TrialConfig:
    """Taste and laser inputs from the ``.info`` JSON (spec 2.5).

    Without ``taste_params.dig_in_names``, every digital input with at least one pulse that is not
    a laser input is a taste named after its input. ``tastes[i]`` names ``dig_in_names[i]``; a
    missing or short ``tastes`` list falls back to the input names.
    """
    info = info or {}
    laser = info.get("laser_params") or {}
    laser_names = _names(laser.get("dig_in_names"))
    conditions = []
    for pair in laser.get("onset_duration") or []:
        try:
            lag, dur = (float(v) for v in pair)
        except (TypeError, ValueError):
            raise TrialsError(f"{source}: laser_params.onset_duration entry {pair!r} is not [onset_ms, duration_ms]") from None
        conditions.append((lag, dur))

    taste_params = info.get("taste_params") or {}
    names = _names(taste_params.get("dig_in_names"))
    if names:
        labels = taste_params.get("tastes") or []
        labels = [labels] if isinstance(labels, str) else list(labels)
        tastes = {n: (str(labels[i]) if i < len(labels) and labels[i] not in (None, "") else n) for i, n in enumerate(names)}
    else:
        tastes = {
            n: n for n in sorted(digital_inputs) if len(digital_inputs[n][0]) > 0 and n not in laser_names
        }
    for n in list(tastes) + laser_names:
        if n not in digital_inputs:
            have = ", ".join(sorted(digital_inputs)) or "none"
            raise TrialsError(f"{source}: digital input {n} is not in the recording (it has: {have})")
    warnings = []
    both = sorted(set(tastes) & set(laser_names))
    if both:  # init lists every pulsed input as a taste; adding the laser should be the only edit
        warnings.append(f"{source}: {', '.join(both)} listed as taste and as laser input: used as laser")
        tastes = {k: v for k, v in tastes.items() if k not in both}
    return TrialConfig(tastes=tastes, laser_dig_ins=laser_names, laser_conditions=conditions, warnings=warnings)


# ------------------------------------------------------------------------------------------------
# Trial table
# ------------------------------------------------------------------------------------------------
@dataclass
class TrialTable:
    """One row per taste trial, ordered by onset (so ``abs_trial_num`` = row index).

    Sample columns are recording samples; ``*_ms`` are the same in ms from the recording start.
    ``taste_rel_trial_num`` is the trial's index in its digital input's spike array. Laser columns
    are present (``has_laser``) only when a laser input is configured; trials without a laser
    pulse have ``laser = False``, -1 samples and 0 ms.
    """

    sampling_rate: float
    dig_in: np.ndarray  # str
    taste: np.ndarray  # str
    start: np.ndarray  # int64 samples
    end: np.ndarray  # int64 samples
    abs_trial_num: np.ndarray
    taste_rel_trial_num: np.ndarray
    has_laser: bool = False
    laser: np.ndarray | None = None  # bool
    start_laser: np.ndarray | None = None
    end_laser: np.ndarray | None = None
    laser_duration_ms_measured: np.ndarray | None = None
    laser_lag_ms_measured: np.ndarray | None = None
    laser_duration_ms: np.ndarray | None = None  # snapped to the configured conditions
    laser_lag_ms: np.ndarray | None = None
    truncated: np.ndarray | None = None  # bool, set by make_arrays once the window is known
    valid_first_bin: np.ndarray | None = None
    valid_end_bin: np.ndarray | None = None
    unmatched_laser_pulses: int = 0

    def __len__(self) -> int:
        return len(self.start)

    @property
    def dig_ins(self) -> list[str]:
        """Taste inputs with at least one trial, sorted by name."""
        return sorted(set(self.dig_in.tolist()))

    def rows_of(self, dig_in: str) -> np.ndarray:
        """Row indices of one input's trials, in delivery order (= taste_rel_trial_num order)."""
        rows = np.flatnonzero(self.dig_in == dig_in)
        return rows[np.argsort(self.taste_rel_trial_num[rows], kind="stable")]

    def onsets(self, dig_in: str) -> np.ndarray:
        return self.start[self.rows_of(dig_in)]

    def _ms(self, samples: np.ndarray) -> np.ndarray:
        return samples * (1000.0 / self.sampling_rate)

    def columns(self) -> dict[str, np.ndarray]:
        cols: dict[str, np.ndarray] = {
            "dig_in_name_taste": self.dig_in,
            "taste": self.taste,
            "start_taste": self.start,
            "end_taste": self.end,
            "abs_trial_num": self.abs_trial_num,
            "taste_rel_trial_num": self.taste_rel_trial_num,
            "start_taste_ms": self._ms(self.start),
            "end_taste_ms": self._ms(self.end),
        }
        if self.has_laser:
            cols.update(
                {
                    "laser": self.laser,
                    "start_laser": self.start_laser,
                    "end_laser": self.end_laser,
                    "start_laser_ms": np.where(self.laser, self._ms(self.start_laser), np.nan),
                    "end_laser_ms": np.where(self.laser, self._ms(self.end_laser), np.nan),
                    "laser_duration_ms_measured": self.laser_duration_ms_measured,
                    "laser_lag_ms_measured": self.laser_lag_ms_measured,
                    "laser_duration_ms": self.laser_duration_ms,
                    "laser_lag_ms": self.laser_lag_ms,
                }
            )
        if self.truncated is not None:
            cols.update(
                {"truncated": self.truncated, "valid_first_bin": self.valid_first_bin, "valid_end_bin": self.valid_end_bin}
            )
        return cols

    def to_csv(self, path: str | os.PathLike) -> None:
        """Write atomically (temp file + os.replace)."""
        cols = self.columns()
        path = Path(path)
        tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")

        def fmt(v: Any) -> str:
            if isinstance(v, (bool, np.bool_)):
                return "True" if v else "False"
            if isinstance(v, (float, np.floating)):
                return "" if math.isnan(v) else repr(float(v))
            return str(v)

        with open(tmp, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(cols)
            for i in range(len(self)):
                w.writerow([fmt(c[i]) for c in cols.values()])
        os.replace(tmp, path)

    @classmethod
    def from_csv(cls, path: str | os.PathLike, sampling_rate: float) -> "TrialTable":
        path = Path(path)
        with open(path, newline="") as fh:
            rows = list(csv.DictReader(fh))
        need = ("dig_in_name_taste", "taste", "start_taste", "end_taste", "abs_trial_num", "taste_rel_trial_num")
        if rows and any(k not in rows[0] for k in need):
            raise TrialsError(f"{path}: not a trial table (needs columns {', '.join(need)})")

        def col(name: str, typ: Any) -> np.ndarray:
            return np.array([typ(r[name]) for r in rows], dtype=typ if typ is not str else object)

        t = cls(
            sampling_rate=float(sampling_rate),
            dig_in=col("dig_in_name_taste", str),
            taste=col("taste", str),
            start=col("start_taste", np.int64),
            end=col("end_taste", np.int64),
            abs_trial_num=col("abs_trial_num", np.int64),
            taste_rel_trial_num=col("taste_rel_trial_num", np.int64),
        )
        if rows and "valid_end_bin" in rows[0]:
            t.truncated = np.array([r["truncated"] == "True" for r in rows], dtype=bool)
            t.valid_first_bin = col("valid_first_bin", np.int64)
            t.valid_end_bin = col("valid_end_bin", np.int64)
        if rows and "laser" in rows[0]:
            t.has_laser = True
            t.laser = np.array([r["laser"] == "True" for r in rows], dtype=bool)
            t.start_laser = col("start_laser", np.int64)
            t.end_laser = col("end_laser", np.int64)
            for name in ("laser_duration_ms_measured", "laser_lag_ms_measured", "laser_duration_ms", "laser_lag_ms"):
                setattr(t, name, col(name, np.float64))
        return t


def build_trials(digital_inputs: DigitalInputs, config: TrialConfig, sampling_rate: float) -> TrialTable:
    """Taste trials from the pulses of the configured inputs; lasers matched to them (spec 2.4).

    Each laser pulse goes to the taste trial with the nearest onset, if within the tolerance
    (the largest configured |lag| + 200 ms, or 500 ms without configured conditions); a trial gets
    at most one laser pulse (the nearest). Measured lag/duration are snapped to the nearest
    configured (lag, duration) pair; without conditions the measured values are kept.
    """
    fs = float(sampling_rate)
    names, tastes, starts, ends, rel = [], [], [], [], []
    for name in sorted(config.tastes):
        on, off = (np.asarray(a, dtype=np.int64) for a in digital_inputs[name])
        if len(on) != len(off):
            raise TrialsError(f"digital input {name}: {len(on)} onsets but {len(off)} offsets")
        order = np.argsort(on, kind="stable")
        on, off = on[order], off[order]
        names += [name] * len(on)
        tastes += [config.tastes[name]] * len(on)
        starts.append(on)
        ends.append(off)
        rel.append(np.arange(len(on), dtype=np.int64))
    start = np.concatenate(starts) if starts else np.zeros(0, np.int64)
    end = np.concatenate(ends) if ends else np.zeros(0, np.int64)
    rel_n = np.concatenate(rel) if rel else np.zeros(0, np.int64)
    order = np.lexsort((np.array(names, dtype=object).astype(str) if names else np.zeros(0, str), start))
    table = TrialTable(
        sampling_rate=fs,
        dig_in=np.array(names, dtype=object)[order],
        taste=np.array(tastes, dtype=object)[order],
        start=start[order],
        end=end[order],
        abs_trial_num=np.arange(len(start), dtype=np.int64),
        taste_rel_trial_num=rel_n[order],
    )
    if config.laser_dig_ins:
        _match_laser(table, digital_inputs, config)
    return table


def _match_laser(table: TrialTable, digital_inputs: DigitalInputs, config: TrialConfig) -> None:
    fs = table.sampling_rate
    n = len(table)
    l_on = np.concatenate([np.asarray(digital_inputs[d][0], np.int64) for d in config.laser_dig_ins])
    l_off = np.concatenate([np.asarray(digital_inputs[d][1], np.int64) for d in config.laser_dig_ins])
    if config.laser_conditions:
        tol_ms = max(abs(lag) for lag, _ in config.laser_conditions) + 200.0
    else:
        tol_ms = 500.0
    tol = tol_ms * fs / 1000.0
    best = np.full(n, -1, dtype=np.int64)
    best_dist = np.full(n, np.inf)
    if n:
        for k in range(len(l_on)):
            d = np.abs(table.start - l_on[k]).astype(np.float64)
            i = int(np.argmin(d))
            if d[i] <= tol and d[i] < best_dist[i]:
                best[i], best_dist[i] = k, d[i]
    table.has_laser = True
    table.laser = best >= 0
    table.start_laser = np.where(table.laser, l_on[np.maximum(best, 0)] if len(l_on) else -1, -1).astype(np.int64)
    table.end_laser = np.where(table.laser, l_off[np.maximum(best, 0)] if len(l_off) else -1, -1).astype(np.int64)
    lag = np.where(table.laser, (table.start_laser - table.start) * 1000.0 / fs, 0.0)
    dur = np.where(table.laser, (table.end_laser - table.start_laser) * 1000.0 / fs, 0.0)
    table.laser_lag_ms_measured, table.laser_duration_ms_measured = lag, dur
    if config.laser_conditions:
        cond = np.asarray(config.laser_conditions, dtype=np.float64)
        dist = (lag[:, None] - cond[None, :, 0]) ** 2 + (dur[:, None] - cond[None, :, 1]) ** 2
        pick = np.argmin(dist, axis=1) if n else np.zeros(0, np.int64)
        table.laser_lag_ms = np.where(table.laser, cond[pick, 0], 0.0)
        table.laser_duration_ms = np.where(table.laser, cond[pick, 1], 0.0)
    else:
        table.laser_lag_ms, table.laser_duration_ms = lag.copy(), dur.copy()
    table.unmatched_laser_pulses = int(len(l_on) - table.laser.sum())


# ------------------------------------------------------------------------------------------------
# Spike and EMG arrays
# ------------------------------------------------------------------------------------------------
def _bins(durations_ms: Sequence[float], bin_ms: float, sampling_rate: float) -> tuple[int, int, float]:
    if len(durations_ms) != 2 or min(durations_ms) < 0:
        raise ParamsError(f"spike_array_durations must be [ms before, ms after] >= 0, not {list(durations_ms)}")
    if not bin_ms > 0:
        raise ParamsError(f"spike_array_bin_ms must be > 0, not {bin_ms}")
    pre, post = (d / bin_ms for d in durations_ms)
    if abs(pre - round(pre)) > 1e-9 or abs(post - round(post)) > 1e-9:
        raise ParamsError(f"spike_array_durations {list(durations_ms)} must be whole multiples of spike_array_bin_ms {bin_ms}")
    return int(round(pre)), int(round(post)), sampling_rate * bin_ms / 1000.0


def window_bins(
    onsets: np.ndarray,
    sampling_rate: float,
    durations_ms: Sequence[float] = (2000.0, 5000.0),
    bin_ms: float = 1.0,
    n_samples: int | None = None,
) -> np.ndarray:
    """Per trial, ``[first, end)`` of the bins lying wholly inside samples ``[0, n_samples)``."""
    pre_bins, post_bins, spb = _bins(durations_ms, bin_ms, sampling_rate)
    n_bins = pre_bins + post_bins
    s = np.asarray(onsets, dtype=np.int64)
    w0 = s - pre_bins * spb  # may be fractional when spb is
    first = np.clip(np.ceil(-w0 / spb - 1e-9), 0, n_bins).astype(np.int64)
    if n_samples is None:
        end = np.full(len(s), n_bins, dtype=np.int64)
    else:
        end = np.clip(np.floor((n_samples - w0) / spb + 1e-9), 0, n_bins).astype(np.int64)
    return np.stack([first, np.maximum(end, first)], axis=1) if len(s) else np.zeros((0, 2), np.int64)


def spike_array(
    unit_times: Sequence[np.ndarray],
    onsets: np.ndarray,
    sampling_rate: float,
    durations_ms: Sequence[float] = (2000.0, 5000.0),
    bin_ms: float = 1.0,
) -> np.ndarray:
    """Spike counts, ``(n_trials, n_units, n_bins)`` unsigned integers.

    ``unit_times[u]``: unit ``u``'s spike times in samples (any order). ``onsets``: trial onsets in
    samples, in trial order. Bin ``k`` of a trial with onset ``s`` covers samples
    ``[s - pre + k*spb, s - pre + (k+1)*spb)`` with ``spb = sampling_rate * bin_ms / 1000``.
    """
    pre_bins, post_bins, spb = _bins(durations_ms, bin_ms, sampling_rate)
    n_bins = pre_bins + post_bins
    s = np.asarray(onsets, dtype=np.int64)
    n_trials, n_units = len(s), len(unit_times)
    integral = abs(spb - round(spb)) < 1e-9
    if integral:
        spb_i = int(round(spb))
        lo_edge = s - pre_bins * spb_i
        hi_edge = s + post_bins * spb_i
    else:  # integer t >= x  <=>  t >= ceil(x);  t < x  <=>  t < ceil(x)
        lo_edge = np.ceil(s - pre_bins * spb).astype(np.int64)
        hi_edge = np.ceil(s + post_bins * spb).astype(np.int64)
    flat_parts = []
    for u, times in enumerate(unit_times):
        t = np.asarray(times, dtype=np.int64)
        if t.size == 0 or n_trials == 0:
            continue
        if np.any(t[1:] < t[:-1]):
            t = np.sort(t, kind="stable")
        lo = np.searchsorted(t, lo_edge, side="left")
        hi = np.searchsorted(t, hi_edge, side="left")
        counts = hi - lo
        total = int(counts.sum())
        if total == 0:
            continue
        trial = np.repeat(np.arange(n_trials, dtype=np.int64), counts)
        # indices lo[k] .. hi[k]-1 of every trial, concatenated
        idx = np.arange(total, dtype=np.int64) - np.repeat(np.cumsum(counts) - counts, counts) + np.repeat(lo, counts)
        rel = t[idx] - s[trial]
        if integral:
            b = (rel + pre_bins * spb_i) // spb_i
        else:
            b = np.clip(np.floor(rel / spb).astype(np.int64) + pre_bins, 0, n_bins - 1)
        flat_parts.append((trial * n_units + u) * n_bins + b)
    flat = np.concatenate(flat_parts) if flat_parts else np.zeros(0, np.int64)
    where, counts = np.unique(flat, return_counts=True)
    top = int(counts.max()) if counts.size else 0
    dtype = np.uint8 if top <= 0xFF else np.uint16 if top <= 0xFFFF else np.uint32
    out = np.zeros((n_trials, n_units, n_bins), dtype=dtype)
    out.reshape(-1)[where] = counts
    return out


def emg_array(
    traces: Any,
    channels: Sequence[int],
    onsets: np.ndarray,
    sampling_rate: float,
    durations_ms: Sequence[float] = (2000.0, 5000.0),
    bin_ms: float = 1.0,
    n_samples: int | None = None,
    scale: float = MICROVOLTS_PER_BIT,
) -> np.ndarray:
    """EMG in microvolts averaged per bin, ``(n_channels, n_trials, n_bins)`` float32 (spec 8.1).

    ``traces``: anything indexable as ``traces[channel, a:b]`` (an int16 channels x samples array,
    a memmap, ``Recording.amplifier``). The per-bin mean is blech_clust's 30-sample averaging (a
    boxcar low-pass). Bins not wholly inside the recording are NaN.
    """
    pre_bins, post_bins, spb = _bins(durations_ms, bin_ms, sampling_rate)
    n_bins = pre_bins + post_bins
    s = np.asarray(onsets, dtype=np.int64)
    if n_samples is None:
        n_samples = int(np.shape(traces)[-1])
    out = np.full((len(channels), len(s), n_bins), np.nan, dtype=np.float32)
    # bin k spans samples [edge[k], edge[k+1]) relative to the window start
    edges = np.ceil(np.arange(n_bins + 1) * spb - 1e-9).astype(np.int64)
    width = int(edges[-1])
    for k, onset in enumerate(s):
        a = int(np.ceil(onset - pre_bins * spb - 1e-9))
        a0, b0 = max(a, 0), min(a + width, n_samples)
        if b0 <= a0:
            continue
        ok = (edges[:-1] + a >= 0) & (edges[1:] + a <= n_samples)
        if not ok.any():
            continue
        first, last = int(np.argmax(ok)), int(len(ok) - np.argmax(ok[::-1]))
        lo, hi = int(edges[first]) + a, int(edges[last]) + a
        x = np.asarray(traces[list(channels), lo:hi], dtype=np.float64).reshape(len(channels), hi - lo) * scale
        sums = np.add.reduceat(x, edges[first:last] - edges[first], axis=1)  # one read per trial
        out[:, k, first:last] = sums / np.diff(edges[first : last + 1])
    return out


# ------------------------------------------------------------------------------------------------
# Files: unit store, .info, layout
# ------------------------------------------------------------------------------------------------
def store_path(directory: str | os.PathLike) -> Path:
    d = Path(directory)
    p = d / f"{d.resolve().name}.h5"
    if not p.exists():
        raise FileNotFoundError(f"{p}: no unit store (run the sort first)")
    return p


def load_unit_times(h5path: str | os.PathLike) -> tuple[list[str], list[np.ndarray]]:
    """Unit names (sorted: unit000, unit001 ...) and their spike times (int64 samples)."""
    import tables

    with tables.open_file(str(h5path), "r") as h5:
        if "/sorted_units" not in h5:
            return [], []
        groups = sorted(h5.list_nodes("/sorted_units", classname="Group"), key=lambda g: g._v_name)
        names = [g._v_name for g in groups]
        times = [np.asarray(g.times.read(), dtype=np.int64).reshape(-1) for g in groups]
    return names, times


def unit_electrodes(h5path: str | os.PathLike) -> list[int]:
    """Electrode of each unit (same order as :func:`load_unit_times`; -1 if unknown). Read from
    /unit_descriptor (one table) when it covers every unit: opening 64 small tables costs ~1 s."""
    import tables

    with tables.open_file(str(h5path), "r") as h5:
        if "/sorted_units" not in h5:
            return []
        groups = sorted(h5.list_nodes("/sorted_units", classname="Group"), key=lambda g: g._v_name)
        names = [g._v_name for g in groups]
        if "/unit_descriptor" in h5:
            desc = h5.root.unit_descriptor.read()
            if {"unit_number", "electrode_number"} <= set(desc.dtype.names or ()):
                by_number = {int(n): int(e) for n, e in zip(desc["unit_number"], desc["electrode_number"])}
                numbers = [int(n[4:]) if n[4:].isdigit() else -1 for n in names]
                if all(k in by_number for k in numbers):
                    return [by_number[k] for k in numbers]
        out = []
        for g in groups:
            meta = g.unit_metadata.read() if "unit_metadata" in g else None
            out.append(int(meta["electrode_number"][0]) if meta is not None and len(meta) else -1)
    return out


def recording_cutoffs(directory: str | os.PathLike, electrodes: Sequence[int]) -> dict[int, int]:
    """Per electrode, the sample where extraction found the recording cut off (headstage fell
    off, spec 4.2), from the extraction work files; electrodes without one are left out."""
    from blechrs.io import paths

    out = {}
    for e in sorted(set(int(x) for x in electrodes if x >= 0)):
        path = paths.electrode_path(directory, e)
        if not path.exists():
            continue
        try:
            with np.load(path, allow_pickle=False) as z:
                meta = json.loads(str(z["__meta__"])) if "__meta__" in z.files else {}
        except (OSError, ValueError, KeyError):
            continue  # an unreadable work file only loses this refinement
        if meta.get("cutoff_sample") is not None:
            out[e] = int(meta["cutoff_sample"])
    return out


def load_info(directory: str | os.PathLike) -> tuple[dict[str, Any], Path | None]:
    """``<name>.info`` and its path, or ({}, None) when there is none (defaults then apply)."""
    from blechrs.io.info import find_info

    return find_info(directory)


def emg_channels(directory: str | os.PathLike, n_channels: int | None = None) -> list[int]:
    """Channel indices (``electrode_ind``) whose CAR group names EMG, from the layout CSV (none
    without a layout)."""
    from blechrs.io import layout

    if not layout.layout_path(directory).exists():
        return []
    return layout.emg_electrodes(layout.load_layout(directory, n_channels))


class AtomicStore:
    """``with AtomicStore(path) as h5:`` edits a copy of the HDF5 file (opened "a"), which replaces
    the original (os.replace) only when the block succeeds: a crash leaves the original intact."""

    def __init__(self, path: Path):
        self.path = path
        self.tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")

    def __enter__(self):
        import tables

        shutil.copyfile(self.path, self.tmp)
        self.h5 = tables.open_file(str(self.tmp), "a")
        return self.h5

    def __exit__(self, exc_type, exc, tb):
        try:
            self.h5.close()
        finally:
            if exc_type is None:
                with open(self.tmp, "rb+") as fh:
                    os.fsync(fh.fileno())
                shutil.copymode(self.path, self.tmp)
                os.replace(self.tmp, self.path)
            else:
                self.tmp.unlink(missing_ok=True)
        return False


# ------------------------------------------------------------------------------------------------
# The directory-level step
# ------------------------------------------------------------------------------------------------
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


def directory_params(directory: str | os.PathLike) -> SortParams:
    """``DIR/<name>.params`` if it exists, else the defaults."""
    d = Path(directory)
    p = d / f"{d.resolve().name}.params"
    return load_params(p) if p.exists() else SortParams()


def _open_recording(directory: Path):
    from blechrs.io import open_recording  # the Intan reader (owned by the io module)

    return open_recording(directory)


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
    :func:`trial_config`. EMG arrays need the recording (channels whose layout CAR group contains
    ``emg``); with ``digital_inputs`` given and no ``recording`` there are none.
    """
    t0 = time.perf_counter()
    directory = Path(directory)
    params = params or directory_params(directory)
    h5path = store_path(directory)
    if digital_inputs is None:
        if recording is None:
            recording = _open_recording(directory)
        digital_inputs = recording.digital_inputs
    if recording is not None:
        sampling_rate = sampling_rate or float(recording.sampling_rate)
        n_samples = n_samples if n_samples is not None else int(recording.n_samples)
    fs = float(sampling_rate or params.extract.sampling_rate)
    info_source = "info"
    if info is None:
        info, p = load_info(directory)
        info_source = str(p) if p else "defaults"
    config = trial_config(info, digital_inputs, source=info_source)
    durations = tuple(float(v) for v in params.trials.spike_array_durations)
    bin_ms = float(params.trials.spike_array_bin_ms)
    _bins(durations, bin_ms, fs)  # validate before touching any file

    trials = build_trials(digital_inputs, config, fs)
    unit_names, unit_times = load_unit_times(h5path)
    # Spikes exist only up to where extraction cut the recording (headstage fell off): bins past
    # the earliest cut of any electrode with units are outside the data, like bins past the end.
    from blechrs.io import paths

    has_work = paths.work_dir(directory).exists()
    cut = recording_cutoffs(directory, unit_electrodes(h5path)) if unit_names and has_work else {}
    data_end = n_samples
    if cut:
        first_cut = min(cut.values())
        if data_end is None or first_cut < data_end:
            data_end = first_cut
    valid = window_bins(trials.start, fs, durations, bin_ms, data_end)
    n_bins = int(round((durations[0] + durations[1]) / bin_ms))
    trials.valid_first_bin, trials.valid_end_bin = valid[:, 0], valid[:, 1]
    trials.truncated = (valid[:, 0] > 0) | (valid[:, 1] < n_bins)

    emg: list[int] = []
    if recording is not None and getattr(recording, "amplifier", None) is not None:
        emg = emg_channels(directory, int(np.shape(recording.amplifier)[0]))
    result = ArraysResult(
        directory=directory, store=h5path, trial_table=directory / TRIAL_TABLE_NAME, n_units=len(unit_names),
        sampling_rate=fs, durations_ms=durations, bin_ms=bin_ms, emg_channels=emg,
    )
    result.data_end = data_end
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
    if not unit_names:
        result.warnings.append(f"{h5path}: no sorted units; spike arrays have 0 units")

    trials.to_csv(result.trial_table)

    import tables

    with tables.open_file(str(h5path), "r") as h5:
        had_old = "/spike_trains" in h5 or "/emg_data" in h5
    if len(trials) == 0 and not had_old:
        result.seconds = time.perf_counter() - t0
        return result

    # blosc:lz4 (bundled with PyTables, and what blech_clust's ptrepack uses): ~4x faster than
    # zlib here; a 30 x 64 x 7000 array of spikes takes ~0.9 MB instead of 13 MB
    filters = tables.Filters(complevel=1, complib="blosc:lz4", shuffle=False)
    with AtomicStore(h5path) as h5:
        for node in ("/spike_trains", "/emg_data"):
            if node in h5:
                h5.remove_node(node, recursive=True)
        if len(trials):
            h5.create_group("/", "spike_trains")
        for name in trials.dig_ins:
            rows = trials.rows_of(name)
            arr = spike_array(unit_times, trials.start[rows], fs, durations, bin_ms)
            g = h5.create_group("/spike_trains", name, title=str(config.tastes[name]))
            if arr.size:  # one chunk per trial: compresses the mostly-zero array fast
                ca = h5.create_carray(g, "spike_array", atom=tables.Atom.from_dtype(arr.dtype), shape=arr.shape,
                                      filters=filters, chunkshape=(1, arr.shape[1], n_bins))
                ca[...] = arr
            else:  # no units: HDF5 chunked arrays cannot have a zero dimension
                h5.create_array(g, "spike_array", arr)
            h5.create_array(g, "valid_bins", valid[rows])
            n_laser = None
            if trials.has_laser:
                h5.create_array(g, "laser_durations", np.asarray(trials.laser_duration_ms[rows], np.float64))
                h5.create_array(g, "laser_onset_lag", np.asarray(trials.laser_lag_ms[rows], np.float64))
                n_laser = int(trials.laser[rows].sum())
            result.dig_ins.append(
                DigInSummary(name, str(config.tastes[name]), len(rows), int(trials.truncated[rows].sum()), n_laser, arr.shape)
            )
        if emg and len(trials):
            h5.create_group("/", "emg_data")
            h5.create_array("/emg_data", "ind_electrode_map", np.array([[i, ch] for i, ch in enumerate(emg)], np.int64))
            for name in trials.dig_ins:
                rows = trials.rows_of(name)
                e = emg_array(recording.amplifier, emg, trials.start[rows], fs, durations, bin_ms, n_samples)
                g = h5.create_group("/emg_data", name)
                ca = h5.create_carray(g, "emg_array", atom=tables.Float32Atom(), shape=e.shape, filters=filters)
                ca[...] = e
        result.emg_channels = emg if len(trials) else []
    result.seconds = time.perf_counter() - t0
    return result
