"""Raw-data checks before sorting: bridged channels, dead or flat channels.

The recording is sampled (``n_corr_samples`` samples in windows at seeded random places, the same
for every channel); Pearson r between every pair of channels is computed of the raw traces and of
the 300-3000 Hz band. Bridged channels are pairs with spike-band r > ``bridged_channel_threshold``
(0.9). blech_clust tests the raw traces, but raw traces of healthy neighbouring wires share the
LFP and the reference, so raw r is high for them too; a short between two wires makes even their
spike-band noise identical, which healthy wires never share. Flat channels barely change at all (a
disconnected or saturated input); dead channels have less than a fifth of the median channel's
spike-band noise. The result prints as a short summary (``str(result)``, or rich).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from blechrs.params import SortParams

_PAD = 3000  # samples of padding read around each window so the band-pass edge effects fall outside


def _windows(n_samples: int, n_corr: int, n_windows: int, rng) -> list[tuple[int, int]]:
    width = max(1, n_corr // n_windows)
    if n_samples <= n_corr:
        return [(0, n_samples)]
    starts = np.sort(rng.choice(n_samples - width, size=min(n_windows, max(1, n_samples // width - 1)), replace=False))
    return [(int(s), int(s) + width) for s in starts]


def sample_channels(recording, n_corr_samples: int = 10000, seed: int = 0, n_windows: int = 20):
    """(raw, spike_band): float32 channels x n arrays of the same sampled places, microvolts."""
    from blechrs import kernels

    rng = np.random.default_rng(seed)
    n = recording.n_samples
    chans = list(range(recording.n_channels))
    raw, band = [], []
    for a, b in _windows(n, n_corr_samples, n_windows, rng):
        lo, hi = max(0, a - _PAD), min(n, b + _PAD)
        x = recording.read(chans, lo, hi).astype(np.float32) * np.float32(recording.gain)
        raw.append(x[:, a - lo: b - lo])
        if hi - lo > 12:  # filtfilt needs more samples than its padding
            f = kernels.bandpass(np.ascontiguousarray(x, dtype=np.float64), recording.sampling_rate)
            band.append(np.asarray(f)[:, a - lo: b - lo])
        else:
            band.append(x[:, a - lo: b - lo] - x[:, a - lo: b - lo].mean(axis=1, keepdims=True))
    return np.concatenate(raw, axis=1), np.concatenate(band, axis=1)


def correlation(x: np.ndarray) -> np.ndarray:
    """Pearson r of the rows of x, symmetric, diagonal 1; a constant row correlates 0 with all."""
    x = np.asarray(x, dtype=np.float64)
    z = x - x.mean(axis=1, keepdims=True)
    sd = np.sqrt((z**2).sum(axis=1))
    ok = sd > 0
    z[ok] /= sd[ok, None]
    z[~ok] = 0.0
    r = np.clip(z @ z.T, -1.0, 1.0)
    np.fill_diagonal(r, 1.0)
    return r


@dataclass
class RawQAResult:
    n_channels: int
    channel_names: list[str]
    bridged: list[tuple[int, int, float]] = field(default_factory=list)
    """(channel i, channel j, spike-band r) for r above the threshold."""
    flat: list[int] = field(default_factory=list)
    dead: list[int] = field(default_factory=list)
    noise_uv: np.ndarray | None = None
    """Spike-band noise per channel (median |x| / 0.6745 of the sampled band), microvolts."""
    digital_inputs: dict[str, int] = field(default_factory=dict)
    """Pulses per digital input."""
    outputs: list[Path] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    raw_corr: np.ndarray | None = None
    band_corr: np.ndarray | None = None
    directory: Path | None = None

    @property
    def ok(self) -> bool:
        return not (self.bridged or self.flat or self.dead)

    def lines(self) -> list[str]:
        out = [f"raw QA of {self.n_channels} channels: "
               + ("no bridged, dead or flat channels" if self.ok else
                  f"{len(self.bridged)} bridged pair(s), {len(self.dead)} dead, {len(self.flat)} flat")]
        if self.noise_uv is not None and len(self.noise_uv):
            out.append(f"spike-band noise {np.median(self.noise_uv):.1f} uV median "
                       f"({np.min(self.noise_uv):.1f}-{np.max(self.noise_uv):.1f})")
        if self.digital_inputs:
            out.append("digital inputs: " + ", ".join(f"{k} {v}" for k, v in self.digital_inputs.items()))
        out += self.warnings
        if self.outputs:
            out.append(f"written to {self.outputs[0].parent}")
        return out

    def __str__(self) -> str:
        return "\n".join(self.lines())

    def __rich__(self):
        from rich.text import Text

        t = Text()
        for i, line in enumerate(self.lines()):
            style = "yellow" if line in self.warnings else ("green" if i == 0 and self.ok else "")
            t.append(line + "\n", style=style)
        return t


def check_channels(rec, params: SortParams, channels_in_use: list[int] | None = None) -> RawQAResult:
    """Sample the recording ``rec`` and find bridged, flat and dead channels among those in use."""
    raw, band = sample_channels(rec, params.quality.n_corr_samples, params.cluster.random_seed)
    r_raw, r_band = correlation(raw), correlation(band)
    res = RawQAResult(n_channels=rec.n_channels, channel_names=list(rec.channel_names), raw_corr=r_raw, band_corr=r_band)
    names = rec.channel_names
    use = set(range(rec.n_channels) if channels_in_use is None else channels_in_use)
    thr = params.quality.bridged_channel_threshold
    iu, ju = np.triu_indices(rec.n_channels, k=1)
    for i, j in zip(iu, ju):
        if r_band[i, j] > thr and i in use and j in use:
            res.bridged.append((int(i), int(j), float(r_band[i, j])))
    noise = np.median(np.abs(band), axis=1) / 0.6745
    res.noise_uv = noise
    span = raw.max(axis=1) - raw.min(axis=1) if raw.shape[1] else np.zeros(rec.n_channels)
    res.flat = [c for c in range(rec.n_channels) if span[c] <= 2 * rec.gain and c in use]
    live = noise[[c for c in range(rec.n_channels) if c not in res.flat]]
    ref = float(np.median(live)) if len(live) else 0.0
    res.dead = [c for c in range(rec.n_channels) if c not in res.flat and c in use and noise[c] < 0.2 * ref]
    for i, j, r in res.bridged:
        res.warnings.append(f"bridged channels {i} ({names[i]}) and {j} ({names[j]}): spike-band r = {r:.3f}")
    for c in res.flat:
        res.warnings.append(f"flat channel {c} ({names[c]}): the signal does not change (disconnected?)")
    for c in res.dead:
        res.warnings.append(f"dead channel {c} ({names[c]}): spike-band noise {noise[c]:.2f} uV, "
                            f"median channel {ref:.2f} uV")
    res.digital_inputs = {k: int(len(v[0])) for k, v in rec.digital_inputs.items()}
    return res


def correlation_table(res: RawQAResult, r_raw, r_band, thr) -> str:
    """``raw_channel_corr_table.txt``: the bridged pairs and the median r."""
    lines = [f"channel pairs with spike-band r > {thr:g} (bridged):"]
    lines += [f"  {i:3d} {res.channel_names[i]:>10s}  {j:3d} {res.channel_names[j]:>10s}  "
              f"r_band {r:.3f}  r_raw {r_raw[i, j]:.3f}" for i, j, r in res.bridged] or ["  none"]
    n = res.n_channels
    if n > 1:
        off = ~np.eye(n, dtype=bool)
        lines.append(f"median off-diagonal r: raw {np.median(r_raw[off]):.3f}, spike band {np.median(r_band[off]):.3f}")
    return "\n".join(lines) + "\n"
