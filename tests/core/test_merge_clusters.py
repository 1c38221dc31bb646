"""core.merge_clusters against known truth, on features and spike times built here: the clusters
one neuron was cut into are merged back; two neurons bridged by small clusters between them (a
bursting neuron's later, smaller spikes reaching its neighbour's size) are not chained into one."""

import numpy as np
import pytest

from blechrs.core.merge_clusters import merge_clusters

FS = 30000.0
DURATION_S = 120.0
MAX_DPRIME, MIN_VALLEY = 3.5, 0.5  # auto-sort's defaults (autosort_merge_dprime, autosort_merge_valley)


def neuron_times(rng, rate_hz, refractory_ms=2.5):
    """Sample indices of a neuron firing at ``rate_hz`` with a refractory period."""
    isi = rng.exponential(1.0 / rate_hz, int(rate_hz * DURATION_S * 1.5)) + refractory_ms / 1000.0
    t = np.cumsum(isi)
    return np.round(t[t < DURATION_S] * FS).astype(np.int64)


def groups_of(labels_true, groups):
    """The group holding each true source's events (a source split over groups: -1)."""
    where = {c: g for g, members in enumerate(groups) for c in members}
    return where


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_one_neuron_cut_in_four_is_merged(seed):
    rng = np.random.default_rng(seed)
    for rate in (17.0, 3.0):  # with and without enough events for refractory evidence
        t = neuron_times(rng, rate)
        f = rng.normal(size=(len(t), 3))
        labels = np.digitize(f[:, 0], [-1.0, 0.0, 1.0])  # cut along its noise
        groups = merge_clusters(f, t, labels, FS, MAX_DPRIME, MIN_VALLEY, DURATION_S)
        assert groups == [[0, 1, 2, 3]], (rate, groups)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_two_neurons_bridged_by_burst_tails_stay_apart(seed):
    rng = np.random.default_rng(seed)
    ta, tb = neuron_times(rng, 15.0), neuron_times(rng, 5.0)
    # the larger neuron bursts: its later spikes, 5 and 10 ms after, smaller and smaller, bridge
    # the features between the two neurons
    tail1, tail2 = tb[rng.random(len(tb)) < 0.3] + int(0.005 * FS), tb[rng.random(len(tb)) < 0.3] + int(0.010 * FS)
    t = np.concatenate([ta, tb, tail1, tail2])
    src = np.repeat([0, 1, 2, 3], [len(ta), len(tb), len(tail1), len(tail2)])
    centre = np.array([0.0, 6.0, 4.2, 2.2])[src]
    f = rng.normal(size=(len(t), 3))
    f[:, 0] += centre
    # on one wire, spikes of two neurons closer than ~1 ms are mostly lost to detection
    order = np.argsort(t, kind="stable")
    t, src, f = t[order], src[order], f[order]
    close = np.zeros(len(t), dtype=bool)
    near = np.diff(t) < 0.002 * FS
    close[1:] |= near & (src[1:] != src[:-1]) & (rng.random(len(near)) < 0.8)
    t, src, f = t[~close], src[~close], f[~close]
    groups = merge_clusters(f, t, src, FS, MAX_DPRIME, MIN_VALLEY, DURATION_S)
    where = groups_of(src, groups)
    assert where[0] != where[1], groups  # the two neurons are never one unit
