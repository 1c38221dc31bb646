"""The vectorised EM of blechrs.core.cluster against scikit-learn's GaussianMixture (the reference
it re-implements), and the vectorised echo / L-ratio helpers against plain loops."""

import math

import numpy as np
import pytest
from scipy.stats import chi2
from sklearn.mixture import GaussianMixture

from blechrs.core import autosort, cluster, metrics


def _blobs(seed, n=3000, d=5, k=4):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 3, size=(k, d))
    labels = rng.integers(0, k, size=n)
    a = rng.normal(size=(k, d, d)) * 0.4 + np.eye(d)
    return centres[labels] + np.einsum("nd,nde->ne", rng.normal(size=(n, d)), a[labels])


@pytest.mark.parametrize("seed,k,restarts", [(0, 2, 1), (1, 4, 1), (2, 7, 1), (3, 5, 3)])
def test_fast_gmm_matches_sklearn(seed, k, restarts):
    x = _blobs(seed)
    train = x[::2]
    ref = GaussianMixture(n_components=k, covariance_type="full", max_iter=1000, tol=1e-3, n_init=restarts,
                          reg_covar=cluster.REG_COVAR, random_state=seed).fit(train).predict(x)
    got = cluster._fast_gmm_labels(x, train, k, seed, 1000, 1e-3, restarts)
    assert np.mean(ref == got) > 0.999


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
    assert autosort.echo_fraction(times, amplitude, member, window) == pytest.approx(np.mean(expected))


@pytest.mark.parametrize("df", [4, 5])
def test_chi2_sf_matches_scipy(df):
    x = np.linspace(0, 80, 500)
    np.testing.assert_allclose(metrics.chi2_sf(x, df), chi2.sf(x, df), rtol=1e-9, atol=1e-300)
