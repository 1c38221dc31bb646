"""Matched-filter detection pass: spikes of the units auto-sort found that the amplitude threshold
missed (issue 14, item 5).

A unit with template ``t`` (its mean waveform) in noise of covariance ``C`` (core/noise_model.py,
from the units' residuals) is best found by correlating the filtered trace with
``f = C^-1 t / sqrt(t C^-1 t)``: the correlation is ~N(0, 1) on noise and ~N(d, 1) on the unit's
spikes (``d`` its whitened size), so a spike too small to cross the amplitude threshold can still
stand out. The engine correlates (``kernels.matched_filter_detect``: local maxima above
``z_threshold``, one per ``half_width`` samples across units, the most probable first); this
module builds the filters and keeps the detections that are not already events, their windows
cut and aligned as the engine's extraction does. They are only candidates: the template
assignment decides, with its noise model, which of them are spikes of a unit.
"""

from __future__ import annotations

import numpy as np

from blechrs import kernels
from blechrs.core.noise_model import mean_waveforms, noise_cholesky, whitening

#: Fewest events of a unit to build its filter from.
MIN_UNIT_EVENTS = 30
#: A detection is snapped to the trace's extremum (of the template's sign) within this many samples.
SNAP = 3


def unit_filters(waveforms: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(filters units x window float32, whitened norms d, template signs) of the units with at
    least MIN_UNIT_EVENTS events (rows in unit order; units with fewer get an all-zero row)."""
    w = np.asarray(waveforms, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    n_units = int(labels.max()) + 1 if labels.size and labels.max() >= 0 else 0
    templates = mean_waveforms(w, labels, n_units)
    whiten = whitening(noise_cholesky(w, labels, templates))
    u = templates @ whiten
    norm = np.sqrt(np.einsum("ij,ij->i", u, u))
    filters = (whiten @ u.T).T / np.maximum(norm, 1e-12)[:, None]
    counts = np.bincount(labels[labels >= 0], minlength=n_units)
    filters[counts < MIN_UNIT_EVENTS] = 0.0
    return filters.astype(np.float32), norm, np.sign(templates[np.arange(n_units), np.argmax(np.abs(templates), axis=1)])


def matched_filter_events(trace: np.ndarray, times: np.ndarray, waveforms: np.ndarray, labels: np.ndarray,
                          before: int, sampling_rate: float, duration_s: float, z_threshold: float,
                          half_width: int, threads: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """New events of one electrode: matched-filter detections (see the module doc) farther than
    ``half_width`` samples from every event in ``times``.

    ``trace``: the electrode's filtered, referenced signal (float32, the waveforms' units);
    ``waveforms``/``labels``: its events' windows (``before`` samples before the extremum) and
    their unit (-1 = none). Returns (times int64, sub-sample times, polarity int8, waveforms
    float32) of the new events, sorted by time."""
    trace = np.ascontiguousarray(trace, dtype=np.float32)
    w = np.asarray(waveforms)
    after = w.shape[1] - before
    empty = (np.zeros(0, np.int64), np.zeros(0), np.zeros(0, np.int8), np.zeros((0, w.shape[1]), np.float32))
    labels = np.asarray(labels, dtype=np.int64)
    if not labels.size or labels.max() < 0 or np.count_nonzero(labels >= 0) < MIN_UNIT_EVENTS:
        return empty
    filters, norm, sign = unit_filters(w, labels)
    live = np.flatnonzero(np.abs(filters).sum(axis=1) > 0)
    if not len(live):
        return empty
    counts = np.bincount(labels[labels >= 0], minlength=len(norm)).astype(float)
    # score = log-likelihood ratio of a spike of the unit against noise + log prior odds
    log_odds = np.log(np.maximum(counts[live], 1.0) / max(duration_s, 1e-9) / (sampling_rate / w.shape[1]))
    t, u, _ = kernels.matched_filter_detect(trace, filters[live], before, [float(z_threshold)] * len(live),
                                            norm[live].tolist(), (-0.5 * norm[live] ** 2 + log_odds).tolist(),
                                            int(half_width), threads)
    if not len(t):
        return empty
    # snap to the extremum of the unit's sign, as the threshold detector times an event
    off = np.arange(-SNAP, SNAP + 1)
    ok = (t - SNAP - before - 2 >= 0) & (t + SNAP + after + 2 < len(trace))
    t, u = t[ok], u[ok]
    s = sign[live][u]
    seg = s[:, None] * trace[t[:, None] + off[None, :]]
    t = t + off[np.argmax(seg, axis=1)]
    old = np.sort(np.asarray(times, dtype=np.int64))
    j = np.searchsorted(old, t)
    near = np.zeros(len(t), dtype=bool)
    for jj in (j - 1, j):
        inside = (jj >= 0) & (jj < len(old))
        near[inside] |= np.abs(old[jj[inside]] - t[inside]) <= half_width
    t, s = t[~near], s[~near]
    t, first = np.unique(t, return_index=True)
    s = s[first]
    if not len(t):
        return empty
    # every window fits (the ends were excluded above), so none is dropped
    wv, sub, _ = kernels.extract_waveforms(trace, t, before, after, align=True)
    return t, np.asarray(sub, dtype=np.float64), s.astype(np.int8), np.asarray(wv, dtype=np.float32)
