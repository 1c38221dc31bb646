"""``python -m blechrs.simulate``: write a simulated recording with its ground truth."""

from __future__ import annotations

from blechrs.simulate.intan_files import LAYOUTS
from blechrs.simulate.recording import Simulation


def main(argv=None) -> None:
    """``python -m blechrs.simulate DIR [--layout ...] [--seed N] [--channels N] [--seconds S]
    [--digital-inputs N] [--trial-spacing S]``: a recording with ground truth (ground_truth.npz)."""
    import argparse

    ap = argparse.ArgumentParser(prog="python -m blechrs.simulate", description=main.__doc__)
    ap.add_argument("directory")
    ap.add_argument("--layout", default=LAYOUTS[0], choices=LAYOUTS)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--channels", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--digital-inputs", type=int, default=4)
    ap.add_argument("--din-style", default="legacy", choices=("legacy", "rhx"))
    ap.add_argument("--trial-spacing", type=float, default=15.0,
                    help="seconds between trial onsets, at least (a taste experiment: 10-30 s); 0 = as dense as fits")
    a = ap.parse_args(argv)
    sim = Simulation(seed=a.seed, n_channels=a.channels, duration_s=a.seconds, n_digital_inputs=a.digital_inputs,
                     din_style=a.din_style, trial_spacing_s=a.trial_spacing or None)
    gt = sim.write(a.directory, a.layout)
    print(f"{a.directory}: {a.layout}, {a.channels} channels, {gt.n_samples / gt.sampling_rate:.1f} s, "
          f"{gt.n_units} units, {sum(len(t) for t in gt.spike_times)} spikes, ground truth in ground_truth.npz")


if __name__ == "__main__":
    main()
