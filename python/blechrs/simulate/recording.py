"""A seeded simulated microwire recording: units, spike trains, noise, LFP and digital inputs.

A :class:`Simulation` is a microwire bundle: every wire (channel) carries 0-4 units with their
own spike shape (trough width, repolarisation, polarity) and size (``amplitude_range_uv`` is the
extremum after the 300-3000 Hz band-pass; units on one wire differ by at least
``min_size_ratio``), Poisson trains at 1-30 Hz with a refractory period, band-limited noise, a
wide-band LFP and a DC offset per channel, and "taste delivery" pulses on board digital inputs.
The same seed gives the same samples, in any layout and any chunking.

The sample count is the duration rounded down to a multiple of 1920 samples (the common multiple
of the 60- and 128-sample .rhd blocks) so every layout holds exactly the same samples.

Faults for QA tests: ``dead_channels`` are flat (DC only), ``weak_channels`` carry LFP and 0.5 uV
of noise but no units, and in ``bridged_pairs`` (a, b) channel b is a copy of a plus 2 uV noise.

Real-recording phenomena (bursts, drift, background units, common-mode noise and hum, CAR groups
of any size, very large units): ``phenomena=Phenomena(...)`` (simulate/phenomena.py), all off by
default; their draws come from their own generators, so the units and samples of a seed without
them stay the same.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np

from blechrs.io.layout import default_layout, save_layout
from blechrs.io.recording import MICROVOLTS_PER_BIT, open_recording
from blechrs.simulate.ground_truth import GroundTruth
from blechrs.simulate import phenomena as phen
from blechrs.simulate.intan_files import open_writer
from blechrs.simulate.phenomena import Phenomena

_ALIGN = 1920  # lcm(60, 128)
_CHUNK = 15 * _ALIGN  # samples generated at a time (0.96 s at 30 kHz)
_NOISE_BLOCK = 1 << 15
_FIR_TAPS = 63
_LFP_STEP = 8


def _zero_phase_bandpass_gain(n: int, fs: float, lo: float = 300.0, hi: float = 3000.0, order: int = 2):
    """|H|^2 of a digital Butterworth band-pass (bilinear, pre-warped) on rfft bins: the gain of
    filtfilt with that filter, away from the edges."""
    f = np.fft.rfftfreq(n, 1.0 / fs)
    w = 2 * fs * np.tan(np.pi * np.minimum(f, fs / 2 * 0.999999) / fs)
    wl, wh = (2 * fs * np.tan(np.pi * x / fs) for x in (lo, hi))
    w0sq, bw = wl * wh, wh - wl
    with np.errstate(divide="ignore", invalid="ignore"):
        x = (w**2 - w0sq) / (w * bw)
    g = 1.0 / (1.0 + x ** (2 * order))
    g[0] = 0.0
    return g


def _bandpass_fft(x: np.ndarray, fs: float) -> np.ndarray:
    n = len(x)
    return np.fft.irfft(np.fft.rfft(x) * _zero_phase_bandpass_gain(n, fs), n)


class Simulation:
    """A seeded simulated microwire recording (see the module docstring)."""

    def __init__(
        self,
        seed: int = 0,
        n_channels: int = 8,
        duration_s: float = 3.0,
        sampling_rate: float = 30000.0,
        max_units_per_channel: int = 4,
        rate_range_hz: tuple[float, float] = (1.0, 30.0),
        refractory_ms: float = 2.0,
        amplitude_range_uv: tuple[float, float] = (50.0, 300.0),
        min_size_ratio: float = 1.4,
        noise_range_uv: tuple[float, float] = (6.0, 12.0),
        positive_fraction: float = 0.1,
        lfp_uv: float = 40.0,
        dc_range_uv: float = 300.0,
        n_digital_inputs: int = 2,
        pulses_per_input: int | None = None,
        pulse_ms: float = 50.0,
        trial_spacing_s: float | None = None,
        din_style: str = "legacy",
        dead_channels: tuple[int, ...] = (),
        weak_channels: tuple[int, ...] = (),
        bridged_pairs: tuple[tuple[int, int], ...] = (),
        phenomena: Phenomena | None = None,
    ):
        if n_channels < 1:
            raise ValueError(f"n_channels must be >= 1, not {n_channels}")
        if din_style not in ("legacy", "rhx"):
            raise ValueError(f"din_style must be 'legacy' or 'rhx', not {din_style!r}")
        self.seed = int(seed)
        self.fs = float(sampling_rate)
        self.n_channels = int(n_channels)
        self.n_samples = int(duration_s * self.fs) // _ALIGN * _ALIGN
        if self.n_samples < _ALIGN:
            raise ValueError(f"duration {duration_s} s is too short (at least {_ALIGN / self.fs:.3f} s)")
        self.din_style = din_style
        self.dead_channels = tuple(int(c) for c in dead_channels)
        self.weak_channels = tuple(int(c) for c in weak_channels)
        self.bridged_pairs = tuple((int(a), int(b)) for a, b in bridged_pairs)
        self.phenomena = phenomena or Phenomena()
        self.phenomena.check(self.n_channels)
        # One generator, drawn from in this order (the same seed must give the same recording).
        rng = np.random.default_rng([self.seed, 0xB1EC])
        amps = self._draw_units(rng, max_units_per_channel, amplitude_range_uv, min_size_ratio, rate_range_hz,
                                positive_fraction)
        self._draw_spike_trains(rng, refractory_ms)
        self._scale_to_filtered_size(amps)
        self._draw_noise(rng, noise_range_uv)
        self._draw_lfp_and_dc(rng, lfp_uv, dc_range_uv)
        self.car_group = self.phenomena.car_groups(self.n_channels)
        self.unit_background = np.zeros(len(self.unit_channel), dtype=bool)
        self.unit_bursting = np.zeros(len(self.unit_channel), dtype=bool)
        self.unit_drift = np.zeros(len(self.unit_channel))
        self.burst_position = [np.zeros(len(t), dtype=np.int64) for t in self.spikes_exact]
        if self.phenomena.active:
            self._add_phenomena(np.random.default_rng([self.seed, 0xF00D]), refractory_ms, rate_range_hz,
                                positive_fraction)

        # --- digital inputs: non-overlapping pulses, one at a time across inputs
        self.din_on, self.din_off, self.din_ch = self._pulses(
            np.random.default_rng([self.seed, 0xD1D1]), n_digital_inputs, pulses_per_input, pulse_ms,
            trial_spacing_s,
        )
        self.n_din = int(n_digital_inputs)

    def _draw_units(self, rng, max_units_per_channel, amplitude_range_uv, min_size_ratio, rate_range_hz,
                    positive_fraction) -> np.ndarray:
        """Units: count per wire, shapes, sizes, rates. Returns the drawn sizes (band-passed
        extremum, microvolts)."""
        fs = self.fs
        nch = self.n_channels
        per_wire = rng.integers(0, max_units_per_channel + 1, size=nch)
        for c in list(self.dead_channels) + list(self.weak_channels) + [b for _, b in self.bridged_pairs]:
            per_wire[c] = 0  # a dead wire, or a copy of its bridged partner, has no units of its own
        self.unit_channel = np.repeat(np.arange(nch), per_wire).astype(np.int64)
        nu = len(self.unit_channel)
        lo, hi = np.log(amplitude_range_uv[0]), np.log(amplitude_range_uv[1])
        amps = np.zeros(nu)
        for c in range(nch):
            idx = np.flatnonzero(self.unit_channel == c)
            for _ in range(1000):
                v = np.exp(rng.uniform(lo, hi, size=len(idx)))
                s = np.sort(v)
                if len(s) < 2 or np.all(s[1:] / s[:-1] >= min_size_ratio):
                    break
            else:  # evenly spaced sizes when random draws keep colliding
                v = amplitude_range_uv[0] * min_size_ratio ** np.arange(len(idx))
            amps[idx] = v
        self.rates = np.exp(rng.uniform(np.log(rate_range_hz[0]), np.log(rate_range_hz[1]), size=nu))
        self._shape = self._draw_shapes(rng, amps, positive_fraction)
        self.t_before, self.t_after = int(round(1.5e-3 * fs)), int(round(3.0e-3 * fs))
        self.templates = np.stack([self._template(u, 0.0) for u in range(nu)]) if nu else np.zeros((0, 0))
        return amps

    @staticmethod
    def _draw_shapes(rng, amps: np.ndarray, positive_fraction: float) -> np.ndarray:
        """Each unit's shape parameters (sign x size, trough width, repolarisation, ...)."""
        nu = len(amps)
        sign = np.where(rng.random(nu) < positive_fraction, 1.0, -1.0)
        width = rng.uniform(0.08, 0.22, size=nu)  # trough sigma, ms (narrow = fast spiking)
        repol = rng.uniform(0.15, 0.5, size=nu)
        repol_delay = rng.uniform(0.25, 0.6, size=nu) + width
        repol_width = rng.uniform(0.2, 0.5, size=nu)
        pre = rng.uniform(0.0, 0.12, size=nu)
        return np.stack([sign * amps, width, repol, repol_delay, repol_width, pre], axis=1)

    def _draw_spike_trains(self, rng, refractory_ms, units=None) -> None:
        """Spike trains: Poisson with a dead time, and each spike's amplitude jitter."""
        fs = self.fs
        refr = refractory_ms * fs / 1000.0
        if units is None:
            self.spikes_exact: list[np.ndarray] = []
            units = range(len(self.unit_channel))
        start = len(self.spikes_exact)
        for u in units:
            mean_isi = fs / self.rates[u]
            n_draw = int(self.n_samples / mean_isi * 1.5) + 20
            isi = refr + rng.exponential(max(mean_isi - refr, 1.0), size=n_draw)
            t = np.cumsum(isi) + rng.uniform(0, mean_isi)
            t = t[(t >= self.t_before + 1) & (t < self.n_samples - self.t_after - 1)]
            self.spikes_exact.append(t)
        jitter = [np.clip(rng.normal(1.0, 0.05, size=len(t)), 0.8, 1.2) for t in self.spikes_exact[start:]]
        self.amp_jitter = (self.amp_jitter if start else []) + jitter

    def _scale_to_filtered_size(self, amps: np.ndarray, start: int = 0) -> None:
        """Filtered template extremum: the ground-truth time convention, and the size a spike-band
        detector sees (units from ``start`` on)."""
        fs = self.fs
        nu = len(self.unit_channel)
        if start == 0:
            self.peak_shift = np.zeros(nu)  # samples, sub-sample (parabolic) precision
            self.peak_uv = np.zeros(nu)
        else:
            self.peak_shift = np.concatenate([self.peak_shift, np.zeros(nu - start)])
            self.peak_uv = np.concatenate([self.peak_uv, np.zeros(nu - start)])
        pad = 2048
        for u in range(start, nu):
            w = np.zeros(pad)
            w[pad // 2 - self.t_before: pad // 2 + self.t_after] = self.templates[u]
            wf = _bandpass_fft(w, fs)
            i = int(np.argmax(np.abs(wf)))
            y0, y1, y2 = np.abs(wf[i - 1: i + 2])
            den = y0 - 2 * y1 + y2
            self.peak_shift[u] = i - pad // 2 + (0.5 * (y0 - y2) / den if den != 0 else 0.0)
            # scale the unit so its band-passed extremum is the drawn size: sizes (and the
            # same-wire size ratios) are what a spike-band detector sees
            scale = amps[u - start] / abs(wf[i])
            self._shape[u, 0] *= scale
            self.templates[u] *= scale
            self.peak_uv[u] = wf[i] * scale

    def _draw_noise(self, rng, noise_range_uv) -> None:
        """Noise: white noise through a low-pass FIR, scaled to the wanted 300-3000 Hz std."""
        fs = self.fs
        self.noise_inband = rng.uniform(*noise_range_uv, size=self.n_channels)
        self.noise_inband[list(self.dead_channels)] = 0.0
        self.noise_inband[list(self.weak_channels)] = 0.5  # a broken wire: LFP, hardly any noise
        k = np.arange(_FIR_TAPS) - _FIR_TAPS // 2
        fc = 5000.0 / fs
        fir = 2 * fc * np.sinc(2 * fc * k) * np.hamming(_FIR_TAPS)
        nfft = 1 << 16
        h2 = np.abs(np.fft.rfft(fir, nfft)) ** 2
        # in-band std of unit white noise through the FIR = sqrt(mean |H|^2 |G|^2) over frequency
        inband = np.sqrt(np.mean(h2 * _zero_phase_bandpass_gain(nfft, fs) ** 2))
        self.fir = fir / inband
        self.noise_key = int(rng.integers(2**31))

    def _draw_lfp_and_dc(self, rng, lfp_uv, dc_range_uv) -> None:
        """LFP (five sines per channel, two shared by all) and a DC offset per channel."""
        nch = self.n_channels
        self.lfp_f = rng.uniform(1.0, 100.0, size=(nch, 5))
        self.lfp_a = rng.uniform(0.2, 1.0, size=(nch, 5)) * lfp_uv / 3
        self.lfp_p = rng.uniform(0, 2 * np.pi, size=(nch, 5))
        self.common_f = rng.uniform(2.0, 12.0, size=2)
        self.common_a = rng.uniform(0.5, 1.0, size=2) * lfp_uv
        self.dc = rng.uniform(-dc_range_uv, dc_range_uv, size=nch)
        self.bridge_noise = 2.0  # uV of independent noise on the bridged copy

    def _add_phenomena(self, rng, refractory_ms, rate_range_hz, positive_fraction) -> None:
        """Large and background units, bursts, drift, and the groups' common-mode noise and hum
        (simulate/phenomena.py), drawn from ``rng`` in that order."""
        ph, nch = self.phenomena, self.n_channels
        large = [(int(w), float(x) * self.noise_inband[int(w)]) for w, x in ph.large_units]
        bg_wires = np.repeat(np.arange(nch), ph.background_units_per_wire)
        bg_wires = bg_wires[~np.isin(bg_wires, list(self.dead_channels))]
        bg_sizes = rng.uniform(*ph.background_snr, size=len(bg_wires)) * self.noise_inband[bg_wires]
        wires = np.array([w for w, _ in large] + list(bg_wires), dtype=np.int64)
        sizes = np.array([a for _, a in large] + list(bg_sizes))
        start = len(self.unit_channel)
        if len(wires):
            lo, hi = rate_range_hz
            rates = np.exp(rng.uniform(np.log(lo), np.log(hi), size=len(large)))
            rates = np.concatenate([rates, rng.uniform(*ph.background_rate_hz, size=len(bg_wires))])
            self.unit_channel = np.concatenate([self.unit_channel, wires])
            self.rates = np.concatenate([self.rates, rates])
            shapes = self._draw_shapes(rng, sizes, positive_fraction if not large else 0.0)
            self._shape = np.concatenate([self._shape.reshape(-1, 6), shapes])
            new = np.stack([self._template(u, 0.0) for u in range(start, len(wires) + start)])
            self.templates = np.concatenate([self.templates.reshape(-1, new.shape[1]), new])
            self._draw_spike_trains(rng, refractory_ms, range(start, start + len(wires)))
            self._scale_to_filtered_size(sizes, start)
        nu = len(self.unit_channel)
        self.unit_background = np.arange(nu) >= start + len(large)
        neuron = ~self.unit_background
        self.unit_bursting = neuron & (rng.random(nu) < ph.burst_fraction)
        drifting = neuron & (rng.random(nu) < ph.drift_fraction)
        self.unit_drift = np.where(drifting, rng.uniform(*ph.drift_range, size=nu) * rng.choice([-1.0, 1.0], size=nu),
                                   0.0)
        refr = refractory_ms * self.fs / 1000.0
        self.burst_position = []
        for u in range(nu):
            t, g = self.spikes_exact[u], self.amp_jitter[u]
            p = np.zeros(len(t), dtype=np.int64)
            if self.unit_bursting[u]:
                t, g, p = phen.add_bursts(rng, t, g, ph, self.fs, refr, self.n_samples - self.t_after - 1)
            if self.unit_drift[u]:
                g = g * phen.drift_gain(t, self.unit_drift[u], self.n_samples)
            self.spikes_exact[u], self.amp_jitter[u] = t, g
            self.burst_position.append(p)
        n_groups = int(self.car_group.max()) + 1
        self.hum_phase = rng.uniform(0, 2 * np.pi, size=(n_groups, ph.hum_harmonics))
        self.common_key = int(rng.integers(2**31))

    def _common_mode(self, s0: int, s1: int) -> np.ndarray:
        """Each CAR group's common-mode noise and hum for samples [s0, s1) (groups x samples)."""
        ph = self.phenomena
        n_groups = int(self.car_group.max()) + 1
        out = np.zeros((n_groups, s1 - s0))
        if ph.common_noise_uv > 0:
            w = self._white(s0 - _FIR_TAPS + 1, s1, key=self.common_key, rows=n_groups)
            for g in range(n_groups):
                out[g] = np.convolve(w[g], self.fir, mode="valid") * ph.common_noise_uv
        if ph.hum_uv > 0:
            t = np.arange(s0, s1) / self.fs
            for g in range(n_groups):
                out[g] += phen.hum(t, ph, self.hum_phase[g])
        return out

    # ------------------------------------------------------------------------------------------
    def _template(self, u: int, frac: float) -> np.ndarray:
        """Template of unit u sampled at t = (i - t_before - frac) / fs, microvolts."""
        a, width, repol, delay, rwidth, pre = self._shape[u]
        i = np.arange(-self.t_before, self.t_after)
        t = ((i[None, :] - np.asarray(frac)[:, None]) if np.ndim(frac) else (i - frac)) * 1000.0 / self.fs  # ms
        g = lambda m, s: np.exp(-0.5 * ((t - m) / s) ** 2)  # noqa: E731
        return -a * (-g(0.0, width) + repol * g(delay, rwidth) - pre * g(-2.5 * width, width))

    def _pulses(self, rng, n_din, per_input, pulse_ms, spacing_s=None):
        """Pulse onsets in random order across inputs, at least ``spacing_s`` apart (a taste
        experiment's trials are 10-30 s apart; None: two pulse lengths, as dense as possible)."""
        fs, n = self.fs, self.n_samples
        plen = max(1, int(round(pulse_ms * fs / 1000.0)))
        gap = plen * 2 if spacing_s is None else max(plen * 2, int(round(spacing_s * fs)) - plen)
        margin = int(0.1 * n)
        if per_input is None:
            fit = (n - 2 * margin) // max(1, n_din * (plen + gap))
            per_input = int(min(30, max(fit // 2, min(fit, 1))))
        tot = n_din * per_input
        if tot == 0:
            z = np.zeros(0, np.int64)
            return z, z, z
        slack = n - 2 * margin - tot * (plen + gap)
        if slack < 0:
            raise ValueError(f"{tot} pulses of {pulse_ms} ms do not fit in {n / fs:.2f} s")
        u = np.sort(rng.integers(0, slack + 1, size=tot))
        on = margin + u + np.arange(tot) * (plen + gap)
        ch = rng.permutation(np.repeat(np.arange(n_din), per_input))
        return on.astype(np.int64), (on + plen).astype(np.int64), ch.astype(np.int64)

    # ------------------------------------------------------------------------------------------
    @property
    def channel_names(self) -> list[str]:
        return [f"{'ABCDEFGH'[c // 32]}-{c % 32:03d}" for c in range(self.n_channels)]

    @property
    def din_names(self) -> list[str]:
        """Intan's native names of the digital inputs in this simulation's naming style."""
        if self.din_style == "legacy":
            return [f"DIN-{k:02d}" for k in range(self.n_din)]
        return [f"DIGITAL-IN-{k + 1:02d}" for k in range(self.n_din)]

    def ground_truth(self) -> GroundTruth:
        times = [np.round(t + self.peak_shift[u]).astype(np.int64) for u, t in enumerate(self.spikes_exact)]
        din = {}
        for k, name in enumerate(self.din_names):
            sel = self.din_ch == k
            din[f"dig_in_{int(name.rsplit('-', 1)[1]):02d}"] = (self.din_on[sel].copy(), self.din_off[sel].copy())
        return GroundTruth(
            sampling_rate=self.fs, n_samples=self.n_samples, channel_names=self.channel_names,
            unit_channel=self.unit_channel.copy(), unit_rate_hz=self.rates.copy(),
            unit_peak_uv=self.peak_uv.copy(), unit_trough_width_ms=self._shape[:, 1] * 2.355,
            templates=self.templates.copy(), template_center=self.t_before, spike_times=times,
            noise_uv=self.noise_inband.copy(), digital_inputs=din, seed=self.seed,
            unit_background=self.unit_background.copy(), unit_bursting=self.unit_bursting.copy(),
            unit_drift=self.unit_drift.copy(), car_group=self.car_group.copy(),
        )

    def _white(self, s0: int, s1: int, key: int | None = None, rows: int | None = None) -> np.ndarray:
        """Unit white noise for samples [s0, s1) (may start before 0), channels (or ``rows``) x
        samples; the same values whatever the chunking (one Generator per fixed block, last blocks
        cached)."""
        b0, b1 = s0 // _NOISE_BLOCK, (s1 - 1) // _NOISE_BLOCK
        key = self.noise_key if key is None else key
        rows = self.n_channels if rows is None else rows
        cache = self.__dict__.setdefault("_white_cache", {}).setdefault(key, {})
        parts = []
        for blk in range(b0, b1 + 1):
            if blk not in cache:
                g = np.random.default_rng([key, blk + 2**20])
                cache[blk] = np.ascontiguousarray(g.standard_normal((_NOISE_BLOCK, rows)).T)
                for old in [k for k in cache if k < blk - 1]:
                    del cache[old]
            parts.append(cache[blk])
        x = parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)
        return x[:, s0 - b0 * _NOISE_BLOCK: s1 - b0 * _NOISE_BLOCK]

    def chunk(self, s0: int, s1: int) -> np.ndarray:
        """Samples [s0, s1) as int16 counts (samples x channels), 0.195 uV per count."""
        fs, nch = self.fs, self.n_channels
        m = s1 - s0
        w = self._white(s0 - _FIR_TAPS + 1, s1)
        x = np.empty((nch, m))  # channel-major while building: each row is contiguous
        for c in range(nch):
            x[c] = np.convolve(w[c], self.fir, mode="valid") * self.noise_inband[c]
        # The LFP (<= 100 Hz) is computed on a fixed grid of every 8th sample and interpolated
        # (error < 0.01 count): sines dominate the cost otherwise. The grid is absolute, so the
        # samples do not depend on the chunking.
        g0, g1 = s0 // _LFP_STEP, -(-s1 // _LFP_STEP) + 1
        tg = np.arange(g0, g1) * _LFP_STEP / fs
        common = sum(self.common_a[k] * np.sin(2 * np.pi * self.common_f[k] * tg) for k in range(2))
        phase = 2 * np.pi * self.lfp_f.reshape(-1, 1) * tg[None, :] + self.lfp_p.reshape(-1, 1)
        lfp = (self.lfp_a.reshape(-1, 1) * np.sin(phase)).reshape(nch, -1, len(tg)).sum(axis=1) + common[None, :]
        at = np.arange(s0, s1) / _LFP_STEP - g0
        for c in range(nch):
            x[c] += np.interp(at, np.arange(len(tg)), lfp[c]) + self.dc[c]
        if self.phenomena.common_noise_uv > 0 or self.phenomena.hum_uv > 0:
            x += self._common_mode(s0, s1)[self.car_group]
        offsets = np.arange(-self.t_before, self.t_after)
        for u in range(len(self.unit_channel)):
            t_ex = self.spikes_exact[u]
            i0, i1 = np.searchsorted(t_ex, [s0 - self.t_after, s1 + self.t_before])
            if i1 <= i0:
                continue
            sel = np.arange(i0, i1)
            base = np.floor(t_ex[sel]).astype(np.int64)
            wav = self._template(u, t_ex[sel] - base) * self.amp_jitter[u][sel][:, None]
            idx = base[:, None] + offsets[None, :] - s0
            ok = (idx >= 0) & (idx < m)
            np.add.at(x[self.unit_channel[u]], idx[ok], wav[ok])
        for a, b in self.bridged_pairs:
            x[b] = x[a] + self.bridge_noise * w[b, _FIR_TAPS - 1:]
        for c in self.dead_channels:
            x[c] = self.dc[c]
        q = np.round(x / MICROVOLTS_PER_BIT)
        return np.ascontiguousarray(np.clip(q, -32768, 32767).astype(np.int16).T)

    def din_words(self, s0: int, s1: int) -> np.ndarray:
        """uint16 digital-input word per sample (bit k = input k)."""
        w = np.zeros(s1 - s0, dtype=np.uint16)
        for i in np.flatnonzero((self.din_off > s0) & (self.din_on < s1)):
            a, b = max(self.din_on[i], s0) - s0, min(self.din_off[i], s1) - s0
            w[a:b] |= np.uint16(1 << int(self.din_ch[i]))
        return w

    # ------------------------------------------------------------------------------------------
    def write(
        self,
        directory: str | os.PathLike,
        layout: str = "one file per channel",
        *,
        rhd_version: tuple[int, int] = (3, 0),
        rhd_file_seconds: float | None = None,
        rhd_extra_sections: bool = False,
        rhd_temp_sensors: int = 0,
        save_ground_truth: bool = True,
        progress=None,
    ) -> GroundTruth:
        """Write the recording into `directory` (created) in one Intan layout; returns (and by
        default saves as ``ground_truth.npz``) the ground truth."""
        return self.write_many({directory: layout}, rhd_version=rhd_version, rhd_file_seconds=rhd_file_seconds,
                               rhd_extra_sections=rhd_extra_sections, rhd_temp_sensors=rhd_temp_sensors,
                               save_ground_truth=save_ground_truth,
                               progress=progress)

    def write_many(self, targets: dict, *, rhd_version=(3, 0), rhd_file_seconds=None, rhd_extra_sections=False,
                   rhd_temp_sensors=0, save_ground_truth=True, progress=None) -> GroundTruth:
        """Write several layouts in one pass: ``targets`` maps directory -> layout."""
        writers = []
        for d, layout in targets.items():
            writers.append(open_writer(Path(d), layout, self, rhd_version, rhd_file_seconds, rhd_extra_sections,
                                       rhd_temp_sensors))
        try:
            for s0 in range(0, self.n_samples, _CHUNK):
                s1 = min(self.n_samples, s0 + _CHUNK)
                q = self.chunk(s0, s1)
                din = self.din_words(s0, s1)
                for w in writers:
                    w.write(s0, q, din)
                if progress is not None:
                    progress(s1, self.n_samples)
        finally:
            for w in writers:
                w.close()
        gt = self.ground_truth()
        for d in targets:
            if save_ground_truth:
                gt.save(Path(d) / "ground_truth.npz")
            if self.phenomena.car_group_size is not None:
                self.write_layout(d)
        return gt

    def write_layout(self, directory) -> None:
        """The folder's electrode layout with this simulation's CAR groups (``G00``, ``G01``, ...),
        as ``blechrs init`` would keep it."""
        rows = default_layout(open_recording(directory))
        save_layout(directory, [dataclasses.replace(r, car_group=f"G{int(self.car_group[r.electrode_ind]):02d}")
                                for r in rows])
