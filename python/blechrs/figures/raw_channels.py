"""Pictures of the raw-data QA at init: the channel correlation matrices and the digital inputs'
pulses over the session. Drawn on a :class:`~blechrs.figures.canvas.Canvas` (the matrices as
images): with matplotlib's axes, colour bars and layout they were ~0.5 s of a run's fixed cost."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from blechrs.figures.canvas import Canvas, Panel, nice_ticks

#: ColorBrewer's RdBu, red to blue (matplotlib's "RdBu" is these 11 colours interpolated linearly):
#: reversed, r = -1 is blue and r = +1 red.
_RDBU = ((0x67, 0x00, 0x1f), (0xb2, 0x18, 0x2b), (0xd6, 0x60, 0x4d), (0xf4, 0xa5, 0x82), (0xfd, 0xdb, 0xc7),
         (0xf7, 0xf7, 0xf7), (0xd1, 0xe5, 0xf0), (0x92, 0xc5, 0xde), (0x43, 0x93, 0xc3), (0x21, 0x66, 0xac),
         (0x05, 0x30, 0x61))
#: Matplotlib's default colour cycle (tab10), one colour per digital input.
_CYCLE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
          "#17becf")
#: The correlation picture's cells: a square matrix with its colour bar beside it.
CORR_CELL = (440, 376)
CORR_MARGINS = (44, 78, 20, 36)


def correlation_rgb(r: np.ndarray) -> np.ndarray:
    """r in [-1, 1] as RGB (uint8), RdBu reversed; NaN (a flat channel) white."""
    r = np.asarray(r, dtype=np.float64)
    nodes = np.linspace(-1.0, 1.0, len(_RDBU))
    table = np.asarray(_RDBU[::-1], dtype=np.float64) / 255.0
    x = np.clip(np.nan_to_num(r, nan=0.0), -1.0, 1.0)
    rgb = np.stack([np.interp(x, nodes, table[:, k]) for k in range(3)], axis=-1)
    rgb[np.isnan(r)] = 1.0
    return np.round(rgb * 255).astype(np.uint8)


def _matrix(cv: Canvas, col: int, r: np.ndarray, title: str) -> None:
    n = max(len(r), 1)
    # channel 0 at the top, as the matrix is printed
    p = cv.panel(0, col, (-0.5, n - 0.5), (n - 0.5, -0.5), margins=CORR_MARGINS)
    cv.image(p, correlation_rgb(r))
    ticks = nice_ticks(0, n - 1, 5) if n > 1 else np.array([0.0])
    cv.axes(p, xticks=ticks, yticks=ticks, xlabel="channel", ylabel="channel",
            title=f"channel correlation, {title}")
    x0, y0, w, h = p.box
    bar = Panel((x0 + w + 12, y0 + 0.1 * h, 12, 0.8 * h), (0, 1), (-1, 1))
    cv.image(bar, correlation_rgb(np.linspace(1, -1, 101))[:, None, :])
    cv.axes(bar)
    for v in (-1.0, -0.5, 0.0, 0.5, 1.0):
        _, Y = bar(0, v)
        bx = bar.box[0] + bar.box[2]
        cv.add_lines([[[bx, Y], [bx + 4, Y]]], "0.3", 0.8)
        cv.text(bx + 6, Y, f"{v:g}", size=10, va="center", color="0.25")


def plot_channel_correlation(path: Path, r_raw: np.ndarray, r_band: np.ndarray, names: Sequence[str]) -> Path:
    """Pearson r between channels, of the raw traces and of the 300-3000 Hz band, side by side."""
    cv = Canvas(1, 2, f"Pearson r between the {len(names)} channels (rows and columns: channel index)",
                cell=CORR_CELL)
    _matrix(cv, 0, r_raw, "raw")
    _matrix(cv, 1, r_band, "300-3000 Hz")
    return cv.save(path)


def plot_digital_inputs(path: Path, din: Mapping[str, tuple[np.ndarray, np.ndarray]], fs: float,
                        n_samples: int) -> Path:
    """Every digital input's pulses (onsets, offsets in samples) over the session."""
    k_inputs = max(1, len(din))
    cv = Canvas(1, 1, "digital inputs (pulses)" if din else "no digital inputs",
                cell=(800, int(40 + 36 * k_inputs)))
    duration = max(n_samples / fs, 1e-9)
    p = cv.panel(0, 0, (0, duration), (-0.6, k_inputs - 0.4), margins=(130, 16, 4, 34))
    ticks = nice_ticks(0, duration, 8)
    for k, (name, (on, off)) in enumerate(din.items()):
        a = np.asarray(on, dtype=np.float64) / fs
        b = a + np.maximum((np.asarray(off, dtype=np.float64) / fs) - a, 0.05)
        for x0, x1 in zip(a, b):
            X, Y = p([x0, x1, x1, x0], [k - 0.35, k - 0.35, k + 0.35, k + 0.35])
            cv.add_poly(np.stack([X, Y], axis=1), _CYCLE[k % len(_CYCLE)])
        _, Y = p(0, k)
        cv.text(p.box[0] - 6, Y, f"{name} ({len(on)})", size=10, ha="right", va="center", color="0.25")
    cv.axes(p, xticks=ticks, xlabel="time (s)")
    return cv.save(path)
