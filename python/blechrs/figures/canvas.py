"""A canvas of many small panels: one matplotlib axes covering the whole figure, axis off, the
panels rectangles on it, and the labels drawn by Pillow on the rendered image.

Matplotlib spends ~80 ms per axes on ticks and layout; a figure of many small panels drawn as
collections on one canvas costs a few tens of ms instead. Pictures are for looking, at low
resolution, and must never dominate the run time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from blechrs.figures.png import save_png

DPI = 60


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


_REUSED: list = []


def _reused_canvas(width: float, height: float):
    """One figure and axes per process, emptied and resized for each picture (creating an axes
    costs more than drawing a figure's collections)."""
    if not _REUSED:
        fig = _figure(width, height)
        ax = fig.add_axes((0, 0, 1, 1))
        ax.set_axis_off()
        _REUSED.extend([fig, ax])
    fig, ax = _REUSED
    for artist in list(ax.collections) + list(ax.lines) + list(ax.texts):
        artist.remove()
    fig.set_size_inches(width, height)
    return fig, ax


class Canvas:
    """One axes covering the whole figure, axis off; panels are rectangles on it.

    Matplotlib spends ~80 ms per axes on ticks and layout; a figure of many small panels drawn as
    collections on one canvas costs a few tens of ms instead. Artists are batched per figure.
    """

    def __init__(self, rows: int, cols: int, title: str):
        from matplotlib.collections import LineCollection, PolyCollection

        self._lc, self._pc = LineCollection, PolyCollection
        self.rows, self.cols = rows, cols
        self.fig, self.ax = _reused_canvas(3.0 * cols, 1.45 * rows + 0.35)
        self.W, self.H = float(cols), float(rows) + 0.35 / 1.45
        self.ax.set_xlim(0, self.W)
        self.ax.set_ylim(0, self.H)
        self.lines: list[np.ndarray] = []
        self.line_colors: list[Any] = []
        self.line_widths: list[float] = []
        self.polys: list[np.ndarray] = []
        self.poly_colors: list[Any] = []
        self.texts: list[tuple] = []
        self.points: list[tuple] = []
        self.text(self.W / 2, self.H - 0.04, title, size=9, ha="center", va="top")

    def panel(self, row: int, col: int, xlim, ylim):
        """Mapping (x, y) data -> canvas coordinates for panel (row, col), with a frame."""
        x0, y0 = col + 0.06, self.rows - 1 - row + 0.14   # (room below for the axis note)
        w, h = 0.9, 0.66
        (xa, xb), (ya, yb) = xlim, ylim
        sx = w / ((xb - xa) or 1.0)
        sy = h / ((yb - ya) or 1.0)

        def f(x, y):
            return (np.asarray(x, dtype=np.float64) - xa) * sx + x0, (np.asarray(y, dtype=np.float64) - ya) * sy + y0

        box = np.array([[x0, y0], [x0 + w, y0], [x0 + w, y0 + h], [x0, y0 + h], [x0, y0]])
        self.add_lines([box], "0.6", 0.5)
        f.box = (x0, y0, w, h)  # type: ignore[attr-defined]
        return f

    def add_lines(self, segs, color, width: float = 0.5) -> None:
        for s in segs:
            self.lines.append(np.asarray(s))
            self.line_colors.append(color)
            self.line_widths.append(width)

    def add_poly(self, verts, color) -> None:
        self.polys.append(np.asarray(verts))
        self.poly_colors.append(color)

    def add_points(self, x, y, color) -> None:
        self.points.append((x, y, color))

    def text(self, x, y, s, size=7, color="k", ha="left", va="top") -> None:
        self.texts.append((x, y, s, size, color, ha, va))

    def save(self, path: Path) -> Path:
        from matplotlib.colors import to_rgba

        if self.polys:
            self.ax.add_collection(self._pc(self.polys, facecolors=[to_rgba(c) for c in self.poly_colors],
                                            linewidths=0))
        if self.lines:
            self.ax.add_collection(self._lc(self.lines, colors=[to_rgba(c) for c in self.line_colors],
                                            linewidths=self.line_widths))
        for x, y, color in self.points:
            self.ax.plot(x, y, linestyle="none", marker=".", markersize=1.5, markeredgewidth=0, color=color)
        self.fig.canvas.draw()
        # Labels are drawn by Pillow (matplotlib's own dependency) on the rendered image: Agg's text
        # path costs ~0.3 ms per glyph, more than all the graphics of a figure.
        from PIL import Image, ImageDraw

        width, height = self.fig.canvas.get_width_height()
        img = Image.frombuffer("RGBA", (width, height), self.fig.canvas.buffer_rgba(), "raw", "RGBA", 0, 1)
        img = img.convert("RGB")
        draw = ImageDraw.Draw(img)
        for x, y, s, size, color, ha, va in self.texts:
            px = x / self.W * width
            py = (1.0 - y / self.H) * height
            anchor = {"left": "l", "center": "m", "right": "r"}[ha] + {"top": "a", "center": "m", "bottom": "d"}[va]
            draw.text((px, py), s, fill=tuple(int(255 * v) for v in to_rgba(color)[:3]), font=_font(size),
                      anchor=anchor)
        return save_png(path, img, compress_level=1)


_FONTS: dict[int, Any] = {}


def _font(size: int):
    if size not in _FONTS:
        from PIL import ImageFont

        try:
            from matplotlib import font_manager

            _FONTS[size] = ImageFont.truetype(font_manager.findfont("DejaVu Sans"), int(size * 1.6))
        except Exception:  # no FreeType: Pillow's built-in bitmap font
            _FONTS[size] = ImageFont.load_default()
    return _FONTS[size]
