"""``blechrs demo``: simulate a recording with ground truth, sort it, score the sort.

The score is the usual one (spikeinterface's compare_sorter_to_ground_truth): a sorted spike
matches a true spike within 0.4 ms; ground-truth and sorted units are paired one to one by the
Hungarian algorithm on their agreement; accuracy = matches / (true + sorted - matches). The
Hungarian algorithm is written here (scipy is not a runtime dependency of blechrs).
"""

from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from blechrs.errors import BlechrsError


def linear_sum_assignment(cost: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Minimum-cost one-to-one assignment of the rows and columns of a rectangular matrix
    (the Kuhn-Munkres / Jonker-Volgenant shortest augmenting path algorithm, O(n^2 m)).
    Returns (rows, cols) as scipy.optimize.linear_sum_assignment does."""
    c = np.asarray(cost, dtype=np.float64)
    if c.ndim != 2:
        raise ValueError("cost must be a 2-D matrix")
    transposed = c.shape[0] > c.shape[1]
    if transposed:
        c = c.T
    n, m = c.shape  # n <= m
    if n == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    if not np.all(np.isfinite(c)):
        raise ValueError("cost matrix has non-finite entries")
    u = np.zeros(n + 1)
    v = np.zeros(m + 1)
    p = np.zeros(m + 1, dtype=np.int64)  # p[j] = row (1-based) matched to column j; 0 = free
    way = np.zeros(m + 1, dtype=np.int64)
    for i in range(1, n + 1):
        p[0] = i
        j0 = 0
        minv = np.full(m + 1, np.inf)
        used = np.zeros(m + 1, dtype=bool)
        while True:
            used[j0] = True
            i0 = p[j0]
            free = ~used[1:]
            cur = c[i0 - 1] - u[i0] - v[1:]
            js = np.flatnonzero(free)
            better = cur[js] < minv[js + 1]
            upd = js[better] + 1
            minv[upd] = cur[js][better]
            way[upd] = j0
            cand = js + 1
            j1 = int(cand[np.argmin(minv[cand])])
            delta = minv[j1]
            usedj = np.flatnonzero(used)
            u[p[usedj]] += delta
            v[usedj] -= delta
            minv[~used] -= delta
            j0 = j1
            if p[j0] == 0:
                break
        while True:
            j1 = way[j0]
            p[j0] = p[j1]
            j0 = j1
            if j0 == 0:
                break
    rows, cols = [], []
    for j in range(1, m + 1):
        if p[j]:
            rows.append(p[j] - 1)
            cols.append(j - 1)
    rows_a, cols_a = np.array(rows, dtype=np.int64), np.array(cols, dtype=np.int64)
    if transposed:
        rows_a, cols_a = cols_a, rows_a
    order = np.argsort(rows_a)
    return rows_a[order], cols_a[order]


def count_matches(a: np.ndarray, b: np.ndarray, window: float) -> int:
    """Number of one-to-one pairs of events of two trains closer than ``window`` samples: each
    event of ``a`` is paired with its nearest event of ``b`` within the window, each ``b`` used
    once. Exact when each train's events are more than ``2 * window`` apart (true spike trains
    have a refractory period; detection has a dead time)."""
    a = np.sort(np.asarray(a, dtype=np.int64))
    b = np.sort(np.asarray(b, dtype=np.int64))
    if len(a) == 0 or len(b) == 0:
        return 0
    k = np.searchsorted(b, a)
    left = np.clip(k - 1, 0, len(b) - 1)
    right = np.clip(k, 0, len(b) - 1)
    dl = np.abs(a - b[left])
    dr = np.abs(b[right] - a)
    nearest = np.where(dr < dl, right, left)
    d = np.minimum(dl, dr)
    return int(len(np.unique(nearest[d <= window])))


@dataclass
class UnitScore:
    gt_unit: int
    channel: int
    n_true: int
    sorted_unit: str | None
    matches: int
    n_sorted: int

    @property
    def accuracy(self) -> float:
        denom = self.n_true + self.n_sorted - self.matches
        return self.matches / denom if denom else 0.0

    @property
    def precision(self) -> float:
        return self.matches / self.n_sorted if self.n_sorted else 0.0

    @property
    def recall(self) -> float:
        return self.matches / self.n_true if self.n_true else 0.0


def score_sorting(gt_times: Sequence[np.ndarray], gt_channels: Sequence[int], sorted_times: dict[str, np.ndarray],
                  sampling_rate: float, delta_ms: float = 0.4, min_agreement: float = 0.0,
                  sorted_channels: dict[str, int] | None = None) -> tuple[list[UnitScore], list[str]]:
    """Score sorted units against ground truth. Returns (one score per ground-truth unit, the
    names of sorted units matched to no ground-truth unit). With ``sorted_channels`` only units
    on the same wire are compared (the others cannot share spikes)."""
    window = int(round(delta_ms * sampling_rate / 1000.0))
    names = list(sorted_times)
    n_gt, n_s = len(gt_times), len(names)
    matches = np.zeros((n_gt, n_s), dtype=np.int64)
    agreement = np.zeros((n_gt, n_s))
    for i, t in enumerate(gt_times):
        for j, name in enumerate(names):
            if sorted_channels is not None and sorted_channels[name] != gt_channels[i]:
                continue
            m = count_matches(t, sorted_times[name], window)
            matches[i, j] = m
            denom = len(t) + len(sorted_times[name]) - m
            agreement[i, j] = m / denom if denom else 0.0
    scores: list[UnitScore] = []
    paired: dict[int, int] = {}
    if n_gt and n_s:
        rows, cols = linear_sum_assignment(-agreement)
        paired = {int(r): int(c) for r, c in zip(rows, cols) if agreement[r, c] > min_agreement}
    for i, t in enumerate(gt_times):
        j = paired.get(i)
        scores.append(UnitScore(i, int(gt_channels[i]), len(t), names[j] if j is not None else None,
                                int(matches[i, j]) if j is not None else 0,
                                len(sorted_times[names[j]]) if j is not None else 0))
    matched = {names[j] for j in paired.values()}
    return scores, [n for n in names if n not in matched]


def main(args, console, out) -> int:
    from rich import box
    from rich.table import Table

    from blechrs.io import paths, unit_store
    from blechrs.cli.output import ProgressBars, units_table
    from blechrs import pipeline
    from blechrs.simulate import Simulation

    tmp = None
    if args.out is None:
        tmp = Path(tempfile.mkdtemp(prefix="blechrs_demo_"))
        directory = tmp / "demo_recording"
    else:
        directory = Path(args.out)
        if directory.exists() and any(directory.iterdir()) and not args.force:
            raise BlechrsError(f"{directory}: not empty (use --force to overwrite it)")
        if directory.exists() and args.force:
            shutil.rmtree(directory)
    try:
        t0 = time.perf_counter()
        console.print(f"simulating {args.channels} channels x {args.seconds:g} s (seed {args.seed}) in {directory}")
        sim = Simulation(seed=args.seed, n_channels=args.channels, duration_s=args.seconds)
        gt = sim.write(directory, layout="one file per channel")
        t_sim = time.perf_counter() - t0
        t1 = time.perf_counter()
        with ProgressBars(not args.quiet) as bars:
            report = pipeline.run(directory, jobs=args.jobs or None, plots=not args.no_plots, progress=bars,
                                  force=True)
        t_sort = time.perf_counter() - t1
        out.print(units_table(report.units, f"{len(report.units)} sorted units"))
        units = unit_store.read_units(paths.h5_path(directory), waveforms=False)
        scores, unmatched = score_sorting(gt.spike_times, gt.unit_channel, {u.name: u.times for u in units},
                                          gt.sampling_rate, sorted_channels={u.name: u.electrode for u in units})
        t = Table(title="accuracy per ground-truth unit (0.4 ms, Hungarian)", title_justify="left", box=box.SIMPLE_HEAD)
        # Short headers: the table must fit 80 columns (pipes and logs are 80 wide).
        for col in ("true", "wire", "Hz", "peak uV", "spikes", "sorted", "acc", "prec", "recall"):
            t.add_column(col, justify="left" if col == "sorted" else "right", no_wrap=True)
        for s in scores:
            t.add_row(f"{s.gt_unit}", f"{s.channel:02d}", f"{gt.unit_rate_hz[s.gt_unit]:.1f}",
                      f"{gt.unit_peak_uv[s.gt_unit]:.0f}", str(s.n_true), s.sorted_unit or "-",
                      f"{s.accuracy:.2f}", f"{s.precision:.2f}", f"{s.recall:.2f}")
        out.print(t)
        acc = np.array([s.accuracy for s in scores]) if scores else np.zeros(0)
        out.print(f"{len(scores)} ground-truth units: {int(np.sum(acc >= 0.8))} well detected (accuracy >= 0.8), "
                  f"mean accuracy {acc.mean() if len(acc) else 0:.2f}; {len(units)} sorted units, "
                  f"{len(unmatched)} matching no ground-truth unit")
        out.print(f"time: simulate {t_sim:.1f} s, sort {t_sort:.1f} s ("
                  + ", ".join(f"{k} {v:.1f} s" for k, v in report.timings.items()) + ")")
        if tmp is None:
            out.print(f"recording, units and pictures in {directory}")
        return 0
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
