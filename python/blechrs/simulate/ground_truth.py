"""What a simulated recording contains: its units, their spike times and its digital inputs.

Ground truth spike times are the sample of each spike's extremum after a 300-3000 Hz zero-phase
band-pass (the convention of the sorter's detector).
"""

from __future__ import annotations

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
        )
