"""``python -m blechrs.simulate``: write a simulated recording with its ground truth."""

from __future__ import annotations

from blechrs.simulate.intan_files import LAYOUTS
from blechrs.simulate.phenomena import Phenomena
from blechrs.simulate.recording import Simulation


def _large_unit(text: str) -> tuple[int, float]:
    wire, _, size = text.partition(":")
    return int(wire), float(size)


def _phenomena_args(ap) -> None:
    """Issue 14's phenomena (simulate/phenomena.py), all off unless asked for."""
    g = ap.add_argument_group("real-recording phenomena (all off by default; see blechrs/simulate/phenomena.py)")
    g.add_argument("--bursts", type=float, default=0.0, metavar="FRACTION",
                   help="fraction of units firing bursts of 2-5 spikes 3-8 ms apart, each 10-20%% smaller")
    g.add_argument("--drift", type=float, default=0.0, metavar="FRACTION",
                   help="fraction of units whose amplitude drifts by +-10-20%% over the session")
    g.add_argument("--background-units", type=int, default=0, metavar="N",
                   help="small distant units per wire, 2.5-4.5 x noise (marked as background in the ground truth)")
    g.add_argument("--common-noise", type=float, default=0.0, metavar="UV",
                   help="in-band SD of noise shared by the wires of a CAR group")
    g.add_argument("--hum", type=float, default=0.0, metavar="UV", help="mains hum amplitude, shared by a CAR group")
    g.add_argument("--hum-hz", type=float, default=50.0, choices=(50.0, 60.0))
    g.add_argument("--car-group-size", type=int, default=None, metavar="N",
                   help="wires per CAR group (written into the electrode layout); default: one per 32-wire port")
    g.add_argument("--large-unit", type=_large_unit, action="append", default=[], metavar="WIRE:SIZE",
                   help="add a unit of SIZE x noise on WIRE (repeatable), e.g. 3:58")


def phenomena_from(a) -> Phenomena:
    return Phenomena(burst_fraction=a.bursts, drift_fraction=a.drift, background_units_per_wire=a.background_units,
                     common_noise_uv=a.common_noise, hum_uv=a.hum, hum_hz=a.hum_hz, car_group_size=a.car_group_size,
                     large_units=tuple(a.large_unit))


def main(argv=None) -> None:
    """``python -m blechrs.simulate DIR [--layout ...] [--seed N] [--channels N] [--seconds S]
    [--digital-inputs N] [--trial-spacing S] [phenomena]``: a recording with ground truth
    (ground_truth.npz)."""
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
    _phenomena_args(ap)
    a = ap.parse_args(argv)
    sim = Simulation(seed=a.seed, n_channels=a.channels, duration_s=a.seconds, n_digital_inputs=a.digital_inputs,
                     din_style=a.din_style, trial_spacing_s=a.trial_spacing or None, phenomena=phenomena_from(a))
    gt = sim.write(a.directory, a.layout)
    print(f"{a.directory}: {a.layout}, {a.channels} channels, {gt.n_samples / gt.sampling_rate:.1f} s, "
          f"{gt.n_units} units, {sum(len(t) for t in gt.spike_times)} spikes, ground truth in ground_truth.npz")


if __name__ == "__main__":
    main()
