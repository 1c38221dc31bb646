"""Issue 14's unit model against ground truth and brute-force references: the amplitude mixture of
the template assignment (bursting units' smaller later spikes), burst evidence for merges, and the
matched-filter pass's candidates."""

import numpy as np
import pytest
from scipy.signal import butter, lfilter

from blechrs.core.assign_templates import SCALE_GRID, assign_to_templates, fit_scale_weights
from blechrs.core.matched_filter import matched_filter_events
from blechrs.core.merge_units import burst_linked, burst_pairs, merge_same_units

FS = 30000.0
L = 75


def shape():
    t = (np.arange(L) - 30) / FS * 1000.0
    return -np.exp(-0.5 * (t / 0.12) ** 2) + 0.35 * np.exp(-0.5 * ((t - 0.45) / 0.25) ** 2)


def band_noise(rng, n, sd=10.0):
    b, a = butter(2, [300, 3000], btype="bandpass", fs=FS)
    x = lfilter(b, a, rng.standard_normal(n + 1000))[1000:]
    return x * sd / x.std()


def bursting_train(rng, n_bursts, duration_s, decay=0.15, spikes=(2, 5), isi_ms=(3, 8)):
    """(times, scale) of a bursting neuron: every event starts a burst of 2-5 spikes, each
    ``decay`` smaller than the one before."""
    starts = np.sort(rng.choice(np.arange(100, int(duration_s * FS) - 2000, 1500), n_bursts, replace=False))
    t, a = [], []
    for s in starts:
        k = rng.integers(spikes[0], spikes[1] + 1)
        dt = np.concatenate([[0], np.cumsum(rng.uniform(*isi_ms, k - 1) * FS / 1000.0)]).astype(np.int64)
        t.extend(s + dt)
        a.extend((1 - decay) ** np.arange(k))
    return np.asarray(t), np.asarray(a)


def test_scale_weights_recover_a_two_point_amplitude_distribution():
    # whitened events z = a u + noise, a in {0.5, 1.0} (60 / 40 %): the fitted weights' mass sits there
    rng = np.random.default_rng(0)
    d = 20
    u = rng.normal(size=d)
    u *= 12.0 / np.linalg.norm(u)
    a = np.where(rng.random(4000) < 0.6, 0.5, 1.0)
    z = a[:, None] * u[None, :] + rng.normal(size=(4000, d))
    pi = fit_scale_weights(z @ u, np.einsum("ij,ij->i", z, z), float(u @ u))
    near = lambda c: pi[np.abs(SCALE_GRID - c) <= 0.051].sum()  # noqa: E731
    assert near(0.5) == pytest.approx(0.6, abs=0.05)
    assert near(1.0) == pytest.approx(0.4, abs=0.05)
    assert float(pi @ SCALE_GRID) == pytest.approx(a.mean(), abs=0.02)


def test_mixture_model_keeps_a_bursting_units_small_spikes_and_rejects_noise():
    rng = np.random.default_rng(1)
    tpl = shape() * 80.0 / -shape().min()  # 8 x noise
    _, scale = bursting_train(rng, 600, 120.0)
    n = len(scale)
    w_unit = scale[:, None] * tpl[None, :] + band_noise(rng, n * L).reshape(n, L)
    noise = band_noise(rng, 4000 * L).reshape(4000, L)
    noise = np.stack([np.roll(x, 30 - int(np.argmin(x))) for x in noise])
    noise = noise[np.argsort(noise[:, 30])[:600]]  # the deepest: what a 4 x noise threshold keeps
    w = np.concatenate([w_unit, noise])
    truth = np.concatenate([np.zeros(n, int), np.full(len(noise), -1)])
    # the clustering's start: the unit's larger spikes
    start = np.where(np.concatenate([scale, np.zeros(len(noise))]) >= 0.7, 0, -1)
    got = {m: assign_to_templates(w, start, FS, 120.0, amplitude_model=m) for m in ("gaussian", "mixture")}
    recall = {m: np.mean(g[truth == 0] == 0) for m, g in got.items()}
    false = {m: np.count_nonzero(g[truth < 0] == 0) for m, g in got.items()}
    # the small later spikes (scale down to 0.52) are kept by the mixture; noise stays out
    assert recall["mixture"] > 0.97
    assert false["mixture"] <= max(5, false["gaussian"])


def _pairs_brute(t, amp, in_a, lo, hi):
    smaller = larger = 0
    for i in range(len(t)):
        for j in range(len(t)):
            if in_a[i] != in_a[j] and lo < t[j] - t[i] <= hi:
                smaller += amp[j] < amp[i]
                larger += amp[j] >= amp[i]
    return smaller, larger


def test_burst_pairs_match_a_brute_force_count():
    rng = np.random.default_rng(2)
    t = np.sort(rng.integers(0, 30000, 300))
    amp = rng.random(300)
    in_a = rng.random(300) < 0.5
    assert burst_pairs(t, amp, in_a, FS) == _pairs_brute(t, amp, in_a, 0.5 * 30, 20.0 * 30)


def test_burst_evidence_links_a_burst_split_by_size_but_not_two_independent_neurons():
    rng = np.random.default_rng(3)
    t, a = bursting_train(rng, 500, 200.0)
    big = a > 0.8  # what an amplitude split makes of it: first spikes / later spikes
    assert burst_linked(t, a, big, FS, 200.0)
    # two independent neurons of different size firing at 10 and 20 Hz
    ta = np.sort(rng.choice(int(200 * FS), 2000, replace=False))
    tb = np.sort(rng.choice(int(200 * FS), 4000, replace=False))
    t2 = np.concatenate([ta, tb])
    amp2 = np.concatenate([np.full(2000, 1.0), np.full(4000, 0.6)]) + rng.normal(0, 0.05, 6000)
    assert not burst_linked(t2, amp2, np.arange(6000) < 2000, FS, 200.0)


def test_burst_merge_joins_a_bursting_unit_split_by_amplitude():
    rng = np.random.default_rng(4)
    tpl = shape() * 100.0 / -shape().min()
    t, a = bursting_train(rng, 700, 150.0, decay=0.2)
    w = a[:, None] * tpl[None, :] + band_noise(rng, len(a) * L).reshape(len(a), L)
    split = np.where(a > 0.9, 0, 1)  # first spikes / the rest (0.8, 0.64, ...): bimodal together
    plain = merge_same_units(w, split, t, FS, 150.0)
    burst = merge_same_units(w, split, t, FS, 150.0, burst_merge=True)
    assert len(np.unique(plain)) == 2  # amplitudes in two modes: the plain merge keeps them apart
    assert np.all(burst == 0)


def test_burst_merge_joins_later_spikes_whose_shape_changed_but_not_two_neurons():
    """A large bursting neuron's later spikes ride on the after-potential of the spike before: a
    little change of shape that is several noise SDs on a 200 uV unit (whitened d' between the
    amplitude merge's 3 and the burst merge's 6, computed here). They are merged on burst
    evidence; two independent neurons of the same two shapes and sizes are not."""
    from blechrs.core.merge_units import MERGE_MAX_SHAPE_DPRIME, BURST_MAX_SHAPE_DPRIME, shape_dprime
    from blechrs.core.noise_model import mean_waveforms, noise_cholesky, whitening

    rng = np.random.default_rng(6)
    tpl = shape() * 200.0 / -shape().min()  # 20 x noise
    ms = (np.arange(L) - 30) / FS * 1000.0
    after = 14.0 * np.exp(-(ms + 1.0) / 0.6) * (ms > -1.0)  # the previous spike's after-potential
    t, a = bursting_train(rng, 500, 150.0, decay=0.2)
    later = a < 0.9
    w = a[:, None] * tpl[None, :] + later[:, None] * after[None, :] + band_noise(rng, len(a) * L).reshape(len(a), L)
    split = later.astype(np.int64)  # first spikes / later spikes (what the clustering made of them)
    templates = mean_waveforms(w, split, 2)
    wh = whitening(noise_cholesky(w, split, templates))
    d = shape_dprime(templates[1] @ wh, templates[0] @ wh)  # the later spikes' shape at their size
    assert MERGE_MAX_SHAPE_DPRIME < d < BURST_MAX_SHAPE_DPRIME, d
    assert shape_dprime(templates[0] @ wh, templates[1] @ wh) > BURST_MAX_SHAPE_DPRIME  # at the larger size
    assert np.all(merge_same_units(w, split, t, FS, 150.0, burst_merge=True) == 0)
    # the same two shapes and sizes as two independent neurons (Poisson, 5 and 10 Hz): apart
    ta = np.sort(rng.choice(np.arange(100, int(150 * FS) - 100), 750, replace=False))
    tb = np.sort(rng.choice(np.arange(100, int(150 * FS) - 100), 1500, replace=False))
    t2 = np.concatenate([ta, tb])
    lab2 = np.concatenate([np.zeros(len(ta), np.int64), np.ones(len(tb), np.int64)])
    w2 = np.where(lab2[:, None] == 0, tpl[None, :], 0.64 * tpl[None, :] + after[None, :]) \
        + band_noise(rng, len(t2) * L).reshape(len(t2), L)
    order = np.argsort(t2, kind="stable")
    out = merge_same_units(w2[order], lab2[order], t2[order], FS, 150.0, burst_merge=True)
    assert len(np.unique(out)) == 2


def test_matched_filter_finds_spikes_below_the_threshold_and_skips_known_events():
    rng = np.random.default_rng(5)
    n = int(60 * FS)
    x = band_noise(rng, n, sd=10.0)
    tpl = shape() * 45.0 / -shape().min()  # 4.5 x noise: many spikes fall below a 4 x threshold
    spikes = np.sort(rng.choice(np.arange(200, n - 200, 200), 1200, replace=False))
    amp = rng.normal(1.0, 0.08, len(spikes))
    for s, k in zip(spikes, amp):
        x[s - 30:s + 45] += k * tpl
    x = x.astype(np.float32)
    # the "detector": events at the trough where it crosses 4.5 x noise; 4.5 x noise units
    cross = x[spikes] < -45.0
    known = spikes[cross]
    w = np.stack([x[s - 30:s + 45] for s in known])
    t, sub, pol, wv = matched_filter_events(x, known, w, np.zeros(len(known), int), 30, FS, 60.0, 4.0, 15)
    missed = spikes[~cross]
    found = np.abs(t[:, None] - missed[None, :]).min(axis=0) <= 2 if len(t) else np.zeros(len(missed), bool)
    assert found.mean() > 0.8
    assert np.abs(t[:, None] - known[None, :]).min() > 15  # nothing already an event comes back
    assert np.all(pol == -1) and wv.shape == (len(t), L)
    # each spike's window is centred on its trough, as the engine's extraction aligns
    spike = np.abs(t[:, None] - missed[None, :]).min(axis=1) <= 2
    assert np.mean(np.argmin(wv[spike], axis=1) == 30) > 0.95  # (below-threshold spikes: noise may be deeper)
    assert np.all(np.abs(sub - t) <= 1)
