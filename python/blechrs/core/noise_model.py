"""The electrode's noise model for the template steps: its covariance across the window.

Background noise is ``N(0, C)``; ``C`` comes from the residuals of the unit events around their
templates and is stationary (a function of the lag only). The template steps whiten with it
(``whitening``): in whitened space the noise is white and distances are in noise SDs.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading

import numpy as np

from blechrs.core.rows import mean_rows, rows

#: Ridge added to the noise covariance, as a fraction of its mean variance: the band-passed noise
#: has almost no power near Nyquist, and whitening must not blow those components up.
RIDGE = 1e-2
#: Residual events (evenly spaced) the noise covariance is estimated from, at most: each of its
#: lags averages ~window x this many products.
NOISE_EVENTS = 4000


def mean_waveforms(w: np.ndarray, labels: np.ndarray, n_units: int) -> np.ndarray:
    """Mean waveform of each unit 0..n_units-1 (zeros for a unit without events)."""
    out = np.zeros((n_units, w.shape[1]))
    for k in range(n_units):
        member = labels == k
        if member.any():
            out[k] = mean_rows(w, member)
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
    wm = rows(w, m)
    scale = np.einsum("ij,ij->i", wm, t) / np.maximum(np.einsum("ij,ij->i", t, t), 1e-12)
    c = np.cov(wm - scale[:, None] * t, rowvar=False)
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
def one_noise_model_per_assignment():
    """Within the block, the noise covariance of an assignment is estimated once: the steps of
    the auto-sort scheme's refinement often ask again for an assignment nothing has changed."""
    outer = getattr(_models, "cache", None)
    _models.cache = {} if outer is None else outer
    try:
        yield
    finally:
        _models.cache = outer


def noise_cholesky(w: np.ndarray, labels: np.ndarray, templates: np.ndarray) -> np.ndarray:
    """Lower-triangular L with C = L L^T (see _whitener), remembered per (events, assignment)
    inside one_noise_model_per_assignment (the templates follow from both)."""
    cache = getattr(_models, "cache", None)
    if cache is None:
        return _whitener(w, labels, templates)
    key = (id(w), w.shape, hashlib.sha1(np.ascontiguousarray(labels, dtype=np.int64).tobytes()).digest())
    if key not in cache:
        cache[key] = _whitener(w, labels, templates)
    return cache[key]


def whitening(l: np.ndarray) -> np.ndarray:
    """W = L^-T, so that a row x is whitened as x @ W (= L^-1 x): one matrix product for all
    events instead of a solve per call."""
    return np.linalg.inv(l).T
