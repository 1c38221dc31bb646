#!/usr/bin/env python
"""Intan reading speed: opening a 32-channel x 1 h recording, and streaming .rhd / .dat data.

    python benchmarks/intan.py [--minutes 2] [--keep DIR]

1. Open: a 32-channel, 1 h, 30 kHz recording in each layout (sparse files of the right size with
   valid headers and time stamps) is opened with blechrs.io.open_recording and, as the reference
   in the same run, with neo's IntanRawIO.parse_header(). Target: < 1 s.
   (neo runs once, with ignore_integrity_checks=True, stopped after 20 s.)
2. Read: a real (non-sparse) recording of --minutes minutes is read whole, all 32 channels, in
   1 s chunks through Recording.read (Rust, pread, GIL released), once warm from the page cache;
   throughput = file bytes / time. Reference: the numpy structured memmap that neo uses
   (uint16 -> int16 by subtracting 32768). Target for .rhd: >= 500 MB/s.
Prints one table; ratios are reference time / blechrs time (> 1 = blechrs faster).
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from blechrs.io import open_recording
from blechrs.simulate import Simulation, rhd_header

FS = 30000
NCH = 32


def best_of(fn, repeat=3):
    ts = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return min(ts)


def sparse(path: Path, size: int, head: bytes = b"", tail: bytes = b""):
    with open(path, "wb") as f:
        f.write(head)
        f.truncate(size)
        if tail:
            f.seek(size - len(tail))
            f.write(tail)


def make_sparse_hour(root: Path) -> dict[str, Path]:
    n = 3600 * FS
    sim = Simulation(seed=0, n_channels=NCH, duration_s=0.1, n_digital_inputs=4, din_style="rhx")
    hdr = rhd_header(sim)
    times_head = np.arange(0, 4, dtype="<i4").tobytes()
    times_tail = np.arange(n - 4, n, dtype="<i4").tobytes()
    out = {}
    d = root / "per_channel"
    d.mkdir()
    (d / "info.rhd").write_bytes(hdr)
    sparse(d / "time.dat", 4 * n, times_head, times_tail)
    for c in sim.channel_names:
        sparse(d / f"amp-{c}.dat", 2 * n)
    for nm in sim.din_names:
        sparse(d / f"board-{nm}.dat", 2 * n)
    out["one file per channel"] = d
    d = root / "per_signal"
    d.mkdir()
    (d / "info.rhd").write_bytes(hdr)
    sparse(d / "time.dat", 4 * n, times_head, times_tail)
    sparse(d / "amplifier.dat", 2 * NCH * n)
    sparse(d / "digitalin.dat", 2 * n)
    out["one file per signal type"] = d
    d = root / "rhd"
    d.mkdir()
    S = 128
    blk = 4 * S + 2 * NCH * S + 2 * S
    nb = n // S
    first = np.zeros(blk, np.uint8)
    first[: 4 * S] = np.frombuffer(np.arange(S, dtype="<i4").tobytes(), np.uint8)
    last = np.zeros(blk, np.uint8)
    last[: 4 * S] = np.frombuffer(np.arange((nb - 1) * S, nb * S, dtype="<i4").tobytes(), np.uint8)
    sparse(d / "rec_260101_120000.rhd", len(hdr) + nb * blk, hdr + first.tobytes(), last.tobytes())
    out["traditional"] = d
    return out


def make_real(root: Path, minutes: float) -> dict[str, Path]:
    """Random int16 amplifier data (fast to make) in all three layouts."""
    n = int(minutes * 60 * FS) // 1920 * 1920
    sim = Simulation(seed=0, n_channels=NCH, duration_s=0.1, n_digital_inputs=1)
    hdr = rhd_header(sim)
    rng = np.random.default_rng(0)
    dirs = {k: root / k for k in ("pc", "ps", "rhd")}
    for d in dirs.values():
        d.mkdir()
    (dirs["pc"] / "info.rhd").write_bytes(hdr)
    (dirs["ps"] / "info.rhd").write_bytes(hdr)
    fpc = [open(dirs["pc"] / f"amp-{c}.dat", "wb") for c in sim.channel_names]
    fps = open(dirs["ps"] / "amplifier.dat", "wb")
    frhd = open(dirs["rhd"] / "rec_260101_120000.rhd", "wb")
    frhd.write(hdr)
    S = 128
    dt = np.dtype([("t", "<i4", (S,)), ("amp", "<u2", (NCH, S)), ("din", "<u2", (S,))])
    chunk = 1920 * 16
    for s0 in range(0, n, chunk):
        m = min(chunk, n - s0)
        q = rng.integers(-3000, 3000, size=(m, NCH), dtype=np.int16)
        for c, f in enumerate(fpc):
            f.write(q[:, c].tobytes())
        fps.write(q.tobytes())
        b = np.zeros(m // S, dt)
        b["t"] = np.arange(s0, s0 + m).reshape(-1, S)
        b["amp"] = (q.astype(np.int32) + 32768).astype("<u2").reshape(-1, S, NCH).transpose(0, 2, 1)
        frhd.write(b.tobytes())
    for f in fpc + [fps, frhd]:
        f.close()
    for k in ("pc", "ps"):
        np.arange(n, dtype="<i4").tofile(dirs[k] / "time.dat")
    return {"one file per channel": dirs["pc"], "one file per signal type": dirs["ps"], "traditional": dirs["rhd"]}


class _Timeout(Exception):
    pass


def neo_open(path: Path, timeout_s: int = 20) -> float:
    """Seconds neo takes to parse the header (integrity checks off: with them it reads every
    time stamp and takes minutes on 1 h); inf if longer than timeout_s."""
    import signal

    from neo.rawio import IntanRawIO

    def alarm(*_):
        raise _Timeout()

    f = path / "info.rhd" if (path / "info.rhd").exists() else sorted(path.glob("*.rhd"))[0]
    old = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(timeout_s)
    t = time.perf_counter()
    try:
        IntanRawIO(filename=str(f), ignore_integrity_checks=True).parse_header()
        return time.perf_counter() - t
    except _Timeout:
        return float("inf")
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def read_all(rec, chunk=FS):
    chans = list(range(rec.n_channels))
    s = 0
    for a in range(0, rec.n_samples, chunk):
        s += int(rec.read(chans, a, min(rec.n_samples, a + chunk))[0, 0])
    return s


def numpy_rhd_reference(path: Path, hdr_size: int, chunk=FS):
    """neo-style: structured memmap of the blocks, amplifier field -> int16 counts."""
    S = 128
    dt = np.dtype([("t", "<i4", (S,)), ("amp", "<u2", (NCH, S)), ("din", "<u2", (S,))])
    mm = np.memmap(path, dtype=dt, mode="r", offset=hdr_size)
    per = chunk // S
    s = 0
    for b in range(0, len(mm), per):
        x = (mm["amp"][b:b + per].transpose(1, 0, 2).reshape(NCH, -1).astype(np.int32) - 32768).astype(np.int16)
        s += int(x[0, 0])
    return s


def numpy_dat_reference(kind: str, d: Path, n: int, chunk=FS):
    s = 0
    if kind == "one file per signal type":
        mm = np.memmap(d / "amplifier.dat", dtype="<i2", mode="r").reshape(-1, NCH)
        for a in range(0, n, chunk):
            s += int(np.ascontiguousarray(mm[a:a + chunk].T)[0, 0])
    else:
        mms = [np.memmap(f, dtype="<i2", mode="r") for f in sorted(d.glob("amp-*.dat"))]
        for a in range(0, n, chunk):
            s += int(np.stack([m[a:a + chunk] for m in mms])[0, 0])
    return s


def dir_bytes(d: Path) -> int:
    return sum(f.stat().st_size for f in d.iterdir() if f.name.startswith(("amp-", "amplifier")) or f.suffix == ".rhd"
               and f.name != "info.rhd")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=2.0)
    ap.add_argument("--keep", default=None, help="work directory to keep (default: a temporary one)")
    a = ap.parse_args()
    root = Path(a.keep or tempfile.mkdtemp(prefix="blechrs_intan_bench_"))
    root.mkdir(parents=True, exist_ok=True)
    warnings.simplefilter("ignore")
    rows = []
    try:
        hour = root / "hour"
        if hour.exists():
            shutil.rmtree(hour)
        hour.mkdir()
        for kind, d in make_sparse_hour(hour).items():
            t_ours = best_of(lambda: open_recording(d))
            r = open_recording(d)
            assert r.n_samples == 3600 * FS - (3600 * FS % 128 if kind == "traditional" else 0), r.n_samples
            try:
                t_neo = neo_open(d)
            except Exception as e:  # noqa: BLE001
                t_neo = float("nan")
                print(f"neo failed on {kind}: {e}", file=sys.stderr)
            neo_txt = "> 20 s (stopped)" if t_neo == float("inf") else f"{t_neo * 1000:.0f} ms"
            ratio = "> %.0f" % (20 / t_ours) if t_neo == float("inf") else f"{t_neo / t_ours:.0f}"
            rows.append((f"open 32 ch x 1 h, {kind}", f"{t_ours * 1000:.2f} ms", neo_txt, ratio,
                         "< 1 s: " + ("yes" if t_ours < 1 else "NO")))
        real = root / "real"
        if real.exists():
            shutil.rmtree(real)
        real.mkdir()
        for kind, d in make_real(real, a.minutes).items():
            rec = open_recording(d)
            nbytes = dir_bytes(d)
            read_all(rec)  # warm the page cache
            t_ours = best_of(lambda: read_all(rec))
            if kind == "traditional":
                t_ref = best_of(lambda: numpy_rhd_reference(rec.files[0], rec._full_header["header_size"]))
            else:
                t_ref = best_of(lambda: numpy_dat_reference(kind, d, rec.n_samples))
            mbs = nbytes / t_ours / 1e6
            target = ">= 500 MB/s: " + ("yes" if mbs >= 500 else "NO") if kind == "traditional" else ""
            rows.append((f"read {a.minutes:g} min x 32 ch ({nbytes / 1e6:.0f} MB), {kind}",
                         f"{t_ours:.3f} s = {mbs:.0f} MB/s", f"{t_ref:.3f} s = {nbytes / t_ref / 1e6:.0f} MB/s",
                         f"{t_ref / t_ours:.1f}", target))
    finally:
        if not a.keep:
            shutil.rmtree(root, ignore_errors=True)
    w = [max(len(r[i]) for r in rows + [("case", "blechrs", "reference", "ratio", "target")]) for i in range(5)]
    hdr = ("case", "blechrs", "reference (neo / numpy memmap)", "ratio", "target")
    w = [max(w[i], len(hdr[i])) for i in range(5)]
    print(" | ".join(h.ljust(w[i]) for i, h in enumerate(hdr)))
    for r in rows:
        print(" | ".join(c.ljust(w[i]) for i, c in enumerate(r)))
    print(f"threads: RAYON_NUM_THREADS={os.environ.get('RAYON_NUM_THREADS', 'unset')}, cores={os.cpu_count()}")


if __name__ == "__main__":
    main()
