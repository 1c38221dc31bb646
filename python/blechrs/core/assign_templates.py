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

``amplitude_model="mixture"`` (issue 14) replaces the one Gaussian amplitude per unit by a
distribution learned from its events: ``w ~ sum_j pi_j N(a_j t, C + h^2 t t^T)`` over a grid of
scales ``a_j`` (SCALE_GRID, ``h`` its step), the weights ``pi`` fitted by EM on the unit's events.
Real neurons' amplitudes are not one Gaussian around the template: a burst's later spikes are
10-20 % smaller each, and the amplitude drifts over a session; a unit's amplitude distribution
then has a long low tail or two modes, which a Gaussian spread either cuts off or stretches over
its neighbours.
"""

from __future__ import annotations

import numpy as np

from blechrs.core.noise_model import mean_waveforms, noise_cholesky, whitening
from blechrs.core.rows import mean_rows, project_rows, rows, spans

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
#: Scales of the amplitude mixture (relative to the unit's mean waveform) and the width of each
#: grid component (its step): a burst's fifth spike is ~0.4 of its first, drift +-20 %.
SCALE_GRID = np.arange(0.30, 1.801, 0.05)
SCALE_WIDTH = 0.05
#: EM iterations for a unit's mixture weights, and the floor of each weight (only to keep its log
#: finite: a floor of 1e-4 let a big unit take noise crossings at scale 0.3-0.5, which are ~5 x
#: noise and shaped like it: true-label ceiling on single-unit wires 0.920 against 0.998 with 1e-16,
#: docs/benchmarks.md "Phenomena").
MIXTURE_ITER, MIXTURE_FLOOR = 30, 1e-16
AMPLITUDE_MODELS = ("gaussian", "mixture")


def unit_loglik(z: np.ndarray, zz: np.ndarray, u: np.ndarray, spread: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray]:
    """Mahalanobis distances and log-likelihoods (n x units) of whitened events ``z`` (with
    ``zz`` = |z|^2) under N(t, C + s^2 t t^T) for whitened templates ``u`` and spreads ``s``, the
    log-likelihoods relative to N(0, C) taken as -|z|^2 / 2. Sherman-Morrison on the whitened
    form: n x units x window operations, no matrix per unit."""
    return _gaussian_loglik(projections(z, u), zz, u, spread)


def projections(z: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Whitened events ``z`` projected on whitened templates ``u`` (n x units, float64)."""
    return (z @ u.T.astype(z.dtype)).astype(np.float64)


def _gaussian_loglik(zu: np.ndarray, zz: np.ndarray, u: np.ndarray, spread: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray]:
    """``unit_loglik`` from the projections ``zu`` (per event: a chunk of events at a time will do)."""
    uu = np.einsum("ij,ij->i", u, u)
    along = zu - uu[None, :]                    # (z - u) . u
    g = spread**2 / (1.0 + spread**2 * uu)
    maha = zz[:, None] - 2.0 * zu + uu[None, :] - g[None, :] * along**2
    return maha, -0.5 * maha - 0.5 * np.log1p(spread**2 * uu)[None, :]


def _grid_loglik(zu: np.ndarray, zz: np.ndarray, uu: float) -> tuple[np.ndarray, np.ndarray]:
    """Per event (n) and grid scale (J): log N(z; a_j u, I + h^2 u u^T) up to the constant the
    noise model shares, and the Mahalanobis distance to the best scale (for the outlier test)."""
    a = SCALE_GRID[None, :]
    g = SCALE_WIDTH**2 / (1.0 + SCALE_WIDTH**2 * uu)
    along = zu[:, None] - a * uu
    maha = zz[:, None] - 2.0 * a * zu[:, None] + a**2 * uu - g * along**2
    return -0.5 * maha - 0.5 * np.log1p(SCALE_WIDTH**2 * uu), maha.min(axis=1)


def _logsumexp(x: np.ndarray, axis: int) -> np.ndarray:
    m = x.max(axis=axis, keepdims=True)
    return (m + np.log(np.exp(x - m).sum(axis=axis, keepdims=True))).squeeze(axis)


def fit_scale_weights(zu: np.ndarray, zz: np.ndarray, uu: float) -> np.ndarray:
    """The amplitude mixture's weights over SCALE_GRID from one unit's events (whitened
    projections ``zu`` on its template, norms ``zz``): EM from uniform weights."""
    ll, _ = _grid_loglik(zu, zz, uu)
    pi = np.full(len(SCALE_GRID), 1.0 / len(SCALE_GRID))
    for _ in range(MIXTURE_ITER):
        r = ll + np.log(pi)[None, :]
        r = np.exp(r - _logsumexp(r, 1)[:, None])
        pi = np.maximum(r.mean(axis=0), MIXTURE_FLOOR)
        pi /= pi.sum()
    return pi


def mixture_loglik(z: np.ndarray, zz: np.ndarray, u: np.ndarray, weights: list[np.ndarray]
                   ) -> tuple[np.ndarray, np.ndarray]:
    """As ``unit_loglik``, under each unit's amplitude mixture (``weights[k]`` over SCALE_GRID)."""
    return _mixture_loglik(projections(z, u), zz, u, weights)


def _mixture_loglik(zu: np.ndarray, zz: np.ndarray, u: np.ndarray, weights: list[np.ndarray]
                    ) -> tuple[np.ndarray, np.ndarray]:
    maha = np.empty_like(zu)
    loglik = np.empty_like(zu)
    for k in range(len(u)):
        ll, maha[:, k] = _grid_loglik(zu[:, k], zz, float(u[k] @ u[k]))
        loglik[:, k] = _logsumexp(ll + np.log(weights[k])[None, :], 1)
    return maha, loglik


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
        templates[k] = mean_rows(w, m)
        uk = templates[k] @ whiten
        ukk = float(uk @ uk)
        a = project_rows(z, m, uk) / ukk        # each event's amplitude relative to the template
        excess = float(np.var(a)) - 1.0 / ukk   # minus what the noise alone spreads it by
        spread[k] = float(np.clip(np.sqrt(max(excess, 0.0)), MIN_SPREAD, MAX_SPREAD))
    return templates, spread, counts


def _mixture_weights(z, zz, assigned, n_units, templates, whiten) -> list[np.ndarray]:
    out = []
    for k in range(n_units):
        m = assigned == k
        uk = templates[k] @ whiten
        if np.count_nonzero(m) < 2:  # as the Gaussian model's widest start: centred on the template
            prior = np.exp(-0.5 * ((SCALE_GRID - 1.0) / 0.1) ** 2)
            out.append(prior / prior.sum())
            continue
        out.append(fit_scale_weights((z[m] @ uk.astype(z.dtype)).astype(np.float64), zz[m], float(uk @ uk)))
    return out


def assign_to_templates(waveforms: np.ndarray, unit_labels: np.ndarray, sampling_rate: float,
                        duration_s: float, eligible: np.ndarray | None = None,
                        amplitude_model: str = "gaussian") -> np.ndarray | None:
    """Re-assign every event to a unit or to noise.

    ``unit_labels``: auto-sort's unit index per event (-1 = in no unit). Returns the new unit index
    per event (-1 = noise or fits no unit), or None when there are too few unit events to estimate
    the noise covariance (the clustering's assignment then stands). Events where ``eligible`` is
    False (the clustering's amplitude outliers) stay in no unit. ``amplitude_model``: see the
    module doc.
    """
    if amplitude_model not in AMPLITUDE_MODELS:
        raise ValueError(f"amplitude_model must be one of {AMPLITUDE_MODELS}, not {amplitude_model!r}")
    w = np.asarray(waveforms)  # float32 as extracted: rows are read in float64 (core/rows.py)
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
    z = np.asarray(w, dtype=np.float32) @ whiten.astype(np.float32)
    zz = np.einsum("ij,ij->i", z, z, dtype=np.float64)
    # One independent noise window per window length: the prior odds of noise against a unit.
    log_noise_rate = np.log(sampling_rate / d)
    chi_limit = d + OUTLIER_SDS * np.sqrt(2.0 * d)
    assigned = labels.copy()
    templates, spread, counts = estimate_units(w, z, whiten, assigned, n_units, templates)
    eligible = None if eligible is None else np.asarray(eligible)
    weights: list[np.ndarray] = []
    for _ in range(N_PASSES):
        u = templates @ whiten
        if amplitude_model == "mixture":
            weights = _mixture_weights(z, zz, assigned, n_units, templates, whiten)
        # whole: BLAS gives float32 rows other bits in another chunking (core/rows.py)
        zu = projections(z, u)
        with np.errstate(divide="ignore"):
            log_rate = np.log(counts / max(duration_s, 1e-9))
        new = np.empty(len(assigned), dtype=np.int64)
        for a, b in spans(len(new)):  # the scores, n x units each, a chunk of events at a time
            new[a:b] = _decide(zu[a:b], zz[a:b], u, spread, weights if amplitude_model == "mixture" else None,
                               log_rate, log_noise_rate, chi_limit,
                               None if eligible is None else eligible[a:b])
        if np.array_equal(new, assigned):
            break
        assigned = new
        templates, spread, counts = estimate_units(w, z, whiten, assigned, n_units, templates)
    return assigned


def _decide(zu, zz, u, spread, weights, log_rate, log_noise_rate, chi_limit, eligible) -> np.ndarray:
    """Each event's unit (-1: noise, fits no unit, or not ``eligible``) from its whitened
    projections ``zu`` on the units and norm ``zz``; ``weights``: the amplitude mixture's (None:
    the Gaussian model with ``spread``)."""
    if weights is not None:
        maha, loglik = _mixture_loglik(zu, zz, u, weights)
    else:
        maha, loglik = _gaussian_loglik(zu, zz, u, spread)
    score = loglik + log_rate[None, :]
    best = np.argmax(score, axis=1)
    event = np.arange(len(best))
    fits = maha[event, best] <= chi_limit
    keep = (score[event, best] > -0.5 * zz + log_noise_rate) & fits
    if eligible is not None:
        keep &= eligible
    return np.where(keep, best, -1)


def assign_with_model(model_waveforms: np.ndarray, model_labels: np.ndarray, sampling_rate: float,
                      model_duration_s: float, waveforms: np.ndarray, events: np.ndarray,
                      eligible: np.ndarray | None = None, amplitude_model: str = "gaussian") -> np.ndarray:
    """The unit (or -1) of each of ``events`` (row indices into ``waveforms``) under the units
    that ``model_labels`` make of ``model_waveforms`` (over ``model_duration_s`` seconds): their
    templates, spreads (or amplitude mixtures), rates and noise model, as one pass of
    ``assign_to_templates`` would judge them. The events are read a chunk at a time, so their
    number does not bound memory. Every event goes to noise when the model has too few unit
    events (``assign_to_templates`` would return None)."""
    if amplitude_model not in AMPLITUDE_MODELS:
        raise ValueError(f"amplitude_model must be one of {AMPLITUDE_MODELS}, not {amplitude_model!r}")
    mw = np.asarray(model_waveforms)
    labels = np.asarray(model_labels, dtype=np.int64)
    events = np.asarray(events)
    out = np.full(len(events), -1, dtype=np.int64)
    n_units = int(labels.max()) + 1 if labels.size and labels.max() >= 0 else 0
    if n_units == 0 or len(events) == 0 or np.count_nonzero(labels >= 0) < MIN_UNIT_EVENTS:
        return out
    d = mw.shape[1]
    templates = mean_waveforms(mw, labels, n_units)
    whiten = whitening(noise_cholesky(mw, labels, templates))
    w32 = whiten.astype(np.float32)
    mz = np.asarray(mw, dtype=np.float32) @ w32
    templates, spread, counts = estimate_units(mw, mz, whiten, labels, n_units, templates)
    u = templates @ whiten
    weights = None
    if amplitude_model == "mixture":
        mzz = np.einsum("ij,ij->i", mz, mz, dtype=np.float64)
        weights = _mixture_weights(mz, mzz, labels, n_units, templates, whiten)
    del mz
    with np.errstate(divide="ignore"):
        log_rate = np.log(counts / max(model_duration_s, 1e-9))
    log_noise_rate = np.log(sampling_rate / d)
    chi_limit = d + OUTLIER_SDS * np.sqrt(2.0 * d)
    for a, b in spans(len(events)):
        z = rows(waveforms, events[a:b], np.float32) @ w32
        zz = np.einsum("ij,ij->i", z, z, dtype=np.float64)
        out[a:b] = _decide(projections(z, u), zz, u, spread, weights, log_rate, log_noise_rate, chi_limit,
                           None if eligible is None else np.asarray(eligible)[events[a:b]])
    return out
