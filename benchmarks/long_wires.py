#!/usr/bin/env python
"""Accuracy of the refinement on stretches (``max_refine_events``) against the refinement on every
event, wire by wire, on a sorted long recording of benchmarks/pipeline.py with its ground truth:

    python benchmarks/long_wires.py RUN_FOLDER BENCH_DATA/pipeline_c64_d600_s1 12 [--cap 250000] [ELECTRODE ...]

RUN_FOLDER: a run folder of the repeated recording (e.g. ``pipeline.py --keep``'s, or one made by
``blechrs run`` on links to its files); the block and repeat count rebuild its ground truth. Each
wire with more events than the cap is clustered both ways from its extracted events; prints the
per-unit accuracies of its true units, the units found and those matching no neuron.
"""
import argparse
import dataclasses
import glob
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from pipeline import repeat_block  # noqa: E402

from blechrs.io import paths, work_files  # noqa: E402
from blechrs.io.params_file import load_params  # noqa: E402
from blechrs.schemes.sort_electrode import cluster_work  # noqa: E402
from blechrs.simulate.scoring import score_sorting  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("folder", type=Path)
    ap.add_argument("block", type=Path)
    ap.add_argument("repeats", type=int)
    ap.add_argument("electrodes", type=int, nargs="*")
    ap.add_argument("--cap", type=int, default=250_000)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    repeated = args.block.parent / f"{args.block.name.rsplit('_s', 1)[0]}x{args.repeats}_s{args.seed}"
    gt = repeat_block(args.block, repeated, args.repeats, args.seed)
    params = load_params(glob.glob(str(args.folder / "*.params"))[0])
    n_channels = len(list(args.folder.glob("blechrs_work/electrode*.npz")))
    for e in range(n_channels):
        path = paths.electrode_path(args.folder, e)
        n = work_files.read_meta(path).n_events
        if n <= args.cap or (args.electrodes and e not in args.electrodes):
            continue
        extracted = work_files.load_electrode(path, arrays=("times", "times_subsample", "polarity", "waveforms", "noise"))
        extracted = dataclasses.replace(extracted, solutions={}, units=None, features=None, clustered=None,
                                        stage="extracted")
        truth = [i for i, c in enumerate(gt.unit_channel) if c == e]
        out = {}
        for name, cap in (("stretches", args.cap), ("every event", 10**9)):
            p = dataclasses.replace(params, autosort=dataclasses.replace(params.autosort, max_refine_events=cap))
            t0 = time.time()
            work = cluster_work(extracted, p)
            units = {f"u{k}": work.times[u.indices] for k, u in enumerate(work.units)}
            scores, unmatched = score_sorting([gt.spike_times[i] for i in truth], [e] * len(truth), units,
                                              gt.sampling_rate, sorted_channels={k: e for k in units})
            out[name] = dict(accuracy=[round(s.accuracy, 3) for s in scores], units=len(units),
                             unmatched=len(unmatched), seconds=round(time.time() - t0, 1))
        print(f"electrode {e:02d} ({n} events): {json.dumps(out)}", flush=True)


if __name__ == "__main__":
    main()
