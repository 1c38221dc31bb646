"""Template assignment: re-decide which events belong to which unit with a noise model.

Clustering draws boundaries in a few feature dimensions; once auto-sort has chosen the units of an
electrode, every event is judged against the units' full mean waveforms (templates) instead.

A unit is its template plus the electrode's noise plus its own amplitude variability:
``w ~ N(t, C + s^2 t t^T)``. ``C``, the noise covariance across the window, comes from the
units' residuals (stationary: a function of the lag only; core/noise_model.py); ``s``, the unit's
relative amplitude spread beyond noise, from its events' projections on the template. Background
noise is ``N(0, C)``. Each event goes to the most probable of noise and the units, weighted by how
often each occurs (unit events per second; noise: one independent window per window length); an
event far from every unit (chi-square) goes to none. Hard-assignment EM passes re-estimate
templates, spreads and rates. This puts right the noise crossings clustering gave to a unit and
the boundary between neighbours.
"""

from __future__ import annotations

import numpy as np

from blechrs.core.noise_model import mean_waveforms, noise_cholesky, whitening

#: EM passes (assign, then re-estimate templates, spreads and rates).
N_PASSES = 3
#: Fewest unit events to estimate the noise covariance from. C is stationary (window-many lags),
#: and each lag averages ~events x window products, so a few dozen events fix it: 30 x 75
#: samples give >= 2000 products per lag. (A full covariance would need several per sample.)
MIN_UNIT_EVENTS = 30
#: Bounds of a unit's relative amplitude spread beyond noise.
MIN_SPREAD, MAX_SPREAD = 0.02, 0.5
#: An event whose Mahalanobis distance to its unit exceeds the chi-square mean by this many SDs
#: fits no unit (artifacts, overlapping spikes) and is left out.
OUTLIER_SDS = 20.0


def unit_loglik(z: np.ndarray, zz: np.ndarray, u: np.ndarray, spread: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray]:
    """Mahalanobis distances and log-likelihoods (n x units) of whitened events ``z`` (with
    ``zz`` = |z|^2) under N(t, C + s^2 t t^T) for whitened templates ``u`` and spreads ``s``, the
    log-likelihoods relative to N(0, C) taken as -|z|^2 / 2. Sherman-Morrison on the whitened
    form: n x units x window operations, no matrix per unit."""
    uu = np.einsum("ij,ij->i", u, u)
    zu = (z @ u.T.astype(z.dtype)).astype(np.float64)
    along = zu - uu[None, :]                    # (z - u) . u
    g = spread**2 / (1.0 + spread**2 * uu)
    maha = zz[:, None] - 2.0 * zu + uu[None, :] - g[None, :] * along**2
    return maha, -0.5 * maha - 0.5 * np.log1p(spread**2 * uu)[None, :]


def estimate_units(w, z, whiten, assigned, n_units, templates):
    """Templates (mean waveforms), relative amplitude spreads beyond noise and event counts of
    the units under an assignment. A unit left with < 2 events keeps its template."""
    templates = templates.copy()
    spread = np.full(n_units, MIN_SPREAD)
    counts = np.bincount(assigned[assigned >= 0], minlength=n_units).astype(float)
    for k in range(n_units):
        m = assigned == k
        if counts[k] < 2:
            continue
        templates[k] = w[m].mean(axis=0)
        uk = templates[k] @ whiten
        ukk = float(uk @ uk)
        a = (z[m] @ uk) / ukk                   # each event's amplitude relative to the template
        excess = float(np.var(a)) - 1.0 / ukk   # minus what the noise alone spreads it by
        spread[k] = float(np.clip(np.sqrt(max(excess, 0.0)), MIN_SPREAD, MAX_SPREAD))
    return templates, spread, counts


def assign_to_templates(waveforms: np.ndarray, unit_labels: np.ndarray, sampling_rate: float,
                        duration_s: float, eligible: np.ndarray | None = None) -> np.ndarray | None:
    """Re-assign every event to a unit or to noise.

    ``unit_labels``: auto-sort's unit index per event (-1 = in no unit). Returns the new unit index
    per event (-1 = noise or fits no unit), or None when there are too few unit events to estimate
    the noise covariance (the clustering's assignment then stands). Events where ``eligible`` is
    False (the clustering's amplitude outliers) stay in no unit.
    """
    w = np.asarray(waveforms, dtype=np.float64)
    labels = np.asarray(unit_labels, dtype=np.int64)
    n_units = int(labels.max()) + 1 if labels.size and labels.max() >= 0 else 0
    if n_units == 0 or w.ndim != 2:
        return None
    d = w.shape[1]
    if np.count_nonzero(labels >= 0) < MIN_UNIT_EVENTS:
        return None
    templates = mean_waveforms(w, labels, n_units)
    whiten = whitening(noise_cholesky(w, labels, templates))
    # whitened events: the one product over every event and sample pair, in float32 (4x faster
    # than float64 here; log-likelihoods move by < 1e-3, far below any decision margin)
    z = w.astype(np.float32) @ whiten.astype(np.float32)
    zz = np.einsum("ij,ij->i", z, z, dtype=np.float64)
    noise_loglik = -0.5 * zz
    # One independent noise window per window length: the prior odds of noise against a unit.
    log_noise_rate = np.log(sampling_rate / d)
    chi_limit = d + OUTLIER_SDS * np.sqrt(2.0 * d)
    assigned = labels.copy()
    templates, spread, counts = estimate_units(w, z, whiten, assigned, n_units, templates)
    for _ in range(N_PASSES):
        maha, loglik = unit_loglik(z, zz, templates @ whiten, spread)
        with np.errstate(divide="ignore"):
            log_rate = np.log(counts / max(duration_s, 1e-9))
        score = loglik + log_rate[None, :]
        best = np.argmax(score, axis=1)
        rows = np.arange(len(best))
        fits = maha[rows, best] <= chi_limit
        keep = (score[rows, best] > noise_loglik + log_noise_rate) & fits
        if eligible is not None:
            keep &= eligible
        new = np.where(keep, best, -1)
        if np.array_equal(new, assigned):
            break
        assigned = new
        templates, spread, counts = estimate_units(w, z, whiten, assigned, n_units, templates)
    return assigned
