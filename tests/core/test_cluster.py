"""The mixtures of blechrs.core.mixture against scikit-learn's KMeans, GaussianMixture and
BayesianGaussianMixture (the references they re-implement), digamma against scipy, and the
vectorised echo / L-ratio helpers against plain loops."""

import math

import numpy as np

from blechrs.params import SortParams
import pytest
from scipy.special import digamma
from scipy.stats import chi2
from sklearn.cluster import KMeans
from sklearn.mixture import BayesianGaussianMixture, GaussianMixture

from blechrs.core import cluster, echoes, metrics, mixture


def _blobs(seed, n=3000, d=5, k=4):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 3, size=(k, d))
    labels = rng.integers(0, k, size=n)
    a = rng.normal(size=(k, d, d)) * 0.4 + np.eye(d)
    return centres[labels] + np.einsum("nd,nde->ne", rng.normal(size=(n, d)), a[labels])


@pytest.mark.parametrize("seed,k", [(0, 2), (1, 4), (2, 7), (3, 10), (4, 3)])
def test_kmeans_matches_sklearn(seed, k):
    # Same seeding draws and Lloyd updates: the same labels, not just an equally good clustering.
    x = _blobs(seed, k=5)
    ref = KMeans(n_clusters=k, n_init=1, random_state=np.random.RandomState(seed)).fit(x).labels_
    got = mixture.kmeans_labels(x, k, np.random.RandomState(seed))
    assert np.mean(ref == got) > 0.999


@pytest.mark.parametrize("seed,k,restarts", [(0, 2, 1), (1, 4, 1), (2, 7, 1), (3, 5, 3)])
def test_gmm_matches_sklearn(seed, k, restarts):
    x = _blobs(seed)
    train = x[::2]
    ref_model = GaussianMixture(n_components=k, covariance_type="full", max_iter=1000, tol=1e-3, n_init=restarts,
                                reg_covar=mixture.REG_COVAR, random_state=seed).fit(train)
    got = mixture.fit_gmm(train, k, seed, 1000, 1e-3, restarts)
    assert np.mean(ref_model.predict(x) == got.predict(x)) > 0.999
    assert got.lower_bound == pytest.approx(ref_model.lower_bound_, abs=1e-7)


def test_gmm_em_matches_sklearn_from_the_same_start():
    # The EM alone, independent of the initialisation: scikit-learn started from the parameters
    # our first M-step produced (its k-means labels) must reach the same fit.
    x = _blobs(11, k=6)
    k = 6
    labels = mixture.kmeans_labels(x, k, np.random.RandomState(0))
    resp = np.eye(k)[labels]
    nk = resp.sum(axis=0)
    means = resp.T @ x / nk[:, None]
    cov = np.stack([np.cov(x[labels == j].T, bias=True) + mixture.REG_COVAR * np.eye(x.shape[1])
                    for j in range(k)])
    ref = GaussianMixture(n_components=k, covariance_type="full", max_iter=1000, tol=1e-6,
                          reg_covar=mixture.REG_COVAR, weights_init=nk / len(x), means_init=means,
                          precisions_init=np.linalg.inv(cov), random_state=0).fit(x)
    got = mixture.fit_gmm(x, k, 0, 1000, 1e-6, 1)
    np.testing.assert_allclose(np.sort(got.weights), np.sort(ref.weights_), atol=1e-6)
    assert np.mean(ref.predict(x) == got.predict(x)) > 0.999


@pytest.mark.parametrize("seed,k", [(0, 10), (1, 4), (2, 7), (5, 10)])
def test_bgmm_matches_sklearn(seed, k):
    x = _blobs(seed, k=4)
    train = x[:1000]
    ref = BayesianGaussianMixture(
        n_components=k, covariance_type="full", weight_concentration_prior_type="dirichlet_process",
        weight_concentration_prior=0.1, max_iter=1000, tol=1e-3, reg_covar=mixture.REG_COVAR,
        random_state=seed).fit(train)
    got = mixture.fit_bgmm(train, k, seed, 1000, 1e-3, 0.1)
    np.testing.assert_allclose(got.means, ref.means_, atol=1e-6)  # float32 responsibilities
    np.testing.assert_allclose(got.dof, ref.degrees_of_freedom_, rtol=1e-6)
    assert np.mean(ref.predict(x) == got.predict(x)) > 0.999


def test_digamma_matches_scipy():
    x = np.concatenate([np.geomspace(1e-3, 1e4, 400), np.arange(1, 30) * 0.5])
    np.testing.assert_allclose(mixture.digamma(x), digamma(x), rtol=1e-12, atol=1e-12)


def test_cluster_electrode_gmm_solutions_match_sklearn():
    # The solutions of cluster_electrode (own mixtures) against scikit-learn fitted the same way.
    x = _blobs(7, n=4000, k=3)
    params = SortParams().replace(max_clusters=4, autosort_base_clusters=4, num_restarts=1, thresh=1e-4,
                                  max_training_events=2000, random_seed=3, wf_amplitude_sd_cutoff=0)
    sols = cluster.cluster_electrode(x, params)
    from blechrs.core.features import training_indices
    train = x[training_indices(len(x), 2000, 3)]
    for k in (2, 3, 4):
        ref = GaussianMixture(n_components=k, covariance_type="full", max_iter=1000, tol=1e-4,
                              reg_covar=mixture.REG_COVAR, random_state=3).fit(train).predict(x)
        ref = cluster.contiguous_labels(ref)
        assert np.mean(sols[k].labels == ref) > 0.999


def test_echo_fraction_matches_loop():
    rng = np.random.default_rng(5)
    times = np.sort(rng.integers(0, 200000, size=4000))
    amplitude = rng.normal(0, 50, size=len(times))
    member = rng.random(len(times)) < 0.3
    window = 45.0
    expected = []
    for t, a in zip(times[member], amplitude[member]):
        near = (~member) & (np.abs(times - t) <= window)
        expected.append(bool(near.any() and np.abs(amplitude[near]).max() > abs(a)))
    assert echoes.echo_fraction(times, amplitude, member, window) == pytest.approx(np.mean(expected))


@pytest.mark.parametrize("df", [4, 5])
def test_chi2_sf_matches_scipy(df):
    x = np.linspace(0, 80, 500)
    np.testing.assert_allclose(metrics.chi2_sf(x, df), chi2.sf(x, df), rtol=1e-9, atol=1e-300)


def test_predict_in_chunks_matches_sklearn(monkeypatch):
    # Labelling all events in bounded passes gives scikit-learn's labels for the same fit.
    x = _blobs(12, n=5000, k=5)
    ref = GaussianMixture(n_components=5, covariance_type="full", max_iter=1000, tol=1e-3,
                          reg_covar=mixture.REG_COVAR, random_state=4).fit(x[:3000])
    monkeypatch.setattr(mixture, "PREDICT_CHUNK", 777)
    got = mixture.fit_gmm(x[:3000], 5, 4, 1000, 1e-3).predict(x)
    assert np.mean(got == ref.predict(x)) > 0.999


def test_distinct_row_count_is_exact_below_the_component_counts():
    rng = np.random.default_rng(3)
    few = np.repeat(rng.normal(size=(4, 5)), 500, axis=0)[rng.permutation(2000)]
    assert cluster.n_distinct_rows(few, 10) == 4  # exact when fewer than 10: fits are skipped
    many = rng.normal(size=(2000, 5))
    assert cluster.n_distinct_rows(many, 10) >= 10
    assert cluster.n_distinct_rows(many[:0], 10) == 0
    # An electrode with 4 distinct events: no solution asks for more than 4 components.
    sols = cluster.cluster_electrode(few, SortParams().replace(max_clusters=7, autosort_base_clusters=7, num_restarts=1))
    assert all(s.labels.max() < 4 for s in sols.values())
