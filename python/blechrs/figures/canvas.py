"""A canvas of many panels: one matplotlib axes covering the whole figure (axis off, coordinates
in pixels), the panels rectangles on it with their ticks drawn as line segments, and every label
drawn by Pillow on the rendered image.

Matplotlib spends ~80 ms per axes on ticks and layout; a figure of many panels drawn as a few
collections on one reused canvas costs a few tens of ms instead. Pictures are for looking, at
screen resolution, and must never dominate the run time.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from blechrs.figures.png import save_rgb

DPI = 72
#: Default cell of a panel grid, pixels (a panel with its tick labels and title).
CELL = (250, 140)
#: Room inside a cell around the panel's frame: left (y tick labels), right, top (title), bottom
#: (x tick labels and the x axis name), pixels.
MARGINS = (44, 14, 17, 30)
TITLE_PX = 24


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


_REUSED: list = []


def _reused_canvas(width_px: int, height_px: int):
    """One figure and axes per process, emptied and resized for each picture (creating an axes
    costs more than drawing a figure's collections)."""
    if not _REUSED:
        fig = _figure(width_px / DPI, height_px / DPI)
        ax = fig.add_axes((0, 0, 1, 1))
        ax.set_axis_off()
        _REUSED.extend([fig, ax])
    fig, ax = _REUSED
    for artist in list(ax.collections) + list(ax.lines) + list(ax.texts) + list(ax.artists):
        artist.remove()
    fig.set_size_inches(width_px / DPI, height_px / DPI)
    return fig, ax


def nice_ticks(lo: float, hi: float, n: int = 4) -> np.ndarray:
    """Round tick values (1, 2, 2.5 or 5 x 10^k apart) within [lo, hi], about ``n`` of them."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return np.array([lo]) if math.isfinite(lo) else np.array([])
    raw = (hi - lo) / max(n, 1)
    mag = 10.0 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    ticks = np.arange(first, hi + step * 1e-9, step)
    return np.round(ticks, 10)


def tick_label(v: float) -> str:
    """A tick value without useless decimals (-0 is 0)."""
    if abs(v) < 1e-12:
        return "0"
    if float(v).is_integer():
        return f"{v:.0f}"
    return f"{v:.2f}".rstrip("0").rstrip(".")


class Panel:
    """Mapping from data (x, y) to canvas pixels inside one frame, with the frame's box."""

    def __init__(self, box: tuple[float, float, float, float], xlim, ylim):
        self.box = box
        self.xlim, self.ylim = (float(xlim[0]), float(xlim[1])), (float(ylim[0]), float(ylim[1]))
        x0, y0, w, h = box
        (xa, xb), (ya, yb) = self.xlim, self.ylim
        self._sx, self._sy = w / ((xb - xa) or 1.0), h / ((yb - ya) or 1.0)

    def __call__(self, x, y):
        x0, y0, _, _ = self.box
        return ((np.asarray(x, dtype=np.float64) - self.xlim[0]) * self._sx + x0,
                (np.asarray(y, dtype=np.float64) - self.ylim[0]) * self._sy + y0)

    def xy(self, x, y) -> np.ndarray:
        """Points as an (..., 2) array of canvas coordinates."""
        X, Y = self(x, y)
        return np.stack(np.broadcast_arrays(X, Y), axis=-1)


class Canvas:
    """A grid of ``rows`` x ``cols`` cells of ``cell`` pixels under a title line.

    Artists are batched per picture: every line segment goes into one LineCollection, every
    filled polygon into one PolyCollection, points into one marker line per colour, and labels
    are drawn by Pillow after rendering (Agg's text path costs ~0.3 ms per glyph).
    """

    def __init__(self, rows: int, cols: int, title: str, cell: tuple[int, int] = CELL):
        from matplotlib.collections import LineCollection, PolyCollection

        self._lc, self._pc = LineCollection, PolyCollection
        self.rows, self.cols, self.cell = rows, cols, cell
        self.W, self.H = int(cols * cell[0]), int(rows * cell[1] + TITLE_PX)
        self.fig, self.ax = _reused_canvas(self.W, self.H)
        self.ax.set_xlim(0, self.W)
        self.ax.set_ylim(0, self.H)
        self.lines: list[np.ndarray] = []
        self.line_colors: list[Any] = []
        self.line_widths: list[float] = []
        self.polys: list[np.ndarray] = []
        self.poly_colors: list[Any] = []
        self.texts: list[tuple] = []
        self.points: list[tuple] = []
        self.images: list[tuple] = []
        self.text(8, self.H - 5, title, size=12, va="top")

    # -- layout ---------------------------------------------------------------------------------
    def panel(self, row: int, col: int, xlim, ylim, colspan: int = 1, rowspan: int = 1,
              margins: Sequence[float] = MARGINS) -> Panel:
        """The frame of cell (row, col) (spanning ``colspan`` x ``rowspan`` cells), for data
        limits ``xlim``, ``ylim``; the frame itself is drawn by :meth:`axes`."""
        cw, ch = self.cell
        left, right, top, bottom = margins
        x0 = col * cw + left
        y0 = self.H - TITLE_PX - (row + rowspan) * ch + bottom
        return Panel((x0, y0, colspan * cw - left - right, rowspan * ch - top - bottom), xlim, ylim)

    def axes(self, p: Panel, xticks=None, yticks=None, xlabel: str = "", ylabel: str = "",
             title: str = "", title_color: Any = "k", frame: Any = "0.55") -> None:
        """The frame of panel ``p``, its ticks with their values, the axis names (x under the
        tick values, y above the y ticks) and a title above the frame."""
        x0, y0, w, h = p.box
        self.add_lines([np.array([[x0, y0], [x0 + w, y0], [x0 + w, y0 + h], [x0, y0 + h], [x0, y0]])], frame, 0.8)
        segs = []
        if xticks is not None:
            for v in xticks:
                X, _ = p(v, 0)
                if x0 - 0.5 <= X <= x0 + w + 0.5:
                    segs.append([[X, y0], [X, y0 - 4]])
                    self.text(X, y0 - 5, tick_label(v), size=10, ha="center", va="top", color="0.25")
        if yticks is not None:
            for v in yticks:
                _, Y = p(0, v)
                if y0 - 0.5 <= Y <= y0 + h + 0.5:
                    segs.append([[x0, Y], [x0 - 4, Y]])
                    self.text(x0 - 6, Y, tick_label(v), size=10, ha="right", va="center", color="0.25")
        if segs:
            self.add_lines(segs, "0.3", 0.8)
        if xlabel:
            self.text(x0 + w / 2, y0 - 17, xlabel, size=10, ha="center", va="top", color="0.25")
        if ylabel:
            self.text(x0 - 6, y0 + h + 2, ylabel, size=10, ha="right", va="bottom", color="0.25")
        if title:
            self.text(x0, y0 + h + 2, title, size=11, va="bottom", color=title_color)

    def tint(self, row: int, color: Any) -> None:
        """A background colour behind the whole of row ``row`` (drawn before the panels' fills)."""
        y0 = self.H - TITLE_PX - (row + 1) * self.cell[1]
        self.polys.insert(0, np.array([[0, y0], [self.W, y0], [self.W, y0 + self.cell[1]], [0, y0 + self.cell[1]]],
                                      dtype=np.float64))
        self.poly_colors.insert(0, color)

    # -- artists --------------------------------------------------------------------------------
    def add_lines(self, segs, color, width: float = 0.5, style: Any = "solid", z: int = 0) -> None:
        """Polylines (each an (n, 2) array, or an (m, n, 2) array of m of them) in one colour;
        ``style``: a matplotlib line style ("solid", "--", ":"); higher ``z`` is drawn later."""
        for s in segs:
            self.lines.append(np.asarray(s, dtype=np.float64))
            self.line_colors.append((color, float(width), style, z))

    def add_poly(self, verts, color) -> None:
        self.polys.append(np.asarray(verts))
        self.poly_colors.append(color)

    def add_points(self, x, y, color, size: float = 2.0) -> None:
        self.points.append((x, y, color, size))

    def image(self, p: Panel, rgb: np.ndarray) -> None:
        """An (rows, cols, 3) uint8 image filling panel ``p``'s frame (row 0 at the top), each
        pixel a block of canvas pixels (nearest, no smoothing); pasted on the rendered picture."""
        self.images.append((p.box, np.ascontiguousarray(rgb, dtype=np.uint8)))

    def text(self, x, y, s, size=11, color="k", ha="left", va="top") -> None:
        """A label at canvas pixel (x, y) (y up); ``size`` in pixels."""
        self.texts.append((x, y, s, size, color, ha, va))

    @staticmethod
    def text_width(s: str, size: int = 11) -> float:
        """The width of a label in pixels (to place labels side by side)."""
        return float(_font(size).getlength(s))

    # -- output ---------------------------------------------------------------------------------
    def _line_collection(self):
        """Every polyline of one (colour, width, style) as one NaN-separated path: a handful of
        paths per picture instead of thousands (matplotlib's cost is per path)."""
        from matplotlib.colors import to_rgba

        groups: dict[tuple, list[np.ndarray]] = {}
        for line, key in zip(self.lines, self.line_colors):
            groups.setdefault(key, []).append(line)
        keys = sorted(groups, key=lambda k: k[3])  # stable: first drawn first within a z
        gap = np.full((1, 2), np.nan)
        paths = [np.concatenate([part for line in groups[k] for part in (line, gap)][:-1]) for k in keys]
        return self._lc(paths, colors=[to_rgba(k[0]) for k in keys], linewidths=[k[1] for k in keys],
                        linestyles=[k[2] for k in keys])

    def _add_points(self) -> None:
        """Points of one colour and size as one marker line, whichever panels they are in."""
        from matplotlib.lines import Line2D

        groups: dict[tuple, list[tuple]] = {}
        for x, y, color, size in self.points:
            groups.setdefault((color if isinstance(color, str) else tuple(color), size), []).append((x, y))
        for (color, size), parts in groups.items():
            x = np.concatenate([np.atleast_1d(p[0]) for p in parts])
            y = np.concatenate([np.atleast_1d(p[1]) for p in parts])
            self.ax.add_artist(Line2D(x, y, linestyle="none", marker=".", markersize=size, markeredgewidth=0,
                                      color=color))

    def save(self, path: Path, info: dict[str, str] | None = None) -> Path:
        """Render and write the PNG; ``info``: text chunks stored in it (what it shows)."""
        from matplotlib.colors import to_rgba

        if self.polys:
            self.ax.add_collection(self._pc(self.polys, facecolors=[to_rgba(c) for c in self.poly_colors],
                                            linewidths=0))
        if self.lines:
            self.ax.add_collection(self._line_collection())
        self._add_points()
        self.fig.canvas.draw()
        from PIL import Image

        width, height = self.fig.canvas.get_width_height()
        img = Image.frombuffer("RGBA", (width, height), self.fig.canvas.buffer_rgba(), "raw", "RGBA", 0, 1)
        img = img.convert("RGB")
        sx, sy = width / self.W, height / self.H
        for (x0, y0, w, h), rgb in self.images:
            # inside the frame's line (drawn by Agg) by a pixel on every side
            left, top = int(round(x0 * sx)) + 1, int(round((self.H - y0 - h) * sy)) + 1
            size_px = (max(1, int(round((x0 + w) * sx)) - left), max(1, int(round((self.H - y0) * sy)) - top))
            rows = np.arange(size_px[1]) * rgb.shape[0] // size_px[1]  # nearest: blocks of pixels
            cols = np.arange(size_px[0]) * rgb.shape[1] // size_px[0]
            img.paste(Image.fromarray(np.ascontiguousarray(rgb[rows][:, cols]), "RGB"), (left, top))
        for x, y, s, size, color, ha, va in self.texts:
            anchor = {"left": "l", "center": "m", "right": "r"}[ha] + {"top": "a", "center": "m", "bottom": "d"}[va]
            mask, (dx, dy) = _text_mask(s, size, anchor)
            img.paste(_rgb(color), (int(round(x * sx)) + dx, int(round((self.H - y) * sy)) + dy), mask)
        return save_rgb(path, img, info)


_MASKS: dict[tuple, Any] = {}


def _text_mask(s: str, size: int, anchor: str):
    """A label rendered once as a mask (tick values and axis names repeat on every panel)."""
    key = (s, size, anchor)
    if key not in _MASKS:
        from PIL import Image, ImageDraw

        font = _font(size)
        left, top, right, bottom = font.getbbox(s, anchor=anchor)
        mask = Image.new("L", (max(1, right - left), max(1, bottom - top)), 0)
        ImageDraw.Draw(mask).text((-left, -top), s, fill=255, font=font, anchor=anchor)
        if len(_MASKS) > 5000:
            _MASKS.clear()
        _MASKS[key] = (mask, (left, top))
    return _MASKS[key]


_RGB: dict[Any, tuple[int, int, int]] = {}


def _rgb(color) -> tuple[int, int, int]:
    key = color if isinstance(color, (str, tuple)) else str(color)
    if key not in _RGB:
        from matplotlib.colors import to_rgba

        _RGB[key] = tuple(int(round(255 * v)) for v in to_rgba(color)[:3])  # type: ignore[assignment]
    return _RGB[key]


_FONTS: dict[int, Any] = {}


def _font(size: int):
    if size not in _FONTS:
        from PIL import ImageFont

        try:
            from matplotlib import font_manager

            _FONTS[size] = ImageFont.truetype(font_manager.findfont("DejaVu Sans"), int(size))
        except Exception:  # no FreeType: Pillow's built-in bitmap font
            _FONTS[size] = ImageFont.load_default()
    return _FONTS[size]


def picture_info(path: str | Path) -> dict[str, str]:
    """The text chunks of a PNG written by :meth:`Canvas.save` ({} if none or unreadable)."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            return {str(k): str(v) for k, v in getattr(im, "text", {}).items()}
    except (OSError, ValueError):
        return {}
