"""Auto-sort on a simulated recording with issue 14's phenomena together (blechrs.simulate: half the
neurons burst, half drift, four small distant background units per wire), 8 wires x 60 s in one
CAR group, the engine's extraction, each wire sorted by the pipeline's per-electrode function, and
scored against the ground truth's neurons (the background units are noise to find, not neurons).

The issue's targets, scaled to 8 wires: at most one unit matching no neuron (<= 3 per 32 wires)
and single-unit wires sorted at >= 0.9 mean accuracy. Without the background test
(``max_threshold_share`` and ``max_multi_threshold_share`` 1) the same recording gives several
units matching no neuron, so the test sees what the criteria do."""

import numpy as np
import pytest

from blechrs import kernels
from blechrs.model import ElectrodeWork
from blechrs.params import SortParams
from blechrs.schemes.sort_electrode import cluster_work
from blechrs.simulate import Phenomena, Simulation
from blechrs.simulate.scoring import score_sorting

WIRES = 8


def simulated(seed):
    sim = Simulation(seed=seed, n_channels=WIRES, duration_s=60.0, n_digital_inputs=0,
                     phenomena=Phenomena(burst_fraction=0.5, drift_fraction=0.5, background_units_per_wire=4))
    return sim.chunk(0, sim.n_samples), sim.ground_truth().neurons()


@pytest.fixture(scope="module")
def recording():
    return simulated(3)


def sort_and_score(recording, **params):
    rec, gt = recording
    p = SortParams.from_flat(params).replace(sampling_rate=gt.sampling_rate)
    times, wires = {}, {}
    for c, o in enumerate(kernels.extract_electrodes(rec.T, list(range(WIRES)), [0] * WIRES, p.extract)):
        work = cluster_work(ElectrodeWork(
            electrode=c, times=np.asarray(o["times"], dtype=np.int64), waveforms=np.asarray(o["waveforms"]),
            mad_val=float(o["mad_val"]), n_samples=gt.n_samples, cutoff_sample=gt.n_samples,
            noise=np.asarray(o["noise"])), p)
        labels = work.auto_labels()
        for k in range(len(work.units)):
            times[f"{c}:{k}"], wires[f"{c}:{k}"] = work.times[labels == k], c
    scores, unmatched = score_sorting(gt.spike_times, gt.unit_channel, times, gt.sampling_rate, sorted_channels=wires)
    accuracy = np.array([s.accuracy for s in scores])
    single = np.bincount(gt.unit_channel, minlength=WIRES)[gt.unit_channel] == 1
    return len(unmatched), accuracy, single


def test_background_and_burst_pieces_are_not_units(recording):
    unmatched, accuracy, single = sort_and_score(recording)
    assert unmatched <= 1
    assert single.any() and accuracy[single].mean() >= 0.9
    without_test, accuracy_without, _ = sort_and_score(recording, max_threshold_share=1.0,
                                                       max_multi_threshold_share=1.0)
    assert without_test >= 3  # the background's tail sorted as units
    assert np.sum(accuracy >= 0.8) >= np.sum(accuracy_without >= 0.8)  # and no neuron lost to the test


@pytest.mark.parametrize("seed", [1, 4])
def test_background_hash_multi_units_are_not_units(seed):
    """On these seeds several distant units' crossings at the threshold form clusters that pass as
    multi-units (ISIs of independent neurons, ~60 % of their events within 1 noise SD of the
    threshold): with ``max_multi_threshold_share`` they are not units, and no neuron is lost."""
    recording = simulated(seed)
    unmatched, accuracy, _ = sort_and_score(recording)
    assert unmatched <= 1
    without_test, accuracy_without, _ = sort_and_score(recording, max_multi_threshold_share=1.0)
    assert without_test >= 3
    assert np.sum(accuracy >= 0.8) >= np.sum(accuracy_without >= 0.8)
