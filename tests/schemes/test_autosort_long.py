"""Auto-sort of an electrode with more events than ``max_refine_events``: the refinement works on
stretches of consecutive events and every other event is assigned to its units a chunk at a time.
Judged against ground truth (simulated units, one drifting, and noise crossings), beside the same
sort refined on every event; and the stretches' arithmetic against numpy."""

import dataclasses

import numpy as np
import pytest
from scipy.signal import butter, lfilter

from blechrs.core.assign_templates import assign_to_templates, assign_with_model
from blechrs.core.cluster import cluster_electrode
from blechrs.core.features import compute_features
from blechrs.params import SortParams
from blechrs.schemes.autosort import REFINE_STRETCHES, TEMPLATE_SOLUTION, autosort_electrode, refinement_events
from support.accuracy_reference import accuracy_per_unit

FS = 30000.0
L = 75
SD = 10.0


def _noise(rng, n):
    b, a = butter(2, [300, 3000], btype="bandpass", fs=FS)
    x = lfilter(b, a, rng.standard_normal(n * L + 1000))[1000:]
    return (x * SD / x.std()).reshape(n, L)


def _shape(width):
    t = (np.arange(L) - 30) / FS * 1000.0
    s = -np.exp(-0.5 * (t / (0.12 * width)) ** 2) + 0.35 * np.exp(-0.5 * ((t - 0.45 * width) / (0.25 * width)) ** 2)
    return s / -s.min()


def long_electrode(seed=0, duration_s=600.0):
    """Three units (60, 95 and 150 uV troughs; the second drifts from 0.85 to 1.15 of its size
    over the session) and noise crossings, in time order: waveforms, times, truth (-1 = noise)."""
    rng = np.random.default_rng(seed)
    n_samples = int(duration_s * FS)
    w, t, truth = [], [], []
    for k, (size, rate) in enumerate([(60.0, 14.0), (95.0, 10.0), (150.0, 6.0)]):
        n = int(rate * duration_s)
        times = np.cumsum(0.0025 * FS + rng.exponential(n_samples / n - 0.0025 * FS, n)).astype(np.int64)
        times = times[times < n_samples]
        scale = rng.normal(1.0, 0.06, len(times))
        if k == 1:
            scale *= 0.85 + 0.3 * times / n_samples
        w.append(scale[:, None] * (size * _shape(1.0 + 0.15 * k))[None, :] + _noise(rng, len(times)))
        t.append(times)
        truth.append(np.full(len(times), k))
    crossings = _noise(rng, 12000)
    crossings = np.stack([np.roll(x, 30 - int(np.argmin(x))) for x in crossings])
    crossings = crossings[np.argsort(crossings[:, 30])[:3000]]
    w.append(crossings)
    t.append(rng.integers(0, n_samples, len(crossings)))
    truth.append(np.full(len(crossings), -1))
    order = np.argsort(np.concatenate(t), kind="stable")
    return (np.concatenate(w)[order].astype(np.float32), np.concatenate(t)[order],
            np.concatenate(truth)[order])


def sorted_labels(w, times, params):
    """Auto-sort's units as one label per event (-1: in none)."""
    features = compute_features(w, params)
    solutions = cluster_electrode(features, params)
    units = autosort_electrode(w, times, features, solutions, params, FS, mad_val=SD * 0.6745,
                               duration_s=600.0)
    labels = np.full(len(times), -1)
    for i, u in enumerate(units):
        labels[np.isin(solutions[u.solution].labels, u.clusters) & (labels < 0)] = i
    assert all(u.solution == TEMPLATE_SOLUTION for u in units)
    return labels


@pytest.fixture(scope="module")
def electrode():
    return long_electrode()


def test_refinement_on_stretches_sorts_as_well_as_on_every_event(electrode):
    w, times, truth = electrode
    params = SortParams()
    whole = accuracy_per_unit(truth, sorted_labels(w, times, params))
    assert len(times) > 15000
    cap = 6000
    capped = accuracy_per_unit(truth, sorted_labels(
        w, times, dataclasses.replace(params, autosort=dataclasses.replace(params.autosort, max_refine_events=cap))))
    assert whole.min() >= 0.95, whole
    # the drifting unit too: the stretches see every stage of its drift
    assert capped.min() >= 0.95, capped
    assert np.all(np.abs(capped - whole) <= 0.02), (capped, whole)


def test_refinement_events_are_stretches_spread_over_the_session():
    n, cap = 1_000_003, 500_000
    s = refinement_events(n, cap)
    size = cap // REFINE_STRETCHES
    assert len(s) == REFINE_STRETCHES * size and np.all(np.diff(s) > 0)
    runs = np.split(s, np.flatnonzero(np.diff(s) > 1) + 1)
    assert [len(r) for r in runs] == [size] * REFINE_STRETCHES
    assert s[0] == 0 and s[-1] == n - 1
    gaps = np.diff([r[0] for r in runs])
    assert gaps.max() - gaps.min() <= 1


def test_assign_with_model_is_one_more_pass_of_the_assignment(electrode):
    # At convergence the assignment is its own fixed point: the model it makes, applied to the
    # same events read in chunks, gives it back (up to float32 rounding of the whitened events).
    w, times, truth = electrode
    labels = np.where(truth >= 0, truth, -1)
    assigned = assign_to_templates(w, labels, FS, 600.0)
    again = assign_to_templates(w, assigned, FS, 600.0)
    fixed = np.array_equal(again, assigned)
    out = assign_with_model(w, assigned, FS, 600.0, w, np.arange(len(w)))
    if fixed:
        assert np.mean(out == assigned) >= 0.999
    # and against the truth, as good as the assignment itself
    assert np.all(accuracy_per_unit(truth, out) >= accuracy_per_unit(truth, assigned) - 0.005)
    half = np.arange(0, len(w), 2)
    model_half = assign_with_model(w[half], assigned[half], FS, 300.0, w, np.arange(1, len(w), 2))
    assert np.mean(model_half == assigned[1::2]) >= 0.99
