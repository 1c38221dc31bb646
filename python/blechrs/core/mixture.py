"""Gaussian mixtures for the clustering solutions, without scikit-learn on the hot path.

The same algorithms as scikit-learn's ``KMeans(n_init=1)`` (k-means++ seeding, Lloyd iterations),
``GaussianMixture(covariance_type="full", init_params="kmeans")`` and
``BayesianGaussianMixture(covariance_type="full", weight_concentration_prior_type="dirichlet_process")``:
same random stream, same updates, same stopping rules, so the solutions are scikit-learn's up to
rounding (tests/test_speed_cluster.py checks them against scikit-learn). Why not call scikit-learn:
on an electrode's few features its per-component Python loops and input checks cost several times
the arithmetic, and importing it takes 2 s in every worker process. Here every step is a few
matrix products over all components at once:

- E-step: the log-density of every event under every component is one product of the events'
  monomials (x_i x_j, x_i, 1) with a matrix of per-component coefficients.
- M-step: sums of responsibilities, first and second moments are products with the same monomials
  (computed about the training mean, so no precision is lost in the moment differences).
"""

from __future__ import annotations

import math

import numpy as np

#: Small diagonal added to every covariance: features are of order one, this only keeps
#: covariances of tiny or flat clusters invertible (scikit-learn's ``reg_covar``).
REG_COVAR = 1e-4

_LOG_2PI = math.log(2.0 * math.pi)


# --- k-means (scikit-learn's KMeans(n_init=1, algorithm="lloyd")) --------------------------------

def _sq_distances(centres: np.ndarray, xt: np.ndarray, x_sq: np.ndarray) -> np.ndarray:
    """Squared distances (centres x events) as scikit-learn's ``_euclidean_distances`` computes
    them; ``xt`` is the d x n transposed event matrix."""
    d = -2.0 * (centres @ xt)
    d += np.einsum("ij,ij->i", centres, centres)[:, None]
    d += x_sq[None, :]
    np.maximum(d, 0, out=d)
    return d


def _kmeans_plusplus(x: np.ndarray, xt: np.ndarray, k: int, x_sq: np.ndarray,
                     rs: np.random.RandomState) -> np.ndarray:
    """Greedy k-means++ seeding (2 + log k candidates per centre), drawing from ``rs`` exactly as
    scikit-learn's ``_kmeans_plusplus`` with unit sample weights does."""
    n = len(x)
    n_local = 2 + int(np.log(k))
    centres = np.empty((k, x.shape[1]))
    first = rs.choice(n, p=np.ones(n) / n)
    centres[0] = x[first]
    closest = _sq_distances(centres[:1], xt, x_sq)[0]
    pot = closest.sum()
    for c in range(1, k):
        rand = rs.uniform(size=n_local) * pot
        cand = np.searchsorted(np.cumsum(closest), rand)
        np.clip(cand, None, n - 1, out=cand)
        dist = _sq_distances(x[cand], xt, x_sq)
        np.minimum(closest, dist, out=dist)
        pots = dist.sum(axis=1)
        best = int(np.argmin(pots))
        pot = pots[best]
        closest = dist[best]
        centres[c] = x[cand[best]]
    return centres


def _assign(xt: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """The nearest centre of every event (first one on ties, like argmin)."""
    # ||c||^2 - 2 x.c: the per-event ||x||^2 does not change the nearest centre. A running
    # minimum over the few centres is 3x faster than argmin across each event's short row.
    d = -2.0 * (centres @ xt)
    d += np.einsum("ij,ij->i", centres, centres)[:, None]
    best = d[0]
    labels = np.zeros(d.shape[1], dtype=np.intp)
    for j in range(1, len(d)):
        labels = np.where(d[j] < best, j, labels)
        best = np.minimum(best, d[j])
    return labels


def kmeans_labels(events, k: int, rs: np.random.RandomState, max_iter: int = 300,
                  tol: float = 1e-4) -> np.ndarray:
    """Labels of scikit-learn's ``KMeans(n_clusters=k, n_init=1, random_state=rs).fit(x).labels_``
    (``events``: an ``Events`` or the n x d array x)."""
    events = _as_events(events)
    scale, x, xt, x_sq = events.for_kmeans()
    n = len(x)
    tol = scale * tol
    centres = _kmeans_plusplus(x, xt, k, x_sq, rs)
    labels_old = np.full(n, -1)
    strict = False
    for _ in range(max_iter):
        labels = _assign(xt, centres)
        weight = np.bincount(labels, minlength=k).astype(np.float64)
        sums = np.zeros((k, x.shape[1]))
        for j in range(x.shape[1]):
            sums[:, j] = np.bincount(labels, weights=x[:, j], minlength=k)
        empty = np.flatnonzero(weight == 0)
        if len(empty):
            # scikit-learn's relocation: the events farthest from their centre seed empty clusters.
            far_d = ((x - centres[labels]) ** 2).sum(axis=1)
            far = np.argpartition(far_d, -len(empty))[:-len(empty) - 1:-1]
            for new, idx in zip(empty, far):
                old = labels[idx]
                sums[old] -= x[idx]
                sums[new] = x[idx]
                weight[new] = 1.0
                weight[old] -= 1.0
        new_centres = sums / np.where(weight > 0, weight, 1.0)[:, None]
        shift = float(((new_centres - centres) ** 2).sum())
        centres = new_centres
        if np.array_equal(labels, labels_old):
            strict = True
            break
        if shift <= tol:
            break
        labels_old = labels
    if not strict:
        labels = _assign(xt, centres)
    return labels


# --- shared Gaussian algebra -----------------------------------------------------------------------

class Events:
    """A set of events prepared for the mixtures: their monomials about ``centre`` (rows x_i x_j for
    i <= j, x_i, 1; one column per event, so that per-event reductions over components run along
    contiguous rows), and for k-means the centred events and their squared norms."""

    def __init__(self, x: np.ndarray, centre: np.ndarray | None = None):
        x = np.asarray(x, dtype=np.float64)
        self.x = x
        self.n, self.d = x.shape
        self.centre = x.mean(axis=0) if centre is None else np.asarray(centre, dtype=np.float64)
        y = (x - self.centre).T
        self.iu = np.triu_indices(self.d)
        self.m = np.vstack([y[self.iu[0]] * y[self.iu[1]], y, np.ones((1, self.n))])
        self._kmeans = None

    def for_kmeans(self):
        """(tolerance scale, events centred on their mean, the same transposed, squared norms) as
        KMeans computes them."""
        if self._kmeans is None:
            y = self.x - self.x.mean(axis=0)
            self._kmeans = (float(np.mean(np.var(self.x, axis=0))), y, np.ascontiguousarray(y.T),
                            np.einsum("ij,ij->i", y, y))
        return self._kmeans

    def moments(self, resp: np.ndarray):
        """nk, means (about the centre) and covariances of every component; resp is k x n."""
        s = resp @ self.m.T  # k x (q + d + 1)
        q = len(self.iu[0])
        nk = s[:, -1] + 10 * np.finfo(np.float64).eps
        mean = s[:, q:q + self.d] / nk[:, None]
        second = np.empty((len(nk), self.d, self.d))
        second[:, self.iu[0], self.iu[1]] = s[:, :q] / nk[:, None]
        second[:, self.iu[1], self.iu[0]] = second[:, self.iu[0], self.iu[1]]
        cov = second - mean[:, :, None] * mean[:, None, :]
        return nk, mean, cov

    def log_density(self, mean: np.ndarray, prec_chol: np.ndarray, extra: np.ndarray) -> np.ndarray:
        """k x n: -0.5 (y - mean)' P (y - mean) + extra[k] for every component and event, P = L L'."""
        p = prec_chol @ np.swapaxes(prec_chol, 1, 2)
        pm = np.einsum("kij,kj->ki", p, mean)
        q = len(self.iu[0])
        coef = np.empty((len(mean), self.m.shape[0]))
        off = np.where(self.iu[0] == self.iu[1], -0.5, -1.0)
        coef[:, :q] = p[:, self.iu[0], self.iu[1]] * off
        coef[:, q:q + self.d] = pm
        coef[:, -1] = -0.5 * np.einsum("ki,ki->k", pm, mean) + extra
        return coef @ self.m


#: Events labelled per pass by ``predict`` (bounds the monomials' memory on long recordings).
PREDICT_CHUNK = 1 << 16


def _predict(model, x) -> np.ndarray:
    """Most likely components of the events ``x`` (an ``Events``, or an n x d array labelled in
    passes of PREDICT_CHUNK events about the array's mean: the same numbers either way)."""
    if isinstance(x, Events):
        return np.argmax(model.log_prob(x), axis=0).astype(np.int64)
    x = np.asarray(x, dtype=np.float64)
    centre = x.mean(axis=0) if len(x) else np.zeros(x.shape[1])
    out = np.empty(len(x), dtype=np.int64)
    for start in range(0, len(x), PREDICT_CHUNK):
        chunk = Events(x[start:start + PREDICT_CHUNK], centre)
        out[start:start + chunk.n] = np.argmax(model.log_prob(chunk), axis=0)
    return out


def _as_events(x) -> "Events":
    return x if isinstance(x, Events) else Events(x)


def _precision_cholesky(cov: np.ndarray) -> np.ndarray:
    """Upper-triangular L with L L' = inverse(cov), per component (scikit-learn's convention)."""
    chol = np.linalg.cholesky(cov)
    d = cov.shape[-1]
    return np.swapaxes(np.linalg.solve(chol, np.broadcast_to(np.eye(d), cov.shape)), 1, 2)


def _log_det_chol(prec_chol: np.ndarray) -> np.ndarray:
    return np.log(np.diagonal(prec_chol, axis1=1, axis2=2)).sum(axis=1)


def _normalise(wlp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """wlp k x n -> (log-sum-exp per event, responsibilities k x n).

    The exponentials are taken in float32 (SIMD: 4x faster than float64's on AVX2, and they are
    most of an EM iteration); responsibilities carry 7 significant digits, the sums are float64."""
    top = wlp.max(axis=0)
    e = np.exp((wlp - top).astype(np.float32)).astype(np.float64)
    s = e.sum(axis=0)
    e /= s
    return top + np.log(s), e


def _one_hot(labels: np.ndarray, k: int) -> np.ndarray:
    resp = np.zeros((k, len(labels)))
    resp[labels, np.arange(len(labels))] = 1.0
    return resp


# --- GMM (scikit-learn's GaussianMixture, full covariances, k-means initialisation) -------------

class GMM:
    """Fitted weights, means (in the original coordinates) and precision Cholesky factors."""

    def __init__(self, weights, means, prec_chol, lower_bound=-np.inf):
        self.weights, self.means, self.prec_chol, self.lower_bound = weights, means, prec_chol, lower_bound

    def log_prob(self, events: Events) -> np.ndarray:
        """k x n weighted log-densities."""
        extra = -0.5 * events.d * _LOG_2PI + _log_det_chol(self.prec_chol) + np.log(self.weights)
        return events.log_density(self.means - events.centre, self.prec_chol, extra)

    def predict(self, x) -> np.ndarray:
        """The most likely component of every event (``Events`` or n x d array)."""
        return _predict(self, x)


def fit_gmm(train, k: int, seed: int, max_iter: int = 100, tol: float = 1e-3,
            n_init: int = 1) -> GMM:
    """``GaussianMixture(n_components=k, covariance_type="full", max_iter, tol, n_init,
    reg_covar=REG_COVAR, random_state=seed).fit(train)``. Raises ``np.linalg.LinAlgError`` on a
    covariance that is not positive definite (scikit-learn raises ValueError there)."""
    mono = _as_events(train)
    n, d = mono.n, mono.d
    rs = np.random.RandomState(seed)
    reg = REG_COVAR * np.eye(d)
    best = None
    for _ in range(n_init):
        nk, mean, cov = mono.moments(_one_hot(kmeans_labels(mono, k, rs), k))
        prec_chol = _precision_cholesky(cov + reg)
        weights = nk / n
        lower = -np.inf
        for _ in range(max_iter):
            prev = lower
            extra = -0.5 * d * _LOG_2PI + _log_det_chol(prec_chol) + np.log(weights)
            norm, resp = _normalise(mono.log_density(mean, prec_chol, extra))
            nk, mean, cov = mono.moments(resp)
            prec_chol = _precision_cholesky(cov + reg)
            weights = nk / nk.sum()
            lower = float(norm.mean())
            if abs(lower - prev) < tol:
                break
        if best is None or lower > best.lower_bound:
            best = GMM(weights, mean + mono.centre, prec_chol, lower)
    return best


# --- Bayesian GMM (scikit-learn's BayesianGaussianMixture, Dirichlet process, full covariances) --

_SHIFT = np.arange(10.0)


def digamma(x: np.ndarray) -> np.ndarray:
    """The digamma function for x > 0: psi(x) = psi(x + 10) - sum 1/(x + j), j < 10, and the
    asymptotic series at x + 10 (error < 1e-14)."""
    x = np.asarray(x, dtype=np.float64)
    shifted = x + 10.0
    inv2 = 1.0 / (shifted * shifted)
    series = inv2 * (1 / 12 - inv2 * (1 / 120 - inv2 * (1 / 252 - inv2 * (1 / 240 - inv2 * (1 / 132)))))
    return (np.log(shifted) - 0.5 / shifted - series) - (1.0 / (x[..., None] + _SHIFT)).sum(axis=-1)


def _gammaln(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return np.array([math.lgamma(v) for v in x.ravel()]).reshape(x.shape)


class BGMM:
    """The variational posterior of a Dirichlet-process Gaussian mixture (full covariances)."""

    def __init__(self, train: np.ndarray, k: int, concentration: float):
        n, d = train.shape
        self.k, self.d = k, d
        self.concentration = concentration  # weight_concentration_prior
        self.mean_precision_prior = 1.0
        self.mean_prior = train.mean(axis=0)
        self.dof_prior = float(d)
        self.covariance_prior = np.atleast_2d(np.cov(train.T))

    def update(self, nk, xk, sk):
        """The M-step from responsibilities' counts, means and covariances (+ REG_COVAR)."""
        d = self.d
        self.alpha = 1.0 + nk
        self.beta = self.concentration + np.hstack((np.cumsum(nk[::-1])[-2::-1], 0))
        self.mean_precision = self.mean_precision_prior + nk
        self.means = (self.mean_precision_prior * self.mean_prior + nk[:, None] * xk) / self.mean_precision[:, None]
        self.dof = self.dof_prior + nk
        diff = xk - self.mean_prior
        cov = (self.covariance_prior + nk[:, None, None] * sk
               + (nk * self.mean_precision_prior / self.mean_precision)[:, None, None]
               * diff[:, :, None] * diff[:, None, :])
        cov /= self.dof[:, None, None]
        self.prec_chol = _precision_cholesky(cov)
        # Terms of the expected log-density that do not depend on the event.
        dg_sum = digamma(self.alpha + self.beta)
        log_w = digamma(self.alpha) - dg_sum + np.hstack((0, np.cumsum(digamma(self.beta) - dg_sum)[:-1]))
        log_lambda = d * np.log(2.0) + digamma(0.5 * (self.dof - np.arange(d)[:, None])).sum(axis=0)
        self.extra = (-0.5 * d * _LOG_2PI + _log_det_chol(self.prec_chol) - 0.5 * d * np.log(self.dof)
                      + 0.5 * (log_lambda - d / self.mean_precision) + log_w)

    def lower_bound(self, resp: np.ndarray) -> float:
        d = self.d
        log_det = _log_det_chol(self.prec_chol) - 0.5 * d * np.log(self.dof)
        log_wishart = -(self.dof * log_det + self.dof * d * 0.5 * math.log(2.0)
                        + _gammaln(0.5 * (self.dof - np.arange(d)[:, None])).sum(axis=0))
        betaln = _gammaln(self.alpha) + _gammaln(self.beta) - _gammaln(self.alpha + self.beta)
        with np.errstate(divide="ignore", invalid="ignore"):
            ent = np.where(resp > 0, resp * np.log(resp), 0.0).sum()
        return float(-ent - log_wishart.sum() + betaln.sum() - 0.5 * d * np.log(self.mean_precision).sum())

    def log_prob(self, events: Events) -> np.ndarray:
        """k x n weighted log-densities."""
        return events.log_density(self.means - events.centre, self.prec_chol, self.extra)

    def predict(self, x) -> np.ndarray:
        """The most likely component of every event (``Events`` or n x d array)."""
        return _predict(self, x)


def fit_bgmm(train: np.ndarray, k: int, seed: int, max_iter: int = 100, tol: float = 1e-3,
             concentration: float = 0.1) -> BGMM:
    """``BayesianGaussianMixture(n_components=k, covariance_type="full",
    weight_concentration_prior_type="dirichlet_process", weight_concentration_prior=concentration,
    max_iter, tol, n_init=1, reg_covar=REG_COVAR, random_state=seed).fit(train)``."""
    train = np.asarray(train, dtype=np.float64)
    model = BGMM(train, k, concentration)
    mono = Events(train, model.mean_prior)
    reg = REG_COVAR * np.eye(model.d)
    nk, mean, cov = mono.moments(_one_hot(kmeans_labels(mono, k, np.random.RandomState(seed)), k))
    model.update(nk, mean + model.mean_prior, cov + reg)
    lower = -np.inf
    for _ in range(max_iter):
        prev = lower
        _, resp = _normalise(mono.log_density(model.means - model.mean_prior, model.prec_chol, model.extra))
        nk, mean, cov = mono.moments(resp)
        model.update(nk, mean + model.mean_prior, cov + reg)
        lower = model.lower_bound(resp)
        if abs(lower - prev) < tol:
            break
    return model
