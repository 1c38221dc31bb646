"""A simulation written as an Intan folder, in one of three layouts.

Layouts: ``"one file per channel"`` (info.rhd, time.dat, amp-A-NNN.dat, board-DIN-NN.dat or,
with ``din_style="rhx"``, board-DIGITAL-IN-NN.dat), ``"one file per signal type"`` (info.rhd,
time.dat, amplifier.dat, digitalin.dat) and ``"traditional"`` (.rhd files with the header and
128-sample blocks, or 60-sample blocks for ``rhd_version=(1, x)``, optionally split over several
files and carrying auxiliary, supply, temperature, ADC and digital-output sections too).
(neo 0.14 cannot read .rhd files with temperature sensors; ``rhd_temp_sensors`` defaults to 0.)

The writers take the Simulation (``sim``) whose samples they write: its sampling rate, channel and
digital-input names, sample count.
"""

from __future__ import annotations

import datetime
import struct
from pathlib import Path

import numpy as np

LAYOUTS = ("one file per channel", "one file per signal type", "traditional")
RHD_MAGIC = 0xC6912702


def open_writer(d: Path, layout: str, sim, rhd_version, rhd_file_seconds, rhd_extra_sections, rhd_temp_sensors):
    """A writer of ``layout`` into the directory ``d`` (created): ``write(s0, q, din)`` for each
    chunk of samples, then ``close()``."""
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; choose from {', '.join(LAYOUTS)}")
    d.mkdir(parents=True, exist_ok=True)
    if layout == "one file per channel":
        return _PerChannelWriter(d, sim)
    if layout == "one file per signal type":
        return _PerSignalWriter(d, sim)
    return _RhdWriter(d, sim, tuple(rhd_version), rhd_file_seconds, rhd_extra_sections, rhd_temp_sensors)


def _qstring(s: str) -> bytes:
    if not s:
        return struct.pack("<I", 0xFFFFFFFF)
    b = s.encode("utf-16-le")
    return struct.pack("<I", len(b)) + b


def rhd_header(sim, version=(3, 0), extra_sections=False, note="", temp_sensors=0) -> bytes:
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
    def __init__(self, d: Path, sim):
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
    def __init__(self, d: Path, sim):
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

    def __init__(self, d: Path, sim, version, file_seconds, extra, temp_sensors=0):
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
