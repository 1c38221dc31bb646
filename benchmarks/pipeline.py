#!/usr/bin/env python
"""The whole blechrs chain on a simulated recording, as people run it: wall time, peak RSS summed
over the process tree, the time of each stage, accuracy against the ground truth, and references
measured in the same script.

    python benchmarks/pipeline.py                              # 32 ch x 600 s: default run and --no-plots
    python benchmarks/pipeline.py --modes no-plots --seconds 60
    python benchmarks/pipeline.py --builds main=/work/py-main,new=python3 --repeat 2   # builds alternated
    python benchmarks/pipeline.py --channels 64 --seconds 7200 --block 600 --modes default
    python benchmarks/pipeline.py --channels 64 --seconds 1 --modes default       # fixed costs
    python benchmarks/pipeline.py --tdc2-python /work/bench/.venv-bench/bin/python  # + Tridesclous2

Each run is ``PY -m blechrs.cli run DIR -q -j JOBS [--no-plots]`` on a fresh folder DIR holding
links to the recording's raw files (nothing from an earlier run: init, extraction, clustering,
pictures and QA all happen), with one BLAS thread per process. ``--builds`` names several pythons
(each with its build of blechrs importable); their runs alternate, so a machine shared with
other jobs slows each about equally (the load average is printed with every run).

Peak RSS: every process of the run's tree (the CLI, its worker processes, the resource tracker)
sampled from /proc every 20 ms, summed per sample; the largest single process too.

Long recordings (``--block B`` with ``--seconds`` a multiple of B): one B-second block is
simulated and repeated, each repetition with fresh noise added (a different random slice of a
uniform +-6 count noise per channel and repetition, ~0.7 uV SD beside the simulation's 6-12 uV),
so generation stays cheap; the ground truth is the block's, shifted. 64 ch x 2 h is 27.6 GB.

References in the same script: ``--read`` reads every raw file once from the page cache (the
physical limit of the extraction here: the files are read twice first, so they are cached when
they fit in memory); ``--tdc2-python PY`` runs Tridesclous2 (spikeinterface, defaults, one
thread) on the same recording with that python. The recordings live in bench_data/ (git-ignored);
``--keep`` keeps the run folders.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
RAW = ("amp-*.dat", "board-*.dat", "time.dat", "info.rhd")


def process_tree(pid: int) -> list[int]:
    out, stack = [], [pid]
    while stack:
        p = stack.pop()
        out.append(p)
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as fh:
                    stack.extend(int(c) for c in fh.read().split())
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
    return out


def rss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        pass
    return 0.0


def run_measured(cmd: list[str], env: dict) -> dict:
    """Run ``cmd``; wall time, peak of the tree's summed RSS, peak single-process RSS, output."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    peak = {"tree": 0.0, "one": 0.0, "procs": 0}

    def poll():
        while proc.poll() is None:
            pids = process_tree(proc.pid)
            each = [rss_mb(p) for p in pids]
            peak["tree"] = max(peak["tree"], sum(each))
            peak["one"] = max(peak["one"], max(each, default=0.0))
            peak["procs"] = max(peak["procs"], len(pids))
            time.sleep(0.02)

    th = threading.Thread(target=poll, daemon=True)
    th.start()
    out, _ = proc.communicate()
    wall = time.perf_counter() - t0
    th.join()
    return dict(wall=wall, peak_tree_mb=peak["tree"], peak_one_mb=peak["one"], processes=peak["procs"],
                code=proc.returncode, out=out)


def make_block(directory: Path, seconds: float, channels: int, seed: int):
    """A simulated recording (cached: ``.complete`` marks a finished one)."""
    from blechrs.simulate import GroundTruth, Simulation

    gt_path = directory / "ground_truth.npz"
    if (directory / ".complete").exists():
        return GroundTruth.load(gt_path)
    directory.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    print(f"simulating {channels} channels x {seconds:g} s (seed {seed}) into {directory} ...", flush=True)
    gt = Simulation(seed=seed, n_channels=channels, duration_s=seconds).write(directory, layout="one file per channel")
    if not gt_path.exists():
        gt.save(gt_path)
    (directory / ".complete").write_text("ok\n")
    print(f"  simulated in {time.perf_counter() - t0:.0f} s", flush=True)
    return gt


def repeat_block(block: Path, directory: Path, repeats: int, seed: int):
    """``block`` repeated ``repeats`` times into ``directory``, fresh noise on each repetition."""
    from blechrs.simulate import GroundTruth

    gt = GroundTruth.load(block / "ground_truth.npz")
    n = gt.n_samples
    if not (directory / ".complete").exists():
        directory.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        print(f"building {directory.name}: {repeats} x {block.name} with fresh noise ...", flush=True)
        rng = np.random.default_rng([seed, 0x5EED])
        pool = rng.integers(-6, 7, size=n + 2**20, dtype=np.int16)
        for f in sorted(block.glob("amp-*.dat")):
            x = np.fromfile(f, dtype="<i2")
            with open(directory / f.name, "wb") as out:
                for r in range(repeats):
                    k = int(rng.integers(0, 2**20))
                    out.write((x + pool[k:k + n]).astype("<i2").tobytes() if r else x.tobytes())
        for f in sorted(block.glob("board-*.dat")):
            x = f.read_bytes()
            with open(directory / f.name, "wb") as out:
                for _ in range(repeats):
                    out.write(x)
        with open(directory / "time.dat", "wb") as out:
            for r in range(repeats):
                out.write(np.arange(r * n, (r + 1) * n, dtype="<i4").tobytes())
        shutil.copy(block / "info.rhd", directory / "info.rhd")
        (directory / ".complete").write_text("ok\n")
        print(f"  built in {time.perf_counter() - t0:.0f} s", flush=True)
    gt.spike_times = [np.concatenate([t + r * n for r in range(repeats)]) for t in gt.spike_times]
    gt.digital_inputs = {k: (np.concatenate([on + r * n for r in range(repeats)]),
                             np.concatenate([off + r * n for r in range(repeats)]))
                         for k, (on, off) in gt.digital_inputs.items()}
    gt.n_samples = n * repeats
    return gt


def raw_files(directory: Path) -> list[Path]:
    return sorted(p for pattern in RAW for p in directory.glob(pattern))


def fresh_folder(source: Path, target: Path) -> Path:
    """A new folder with links to ``source``'s raw files (named after the recording)."""
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    for p in raw_files(source):
        (target / p.name).symlink_to(p.resolve())
    return target


def read_alone(directory: Path, repeat: int = 3) -> float:
    """Seconds to read every raw file once (best of ``repeat``; page cache when they fit)."""
    buf = bytearray(8 << 20)
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        for p in raw_files(directory):
            with open(p, "rb", buffering=0) as fh:
                while fh.readinto(buf):
                    pass
        best = min(best, time.perf_counter() - t0)
    return best


def stage_split(out: str) -> dict[str, float]:
    """The run's ``time:`` line: stage -> seconds."""
    stages = {}
    for line in out.splitlines():
        if line.startswith("time:"):
            for part in line[len("time:"):].split(","):
                words = part.split()  # "<stage name> <seconds> s"; names may hold spaces ("unit QA")
                stages[" ".join(words[:-2])] = float(words[-2])
    return stages


def score(directory: Path, gt) -> dict:
    from blechrs.io import paths, unit_store
    from blechrs.simulate.scoring import score_sorting

    units = unit_store.read_units(paths.h5_path(directory), waveforms=False)
    scores, unmatched = score_sorting(gt.spike_times, gt.unit_channel, {u.name: u.times for u in units},
                                      gt.sampling_rate, sorted_channels={u.name: u.electrode for u in units})
    acc = np.array([s.accuracy for s in scores])
    return dict(units=len(units), gt_units=len(scores), well=int(np.sum(acc >= 0.8)),
                mean_acc=round(float(acc.mean()), 3) if len(acc) else 0.0, fp_units=len(unmatched))


TDC2 = r"""
import sys, time, json, numpy as np
from pathlib import Path
import spikeinterface.core as si, spikeinterface.sorters as ss
d, work = Path(sys.argv[1]), sys.argv[2]
amps = sorted(d.glob("amp-*.dat"))
n = amps[0].stat().st_size // 2
x = np.empty((n, len(amps)), dtype=np.int16)
for c, f in enumerate(amps):
    x[:, c] = np.fromfile(f, dtype="<i2")
rec = si.NumpyRecording([x], sampling_frequency=30000.0)
rec.set_channel_gains(0.195); rec.set_channel_offsets(0.0)
rec.set_dummy_probe_from_locations(np.c_[np.arange(len(amps)) * 1000.0, np.zeros(len(amps))])
si.set_global_job_kwargs(n_jobs=1, progress_bar=False)
t0 = time.perf_counter()
s = ss.run_sorter("tridesclous2", rec, folder=work, remove_existing_folder=True, verbose=False,
                  job_kwargs=dict(n_jobs=1, progress_bar=False))
print("TDC2", json.dumps(dict(wall=time.perf_counter() - t0, units=len(s.unit_ids))))
"""


def run_tdc2(python: str, directory: Path, env: dict) -> dict:
    import tempfile

    with tempfile.TemporaryDirectory(prefix="tdc2_") as work:
        r = run_measured([python, "-c", TDC2, str(directory), str(Path(work) / "sorter")], env)
    line = [x for x in r["out"].splitlines() if x.startswith("TDC2 ")]
    if r["code"] != 0 or not line:
        return dict(status="failed", tail=r["out"][-2000:])
    return dict(status="ok", total_wall=round(r["wall"], 1), peak_tree_mb=round(r["peak_tree_mb"]),
                **json.loads(line[0][5:]))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=600.0)
    ap.add_argument("--channels", type=int, default=32)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--block", type=float, default=None, help="simulate this many seconds and repeat them")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--modes", default="default,no-plots", help="comma list of default (pictures), no-plots")
    ap.add_argument("--builds", default=None, help="NAME=PYTHON,... (default: this python)")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--read", action="store_true", help="also time reading the raw files alone")
    ap.add_argument("--tdc2-python", default=None)
    ap.add_argument("--no-score", action="store_true")
    ap.add_argument("--data", type=Path, default=None, help="an existing simulated recording instead")
    ap.add_argument("--runs", type=Path, default=None, help="where the run folders go (default bench_data/runs)")
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()

    data = ROOT / "bench_data"
    if args.data:
        source = args.data
        from blechrs.simulate import GroundTruth

        gt = GroundTruth.load(source / "ground_truth.npz")
    elif args.block and args.seconds > args.block:
        repeats = int(round(args.seconds / args.block))
        block = data / f"pipeline_c{args.channels}_d{int(args.block)}_s{args.seed}"
        make_block(block, args.block, args.channels, args.seed)
        source = data / f"pipeline_c{args.channels}_d{int(args.block)}x{repeats}_s{args.seed}"
        gt = repeat_block(block, source, repeats, args.seed)
    else:
        source = data / f"pipeline_c{args.channels}_d{args.seconds:g}_s{args.seed}".replace(".", "p")
        gt = make_block(source, args.seconds, args.channels, args.seed)
    runs = args.runs or data / "runs"
    builds = dict(b.split("=", 1) for b in args.builds.split(",")) if args.builds else {"this": sys.executable}
    modes = [m for m in args.modes.split(",") if m]
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    gb = sum(p.stat().st_size for p in raw_files(source)) / 1e9
    print(f"recording {source.name}: {args.channels} ch x {gt.n_samples / gt.sampling_rate:g} s, {gb:.2f} GB; "
          f"{os.cpu_count()} cores; builds {', '.join(builds)}", flush=True)

    results = []
    if args.read:
        read_alone(source, repeat=1)  # into the page cache
        t = read_alone(source)
        results.append(dict(what="read the raw files", wall_s=round(t, 2), gb_per_s=round(gb / t, 2)))
        print(f"read alone: {t:.2f} s ({gb / t:.2f} GB/s)", flush=True)
    for rep in range(args.repeat):
        for mode in modes:
            for name, python in builds.items():
                folder = fresh_folder(source, runs / f"{name}_{mode}" / source.name)
                cmd = [python, "-m", "blechrs.cli", "run", str(folder), "-q", "-j", str(args.jobs)]
                if mode == "no-plots":
                    cmd.append("--no-plots")
                r = run_measured(cmd, env)
                if r["code"] != 0:
                    print(r["out"])
                    return 1
                row = dict(build=name, mode=mode, rep=rep, wall_s=round(r["wall"], 2),
                           peak_tree_mb=round(r["peak_tree_mb"]), peak_one_mb=round(r["peak_one_mb"]),
                           processes=r["processes"], stages=stage_split(r["out"]),
                           load=[round(x, 1) for x in os.getloadavg()])
                if not args.no_score:
                    row.update(score(folder, gt))
                pngs = list((folder / "blechrs_plots").rglob("*.png"))
                row["pngs"] = len(pngs)
                results.append(row)
                print(json.dumps(row), flush=True)
                if not args.keep:
                    shutil.rmtree(folder.parent)
    if args.tdc2_python:
        r = run_tdc2(args.tdc2_python, source, env)
        results.append(dict(what="tridesclous2 (1 thread)", **r))
        print(json.dumps(results[-1]), flush=True)
    print("\nsummary (load average now " + ", ".join(f"{x:.1f}" for x in os.getloadavg()) + "):")
    for r in results:
        if "build" in r:
            st = r["stages"]
            split = ", ".join(f"{k} {v:.1f}" for k, v in st.items() if k != "total")
            print(f"  {r['build']:>8s} {r['mode']:9s} wall {r['wall_s']:6.1f} s  peak RSS tree {r['peak_tree_mb']:5d} MB "
                  f"(one process {r['peak_one_mb']} MB)  [{split}]  load {r['load'][0]}"
                  + (f"  {r['well']}/{r['gt_units']} well, {r['units']} units" if "well" in r else ""))
        else:
            print(f"  {json.dumps(r)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
