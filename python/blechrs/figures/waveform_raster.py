"""The unit QA picture: a unit's waveforms (up to 200 + mean +- SD) beside a raster of every
trial, grouped by taste."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from blechrs.figures.png import save_rgb

COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf")


@dataclass
class RasterGroup:
    """The trials of one taste input, in delivery order."""

    label: str
    onsets: np.ndarray
    """Trial onsets, samples."""


class WaveformRaster:
    """One PNG per unit. The figure, its raster axes, legend and ticks are built once and only the
    data change per unit: drawing dominates the cost, not building artists.

    ``window_ms``: (ms before, ms after) the onset shown; ``samples_before``: the waveforms'
    extremum sample."""

    def __init__(self, groups: Sequence[RasterGroup], sampling_rate: float, window_ms: Sequence[float],
                 samples_before: int, seed: int = 0):
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        self.fs, self.samples_before, self.seed = float(sampling_rate), samples_before, seed
        self.fig = Figure(figsize=(11, 4.2), dpi=80)
        FigureCanvasAgg(self.fig)
        self.ax_w, self.ax_r = self.fig.subplots(1, 2, gridspec_kw={"width_ratios": [1, 1.6]})
        self.fig.subplots_adjust(left=0.07, right=0.98, bottom=0.12, top=0.9, wspace=0.22)
        self.title = self.fig.suptitle("", fontsize=10)
        self._waveform_axes()
        self.pre_ms, self.post_ms = window_ms
        self.groups: list[tuple[Any, np.ndarray, np.ndarray]] = []  # (collection, onsets, rows)
        self._above_raster: list[Any] = []
        self._background: Any = None
        self._raster_axes(groups)

    def _waveform_axes(self) -> None:
        # many segments as ONE NaN-separated line: one path to draw, not one per segment
        (self.waves,) = self.ax_w.plot([], [], color="0.75", lw=0.4, antialiased=False)
        (self.mean,) = self.ax_w.plot([], [], color="k", lw=1.5)
        (self.sd_hi,) = self.ax_w.plot([], [], "k--", lw=0.8)
        (self.sd_lo,) = self.ax_w.plot([], [], "k--", lw=0.8)
        self.no_wave = self.ax_w.text(0.5, 0.5, "no waveforms", ha="center", va="center", transform=self.ax_w.transAxes)
        self.ax_w.set_xlabel("ms from extremum")
        self.ax_w.set_ylabel("µV")

    def _raster_axes(self, groups: Sequence[RasterGroup]) -> None:
        from matplotlib.lines import Line2D

        row = 0
        handles = []
        if groups:
            for k, group in enumerate(groups):
                onsets = group.onsets
                (coll,) = self.ax_r.plot([], [], color=COLORS[k % len(COLORS)], lw=0.7, antialiased=False)
                self.groups.append((coll, onsets, np.arange(row, row + len(onsets), dtype=np.float64)))
                row += len(onsets)
                self._above_raster.append(self.ax_r.axhline(row - 0.5, color="0.6", lw=0.5))
                handles.append(Line2D([], [], color=COLORS[k % len(COLORS)], lw=2, label=group.label))
            self._above_raster.append(self.ax_r.axvline(0, color="r", lw=0.8))
            self.ax_r.set_ylim(row - 0.5, -0.5)
            self._above_raster.append(self.ax_r.legend(handles=handles, loc="upper right", fontsize=7))
        else:
            self.ax_r.text(0.5, 0.5, "no trials", ha="center", va="center", transform=self.ax_r.transAxes)
        self.ax_r.set_xlim(-self.pre_ms, self.post_ms)
        self.ax_r.set_xlabel("ms from trial onset")
        self.ax_r.set_ylabel("trial")

    def save(self, path: Path, title: str, waveforms: Any, unit_times: np.ndarray,
             info: dict[str, str] | None = None) -> Path:
        """The picture of one unit; ``info``: text chunks saying what it shows. ``waveforms``: an
        n x samples array, or anything with its ``shape`` that returns the rows of a sorted index
        array (only the rows shown are read: at most 200 + 10 000)."""
        self._show_waveforms(waveforms)
        self._show_raster(np.sort(np.asarray(unit_times, dtype=np.int64)))
        self.title.set_text(title)
        self._render()
        from PIL import Image

        return save_rgb(path, Image.fromarray(np.asarray(self.fig.canvas.buffer_rgba())[..., :3]), info)

    def _render(self) -> None:
        """Draw the figure: the parts that are the same for every unit (raster axes, ticks, legend)
        once, kept as a background; per unit only the waveform axes, the raster lines (then the
        lines and legend that lie above them) and the title."""
        canvas = self.fig.canvas
        dynamic = [self.ax_w, self.title] + [coll for coll, _, _ in self.groups]
        if self._background is None:
            for a in dynamic:
                a.set_visible(False)
            canvas.draw()
            self._background = canvas.copy_from_bbox(self.fig.bbox)
            for a in dynamic:
                a.set_visible(True)
        canvas.restore_region(self._background)
        renderer = canvas.get_renderer()
        self.ax_w.draw(renderer)
        for coll, _, _ in self.groups:
            self.ax_r.draw_artist(coll)
        for a in self._above_raster:
            self.ax_r.draw_artist(a)
        self.fig.draw_artist(self.title)

    def _show_waveforms(self, waveforms: Any) -> None:
        shape = tuple(getattr(waveforms, "shape", np.shape(waveforms)))
        has = len(shape) == 2 and shape[0] > 0 and shape[1] > 1
        self.no_wave.set_visible(not has)
        if not has:
            for line in (self.waves, self.mean, self.sd_hi, self.sd_lo):
                line.set_data([], [])
            return
        n = shape[0]

        def rows(index: np.ndarray) -> np.ndarray:
            return np.asarray(waveforms[index], dtype=np.float64)

        x = (np.arange(shape[1]) - self.samples_before) * 1000.0 / self.fs
        rng = np.random.default_rng(self.seed)
        pick = np.sort(rng.choice(n, size=min(200, n), replace=False))
        shown = rows(pick)
        nan = np.full((len(pick), 1), np.nan)
        self.waves.set_data(np.hstack([np.broadcast_to(x, (len(pick), len(x))), nan]).ravel(),
                            np.hstack([shown, nan]).ravel())
        # mean +- SD over at most 10 000 waveforms (seeded): the same picture, a fraction of the time
        sub = rows(np.arange(n)) if n <= 10000 else rows(np.sort(rng.choice(n, 10000, replace=False)))
        m, sd = sub.mean(axis=0), sub.std(axis=0)
        self.mean.set_data(x, m)
        self.sd_hi.set_data(x, m + sd)
        self.sd_lo.set_data(x, m - sd)
        lo, hi = min(shown.min(), (m - sd).min()), max(shown.max(), (m + sd).max())
        pad = 0.05 * (hi - lo) if hi > lo else 1.0
        self.ax_w.set_xlim(x[0], x[-1])
        self.ax_w.set_ylim(lo - pad, hi + pad)

    def _show_raster(self, t: np.ndarray) -> None:
        fs = self.fs
        for coll, onsets, rows in self.groups:
            lo = np.searchsorted(t, onsets - self.pre_ms * fs / 1000.0, side="left")
            hi = np.searchsorted(t, onsets + self.post_ms * fs / 1000.0, side="left")
            cnt = hi - lo
            idx = np.arange(cnt.sum()) - np.repeat(np.cumsum(cnt) - cnt, cnt) + np.repeat(lo, cnt)
            xs = (t[idx] - np.repeat(onsets, cnt)) * 1000.0 / fs
            ys = np.repeat(rows, cnt)
            nan = np.full(len(xs), np.nan)
            coll.set_data(np.stack([xs, xs, nan], axis=1).ravel(), np.stack([ys - 0.4, ys + 0.4, nan], axis=1).ravel())
