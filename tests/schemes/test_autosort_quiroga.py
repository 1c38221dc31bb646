"""Independent check of the clustering stage on data nobody on this project made: Quiroga,
Nadasdy & Ben-Shaul (2004)'s simulated single-channel recordings, as labelled snippets
(../shared/data/quiroga_snippets, see its README).

Each recording (label triple) is sorted without its labels through features -> clustering ->
auto-sort, and each true unit is scored against the unit that matches it best:
accuracy = tp / (tp + fn + fp). Snippets have no spike times, so the ISI criteria see evenly spaced
events (never violating), and the electrode's noise level is estimated from the snippets' first
samples (before the spike). The snippets are every spike of the simulation, not detections above a
threshold (1-5 % of them peak below 4 noise SDs, most of the noisiest recordings' below 5), so the
test for sub-threshold background activity (``max_threshold_share``) has nothing to judge here
and is off.

Thresholds come from what published sorters reach, not from blechrs's own output. The snippets
include a few % of overlapping or misaligned spikes that no sorter assigns right (a supervised
quadratic classifier on 8 principal components, given the labels, still misclassifies 3-8 %), and
SpikeForest reports MountainSort4 at 0.93 mean accuracy on "easy1" with detection included. So on
every recording every unit must reach 0.8 and the recording's mean 0.85, the two noisiest of the
second spike-shape set (6, 7; Quiroga et al.'s "difficult" regime, where K-means misassigns about
half the spikes and wave_clus loses a unit) included: blechrs sorts them at 0.89-0.95 since the
template step's shape splits and the 9-cluster start (before: 0.5 and 0.3 for their best unit).
"""

from pathlib import Path

import numpy as np
import pytest

from blechrs.core import cluster_electrode, compute_features
from blechrs.params import SortParams
from blechrs.schemes import autosort_electrode

REPO = Path(__file__).resolve().parents[2]
SNIPPETS = REPO.parent / "shared" / "data" / "quiroga_snippets" / "quiroga_snippets.mat"
FS = 24000.0


def load():
    if not SNIPPETS.exists():
        pytest.fail(f"{SNIPPETS} is missing: the Quiroga snippets must sit in ../shared/data beside the repository")
    from scipy.io import loadmat

    d = loadmat(str(SNIPPETS))
    return d["frames_in"].astype(np.float64), np.asarray(d["frames_cluster"]).ravel().astype(np.int64)


def sort_recording(w):
    # 32 samples at 24 kHz, peak at index 8: 1/3 ms before, 1 ms after
    p = SortParams().replace(sampling_rate=FS, spike_snapshot_before=8 / 24, spike_snapshot_after=24 / 24,
                             max_threshold_share=1.0)
    times = np.arange(len(w), dtype=np.int64) * int(FS)  # one per second: no ISI information
    baseline = w[:, :3]
    mad_val = float(np.median(np.abs(baseline - np.median(baseline))))
    f = compute_features(w, p)
    sols = cluster_electrode(f, p)
    units = autosort_electrode(w, times, f, sols, p, FS, mad_val, duration_s=float(len(w)))
    return [np.isin(sols[u.solution].labels, u.clusters) for u in units]


def accuracies(truth, units):
    out = []
    for k in np.unique(truth):
        best = 0.0
        for ev in units:
            tp = np.count_nonzero(ev & (truth == k))
            best = max(best, tp / (ev.sum() + np.count_nonzero(truth == k) - tp))
        out.append(best)
    return np.array(out)


@pytest.fixture(scope="module")
def results():
    x, y = load()
    res = {}
    for r in range(8):
        m = (y >= 3 * r) & (y < 3 * r + 3)
        units = sort_recording(x[m])
        res[r] = (len(units), accuracies(y[m] - 3 * r, units))
    print("\nQuiroga snippets, accuracy per unit (recording: units found, accuracies):")
    for r, (n, acc) in res.items():
        print(f"  recording {r} (labels {3 * r}-{3 * r + 2}): {n} units, " + ", ".join(f"{a:.3f}" for a in acc))
    return res


@pytest.mark.parametrize("r", [0, 1, 2, 3, 4, 5, 6, 7])
def test_recordings_sorted_well(results, r):
    """Every recording, the two noisiest (6, 7) included: each true unit found at >= 0.8."""
    n, acc = results[r]
    assert acc.min() >= 0.8 and acc.mean() >= 0.85, (r, n, acc)
