"""One picture per stored unit, large enough to judge it: waveforms (a sample, mean +- SD), ISI
histogram, autocorrelogram, peak amplitude over the recording and the unit among its electrode's
events in feature space; and one small picture per electrode (its units' mean waveforms and their
events in feature space), the index page's thumbnail. Waveforms and amplitudes use the electrode's
voltage scale, as its solution pictures do."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from blechrs.core.rows import rows
from blechrs.figures.canvas import Canvas
from blechrs.figures.cluster_panels import (COLORS, ElectrodeScale, acg_panel, amplitude_panel, feature_panel,
                                            isi_panel, means_panel, waveform_panel)
from blechrs.figures.solutions import FeatureView

UNIT_CELL = (330, 210)
THUMB_CELL = (205, 150)
UNIT_COLOR = COLORS[0]


def plot_unit(path: Path, title: str, times: np.ndarray, waveforms: np.ndarray, scale: ElectrodeScale,
              view: FeatureView, in_view: np.ndarray, info: dict[str, str] | None = None,
              index: np.ndarray | None = None) -> Path:
    """``title``: the picture's first line (name, electrode, type ...); ``in_view``: which events
    of ``view`` are this unit's; ``info``: stored in the PNG (what unit it shows); ``index``: the
    unit's rows of ``waveforms`` (None: every row is the unit's)."""
    cv = Canvas(2, 3, title, cell=UNIT_CELL)
    n = len(times)
    waveform_panel(cv, 0, 0, waveforms, scale, UNIT_COLOR, np.random.default_rng(0),
                   f"{n} waveforms: 100 of them, mean ± SD", n_sample=100, index=index)
    isi_panel(cv, 0, 1, times, scale, UNIT_COLOR)
    acg_panel(cv, 0, 2, times, scale, UNIT_COLOR)
    amplitude = (rows(waveforms[:, scale.peak], index, dtype=waveforms.dtype)
                 if waveforms.ndim == 2 and waveforms.shape[1] > scale.peak else np.zeros(n))
    amplitude_panel(cv, 1, 0, amplitude, times, scale, UNIT_COLOR, colspan=2, max_points=3000,
                    title=f"peak amplitude over the recording, {n / max(scale.duration_s, 1e-9):.2f} Hz")
    feature_panel(cv, 1, 2, view.energy, view.amplitude, in_view.astype(np.int64), {1: UNIT_COLOR},
                  "RMS energy (µV)", "µV", "peak vs energy: unit blue, others grey")
    return cv.save(path, info)


def plot_electrode_units(path: Path, electrode: int, names: Sequence[str], means: Sequence[np.ndarray],
                         scale: ElectrodeScale, view: FeatureView, unit_of_view: np.ndarray,
                         info: dict[str, str] | None = None) -> Path:
    """The electrode's thumbnail: its units' mean waveforms and its events (grey) with the units'
    (in colour) in feature space. ``unit_of_view``: index into ``names`` per event of ``view``, -1
    for none."""
    cv = Canvas(1, 2, f"electrode {electrode:02d}: {len(names)} unit{'s' if len(names) != 1 else ''}",
                cell=THUMB_CELL)
    colors = {k: COLORS[k % len(COLORS)] for k in range(len(names))}
    means_panel(cv, 0, 0, [(n[4:] if n.startswith("unit") else n, m, colors[k])
                           for k, (n, m) in enumerate(zip(names, means))], scale, "unit means")
    feature_panel(cv, 0, 1, view.energy, view.amplitude, unit_of_view, colors, "RMS energy (µV)", "µV",
                  "peak vs energy, by unit")
    return cv.save(path, info)
