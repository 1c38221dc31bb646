"""Which digital inputs are taste deliveries (and of what taste) and which drive the laser: the
trial settings of the ``.info`` file (spec 2.5)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from blechrs.errors import TrialsError

DigitalInputs = Mapping[str, tuple[np.ndarray, np.ndarray]]
"""Digital-input name (``dig_in_NN``) -> (onsets, offsets) in samples."""


@dataclass
class TrialConfig:
    """Which digital inputs are taste deliveries (and what taste) and which drive the laser."""

    tastes: dict[str, str]
    """Digital-input name -> taste name, for every taste input."""
    laser_dig_ins: list[str] = field(default_factory=list)
    laser_conditions: list[tuple[float, float]] = field(default_factory=list)
    """Configured (onset lag ms, duration ms) pairs; measured values are snapped to the nearest."""
    warnings: list[str] = field(default_factory=list)


def _dig_in_name(value: Any) -> str:
    """blech_clust writes names (``dig_in_03``); older files may hold bare input numbers."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return f"dig_in_{int(value):02d}"
    return str(value)


def _names(value: Any) -> list[str]:
    if value is None or value == "":
        return []
    if isinstance(value, (str, int, np.integer)):
        value = [value]
    return [_dig_in_name(v) for v in value]


def _laser_conditions(laser: Mapping[str, Any], source: str) -> list[tuple[float, float]]:
    conditions = []
    for pair in laser.get("onset_duration") or []:
        try:
            lag, dur = (float(v) for v in pair)
        except (TypeError, ValueError):
            raise TrialsError(f"{source}: laser_params.onset_duration entry {pair!r} is not [onset_ms, duration_ms]") from None
        conditions.append((lag, dur))
    return conditions


def _tastes(taste_params: Mapping[str, Any], digital_inputs: DigitalInputs, laser_names: list[str]) -> dict[str, str]:
    names = _names(taste_params.get("dig_in_names"))
    if names:
        labels = taste_params.get("tastes") or []
        labels = [labels] if isinstance(labels, str) else list(labels)
        return {n: (str(labels[i]) if i < len(labels) and labels[i] not in (None, "") else n) for i, n in enumerate(names)}
    return {n: n for n in sorted(digital_inputs) if len(digital_inputs[n][0]) > 0 and n not in laser_names}


def trial_config(info: Mapping[str, Any] | None, digital_inputs: DigitalInputs, source: str = ".info") -> TrialConfig:
    """Taste and laser inputs from the ``.info`` JSON (spec 2.5).

    Without ``taste_params.dig_in_names``, every digital input with at least one pulse that is not
    a laser input is a taste named after its input. ``tastes[i]`` names ``dig_in_names[i]``; a
    missing or short ``tastes`` list falls back to the input names.
    """
    info = info or {}
    laser = info.get("laser_params") or {}
    laser_names = _names(laser.get("dig_in_names"))
    conditions = _laser_conditions(laser, source)
    tastes = _tastes(info.get("taste_params") or {}, digital_inputs, laser_names)
    for n in list(tastes) + laser_names:
        if n not in digital_inputs:
            have = ", ".join(sorted(digital_inputs)) or "none"
            raise TrialsError(f"{source}: digital input {n} is not in the recording (it has: {have})")
    warnings = []
    both = sorted(set(tastes) & set(laser_names))
    if both:  # init lists every pulsed input as a taste; adding the laser should be the only edit
        warnings.append(f"{source}: {', '.join(both)} listed as taste and as laser input: used as laser")
        tastes = {k: v for k, v in tastes.items() if k not in both}
    return TrialConfig(tastes=tastes, laser_dig_ins=laser_names, laser_conditions=conditions, warnings=warnings)
