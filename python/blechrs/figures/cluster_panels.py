"""One row of three panels for a cluster or a unit: its waveforms (a sample, mean +- SD), its ISI
histogram and its peak amplitude over time."""

from __future__ import annotations

import numpy as np

from blechrs.core.metrics import isi_violations
from blechrs.figures.canvas import Canvas

MAX_WAVEFORMS = 40
MAX_POINTS = 2000
COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf",
          "#bcbd22", "#7f7f7f")


def draw_row(cv: Canvas, row: int, waveforms: np.ndarray, times: np.ndarray, fs: float, peak: int,
             color: str, rng, title: str, duration_s: float, threshold: float | None = None) -> None:
    """The three panels of one cluster or unit in row ``row`` of the canvas."""
    n = len(times)
    if n == 0:
        f = cv.panel(row, 0, (0, 1), (0, 1))
        x0, y0, w, h = f.box
        cv.text(x0 + 0.01, y0 + h - 0.01, f"{title}: no events")
        return
    waveform_panel(cv, row, waveforms, fs, peak, color, rng, title, threshold)
    isi_panel(cv, row, times, fs, color)
    amplitude_panel(cv, row, waveforms, times, fs, peak, color, duration_s)


def waveform_panel(cv: Canvas, row: int, waveforms: np.ndarray, fs: float, peak: int, color: str, rng,
                   title: str, threshold: float | None) -> None:
    from matplotlib.colors import to_rgba

    n = len(waveforms)
    L = waveforms.shape[1]
    x = (np.arange(L) - peak) * (1000.0 / fs)
    # Mean and SD from at most 5000 events (a deterministic subsample): plenty for a picture.
    stats = waveforms if n <= 5000 else waveforms[np.linspace(0, n - 1, 5000).astype(np.int64)]
    mean = stats.mean(axis=0, dtype=np.float64)
    sd = stats.std(axis=0, dtype=np.float64)
    pick = np.sort(rng.choice(n, min(n, MAX_WAVEFORMS), replace=False))
    sample = waveforms[pick].astype(np.float64)
    lo = float(min(np.min(mean - 2 * sd), np.percentile(sample, 1)))
    hi = float(max(np.max(mean + 2 * sd), np.percentile(sample, 99)))
    f = cv.panel(row, 0, (x[0], x[-1]), (lo, hi))
    x0, y0, w, h = f.box
    faint = to_rgba(color, 0.3)
    for wf in np.clip(sample, lo, hi):
        cv.add_lines([np.column_stack(f(x, wf))], faint, 0.4)
    band = np.concatenate([np.column_stack(f(x, mean - sd)), np.column_stack(f(x, mean + sd))[::-1]])
    cv.add_poly(band, (0, 0, 0, 0.18))
    cv.add_lines([np.column_stack(f(x, mean))], "k", 1.0)
    if threshold and lo < -threshold < hi:
        cv.add_lines([np.column_stack(f([x[0], x[-1]], [-threshold, -threshold]))], "0.5", 0.5)
    if threshold and lo < threshold < hi:
        cv.add_lines([np.column_stack(f([x[0], x[-1]], [threshold, threshold]))], "0.5", 0.5)
    # Short labels: Agg text costs ~0.1 ms per glyph, more than everything else in these figures.
    cv.text(x0 + 0.01, y0 + h - 0.01, f"{title} n={n} {lo:.0f}..{hi:.0f}uV")
    axis_note(cv, x0 + w, y0, f"{x[0]:.1f}..{x[-1]:.1f} ms")


def isi_panel(cv: Canvas, row: int, times: np.ndarray, fs: float, color: str) -> None:
    v1, v2 = isi_violations(times, fs)
    isi = np.diff(np.sort(times)) * (1000.0 / fs)
    counts, edges = np.histogram(isi, bins=np.linspace(0, 20, 41))
    top = max(int(counts.max()), 1)
    f = cv.panel(row, 1, (0, 20), (0, top * 1.15))
    x0, y0, w, h = f.box
    for c, a, b in zip(counts, edges[:-1], edges[1:]):
        if c:
            X, Y = f([a, b, b, a], [0, 0, c, c])
            cv.add_poly(np.column_stack([X, Y]), color)
    for ms, style in ((1.0, "r"), (2.0, (1, 0.5, 0.5, 1))):
        cv.add_lines([np.column_stack(f([ms, ms], [0, top * 1.15]))], style, 0.6)
    bad = v1 >= 0.5 or v2 >= 2
    cv.text(x0 + 0.01, y0 + h - 0.01, f"ISI {v1:.2f}%<1 {v2:.2f}%<2ms", color="r" if bad else "k")
    axis_note(cv, x0 + w, y0, "0..20 ms")


def amplitude_panel(cv: Canvas, row: int, waveforms: np.ndarray, times: np.ndarray, fs: float, peak: int,
                    color: str, duration_s: float) -> None:
    n = len(times)
    step = max(1, n // MAX_POINTS)
    t = times[::step] / fs
    amp = waveforms[::step, peak].astype(np.float64)
    t_end = max(duration_s, float(times[-1]) / fs, 1e-3)
    a_lo, a_hi = float(amp.min()), float(amp.max())
    pad = 0.05 * (a_hi - a_lo + 1)
    f = cv.panel(row, 2, (0, t_end), (a_lo - pad, a_hi + pad))
    x0, y0, w, h = f.box
    X, Y = f(t, amp)
    cv.add_points(X, Y, color)
    cv.text(x0 + 0.01, y0 + h - 0.01, f"peak/time {n / max(duration_s, 1e-9):.2f}Hz")
    axis_note(cv, x0 + w, y0, f"0..{t_end:.0f} s, {a_lo:.0f}..{a_hi:.0f}uV")


def axis_note(cv: Canvas, right: float, bottom: float, s: str) -> None:
    """The x range (and for amplitudes the y range) of a panel, small under its lower right
    corner: the panels have no ticks (see Canvas)."""
    cv.text(right, bottom - 0.01, s, size=6, color="0.35", ha="right", va="top")
