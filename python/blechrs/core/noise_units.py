"""Units that cannot be told from noise crossings: the shape noise averages to, and no more events
than the noise crosses the detection threshold.
"""

from __future__ import annotations

import numpy as np

from blechrs.core.noise_model import mean_waveforms, noise_cholesky, whitening

#: A unit whose template differs from the mean of noise windows with the same extremum by less
#: than this (whitened norm, in noise SDs) has the shape of noise crossings: noise windows
#: aligned on a dip average to the noise's own autocovariance, C[:, peak] scaled. Noise-only
#: "units" sit at 1.0-1.3; spikes of SNR >= 6 at >= 3.5, but SNR 4-5 units at 1.5-2.8, so a
#: unit is dropped as noise only when it also fires no more often than noise crosses the
#: threshold (noise_crossing_rate).
NOISE_SHAPE_MAX = 2.5


def noise_crossing_rate(cov: np.ndarray, k: float, sampling_rate: float) -> float:
    """Rice's formula: how often stationary Gaussian noise with this covariance crosses +-k SDs
    (both polarities), per second, from the lag-1 correlation of the noise."""
    rho1 = float(cov[0, 1] / cov[0, 0]) if cov[0, 0] > 0 else 0.0
    per_sample = np.sqrt(max(2.0 * (1.0 - rho1), 0.0)) / (2.0 * np.pi) * np.exp(-0.5 * k * k)
    return float(2.0 * per_sample * sampling_rate)


def noise_like_units(waveforms: np.ndarray, unit_labels: np.ndarray, peak_index: int,
                     sampling_rate: float = 30000.0, duration_s: float = 0.0, threshold_sds: float = 4.0
                     ) -> list[int]:
    """Units that cannot be told from noise crossings: a mean waveform that noise alone averages
    to (see NOISE_SHAPE_MAX) and events no more frequent than the noise crosses the detection
    threshold (``threshold_sds`` noise SDs; Rice's formula on the noise covariance)."""
    w = np.asarray(waveforms)  # float32 as extracted: rows are read in float64 (core/rows.py)
    labels = np.asarray(unit_labels, dtype=np.int64)
    ids = [int(k) for k in np.unique(labels) if k >= 0]
    if not ids:
        return []
    templates = mean_waveforms(w, labels, max(ids) + 1)
    chol = noise_cholesky(w, labels, templates)
    cov = chol @ chol.T
    whiten = whitening(chol)
    column = cov[:, peak_index] / cov[peak_index, peak_index]
    noise_rate = noise_crossing_rate(cov, threshold_sds, sampling_rate)
    out = []
    for k in ids:
        if duration_s > 0 and np.sum(labels == k) / duration_s > noise_rate:
            continue
        t = templates[k]
        beyond = (t - t[peak_index] * column) @ whiten
        if float(np.sqrt(beyond @ beyond)) < NOISE_SHAPE_MAX:
            out.append(k)
    return out


def drop_noise_like(w: np.ndarray, labels: np.ndarray, peak: int, sampling_rate: float, duration_s: float,
                    threshold_sds: float) -> np.ndarray:
    """``labels`` with the noise-like units' events (noise_like_units) set to -1."""
    out = labels.copy()
    out[np.isin(out, noise_like_units(w, labels, peak, sampling_rate, duration_s, threshold_sds))] = -1
    return out
