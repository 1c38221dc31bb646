"""Pictures of a sorted recording (matplotlib, Agg, no pyplot).

- ``DIR/blechrs_plots/electrodeNN/solutionKK.png``: one figure per electrode and clustering
  solution, one row per cluster: a sample of waveforms with the mean +- SD, the ISI histogram with
  the % of ISIs under 1 and 2 ms, and the peak amplitude over time.
- ``DIR/blechrs_plots/units/unitNNN.png``: the same three panels for every stored unit.
- ``DIR/blechrs_plots/index.html``: a page listing every unit (with its metrics) and every
  electrode's solutions, to browse the whole recording.

Figures are made in a process pool, one task per electrode, at low resolution: they are for
looking, and must never dominate the run time.
"""

from __future__ import annotations

import html
import os
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from blechrs.params import SortParams

PLOT_DIR = "blechrs_plots"
MAX_WAVEFORMS = 40
MAX_POINTS = 2000
DPI = 60
COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf",
          "#bcbd22", "#7f7f7f")


def plot_dir(directory: str | os.PathLike) -> Path:
    return Path(directory) / PLOT_DIR


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.png")
    fig.savefig(tmp, dpi=DPI, pil_kwargs={"compress_level": 1})
    os.replace(tmp, path)


def isi_violations(times: np.ndarray, fs: float) -> tuple[float, float]:
    """% of events followed within 1 ms / 2 ms by the next (blech_clust's convention)."""
    if len(times) < 2:
        return 0.0, 0.0
    isi = np.diff(np.sort(times)) * (1000.0 / fs)
    return 100.0 * np.count_nonzero(isi < 1) / len(times), 100.0 * np.count_nonzero(isi < 2) / len(times)


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


class _Canvas:
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
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.png")
        img.save(tmp, format="PNG", compress_level=1)
        os.replace(tmp, path)
        return path


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


def _draw_row(cv: _Canvas, row: int, waveforms: np.ndarray, times: np.ndarray, fs: float, peak: int,
              color: str, rng, title: str, duration_s: float, threshold: float | None = None) -> None:
    """Three panels of one cluster or unit: waveforms (sample, mean +- SD), ISI histogram,
    peak amplitude over time."""
    from matplotlib.colors import to_rgba

    n = len(times)
    if n == 0:
        f = cv.panel(row, 0, (0, 1), (0, 1))
        x0, y0, w, h = f.box
        cv.text(x0 + 0.01, y0 + h - 0.01, f"{title}: no events")
        return
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
    _axis_note(cv, x0 + w, y0, f"{x[0]:.1f}..{x[-1]:.1f} ms")

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
    _axis_note(cv, x0 + w, y0, "0..20 ms")

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
    _axis_note(cv, x0 + w, y0, f"0..{t_end:.0f} s, {a_lo:.0f}..{a_hi:.0f}uV")


def _axis_note(cv: _Canvas, right: float, bottom: float, s: str) -> None:
    """The x range (and for amplitudes the y range) of a panel, small under its lower right
    corner: the panels have no ticks (see _Canvas)."""
    cv.text(right, bottom - 0.01, s, size=6, color="0.35", ha="right", va="top")


def plot_solution(data: dict[str, Any], solution: int, path: Path, fs: float, peak: int) -> Path:
    """One figure: every cluster of one solution of one electrode."""
    labels = data[f"labels_{solution}"]
    clusters = sorted(int(c) for c in np.unique(labels) if c >= 0)
    times, waveforms = data["times"], data["waveforms"]
    n_out = int(np.count_nonzero(labels < 0))
    cv = _Canvas(max(1, len(clusters)), 3,
                 f"electrode {int(data['electrode']):02d}, solution {solution}: {len(clusters)} clusters, "
                 f"{len(times)} events ({n_out} outliers)")
    rng = np.random.default_rng(0)
    dur = _duration(data, fs)
    for r, c in enumerate(clusters):
        member = labels == c
        _draw_row(cv, r, waveforms[member], times[member], fs, peak, COLORS[c % len(COLORS)], rng,
                  f"c{c}", dur, float(data.get("threshold", 0.0)) or None)
    return cv.save(path)


def plot_unit(name: str, electrode: int, times: np.ndarray, waveforms: np.ndarray, fs: float, peak: int,
              duration_s: float, path: Path, subtitle: str = "") -> Path:
    cv = _Canvas(1, 3, f"{name}, electrode {electrode:02d}{': ' + subtitle if subtitle else ''}")
    _draw_row(cv, 0, waveforms, times, fs, peak, COLORS[0], np.random.default_rng(0), name, duration_s)
    return cv.save(path)


def _duration(data: dict[str, Any], fs: float) -> float:
    n = int(data.get("cutoff_sample") or data.get("n_samples") or 0)
    if n <= 0 and len(data["times"]):
        n = int(data["times"][-1]) + 1
    return n / fs


def _stamp(data: dict[str, Any]) -> str:
    return f"{data.get('fp_extract', '')}-{data.get('fp_cluster', '')}\n"


def solutions_current(directory, electrode: int, meta: dict[str, Any]) -> bool:
    """Whether the electrode's solution figures were drawn from its current clustering."""
    stamp = plot_dir(directory) / f"electrode{electrode:02d}" / "solutions.stamp"
    return stamp.exists() and stamp.read_text() == _stamp(meta)


def plot_solutions(directory, data: dict[str, Any], params) -> list[str]:
    """One figure per clustering solution of one electrode (from its work-file dict)."""
    fs = params.extract.sampling_rate
    electrode = int(data["electrode"])
    peak = min(params.extract.samples_before, max(data["waveforms"].shape[1] - 1, 0))
    out_dir = plot_dir(directory) / f"electrode{electrode:02d}"
    if out_dir.exists():  # solutions of an earlier clustering (e.g. another max_clusters)
        for p in out_dir.glob("solution*.png"):
            p.unlink()
    made = []
    for key in sorted((k for k in data if k.startswith("labels_")), key=lambda k: int(k.split("_")[1])):
        sol = int(key.split("_")[1])
        made.append(str(plot_solution(data, sol, out_dir / f"solution{sol:02d}.png", fs, peak)))
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "solutions.stamp").write_text(_stamp(data))
    return made


def plot_electrode(directory: str, electrode: int, params: SortParams, solutions: bool = True) -> list[str]:
    """The pictures of one electrode: its solutions (if ``solutions``) and its stored units."""
    from blechrs.io import paths, unit_store, work_files

    fs = params.extract.sampling_rate
    data = work_files.load_electrode(paths.electrode_path(directory, electrode))
    peak = min(params.extract.samples_before, max(data["waveforms"].shape[1] - 1, 0))
    made = plot_solutions(directory, data, params) if solutions else []
    for u in unit_store.read_units(paths.h5_path(directory), waveforms=True, electrode=electrode):
        sub = (f"{'single' if u.single_unit else 'multi'}-unit"
               + (", RS" if u.regular_spiking else ", FS" if u.fast_spiking else "")
               + f", SNR {u.snr:.1f}, solution {u.solution} cluster {u.label}")
        made.append(str(plot_unit(u.name, u.electrode, u.times, u.waveforms, fs, peak, _duration(data, fs),
                                  plot_dir(directory) / "units" / f"{u.name}.png", sub)))
    return made


def write_index(directory: str | os.PathLike, electrodes: Sequence[int]) -> Path:
    """``blechrs_plots/index.html``: every unit and every electrode's solutions, linked."""
    from blechrs.io import atomic, paths, unit_store, work_files

    directory = Path(directory)
    root = plot_dir(directory)
    units = unit_store.read_units(paths.h5_path(directory), waveforms=False)
    name = html.escape(directory.resolve().name)
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{name}: blechrs</title>",
             "<style>body{font-family:sans-serif;margin:1em}table{border-collapse:collapse}"
             "td,th{border:1px solid #ccc;padding:2px 6px;font-size:13px}img{max-width:900px}</style>",
             f"</head><body><h1>{name}</h1><h2>Units ({len(units)})</h2>",
             "<table><tr><th>unit</th><th>electrode</th><th>spikes</th><th>rate Hz</th><th>SNR</th>"
             "<th>ISI &lt;1 ms %</th><th>ISI &lt;2 ms %</th><th>type</th><th>from</th></tr>"]
    for u in units:
        m = u.metrics
        kind = ("single" if u.single_unit else "multi") + (" RS" if u.regular_spiking else " FS" if u.fast_spiking else "")
        parts.append(f"<tr><td><a href='#{u.name}'>{u.name}</a></td><td>{u.electrode}</td>"
                     f"<td>{len(u.times)}</td><td>{m.get('firing_rate', float('nan')):.2f}</td><td>{u.snr:.1f}</td>"
                     f"<td>{m.get('isi_violations_1ms', float('nan')):.2f}</td>"
                     f"<td>{m.get('isi_violations_2ms', float('nan')):.2f}</td><td>{kind}</td>"
                     f"<td>{html.escape(u.source)}: solution {u.solution}, {html.escape(u.label)}</td></tr>")
    parts.append("</table><h2>Electrodes</h2><table><tr><th>electrode</th><th>solutions</th></tr>")
    for e in electrodes:
        d = root / f"electrode{e:02d}"
        links = " ".join(f"<a href='{d.name}/{p.name}'>{int(p.stem[8:])}</a>"
                         for p in sorted(d.glob("solution*.png"))) if d.exists() else "(no clusters)"
        parts.append(f"<tr><td>{e:02d}</td><td>{links or '(quiet)'}</td></tr>")
    parts.append("</table>")
    parts.extend(_qa_index_parts(directory, root, units))
    parts.append("<h2>Unit pictures</h2>")
    for u in units:
        parts.append(f"<div id='{u.name}'><a href='units/{u.name}.png'><img loading='lazy' src='units/{u.name}.png' "
                     f"alt='{u.name}'></a></div>")
    parts.append("</body></html>\n")
    path = root / "index.html"
    root.mkdir(parents=True, exist_ok=True)
    atomic.write_text_atomic(path, "\n".join(parts))
    return path


def _qa_index_parts(directory: Path, root: Path, units) -> list[str]:
    """Links to the quality checks: raw-data QA pictures and files (init), unit QA (similarity,
    drift) and each unit's waveform + raster picture, when they exist."""
    qa_out = directory / "QA_output"
    files = sorted(qa_out.glob("*")) if qa_out.exists() else []
    unit_qa = [u for u in units if (root / "qa" / f"{u.name}.png").exists()]
    if not files and not unit_qa:
        return []
    rel = os.path.relpath(qa_out, root)
    parts = ["<h2>Quality checks</h2><ul>"]
    parts += [f"<li><a href='{html.escape(rel)}/{html.escape(p.name)}'>{html.escape(p.name)}</a></li>"
              for p in files if p.is_file()]
    parts.append("</ul>")
    if unit_qa:
        parts.append("<p>Waveform and raster per unit: "
                     + " ".join(f"<a href='qa/{u.name}.png'>{u.name}</a>" for u in unit_qa) + "</p>")
    return parts


def plot_recording(directory: str | os.PathLike, params, jobs: int = 1,
                   progress: Callable[[str, int, int], None] | None = None,
                   electrodes: Sequence[int] | None = None, redraw_solutions: bool = True) -> Path:
    """Every picture of a recording, one process-pool task per electrode, then the index page.
    With ``redraw_solutions`` False, solution figures already drawn from the current clustering
    (``run`` draws them in the clustering workers) are kept."""
    from blechrs.io import atomic, paths, unit_store, work_files
    from blechrs import pipeline
    from blechrs.pipeline.executors import map_jobs

    directory = Path(directory)
    if electrodes is None:
        electrodes = pipeline.sorted_electrodes(directory)
    old_units = plot_dir(directory) / "units"
    if old_units.exists():  # unit numbers change between sorts; stale pictures would mislead
        for p in old_units.glob("unit*.png"):
            p.unlink()
    args = []
    for e in electrodes:
        redo = redraw_solutions or not solutions_current(
            directory, e, work_files.read_meta(paths.electrode_path(directory, e)))
        args.append((str(directory), int(e), params, redo))
    # Unit pictures alone are cheap: no worker processes for them.
    heavy = sum(1 for a in args if a[3])
    map_jobs(plot_electrode, args, jobs if heavy > 1 else 1, "plots", progress)
    return write_index(directory, electrodes)
