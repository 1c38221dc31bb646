"""The demo's scoring: Hungarian assignment against scipy, spike matching against a direct count."""

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment as scipy_lsa

from blechrs.simulate.scoring import count_matches, linear_sum_assignment, score_sorting


@pytest.mark.parametrize("shape", [(1, 1), (3, 3), (4, 7), (7, 4), (12, 12), (5, 20), (0, 3)])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_hungarian_matches_scipy(shape, seed):
    rng = np.random.default_rng(seed)
    cost = rng.random(shape)
    if seed == 2:
        cost = np.round(cost * 3)  # ties
    r, c = linear_sum_assignment(cost)
    rs, cs = scipy_lsa(cost)
    assert len(r) == len(rs) == min(shape)
    assert len(set(r)) == len(r) and len(set(c)) == len(c)
    assert cost[r, c].sum() == pytest.approx(cost[rs, cs].sum())


def _train(rng, n, span, refractory):
    t = np.cumsum(rng.integers(refractory, refractory + span, n))
    return t.astype(np.int64)


def test_count_matches_against_direct_count():
    rng = np.random.default_rng(0)
    window = 12
    for _ in range(20):
        a = _train(rng, 500, 3000, 60)
        keep = rng.random(len(a)) < 0.7
        b = np.sort(np.concatenate([a[keep] + rng.integers(-20, 21, keep.sum()), _train(rng, 100, 15000, 60)]))
        b = b[np.concatenate([[True], np.diff(b) > 2 * window])]
        # Direct: every a with some b within the window (trains sparse enough for one-to-one).
        direct = sum(int(np.any(np.abs(b - x) <= window)) for x in a)
        assert count_matches(a, b, window) == direct


def test_score_sorting_pairs_units():
    rng = np.random.default_rng(1)
    gt = [_train(rng, 300, 3000, 60), _train(rng, 200, 3000, 60)]
    sorted_times = {"unit000": gt[1][:150] + 3, "unit001": gt[0], "unit002": _train(rng, 50, 3000, 60)}
    scores, unmatched = score_sorting(gt, [0, 0], sorted_times, 30000.0)
    assert scores[0].sorted_unit == "unit001" and scores[0].accuracy == pytest.approx(1.0)
    assert scores[1].sorted_unit == "unit000" and scores[1].accuracy == pytest.approx(150 / 200)
    assert unmatched == ["unit002"]
