"""The unit QA picture: a unit's waveforms (up to 200 + mean +- SD) beside a raster of every
trial, grouped by taste.

Drawn on the shared many-panel canvas (figures/canvas.py, drawn by Pillow): matplotlib axes with
tick labels cost ~200 ms per picture here (Agg's text path and the axes' layout), as much as the
rest of unit QA."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from blechrs.figures.canvas import Canvas, Panel, nice_ticks

COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf")
#: Waveforms drawn, and waveforms the mean and SD are taken over (seeded samples: the same
#: picture on every run).
SHOWN_WAVEFORMS = 200
MEAN_WAVEFORMS = 10000
#: The picture is a row of 13 narrow cells: the waveforms span 5, the raster 8 (the old 1 : 1.6).
CELL = (68, 312)
WAVEFORM_CELLS, RASTER_CELLS = 5, 8
MARGINS = (50, 12, 20, 34)


@dataclass
class RasterGroup:
    """The trials of one taste input, in delivery order."""

    label: str
    onsets: np.ndarray
    """Trial onsets, samples."""


class WaveformRaster:
    """One PNG per unit (:meth:`save`). ``window_ms``: (ms before, ms after) the onset shown;
    ``samples_before``: the waveforms' extremum sample; ``seed``: of the waveform samples."""

    def __init__(self, groups: Sequence[RasterGroup], sampling_rate: float, window_ms: Sequence[float],
                 samples_before: int, seed: int = 0):
        self.fs, self.samples_before, self.seed = float(sampling_rate), samples_before, seed
        self.pre_ms, self.post_ms = (float(v) for v in window_ms)
        # (label, colour, onsets, first row): trials are numbered down the raster, group after group
        self.groups: list[tuple[str, str, np.ndarray, int]] = []
        row = 0
        for k, group in enumerate(groups):
            onsets = np.asarray(group.onsets, dtype=np.int64)
            self.groups.append((group.label, COLORS[k % len(COLORS)], onsets, row))
            row += len(onsets)
        self.n_trials = row
        self.raster_panel: Panel | None = None
        """The raster's frame in the last picture drawn (canvas pixels, y up; for tests)."""

    def save(self, path: Path, title: str, waveforms: Any, unit_times: np.ndarray,
             info: dict[str, str] | None = None) -> Path:
        """The picture of one unit; ``info``: text chunks saying what it shows. ``waveforms``: an
        n x samples array, or anything with its ``shape`` that returns the rows of a sorted index
        array (only the rows shown are read: at most 200 + 10 000)."""
        cv = Canvas(1, WAVEFORM_CELLS + RASTER_CELLS, title, cell=CELL)
        self._waveforms(cv, waveforms)
        self._raster(cv, np.sort(np.asarray(unit_times, dtype=np.int64)))
        return cv.save(path, info)

    def _waveforms(self, cv: Canvas, waveforms: Any) -> None:
        shape = tuple(getattr(waveforms, "shape", np.shape(waveforms)))
        if not (len(shape) == 2 and shape[0] > 0 and shape[1] > 1):
            p = cv.panel(0, 0, (0, 1), (0, 1), colspan=WAVEFORM_CELLS, margins=MARGINS)
            cv.axes(p, xlabel="ms from extremum", ylabel="µV")
            cv.text(*p(0.5, 0.5), "no waveforms", size=11, ha="center", va="center")
            return
        n = shape[0]

        def rows(index: np.ndarray) -> np.ndarray:
            return np.asarray(waveforms[index], dtype=np.float64)

        x = (np.arange(shape[1]) - self.samples_before) * 1000.0 / self.fs
        rng = np.random.default_rng(self.seed)
        pick = np.sort(rng.choice(n, size=min(SHOWN_WAVEFORMS, n), replace=False))
        shown = rows(pick)
        # mean +- SD over at most MEAN_WAVEFORMS waveforms (seeded): the same picture, a fraction of the time
        sub = rows(np.arange(n)) if n <= MEAN_WAVEFORMS else rows(np.sort(rng.choice(n, MEAN_WAVEFORMS, replace=False)))
        m, sd = sub.mean(axis=0), sub.std(axis=0)
        lo, hi = min(shown.min(), (m - sd).min()), max(shown.max(), (m + sd).max())
        pad = 0.05 * (hi - lo) if hi > lo else 1.0
        p = cv.panel(0, 0, (x[0], x[-1]), (lo - pad, hi + pad), colspan=WAVEFORM_CELLS, margins=MARGINS)
        cv.axes(p, nice_ticks(x[0], x[-1], 5), nice_ticks(lo - pad, hi + pad, 6), "ms from extremum", "µV")
        # every shown waveform as one NaN-separated polyline: one path to draw
        gap = np.full((len(pick), 1), np.nan)
        cv.add_lines([p.xy(np.hstack([np.broadcast_to(x, shown.shape), gap]).ravel(),
                           np.hstack([shown, gap]).ravel())], "0.75", 0.5)
        for edge in (m - sd, m + sd):
            cv.add_lines([p.xy(x, edge)], "k", 0.8, "--", z=1)
        cv.add_lines([p.xy(x, m)], "k", 1.5, z=2)

    def _raster(self, cv: Canvas, t: np.ndarray) -> None:
        rows = max(self.n_trials, 1)
        # trial 0 at the top: the y limits run from the last row down to the first
        p = cv.panel(0, WAVEFORM_CELLS, (-self.pre_ms, self.post_ms), (rows - 0.5, -0.5), colspan=RASTER_CELLS,
                     margins=MARGINS)
        self.raster_panel = p
        cv.axes(p, nice_ticks(-self.pre_ms, self.post_ms, 6), nice_ticks(0, rows - 1, 5) if self.n_trials else None,
                "ms from trial onset", "trial")
        if not self.groups:
            cv.text(*p(0.5 * (self.post_ms - self.pre_ms), 0.5 * (rows - 1)), "no trials", size=11, ha="center",
                    va="center")
            return
        fs = self.fs
        x0, y0, w, h = p.box
        label_x = x0 + w
        for label, color, onsets, first in reversed(self.groups):  # legend above the frame, right-aligned
            cv.text(label_x, y0 + h + 3, label, size=10, ha="right", va="bottom", color=color)
            label_x -= cv.text_width(label, 10) + 12
        for label, color, onsets, first in self.groups:
            lo = np.searchsorted(t, onsets - self.pre_ms * fs / 1000.0, side="left")
            hi = np.searchsorted(t, onsets + self.post_ms * fs / 1000.0, side="left")
            cnt = hi - lo
            idx = np.arange(cnt.sum()) - np.repeat(np.cumsum(cnt) - cnt, cnt) + np.repeat(lo, cnt)
            xs = (t[idx] - np.repeat(onsets, cnt)) * 1000.0 / fs
            ys = np.repeat(np.arange(first, first + len(onsets), dtype=np.float64), cnt)
            if len(xs):  # one tick per spike, all of a group as one NaN-separated polyline
                nan = np.full(len(xs), np.nan)
                cv.add_lines([p.xy(np.stack([xs, xs, nan], axis=1).ravel(),
                                   np.stack([ys - 0.4, ys + 0.4, nan], axis=1).ravel())], color, 1.0)
            end = first + len(onsets) - 0.5
            if end < rows - 0.5:  # the line under a group that is not the last
                cv.add_lines([p.xy([-self.pre_ms, self.post_ms], [end, end])], "0.6", 0.5, z=1)
        cv.add_lines([p.xy([0, 0], [rows - 0.5, -0.5])], "r", 0.8, z=1)
