"""Split units that are two neurons: by amplitude, and by shape.

A unit whose amplitudes along its template are clearly bimodal is two neurons of one shape but
different sizes on one wire, which feature-space merging cannot tell from halves of one
(split_by_amplitude). A unit whose events' whitened residuals from its template form two clouds
holds neighbours of slightly different shape or size (split_by_shape). New units get the next
indices; the template assignment then re-decides every event.
"""

from __future__ import annotations

import numpy as np

from blechrs.core.align_to_template import aligned_residuals, realign
from blechrs.core.noise_model import mean_waveforms, noise_cholesky, whitening
from blechrs.core.rows import mean_rows, project_rows, rows, spans

#: A unit is split when a two-Gaussian fit of its amplitudes (along its template) beats one
#: Gaussian by this much BIC: two neurons of similar shape but different size on one wire.
SPLIT_MIN_BIC_GAIN = 10.0
#: ... and the two Gaussians are this far apart (Ashman's D: mean difference over the RMS SD;
#: > 2 is a clean two-mode mixture). With thousands of events BIC alone also splits one unit
#: whose amplitudes are merely skewed (drift, bursts); D does not grow with the event count ...
SPLIT_MIN_SEPARATION = 2.0
#: ... and each part has at least this many events ...
SPLIT_MIN_EVENTS = 50
#: ... and at least this fraction of the unit's events: on a busy wire over ten minutes, the
#: overlaps of two spikes (larger than either) are a bimodal tail of ~1 % of a unit, not a neuron
#: (the shape test, on <= SHAPE_EVENTS events, already needs 5 %).
SPLIT_MIN_FRACTION = 0.02
#: ... and the smaller part's amplitudes clear the detection threshold by this many of their SDs:
#: a unit near the threshold has its amplitude distribution cut off there, a skew a two-Gaussian
#: fit mistakes for a second mode.
SPLIT_CLEAR_SDS = 1.0


#: Bins of the amplitude histogram the two-Gaussian EM iterates on (the final likelihood and
#: parts use every value): a bin is < 1/1000 of the amplitude range, far below any SD that matters.
EM_BINS = 1024


def bic_gain_of_two(a: np.ndarray, n_iter: int = 200) -> tuple[float, np.ndarray, float, float]:
    """BIC(one Gaussian) - BIC(two Gaussians) of the 1-D sample ``a``, the two-Gaussian part
    (0 = lower mean) of each value, the lower Gaussian's mean minus SPLIT_CLEAR_SDS of its SDs,
    and the two Gaussians' separation (Ashman's D). Deterministic start at the quartiles; EM on
    the histogram of ``a`` (EM_BINS bins), likelihood and parts from every value."""
    a = np.asarray(a, dtype=np.float64)
    n = len(a)
    v = float(a.var())
    if n < 4 or v <= 0:
        return -np.inf, np.zeros(n, dtype=np.int64), 0.0, 0.0
    bic1 = n * (np.log(2 * np.pi * v) + 1.0) + 2.0 * np.log(n)
    if n <= EM_BINS:
        x, c = a, np.ones(n)
    else:
        counts, edges = np.histogram(a, bins=EM_BINS)
        keep = counts > 0
        x = ((edges[:-1] + edges[1:]) / 2.0)[keep]
        c = counts[keep].astype(np.float64)
    mu = np.quantile(a, [0.25, 0.75])
    var = np.full(2, v / 4.0)
    pi = np.array([0.5, 0.5])
    prev = -np.inf
    row = x[None, :]
    for _ in range(n_iter):
        lp = (np.log(pi) - 0.5 * np.log(2 * np.pi * var))[:, None] - 0.5 * (row - mu[:, None]) ** 2 / var[:, None]
        top = np.maximum(lp[0], lp[1])
        r = np.exp(lp - top)
        tot = r[0] + r[1]
        r /= tot
        ll = float(c @ (top + np.log(tot)))
        r *= c
        nk = r.sum(axis=1) + 1e-12
        pi = nk / n
        mu = (r @ x) / nk
        var = np.maximum((r * (row - mu[:, None]) ** 2).sum(axis=1) / nk, 1e-6 * v)
        if ll - prev < 1e-8 * abs(ll):
            break
        prev = ll
    lp = (np.log(pi) - 0.5 * np.log(2 * np.pi * var))[:, None] - 0.5 * (a[None, :] - mu[:, None]) ** 2 / var[:, None]
    top = np.maximum(lp[0], lp[1])
    ll = float((top + np.log(np.exp(lp[0] - top) + np.exp(lp[1] - top))).sum())
    bic2 = -2.0 * ll + 5.0 * np.log(n)
    part = (lp[1] > lp[0]).astype(np.int64)  # the more probable of the two, first on ties
    low = int(np.argmin(mu))
    if low == 1:
        part = 1 - part
    separation = float(abs(mu[1] - mu[0]) * np.sqrt(2.0 / (var[0] + var[1])))  # Ashman's D
    return (float(bic1 - bic2), part, float(mu[low] - SPLIT_CLEAR_SDS * np.sqrt(var[low])), separation)


def split_by_amplitude(waveforms: np.ndarray, unit_labels: np.ndarray, threshold: float = 0.0,
                       peak_index: int = 0) -> np.ndarray:
    """Split every unit whose amplitudes along its template are bimodal (see SPLIT_MIN_BIC_GAIN,
    SPLIT_MIN_SEPARATION, SPLIT_MIN_EVENTS, SPLIT_CLEAR_SDS; ``threshold`` is the detection
    threshold in the units of the waveforms, compared with their sample ``peak_index``); the new
    units get the next indices. Returns the new labels (unchanged when nothing splits)."""
    w = np.asarray(waveforms)  # float32 as extracted: rows are read in float64 (core/rows.py)
    labels = np.asarray(unit_labels, dtype=np.int64).copy()
    next_unit = int(labels.max()) + 1 if labels.size else 0
    for k in range(next_unit):
        idx = np.flatnonzero(labels == k)
        if len(idx) < 2 * SPLIT_MIN_EVENTS:
            continue
        t = mean_rows(w, idx)
        tt = float(t @ t)
        if tt <= 0:
            continue
        gain, part, low_edge, separation = bic_gain_of_two(project_rows(w, idx, t) / tt)
        clear = low_edge * abs(float(t[peak_index])) >= threshold
        if not (gain > SPLIT_MIN_BIC_GAIN and separation >= SPLIT_MIN_SEPARATION and clear
                and min(np.bincount(part, minlength=2)) >= max(SPLIT_MIN_EVENTS, SPLIT_MIN_FRACTION * len(idx))):
            continue
        labels[idx[part == 1]] = next_unit
        next_unit += 1
    return labels


#: Shape split: a unit is also cut in two when the residuals of its events from its template
#: (moved to each event by a sub-sample shift), whitened, form two clouds: a two-Gaussian model
#: of their first SHAPE_PCS principal components beats one Gaussian by SHAPE_MIN_AIC_GAIN and the
#: two parts sit SHAPE_SPLIT_DPRIME apart on their discriminant (halves of one Gaussian cloud:
#: ~1.6). It finds neighbours of slightly different shape or size that clustering lumped; the
#: shift keeps one neuron's spikes detected half a sample apart from looking like two shapes.
#: Principal component counts tried in turn (the first that splits wins): a second unit that
#: differs mainly in size or in one feature of shape shows in the first two or three components,
#: where a two-Gaussian fit pays a small BIC penalty; subtler shapes need five.
SHAPE_PCS = (2, 3, 5)
SHAPE_SPLIT_DPRIME = 3.0
#: ... and the two Gaussians' AIC beats one Gaussian's by this much. AIC, not BIC: a unit of a
#: hundred or two events (a 2-3 Hz neuron in a minute) pays BIC's log(n) per parameter and two
#: clearly different neighbours stayed lumped (seed 1: 19 -> 22/66 well detected with AIC, no
#: more false units); the d' and part-size guards keep one neuron whole.
SHAPE_MIN_AIC_GAIN = 10.0
#: Events of a unit the shape test looks at, at most (evenly spaced).
SHAPE_EVENTS = 1000


def _two_clouds(x: np.ndarray, n_iter: int = 100):
    """Hard-assignment EM of two full-covariance Gaussians on the rows of ``x``, started by
    cutting the first coordinate at its median. Returns (part per row, log-likelihood of the
    mixture, discriminant projection of every row), or None when a part gets too small.

    Both Gaussians at once, each step two matrix products with the rows' monomials (1, x_i,
    x_i x_j): counts, sums and scatter of both parts from one, every row's Mahalanobis distance
    to both from the other (x is whitened and centred, so the moments are well conditioned)."""
    n, d = x.shape
    xa = np.hstack([np.ones((n, 1)), x])
    mono = (xa[:, :, None] * xa[:, None, :]).reshape(n, -1)
    part = (x[:, 0] > np.median(x[:, 0])).astype(np.int64)
    ridge = 1e-6 * np.eye(d)
    for _ in range(n_iter):
        onehot = np.stack([part == 0, part == 1]).astype(np.float64)
        m = (onehot @ mono).reshape(2, d + 1, d + 1)
        counts = m[:, 0, 0]
        if counts.min() < d + 2:
            return None
        mus = m[:, 0, 1:] / counts[:, None]
        covs = (m[:, 1:, 1:] - counts[:, None, None] * mus[:, :, None] * mus[:, None, :]) \
            / (counts - 1)[:, None, None] + ridge
        prec = np.linalg.inv(covs)
        pmu = np.einsum("kij,kj->ki", prec, mus)
        quad = np.empty((2, d + 1, d + 1))  # [1 x] quad [1 x]^T = (x - mu)^T prec (x - mu)
        quad[:, 1:, 1:] = prec
        quad[:, 0, 1:] = -pmu
        quad[:, 1:, 0] = -pmu
        quad[:, 0, 0] = np.einsum("ki,ki->k", mus, pmu)
        maha = mono @ quad.reshape(2, -1).T
        logp = (np.log(counts / n) - 0.5 * np.linalg.slogdet(covs)[1])[None, :] - 0.5 * maha
        new = np.argmax(logp, axis=1)
        if np.array_equal(new, part):
            break
        part = new
    top = logp.max(axis=1)
    ll = float((top + np.log(np.exp(logp - top[:, None]).sum(axis=1))).sum() - 0.5 * n * d * np.log(2 * np.pi))
    return part, ll, x @ np.linalg.solve((covs[0] + covs[1]) / 2.0, mus[1] - mus[0])


def _shape_split(x: np.ndarray) -> np.ndarray | None:
    """The two parts of the rows of ``x`` (0/1 per row) when two Gaussians beat one (see
    SHAPE_MIN_AIC_GAIN, SPLIT_MIN_EVENTS, SHAPE_SPLIT_DPRIME), else None."""
    n, d = x.shape
    fit = _two_clouds(x)
    if fit is None:
        return None
    part, ll2, proj = fit
    ll1 = -0.5 * n * float(np.linalg.slogdet(2 * np.pi * np.e * np.cov(x, rowvar=False))[1])
    params1 = d + d * (d + 1) / 2
    gain = (-2 * ll1 + 2 * params1) - (-2 * ll2 + 2 * (2 * params1 + 1))   # AIC
    if gain <= SHAPE_MIN_AIC_GAIN or min(np.bincount(part, minlength=2)) < SPLIT_MIN_EVENTS:
        return None
    a, b = proj[part == 0], proj[part == 1]
    if abs(a.mean() - b.mean()) / np.sqrt((a.var() + b.var()) / 2.0) < SHAPE_SPLIT_DPRIME:
        return None
    return part


def _shape_parts(w: np.ndarray, template: np.ndarray, whiten: np.ndarray) -> np.ndarray | None:
    """The two shape parts of the events ``w`` of one unit (0/1 per event), or None.

    Two views of the events, and both must split: (1) each event's residual from the template
    moved to it (aligned_residuals), (2) each event re-aligned on the template (realign); each
    whitened, then the two-cloud test on their first principal components (each count of
    SHAPE_PCS in turn, the first that splits). Either view alone splits some single neurons: the
    residuals keep a trace of the sub-sample shift when the template is sampled coarsely (spikes
    a sample or two wide), the re-aligned events a trace of how much the resampling smoothed
    their noise (white noise). A second neuron shows in both. The parts are view (1)'s."""
    peak = int(np.argmax(np.abs(template)))
    parts = []
    for view in (aligned_residuals(w, template, peak), realign(w, template, peak)):
        z = view @ whiten
        z -= z.mean(axis=0)
        val, vec = np.linalg.eigh(z.T @ z)       # principal axes (cheaper than an SVD of z)
        axes = vec[:, np.argsort(val)[::-1]].T
        part = None
        for n_pcs in SHAPE_PCS:
            part = _shape_split(z @ axes[:n_pcs].T)
            if part is not None:
                break
        if part is None:
            return None
        parts.append(part)
    return parts[0]


def split_by_shape(waveforms: np.ndarray, unit_labels: np.ndarray) -> np.ndarray:
    """Split every unit whose events' residuals from its template form two clouds (see SHAPE_PCS,
    SHAPE_SPLIT_DPRIME); new units get the next indices."""
    w = np.asarray(waveforms)  # float32 as extracted: rows are read in float64 (core/rows.py)
    labels = np.asarray(unit_labels, dtype=np.int64).copy()
    n_units = int(labels.max()) + 1 if labels.size else 0
    if n_units == 0:
        return labels
    templates = mean_waveforms(w, labels, n_units)
    whiten = whitening(noise_cholesky(w, labels, templates))
    next_unit = n_units
    for k in range(n_units):
        idx = np.flatnonzero(labels == k)
        if len(idx) < 2 * SPLIT_MIN_EVENTS:
            continue
        # the test on evenly spaced events, at most SHAPE_EVENTS (the assignment after the split
        # re-decides every event anyway)
        sub = idx[:: max(1, len(idx) // SHAPE_EVENTS)]
        part = _shape_parts(rows(w, sub), templates[k], whiten)
        if part is None:
            continue
        if len(sub) == len(idx):
            labels[idx[part == 1]] = next_unit
        else:  # every event to the nearer of the two parts' templates (whitened)
            halves = np.stack([mean_rows(w, sub[part == j]) for j in (0, 1)]) @ whiten
            for start, stop in spans(len(idx)):
                zi = project_rows(w, idx[start:stop], whiten)
                dist = [np.einsum("ij,ij->i", zi - h, zi - h) for h in halves]
                labels[idx[start:stop][dist[1] < dist[0]]] = next_unit
        next_unit += 1
    return labels


def one_mode_and_shape(w: np.ndarray, idx: np.ndarray, whiten: np.ndarray) -> bool:
    """The events ``idx`` of ``w``, taken as one unit, are one amplitude mode (the BIC test of
    split_by_amplitude does not fire) and one shape (the shape test does not split them): merging
    must agree with splitting, or a split neighbour comes straight back."""
    t = mean_rows(w, idx)
    gain = bic_gain_of_two(project_rows(w, idx, t) / float(t @ t))[0]
    return gain <= SPLIT_MIN_BIC_GAIN and not (len(idx) >= 2 * SPLIT_MIN_EVENTS and _shape_parts(
        rows(w, idx[:: max(1, len(idx) // SHAPE_EVENTS)]), t, whiten) is not None)
