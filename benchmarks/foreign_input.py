#!/usr/bin/env python
"""What reading another system's recording costs (issue 15 "In"): for each real recording of
../shared/data/real, copied to a temporary folder, the time neo alone takes to read every sample
(parse the header, read the chunks blechrs reads, write nothing), blechrs's first open (the same
read plus writing blechrs_work/recording_int16.dat), a later open (the cached conversion), and the
engine's extraction of every channel from the converted file, all in this process. ``--big``
adds a larger Open Ephys recording made from the real one (its records tiled, time stamps
continued, CH0/CH1 alternating over ``--channels`` channels, ``--seconds`` long).

    python benchmarks/foreign_input.py [--repeat 3] [--big --channels 16 --seconds 120]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from blechrs import kernels
from blechrs.io import open_recording
from blechrs.io.foreign_recording import CHUNK_SAMPLES
from blechrs.params import ExtractParams

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real"
SETS = {"openephys": REAL / "openephys-mouse-barrel-stereotrode" / "OpenEphys_SampleData_1",
        "neuralynx": REAL / "neuralynx-digitallynx-hamburg-2013" / "original_data"}


def neo_read(kind: str, d: Path) -> int:
    from neo import rawio
    r = rawio.OpenEphysRawIO(dirname=str(d)) if kind.startswith("openephys") else \
        rawio.NeuralynxRawIO(dirname=str(d), gap_tolerance_ms=4.0)
    r.parse_header()
    n = 0
    for s in range(r.segment_count(0)):
        size = r.get_signal_size(0, s, 0)
        for a in range(0, size, CHUNK_SAMPLES):
            n += r.get_analogsignal_chunk(block_index=0, seg_index=s, i_start=a, i_stop=min(size, a + CHUNK_SAMPLES),
                                          stream_index=0).size
    return n


_RECORD = np.dtype([("ts", "<i8"), ("n", "<u2"), ("rec", "<u2"), ("x", ">i2", 1024), ("marker", "u1", 10)])


def big_open_ephys(dst: Path, channels: int, seconds: float) -> Path:
    src = SETS["openephys"]
    dst.mkdir(parents=True)
    for c in range(channels):
        raw = (src / f"101_CH{c % 2}.continuous").read_bytes()
        header = raw[:1024].decode("latin-1").replace(f"channel = 'CH{c % 2}';", f"channel = 'CH{c}';")
        header = header[:1024].ljust(1024)
        recs = np.frombuffer(raw[1024:], _RECORD)
        n = int(np.ceil(seconds * 40000 / 1024))
        out = np.resize(recs, n).copy()
        out["ts"] = recs["ts"][0] + 1024 * np.arange(n)
        (dst / f"101_CH{c}.continuous").write_bytes(header.encode("latin-1") + out.tobytes())
    return dst


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--big", action="store_true")
    ap.add_argument("--channels", type=int, default=16)
    ap.add_argument("--seconds", type=float, default=120.0)
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    print(f"load average {os.getloadavg()[0]:.1f}")
    sets = dict(SETS)
    keep = tempfile.TemporaryDirectory()
    if args.big:
        sets["openephys-big"] = big_open_ephys(Path(keep.name) / "big", args.channels, args.seconds)
    for kind, src in sets.items():
        t_neo, t_first, t_again, t_extract = [], [], [], []
        for _ in range(args.repeat):
            with tempfile.TemporaryDirectory() as tmp:
                d = Path(tmp) / kind
                shutil.copytree(src, d)
                t = time.perf_counter(); neo_read(kind, d); t_neo.append(time.perf_counter() - t)
                t = time.perf_counter(); rec = open_recording(d); t_first.append(time.perf_counter() - t)
                t = time.perf_counter(); rec = open_recording(d); t_again.append(time.perf_counter() - t)
                p = ExtractParams(sampling_rate=rec.sampling_rate, use_car=False)
                t = time.perf_counter()
                kernels.extract_electrodes(rec.source, list(range(rec.n_channels)), [], p, scale=rec.gain)
                t_extract.append(time.perf_counter() - t)
        mb = rec.n_samples * rec.n_channels * 2 / 1e6
        med = {k: float(np.median(v)) for k, v in
               dict(neo=t_neo, first=t_first, again=t_again, extract=t_extract).items()}
        print(f"{kind}: {rec.n_channels} ch x {rec.duration_s:.1f} s ({mb:.1f} MB int16); median of {args.repeat}: "
              f"neo read alone {med['neo']:.3f} s, blechrs first open {med['first']:.3f} s "
              f"({med['first'] / med['neo']:.2f} x neo), cached open {med['again'] * 1e3:.2f} ms, "
              f"extraction {med['extract']:.3f} s")


if __name__ == "__main__":
    main()
