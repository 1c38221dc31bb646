"""A canvas of many panels, drawn by Pillow: coordinates in pixels (y up), the panels rectangles
on it with their ticks drawn as line segments, every label a cached glyph mask.

Matplotlib spends ~80 ms per axes on ticks and layout, and its anti-aliased renderer ~20 ms on a
picture of a few hundred lines even as one collection; Pillow draws the same lines, one or two
pixels wide, in a few ms. Pictures are for looking, at screen resolution, and must never dominate
the run time (nothing of matplotlib is imported: only its DejaVu Sans font file is read).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from blechrs.figures.png import save_rgb

#: Default cell of a panel grid, pixels (a panel with its tick labels and title).
CELL = (250, 140)
#: Room inside a cell around the panel's frame: left (y tick labels), right, top (title), bottom
#: (x tick labels and the x axis name), pixels.
MARGINS = (44, 14, 17, 30)
TITLE_PX = 24


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

    Artists are collected, then drawn at :meth:`save`: polylines of one colour, width and style
    converted to pixels together (matplotlib's line styles and colour names), points of one colour
    as one call, labels pasted as cached glyph masks.
    """

    def __init__(self, rows: int, cols: int, title: str, cell: tuple[int, int] = CELL):
        self.rows, self.cols, self.cell = rows, cols, cell
        self.W, self.H = int(cols * cell[0]), int(rows * cell[1] + TITLE_PX)
        self.lines: list[np.ndarray] = []
        self.line_colors: list[Any] = []
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
    def render(self):
        """The picture as a Pillow RGB image: polygons, then lines (by ``z``), points, images and
        labels, each drawn by Pillow in one call per artist (no anti-aliasing: lines one or two
        pixels wide, at screen resolution)."""
        from PIL import Image, ImageDraw

        img = Image.new("RGB", (self.W, self.H), (255, 255, 255))
        draw = ImageDraw.Draw(img, "RGBA")  # RGBA fills blend (the SD band over a tinted row)
        for verts, color in zip(self.polys, self.poly_colors):
            flat, bounds = _runs(self._pixels(verts))
            for i, j in bounds:
                if j - i >= 2:
                    draw.polygon(flat[2 * i:2 * j], fill=_rgba(color))
        groups: dict[tuple, list[np.ndarray]] = {}
        for line, key in zip(self.lines, self.line_colors):
            groups.setdefault(key, []).append(line)
        gap = np.full((1, 2), np.nan)
        for key in sorted(groups, key=lambda k: k[3]):  # stable: first drawn first within a z
            color, width, style, _ = key
            xy = self._pixels(np.concatenate([part for line in groups[key] for part in (line, gap)][:-1]))
            # a line thinner than a pixel is drawn a pixel wide and that much lighter, as an
            # anti-aliased renderer would
            fill, px, dash = _faint(color, width), max(1, int(round(width))), _dash_pattern(style, width)
            if dash is not None:
                draw.point(_dashed(xy, *dash), fill=fill)
                continue
            flat, bounds = _runs(xy)
            for i, j in bounds:
                if j - i >= 2:
                    draw.line(flat[2 * i:2 * j], fill=fill, width=px, joint="curve" if px > 1 else None)
        dots: dict[tuple, list[np.ndarray]] = {}
        for x, y, color, size in self.points:
            dots.setdefault((color if isinstance(color, str) else tuple(color), size), []).append(
                np.column_stack([np.atleast_1d(np.asarray(x, dtype=np.float64)),
                                 np.atleast_1d(np.asarray(y, dtype=np.float64))]))
        for (color, size), parts in dots.items():
            xy = self._pixels(np.concatenate(parts))
            xy = xy[np.isfinite(xy).all(axis=1)]
            # a square dot of about the marker's size (its area's share of the square in alpha)
            k = 2 if size < 3.5 else 3
            draw.point((xy[:, None, :] + _DOT[k][None]).ravel().tolist(), fill=_faint(color, (size / (k + 1.5)) ** 2))
        for (x0, y0, w, h), rgb in self.images:
            # inside the frame's line by a pixel on every side
            left, top = int(round(x0)) + 1, int(round(self.H - y0 - h)) + 1
            size_px = (max(1, int(round(x0 + w)) - left), max(1, int(round(self.H - y0)) - top))
            rows = np.arange(size_px[1]) * rgb.shape[0] // size_px[1]  # nearest: blocks of pixels
            cols = np.arange(size_px[0]) * rgb.shape[1] // size_px[0]
            img.paste(Image.fromarray(np.ascontiguousarray(rgb[rows][:, cols]), "RGB"), (left, top))
        for x, y, s, size, color, ha, va in self.texts:
            anchor = {"left": "l", "center": "m", "right": "r"}[ha] + {"top": "a", "center": "m", "bottom": "d"}[va]
            mask, (dx, dy) = _text_mask(s, size, anchor)
            img.paste(_rgb(color), (int(round(x)) + dx, int(round(self.H - y)) + dy), mask)
        return img

    def _pixels(self, points) -> np.ndarray:
        """Canvas coordinates (y up) -> integer pixel columns and rows (row 0 at the top) as float
        (NaN kept: it separates polylines)."""
        a = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        return np.column_stack([np.floor(a[:, 0]), np.floor(self.H - a[:, 1])])

    def save(self, path: Path, info: dict[str, str] | None = None) -> Path:
        """Render and write the PNG; ``info``: text chunks stored in it (what it shows)."""
        return save_rgb(path, self.render(), info)


#: Pixel offsets of a square dot of 2 and of 3 pixels.
_DOT = {k: np.array([(dx, dy) for dy in range(k) for dx in range(k)], dtype=np.float64) for k in (2, 3)}


def _runs(xy: np.ndarray) -> tuple[list[float], list[tuple[int, int]]]:
    """A polyline's coordinates as one flat list, and the [start, end) point ranges of its
    NaN-free runs (NaN rows separate lines drawn as one)."""
    bad = ~np.isfinite(xy).all(axis=1)
    cuts = np.flatnonzero(bad)
    starts = np.concatenate([[0], cuts + 1])
    ends = np.concatenate([cuts, [len(xy)]])
    return np.where(bad[:, None], 0.0, xy).ravel().tolist(), [(int(i), int(j)) for i, j in zip(starts, ends) if j > i]


def _dash_pattern(style, width: float) -> tuple[float, float] | None:
    """(on, off) pixels of a line style, scaled by the width as matplotlib does; None if solid."""
    if style in (None, "solid", "-"):
        return None
    if style in ("--", "dashed"):
        on, off = 3.7, 1.6
    elif style in (":", "dotted"):
        on, off = 1.0, 1.65
    elif style in ("-.", "dashdot"):
        on, off = 6.4, 3.2
    else:  # (offset, (on, off, ...))
        on, off = (float(v) for v in style[1][:2])
    scale = max(float(width), 1.0)
    return max(1.0, on * scale), max(1.0, off * scale)


def _dashed(xy: np.ndarray, on: float, off: float) -> list[float]:
    """The pixels of dashed polylines (NaN rows separate them), flat: each sampled every half
    pixel along its length, the samples in the "on" part of each period kept (the pattern starts
    again on every line)."""
    if len(xy) < 2:
        return []
    a, b = xy[:-1], xy[1:]
    ok = np.isfinite(a).all(axis=1) & np.isfinite(b).all(axis=1)
    length = np.where(ok, np.hypot(*(b - a).T), 0.0)
    # arc length at each segment's start, from its own line's start
    total = np.concatenate([[0.0], np.cumsum(length)])
    line_start = np.maximum.accumulate(np.where(np.concatenate([[True], ~ok]), np.arange(len(total)), 0))
    start = (total - total[line_start])[:-1]
    k = np.where(ok, np.ceil(length / 0.5).astype(np.int64) + 1, 0)
    seg = np.repeat(np.arange(len(k)), k)
    t = (np.arange(len(seg)) - np.repeat(np.cumsum(k) - k, k)) / np.maximum(np.repeat(k, k) - 1, 1)
    keep = (start[seg] + t * length[seg]) % (on + off) < on
    seg, t = seg[keep], t[keep][:, None]
    return np.floor(a[seg] + t * (b[seg] - a[seg])).ravel().tolist()


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


#: matplotlib's one-letter colours, as the figures name them.
_BASE_COLORS = {"b": (0.0, 0.0, 1.0), "g": (0.0, 0.5, 0.0), "r": (1.0, 0.0, 0.0), "c": (0.0, 0.75, 0.75),
                "m": (0.75, 0.0, 0.75), "y": (0.75, 0.75, 0.0), "k": (0.0, 0.0, 0.0), "w": (1.0, 1.0, 1.0)}
_RGBA: dict[Any, tuple[int, int, int, int]] = {}


def to_rgba(color) -> tuple[float, float, float, float]:
    """A colour as matplotlib names it (a one-letter colour, a grey level "0.55", "#rrggbb", a CSS
    name, or an (r, g, b[, a]) tuple in 0..1) as r, g, b, a in 0..1."""
    if isinstance(color, str):
        if color in _BASE_COLORS:
            return (*_BASE_COLORS[color], 1.0)
        try:
            grey = float(color)
        except ValueError:
            from PIL import ImageColor

            rgb = ImageColor.getrgb(color)
            return (rgb[0] / 255, rgb[1] / 255, rgb[2] / 255, rgb[3] / 255 if len(rgb) > 3 else 1.0)
        return (grey, grey, grey, 1.0)
    c = tuple(float(v) for v in color)
    return (c[0], c[1], c[2], c[3] if len(c) > 3 else 1.0)


def _rgba(color) -> tuple[int, int, int, int]:
    key = color if isinstance(color, (str, tuple)) else str(color)
    if key not in _RGBA:
        _RGBA[key] = tuple(int(round(255 * v)) for v in to_rgba(color))  # type: ignore[assignment]
    return _RGBA[key]


def _faint(color, share: float) -> tuple[int, int, int, int]:
    """``color`` with its alpha times ``share`` (at most 1)."""
    r, g, b, a = _rgba(color)
    return r, g, b, int(round(a * min(1.0, max(0.0, float(share)))))


def _rgb(color) -> tuple[int, int, int]:
    return _rgba(color)[:3]


_FONTS: dict[int, Any] = {}


def _font_file() -> str | None:
    """matplotlib's DejaVu Sans, found without importing matplotlib (0.5 s per process)."""
    import importlib.util

    spec = importlib.util.find_spec("matplotlib")
    for root in (spec.submodule_search_locations or []) if spec else []:
        path = Path(root) / "mpl-data" / "fonts" / "ttf" / "DejaVuSans.ttf"
        if path.is_file():
            return str(path)
    return None


def _font(size: int):
    if size not in _FONTS:
        from PIL import ImageFont

        try:
            path = _font_file()
            _FONTS[size] = ImageFont.truetype(path, int(size)) if path else ImageFont.load_default()
        except OSError:  # no FreeType: Pillow's built-in bitmap font
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
