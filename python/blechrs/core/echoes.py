"""Echoes: a cluster or unit most of whose events (> ``ECHO_FRACTION``) sit within ``ECHO_MS`` of a
larger event of another cluster is a second detection of the same spikes (the rebound of a large
spike re-crossing the threshold after the dead time), not a neuron.
"""

from __future__ import annotations

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
