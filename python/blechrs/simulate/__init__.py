"""Seeded ground-truth recordings written as real Intan folders, and the score of a sorting
against their ground truth.

    >>> from blechrs.simulate import Simulation
    >>> sim = Simulation(seed=1, n_channels=8, duration_s=3.0)
    >>> gt = sim.write("rec", layout="one file per channel")   # info.rhd, amp-A-000.dat, ...
    >>> gt.spike_times[0], gt.unit_channel[0]

recording.py: the :class:`Simulation` (units, spike trains, noise, LFP, digital inputs);
phenomena.py: what real recordings add (:class:`Phenomena`: bursts, drift, background units,
common-mode noise and hum, CAR groups, very large units; all off by default);
ground_truth.py: what it contains (:class:`GroundTruth`, saved as ground_truth.npz);
intan_files.py: the Intan layouts it is written in; scoring.py: a sorting against the ground
truth; ``python -m blechrs.simulate DIR`` writes one (__main__.py).
"""

from blechrs.simulate.ground_truth import GroundTruth
from blechrs.simulate.intan_files import LAYOUTS, rhd_header
from blechrs.simulate.phenomena import Phenomena
from blechrs.simulate.recording import Simulation

__all__ = ["LAYOUTS", "GroundTruth", "Phenomena", "Simulation", "rhd_header"]
