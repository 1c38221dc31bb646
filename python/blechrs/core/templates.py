"""Template assignment: re-decide which events belong to which unit with a noise model.

Clustering draws boundaries in a few feature dimensions; once auto-sort has chosen the units of an
electrode, every event is judged against the units' full mean waveforms (templates) instead:

1. Model. A unit is its template plus the electrode's noise plus its own amplitude variability:
   ``w ~ N(t, C + s^2 t t^T)``. ``C``, the noise covariance across the window, comes from the
   units' residuals (stationary: a function of the lag only); ``s``, the unit's relative amplitude
   spread beyond noise, from its events' projections on the template. Background noise is
   ``N(0, C)``. Each event goes to the most probable of noise and the units, weighted by how often
   each occurs (unit events per second; noise: one independent window per window length); an event
   far from every unit (chi-square) goes to none. Hard-assignment EM passes re-estimate templates,
   spreads and rates. This puts right the noise crossings clustering gave to a unit and the
   boundary between neighbours.
2. Merge units of one shape whose amplitudes form one mode together (clustering cut a neuron in
   two along its noise), unless they fire independently (close pairs as often as chance).
3. Split a unit whose amplitudes along its template are clearly bimodal (two neurons of one shape
   but different sizes on one wire, which feature-space merging cannot tell from halves of one),
   and a unit whose events' whitened residuals from its template form two clouds (neighbours of
   slightly different shape or size), then assign and merge again; up to SPLIT_ROUNDS rounds.
4. Drop units that cannot be told from noise crossings (the shape noise averages to, and no more
   events than the noise crosses the threshold) and, as auto-sort does, echoes of larger spikes.

The result is a solution of its own (number ``TEMPLATE_SOLUTION``, kind ``"templates"``): cluster
``k`` is unit ``k``, -1 is noise, so the sort file can select or overrule it like any other
solution. ``SortParams.template_assignment = False`` turns the step off.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import threading

import numpy as np

#: Solution number of the template assignment (GMM solutions start at K = 2).
TEMPLATE_SOLUTION = 1
#: EM passes (assign, then re-estimate templates, spreads and rates).
N_PASSES = 3
#: Fewest unit events to estimate the noise covariance from. C is stationary (window-many lags),
#: and each lag averages ~events x window products, so a few dozen events fix it: 30 x 75
#: samples give >= 2000 products per lag. (A full covariance would need several per sample.)
MIN_UNIT_EVENTS = 30
#: Ridge added to the noise covariance, as a fraction of its mean variance: the band-passed noise
#: has almost no power near Nyquist, and whitening must not blow those components up.
RIDGE = 1e-2
#: Residual events (evenly spaced) the noise covariance is estimated from, at most: each of its
#: lags averages ~window x this many products.
NOISE_EVENTS = 4000
#: Bounds of a unit's relative amplitude spread beyond noise.
MIN_SPREAD, MAX_SPREAD = 0.02, 0.5
#: An event whose Mahalanobis distance to its unit exceeds the chi-square mean by this many SDs
#: fits no unit (artifacts, overlapping spikes) and is left out.
OUTLIER_SDS = 20.0


def _mean_waveforms(w: np.ndarray, labels: np.ndarray, n_units: int) -> np.ndarray:
    """Mean waveform of each unit 0..n_units-1 (zeros for a unit without events)."""
    out = np.zeros((n_units, w.shape[1]))
    for k in range(n_units):
        member = labels == k
        if member.any():
            out[k] = w[member].mean(axis=0)
    return out


def _whitener(w: np.ndarray, labels: np.ndarray, templates: np.ndarray) -> np.ndarray:
    """Lower-triangular L with C = L L^T, C the noise covariance across the window.

    From the residuals of the unit events around their templates, each template first scaled to
    the event (so amplitude variability, and a second unit of similar shape lumped into the
    cluster, do not count as noise), then averaged along its diagonals: background noise is
    stationary, so C depends only on the lag between two samples. A ridge keeps the whitening
    of bands without noise power finite."""
    m = np.flatnonzero(labels >= 0)
    m = m[:: max(1, len(m) // NOISE_EVENTS)]  # a few thousand residuals fix C's few lags well
    t = templates[labels[m]]
    scale = np.einsum("ij,ij->i", w[m], t) / np.maximum(np.einsum("ij,ij->i", t, t), 1e-12)
    c = np.cov(w[m] - scale[:, None] * t, rowvar=False)
    d = c.shape[0]
    lag = np.array([np.diagonal(c, k).mean() for k in range(d)])
    c = lag[np.abs(np.subtract.outer(np.arange(d), np.arange(d)))]
    # Averaging diagonals can leave small negative eigenvalues: floor them at the ridge.
    val, vec = np.linalg.eigh(c)
    floor = RIDGE * max(float(lag[0]), 1e-12)
    c = (vec * (np.maximum(val, 0.0) + floor)) @ vec.T
    return np.linalg.cholesky((c + c.T) / 2.0)


_models = threading.local()


@contextlib.contextmanager
def _one_noise_model_per_assignment():
    """Within the block, the noise covariance of an assignment is estimated once: the steps of
    refine_choices often ask again for an assignment nothing has changed."""
    outer = getattr(_models, "cache", None)
    _models.cache = {} if outer is None else outer
    try:
        yield
    finally:
        _models.cache = outer


def _noise_cholesky(w: np.ndarray, labels: np.ndarray, templates: np.ndarray) -> np.ndarray:
    """_whitener, remembered per (events, assignment) inside _one_noise_model_per_assignment
    (the templates follow from both)."""
    cache = getattr(_models, "cache", None)
    if cache is None:
        return _whitener(w, labels, templates)
    key = (id(w), w.shape, hashlib.sha1(np.ascontiguousarray(labels, dtype=np.int64).tobytes()).digest())
    if key not in cache:
        cache[key] = _whitener(w, labels, templates)
    return cache[key]


def _whitening(l: np.ndarray) -> np.ndarray:
    """W = L^-T, so that a row x is whitened as x @ W (= L^-1 x): one matrix product for all
    events instead of a solve per call."""
    return np.linalg.inv(l).T


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


def _estimate(w, z, whiten, assigned, n_units, templates):
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
    templates = _mean_waveforms(w, labels, n_units)
    whiten = _whitening(_noise_cholesky(w, labels, templates))
    # whitened events: the one product over every event and sample pair, in float32 (4x faster
    # than float64 here; log-likelihoods move by < 1e-3, far below any decision margin)
    z = w.astype(np.float32) @ whiten.astype(np.float32)
    zz = np.einsum("ij,ij->i", z, z, dtype=np.float64)
    noise_loglik = -0.5 * zz
    # One independent noise window per window length: the prior odds of noise against a unit.
    log_noise_rate = np.log(sampling_rate / d)
    chi_limit = d + OUTLIER_SDS * np.sqrt(2.0 * d)
    assigned = labels.copy()
    templates, spread, counts = _estimate(w, z, whiten, assigned, n_units, templates)
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
        templates, spread, counts = _estimate(w, z, whiten, assigned, n_units, templates)
    return assigned


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


def _bic_gain_of_two(a: np.ndarray, n_iter: int = 200) -> tuple[float, np.ndarray, float, float]:
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
    w = np.asarray(waveforms, dtype=np.float64)
    labels = np.asarray(unit_labels, dtype=np.int64).copy()
    next_unit = int(labels.max()) + 1 if labels.size else 0
    for k in range(next_unit):
        idx = np.flatnonzero(labels == k)
        if len(idx) < 2 * SPLIT_MIN_EVENTS:
            continue
        t = w[idx].mean(axis=0)
        tt = float(t @ t)
        if tt <= 0:
            continue
        gain, part, low_edge, separation = _bic_gain_of_two((w[idx] @ t) / tt)
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
#: Rounds of split (amplitude, then shape), assign, merge: a wire's third or fourth unit is often
#: found inside a part split off in the round before.
SPLIT_ROUNDS = 3
#: Samples either side of the extremum compared when moving the template to an event.
REALIGN_HALF_WIDTH = 15
#: Sub-sample shifts (samples) tried when moving a unit's template to an event.
REALIGN_SHIFTS = np.arange(-1.0, 1.001, 0.125)


def _shift(x: np.ndarray, shift: float) -> np.ndarray:
    """Rows of x resampled at i + shift (Catmull-Rom cubic, the engine's interpolation; edges
    held)."""
    n = x.shape[-1]
    pos = np.arange(n) + shift
    base = np.floor(pos).astype(np.int64)
    f = pos - base
    p0, p1, p2, p3 = (x[..., np.clip(base + k, 0, n - 1)] for k in (-1, 0, 1, 2))
    return p1 + 0.5 * f * (p2 - p0 + f * (2 * p0 - 5 * p1 + 4 * p2 - p3 + f * (3 * (p1 - p2) + p3 - p0)))


@functools.lru_cache(maxsize=256)
def _shift_operator(n: int, shift: float) -> np.ndarray:
    """The n x n matrix M with x @ M == _shift(x, shift) for rows x of length n (cached: a few
    window lengths and shifts recur for every unit)."""
    m = _shift(np.eye(n), shift)
    m.setflags(write=False)
    return m


def _realign(w: np.ndarray, template: np.ndarray, peak: int) -> np.ndarray:
    """Each event shifted by the sub-sample amount whose samples around the extremum (the
    template's steep part, +-REALIGN_HALF_WIDTH) best fit the scaled template."""
    lo, hi = max(0, peak - REALIGN_HALF_WIDTH), min(w.shape[1], peak + REALIGN_HALF_WIDTH)
    t = template[lo:hi]
    tt = float(t @ t)
    # shift only the compared samples, with the 3 either side the cubic reaches for |shift| <= 1;
    # every shift at once as one product with the stacked resampling matrices
    a, b = max(0, lo - 3), min(w.shape[1], hi + 3)
    ops = np.stack([_shift_operator(b - a, float(s))[:, lo - a:hi - a] for s in REALIGN_SHIFTS])
    ws = np.einsum("ij,sjk->isk", w[:, a:b], ops, optimize=True)   # events x shifts x samples
    along = ws @ t
    dist = np.einsum("isk,isk->is", ws, ws) - along**2 / tt          # |residual|^2 after scaling
    chosen = np.argmin(dist, axis=1)                                 # first best shift on ties
    out = np.empty_like(w)
    for j in np.unique(chosen):
        rows = chosen == j
        out[rows] = w[rows] @ _shift_operator(w.shape[1], float(REALIGN_SHIFTS[j]))
    return out


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


def _aligned_residuals(w: np.ndarray, template: np.ndarray, peak: int) -> np.ndarray:
    """Each event minus the template moved to it: the template resampled at the sub-sample shift
    (REALIGN_SHIFTS) whose samples around the extremum (+-REALIGN_HALF_WIDTH), scaled, best fit
    the event. The template moves, not the event: resampling an event would smooth its noise by
    an amount that depends on the shift, and one neuron would look like two noise textures."""
    n = w.shape[1]
    lo, hi = max(0, peak - REALIGN_HALF_WIDTH), min(n, peak + REALIGN_HALF_WIDTH)
    moved = np.stack([template @ _shift_operator(n, -float(s)) for s in REALIGN_SHIFTS])
    part = moved[:, lo:hi]
    fit = (w[:, lo:hi] @ part.T) ** 2 / np.einsum("ij,ij->i", part, part)[None, :]
    return w - moved[np.argmax(fit, axis=1)]   # least residual = largest explained power


def _shape_parts(w: np.ndarray, template: np.ndarray, whiten: np.ndarray) -> np.ndarray | None:
    """The two shape parts of the events ``w`` of one unit (0/1 per event), or None.

    Two views of the events, and both must split: (1) each event's residual from the template
    moved to it (_aligned_residuals), (2) each event re-aligned on the template (_realign); each
    whitened, then the two-cloud test on their first principal components (each count of
    SHAPE_PCS in turn, the first that splits). Either view alone splits some single neurons: the
    residuals keep a trace of the sub-sample shift when the template is sampled coarsely (spikes
    a sample or two wide), the re-aligned events a trace of how much the resampling smoothed
    their noise (white noise). A second neuron shows in both. The parts are view (1)'s."""
    peak = int(np.argmax(np.abs(template)))
    parts = []
    for view in (_aligned_residuals(w, template, peak), _realign(w, template, peak)):
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
    w = np.asarray(waveforms, dtype=np.float64)
    labels = np.asarray(unit_labels, dtype=np.int64).copy()
    n_units = int(labels.max()) + 1 if labels.size else 0
    if n_units == 0:
        return labels
    templates = _mean_waveforms(w, labels, n_units)
    whiten = _whitening(_noise_cholesky(w, labels, templates))
    next_unit = n_units
    for k in range(n_units):
        idx = np.flatnonzero(labels == k)
        if len(idx) < 2 * SPLIT_MIN_EVENTS:
            continue
        # the test on evenly spaced events, at most SHAPE_EVENTS (the assignment after the split
        # re-decides every event anyway)
        sub = idx[:: max(1, len(idx) // SHAPE_EVENTS)]
        part = _shape_parts(w[sub], templates[k], whiten)
        if part is None:
            continue
        if len(sub) == len(idx):
            labels[idx[part == 1]] = next_unit
        else:  # every event to the nearer of the two parts' templates (whitened)
            halves = np.stack([w[sub[part == j]].mean(axis=0) for j in (0, 1)]) @ whiten
            zi = w[idx] @ whiten
            dist = [np.einsum("ij,ij->i", zi - h, zi - h) for h in halves]
            labels[idx[dist[1] < dist[0]]] = next_unit
        next_unit += 1
    return labels


def _fire_independently(ta: np.ndarray, tb: np.ndarray, sampling_rate: float, duration_s: float) -> bool:
    """Pairs closer than the refractory period as often as chance predicts: two neurons (the veto
    of auto-sort's merge test). The converse (few close pairs: one neuron) is no evidence on one
    wire: two spikes that overlap in one window are lost to detection or to the assignment, so
    close pairs of two neurons go missing too."""
    from blechrs.core.autosort import cross_refractory, fire_independently

    return duration_s > 0 and fire_independently(*cross_refractory(ta, tb, sampling_rate, duration_s))


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
    w = np.asarray(waveforms, dtype=np.float64)
    labels = np.asarray(unit_labels, dtype=np.int64)
    ids = [int(k) for k in np.unique(labels) if k >= 0]
    if not ids:
        return []
    templates = _mean_waveforms(w, labels, max(ids) + 1)
    chol = _noise_cholesky(w, labels, templates)
    cov = chol @ chol.T
    whiten = _whitening(chol)
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


#: Two units whose whitened templates, one scaled to fit the other, are closer than this (in
#: noise SDs: the d' of a discriminant between the two shapes) have one shape. Halves of one
#: unit cut apart in feature space sit at ~1.6 (the means of a Gaussian cut in two), units of
#: different shape far above.
MERGE_MAX_SHAPE_DPRIME = 3.0


def merge_same_units(waveforms: np.ndarray, unit_labels: np.ndarray, times: np.ndarray | None = None,
                     sampling_rate: float = 30000.0, duration_s: float = 0.0) -> np.ndarray:
    """Merge pairs of units that are one neuron cut in two by the clustering: the same shape (see
    MERGE_MAX_SHAPE_DPRIME) and amplitudes that are one mode together (the BIC test of
    ``split_by_amplitude`` does not fire on their union); never when, given ``times``, they fire
    independently. Most similar pair first, repeated until no pair merges. Returns the new labels (units
    renumbered 0..k-1 by first appearance)."""
    w = np.asarray(waveforms, dtype=np.float64)
    labels = np.asarray(unit_labels, dtype=np.int64).copy()
    if labels.size == 0 or labels.max() < 1:
        return labels
    templates = _mean_waveforms(w, labels, int(labels.max()) + 1)
    whiten = _whitening(_noise_cholesky(w, labels, templates))
    while True:
        ids = [k for k in np.unique(labels) if k >= 0]
        if len(ids) < 2:
            break
        u = {k: w[labels == k].mean(axis=0) @ whiten for k in ids}
        pairs = []
        for i, a in enumerate(ids):
            for b in ids[i + 1:]:
                alpha = float(u[a] @ u[b]) / max(float(u[b] @ u[b]), 1e-12)
                diff = u[a] - alpha * u[b]
                dprime = float(np.sqrt(diff @ diff))
                if dprime < MERGE_MAX_SHAPE_DPRIME:
                    pairs.append((dprime, a, b))
        merged = False
        for _, a, b in sorted(pairs):
            if times is not None and _fire_independently(times[labels == a], times[labels == b],
                                                         sampling_rate, duration_s):
                continue
            idx = np.flatnonzero((labels == a) | (labels == b))
            t = w[idx].mean(axis=0)
            gain = _bic_gain_of_two((w[idx] @ t) / float(t @ t))[0]
            # ... and only when their union is not one the shape test would split again (merge and
            # split must agree, or a split neighbour comes straight back)
            if gain <= SPLIT_MIN_BIC_GAIN and not (len(idx) >= 2 * SPLIT_MIN_EVENTS and _shape_parts(
                    w[idx[:: max(1, len(idx) // SHAPE_EVENTS)]], t, whiten) is not None):
                labels[labels == b] = a
                merged = True
                break
        if not merged:
            break
    ids = [k for k in np.unique(labels) if k >= 0]
    remap = {k: i for i, k in enumerate(ids)}
    return np.array([remap[k] if k >= 0 else -1 for k in labels], dtype=np.int64)


def _drop_noise_like(w: np.ndarray, labels: np.ndarray, peak: int, sampling_rate: float, duration_s: float,
                     threshold_sds: float) -> np.ndarray:
    out = labels.copy()
    out[np.isin(out, noise_like_units(w, labels, peak, sampling_rate, duration_s, threshold_sds))] = -1
    return out


def refine_choices(waveforms, times, features, choices, solutions, params, sampling_rate, mad_val,
                   duration_s, clustered=None):
    """Auto-sort's units re-decided by template assignment, with bimodal units split.

    Returns (the template solution, the new unit choices on it); (None, auto-sort's choices less
    those indistinguishable from noise crossings) when the electrode has too few unit events for
    the noise model."""
    with _one_noise_model_per_assignment():
        return _refine_choices(waveforms, times, features, choices, solutions, params, sampling_rate, mad_val,
                               duration_s, clustered)


def _refine_choices(waveforms, times, features, choices, solutions, params, sampling_rate, mad_val,
                    duration_s, clustered=None):
    from blechrs.core.autosort import ECHO_FRACTION, ECHO_MS, echo_fraction, judge_unit
    from blechrs.core.cluster import Solution
    from blechrs.core.features import peak_index

    w = np.asarray(waveforms, dtype=np.float64)  # once: every step below works in float64
    t = np.asarray(times)
    peak = peak_index(params, w.shape[1])
    sds = float(params.extract.waveform_threshold)
    unit_labels = np.full(len(w), -1, dtype=np.int64)
    for k, c in enumerate(choices):
        sel = np.isin(solutions[c.solution].labels, c.clusters) & (unit_labels < 0)
        unit_labels[sel] = k
    # the clustering's amplitude outliers (artifacts) stay out of every unit; events the
    # clustering did not see (below cluster_threshold) are all candidates
    eligible = np.asarray(solutions[choices[0].solution].labels) >= 0
    if clustered is not None:
        eligible |= ~np.asarray(clustered, dtype=bool)
    assigned = assign_to_templates(w, unit_labels, sampling_rate, duration_s, eligible)
    if assigned is None:  # too few events for the model: auto-sort's units, less noise crossings
        noise = set(noise_like_units(w, unit_labels, peak, sampling_rate, duration_s, sds))
        return None, [c for k, c in enumerate(choices) if k not in noise]
    threshold = sds * float(mad_val) / 0.6745
    assigned = merge_same_units(w, _drop_noise_like(w, assigned, peak, sampling_rate, duration_s, sds), t,
                                sampling_rate, duration_s)
    for _ in range(SPLIT_ROUNDS):
        split = split_by_shape(w, split_by_amplitude(w, assigned, threshold, peak))
        if split.max() == assigned.max():
            break
        again = assign_to_templates(w, split, sampling_rate, duration_s, eligible)
        assigned = merge_same_units(w, again if again is not None else split, t, sampling_rate, duration_s)
    assigned = _drop_noise_like(w, assigned, peak, sampling_rate, duration_s, sds)
    if assigned.max() < 0:
        return Solution(TEMPLATE_SOLUTION, assigned, "templates"), []
    # Number units by size (largest first) so the solution reads like the others.
    ids, counts = np.unique(assigned[assigned >= 0], return_counts=True)
    order = ids[np.argsort(-counts, kind="stable")]
    remap = np.full(int(assigned.max()) + 2 if assigned.size else 1, -1, dtype=np.int64)
    remap[order] = np.arange(len(order))
    labels = np.where(assigned >= 0, remap[np.maximum(assigned, 0)], -1)
    new = []
    for k in range(len(order)):
        # the rebound of a larger unit's spikes re-crossing the threshold (auto-sort's echo test)
        if echo_fraction(t, w[:, peak], labels == k, ECHO_MS * sampling_rate / 1000.0) > ECHO_FRACTION:
            continue
        choice = judge_unit(w, times, features, labels == k, params, sampling_rate, mad_val, duration_s,
                            TEMPLATE_SOLUTION, [k], f"unit {k} of the template assignment (solution "
                            f"{TEMPLATE_SOLUTION})",
                            # split neighbours are close in feature space by construction: their
                            # L-ratio says nothing about a mixture
                            check_isolation=False)
        if choice is not None:
            new.append(choice)
    return Solution(TEMPLATE_SOLUTION, labels, "templates"), new
