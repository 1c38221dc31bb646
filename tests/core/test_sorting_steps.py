"""Features, clustering solutions, metrics and auto-sort on small synthetic electrodes whose truth
is known by construction (independent references: numpy written here, scipy.stats)."""

import numpy as np
import pytest
from scipy import stats

from blechrs.core import Solution, cluster_electrode, compute_features
from blechrs.model import Unit
from blechrs.core import metrics
from blechrs.params import SortParams
from blechrs.schemes import autosort_electrode

FS = 30000.0


def template(width, amp, L=75, peak=30):
    t = np.arange(L) - peak
    trough = -np.exp(-0.5 * (t / (width * 0.4)) ** 2)
    rebound = 0.35 * np.exp(-0.5 * ((t - 2.2 * width) / (width * 0.9)) ** 2)
    return amp * (trough + rebound)


def electrode(units, duration=60.0, noise=8.0, seed=0):
    """Waveforms (uV), times (samples) and true labels for units given as (amp, width, rate)."""
    rng = np.random.default_rng(seed)
    wfs, times, labels = [], [], []
    for k, (amp, width, rate) in enumerate(units):
        n = rng.poisson(rate * duration)
        # refractory spike train: exponential ISIs plus 2.5 ms
        isi = rng.exponential(1.0 / rate, n) + 0.0025
        t = np.cumsum(isi)
        t = t[t < duration]
        jitter = rng.normal(1.0, 0.08, len(t))
        w = jitter[:, None] * template(width, amp)[None, :] + rng.normal(0, noise, (len(t), 75))
        wfs.append(w)
        times.append(np.round(t * FS).astype(np.int64))
        labels.append(np.full(len(t), k))
    w, t, y = np.concatenate(wfs), np.concatenate(times), np.concatenate(labels)
    order = np.argsort(t, kind="stable")
    return w[order].astype(np.float32), t[order], y[order]


def unit_accuracy(true, events_of_unit):
    """Best accuracy tp/(tp+fn+fp) of each true unit over the given event sets."""
    out = []
    for k in np.unique(true):
        best = 0.0
        for ev in events_of_unit:
            tp = np.count_nonzero(true[ev] == k)
            fp = len(ev) - tp
            fn = np.count_nonzero(true == k) - tp
            best = max(best, tp / (tp + fp + fn))
        out.append(best)
    return np.array(out)


def test_features_keep_amplitude():
    p = SortParams()
    w, _, y = electrode([(150, 6, 10), (100, 6, 10)])  # same shape, 1.5x size
    f = compute_features(w, p)
    assert f.shape == (len(w), 5) and f.dtype == np.float64
    # blech_clust's per-waveform z-score makes the two units identical; here they separate.
    amp_col = f[:, 3]
    d = abs(amp_col[y == 0].mean() - amp_col[y == 1].mean()) / np.sqrt(
        (amp_col[y == 0].var() + amp_col[y == 1].var()) / 2)
    assert d > 3
    z = (w - w.mean(1, keepdims=True)) / w.std(1, keepdims=True)
    assert abs(z[y == 0].mean(0) - z[y == 1].mean(0)).max() < 0.2  # the reference loses it


def test_features_match_numpy_pca():
    p = SortParams()
    w, _, _ = electrode([(150, 6, 10), (80, 10, 10)])
    f = compute_features(w, p)
    x = w.astype(np.float64)
    # independent: numpy eigen-decomposition of the covariance
    evals, evecs = np.linalg.eigh(np.cov(x, rowvar=False))
    top = evecs[:, np.argsort(evals)[::-1][:3]]
    proj = (x - x.mean(0)) @ top
    for i in range(3):
        r = np.corrcoef(proj[:, i], f[:, i])[0, 1]
        assert abs(r) > 0.999
    r_amp = np.corrcoef(x[:, p.extract.samples_before], f[:, 3])[0, 1]
    r_energy = np.corrcoef(np.sqrt((x ** 2).mean(1)), f[:, 4])[0, 1]
    assert r_amp > 0.999 and r_energy > 0.999


@pytest.mark.parametrize("n", [0, 1, 2, 3, 5])
def test_quiet_electrodes_never_crash(n):
    p = SortParams()
    w, t, _ = electrode([(120, 6, 10)])
    w, t = w[:n], t[:n]
    f = compute_features(w, p)
    assert f.shape == (n, 5)
    sols = cluster_electrode(f, p)
    assert sorted(sols) == list(range(2, p.cluster.max_clusters + 1)) + [p.cluster.autosort_base_clusters, p.cluster.max_autosort_clusters]
    for number, s in sols.items():
        assert isinstance(s, Solution) and s.number == number
        assert s.labels.dtype == np.int64 and s.labels.shape == (n,)
        assert s.kind == ("bgmm" if number == p.cluster.max_autosort_clusters else "gmm")
    units = autosort_electrode(w, t, f, sols, p, FS, 5.0)
    assert all(isinstance(u, Unit) for u in units)
    assert len(units) == 0  # too few events for a unit


def test_solutions_are_deterministic_and_sized():
    p = SortParams().replace(max_training_events=500)
    w, _, _ = electrode([(150, 6, 20), (90, 10, 15), (60, 4, 10)])
    f = compute_features(w, p)
    a = cluster_electrode(f, p)
    b = cluster_electrode(f, p)
    for k in a:
        np.testing.assert_array_equal(a[k].labels, b[k].labels)
        if a[k].kind == "gmm":
            assert a[k].labels.max() <= k - 1
            assert a[k].labels.min() >= -1


def test_autosort_finds_three_units():
    p = SortParams()
    units = [(160, 6, 20), (100, 11, 12), (70, 5, 8)]
    w, t, y = electrode(units, seed=3)
    f = compute_features(w, p)
    sols = cluster_electrode(f, p)
    choices = autosort_electrode(w, t, f, sols, p, FS, 8.0 * 0.6745)
    assert len(choices) == 3
    events = [np.nonzero(np.isin(sols[c.solution].labels, c.clusters))[0] for c in choices]
    acc = unit_accuracy(y, events)
    assert acc.min() > 0.9, acc
    for c in choices:
        assert c.single_unit and c.unit_type in ("r", "f") and c.reason


def test_autosort_single_unit_is_not_split():
    p = SortParams()
    w, t, y = electrode([(140, 7, 15)], seed=5)
    f = compute_features(w, p)
    sols = cluster_electrode(f, p)
    choices = autosort_electrode(w, t, f, sols, p, FS, 8.0 * 0.6745)
    assert len(choices) == 1
    events = np.nonzero(np.isin(sols[choices[0].solution].labels, choices[0].clusters))[0]
    assert unit_accuracy(y, [events])[0] > 0.95


def test_isi_violations_and_contamination():
    rng = np.random.default_rng(1)
    t = np.sort(rng.choice(60 * 30000, 3000, replace=False))
    v1, v2 = metrics.isi_violations(t, FS)
    isi = np.diff(t) / 30.0
    assert v1 == pytest.approx(100 * np.sum(isi < 1) / len(t))
    assert v2 == pytest.approx(100 * np.sum(isi < 2) / len(t))
    clean = np.arange(0, 60 * 30000, 600)  # 50 Hz, 20 ms apart: no violations
    assert metrics.contamination(clean, FS, 60.0) == 0.0
    # independent Poisson events: violations at the random rate -> contamination ~ 0.5 (max)
    assert metrics.contamination(t, FS, 60.0) > 0.3


def test_chi2_sf_matches_scipy():
    x = np.linspace(0, 40, 81)
    for df in range(1, 9):
        np.testing.assert_allclose(metrics.chi2_sf(x, df), stats.chi2.sf(x, df), rtol=1e-9, atol=1e-12)


def test_isolation_distance_and_l_ratio_reference():
    rng = np.random.default_rng(2)
    a = rng.normal(0, 1, (400, 3))
    b = rng.normal(4, 1, (600, 3))
    f = np.vstack([a, b])
    member = np.arange(1000) < 400
    mu, cov = a.mean(0), np.cov(a, rowvar=False)
    d2 = np.array([(x - mu) @ np.linalg.inv(cov) @ (x - mu) for x in b])
    assert metrics.isolation_distance(f, member) == pytest.approx(np.sort(d2)[399])
    assert metrics.l_ratio(f, member) == pytest.approx(stats.chi2.sf(d2, 3).sum() / 400)


def test_waveform_width_and_snr():
    w = template(6, 100)
    i = 30 + np.argmax(w[30:])
    assert metrics.waveform_width_ms(w, 30, FS) == pytest.approx((i - 30) / 30.0)
    wf = np.stack([template(6, 100), template(6, 50)])
    assert metrics.snr(wf, 10.0) == pytest.approx(np.abs(wf).max(1).mean() / 10.0, rel=1e-9)


def test_cross_refractory_matches_brute_force():
    from blechrs.core.refractory import cross_refractory

    rng = np.random.default_rng(4)
    ta = np.sort(rng.choice(30000 * 20, 800, replace=False))
    tb = np.sort(rng.choice(30000 * 20, 600, replace=False))
    obs, exp = cross_refractory(ta, tb, FS, 20.0)
    dt = np.abs(ta[:, None] - tb[None, :])
    assert obs == np.count_nonzero((dt > 15) & (dt < 60))  # 0.5 ms < |dt| < 2 ms
    assert exp == pytest.approx(800 * 600 * 2 * (60 - 15) / (30000 * 20.0))
    assert 0.5 * exp < obs < 1.5 * exp  # independent trains: as expected


def test_echo_clusters_are_not_units():
    """A large negative unit whose positive rebound re-crosses the threshold after the dead time
    gives a second, positive event per spike: that cluster is a duplicate, not a neuron."""
    p = SortParams()
    w, t, y = electrode([(200, 6, 15)], seed=7)
    rng = np.random.default_rng(8)
    echo_t = t + 25  # 0.83 ms after each spike
    echo_w = (60 * np.exp(-0.5 * ((np.arange(75) - 30) / 4.0) ** 2))[None, :] + rng.normal(0, 8, (len(t), 75))
    W = np.vstack([w, echo_w.astype(np.float32)])
    T = np.concatenate([t, echo_t])
    Y = np.concatenate([y, np.full(len(t), 1)])
    order = np.argsort(T, kind="stable")
    W, T, Y = W[order], T[order], Y[order]
    f = compute_features(W, p)
    sols = cluster_electrode(f, p)
    choices = autosort_electrode(W, T, f, sols, p, FS, 8.0 * 0.6745)
    assert len(choices) == 1
    ev = np.isin(sols[choices[0].solution].labels, choices[0].clusters)
    assert np.mean(Y[ev] == 0) > 0.99 and ev.sum() > 0.95 * np.sum(Y == 0)


def test_threshold_share_of_a_unit_on_the_threshold():
    """A unit whose amplitudes (noise SD 1) centre on the detection threshold, seen only above it,
    has (Phi(1) - 1/2) / (1/2) of its events within 1 SD above it (scipy's normal CDF)."""
    rng = np.random.default_rng(0)
    mad_val, threshold = 8.0 * 0.6745, 4.0
    a = rng.normal(threshold * 8.0, 8.0, 400_000)
    a = a[a >= threshold * 8.0]
    expected = (stats.norm.cdf(1.0) - 0.5) / 0.5
    assert metrics.threshold_share(-a, mad_val, threshold) == pytest.approx(expected, abs=0.005)
    assert metrics.threshold_share(a, mad_val, threshold) == np.count_nonzero(a < 40.0) / len(a)
    assert np.isnan(metrics.threshold_share(a[:0], mad_val, threshold))
    # events below the threshold (a quieter window's, a matched filter's) are left out
    below = np.full(1000, 20.0)
    assert metrics.threshold_share(np.r_[a, below], mad_val, threshold) == metrics.threshold_share(a, mad_val, threshold)
    assert np.isnan(metrics.threshold_share(below, mad_val, threshold))


def background_electrode(seed, duration=60.0, noise=8.0):
    """One neuron far above the detection threshold (4 noise SDs) and three distant neurons whose
    spikes mostly stay below it: only the events whose |extremum| crosses it are seen."""
    rng = np.random.default_rng(seed)
    wfs, times, labels = [], [], []
    for k, (amp, width, rate) in enumerate([(120, 6, 10), (30, 7, 40), (28, 5, 40), (26, 9, 40)]):
        t = np.cumsum(rng.exponential(1.0 / rate, int(rate * duration * 1.5)) + 0.0025)
        t = t[t < duration]
        w = rng.normal(1.0, 0.1, len(t))[:, None] * template(width, amp)[None, :] + rng.normal(0, noise, (len(t), 75))
        seen = np.abs(w[:, 30]) >= 4.0 * noise
        wfs.append(w[seen])
        times.append(np.round(t[seen] * FS).astype(np.int64))
        labels.append(np.full(int(seen.sum()), k))
    w, t, y = np.concatenate(wfs), np.concatenate(times), np.concatenate(labels)
    order = np.argsort(t, kind="stable")
    return w[order].astype(np.float32), t[order], y[order]


@pytest.mark.parametrize("seed", [0, 1])
def test_background_activity_is_not_a_unit(seed):
    """The distant neurons' crossings are the upper tail of activity below the threshold: no unit
    (max_threshold_share); the neuron above it stays whole. Without the tests (max_threshold_share
    and max_multi_threshold_share 1.0) they are kept."""
    w, t, y = background_electrode(seed)
    rejected = []

    def units(share):
        p = SortParams.from_flat(dict(max_threshold_share=share) if share < 1.0 else
                                 dict(max_threshold_share=1.0, max_multi_threshold_share=1.0))
        f = compute_features(w, p)
        sols = cluster_electrode(f, p)
        rejected.clear()
        choices = autosort_electrode(w, t, f, sols, p, FS, 8.0 * 0.6745, rejected=rejected)
        return choices, [np.flatnonzero(np.isin(sols[c.solution].labels, c.clusters)) for c in choices]

    choices, events = units(SortParams().autosort.max_threshold_share)
    assert len(choices) == 1
    # what was not kept says why: the distant neurons' clusters as background
    assert sum("max_threshold_share" in r["reason"] for r in rejected) >= 2
    tp = np.count_nonzero(y[events[0]] == 0)
    assert tp / (len(events[0]) + np.count_nonzero(y == 0) - tp) > 0.95  # the neuron above the threshold
    assert choices[0].metrics["threshold_share"] < 0.05
    choices, _ = units(1.0)
    assert len(choices) >= 3 and sum(c.metrics["threshold_share"] > 0.65 for c in choices) >= 2


def test_multi_unit_at_the_threshold_is_background():
    """A multi-unit with most events within 1 noise SD of the threshold is background hash
    (max_multi_threshold_share); a single unit with the same share is a neuron at the threshold,
    kept up to max_threshold_share. Before the template assignment (``final`` False) the hash
    cluster stays a candidate, so its events are not handed to a neighbour."""
    from blechrs.core.judge_units import why_not_a_unit

    p = SortParams()
    single = dict(n_events=1000, firing_rate=16.0, snr=7.5, threshold_share=0.6, l_ratio=0.0,
                  isi_violations_1ms=0.0, isi_violations_2ms=0.0, contamination=0.0)
    multi = dict(single, isi_violations_2ms=1.5, contamination=0.3)
    assert why_not_a_unit(single, p) is None
    kind, reason = why_not_a_unit(multi, p)
    assert kind == "background" and "max_multi_threshold_share" in reason
    assert why_not_a_unit(multi, p, final=False) is None
    assert why_not_a_unit(dict(multi, threshold_share=0.45), p) is None
    assert why_not_a_unit(multi, p.replace(max_multi_threshold_share=1.0)) is None
