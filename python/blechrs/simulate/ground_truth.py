"""What a simulated recording contains: its units, their spike times and its digital inputs.

Ground truth spike times are the sample of each spike's extremum after a 300-3000 Hz zero-phase
band-pass (the convention of the sorter's detector).
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass
class GroundTruth:
    """What a simulated recording contains. Spike times are int64 sample indices per unit."""

    sampling_rate: float
    n_samples: int
    channel_names: list[str]
    unit_channel: np.ndarray
    """Channel (wire) index of each unit."""
    unit_rate_hz: np.ndarray
    unit_peak_uv: np.ndarray
    """Signed extremum of the band-passed template, microvolts."""
    unit_trough_width_ms: np.ndarray
    templates: np.ndarray
    """Raw (unfiltered) template of each unit, microvolts, extremum at ``template_center``."""
    template_center: int
    spike_times: list[np.ndarray]
    noise_uv: np.ndarray
    """Standard deviation of each channel's noise in the 300-3000 Hz band, microvolts."""
    digital_inputs: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    seed: int = 0
    unit_background: np.ndarray | None = None
    """True for a background unit (small, distant: noise to a sorter, not a neuron to find)."""
    unit_bursting: np.ndarray | None = None
    """True for a unit that fires bursts of decaying spikes."""
    unit_drift: np.ndarray | None = None
    """Relative amplitude change of each unit over the session (0: none)."""
    car_group: np.ndarray | None = None
    """CAR group of each channel (the wires that share common-mode noise and hum)."""

    def __post_init__(self) -> None:
        nu = len(self.unit_channel)
        if self.unit_background is None:
            self.unit_background = np.zeros(nu, dtype=bool)
        if self.unit_bursting is None:
            self.unit_bursting = np.zeros(nu, dtype=bool)
        if self.unit_drift is None:
            self.unit_drift = np.zeros(nu)
        if self.car_group is None:
            self.car_group = np.arange(len(self.channel_names)) // 32

    def neurons(self) -> "GroundTruth":
        """The same ground truth without its background units (what a sorter should find)."""
        keep = np.flatnonzero(~np.asarray(self.unit_background))
        return dataclasses.replace(
            self, unit_channel=self.unit_channel[keep], unit_rate_hz=self.unit_rate_hz[keep],
            unit_peak_uv=self.unit_peak_uv[keep], unit_trough_width_ms=self.unit_trough_width_ms[keep],
            templates=self.templates[keep], spike_times=[self.spike_times[u] for u in keep],
            unit_background=np.asarray(self.unit_background)[keep], unit_bursting=np.asarray(self.unit_bursting)[keep],
            unit_drift=np.asarray(self.unit_drift)[keep])

    @property
    def n_units(self) -> int:
        return len(self.unit_channel)

    def save(self, path: str | os.PathLike) -> None:
        """Write an .npz (spike_times_uNNN per unit, unit tables, digital inputs)."""
        arrays = dict(
            sampling_rate=self.sampling_rate, n_samples=self.n_samples, seed=self.seed,
            channel_names=np.array(self.channel_names), unit_channel=self.unit_channel,
            unit_rate_hz=self.unit_rate_hz, unit_peak_uv=self.unit_peak_uv,
            unit_trough_width_ms=self.unit_trough_width_ms, templates=self.templates,
            template_center=self.template_center, noise_uv=self.noise_uv,
            din_names=np.array(sorted(self.digital_inputs), dtype=str),
            unit_background=self.unit_background, unit_bursting=self.unit_bursting, unit_drift=self.unit_drift,
            car_group=self.car_group,
        )
        for u, t in enumerate(self.spike_times):
            arrays[f"spike_times_u{u:03d}"] = t
        for name, (on, off) in self.digital_inputs.items():
            arrays[f"{name}_onsets"] = on
            arrays[f"{name}_offsets"] = off
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp.npz")
        np.savez(tmp, **arrays)
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "GroundTruth":
        z = np.load(path)
        n_units = len(z["unit_channel"])
        return cls(
            sampling_rate=float(z["sampling_rate"]), n_samples=int(z["n_samples"]),
            channel_names=[str(x) for x in z["channel_names"]], unit_channel=z["unit_channel"],
            unit_rate_hz=z["unit_rate_hz"], unit_peak_uv=z["unit_peak_uv"],
            unit_trough_width_ms=z["unit_trough_width_ms"], templates=z["templates"],
            template_center=int(z["template_center"]),
            spike_times=[z[f"spike_times_u{u:03d}"] for u in range(n_units)], noise_uv=z["noise_uv"],
            digital_inputs={str(n): (z[f"{n}_onsets"], z[f"{n}_offsets"]) for n in z["din_names"]},
            seed=int(z["seed"]),
            **{k: z[k] for k in ("unit_background", "unit_bursting", "unit_drift", "car_group") if k in z.files},
        )
