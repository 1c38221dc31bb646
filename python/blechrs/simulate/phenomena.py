"""What real recordings have and the clean simulation lacks (issue 14), each switchable and all off
by default (a default :class:`Phenomena` leaves every sample and spike of a seed unchanged):

- **bursts**: a bursting unit's spike starts a complex-spike burst with ``burst_probability``:
  ``burst_spikes`` spikes in all (2-5), ``burst_isi_ms`` apart (3-8 ms), each ``burst_decay``
  (10-20 %, drawn per spike) smaller than the one before. Spikes of the unit's Poisson train that
  fall inside a burst or within the refractory period after it are dropped.
- **drift**: a drifting unit's spike amplitude follows ``1 + d (1 - cos(pi t / T)) / 2`` over the
  session of T samples: smoothly from 1 to ``1 + d``, ``|d|`` in ``drift_range`` (10-20 %), sign
  random.
- **background units**: ``background_units_per_wire`` small distant units on every wire, sized
  ``background_snr`` x the wire's noise (near the threshold), firing at ``background_rate_hz``;
  recorded in the ground truth as their own units with ``unit_background`` set.
- **common-mode noise and mains hum**, the same on every wire of a CAR group: noise of
  ``common_noise_uv`` in-band SD (band-limited like each wire's own), and hum at ``hum_hz`` (50 or
  60 Hz) with ``hum_harmonics`` harmonics, harmonic k of amplitude ``hum_uv / k``, phases per group.
- **CAR groups of any size**: wire c is in group ``c // car_group_size`` (None: one group per
  32-wire port, the Intan default); written into the folder's electrode layout when set.
- **very large units**: ``large_units`` = ((wire, size in noise SDs), ...), e.g. ((3, 58.0),).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np


@dataclass(frozen=True)
class Phenomena:
    """The phenomena a :class:`~blechrs.simulate.Simulation` adds (module docstring); all off."""

    burst_fraction: float = 0.0
    """Fraction of the (neuron, not background) units that fire bursts."""
    burst_probability: float = 0.3
    """Chance that a spike of a bursting unit starts a burst."""
    burst_spikes: tuple[int, int] = (2, 5)
    """Spikes per burst, first included (inclusive range)."""
    burst_isi_ms: tuple[float, float] = (3.0, 8.0)
    burst_decay: tuple[float, float] = (0.10, 0.20)
    """Each burst spike is this fraction smaller than the one before."""
    drift_fraction: float = 0.0
    """Fraction of the units whose amplitude drifts over the session."""
    drift_range: tuple[float, float] = (0.10, 0.20)
    """|total relative change| of a drifting unit's amplitude."""
    background_units_per_wire: int = 0
    background_snr: tuple[float, float] = (2.5, 4.5)
    """Size (band-passed extremum) of background units in noise SDs (threshold: 4)."""
    background_rate_hz: tuple[float, float] = (0.5, 5.0)
    common_noise_uv: float = 0.0
    """In-band SD of the noise every wire of a CAR group shares."""
    hum_uv: float = 0.0
    """Amplitude of the mains hum's fundamental, the same on every wire of a CAR group."""
    hum_hz: float = 50.0
    hum_harmonics: int = 3
    car_group_size: int | None = None
    large_units: tuple[tuple[int, float], ...] = ()
    """(wire, size in noise SDs) of units added beyond the drawn ones."""

    @property
    def active(self) -> bool:
        return self != Phenomena()

    def check(self, n_channels: int) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, tuple) and len(v) == 2 and not isinstance(v[0], tuple) and not v[0] <= v[1]:
                raise ValueError(f"{f.name} must be a (low, high) range, not {v}")
        if not (0 <= self.burst_fraction <= 1 and 0 <= self.drift_fraction <= 1 and 0 <= self.burst_probability <= 1):
            raise ValueError("burst_fraction, drift_fraction and burst_probability must be in [0, 1]")
        if self.burst_spikes[0] < 2:
            raise ValueError(f"a burst has at least 2 spikes, not {self.burst_spikes[0]}")
        if self.car_group_size is not None and self.car_group_size < 1:
            raise ValueError(f"car_group_size must be >= 1, not {self.car_group_size}")
        for w, x in self.large_units:
            if not (0 <= w < n_channels and x > 0):
                raise ValueError(f"large unit ({w}, {x}): wire must be in 0..{n_channels - 1} and size > 0")

    def car_groups(self, n_channels: int) -> np.ndarray:
        """CAR group of each wire."""
        size = self.car_group_size or 32
        return np.arange(n_channels) // size


def add_bursts(rng, times: np.ndarray, gain: np.ndarray, ph: Phenomena, fs: float, refr: float, end: float):
    """A bursting unit's train: (times, gains, burst position: 0 = not in a burst or its first
    spike, k = the k-th spike after the first)."""
    starts = np.flatnonzero(rng.random(len(times)) < ph.burst_probability)
    n_in = rng.integers(ph.burst_spikes[0], ph.burst_spikes[1] + 1, size=len(starts))
    new_t, new_g, new_p, spans = [], [], [], []
    for i, n in zip(starts, n_in):
        isi = rng.uniform(*ph.burst_isi_ms, size=n - 1) * fs / 1000.0
        step = 1.0 - rng.uniform(*ph.burst_decay, size=n - 1)
        t = times[i] + np.cumsum(isi)
        g = gain[i] * np.cumprod(step)
        new_t.append(t)
        new_g.append(g)
        new_p.append(np.arange(1, n))
        spans.append((times[i], t[-1] + refr))
    pos = np.zeros(len(times), dtype=np.int64)
    if not spans:
        return times, gain, pos
    # Poisson spikes inside a burst (or its refractory tail) are not fired; later burst starts
    # inside one neither (drop the whole later burst).
    span = np.array(spans)
    keep_start = np.ones(len(starts), dtype=bool)
    last_end = -np.inf
    for j, (a, b) in enumerate(span):
        if a <= last_end:
            keep_start[j] = False
        else:
            last_end = b
    span = span[keep_start]
    k = np.searchsorted(span[:, 0], times, side="right") - 1
    inside = (k >= 0) & (times > span[np.maximum(k, 0), 0]) & (times <= span[np.maximum(k, 0), 1])
    keep = ~inside
    sel = [j for j in range(len(starts)) if keep_start[j]]
    t = np.concatenate([times[keep]] + [new_t[j] for j in sel])
    g = np.concatenate([gain[keep]] + [new_g[j] for j in sel])
    p = np.concatenate([pos[keep]] + [new_p[j] for j in sel])
    order = np.argsort(t, kind="stable")
    t, g, p = t[order], g[order], p[order]
    ok = t < end
    return t[ok], g[ok], p[ok]


def drift_gain(t: np.ndarray, d: float, n_samples: int) -> np.ndarray:
    """A drifting unit's amplitude factor at (exact) sample times ``t`` (module docstring)."""
    return 1.0 + d * (1.0 - np.cos(np.pi * np.asarray(t) / n_samples)) / 2.0


def hum(t_s: np.ndarray, ph: Phenomena, phases: np.ndarray) -> np.ndarray:
    """Mains hum at times ``t_s`` (seconds) for one group (``phases``: one per harmonic)."""
    out = np.zeros(len(t_s))
    for k in range(1, ph.hum_harmonics + 1):
        out += ph.hum_uv / k * np.sin(2 * np.pi * k * ph.hum_hz * t_s + phases[k - 1])
    return out
