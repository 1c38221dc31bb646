"""The vectorised two-Gaussian amplitude EM of core/templates.py against the plain n x 2 form
(written here: the reference it re-arranges)."""

import numpy as np
import pytest

from blechrs.core import templates


def _reference(a, n_iter=200):
    n = len(a)
    v = float(a.var())
    bic1 = n * (np.log(2 * np.pi * v) + 1.0) + 2.0 * np.log(n)
    mu = np.quantile(a, [0.25, 0.75])
    var = np.full(2, v / 4.0)
    pi = np.array([0.5, 0.5])
    prev = -np.inf
    for _ in range(n_iter):
        lp = np.log(pi) - 0.5 * np.log(2 * np.pi * var) - 0.5 * (a[:, None] - mu) ** 2 / var
        top = lp.max(axis=1, keepdims=True)
        r = np.exp(lp - top)
        tot = r.sum(axis=1, keepdims=True)
        r /= tot
        ll = float((top[:, 0] + np.log(tot[:, 0])).sum())
        nk = r.sum(axis=0) + 1e-12
        pi = nk / n
        mu = (r * a[:, None]).sum(axis=0) / nk
        var = np.maximum((r * (a[:, None] - mu) ** 2).sum(axis=0) / nk, 1e-6 * v)
        if ll - prev < 1e-8 * abs(ll):
            break
        prev = ll
    part = np.argmax(r, axis=1)
    low = int(np.argmin(mu))
    if low == 1:
        part = 1 - part
    bic2 = -2.0 * ll + 5.0 * np.log(n)
    ashman_d = abs(mu[1] - mu[0]) * np.sqrt(2.0 / (var[0] + var[1]))
    return bic1 - bic2, part, mu[low] - templates.SPLIT_CLEAR_SDS * np.sqrt(var[low]), ashman_d


@pytest.mark.parametrize("seed,shape", [(0, "bimodal"), (1, "unimodal"), (2, "skewed"), (3, "small")])
def test_bic_gain_of_two_matches_the_plain_form(seed, shape):
    rng = np.random.default_rng(seed)
    a = {"bimodal": lambda: np.concatenate([rng.normal(1.0, 0.1, 3000), rng.normal(1.6, 0.15, 900)]),
         "unimodal": lambda: rng.normal(1.0, 0.2, 5000),
         "skewed": lambda: rng.gamma(3.0, 0.3, 4000),
         "small": lambda: rng.normal(1.0, 0.2, 60)}[shape]()
    gain, part, edge, separation = templates._bic_gain_of_two(a)
    ref_gain, ref_part, ref_edge, ref_separation = _reference(a)
    assert separation == pytest.approx(ref_separation, rel=1e-7)
    assert gain == pytest.approx(ref_gain, rel=1e-7, abs=1e-6)
    assert edge == pytest.approx(ref_edge, rel=1e-7, abs=1e-9)
    assert np.mean(part == ref_part) > 0.999
