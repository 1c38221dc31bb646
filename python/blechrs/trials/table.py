"""The trial table: one row per taste trial, built from the digital inputs, lasers matched to it
(spec 2.4).

Trials are kept per digital-input name from the start, never as two separately ordered lists
zipped together (blech_clust bug 4, spec 11), so the first delivered taste need not be
alphabetically first. Onsets are ``blechrs.io``'s: the first high sample of each pulse.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from blechrs.errors import TrialsError
from blechrs.trials.settings import DigitalInputs, TrialConfig


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
        """The trial table's columns in file order (blech_clust's names first)."""
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

    @classmethod
    def from_rows(cls, rows: Sequence[Mapping[str, str]], sampling_rate: float) -> "TrialTable":
        """The table of the text rows of a trial table file (:func:`blechrs.io.trial_table.read_trial_table`)."""

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


def _nearest_trials(start: np.ndarray, l_on: np.ndarray, tol: float) -> np.ndarray:
    """Per trial, the laser pulse nearest its onset within ``tol`` samples (-1: none); a pulse
    goes only to the trial nearest it."""
    n = len(start)
    best = np.full(n, -1, dtype=np.int64)
    best_dist = np.full(n, np.inf)
    if n:
        for k in range(len(l_on)):
            d = np.abs(start - l_on[k]).astype(np.float64)
            i = int(np.argmin(d))
            if d[i] <= tol and d[i] < best_dist[i]:
                best[i], best_dist[i] = k, d[i]
    return best


def _match_laser(table: TrialTable, digital_inputs: DigitalInputs, config: TrialConfig) -> None:
    fs = table.sampling_rate
    n = len(table)
    l_on = np.concatenate([np.asarray(digital_inputs[d][0], np.int64) for d in config.laser_dig_ins])
    l_off = np.concatenate([np.asarray(digital_inputs[d][1], np.int64) for d in config.laser_dig_ins])
    if config.laser_conditions:
        tol_ms = max(abs(lag) for lag, _ in config.laser_conditions) + 200.0
    else:
        tol_ms = 500.0
    best = _nearest_trials(table.start, l_on, tol_ms * fs / 1000.0)
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
