"""The two-Gaussian amplitude EM of core/split_units.py (iterated on a 1024-bin histogram, the
likelihood and parts from every value) against the plain EM over every value, written here."""

import numpy as np
import pytest

from blechrs.core import align_to_template, split_units


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
    return bic1 - bic2, part, mu[low] - split_units.SPLIT_CLEAR_SDS * np.sqrt(var[low]), ashman_d


@pytest.mark.parametrize("seed,shape", [(0, "bimodal"), (1, "unimodal"), (2, "skewed"), (3, "small")])
def test_bic_gain_of_two_matches_the_plain_form(seed, shape):
    rng = np.random.default_rng(seed)
    a = {"bimodal": lambda: np.concatenate([rng.normal(1.0, 0.1, 3000), rng.normal(1.6, 0.15, 900)]),
         "unimodal": lambda: rng.normal(1.0, 0.2, 5000),
         "skewed": lambda: rng.gamma(3.0, 0.3, 4000),
         "small": lambda: rng.normal(1.0, 0.2, 60)}[shape]()
    gain, part, edge, separation = split_units.bic_gain_of_two(a)
    ref_gain, ref_part, ref_edge, ref_separation = _reference(a)
    # binning moves the fit by far less than the split tests' margins (BIC gain 10, D 2)
    assert separation == pytest.approx(ref_separation, abs=0.02)
    assert gain == pytest.approx(ref_gain, rel=1e-3, abs=0.05)
    assert edge == pytest.approx(ref_edge, abs=0.01 * a.std())
    assert np.mean(part == ref_part) > 0.99


def _catmull_rom(x, shift):
    """Rows of x resampled at i + shift by the Catmull-Rom cubic, one sample at a time (edges
    held), written out from the textbook form."""
    n = x.shape[1]
    out = np.empty_like(x)
    for i in range(n):
        pos = i + shift
        b = int(np.floor(pos))
        f = pos - b
        p = [x[:, min(max(b + k, 0), n - 1)] for k in (-1, 0, 1, 2)]
        out[:, i] = 0.5 * ((2 * p[1]) + (-p[0] + p[2]) * f + (2 * p[0] - 5 * p[1] + 4 * p[2] - p[3]) * f ** 2
                           + (-p[0] + 3 * p[1] - 3 * p[2] + p[3]) * f ** 3)
    return out


def _misaligned_events(seed):
    """A template (trough at 30) and 300 noisy, scaled events of it resampled at true_shift
    (uniform within +-0.9 sample): (template, true_shift, events)."""
    rng = np.random.default_rng(seed)
    t = np.arange(75)
    template = -80 * np.exp(-((t - 30) / 3.0) ** 2) + 25 * np.exp(-((t - 40) / 6.0) ** 2)
    true_shift = rng.uniform(-0.9, 0.9, 300)
    w = np.stack([_catmull_rom(template[None, :], s)[0] for s in true_shift]) * rng.uniform(0.8, 1.2, (300, 1))
    return template, true_shift, w + rng.normal(0, 2.0, w.shape)


@pytest.mark.parametrize("seed", [0, 1])
def test_aligned_residuals_match_a_per_shift_search(seed):
    """The shape test's residuals (stacked resampling matrices, the template moved to each event)
    equal a plain search, written here: for every shift of REALIGN_SHIFTS the template resampled
    by the textbook Catmull-Rom cubic, scaled by least squares on the samples around the extremum;
    the event minus the best-fitting moved template."""
    template, true_shift, w = _misaligned_events(seed)
    got = align_to_template.aligned_residuals(w, template, 30)
    lo, hi = 30 - align_to_template.REALIGN_HALF_WIDTH, 30 + align_to_template.REALIGN_HALF_WIDTH
    moved = [_catmull_rom(template[None, :], -s)[0] for s in align_to_template.REALIGN_SHIFTS]
    dist = []
    for m in moved:
        part = m[lo:hi]
        scale = w[:, lo:hi] @ part / (part @ part)
        dist.append(((w[:, lo:hi] - np.outer(scale, part)) ** 2).sum(axis=1))
    best = np.argmin(np.stack(dist, axis=1), axis=1)
    want = w - np.stack([moved[j] for j in best])
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-8)
    # the chosen shift undoes the misalignment the events were given, to one step of the grid
    shifts = np.asarray(align_to_template.REALIGN_SHIFTS)[best]
    assert np.mean(np.abs(shifts + true_shift) <= 1 / 8 + 1e-9) > 0.9


@pytest.mark.parametrize("seed", [0, 1])
def test_realign_matches_a_per_shift_search(seed):
    """The re-alignment's stacked resampling matrices choose, for every event, the shift a plain
    search over REALIGN_SHIFTS chooses (least squared residual after scaling the template), and
    shift the whole event by it."""
    template, true_shift, w = _misaligned_events(seed)
    got = align_to_template.realign(w, template, 30)
    lo, hi = 30 - align_to_template.REALIGN_HALF_WIDTH, 30 + align_to_template.REALIGN_HALF_WIDTH
    tt = template[lo:hi] @ template[lo:hi]
    dist = []
    for s in align_to_template.REALIGN_SHIFTS:
        ws = _catmull_rom(w, s)[:, lo:hi]
        resid = ws - np.outer(ws @ template[lo:hi] / tt, template[lo:hi])
        dist.append((resid ** 2).sum(axis=1))
    best = np.asarray(align_to_template.REALIGN_SHIFTS)[np.argmin(np.stack(dist, axis=1), axis=1)]
    want = np.stack([_catmull_rom(w[i:i + 1], best[i])[0] for i in range(len(w))])
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-9)
    # and the search undoes the misalignment it was given, to within one step of its grid
    assert np.mean(np.abs(best + true_shift) <= 1 / 8 + 1e-9) > 0.9
