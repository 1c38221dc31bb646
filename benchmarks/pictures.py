#!/usr/bin/env python
"""The picture work of a sorted recording folder, timed stage by stage in one process (CPU time is
reported beside wall time: it does not depend on what else the machine is doing).

    python benchmarks/pictures.py DIR            # DIR sorted by `blechrs run --no-plots`
    python benchmarks/pictures.py DIR --repeat 3 # best of three

Stages: every electrode's solution pictures (what the clustering workers draw), every unit's
picture, the index page, and the unit QA pictures (waveforms + raster). Nothing runs in parallel
here, so the sum is the work; `blechrs run` divides it between its worker processes.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def _timed(fn, *args, **kwargs) -> tuple[float, float]:
    w0, c0 = time.perf_counter(), time.process_time()
    fn(*args, **kwargs)
    return time.perf_counter() - w0, time.process_time() - c0


def measure(directory: Path) -> dict[str, tuple[float, float]]:
    from blechrs.io import layout, paths, work_files
    from blechrs.pipeline import load_params
    from blechrs.pipeline import pictures as pics
    from blechrs.pipeline.unit_qa import unit_qa

    params = load_params(directory)
    electrodes = layout.sorted_electrodes(layout.load_layout(directory))
    out: dict[str, tuple[float, float]] = {}

    def solutions() -> None:
        for e in electrodes:
            pics.plot_solutions(directory, work_files.load_electrode(paths.electrode_path(directory, e)), params)

    out["solutions"] = _timed(solutions)
    out["units"] = _timed(pics.plot_recording, directory, params, jobs=1, electrodes=electrodes,
                          redraw_solutions=False)
    out["unit QA pictures"] = _timed(unit_qa, directory, params, jobs=1, write_store=False)
    out["index"] = _timed(pics.write_index, directory, electrodes)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dir", type=Path)
    ap.add_argument("--repeat", type=int, default=1)
    args = ap.parse_args()
    import matplotlib  # imported once, outside the timings (every worker pays it once)

    matplotlib.use("Agg")
    best: dict[str, tuple[float, float]] = {}
    for _ in range(args.repeat):
        for k, (w, c) in measure(args.dir).items():
            best[k] = (min(w, best.get(k, (w, c))[0]), min(c, best.get(k, (w, c))[1]))
    total = (sum(w for w, _ in best.values()), sum(c for _, c in best.values()))
    for k, (w, c) in best.items():
        print(f"{k:18s} wall {w:7.2f} s   cpu {c:7.2f} s")
    print(f"{'total':18s} wall {total[0]:7.2f} s   cpu {total[1]:7.2f} s")
    pngs = list((args.dir / "blechrs_plots").rglob("*.png"))
    print(f"{len(pngs)} PNG files, {sum(p.stat().st_size for p in pngs) / 1e6:.1f} MB")
    print(json.dumps({k: [round(w, 2), round(c, 2)] for k, (w, c) in best.items()}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
