"""Unit quality checks after sorting: similarity, drift, one picture per unit (spec 8.2, 8.3).

Pure functions on arrays (:func:`unit_similarity`, :func:`similarity_violations`,
:func:`drift_check`, :func:`f_sf`) and one directory-level step the CLI calls:
:func:`unit_qa` ``(directory, params) -> QAResult``.

**Similarity**: ``similarity[i, j]`` = % of unit *i*'s spikes that have at least one spike of unit
*j* at most ``similarity_window_ms`` (1 ms) away, in samples. Numerator and denominator both
count unit *i*'s spikes, so it lies in [0, 100]. blech_clust (spec 8.2) counts *i*'s spikes that
share the same or the previous 1-ms bin with *j* and then divides by *j*'s spike count, mixing the
two units (the result can exceed 100 % and depends on which unit bursts). A pair is reported when
either direction exceeds ``similarity_cutoff`` (50 %): a small unit that is a copy of part of a
big one is caught from its own side even though it is a small share of the big one.

**Drift**: per unit, spikes are counted per trial in ``[-drift_baseline_ms, 0)`` (baseline) and
``[0, drift_post_ms)`` (response) around the onset. The session's trials are cut, in delivery
order, into ``n_trial_bins`` consecutive groups. A linear-model F test asks whether the group
explains the counts beyond the taste (taste + group vs taste alone; with one taste this is the
one-way ANOVA). blech_clust uses pingouin's two-way / repeated-measures ANOVA; blechrs needs no
scipy at run time: the F distribution's tail is computed here from the regularised incomplete
beta function. Trials whose window leaves the recording are left out. A unit is flagged when
either window's p is below ``drift_alpha / 2`` (Bonferroni over the two windows, so a stable unit
is flagged with probability ~``drift_alpha``; checked by simulation: 10.8 % of 400 stationary
Poisson units had a p < 0.05 in either window).
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from blechrs.trials.arrays import (
    TRIAL_TABLE_NAME,
    AtomicStore,
    TrialTable,
    build_trials,
    directory_params,
    load_info,
    store_path,
    trial_config,
    unit_electrodes,
)
from blechrs.params import SortParams
from blechrs.figures.pictures import PLOT_DIR

__all__ = [
    "unit_similarity",
    "similarity_violations",
    "drift_check",
    "f_sf",
    "trial_group",
    "group_f_test",
    "betainc",
    "UnitPictures",
    "unit_picture",
    "QAResult",
    "unit_qa",
    "QA_DIR",
]

#: QA outputs go under DIR/QA_output (blech_clust's folder); pictures under DIR/blechrs_plots/qa.
QA_DIR = "QA_output"


# ------------------------------------------------------------------------------------------------
# Similarity
# ------------------------------------------------------------------------------------------------
def unit_similarity(
    unit_times: Sequence[np.ndarray], sampling_rate: float, window_ms: float = 1.0, chunk: int = 1 << 18
) -> np.ndarray:
    """``(n, n)`` float64: % of unit i's spikes with a unit-j spike within ``window_ms``; diagonal NaN.

    All spikes are merged in time order; each spike's neighbours within the window are a
    contiguous run of the merged array, so every (spike, neighbouring unit) pair is found in one
    pass (O(total spikes x neighbours), not O(units^2) searches), ``chunk`` spikes at a time to
    bound memory.
    """
    w = int(round(window_ms * sampling_rate / 1000.0))
    n = len(unit_times)
    lens = np.array([len(t) for t in unit_times], dtype=np.int64)
    hits = np.zeros(n * n, dtype=np.int64)
    if n and lens.sum():
        all_t = np.concatenate([np.asarray(t, dtype=np.int64).reshape(-1) for t in unit_times])
        lab = np.repeat(np.arange(n, dtype=np.int64), lens)
        order = np.argsort(all_t, kind="stable")
        all_t, lab = all_t[order], lab[order]
        for start in range(0, len(all_t), chunk):
            tp = all_t[start : start + chunk]
            lo = np.searchsorted(all_t, tp - w, side="left")
            hi = np.searchsorted(all_t, tp + w, side="right")
            cnt = hi - lo  # >= 1: the spike itself
            total = int(cnt.sum())
            first = np.repeat(np.cumsum(cnt) - cnt, cnt)
            q = np.arange(total, dtype=np.int64) - first + np.repeat(lo, cnt)
            p = np.repeat(np.arange(start, start + len(tp), dtype=np.int64), cnt)
            # one count per (spike, neighbouring unit), however many of that unit's spikes are near
            key = np.sort(p * n + lab[q])  # already grouped by spike: a cheap sort
            key = key[np.concatenate(([True], key[1:] != key[:-1]))]
            hits += np.bincount(lab[key // n] * n + key % n, minlength=n * n)
    hits = hits.reshape(n, n).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        sim = np.where(lens[:, None] > 0, 100.0 * hits / np.maximum(lens, 1)[:, None], 0.0)
    np.fill_diagonal(sim, np.nan)
    return sim


def similarity_violations(
    similarity: np.ndarray,
    spike_counts: Sequence[int],
    names: Sequence[str] | None = None,
    cutoff: float = 50.0,
    count_cutoff: float = 10.0,
) -> list[dict[str, Any]]:
    """Pairs (i < j) with ``max(sim[i, j], sim[j, i]) > cutoff``, most similar first."""
    n = similarity.shape[0]
    names = list(names) if names is not None else [f"unit{i:03d}" for i in range(n)]
    out = []
    for i in range(n):
        for j in range(i + 1, n):
            a, b = float(similarity[i, j]), float(similarity[j, i])
            if max(a, b) > cutoff:
                hi, lo = max(spike_counts[i], spike_counts[j]), min(spike_counts[i], spike_counts[j])
                out.append(
                    {
                        "unit_a": names[i], "unit_b": names[j],
                        "pct_a_in_b": round(a, 3), "pct_b_in_a": round(b, 3),
                        "spikes_a": int(spike_counts[i]), "spikes_b": int(spike_counts[j]),
                        "similar_counts": bool(hi > 0 and 100.0 * (hi - lo) / hi <= count_cutoff),
                    }
                )
    out.sort(key=lambda v: (-max(v["pct_a_in_b"], v["pct_b_in_a"]), v["unit_a"], v["unit_b"]))
    return out


# ------------------------------------------------------------------------------------------------
# F distribution without scipy
# ------------------------------------------------------------------------------------------------
def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz)."""
    tiny, eps = 1e-300, 1e-15
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 10000):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < eps:
            break
    return h


def betainc(a: float, b: float, x: float) -> float:
    """Regularised incomplete beta I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    lbt = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(lbt) * _betacf(a, b, x) / a
    return 1.0 - math.exp(lbt) * _betacf(b, a, 1.0 - x) / b


def f_sf(f: float, d1: float, d2: float) -> float:
    """P(F > f) for an F(d1, d2) variable: I_{d2/(d2 + d1 f)}(d2/2, d1/2)."""
    if math.isnan(f):
        return math.nan
    if f <= 0:
        return 1.0
    if math.isinf(f):
        return 0.0
    return betainc(d2 / 2.0, d1 / 2.0, d2 / (d2 + d1 * f))


# ------------------------------------------------------------------------------------------------
# Drift
# ------------------------------------------------------------------------------------------------
def trial_group(n_trials: int, n_groups: int) -> np.ndarray:
    """Group of each trial (in delivery order) when cut into ``n_groups`` consecutive, near-equal groups."""
    return (np.arange(n_trials) * n_groups) // max(n_trials, 1)


def _rss(y: np.ndarray, x: np.ndarray) -> tuple[float, int]:
    beta, _, rank, _ = np.linalg.lstsq(x, y, rcond=None)
    r = y - x @ beta
    return float(r @ r), int(rank)


def group_f_test(y: np.ndarray, group: np.ndarray, covariate: np.ndarray) -> tuple[float, float, int, int]:
    """F test of ``group`` beyond ``covariate`` (both categorical): (F, p, df1, df2)."""
    y = np.asarray(y, dtype=np.float64)
    _, cov = np.unique(covariate, return_inverse=True)
    _, grp = np.unique(group, return_inverse=True)
    x_red = np.eye(cov.max() + 1)[cov] if len(y) else np.zeros((0, 1))
    x_full = np.hstack([x_red, np.eye(grp.max() + 1)[grp][:, 1:]]) if len(y) else x_red
    rss_r, rank_r = _rss(y, x_red)
    rss_f, rank_f = _rss(y, x_full)
    df1, df2 = rank_f - rank_r, len(y) - rank_f
    if df1 <= 0 or df2 <= 0:
        return math.nan, math.nan, df1, df2
    scale = max(float(y @ y), 1.0)
    gain = max(rss_r - rss_f, 0.0)
    if rss_f <= 1e-12 * scale:  # no variance left (e.g. all counts equal)
        return (math.nan, math.nan, df1, df2) if gain <= 1e-12 * scale else (math.inf, 0.0, df1, df2)
    f = (gain / df1) / (rss_f / df2)
    return f, f_sf(f, df1, df2), df1, df2


def _window_counts(times: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    return np.searchsorted(times, hi, side="left") - np.searchsorted(times, lo, side="left")


def drift_check(
    unit_times: Sequence[np.ndarray],
    onsets: np.ndarray,
    tastes: Sequence[str],
    sampling_rate: float,
    params: SortParams | None = None,
    n_samples: int | np.ndarray | None = None,
) -> list[dict[str, Any]]:
    """One dict per unit: baseline and response F, p, group means (Hz) and ``flagged``.

    ``onsets``/``tastes``: every trial of the session, any order (sorted here by onset).
    ``n_samples``: the recording length, or per trial (aligned with ``onsets``) the end of the
    samples known to be recorded; trials whose windows pass it, or start before 0, are left out.
    """
    p = params or SortParams()
    fs = float(sampling_rate)
    onsets = np.asarray(onsets, dtype=np.int64)
    order = np.argsort(onsets, kind="stable")
    onsets, tastes = onsets[order], np.asarray(tastes, dtype=object)[order]
    if n_samples is not None and np.ndim(n_samples):
        n_samples = np.asarray(n_samples)[order]
    pre = int(round(p.quality.drift_baseline_ms * fs / 1000.0))
    post = int(round(p.quality.drift_post_ms * fs / 1000.0))
    keep = onsets - pre >= 0
    if n_samples is not None:
        keep &= onsets + post <= n_samples
    onsets, tastes = onsets[keep], tastes[keep]
    group = trial_group(len(onsets), p.quality.n_trial_bins)
    out = []
    for times in unit_times:
        t = np.sort(np.asarray(times, dtype=np.int64))
        rec: dict[str, Any] = {"n_trials": int(len(onsets))}
        for label, lo, hi, ms in (("baseline", onsets - pre, onsets, p.quality.drift_baseline_ms),
                                  ("response", onsets, onsets + post, p.quality.drift_post_ms)):
            counts = _window_counts(t, lo, hi).astype(np.float64)
            f, pv, df1, df2 = group_f_test(counts, group, tastes) if len(counts) else (math.nan, math.nan, 0, 0)
            rec[label] = {
                "F": f, "p": pv, "df": [df1, df2],
                "group_rate_hz": [float(counts[group == g].mean() * 1000.0 / ms) if np.any(group == g) else math.nan
                                  for g in range(p.quality.n_trial_bins)],
            }
        # Bonferroni over the two windows: a stable unit is flagged with probability ~alpha, not
        # ~2 alpha (blech_clust warns on either test at alpha)
        rec["flagged"] = any(
            not math.isnan(rec[k]["p"]) and rec[k]["p"] < p.quality.drift_alpha / 2 for k in ("baseline", "response")
        )
        out.append(rec)
    return out


# ------------------------------------------------------------------------------------------------
# Pictures
# ------------------------------------------------------------------------------------------------
class UnitPictures:
    """Waveforms (up to 200 + mean +- SD) beside a raster of every trial grouped by taste, one PNG
    per unit. The figure, its raster axes, legend and ticks are built once and only the data
    change per unit: drawing dominates the cost, not building artists."""

    def __init__(self, trials: TrialTable | None, sampling_rate: float, params: SortParams, seed: int = 0):
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.lines import Line2D

        self.fs, self.params, self.seed = float(sampling_rate), params, seed
        self.fig = Figure(figsize=(11, 4.2), dpi=80)
        FigureCanvasAgg(self.fig)
        self.ax_w, self.ax_r = self.fig.subplots(1, 2, gridspec_kw={"width_ratios": [1, 1.6]})
        self.fig.subplots_adjust(left=0.07, right=0.98, bottom=0.12, top=0.9, wspace=0.22)
        self.title = self.fig.suptitle("", fontsize=10)
        # many segments as ONE NaN-separated line: one path to draw, not one per segment
        (self.waves,) = self.ax_w.plot([], [], color="0.75", lw=0.4, antialiased=False)
        (self.mean,) = self.ax_w.plot([], [], color="k", lw=1.5)
        (self.sd_hi,) = self.ax_w.plot([], [], "k--", lw=0.8)
        (self.sd_lo,) = self.ax_w.plot([], [], "k--", lw=0.8)
        self.no_wave = self.ax_w.text(0.5, 0.5, "no waveforms", ha="center", va="center", transform=self.ax_w.transAxes)
        self.ax_w.set_xlabel("ms from extremum")
        self.ax_w.set_ylabel("µV")
        self.pre_ms, self.post_ms = params.trials.spike_array_durations
        self.groups: list[tuple[Any, np.ndarray, np.ndarray]] = []  # (collection, onsets, rows)
        colors = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf")
        row = 0
        handles = []
        if trials is not None and len(trials):
            for k, name in enumerate(trials.dig_ins):
                onsets = trials.onsets(name)
                (coll,) = self.ax_r.plot([], [], color=colors[k % len(colors)], lw=0.7, antialiased=False)
                self.groups.append((coll, onsets, np.arange(row, row + len(onsets), dtype=np.float64)))
                row += len(onsets)
                self.ax_r.axhline(row - 0.5, color="0.6", lw=0.5)
                taste = trials.taste[trials.rows_of(name)[0]]
                handles.append(Line2D([], [], color=colors[k % len(colors)], lw=2,
                                      label=name if taste == name else f"{taste} ({name})"))
            self.ax_r.axvline(0, color="r", lw=0.8)
            self.ax_r.set_ylim(row - 0.5, -0.5)
            self.ax_r.legend(handles=handles, loc="upper right", fontsize=7)
        else:
            self.ax_r.text(0.5, 0.5, "no trials", ha="center", va="center", transform=self.ax_r.transAxes)
        self.ax_r.set_xlim(-self.pre_ms, self.post_ms)
        self.ax_r.set_xlabel("ms from trial onset")
        self.ax_r.set_ylabel("trial")

    def save(self, path: Path, title: str, waveforms: np.ndarray, unit_times: np.ndarray) -> Path:
        fs = self.fs
        wf = np.asarray(waveforms, dtype=np.float64)
        has = wf.ndim == 2 and wf.shape[0] > 0 and wf.shape[1] > 1
        self.no_wave.set_visible(not has)
        if has:
            x = (np.arange(wf.shape[1]) - self.params.extract.samples_before) * 1000.0 / fs
            rng = np.random.default_rng(self.seed)
            pick = np.sort(rng.choice(wf.shape[0], size=min(200, wf.shape[0]), replace=False))
            nan = np.full((len(pick), 1), np.nan)
            self.waves.set_data(np.hstack([np.broadcast_to(x, (len(pick), len(x))), nan]).ravel(),
                                np.hstack([wf[pick], nan]).ravel())
            # mean +- SD over at most 10 000 waveforms (seeded): the same picture, a fraction of the time
            sub = wf if wf.shape[0] <= 10000 else wf[np.sort(rng.choice(wf.shape[0], 10000, replace=False))]
            m, sd = sub.mean(axis=0), sub.std(axis=0)
            self.mean.set_data(x, m)
            self.sd_hi.set_data(x, m + sd)
            self.sd_lo.set_data(x, m - sd)
            lo, hi = min(wf[pick].min(), (m - sd).min()), max(wf[pick].max(), (m + sd).max())
            pad = 0.05 * (hi - lo) if hi > lo else 1.0
            self.ax_w.set_xlim(x[0], x[-1])
            self.ax_w.set_ylim(lo - pad, hi + pad)
        else:
            for line in (self.waves, self.mean, self.sd_hi, self.sd_lo):
                line.set_data([], [])
        t = np.sort(np.asarray(unit_times, dtype=np.int64))
        for coll, onsets, rows in self.groups:
            lo = np.searchsorted(t, onsets - self.pre_ms * fs / 1000.0, side="left")
            hi = np.searchsorted(t, onsets + self.post_ms * fs / 1000.0, side="left")
            cnt = hi - lo
            idx = np.arange(cnt.sum()) - np.repeat(np.cumsum(cnt) - cnt, cnt) + np.repeat(lo, cnt)
            xs = (t[idx] - np.repeat(onsets, cnt)) * 1000.0 / fs
            ys = np.repeat(rows, cnt)
            nan = np.full(len(xs), np.nan)
            coll.set_data(np.stack([xs, xs, nan], axis=1).ravel(), np.stack([ys - 0.4, ys + 0.4, nan], axis=1).ravel())
        self.title.set_text(title)
        tmp = path.with_name(f".{path.stem}.tmp{os.getpid()}.png")
        self.fig.savefig(tmp, dpi=80)
        os.replace(tmp, path)
        return path


def unit_picture(path: Path, title: str, waveforms: np.ndarray, unit_times: np.ndarray, trials: TrialTable | None,
                 sampling_rate: float, params: SortParams, seed: int = 0) -> Path:
    """One unit's picture (see :class:`UnitPictures`; use that class for many units)."""
    return UnitPictures(trials, sampling_rate, params, seed).save(path, title, waveforms, unit_times)


# ------------------------------------------------------------------------------------------------
# The directory-level step
# ------------------------------------------------------------------------------------------------
@dataclass
class QAResult:
    """What :func:`unit_qa` found; ``print(result)`` or ``rich`` ``console.print(result)``."""

    directory: Path
    units: list[dict[str, Any]]
    violations: list[dict[str, Any]]
    similarity: np.ndarray
    qa_file: Path | None = None
    violations_file: Path | None = None
    pictures: list[Path] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0

    # short headers: the table fits 80 columns (the CLI's rule). "closest" = the unit sharing the
    # most coincident spikes; "%this" / "%that" = % of this unit's / of that unit's spikes coinciding
    columns = ("unit", "elec", "spikes", "closest", "%this", "%that", "base p", "resp p", "flags")

    @property
    def drifting(self) -> list[str]:
        return [u["unit"] for u in self.units if (u.get("drift") or {}).get("flagged")]

    def rows(self) -> list[tuple[str, ...]]:
        def p(v: Any) -> str:
            return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.2g}"

        out = []
        flagged_pairs = {v["unit_a"] for v in self.violations} | {v["unit_b"] for v in self.violations}
        for u in self.units:
            d = u.get("drift") or {}
            flags = []
            if u["unit"] in flagged_pairs:
                flags.append("similar")
            if d.get("flagged"):
                flags.append("drift")
            ms = u["most_similar"]
            out.append((u["unit"], f"{u['electrode']:02d}", str(u["n_spikes"]), ms or "-",
                        "-" if ms is None else f"{u['pct_self_in_other']:.0f}",
                        "-" if ms is None else f"{u['pct_other_in_self']:.0f}",
                        p(d.get("baseline", {}).get("p")), p(d.get("response", {}).get("p")), " ".join(flags)))
        return out

    def _pair_lines(self) -> list[str]:
        return [f"similar: {v['unit_a']}/{v['unit_b']} {v['pct_a_in_b']:.0f}%/{v['pct_b_in_a']:.0f}% of their spikes "
                "coincide" + (", similar counts" if v["similar_counts"] else "")
                for v in self.violations]

    def _title(self) -> str:
        return (f"unit QA: {len(self.units)} units, {len(self.violations)} similar pairs, "
                f"{len(self.drifting)} drifting ({self.seconds:.2f} s)")

    def __str__(self) -> str:
        rows = [self.columns] + self.rows()
        widths = [max(len(r[i]) for r in rows) for i in range(len(self.columns))]
        lines = [self._title()]
        lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
        lines += self._pair_lines()
        lines += [f"warning: {w}" for w in self.warnings]
        if self.qa_file:
            lines.append(f"written: {self.qa_file}")
        return "\n".join(lines)

    def __rich__(self):
        from rich import box
        from rich.console import Group
        from rich.table import Table
        from rich.text import Text

        table = Table(title=self._title(), title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False,
                      collapse_padding=True)
        for c in self.columns:
            table.add_column(c, justify="left" if c in ("unit", "closest", "flags") else "right", no_wrap=True)
        for r in self.rows():
            table.add_row(*r, style="yellow" if r[-1] else None)
        extra = [Text(line, style="yellow") for line in self._pair_lines()]
        extra += [Text(f"warning: {w}", style="yellow") for w in self.warnings]
        if self.qa_file:
            extra.append(Text(f"written: {self.qa_file}"))
        return Group(table, *extra)


def _jsonable(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, np.ndarray):
        return _jsonable(v.tolist())
    if isinstance(v, (np.floating, float)):
        f = float(v)
        return None if math.isnan(f) or math.isinf(f) else f
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, Path):
        return str(v)
    return v


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def _load_units(h5path: Path, waveforms: bool = True) -> list[dict[str, Any]]:
    import tables

    electrodes = unit_electrodes(h5path)
    units = []
    with tables.open_file(str(h5path), "r") as h5:
        if "/sorted_units" not in h5:
            return []
        groups = sorted(h5.list_nodes("/sorted_units", classname="Group"), key=lambda g: g._v_name)
        for g, electrode in zip(groups, electrodes):
            units.append({
                "name": g._v_name,
                "times": np.asarray(g.times.read(), dtype=np.int64).reshape(-1),
                "waveforms": g.waveforms.read() if waveforms and "waveforms" in g else np.zeros((0, 0)),
                "electrode": electrode,
            })
    return units


#: Fewest pictures worth starting worker processes for (each imports matplotlib, ~0.5 s).
PARALLEL_PICTURES = 16


def _draw_chunk(trials, fs: float, params: SortParams, chunk: list) -> list[Path]:
    drawer = UnitPictures(trials, fs, params, seed=params.cluster.random_seed)
    return [drawer.save(path, title, wf, t) for path, title, wf, t in chunk]


def _draw_unit_pictures(trials, fs: float, params: SortParams, to_draw: list, jobs: int,
                        progress: Callable[[int, int], None] | None) -> list[Path]:
    """The unit pictures, in one process or split between ``jobs`` spawned workers."""
    if jobs <= 1 or len(to_draw) < PARALLEL_PICTURES:
        drawer = UnitPictures(trials, fs, params, seed=params.cluster.random_seed)
        out = []
        for i, (path, title, wf, t) in enumerate(to_draw):
            out.append(drawer.save(path, title, wf, t))
            if progress is not None:
                progress(i + 1, len(to_draw))
        return out
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from multiprocessing import get_context

    chunks = [to_draw[k::jobs] for k in range(jobs)]
    done = 0
    with ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("spawn")) as pool:
        futures = [pool.submit(_draw_chunk, trials, fs, params, c) for c in chunks]
        for fut in as_completed(futures):
            done += len(fut.result())
            if progress is not None:
                progress(done, len(to_draw))
        drawn = {path for fut in futures for path in fut.result()}
    return [path for path, *_ in to_draw if path in drawn]


def unit_qa(
    directory: str | os.PathLike,
    params: SortParams | None = None,
    *,
    trials: TrialTable | None = None,
    sampling_rate: float | None = None,
    n_samples: int | None = None,
    recording: Any = None,
    pictures: bool = True,
    write_store: bool = True,
    progress: Callable[[int, int], None] | None = None,
    jobs: int = 1,
) -> QAResult:
    """Similarity, drift and a picture per unit of the unit store in ``directory``.

    Trials come from ``trials``, else ``DIR/trial_info_frame.csv`` (written by
    :func:`blechrs.arrays.make_arrays`), else the digital inputs of ``recording`` if given; without
    any, drift is skipped and rasters are empty. Writes ``DIR/QA_output/unit_qa.json``,
    ``DIR/QA_output/unit_similarity_violations.txt``, the pictures
    ``DIR/blechrs_plots/qa/unitNNN.png`` (beside the other pictures, for the picture index) and
    (``write_store``) the similarity matrix as ``/unit_distances`` in the unit store (atomically).
    ``progress(done, total)`` is called after each unit's picture. ``params`` default to
    ``DIR/<name>.params`` (else SortParams()). With ``jobs`` > 1 the pictures are drawn by that
    many worker processes (each picture depends only on its unit: the same files either way).
    """
    t0 = time.perf_counter()
    directory = Path(directory)
    p = params or directory_params(directory)
    if recording is not None:
        sampling_rate = sampling_rate or float(recording.sampling_rate)
        n_samples = n_samples if n_samples is not None else int(recording.n_samples)
    fs = float(sampling_rate or p.extract.sampling_rate)
    h5path = store_path(directory)
    units = _load_units(h5path, waveforms=pictures)
    warnings: list[str] = []
    if not units:
        warnings.append(f"{h5path}: no sorted units")

    if trials is None:
        csv_path = directory / TRIAL_TABLE_NAME
        if csv_path.exists():
            trials = TrialTable.from_csv(csv_path, fs)
        elif recording is not None:
            info, src = load_info(directory)
            trials = build_trials(recording.digital_inputs, trial_config(info, recording.digital_inputs, str(src)), fs)
    if trials is None or len(trials) == 0:
        warnings.append("no trials (no trial table or digital inputs): drift check skipped")

    names = [u["name"] for u in units]
    times = [u["times"] for u in units]
    sim = unit_similarity(times, fs, p.quality.similarity_window_ms)
    counts = [len(t) for t in times]
    viol = similarity_violations(sim, counts, names, p.quality.similarity_cutoff, p.quality.similarity_waveform_count_cutoff)
    limit: Any = n_samples
    if limit is None and trials is not None and trials.valid_end_bin is not None:
        # the trial table says which bins of each spike window hold recorded samples
        pre_bins = round(p.trials.spike_array_durations[0] / p.trials.spike_array_bin_ms)
        spb = fs * p.trials.spike_array_bin_ms / 1000.0
        limit = np.floor(trials.start - pre_bins * spb + trials.valid_end_bin * spb).astype(np.int64)
    drift = (drift_check(times, trials.start, trials.taste, fs, p, limit)
             if trials is not None and len(trials) else [None] * len(units))
    if trials is not None and len(trials) and drift and drift[0]["n_trials"] < 2 * p.quality.n_trial_bins:
        warnings.append(f"only {drift[0]['n_trials']} usable trials: too few for a drift test")

    out_dir = directory / QA_DIR
    out_dir.mkdir(exist_ok=True)
    pic_dir = directory / PLOT_DIR / "qa"
    records = []
    pics: list[Path] = []
    to_draw: list[tuple[Path, str, np.ndarray, np.ndarray]] = []
    for i, u in enumerate(units):
        row = np.where(np.isnan(sim[i]), -1.0, sim[i]) if len(units) > 1 else np.zeros(0)
        col = np.where(np.isnan(sim[:, i]), -1.0, sim[:, i]) if len(units) > 1 else np.zeros(0)
        both = np.maximum(row, col) if row.size else row
        j = int(np.argmax(both)) if both.size else -1
        rec = {
            "unit": u["name"], "electrode": u["electrode"], "n_spikes": int(len(u["times"])),
            "most_similar": names[j] if j >= 0 and both[j] > 0 else None,
            "max_similarity_pct": float(both[j]) if j >= 0 and both[j] > 0 else 0.0,
            # the two directions for that unit: % of this unit's spikes near it, % of its near this
            "pct_self_in_other": float(row[j]) if j >= 0 and both[j] > 0 else 0.0,
            "pct_other_in_self": float(col[j]) if j >= 0 and both[j] > 0 else 0.0,
            "drift": drift[i],
        }
        records.append(rec)
        if pictures:
            pic_dir.mkdir(parents=True, exist_ok=True)
            d = drift[i]
            title = (f"{u['name']} (electrode {u['electrode']}): {len(u['times'])} spikes"
                     + (f"; drift p baseline {d['baseline']['p']:.3g}, response {d['response']['p']:.3g}"
                        if d and not math.isnan(d["baseline"]["p"]) and not math.isnan(d["response"]["p"]) else ""))
            to_draw.append((pic_dir / f"{u['name']}.png", title, u["waveforms"], u["times"]))
    if to_draw:
        pics = _draw_unit_pictures(trials, fs, p, to_draw, jobs, progress)

    if pictures and pic_dir.exists():  # pictures of units that no longer exist would mislead
        keep = {x.name for x in pics}
        for old in pic_dir.glob("unit*.png"):
            if old.name not in keep:
                old.unlink()

    result = QAResult(directory=directory, units=records, violations=viol, similarity=sim,
                      pictures=pics, warnings=warnings)
    result.qa_file = out_dir / "unit_qa.json"
    result.violations_file = out_dir / "unit_similarity_violations.txt"
    doc = {
        "store": h5path.name,
        "sampling_rate": fs,
        "similarity": {
            "definition": "matrix[i][j] = % of unit i's spikes with a unit-j spike at most window_ms away",
            "window_ms": p.quality.similarity_window_ms, "cutoff_pct": p.quality.similarity_cutoff,
            "units": names, "matrix": sim,
        },
        "similarity_violations": viol,
        "drift": {
            "n_trial_bins": p.quality.n_trial_bins, "baseline_ms": p.quality.drift_baseline_ms, "response_ms": p.quality.drift_post_ms,
            "alpha": p.quality.drift_alpha, "test": "F test of trial group beyond taste (linear model); flagged if "
            "p < alpha / 2 in either window (Bonferroni)",
        },
        "units": records,
        "pictures": [str(x.relative_to(directory)) for x in pics],
        "warnings": warnings,
    }
    _write_atomic(result.qa_file, json.dumps(_jsonable(doc), indent=1) + "\n")
    if write_store and units:
        with AtomicStore(h5path) as h5:
            if "/unit_distances" in h5:
                h5.remove_node("/unit_distances")
            arr = h5.create_array("/", "unit_distances", sim, title="% of row unit's spikes within "
                                  f"{p.quality.similarity_window_ms:g} ms of a column unit's spike")
            arr.attrs.units = names
    lines = [f"# pairs with > {p.quality.similarity_cutoff:g}% of either unit's spikes within "
             f"{p.quality.similarity_window_ms:g} ms of the other's"]
    lines += [f"{v['unit_a']}\t{v['unit_b']}\t{v['pct_a_in_b']:.2f}% of {v['unit_a']}\t{v['pct_b_in_a']:.2f}% of "
              f"{v['unit_b']}\tspikes {v['spikes_a']}/{v['spikes_b']}" + ("\tsimilar counts" if v["similar_counts"] else "")
              for v in viol]
    _write_atomic(result.violations_file, "\n".join(lines) + "\n")
    result.seconds = time.perf_counter() - t0
    return result
