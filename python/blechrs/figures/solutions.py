"""One picture per clustering solution of an electrode.

The first row is where merges and splits are judged: the events in feature space (first two
principal components; peak amplitude against RMS energy in µV), coloured by cluster, and the
clusters' mean waveforms overlaid. Then one row per cluster: waveforms, ISI histogram and peak
amplitude over time. Every waveform and amplitude axis of an electrode has the same voltage range
(its :class:`ElectrodeScale`), so sizes compare across its solutions and units. Clusters auto-sort
made into units are marked (tinted row, "▶ unit" in their title)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from blechrs.core.rows import rows
from blechrs.figures.canvas import Canvas
from blechrs.figures.cluster_panels import (ElectrodeScale, amplitude_panel, color_of, feature_panel, isi_panel,
                                            mean_sd, means_panel, waveform_panel)

MARK = "#e6f4e6"
MAX_FEATURE_POINTS = 3000


@dataclass
class FeatureView:
    """A fixed subsample of an electrode's events for its feature-space panels."""

    index: np.ndarray
    """The events shown (indices among the electrode's events)."""
    pc: np.ndarray
    """Their first two clustering features (principal components), k x 2."""
    amplitude: np.ndarray
    """Signed peak amplitude, µV."""
    energy: np.ndarray
    """RMS of the waveform, µV."""

    @classmethod
    def of(cls, waveforms: np.ndarray, features: np.ndarray | None, peak: int,
           max_points: int = MAX_FEATURE_POINTS) -> "FeatureView":
        """Every event, or ``max_points`` evenly spread ones (the same for every solution)."""
        n = len(waveforms)
        index = np.arange(n) if n <= max_points else np.linspace(0, n - 1, max_points).astype(np.int64)
        w = rows(waveforms, index)
        pc = (np.asarray(features)[index, :2] if features is not None and len(features) == n
              else np.zeros((len(index), 2)))
        amp = w[:, peak] if w.shape[1] > peak else np.zeros(len(index))
        return cls(index, pc, amp, np.sqrt(np.mean(w * w, axis=1)) if w.size else np.zeros(len(index)))


def feature_row(cv: Canvas, row: int, view: FeatureView, groups: np.ndarray, colors: dict, title: str) -> None:
    """The two feature-space panels in columns 0 and 1 of ``row``; ``groups``: cluster per shown event."""
    feature_panel(cv, row, 0, view.pc[:, 0], view.pc[:, 1], groups, colors, "feature PC1", "PC2",
                  f"{title}: PC1 vs PC2")
    feature_panel(cv, row, 1, view.energy, view.amplitude, groups, colors, "RMS energy (µV)", "µV",
                  f"{title}: peak vs energy")


def plot_solution(path: Path, electrode: int, solution: int, labels: np.ndarray, times: np.ndarray,
                  waveforms: np.ndarray, scale: ElectrodeScale, view: FeatureView,
                  units: dict[int, str] | None = None, kind: str = "") -> Path:
    """Every cluster of one solution (``labels``: cluster per event, < 0 for outliers);
    ``units``: cluster -> what auto-sort made of it (e.g. "single unit")."""
    units = units or {}
    clusters = sorted(int(c) for c in np.unique(labels) if c >= 0)
    n_out = int(np.count_nonzero(labels < 0))
    kind = f" ({kind})" if kind else ""
    cv = Canvas(1 + len(clusters), 3,
                f"electrode {electrode:02d}, solution {solution}{kind}: {len(clusters)} clusters of "
                f"{len(times)} events, {n_out} unclustered (grey); "
                + (f"auto-sort's units ▶: {len(units)}" if units else "no auto-sort unit"))
    colors = {c: color_of(c) for c in clusters}
    feature_row(cv, 0, view, labels[view.index], colors, "clusters")
    members = {c: np.flatnonzero(labels == c) for c in clusters}
    stats = {c: mean_sd(waveforms, members[c]) for c in clusters}
    means = [(f"c{c}", stats[c][0], colors[c]) for c in clusters]
    means_panel(cv, 0, 2, means, scale, "cluster means")
    rng = np.random.default_rng(0)  # seeded: the same pictures on every run
    amplitude = (rows(waveforms[:, scale.peak], dtype=waveforms.dtype) if waveforms.shape[1] > scale.peak
                 else np.zeros(len(times)))
    for r, c in enumerate(clusters, start=1):
        member = members[c]
        t = times[member]
        title = f"c{c}: {len(t)} events"
        if c in units:
            cv.tint(r, MARK)
            title += f" ▶ {units[c]}"
        waveform_panel(cv, r, 0, waveforms, scale, colors[c], rng, title, "#006000" if c in units else "k",
                       index=member, stats=stats[c])
        isi_panel(cv, r, 1, t, scale, colors[c])
        amplitude_panel(cv, r, 2, amplitude[member], t, scale, colors[c])
    return cv.save(path)
