"""One picture per stored unit: its waveforms, ISI histogram and peak amplitude over time."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from blechrs.figures.canvas import Canvas
from blechrs.figures.cluster_panels import COLORS, draw_row


def plot_unit(name: str, electrode: int, times: np.ndarray, waveforms: np.ndarray, fs: float, peak: int,
              duration_s: float, path: Path, subtitle: str = "") -> Path:
    cv = Canvas(1, 3, f"{name}, electrode {electrode:02d}{': ' + subtitle if subtitle else ''}")
    draw_row(cv, 0, waveforms, times, fs, peak, COLORS[0], np.random.default_rng(0), name, duration_s)
    return cv.save(path)
