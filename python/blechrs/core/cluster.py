"""Clustering solutions per electrode: GMMs with K = 2..max_clusters and a Dirichlet-process
Bayesian GMM (saved as solution ``max_autosort_clusters``), each as one label per event.

Every fit is seeded (``random_seed``) and trained on at most ``max_training_events`` events drawn
WITHOUT replacement (blech_clust draws with replacement, so duplicated events bias its fits); the
fitted model then labels every event. Quiet electrodes never crash: 0 events give empty labels, and
a solution never asks for more components than there are training events.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import BayesianGaussianMixture, GaussianMixture

from blechrs.core.features import _get, training_indices

#: Events the Bayesian GMM is fitted on (a subset of the training events): its variational fit
#: is ~10x slower per event than a GMM's, and 2000 events pin down 10 components well (blech_clust
#: fits it on 1000 k-means centroids for the same reason). Its tolerance is at least 1e-3: the
#: variational bound creeps for hundreds of iterations without changing the labels.
BGMM_TRAINING_EVENTS = 1000

#: Small diagonal added to every covariance: features are of order one, this only keeps
#: covariances of tiny or flat clusters invertible.
REG_COVAR = 1e-4


@dataclass
class Solution:
    number: int
    """Solution number: K for a GMM, ``max_autosort_clusters`` for the Bayesian GMM."""
    labels: np.ndarray
    """int64, one per event, 0..k-1; -1 = outlier (amplitude beyond wf_amplitude_sd_cutoff SD)."""
    kind: str
    """'gmm', 'bgmm' or 'templates' (auto-sort's template assignment, core/templates.py)."""

    @property
    def n_clusters(self) -> int:
        return int(self.labels.max()) + 1 if self.labels.size and self.labels.max() >= 0 else 0


def _contiguous(labels: np.ndarray) -> np.ndarray:
    """Renumber labels 0..k-1 in order of first cluster size (largest first), keeping -1."""
    out = np.full(labels.shape, -1, dtype=np.int64)
    ids, counts = np.unique(labels[labels >= 0], return_counts=True)
    order = ids[np.lexsort((ids, -counts))]
    for new, old in enumerate(order):
        out[labels == old] = new
    return out


def mark_outliers(features: np.ndarray, labels: np.ndarray, sd_cutoff: float) -> np.ndarray:
    """Label -1 the events whose amplitude (feature column -2) lies more than ``sd_cutoff`` SD
    from their cluster's mean amplitude (blech_clust's post-fit step, both sides)."""
    labels = labels.copy()
    if sd_cutoff is None or sd_cutoff <= 0 or len(labels) == 0:
        return labels
    amp = features[:, -2]
    for c in np.unique(labels[labels >= 0]):
        idx = np.nonzero(labels == c)[0]
        if len(idx) < 10:
            continue
        a = amp[idx]
        sd = a.std()
        if sd > 0:
            labels[idx[np.abs(a - a.mean()) > sd_cutoff * sd]] = -1
    return labels


def _fit_predict(model, train: np.ndarray, features: np.ndarray) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(train)
    return model.predict(features).astype(np.int64)


def cluster_electrode(features: np.ndarray, params=None) -> dict[int, Solution]:
    """All clustering solutions of one electrode, keyed by solution number."""
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"features must be 2-D (events x features), got shape {x.shape}")
    n = len(x)
    seed = int(_get(params, "random_seed", 0))
    max_clusters = int(_get(params, "max_clusters", 7))
    n_bgmm = int(_get(params, "max_autosort_clusters", 10))
    num_iter = int(_get(params, "num_iter", 1000))
    tol = float(_get(params, "thresh", 1e-4))
    restarts = max(1, int(_get(params, "num_restarts", 10)))
    sd_cutoff = float(_get(params, "wf_amplitude_sd_cutoff", 3.0))
    train = x[training_indices(n, int(_get(params, "max_training_events", 10000)), seed)]

    # distinct training events bound the number of components any fit can have
    n_distinct = len(np.unique(train, axis=0)) if len(train) else 0
    solutions: dict[int, Solution] = {}
    for k in range(2, max_clusters + 1):
        solutions[k] = Solution(k, _gmm_labels(x, train, k, seed, num_iter, tol, restarts, sd_cutoff, n_distinct),
                                "gmm")
    bgmm_train = train[training_indices(len(train), BGMM_TRAINING_EVENTS, seed + 1)]
    n_distinct_b = len(np.unique(bgmm_train, axis=0)) if len(bgmm_train) else 0
    solutions[n_bgmm] = Solution(n_bgmm, _bgmm_labels(x, bgmm_train, n_bgmm, seed, num_iter, tol, sd_cutoff,
                                                      n_distinct_b), "bgmm")
    return solutions


def _gmm_labels(x, train, k, seed, num_iter, tol, restarts, sd_cutoff, n_distinct) -> np.ndarray:
    n = len(x)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    k_eff = min(k, len(train))
    if k_eff <= 1 or n_distinct < k_eff:
        return np.zeros(n, dtype=np.int64)
    try:
        labels = _fast_gmm_labels(x, train, k_eff, seed, num_iter, tol, restarts)
    except np.linalg.LinAlgError:
        # A degenerate covariance: let scikit-learn handle (and report) it.
        model = GaussianMixture(n_components=k_eff, covariance_type="full", max_iter=num_iter, tol=tol,
                                n_init=restarts, reg_covar=REG_COVAR, random_state=seed)
        labels = _fit_predict(model, train, x)
    return _contiguous(mark_outliers(x, labels, sd_cutoff))


# --- full-covariance EM ---------------------------------------------------------------------------
# The same algorithm as scikit-learn's GaussianMixture(covariance_type="full", init_params="kmeans")
# (same k-means initialisation and random stream, same updates, same stopping rule), with the
# E-step vectorised over components: scikit-learn's per-component Python loop and input checks
# cost ~5x the arithmetic on electrodes' 5-feature data. Labels agree with scikit-learn's
# (tests/test_speed_cluster.py).

def _gaussian_parameters(x, resp):
    nk = resp.sum(axis=0) + 10 * np.finfo(resp.dtype).eps
    means = (resp.T @ x) / nk[:, None]
    d = x.shape[1]
    cov = np.empty((len(nk), d, d))
    for k in range(len(nk)):
        diff = x - means[k]
        cov[k] = (resp[:, k] * diff.T) @ diff / nk[k]
        cov[k].flat[:: d + 1] += REG_COVAR
    chol = np.linalg.cholesky(cov)
    prec_chol = np.swapaxes(np.linalg.solve(chol, np.broadcast_to(np.eye(d), cov.shape)), 1, 2)
    return nk, means, prec_chol


def _weighted_log_prob(x, weights, means, prec_chol):
    n, d = x.shape
    k = len(means)
    log_det = np.log(np.diagonal(prec_chol, axis1=1, axis2=2)).sum(axis=1)
    # y[:, k, :] = x @ P_k - mu_k @ P_k, as one matrix product for all components.
    p = np.transpose(prec_chol, (1, 0, 2)).reshape(d, k * d)
    y = (x @ p).reshape(n, k, d) - np.einsum("kd,kde->ke", means, prec_chol)[None]
    sq = np.einsum("nke,nke->nk", y, y)
    return -0.5 * (d * np.log(2 * np.pi) + sq) + log_det + np.log(weights)


def _fast_gmm_labels(x, train, k, seed, max_iter, tol, restarts) -> np.ndarray:
    from sklearn.cluster import KMeans

    n = len(train)
    rs = np.random.RandomState(seed)
    best = None
    for _ in range(restarts):
        resp = np.zeros((n, k))
        resp[np.arange(n), KMeans(n_clusters=k, n_init=1, random_state=rs).fit(train).labels_] = 1
        nk, means, prec_chol = _gaussian_parameters(train, resp)
        weights = nk / n
        lower = -np.inf
        for _ in range(max_iter):
            prev = lower
            wlp = _weighted_log_prob(train, weights, means, prec_chol)
            top = wlp.max(axis=1, keepdims=True)
            norm = top[:, 0] + np.log(np.exp(wlp - top).sum(axis=1))
            resp = np.exp(wlp - norm[:, None])
            nk, means, prec_chol = _gaussian_parameters(train, resp)
            weights = nk / nk.sum()
            lower = float(norm.mean())
            if abs(lower - prev) < tol:
                break
        if best is None or lower > best[0]:
            best = (lower, weights, means, prec_chol)
    _, weights, means, prec_chol = best
    return np.argmax(_weighted_log_prob(x, weights, means, prec_chol), axis=1).astype(np.int64)


def _bgmm_labels(x, train, k, seed, num_iter, tol, sd_cutoff, n_distinct) -> np.ndarray:
    n = len(x)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    k_eff = min(k, len(train))
    if k_eff <= 1 or n_distinct < k_eff:
        return np.zeros(n, dtype=np.int64)
    model = BayesianGaussianMixture(
        n_components=k_eff, covariance_type="full", weight_concentration_prior_type="dirichlet_process",
        weight_concentration_prior=0.1, max_iter=num_iter, tol=max(tol, 1e-3), n_init=1, reg_covar=REG_COVAR,
        random_state=seed)
    labels = _fit_predict(model, train, x)
    return _contiguous(mark_outliers(x, labels, sd_cutoff))
