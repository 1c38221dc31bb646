"""A plain-numpy reader of traditional Intan .rhd files, written from Intan's published RHD2000
file format (header fields in order; data blocks of 60 samples for header major version 1, 128
from 2: timestamps, amplifier, auxiliary at 1/4 rate, supply voltage, temperature sensors, board
ADC, digital-in word, digital-out word). Independent of blechrs's Rust reader: the real-file
tests compare the two, and neo where neo can open the file."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

MAGIC = 0xC6912702


@dataclass
class Rhd:
    version: tuple[int, int]
    sampling_rate: float
    n_temp: int
    header_bytes: int
    channels: dict[int, list[dict]] = field(default_factory=dict)
    """signal type (0 amplifier, 1 aux, 2 supply, 3 board ADC, 4 digital in, 5 digital out) ->
    enabled channels in file order."""
    timestamps: np.ndarray | None = None
    amplifier: np.ndarray | None = None
    """channels x samples, int16 (the file's uint16 less 32768)."""
    digital_in: np.ndarray | None = None
    """uint16 word per sample, or None."""
    digital_out: np.ndarray | None = None
    temperature: np.ndarray | None = None
    n_blocks: int = 0


class _Buf:
    def __init__(self, b: bytes):
        self.b, self.i = b, 0

    def take(self, fmt: str):
        v = struct.unpack_from("<" + fmt, self.b, self.i)
        self.i += struct.calcsize("<" + fmt)
        return v if len(v) > 1 else v[0]

    def qstring(self) -> str:
        n = self.take("I")
        if n == 0xFFFFFFFF:
            return ""
        s = self.b[self.i:self.i + n].decode("utf-16-le")
        self.i += n
        return s


def read_rhd(path) -> Rhd:
    raw = Path(path).read_bytes()
    b = _Buf(raw)
    magic, major, minor = b.take("Ihh")
    assert magic == MAGIC, f"{path}: magic {magic:#x}"
    fs = b.take("f")
    b.take("hffffff")  # DSP enabled and cutoff, bandwidths (actual, desired)
    b.take("hff")  # notch mode, impedance test frequencies
    for _ in range(3):
        b.qstring()  # notes
    n_temp = b.take("h") if (major, minor) >= (1, 1) else 0
    if (major, minor) >= (1, 3):
        b.take("h")  # board mode
    if major >= 2:
        b.qstring()  # reference channel
    chans: dict[int, list[dict]] = {t: [] for t in range(6)}
    for _ in range(b.take("h")):
        b.qstring(), b.qstring()  # group name, prefix
        enabled, n, _n_amp = b.take("hhh")
        for _ in range(n):
            native, custom = b.qstring(), b.qstring()
            native_order, _custom_order, sig, ch_enabled = b.take("hhhh")
            b.take("hhhhhh")  # chip channel, board stream, spike-scope settings
            b.take("ff")  # impedance
            if enabled and ch_enabled:
                chans[sig].append(dict(native=native, custom=custom, native_order=native_order))
    rhd = Rhd((major, minor), fs, n_temp, b.i, chans)
    ns = 60 if major == 1 else 128
    n_amp, n_aux, n_sup, n_adc = (len(chans[t]) for t in (0, 1, 2, 3))
    has_din, has_dout = bool(chans[4]), bool(chans[5])
    layout = [("t", "<i4" if (major, minor) >= (1, 2) else "<u4", (ns,)), ("amp", "<u2", (n_amp, ns)),
              ("aux", "<u2", (n_aux, ns // 4)), ("sup", "<u2", (n_sup,)), ("temp", "<u2", (n_temp,)),
              ("adc", "<u2", (n_adc, ns)), ("din", "<u2", (ns * has_din,)), ("dout", "<u2", (ns * has_dout,))]
    block = np.dtype([(k, d, s) for k, d, s in layout])
    body = len(raw) - b.i
    assert body % block.itemsize == 0, f"{path}: {body} data bytes are not whole {block.itemsize}-byte blocks"
    data = np.frombuffer(raw, dtype=block, offset=b.i)
    rhd.n_blocks = len(data)
    rhd.timestamps = data["t"].reshape(-1).astype(np.int64)
    rhd.amplifier = (data["amp"].transpose(1, 0, 2).reshape(n_amp, -1).astype(np.int32) - 32768).astype(np.int16)
    rhd.digital_in = data["din"].reshape(-1) if has_din else None
    rhd.digital_out = data["dout"].reshape(-1) if has_dout else None
    rhd.temperature = data["temp"] if n_temp else None
    return rhd


def edges(x) -> tuple[np.ndarray, np.ndarray]:
    """Rising and falling edges of a 0/1 trace (onset sample, first sample after)."""
    x = np.concatenate([[0], (np.asarray(x) != 0).astype(np.int8), [0]])
    d = np.diff(x)
    return np.flatnonzero(d == 1), np.flatnonzero(d == -1)
