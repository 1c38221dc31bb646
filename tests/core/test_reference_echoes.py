"""Reference echoes (core/echoes.py, schemes/autosort.drop_reference_echoes): a unit whose spikes
coincide with a larger unit's on another wire of its CAR group, in that unit's inverted and
smaller shape, is removed (most of its spikes) or flagged (some); the shared fractions are
checked against a brute-force count written here."""

import numpy as np

from blechrs.core.echoes import REFERENCE_ECHO_MS, reference_echoes
from blechrs.model import Unit
from blechrs.schemes.autosort import drop_reference_echoes

FS = 20000.0
T = np.arange(40)
SHAPE = -np.exp(-(((T - 12) / 2.0) ** 2)) + 0.3 * np.exp(-(((T - 20) / 4.0) ** 2))


def waves(rng, n, scale, noise=1.0):
    return scale * SHAPE[None, :] + rng.normal(size=(n, len(T))) * noise


def brute_shared(a, b, window):
    return np.mean([any(abs(int(x) - int(y)) <= window for y in b) for x in a])


def units_of(rng):
    n = int(60 * FS)
    big = np.sort(rng.choice(n, 1500, replace=False))
    other = np.sort(rng.choice(n, 800, replace=False))
    jitter = rng.integers(-3, 4, len(big))  # within 0.4 ms at 20 kHz (8 samples)
    echo = np.sort(big[::2] + jitter[::2])  # an inverted 1/8 copy, half of big's spikes detected
    mixed = np.sort(np.concatenate([big[1::5], other[:600]]))  # a real unit with some echoes in it
    same_sign = np.sort(big[1::2])  # coincident, same polarity (e.g. a bridged wire): no echo
    far = np.sort(big[::3])  # an inverted copy in another CAR group: no echo of this one's
    times = [big, echo, mixed, same_sign, far, other]
    echo_w = waves(rng, len(echo), -200 / 8, 3.0)
    mixed_w = np.concatenate([waves(rng, 300, -200 / 8, 3.0), waves(rng, 600, 40, 3.0)])
    # the mixed unit's waveforms in time order (its echo spikes inverted, the rest its own shape)
    order = np.argsort(np.concatenate([big[1::5], other[:600]]), kind="stable")
    wf = [waves(rng, len(big), 200), echo_w, mixed_w[order], waves(rng, len(same_sign), 50),
          waves(rng, len(far), -25, 3.0), waves(rng, len(other), 60)]
    electrode = [0, 1, 2, 3, 9, 4]
    group = [0, 0, 0, 0, 1, 0]
    return times, wf, electrode, group


def test_reference_echoes_against_brute_force():
    rng = np.random.default_rng(3)
    times, wf, electrode, group = units_of(rng)
    found = {f.unit: f for f in reference_echoes(times, wf, electrode, group, FS)}
    window = REFERENCE_ECHO_MS * FS / 1000
    assert set(found) == {1, 2}, found
    assert found[1].parent == 0 and found[1].removed
    assert found[1].shared == brute_shared(times[1], times[0], window) == 1.0
    assert found[1].correlation < -0.9 and -0.2 < found[1].scale < -0.05
    assert found[2].parent == 0 and not found[2].removed
    assert abs(found[2].shared - brute_shared(times[2], times[0], window)) < 1e-12
    assert 0.2 < found[2].shared < 0.5
    # the same-polarity coincident unit and the other group's unit are not echoes
    assert brute_shared(times[3], times[0], window) == 1.0 and brute_shared(times[4], times[0], window) == 1.0


def test_drop_reference_echoes_keeps_and_flags():
    rng = np.random.default_rng(4)
    times, wf, electrode, group = units_of(rng)
    units = [Unit(electrode=e, label=str(k), times=t, waveforms=w, reason="kept")
             for k, (t, w, e) in enumerate(zip(times, wf, electrode))]
    kept, found = drop_reference_echoes(units, {e: g for e, g in zip(electrode, group)}, FS)
    assert [u.label for u in kept] == ["0", "2", "3", "4", "5"]
    assert [(u.label, p.label, f.removed) for u, p, f in found] == [("1", "0", True), ("2", "0", False)]
    assert "flagged: part reference echo of electrode 00 0" in kept[1].reason and kept[1].reason.startswith("kept; ")
    # a wire outside every CAR group (group -1, e.g. use_car off) is never an echo
    kept, found = drop_reference_echoes(units, {}, FS)
    assert len(kept) == len(units) and not found


def test_own_wire_share_tells_an_echo_from_a_unit():
    """A tetrode's mean reference: a spike of size a on wires 0-2 at once leaves a/4 on each of
    them and -3a/4 on the silent wire 3 (an echo larger than its parents); the raw samples of
    wire 3 carry none of it. Computed here from the samples, with DC offsets and noise."""
    from blechrs.core.echoes import own_wire_share

    rng = np.random.default_rng(5)
    n, w = 150, len(T)
    raw = rng.normal(size=(n, 4, w)) * 5 + rng.uniform(-300, 300, size=(n, 4, 1))
    raw[:, :3] += 100 * SHAPE
    ref = raw - raw.mean(axis=1, keepdims=True)
    assert own_wire_share(raw[:, 3], ref[:, 3], 12, 3) < 0.1
    assert abs(own_wire_share(raw[:, 0], ref[:, 0], 12, 3) - 4.0) < 0.3  # a/4 left of a
    # one wire with a spike: it keeps 3a/4 of its a (share 4/3); the others' echoes share ~0
    raw = rng.normal(size=(n, 4, w)) * 5
    raw[:, 1] += 100 * SHAPE
    ref = raw - raw.mean(axis=1, keepdims=True)
    assert abs(own_wire_share(raw[:, 1], ref[:, 1], 12, 3) - 4 / 3) < 0.05
    assert abs(own_wire_share(raw[:, 2], ref[:, 2], 12, 3)) < 0.15


def test_drop_reference_echoes_by_own_wire_share():
    rng = np.random.default_rng(6)
    times, wf, electrode, group = units_of(rng)
    units = [Unit(electrode=e, label=str(k), times=t, waveforms=w) for k, (t, w, e) in enumerate(zip(times, wf, electrode))]
    groups = {e: g for e, g in zip(electrode, group)}
    # unit 5 shares no spikes with anyone but its own wire does not carry it: removed, no parent
    kept, found = drop_reference_echoes(units, groups, FS, {5: 0.1, 0: 1.2, 2: 0.8, 3: 0.9, 4: 0.2})
    assert [u.label for u in kept] == ["0", "2", "3"]
    got = {u.label: (p.label if p else None, f.removed, f.own_share) for u, p, f in found}
    assert got["5"] == (None, True, 0.1)
    assert got["1"][:2] == ("0", True) and np.isnan(got["1"][2])  # by coincidence (no share measured)
    # unit 4 is in another CAR group than unit 0 (no parent there), but its own wire lacks it
    assert got["4"] == (None, True, 0.2) and "3" not in got and "0" not in got
    assert "its own wire, unreferenced, carries 10 % of its size" in found[-1][2].reason()
    # a flagged unit (part echo of unit 0) keeps its measured share, and stays
    assert got["2"] == ("0", False, 0.8)


def test_candidates_found_once_give_the_same_echoes():
    """The store finds the coincidences once (core.echoes.echo_candidates) and hands them on: the
    echoes are those reference_echoes finds by itself, and the fractions the brute-force count's."""
    from blechrs.core.echoes import REFERENCE_ECHO_FLAG, echo_candidates

    rng = np.random.default_rng(5)
    times, wf, electrode, group = units_of(rng)
    sizes = [float(np.max(np.abs(np.mean(w, axis=0)))) for w in wf]
    candidates = echo_candidates(times, sizes, electrode, group, FS)
    window = REFERENCE_ECHO_MS * FS / 1000
    for u, found in candidates.items():
        for p, frac, mask in found:
            assert frac == brute_shared(times[u], times[p], window) > REFERENCE_ECHO_FLAG
            assert mask.sum() == round(frac * len(times[u]))
    alone = reference_echoes(times, wf, electrode, group, FS)
    handed = reference_echoes(times, wf, electrode, group, FS, candidates=candidates)
    assert [vars(f) for f in handed] == [vars(f) for f in alone] and {f.unit for f in alone} == {1, 2}


def brute_candidates(times, sizes, electrode, group, window):
    """Every pair (u, p) checked on its own: which of u's spikes have one of p's within window."""
    from blechrs.core.echoes import REFERENCE_ECHO_FLAG

    out = {}
    for u in range(len(times)):
        for p in range(len(times)):
            if (group[u] < 0 or len(times[u]) == 0 or p == u or group[p] != group[u]
                    or electrode[p] == electrode[u] or sizes[p] <= sizes[u]):
                continue
            mask = np.array([bool(len(times[p])) and bool(np.any(np.abs(times[p] - x) <= window))
                             for x in times[u]], dtype=bool)
            if mask.mean() > REFERENCE_ECHO_FLAG:
                out.setdefault(u, []).append((p, float(mask.mean()), mask))
    return out


def test_candidates_match_every_pair_checked_alone():
    """The search in each group's merged spikes finds, for random units (near-coincident copies,
    equal sizes, shared wires, empty units, units outside any group, a window that is not a whole
    number of samples), exactly the pairs, fractions and spikes of a pair-by-pair count."""
    from blechrs.core.echoes import echo_candidates

    for seed in range(12):
        rng = np.random.default_rng(seed)
        fs = [20000.0, 30000.0, 24414.0625][seed % 3]
        n_units = int(rng.integers(2, 12))
        base = np.sort(rng.choice(200000, 400, replace=False))
        times = []
        for _ in range(n_units):
            kind = rng.integers(4)
            if kind == 0:
                t = rng.choice(200000, int(rng.integers(0, 300)), replace=False)
            elif kind == 1:  # a jittered copy of part of the base spikes (coincident)
                t = base[rng.random(len(base)) < rng.random()] + rng.integers(-14, 15, 1)[0]
            else:
                keep = base[rng.random(len(base)) < rng.random()]
                t = np.concatenate([keep + rng.integers(-10, 11, len(keep)), rng.choice(200000, 50)])
            times.append(np.sort(t.astype(np.int64)))
        sizes = [float(rng.choice([1.0, 2.0, 3.0, rng.random() * 5])) for _ in range(n_units)]
        electrode = [int(rng.integers(0, 5)) for _ in range(n_units)]
        group = [int(rng.choice([-1, 0, 1])) if seed % 2 else int(rng.choice([0, 1])) for _ in range(n_units)]
        window = REFERENCE_ECHO_MS * fs / 1000
        got = echo_candidates(times, sizes, electrode, group, fs)
        want = brute_candidates(times, sizes, electrode, group, window)
        assert list(got) == sorted(want), seed
        for u in want:
            assert [(p, f) for p, f, _ in got[u]] == [(p, f) for p, f, _ in want[u]], (seed, u)
            for (_, _, a), (_, _, b) in zip(got[u], want[u]):
                assert a.dtype == bool and np.array_equal(a, b)
