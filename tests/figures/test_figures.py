"""What the pictures say, checked on the figure objects (the labels and axis limits a Canvas is
given) and on the files (valid PNGs carrying what they show), not on pixels."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from blechrs.core.metrics import isi_violations
from blechrs.figures.canvas import Canvas, nice_ticks, picture_info
from blechrs.figures.cluster_panels import ElectrodeScale, voltage_range
from blechrs.figures.index_page import ElectrodeEntry, IndexContents, UnitRow, index_html
from blechrs.figures.png import save_rgb
from blechrs.figures.solutions import FeatureView, plot_solution
from blechrs.figures.units import plot_electrode_units, plot_unit

FS = 30000.0


@pytest.fixture()
def recorded(monkeypatch):
    """Every Canvas made, with its panels' (row, col, xlim, ylim)."""
    made: list[Canvas] = []
    panel = Canvas.panel

    def record(self, row, col, xlim, ylim, *a, **k):
        self.recorded.append((row, col, tuple(map(float, xlim)), tuple(map(float, ylim))))
        return panel(self, row, col, xlim, ylim, *a, **k)

    init = Canvas.__init__

    def init_and_keep(self, *a, **k):
        self.recorded = []
        init(self, *a, **k)
        made.append(self)

    monkeypatch.setattr(Canvas, "panel", record)
    monkeypatch.setattr(Canvas, "__init__", init_and_keep)
    return made


def _electrode(seed=0):
    """Three clusters of different sizes (-60, -150, +80 µV), 20 s, with refractory spike trains."""
    rng = np.random.default_rng(seed)
    shape = -np.exp(-0.5 * ((np.arange(75) - 30) / 3.0) ** 2)
    waveforms, labels, times = [], [], []
    for c, (amp, n) in enumerate(((60, 400), (150, 200), (-80, 100))):
        waveforms.append(amp * shape + rng.normal(0, 8, (n, 75)))
        labels.append(np.full(n, c))
        times.append(np.cumsum(rng.integers(int(0.003 * FS), int(0.1 * FS), n)))
    order = np.argsort(np.concatenate(times), kind="stable")
    t = np.concatenate(times)[order]
    w = np.concatenate(waveforms)[order].astype(np.float32)
    lab = np.concatenate(labels)[order]
    lab[::50] = -1  # a few unclustered events
    return t, w, lab


def _scale(w, t):
    lo, hi = voltage_range(w)
    return ElectrodeScale(lo, hi, FS, 30, w.shape[1], float(t[-1]) / FS + 1, threshold=40.0)


def _texts(cv: Canvas) -> list[str]:
    return [t[2] for t in cv.texts]


def test_nice_ticks_are_round_and_inside():
    for lo, hi in ((-312.5, 108.0), (0, 20), (-50, 50), (0, 613.2), (0.1, 0.7)):
        t = nice_ticks(lo, hi, 4)
        assert 2 <= len(t) <= 9 and t.min() >= lo and t.max() <= hi
        step = np.diff(t)
        assert np.allclose(step, step[0])
        assert any(np.isclose(step[0] / 10.0 ** np.floor(np.log10(step[0])), m) for m in (1, 2, 2.5, 5))


def test_voltage_range_holds_every_cluster_and_zero():
    t, w, lab = _electrode()
    lo, hi = voltage_range(w)
    for c in range(3):
        mean = w[lab == c].mean(axis=0)
        assert lo < mean.min() and mean.max() < hi
    assert lo < 0 < hi


def test_solution_picture_has_axes_one_voltage_scale_and_unit_marks(tmp_path, recorded):
    t, w, lab = _electrode()
    scale = _scale(w, t)
    view = FeatureView.of(w, np.column_stack([w[:, 30], w[:, 40]]), 30)
    path = plot_solution(tmp_path / "solution03.png", 7, 3, lab, t, w, scale, view, {1: "single"}, "gmm")
    cv = recorded[-1]
    texts = _texts(cv)
    for label in ("µV", "ms from peak", "ISI (ms)", "count", "time (s)", "feature PC1", "RMS energy (µV)"):
        assert label in texts, label
    assert texts[0].startswith("electrode 07, solution 3 (gmm): 3 clusters")
    titles = [s for s in texts if s.startswith("c") and "events" in s]
    n = [int(np.sum(lab == c)) for c in range(3)]
    assert titles == [f"c0: {n[0]} events", f"c1: {n[1]} events ▶ single", f"c2: {n[2]} events"]
    # waveforms, amplitudes and means share the electrode's voltage range
    volt = [p for p in cv.recorded if p[1] in (0, 2) and (p[0] > 0 or p[1] == 2)]
    assert len(volt) == 7 and all(p[3] == (scale.lo, scale.hi) for p in volt)
    # the ISI titles report the same numbers as core.metrics
    for c in range(3):
        v1, v2 = isi_violations(t[lab == c], FS)
        assert f"ISI: {v1:.2f}% < 1 ms, {v2:.2f}% < 2 ms" in texts
    with Image.open(path) as im:
        assert im.size == (cv.W, cv.H) and im.getextrema() != ((255, 255),) * 3


def test_unit_picture_and_thumbnail(tmp_path, recorded):
    t, w, lab = _electrode()
    scale = _scale(w, t)
    view = FeatureView.of(w, None, 30)
    member = lab == 1
    path = plot_unit(tmp_path / "unit004.png", "unit004 · electrode 07", t[member], w[member], scale, view,
                     member[view.index], {"blechrs-unit": "unit004 electrode 7"})
    texts = _texts(recorded[-1])
    for label in ("µV", "ms from peak", "ISI (ms)", "count", "lag (ms)", "time (s)", "RMS energy (µV)"):
        assert label in texts, label
    assert any(s.startswith("autocorrelogram") for s in texts)
    assert all(p[3] == (scale.lo, scale.hi) for p in recorded[-1].recorded if p[:2] in ((0, 0), (1, 0)))
    assert picture_info(path) == {"blechrs-unit": "unit004 electrode 7"}
    thumb = plot_electrode_units(tmp_path / "units.png", 7, ["unit004", "unit005"],
                                 [w[lab == 1].mean(0), w[lab == 2].mean(0)], scale, view,
                                 np.where(member, 0, -1)[view.index], {"blechrs-units": "x"})
    assert {"004", "005", "unit means"} <= set(_texts(recorded[-1]))
    assert picture_info(thumb) == {"blechrs-units": "x"}


def test_png_writer_makes_valid_files(tmp_path):
    rgb = np.zeros((30, 40, 3), np.uint8)
    rgb[5:10, :, 0] = 255
    path = save_rgb(tmp_path / "a.png", Image.fromarray(rgb), {"k": "v w"})
    with Image.open(path) as im:
        im.load()  # checks every chunk's CRC and the data
        np.testing.assert_array_equal(np.asarray(im.convert("RGB")), rgb)
    assert picture_info(path) == {"k": "v w"}
    assert picture_info(tmp_path / "missing.png") == {}


def test_a_canvas_holds_nothing_of_the_previous_picture(tmp_path):
    a = Canvas(1, 1, "first")
    p = a.panel(0, 0, (0, 1), (0, 1))
    a.add_points(*p([0.5], [0.5]), "r")
    a.add_lines([p.xy([0, 1], [0, 1])], "k")
    a.save(tmp_path / "a.png")
    b = Canvas(1, 1, "second")
    b.save(tmp_path / "b.png")
    with Image.open(tmp_path / "b.png") as im:
        body = np.asarray(im.convert("L"))[30:, :]
    assert body.min() == 255  # no line or point of the first picture


def test_index_page_shows_what_it_is_given():
    units = [UnitRow("unit000", 0, 500, 5.0, 10.0, 0.0, 0.1, "single RS", "autosort: solution 1, 0",
                     solution_picture="electrode00/solution01.png", picture="units/unit000.png",
                     qa_picture="qa/unit000.png", qa_current=True, drift_p=(0.5, 0.001), drift_flag=True,
                     similar=["unit001 90%/80%"]),
             UnitRow("unit001", 1, 80, 0.8, 5.0, 1.0, 3.0, "multi", "sort file row 2: solution 3, 1",
                     isi_flag=True)]
    electrodes = [ElectrodeEntry(0, ["unit000"], "electrode00/units.png", [(1, "electrode00/solution01.png")]),
                  ElectrodeEntry(1, ["unit001"], None, [(2, "electrode01/solution02.png")], solutions_current=False),
                  ElectrodeEntry(2, [], None, None)]
    text = index_html(IndexContents("rec <1>", units, electrodes, qa_note="Unit QA results are current.",
                                    qa_dir="../QA_output", qa_files=["unit_qa.json"]))
    assert "<script" not in text and "http" not in text and "rec &lt;1&gt;" in text
    row0 = text[text.index("id='row-unit000'"):].split("</tr>")[0]
    row1 = text[text.index("id='row-unit001'"):].split("</tr>")[0]
    assert "class='flagged'" in row0 and ">drift<" in row0 and ">similar<" in row0 and ">ISI<" not in row0
    assert "0.5, 0.001" in row0 and "electrode00/solution01.png" in row0
    assert ">ISI<" in row1 and "no current QA" in row1 and "solution" in row1 and "href='electrode01" not in row1
    assert "no current picture" in text and "units/unit000.png" in text and "qa/unit000.png" in text
    assert "of an earlier clustering" in text and "no clusters" in text
    assert "../QA_output/unit_qa.json" in text


def test_unit_qa_raster_puts_each_spike_in_its_trial_row(tmp_path):
    """The raster of the unit QA picture, read back from the PNG's pixels: a unit that fires
    exactly 1 s after every onset of the first taste and never near the second shows a tick of the
    first taste's colour at +1000 ms in each of its rows, and nothing at +1000 ms in the second's
    rows nor at +3000 ms anywhere (the pixel positions computed here from the frame, not by the
    drawing code)."""
    from blechrs.figures.waveform_raster import COLORS, RasterGroup, WaveformRaster

    first = np.arange(10) * 20 * int(FS) + int(FS)  # 10 trials 20 s apart
    second = first + 10 * int(FS)
    drawer = WaveformRaster([RasterGroup("sweet", first), RasterGroup("bitter", second)], FS, (2000, 5000), 15)
    times = first + int(FS)  # +1000 ms in every trial of the first taste
    rng = np.random.default_rng(0)
    waveforms = rng.normal(0, 5, (len(times), 45)).astype(np.float32)
    path = drawer.save(tmp_path / "unit000.png", "unit000", waveforms, times, {"k": "v"})
    assert picture_info(path) == {"k": "v"}
    img = np.asarray(Image.open(path).convert("RGB")).astype(int)
    x0, y0, w, h = drawer.raster_panel.box
    H = img.shape[0]

    def pixel_x(ms):  # the frame spans -2000..5000 ms
        return int(round(x0 + (ms + 2000) / 7000 * w))

    def row_y(trial):  # 20 rows, trial 0 at the top
        return int(round(H - (y0 + h - (trial + 0.5) / 20 * h)))

    blue = np.array([int(COLORS[0][i:i + 2], 16) for i in (1, 3, 5)])

    def near(x, y, color):
        patch = img[y - 1:y + 2, x - 1:x + 2].reshape(-1, 3)
        return bool(np.any(np.abs(patch - color).sum(axis=1) < 120))

    assert all(near(pixel_x(1000), row_y(k), blue) for k in range(10))
    white = np.array([255, 255, 255])
    for k in range(10, 20):
        patch = img[row_y(k) - 1:row_y(k) + 2, pixel_x(1000) - 1:pixel_x(1000) + 2].reshape(-1, 3)
        assert np.all(np.abs(patch - white).sum(axis=1) < 30), k
    for k in range(20):
        patch = img[row_y(k) - 1:row_y(k) + 2, pixel_x(3000) - 1:pixel_x(3000) + 2].reshape(-1, 3)
        assert np.all(np.abs(patch - white).sum(axis=1) < 30), k


def test_unit_qa_picture_without_waveforms_or_trials(tmp_path):
    from blechrs.figures.waveform_raster import WaveformRaster

    drawer = WaveformRaster([], FS, (2000, 5000), 15)
    path = drawer.save(tmp_path / "u.png", "unit001", np.zeros((0, 45), np.float32), np.array([], np.int64))
    assert Image.open(path).size[0] > 0


def test_channel_correlation_picture_shows_each_r_in_rdbu(tmp_path):
    """Each matrix cell is painted in matplotlib's RdBu_r colour of its r (the reference: the
    colour map itself), channel 0 at the top left; NaN (a flat channel) white."""
    from matplotlib import colormaps

    from blechrs.figures.raw_channels import CORR_CELL, CORR_MARGINS, plot_channel_correlation

    n = 8
    rng = np.random.default_rng(0)
    r = rng.uniform(-1, 1, (n, n))
    r[3, 5] = np.nan
    path = plot_channel_correlation(tmp_path / "corr.png", r, np.zeros((n, n)), [f"A-{k:03d}" for k in range(n)])
    img = np.asarray(Image.open(path).convert("RGB")).astype(int)
    left, right, top, bottom = CORR_MARGINS
    w, h = CORR_CELL[0] - left - right, CORR_CELL[1] - top - bottom
    y_top = 24 + top  # the title line, then the panel's own top margin
    for i, j in [(0, 0), (0, n - 1), (n - 1, 0), (2, 6), (3, 5)]:
        x = int(left + (j + 0.5) * w / n)
        y = int(y_top + (i + 0.5) * h / n)
        want = np.array([255, 255, 255]) if np.isnan(r[i, j]) else \
            np.round(np.array(colormaps["RdBu_r"]((r[i, j] + 1) / 2)[:3]) * 255)
        assert np.abs(img[y, x] - want).max() <= 3, (i, j, img[y, x], want)


def test_digital_inputs_picture_marks_each_pulse_at_its_time(tmp_path):
    from blechrs.figures.raw_channels import plot_digital_inputs

    fs, n_samples = 1000.0, 10_000
    din = {"dig_in_00": (np.array([2000]), np.array([3000])), "dig_in_01": (np.array([], dtype=int), np.array([], dtype=int))}
    path = plot_digital_inputs(tmp_path / "din.png", din, fs, n_samples)
    img = np.asarray(Image.open(path).convert("RGB")).astype(int)
    coloured = np.flatnonzero((np.abs(img - img[:, :, :1]).max(axis=2) > 60).any(axis=0))  # columns with colour
    # the panel spans 130 .. 800 - 16 px for 0 .. 10 s: the pulse is 2 .. 3 s
    x = lambda t: 130 + t / 10.0 * (800 - 130 - 16)  # noqa: E731
    assert coloured.min() >= x(2.0) - 2 and coloured.max() <= x(3.0) + 2 and len(coloured) >= 0.9 * (x(3) - x(2))


def test_canvas_draws_lines_points_and_fills_where_it_is_told(tmp_path):
    """Pixels read back from the PNG, positions computed here from the canvas geometry (y up,
    row 0 of the image at the top): a solid line, a dashed line with gaps, a sub-pixel-wide line
    drawn lighter, a point, a filled rectangle and a translucent one blended over it."""
    cv = Canvas(1, 1, "")
    H = cv.H
    cv.add_lines([np.array([[20.0, 100.5], [120.0, 100.5]])], "k", 1.0)
    cv.add_lines([np.array([[20.0, 80.5], [120.0, 80.5]])], "#d00000", 1.0, (0, (4, 3)))
    cv.add_lines([np.array([[20.0, 60.5], [120.0, 60.5]])], "k", 0.5)
    cv.add_points(np.array([200.5]), np.array([40.5]), "#0000ff", 2.5)
    cv.add_poly(np.array([[150.0, 90], [200, 90], [200, 110], [150, 110]]), "#00ff00")
    cv.add_poly(np.array([[160.0, 95], [170, 95], [170, 105], [160, 105]]), (0, 0, 0, 0.5))
    img = np.asarray(Image.open(cv.save(tmp_path / "c.png")).convert("RGB")).astype(int)
    row = lambda y: H - 1 - int(y)  # noqa: E731
    solid = img[row(100.5), 20:120]
    assert (solid == 0).all()
    dashed = img[row(80.5), 20:120]
    red = (dashed[:, 0] > 150) & (dashed[:, 1] < 60)
    white = (dashed == 255).all(axis=1)
    assert 0.45 < red.mean() < 0.7 and 0.25 < white.mean() < 0.55  # 4 on, 3 off
    thin = img[row(60.5), 20:120]
    assert (np.abs(thin - 128).max(axis=1) <= 2).all()  # half-width black on white: half grey
    assert (img[row(40.5), 200] == [0, 0, 255]).any() or img[row(40.5), 200][2] > img[row(40.5), 200][0] + 60
    assert (img[row(100), 180] == [0, 255, 0]).all()
    assert np.abs(img[row(100), 165] - [0, 128, 0]).max() <= 2  # 50 % black over green
    assert (img[row(100), 230] == 255).all()  # nothing drawn there


def test_drawing_pictures_does_not_import_matplotlib(tmp_path):
    """matplotlib's import costs ~0.5 s in every process that draws: the canvas needs only its
    font file."""
    import subprocess
    import sys

    code = ("import sys; from blechrs.figures.canvas import Canvas; cv = Canvas(1, 1, 'title'); "
            "p = cv.panel(0, 0, (0, 1), (0, 1)); cv.axes(p, [0, 1], [0, 1], 'x', 'y', 'panel'); "
            "cv.add_lines([p.xy([0, 1], [0, 1])], '0.3', 0.8, '--'); cv.add_points([10], [10], 'r'); "
            f"cv.save({str(tmp_path / 'p.png')!r}); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'matplotlib'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    assert (tmp_path / "p.png").stat().st_size > 0
