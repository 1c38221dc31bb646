"""The panels of a cluster or a unit, on a :class:`~blechrs.figures.canvas.Canvas` cell, each with
real axes: waveforms (a sample, mean +- SD, µV against ms on the electrode's one voltage scale),
ISI histogram (count against ms, 1 and 2 ms marked), peak amplitude over time (µV against s),
autocorrelogram (count against lag) and feature views (events as points coloured by cluster)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from blechrs.core.metrics import autocorrelogram
from blechrs.core.rows import rows
from blechrs.figures.canvas import Canvas, nice_ticks, to_rgba

MAX_WAVEFORMS = 40
MAX_POINTS = 1500
COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf",
          "#bcbd22", "#7f7f7f")
OUTLIER = "#c8c8c8"
ISI_MS = 20.0
ISI_BIN_MS = 0.5


def color_of(cluster: int) -> str:
    return COLORS[cluster % len(COLORS)]


@dataclass
class ElectrodeScale:
    """What every picture of one electrode shares, so sizes compare across its solutions and units:
    one voltage range (µV) for waveforms and amplitudes, the waveform's time axis and the detection
    threshold."""

    lo: float
    hi: float
    fs: float
    peak: int
    """Index of the extremum in each waveform."""
    n_samples: int
    """Samples per waveform."""
    duration_s: float
    threshold: float | None = None
    isi_limits: tuple[float, float] = (0.5, 2.0)
    """% of ISIs below 1 ms and below 2 ms above which the ISI label is red."""

    @property
    def ms(self) -> np.ndarray:
        return (np.arange(self.n_samples) - self.peak) * (1000.0 / self.fs)

    @property
    def yticks(self) -> np.ndarray:
        return nice_ticks(self.lo, self.hi, 6)


def voltage_range(waveforms: np.ndarray, max_events: int = 20000) -> tuple[float, float]:
    """One electrode's voltage range for its pictures: its events' troughs and peaks from the
    0.2nd to the 99.8th percentile (a deterministic subsample), padded by 8 %, and including 0."""
    n = len(waveforms)
    if n == 0 or waveforms.ndim != 2 or waveforms.shape[1] == 0:
        return -100.0, 50.0
    w = rows(waveforms, None if n <= max_events else np.linspace(0, n - 1, max_events).astype(np.int64),
             dtype=waveforms.dtype)
    lo = float(np.percentile(w.min(axis=1), 0.2))
    hi = float(np.percentile(w.max(axis=1), 99.8))
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    pad = 0.08 * (hi - lo or 1.0)
    return lo - pad, hi + pad


def waveform_panel(cv: Canvas, row: int, col: int, waveforms: np.ndarray, sc: ElectrodeScale, color: str,
                   rng, title: str, title_color: Any = "k", n_sample: int = MAX_WAVEFORMS,
                   colspan: int = 1, rowspan: int = 1, index: np.ndarray | None = None,
                   stats: tuple[np.ndarray, np.ndarray] | None = None) -> None:
    """A sample of the waveforms, their mean (black) and mean +- SD (grey band, dashed edges);
    ``index``: draw only these rows of ``waveforms`` (no copy of the others); ``stats``: their
    :func:`mean_sd` if already known."""
    x = sc.ms
    p = cv.panel(row, col, (x[0], x[-1]), (sc.lo, sc.hi), colspan=colspan, rowspan=rowspan)
    cv.axes(p, nice_ticks(x[0], x[-1], 4), sc.yticks, "ms from peak", "µV", title, title_color)
    _threshold_lines(cv, p, sc, (x[0], x[-1]))
    index = np.arange(len(waveforms)) if index is None else index
    n = len(index)
    if n == 0:
        return
    mean, sd = stats if stats is not None else mean_sd(waveforms, index)
    pick = index[np.sort(rng.choice(n, min(n, n_sample), replace=False))]
    sample = np.clip(rows(waveforms, pick), sc.lo, sc.hi)
    cv.add_lines(p.xy(x, sample), _light(color), 0.6)
    band = np.concatenate([p.xy(x, np.maximum(mean - sd, sc.lo)), p.xy(x, np.minimum(mean + sd, sc.hi))[::-1]])
    cv.add_poly(band, (0, 0, 0, 0.15))
    for edge in (mean - sd, mean + sd):
        cv.add_lines([p.xy(x, np.clip(edge, sc.lo, sc.hi))], "0.15", 0.8, "--", z=1)
    cv.add_lines([p.xy(x, np.clip(mean, sc.lo, sc.hi))], "k", 1.6, z=2)


def mean_sd(waveforms: np.ndarray, index: np.ndarray | None = None,
            max_events: int = 2000) -> tuple[np.ndarray, np.ndarray]:
    """Mean and SD waveform of the rows ``index`` (default all) from at most ``max_events`` of
    them (evenly spread: the same picture every time, and plenty for drawing)."""
    index = np.arange(len(waveforms)) if index is None else index
    n = len(index)
    if n == 0:
        return np.zeros(waveforms.shape[1:]), np.zeros(waveforms.shape[1:])
    w = rows(waveforms, index if n <= max_events else index[np.linspace(0, n - 1, max_events).astype(np.int64)])
    return w.mean(axis=0), w.std(axis=0)


def _light(color, amount: float = 0.55) -> tuple[float, float, float]:
    """``color`` mixed with white (sample waveforms under their mean; opaque, so that one path of
    all of them looks as separate lines would)."""
    r, g, b, _ = to_rgba(color)
    return (r + (1 - r) * amount, g + (1 - g) * amount, b + (1 - b) * amount)


def _threshold_lines(cv: Canvas, p, sc: ElectrodeScale, xlim) -> None:
    if sc.threshold:
        for v in (-sc.threshold, sc.threshold):
            if sc.lo < v < sc.hi:
                cv.add_lines([p.xy([xlim[0], xlim[1]], [v, v])], "#e08000", 0.8, (0, (4, 3)), z=3)


def isi_panel(cv: Canvas, row: int, col: int, times: np.ndarray, sc: ElectrodeScale, color: str,
              max_ms: float = ISI_MS, colspan: int = 1) -> None:
    """Histogram of inter-spike intervals up to ``max_ms`` (0.5 ms bins), count axis; red line at
    1 ms, dashed red at 2 ms; the % below each in the title (red above the limits)."""
    isi = np.diff(times) * (1000.0 / sc.fs)
    if len(isi) and isi.min() < 0:
        isi = np.diff(np.sort(times)) * (1000.0 / sc.fs)
    # % of ISIs under 1 and 2 ms relative to the number of events, as core.metrics.isi_violations
    v1, v2 = ((100.0 * np.count_nonzero(isi < 1.0) / len(times), 100.0 * np.count_nonzero(isi < 2.0) / len(times))
              if len(times) > 1 else (0.0, 0.0))
    edges = np.arange(0.0, max_ms + ISI_BIN_MS / 2, ISI_BIN_MS)
    counts, _ = np.histogram(isi, bins=edges)
    top = float(max(int(counts.max()) if len(counts) else 0, 1)) * 1.12
    p = cv.panel(row, col, (0, max_ms), (0, top), colspan=colspan)
    bad = v1 > sc.isi_limits[0] or v2 > sc.isi_limits[1]
    cv.axes(p, nice_ticks(0, max_ms, 4), _count_ticks(top), "ISI (ms)", "count",
            f"ISI: {v1:.2f}% < 1 ms, {v2:.2f}% < 2 ms", "#d00000" if bad else "k")
    _histogram(cv, p, counts, edges, color)
    cv.add_lines([p.xy([1.0, 1.0], [0, top])], "#d00000", 1.0, z=3)
    cv.add_lines([p.xy([2.0, 2.0], [0, top])], "#d00000", 1.0, (0, (4, 3)), z=3)


def _count_ticks(top: float) -> np.ndarray:
    ticks = nice_ticks(0, top / 1.12, 3)
    return ticks[ticks == np.round(ticks)] if top > 3 else np.array([0.0, 1.0])


def _histogram(cv: Canvas, p, counts: np.ndarray, edges: np.ndarray, color: str) -> None:
    """Bars as one filled step outline."""
    if not counts.any():
        return
    x = np.repeat(edges, 2)
    y = np.concatenate([[0.0], np.repeat(counts.astype(np.float64), 2), [0.0]])
    cv.add_poly(p.xy(x, y), color)


def amplitude_panel(cv: Canvas, row: int, col: int, amplitude: np.ndarray, times: np.ndarray, sc: ElectrodeScale,
                    color: str, title: str = "", colspan: int = 1, max_points: int = MAX_POINTS) -> None:
    """Each event's peak amplitude (µV, on the electrode's voltage scale) against its time (s),
    at most ``max_points`` of them (every k-th); the threshold dashed."""
    n = len(times)
    t_end = max(sc.duration_s, float(times[-1]) / sc.fs if n else 0.0, 1e-3)
    p = cv.panel(row, col, (0, t_end), (sc.lo, sc.hi), colspan=colspan)
    rate = n / max(sc.duration_s, 1e-9)
    cv.axes(p, nice_ticks(0, t_end, 5 * colspan), sc.yticks, "time (s)", "µV",
            title or f"peak amplitude, {rate:.2f} Hz")
    _threshold_lines(cv, p, sc, (0, t_end))
    if n:
        step = max(1, n // max_points)
        X, Y = p(times[::step] / sc.fs, np.clip(amplitude[::step], sc.lo, sc.hi))
        cv.add_points(X, Y, color, 2.5)


def acg_panel(cv: Canvas, row: int, col: int, times: np.ndarray, sc: ElectrodeScale, color: str,
              window_ms: float = 50.0, bin_ms: float = 1.0) -> None:
    """Autocorrelogram: count of spike pairs by lag, ±``window_ms``; 2 ms refractory band marked."""
    counts, edges = autocorrelogram(times, sc.fs, window_ms, bin_ms)
    top = float(max(int(counts.max()) if len(counts) else 0, 1)) * 1.12
    p = cv.panel(row, col, (edges[0], edges[-1]), (0, top))
    cv.axes(p, nice_ticks(-window_ms, window_ms, 4), _count_ticks(top), "lag (ms)", "count",
            f"autocorrelogram ({bin_ms:g} ms bins)")
    cv.add_poly(p.xy([-2, 2, 2, -2], [0, 0, top, top]), (0.85, 0.0, 0.0, 0.12))
    _histogram(cv, p, counts, edges, color)


def feature_panel(cv: Canvas, row: int, col: int, x: np.ndarray, y: np.ndarray, groups: np.ndarray,
                  colors: dict[int, Any], xlabel: str, ylabel: str, title: str, colspan: int = 1,
                  size: float = 2.5) -> None:
    """Events as points (x, y) coloured by group (``colors``: group -> colour; other groups light
    grey, drawn first). Limits: the 0.5..99.5 percentiles, padded."""
    if len(x) == 0:
        p = cv.panel(row, col, (0, 1), (0, 1), colspan=colspan)
        cv.axes(p, None, None, xlabel, ylabel, title + ": no events")
        return
    (xa, xb), (ya, yb) = _limits(x), _limits(y)
    p = cv.panel(row, col, (xa, xb), (ya, yb), colspan=colspan)
    cv.axes(p, nice_ticks(xa, xb, 4 * colspan), nice_ticks(ya, yb, 4), xlabel, ylabel, title)
    X, Y = p(np.clip(x, xa, xb), np.clip(y, ya, yb))
    known = np.isin(groups, list(colors))
    if (~known).any():
        cv.add_points(X[~known], Y[~known], OUTLIER, size)
    for g, c in colors.items():
        m = groups == g
        if m.any():
            cv.add_points(X[m], Y[m], c, size)


def _limits(v: np.ndarray) -> tuple[float, float]:
    lo, hi = (float(a) for a in np.percentile(v, [0.5, 99.5]))
    pad = 0.06 * (hi - lo or abs(hi) or 1.0)
    return lo - pad, hi + pad


def means_panel(cv: Canvas, row: int, col: int, means: Sequence[tuple[str, np.ndarray, Any]], sc: ElectrodeScale,
                title: str) -> None:
    """Mean waveforms overlaid on the electrode's voltage scale, each labelled at its extremum."""
    x = sc.ms
    p = cv.panel(row, col, (x[0], x[-1]), (sc.lo, sc.hi))
    cv.axes(p, nice_ticks(x[0], x[-1], 4), sc.yticks, "ms from peak", "µV", title)
    _threshold_lines(cv, p, sc, (x[0], x[-1]))
    for k, (label, mean, color) in enumerate(means):
        m = np.clip(np.asarray(mean, dtype=np.float64), sc.lo, sc.hi)
        cv.add_lines([p.xy(x, m)], color, 1.6, z=2)
        i = int(np.argmax(np.abs(m)))
        X, Y = p(x[i], m[i])
        offset = 10 + 28 * (k % 4)
        cv.text(float(X) + offset, float(Y), label, size=10, color=color, va="center")
