"""Echoes: a cluster or unit most of whose events (> ``ECHO_FRACTION``) sit within ``ECHO_MS`` of a
larger event of another cluster is a second detection of the same spikes (the rebound of a large
spike re-crossing the threshold after the dead time), not a neuron.

Reference echoes (:func:`reference_echoes`) are the same across wires: the common average
reference puts an inverted copy (1/N of its size) of every large spike onto every other wire of
the CAR group, where it can be sorted as a unit. A unit most of whose spikes (>
``REFERENCE_ECHO_FRACTION``) coincide with a larger unit's on another wire of its group, in that
unit's inverted and smaller shape, is removed; one with a smaller share (>
``REFERENCE_ECHO_FLAG``) is flagged.

That test needs the larger unit sorted and a single parent. On a tetrode a neuron is seen on
several wires at once: its echo is the sum of their copies, can be larger than any of them
(with the mean of 4 wires, 3 of which carry a spike of size a: -3a/4 on the silent wire, a/4 left
on each of the others), and a robust reference does not help (the median of 4 values, 3 in a
spike, is in the spike). So the decisive test looks at the raw samples
(:func:`own_wire_share`): a unit's spikes must be a deflection of its own wire, not of the
reference; one whose own, unreferenced wire shows less than ``REFERENCE_OWN_SHARE`` of its
referenced size is removed, whatever its parent.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: An event within this many ms of a larger event of another cluster is an echo candidate: the
#: rebound of a large spike (0.5-1 ms) and its after-hyperpolarisation dip (1.5-2 ms after the
#: trough, crossing a 4 x noise threshold on large units).
ECHO_MS = 2.5
#: A cluster is an echo when more than this fraction of its events are echo candidates.
ECHO_FRACTION = 0.5


def echo_fraction(times, amplitude, member, window) -> float:
    """Fraction of the member events that have a larger non-member event within ``window``
    samples."""
    idx = np.nonzero(member)[0]
    others = np.nonzero(~member)[0]
    if len(idx) == 0 or len(others) == 0:
        return 0.0
    ot = times[others]
    order = np.argsort(ot, kind="stable")
    ot, oa = ot[order], np.abs(amplitude[others][order])
    lo = np.searchsorted(ot, times[idx] - window, side="left")
    hi = np.searchsorted(ot, times[idx] + window, side="right")
    own = np.abs(amplitude[idx])
    # Windows hold a handful of events: step through them for all members at once.
    echo = np.zeros(len(idx), dtype=bool)
    count = hi - lo
    for j in range(int(count.max()) if len(count) else 0):
        has = count > j
        echo[has] |= oa[lo[has] + j] > own[has]
    return float(echo.mean())


def is_echo(times, amplitude, member, sampling_rate: float) -> bool:
    """The member events are an echo of larger events of the others (see the module doc);
    ``amplitude`` is each event's value at the extremum."""
    return echo_fraction(times, amplitude, member, ECHO_MS * sampling_rate / 1000.0) > ECHO_FRACTION


# --- reference echoes: a copy of another wire's spikes put there by the common reference -------
#: A spike within this many ms of a larger unit's spike on another wire of the CAR group is shared.
REFERENCE_ECHO_MS = 0.4
#: A unit more than this fraction of whose spikes are shared with a larger unit of its CAR group,
#: in that unit's inverted shape, is that unit's reference echo: removed.
REFERENCE_ECHO_FRACTION = 0.5
#: ... more than this fraction: flagged (kept, the reason said), a unit with echoes mixed in.
REFERENCE_ECHO_FLAG = 0.2
#: Inverted shape: the correlation of the shared spikes' mean waveform with the larger unit's
#: mean waveform (best of +-2 samples) is at most this, and the echo is at most this fraction of
#: its size (the mean CAR's copy is 1/N of it, scaled by the two wires' MADs).
REFERENCE_ECHO_CORRELATION = -0.5
REFERENCE_ECHO_SIZE = 0.5


@dataclass
class ReferenceEcho:
    """Unit ``unit`` shares ``shared`` of its spikes with the larger unit ``parent`` on another wire
    of its CAR group, in its inverted shape (``correlation``), ``scale`` x its size."""

    unit: int
    parent: int
    shared: float
    correlation: float
    scale: float
    removed: bool
    own_share: float = float("nan")
    """Its own wire's share of its referenced size (own_wire_share; NaN: not measured)."""

    def reason(self, names=None) -> str:
        name = (lambda i: names[i]) if names is not None else (lambda i: f"unit {i}")
        what = "removed: a reference echo" if self.removed else "flagged: part reference echo"
        own = (f"its own wire, unreferenced, carries {100 * self.own_share:.0f} % of its size"
               if self.own_share == self.own_share else "")
        if self.parent < 0:
            return f"{what}: {own}"
        return (f"{what} of {name(self.parent)} ({100 * self.shared:.0f} % of its spikes coincide with it, "
                f"waveform correlation {self.correlation:.2f}, {self.scale:+.2f} x its size"
                + (f"; {own}" if own else "") + ")")


def _inverted_match(echo_mean: np.ndarray, parent_mean: np.ndarray) -> tuple[float, float]:
    """(most negative correlation over +-2 samples of shift, signed size ratio at the parent's
    extremum)."""
    best = 1.0
    n = len(parent_mean)
    for s in range(-2, 3):
        a = echo_mean[max(0, s): n + min(0, s)]
        b = parent_mean[max(0, -s): n - max(0, s)]
        if np.std(a) > 0 and np.std(b) > 0:
            best = min(best, float(np.corrcoef(a, b)[0, 1]))
    k = int(np.argmax(np.abs(parent_mean)))
    scale = float(echo_mean[k] / parent_mean[k]) if parent_mean[k] != 0 else 0.0
    return best, scale


def echo_candidates(times, sizes, electrode, group, sampling_rate: float) -> dict[int, list[tuple[int, float, np.ndarray]]]:
    """For each unit u (lists indexed alike: sorted spike times, size of its mean waveform,
    electrode, CAR group id or -1), the larger units p on other wires of its group that more than
    REFERENCE_ECHO_FLAG of its spikes coincide with (a spike of p within REFERENCE_ECHO_MS), in
    unit order: (p, that fraction, which of u's spikes). Times only: the shapes are judged by
    :func:`reference_echoes`.

    One search per unit in its group's spikes merged (not one per pair of units: 1275 searches for
    52 units on 32 wires in 4 groups): a window of 0.4 ms holds a handful of the group's spikes,
    stepped through for all of u's spikes at once."""
    window = REFERENCE_ECHO_MS * sampling_rate / 1000.0
    reach = int(np.floor(window))  # |a - b| <= window for whole samples (integer queries: no float copy)
    found: dict[int, list[tuple[int, float, np.ndarray]]] = {}
    for g in sorted({int(x) for x in group if x >= 0}):
        members = [u for u in range(len(times)) if group[u] == g]
        merged = np.concatenate([np.asarray(times[u], dtype=np.int64) for u in members])
        owner = np.repeat(np.asarray(members, dtype=np.int64), [len(times[u]) for u in members])
        order = np.argsort(merged, kind="stable")
        merged, owner = merged[order], owner[order]
        for u in members:
            t = np.asarray(times[u], dtype=np.int64)
            parents = [p for p in members
                       if p != u and electrode[p] != electrode[u] and sizes[p] > sizes[u]]
            if len(t) == 0 or not parents:
                continue
            row_of = np.full(len(times), -1, dtype=np.int64)
            row_of[parents] = np.arange(len(parents))
            lo = np.searchsorted(merged, t - reach, side="left")
            count = np.searchsorted(merged, t + reach, side="right") - lo
            # (parent row, spike of u) of every coincidence, as one code per pair
            codes = []
            for j in range(int(count.max())):
                has = np.nonzero(count > j)[0]
                r = row_of[owner[lo[has] + j]]
                codes.append(r[r >= 0] * len(t) + has[r >= 0])
            codes = np.unique(np.concatenate(codes)) if codes else np.zeros(0, np.int64)
            hits = np.bincount(codes // len(t), minlength=len(parents))
            for k, p in enumerate(parents):
                if hits[k] / len(t) <= REFERENCE_ECHO_FLAG:
                    continue
                shared = np.zeros(len(t), dtype=bool)
                shared[codes[codes // len(t) == k] - k * len(t)] = True
                found.setdefault(u, []).append((p, float(shared.mean()), shared))
    return {u: found[u] for u in sorted(found)}


def reference_echoes(times, waveforms, electrode, group, sampling_rate: float, means=None,
                     shared_mean=None, candidates=None) -> list[ReferenceEcho]:
    """The units (lists indexed alike: sorted spike times, waveforms n x samples on the unit's own
    wire, electrode, CAR group id or -1) that are reference echoes of a larger unit on another
    wire of their group (module constants), each with the parent it shares most with. Without the
    waveforms in memory (``waveforms`` None): ``means`` (each unit's mean waveform, None if it has
    no spike) and ``shared_mean(u, p, mask)``, the mean of unit u's waveforms over ``mask``.
    ``candidates``: :func:`echo_candidates` of these units when the caller has them already (its
    pairwise coincidence search is most of the cost on long sessions)."""
    if means is None:
        means = [np.mean(w, axis=0) if len(w) else None for w in waveforms]
    if shared_mean is None:
        def shared_mean(u, p, mask):
            return np.mean(waveforms[u][mask], axis=0)
    size = [float(np.max(np.abs(m))) if m is not None else 0.0 for m in means]
    out = []
    if candidates is None:
        candidates = echo_candidates(times, size, electrode, group, sampling_rate)
    for u, found in sorted(candidates.items()):
        best = None
        for p, frac, shared in found:
            if best is not None and frac <= best.shared:
                continue
            corr, scale = _inverted_match(shared_mean(u, p, shared), means[p])
            if corr <= REFERENCE_ECHO_CORRELATION and -REFERENCE_ECHO_SIZE <= scale < 0:
                best = ReferenceEcho(u, p, frac, corr, scale, frac > REFERENCE_ECHO_FRACTION)
        if best is not None:
            out.append(best)
    return out


#: A unit whose own wire, unreferenced, shows less than this fraction of its referenced size at its
#: spikes is a reference echo (see the module doc).
REFERENCE_OWN_SHARE = 0.5


def own_wire_share(raw: np.ndarray, referenced: np.ndarray, center: int, reach: int) -> float:
    """How much of a unit's referenced deflection its own wire carries: ``raw`` and ``referenced``
    are n_spikes x samples windows of its wire around its spikes (at ``center``) before and after
    the common reference, same units. Each window less its median (DC, slow LFP); at the
    referenced mean's extremum within ``reach`` samples of ``center``, the raw windows' median
    over spikes (most spikes must carry it, not a part of them), in the referenced extremum's
    direction, over the referenced extremum's size (1: all its own; 0 or less: all the
    reference's)."""
    if len(raw) == 0:
        return 1.0
    f = np.mean(referenced - np.median(referenced, axis=1, keepdims=True), axis=0)
    lo, hi = max(0, center - reach), min(len(f), center + reach + 1)
    k = lo + int(np.argmax(np.abs(f[lo:hi])))
    if f[k] == 0:
        return 1.0
    r = np.median(raw[:, k] - np.median(raw, axis=1))
    return float(r / f[k])
