"""``blechrs export nwb --raw``: the raw ElectricalSeries' filters (time and size) and the export's
peak memory with and without the raw channels.

Run: python benchmarks/nwb_export.py DIR  (a sorted folder whose .info has the NWB fields, e.g.
``blechrs demo``'s after filling them in). Times each way of writing the raw channels twice,
best of two, as a ratio to writing them uncompressed in the same script; then runs the export
in child processes to read their peak RSS (the raw channels are streamed, so the difference
should not grow with the recording's length).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import hdmf.backends.hdf5 as hdf5

from blechrs.pipeline.export_nwb import export_nwb

VARIANTS = {"none": {}, "gzip 1": dict(compression="gzip", compression_opts=1),
            "gzip 1 + shuffle (blechrs)": dict(compression="gzip", compression_opts=1, shuffle=True)}
CHILD = "import sys; from blechrs.pipeline.export_nwb import export_nwb; export_nwb(sys.argv[1], out=sys.argv[2], raw=sys.argv[3] == '1', force=True)"


def main(directory: str) -> None:
    original = hdf5.H5DataIO
    best: dict[str, float] = {}
    sizes: dict[str, int] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for label in list(VARIANTS) * 2:
            hdf5.H5DataIO = lambda data, _kw=VARIANTS[label], **kw: original(data=data, **_kw)  # type: ignore[misc]
            t = time.perf_counter()
            path = export_nwb(directory, out=Path(tmp) / "x.nwb", raw=True, force=True).path
            best[label] = min(best.get(label, float("inf")), time.perf_counter() - t)
            sizes[label] = path.stat().st_size
        hdf5.H5DataIO = original
        for label in VARIANTS:
            print(f"{label:28s} {best[label]:6.2f} s  x{best[label] / best['none']:.2f}  {sizes[label] / 2**20:7.1f} MiB")
        for raw in ("0", "1"):
            child = subprocess.Popen([sys.executable, "-c", CHILD, directory, str(Path(tmp) / f"m{raw}.nwb"), raw])
            _, status, usage = os.wait4(child.pid, 0)
            assert status == 0, f"the export failed ({status})"
            print(f"peak RSS {'with' if raw == '1' else 'without'} --raw: {usage.ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main(sys.argv[1])
