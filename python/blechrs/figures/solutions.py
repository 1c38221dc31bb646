"""One picture per clustering solution of an electrode: one row per cluster (waveforms, ISI
histogram, peak amplitude over time)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from blechrs.figures.canvas import Canvas
from blechrs.figures.cluster_panels import COLORS, draw_row


def plot_solution(path: Path, electrode: int, solution: int, labels: np.ndarray, times: np.ndarray,
                  waveforms: np.ndarray, fs: float, peak: int, duration_s: float,
                  threshold: float | None = None) -> Path:
    """Every cluster of one solution (``labels``: cluster per event, < 0 for outliers)."""
    clusters = sorted(int(c) for c in np.unique(labels) if c >= 0)
    n_out = int(np.count_nonzero(labels < 0))
    cv = Canvas(max(1, len(clusters)), 3,
                f"electrode {electrode:02d}, solution {solution}: {len(clusters)} clusters, "
                f"{len(times)} events ({n_out} outliers)")
    rng = np.random.default_rng(0)  # seeded: the same pictures on every run
    for r, c in enumerate(clusters):
        member = labels == c
        draw_row(cv, r, waveforms[member], times[member], fs, peak, COLORS[c % len(COLORS)], rng,
                 f"c{c}", duration_s, threshold)
    return cv.save(path)
