"""Clustering solutions per electrode: GMMs with K = 2..max_clusters and a Dirichlet-process
Bayesian GMM (saved as solution ``max_autosort_clusters``), each as one label per event.

Every fit is seeded (``random_seed``) and trained on at most ``max_training_events`` events drawn
WITHOUT replacement (blech_clust draws with replacement, so duplicated events bias its fits); the
fitted model then labels every event. Quiet electrodes never crash: 0 events give empty labels, and
a solution never asks for more components than there are training events.
"""

from __future__ import annotations

import warnings

import numpy as np

from blechrs.core import mixture
from blechrs.core.features import training_indices
from blechrs.model import Solution
from blechrs.params import SortParams

#: Events the Bayesian GMM is fitted on (a subset of the training events): 1000 events pin down
#: 10 components well (blech_clust fits it on 1000 k-means centroids). Its tolerance is at least
#: 1e-3: the variational bound creeps for hundreds of iterations without changing the labels.
BGMM_TRAINING_EVENTS = 1000

#: The Dirichlet process's concentration (weight_concentration_prior): small, so that unused
#: components get pruned.
BGMM_CONCENTRATION = 0.1

REG_COVAR = mixture.REG_COVAR


def contiguous_labels(labels: np.ndarray) -> np.ndarray:
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


def _sklearn_fit_predict(model, train: np.ndarray, features: np.ndarray) -> np.ndarray:
    """scikit-learn's fit for what the own mixtures cannot fit (a covariance that is not positive
    definite): it regularises or reports it. Imported here only: it costs 2 s per process."""
    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(train)
    return model.predict(features).astype(np.int64)


def cluster_electrode(features: np.ndarray, params: SortParams) -> dict[int, Solution]:
    """All clustering solutions of one electrode, keyed by solution number."""
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"features must be 2-D (events x features), got shape {x.shape}")
    n = len(x)
    seed = int(params.cluster.random_seed)
    max_clusters = int(params.cluster.max_clusters)
    n_bgmm = int(params.cluster.max_autosort_clusters)
    base = int(params.cluster.autosort_base_clusters)
    num_iter = int(params.cluster.num_iter)
    tol = float(params.cluster.thresh)
    restarts = max(1, int(params.cluster.num_restarts))
    sd_cutoff = float(params.cluster.wf_amplitude_sd_cutoff)
    train = x[training_indices(n, int(params.cluster.max_training_events), seed)]

    # distinct training events bound the number of components any fit can have
    enough = max(max_clusters, n_bgmm, base)
    n_distinct = n_distinct_rows(train, enough)
    # Monomials shared by every fit: the training events', and all events' (when they fit in
    # one labelling pass; longer recordings are labelled in passes).
    train_events = mixture.Events(train) if n else None
    x_events = mixture.Events(x) if 0 < n <= mixture.PREDICT_CHUNK else x
    solutions: dict[int, Solution] = {}
    sizes = list(range(2, max_clusters + 1))
    if base > max_clusters and base != n_bgmm:
        sizes.append(base)  # auto-sort's over-clustered start (see core/choose_base_solution.py)
    for k in sizes:
        solutions[k] = Solution(k, _gmm_labels(x, train, k, seed, num_iter, tol, restarts, sd_cutoff, n_distinct,
                                               train_events, x_events), "gmm")
    bgmm_train = train[training_indices(len(train), BGMM_TRAINING_EVENTS, seed + 1)]
    n_distinct_b = n_distinct_rows(bgmm_train, enough)
    solutions[n_bgmm] = Solution(n_bgmm, _bgmm_labels(x, bgmm_train, n_bgmm, seed, num_iter, tol, sd_cutoff,
                                                      n_distinct_b, x_events), "bgmm")
    return solutions


def n_distinct_rows(rows: np.ndarray, enough: int) -> int:
    """The number of distinct rows, or some number >= ``enough`` when there are that many (it is
    only compared with component counts <= enough): counting all rows sorts them, and is needed
    only on degenerate electrodes."""
    if len(rows) == 0:
        return 0
    n = len(np.unique(rows[:4 * enough], axis=0))
    return n if n >= enough else len(np.unique(rows, axis=0))


def _gmm_labels(x, train, k, seed, num_iter, tol, restarts, sd_cutoff, n_distinct, train_events=None,
                x_events=None) -> np.ndarray:
    n = len(x)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    k_eff = min(k, len(train))
    if k_eff <= 1 or n_distinct < k_eff:
        return np.zeros(n, dtype=np.int64)
    try:
        fit_on = train_events if train_events is not None else train
        labels = mixture.fit_gmm(fit_on, k_eff, seed, num_iter, tol, restarts).predict(
            x if x_events is None else x_events)
    except np.linalg.LinAlgError:
        from sklearn.mixture import GaussianMixture

        model = GaussianMixture(n_components=k_eff, covariance_type="full", max_iter=num_iter, tol=tol,
                                n_init=restarts, reg_covar=REG_COVAR, random_state=seed)
        labels = _sklearn_fit_predict(model, train, x)
    return contiguous_labels(mark_outliers(x, labels, sd_cutoff))


def _bgmm_labels(x, train, k, seed, num_iter, tol, sd_cutoff, n_distinct, x_events=None) -> np.ndarray:
    n = len(x)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    k_eff = min(k, len(train))
    if k_eff <= 1 or n_distinct < k_eff:
        return np.zeros(n, dtype=np.int64)
    try:
        labels = mixture.fit_bgmm(train, k_eff, seed, num_iter, max(tol, 1e-3), BGMM_CONCENTRATION).predict(
            x if x_events is None else x_events)
    except np.linalg.LinAlgError:
        from sklearn.mixture import BayesianGaussianMixture

        model = BayesianGaussianMixture(
            n_components=k_eff, covariance_type="full", weight_concentration_prior_type="dirichlet_process",
            weight_concentration_prior=BGMM_CONCENTRATION, max_iter=num_iter, tol=max(tol, 1e-3), n_init=1,
            reg_covar=REG_COVAR, random_state=seed)
        labels = _sklearn_fit_predict(model, train, x)
    return contiguous_labels(mark_outliers(x, labels, sd_cutoff))
