"""Seeded ground-truth recordings written as real Intan folders.

A :class:`Simulation` is a microwire bundle: every wire (channel) carries 0-4 units with their
own spike shape (trough width, repolarisation, polarity) and size (``amplitude_range_uv`` is the
extremum after the 300-3000 Hz band-pass; units on one wire differ by at least ``min_size_ratio``), Poisson trains at 1-30 Hz with a refractory period, band-limited
noise, a wide-band LFP and a DC offset per channel, and "taste delivery" pulses on board digital
inputs. The same seed gives the same samples, in any layout and any chunking.

    >>> from blechrs.simulate import Simulation
    >>> sim = Simulation(seed=1, n_channels=8, duration_s=3.0)
    >>> gt = sim.write("rec", layout="one file per channel")   # info.rhd, amp-A-000.dat, ...
    >>> gt.spike_times[0], gt.unit_channel[0]

Layouts: ``"one file per channel"`` (info.rhd, time.dat, amp-A-NNN.dat, board-DIN-NN.dat or,
with ``din_style="rhx"``, board-DIGITAL-IN-NN.dat), ``"one file per signal type"`` (info.rhd,
time.dat, amplifier.dat, digitalin.dat) and ``"traditional"`` (.rhd files with the header and
128-sample blocks, or 60-sample blocks for ``rhd_version=(1, x)``, optionally split over several
files and carrying auxiliary, supply, temperature, ADC and digital-output sections too).
(neo 0.14 cannot read .rhd files with temperature sensors; ``rhd_temp_sensors`` defaults to 0.)

The sample count is the duration rounded down to a multiple of 1920 samples (the common multiple
of the 60- and 128-sample .rhd blocks) so every layout holds exactly the same samples.
Ground truth spike times are the sample of each spike's extremum after a 300-3000 Hz zero-phase
band-pass (the convention of the sorter's detector).

Faults for QA tests: ``dead_channels`` are flat (DC only), ``weak_channels`` carry LFP and 0.5 uV
of noise but no units, and in ``bridged_pairs`` (a, b) channel b is a copy of a plus 2 uV noise.
"""

from __future__ import annotations

import datetime
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from blechrs.io.recording import MICROVOLTS_PER_BIT

LAYOUTS = ("one file per channel", "one file per signal type", "traditional")
RHD_MAGIC = 0xC6912702
_ALIGN = 1920  # lcm(60, 128)
_CHUNK = 15 * _ALIGN  # samples generated at a time (0.96 s at 30 kHz)
_NOISE_BLOCK = 1 << 15
_FIR_TAPS = 63
_LFP_STEP = 8


@dataclass
class GroundTruth:
    """What a simulated recording contains. Spike times are int64 sample indices per unit."""

    sampling_rate: float
    n_samples: int
    channel_names: list[str]
    unit_channel: np.ndarray
    """Channel (wire) index of each unit."""
    unit_rate_hz: np.ndarray
    unit_peak_uv: np.ndarray
    """Signed extremum of the band-passed template, microvolts."""
    unit_trough_width_ms: np.ndarray
    templates: np.ndarray
    """Raw (unfiltered) template of each unit, microvolts, extremum at ``template_center``."""
    template_center: int
    spike_times: list[np.ndarray]
    noise_uv: np.ndarray
    """Standard deviation of each channel's noise in the 300-3000 Hz band, microvolts."""
    digital_inputs: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    seed: int = 0

    @property
    def n_units(self) -> int:
        return len(self.unit_channel)

    def units_on(self, channel: int) -> list[int]:
        return [int(u) for u in np.flatnonzero(self.unit_channel == channel)]

    def save(self, path: str | os.PathLike) -> None:
        """Write an .npz (spike_times_uNNN per unit, unit tables, digital inputs)."""
        arrays = dict(
            sampling_rate=self.sampling_rate, n_samples=self.n_samples, seed=self.seed,
            channel_names=np.array(self.channel_names), unit_channel=self.unit_channel,
            unit_rate_hz=self.unit_rate_hz, unit_peak_uv=self.unit_peak_uv,
            unit_trough_width_ms=self.unit_trough_width_ms, templates=self.templates,
            template_center=self.template_center, noise_uv=self.noise_uv,
            din_names=np.array(sorted(self.digital_inputs), dtype=str),
        )
        for u, t in enumerate(self.spike_times):
            arrays[f"spike_times_u{u:03d}"] = t
        for name, (on, off) in self.digital_inputs.items():
            arrays[f"{name}_onsets"] = on
            arrays[f"{name}_offsets"] = off
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp.npz")
        np.savez(tmp, **arrays)
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "GroundTruth":
        z = np.load(path)
        n_units = len(z["unit_channel"])
        return cls(
            sampling_rate=float(z["sampling_rate"]), n_samples=int(z["n_samples"]),
            channel_names=[str(x) for x in z["channel_names"]], unit_channel=z["unit_channel"],
            unit_rate_hz=z["unit_rate_hz"], unit_peak_uv=z["unit_peak_uv"],
            unit_trough_width_ms=z["unit_trough_width_ms"], templates=z["templates"],
            template_center=int(z["template_center"]),
            spike_times=[z[f"spike_times_u{u:03d}"] for u in range(n_units)], noise_uv=z["noise_uv"],
            digital_inputs={str(n): (z[f"{n}_onsets"], z[f"{n}_offsets"]) for n in z["din_names"]},
            seed=int(z["seed"]),
        )


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
        din_style: str = "legacy",
        dead_channels: tuple[int, ...] = (),
        weak_channels: tuple[int, ...] = (),
        bridged_pairs: tuple[tuple[int, int], ...] = (),
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
        fs = self.fs
        rng = np.random.default_rng([self.seed, 0xB1EC])
        nch = self.n_channels

        # --- units: count per wire, shapes, sizes, rates
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
        sign = np.where(rng.random(nu) < positive_fraction, 1.0, -1.0)
        width = rng.uniform(0.08, 0.22, size=nu)  # trough sigma, ms (narrow = fast spiking)
        repol = rng.uniform(0.15, 0.5, size=nu)
        repol_delay = rng.uniform(0.25, 0.6, size=nu) + width
        repol_width = rng.uniform(0.2, 0.5, size=nu)
        pre = rng.uniform(0.0, 0.12, size=nu)
        self._shape = np.stack([sign * amps, width, repol, repol_delay, repol_width, pre], axis=1)
        self.t_before, self.t_after = int(round(1.5e-3 * fs)), int(round(3.0e-3 * fs))
        self.templates = np.stack([self._template(u, 0.0) for u in range(nu)]) if nu else np.zeros((0, 0))

        # --- spike trains (Poisson with a dead time)
        refr = refractory_ms * fs / 1000.0
        self.spikes_exact: list[np.ndarray] = []
        for u in range(nu):
            mean_isi = fs / self.rates[u]
            n_draw = int(self.n_samples / mean_isi * 1.5) + 20
            isi = refr + rng.exponential(max(mean_isi - refr, 1.0), size=n_draw)
            t = np.cumsum(isi) + rng.uniform(0, mean_isi)
            t = t[(t >= self.t_before + 1) & (t < self.n_samples - self.t_after - 1)]
            self.spikes_exact.append(t)
        self.amp_jitter = [np.clip(rng.normal(1.0, 0.05, size=len(t)), 0.8, 1.2) for t in self.spikes_exact]

        # --- filtered template extremum: the ground-truth time convention
        self.peak_shift = np.zeros(nu)  # samples, sub-sample (parabolic) precision
        self.peak_uv = np.zeros(nu)
        pad = 2048
        for u in range(nu):
            w = np.zeros(pad)
            w[pad // 2 - self.t_before: pad // 2 + self.t_after] = self.templates[u]
            wf = _bandpass_fft(w, fs)
            i = int(np.argmax(np.abs(wf)))
            y0, y1, y2 = np.abs(wf[i - 1: i + 2])
            den = y0 - 2 * y1 + y2
            self.peak_shift[u] = i - pad // 2 + (0.5 * (y0 - y2) / den if den != 0 else 0.0)
            # scale the unit so its band-passed extremum is the drawn size: sizes (and the
            # same-wire size ratios) are what a spike-band detector sees
            scale = amps[u] / abs(wf[i])
            self._shape[u, 0] *= scale
            self.templates[u] *= scale
            self.peak_uv[u] = wf[i] * scale

        # --- noise: white noise through a low-pass FIR, scaled to the wanted 300-3000 Hz std
        self.noise_inband = rng.uniform(*noise_range_uv, size=nch)
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

        # --- LFP and DC
        self.lfp_f = rng.uniform(1.0, 100.0, size=(nch, 5))
        self.lfp_a = rng.uniform(0.2, 1.0, size=(nch, 5)) * lfp_uv / 3
        self.lfp_p = rng.uniform(0, 2 * np.pi, size=(nch, 5))
        self.common_f = rng.uniform(2.0, 12.0, size=2)
        self.common_a = rng.uniform(0.5, 1.0, size=2) * lfp_uv
        self.dc = rng.uniform(-dc_range_uv, dc_range_uv, size=nch)
        self.bridge_noise = 2.0  # uV of independent noise on the bridged copy

        # --- digital inputs: non-overlapping pulses, one at a time across inputs
        self.din_on, self.din_off, self.din_ch = self._pulses(
            np.random.default_rng([self.seed, 0xD1D1]), n_digital_inputs, pulses_per_input, pulse_ms
        )
        self.n_din = int(n_digital_inputs)

    # ------------------------------------------------------------------------------------------
    def _template(self, u: int, frac: float) -> np.ndarray:
        """Template of unit u sampled at t = (i - t_before - frac) / fs, microvolts."""
        a, width, repol, delay, rwidth, pre = self._shape[u]
        i = np.arange(-self.t_before, self.t_after)
        t = ((i[None, :] - np.asarray(frac)[:, None]) if np.ndim(frac) else (i - frac)) * 1000.0 / self.fs  # ms
        g = lambda m, s: np.exp(-0.5 * ((t - m) / s) ** 2)  # noqa: E731
        return -a * (-g(0.0, width) + repol * g(delay, rwidth) - pre * g(-2.5 * width, width))

    def _pulses(self, rng, n_din, per_input, pulse_ms):
        fs, n = self.fs, self.n_samples
        plen = max(1, int(round(pulse_ms * fs / 1000.0)))
        gap = plen * 2
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
        )

    def _white(self, s0: int, s1: int) -> np.ndarray:
        """Unit white noise for samples [s0, s1) (may start before 0), channels x samples; the
        same values whatever the chunking (one Generator per fixed block, last blocks cached)."""
        b0, b1 = s0 // _NOISE_BLOCK, (s1 - 1) // _NOISE_BLOCK
        cache = self.__dict__.setdefault("_white_cache", {})
        parts = []
        for blk in range(b0, b1 + 1):
            if blk not in cache:
                g = np.random.default_rng([self.noise_key, blk + 2**20])
                cache[blk] = np.ascontiguousarray(g.standard_normal((_NOISE_BLOCK, self.n_channels)).T)
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
            d = Path(d)
            if layout not in LAYOUTS:
                raise ValueError(f"unknown layout {layout!r}; choose from {', '.join(LAYOUTS)}")
            d.mkdir(parents=True, exist_ok=True)
            if layout == "one file per channel":
                writers.append(_PerChannelWriter(d, self))
            elif layout == "one file per signal type":
                writers.append(_PerSignalWriter(d, self))
            else:
                writers.append(_RhdWriter(d, self, tuple(rhd_version), rhd_file_seconds, rhd_extra_sections,
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
        if save_ground_truth:
            for d in targets:
                gt.save(Path(d) / "ground_truth.npz")
        return gt


# ----------------------------------------------------------------------------------------------
# Intan writers
# ----------------------------------------------------------------------------------------------
def _qstring(s: str) -> bytes:
    if not s:
        return struct.pack("<I", 0xFFFFFFFF)
    b = s.encode("utf-16-le")
    return struct.pack("<I", len(b)) + b


def rhd_header(sim: Simulation, version=(3, 0), extra_sections=False, note="", temp_sensors=0) -> bytes:
    """RHD2000 header bytes (info.rhd, or the start of a .rhd file) for a simulation."""
    major, minor = version
    o = bytearray()
    o += struct.pack("<Ihh", RHD_MAGIC, major, minor)
    o += struct.pack("<f", sim.fs)
    o += struct.pack("<h", 1)
    o += struct.pack("<ffffff", 1.0, 0.1, 7500.0, 1.0, 0.1, 7500.0)
    o += struct.pack("<h", 0)  # notch off
    o += struct.pack("<ff", 1000.0, 1000.0)
    o += _qstring(note or f"blechrs.simulate seed={sim.seed}") + _qstring("") + _qstring("")
    if (major, minor) >= (1, 1):
        o += struct.pack("<h", temp_sensors)  # temperature sensors
    if (major, minor) >= (1, 3):
        o += struct.pack("<h", 0)
    if major >= 2:
        o += _qstring("")
    groups = []
    for p in range((sim.n_channels + 31) // 32):
        letter = "ABCDEFGH"[p]
        n = min(32, sim.n_channels - 32 * p)
        chans = [(f"{letter}-{c:03d}", 0, c) for c in range(n)]
        if extra_sections:
            chans += [(f"{letter}-AUX{k + 1}", 1, 32 + k) for k in range(3)] + [(f"{letter}-VDD1", 2, 35)]
        groups.append((f"Port {letter}", letter, chans))
    if extra_sections:
        groups.append(("Board ADC Inputs", "ANALOG-IN", [("ANALOG-IN-01", 3, 0)]))
    if sim.n_din:
        groups.append(("Board Digital Inputs", "DIGITAL-IN", [(nm, 4, k) for k, nm in enumerate(sim.din_names)]))
    if extra_sections:
        groups.append(("Board Digital Outputs", "DIGITAL-OUT", [("DIGITAL-OUT-01", 5, 0)]))
    o += struct.pack("<h", len(groups))
    for name, prefix, chans in groups:
        o += _qstring(name) + _qstring(prefix)
        o += struct.pack("<hhh", 1, len(chans), sum(t == 0 for _, t, _ in chans))
        for nm, t, order in chans:
            o += _qstring(nm) + _qstring(nm)
            o += struct.pack("<hhhhhhhhhh", order, order, t, 1, order % 32, 0, 0, 0, 0, 0)
            o += struct.pack("<ff", 0.0, 0.0)
    return bytes(o)


class _PerChannelWriter:
    def __init__(self, d: Path, sim: Simulation):
        (d / "info.rhd").write_bytes(rhd_header(sim))
        self.amp = [open(d / f"amp-{n}.dat", "wb") for n in sim.channel_names]
        prefix = "board-DIN-" if sim.din_style == "legacy" else "board-DIGITAL-IN-"
        self.din = [open(d / f"board-{n}.dat", "wb") for n in sim.din_names]
        assert all(f.name.split("/")[-1].startswith(prefix) for f in self.din)
        self.time = open(d / "time.dat", "wb")

    def write(self, s0, q, din):
        for c, f in enumerate(self.amp):
            f.write(np.ascontiguousarray(q[:, c]).astype("<i2").tobytes())
        for k, f in enumerate(self.din):
            f.write(((din >> k) & 1).astype("<u2").tobytes())
        self.time.write(np.arange(s0, s0 + len(q), dtype="<i4").tobytes())

    def close(self):
        for f in self.amp + self.din + [self.time]:
            f.close()


class _PerSignalWriter:
    def __init__(self, d: Path, sim: Simulation):
        (d / "info.rhd").write_bytes(rhd_header(sim))
        self.amp = open(d / "amplifier.dat", "wb")
        self.din = open(d / "digitalin.dat", "wb") if sim.n_din else None
        self.time = open(d / "time.dat", "wb")

    def write(self, s0, q, din):
        self.amp.write(np.ascontiguousarray(q, dtype="<i2").tobytes())
        if self.din:
            self.din.write(din.astype("<u2").tobytes())
        self.time.write(np.arange(s0, s0 + len(q), dtype="<i4").tobytes())

    def close(self):
        for f in (self.amp, self.din, self.time):
            if f:
                f.close()


class _RhdWriter:
    """Traditional .rhd files: header + blocks; a new file every `file_seconds` (whole blocks),
    named <dir name>_YYMMDD_HHMMSS.rhd like the Intan software, time stamps continuing."""

    def __init__(self, d: Path, sim: Simulation, version, file_seconds, extra, temp_sensors=0):
        self.d, self.sim, self.extra = d, sim, extra
        self.n_temp = temp_sensors if tuple(version) >= (1, 1) else 0
        self.header = rhd_header(sim, version, extra, temp_sensors=self.n_temp)
        self.S = 128 if version[0] > 1 else 60
        self.ts_dtype = "<i4" if tuple(version) >= (1, 2) else "<u4"
        nch, S = sim.n_channels, self.S
        n_ports = (nch + 31) // 32
        fields = [("timestamp", self.ts_dtype, (S,)), ("amplifier", "<u2", (nch, S))]
        if extra:
            fields += [("aux", "<u2", (3 * n_ports, S // 4)), ("supply", "<u2", (n_ports,))]
        if self.n_temp:  # the temperature-sensor count exists from header version 1.1 on
            fields.append(("temp", "<i2", (self.n_temp,)))
        if extra:
            fields.append(("adc", "<u2", (1, S)))
        if sim.n_din:
            fields.append(("din", "<u2", (S,)))
        if extra:
            fields.append(("dout", "<u2", (S,)))
        self.dtype = np.dtype(fields)
        total_blocks = sim.n_samples // S
        per = total_blocks if not file_seconds else max(1, int(file_seconds * sim.fs) // S)
        self.blocks_per_file = per
        self.f = None
        self.in_file = 0
        self.t0 = datetime.datetime(2026, 1, 1, 12, 0, 0)
        self.last_time = None

    def _next_file(self, s0):
        if self.f:
            self.f.close()
        t = self.t0 + datetime.timedelta(seconds=int(s0 // self.sim.fs))
        if self.last_time is not None and t <= self.last_time:  # names must stay unique and sorted
            t = self.last_time + datetime.timedelta(seconds=1)
        self.last_time = t
        name = f"{self.d.name or 'rec'}_{t.strftime('%y%m%d_%H%M%S')}.rhd"
        self.f = open(self.d / name, "wb")
        self.f.write(self.header)
        self.in_file = 0

    def write(self, s0, q, din):
        S = self.S
        nb = len(q) // S  # chunks are multiples of 1920 = whole blocks
        b = 0
        while b < nb:
            if self.f is None or self.in_file == self.blocks_per_file:
                self._next_file(s0 + b * S)
            take = min(nb - b, self.blocks_per_file - self.in_file)
            blk = np.zeros(take, dtype=self.dtype)
            a0 = s0 + b * S
            sl = slice(b * S, (b + take) * S)
            blk["timestamp"] = np.arange(a0, a0 + take * S).reshape(take, S)
            blk["amplifier"] = (q[sl].astype(np.int32) + 32768).astype("<u2").reshape(take, S, -1).transpose(0, 2, 1)
            if self.extra:
                blk["aux"] = (np.arange(take * S // 4) % 1000 + 20000).reshape(take, 1, S // 4).astype("<u2")
                blk["supply"] = 44000
                blk["adc"] = (np.arange(a0, a0 + take * S) % 65536).reshape(take, 1, S).astype("<u2")
                blk["dout"] = 0xFFFF
            if self.n_temp:
                blk["temp"] = 3700
            if self.sim.n_din:
                blk["din"] = din[sl].reshape(take, S)
            self.f.write(blk.tobytes())
            self.in_file += take
            b += take

    def close(self):
        if self.f:
            self.f.close()


def simulate_recording(directory, layout: str = "one file per channel", seed: int = 0, **kwargs) -> GroundTruth:
    """One call: build a :class:`Simulation` from `kwargs` and write it in `layout`."""
    write_keys = {"rhd_version", "rhd_file_seconds", "rhd_extra_sections", "rhd_temp_sensors", "save_ground_truth",
                  "progress"}
    wk = {k: kwargs.pop(k) for k in list(kwargs) if k in write_keys}
    return Simulation(seed=seed, **kwargs).write(directory, layout, **wk)


def main(argv=None) -> None:
    """``python -m blechrs.simulate DIR [--layout ...] [--seed N] [--channels N] [--seconds S]``"""
    import argparse

    ap = argparse.ArgumentParser(prog="python -m blechrs.simulate", description=main.__doc__)
    ap.add_argument("directory")
    ap.add_argument("--layout", default=LAYOUTS[0], choices=LAYOUTS)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--channels", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--digital-inputs", type=int, default=4)
    ap.add_argument("--din-style", default="legacy", choices=("legacy", "rhx"))
    a = ap.parse_args(argv)
    sim = Simulation(seed=a.seed, n_channels=a.channels, duration_s=a.seconds, n_digital_inputs=a.digital_inputs,
                     din_style=a.din_style)
    gt = sim.write(a.directory, a.layout)
    print(f"{a.directory}: {a.layout}, {a.channels} channels, {gt.n_samples / gt.sampling_rate:.1f} s, "
          f"{gt.n_units} units, {sum(len(t) for t in gt.spike_times)} spikes, ground truth in ground_truth.npz")


if __name__ == "__main__":
    main()
