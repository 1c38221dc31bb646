"""The data model shared by every stage: a sorted unit.

A :class:`Unit` is one type from the moment auto-sort or a sort-file row chooses it (``indices``
into its electrode's events), through the unit store (``times``, ``waveforms``, metrics) and back
out of it (``name``, ``hash``), so no stage converts between look-alike records.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: The keys of a unit chosen by auto-sort as kept in its electrode's work file.
_RECORD_KEYS = ("solution", "clusters", "single_unit", "regular_spiking", "fast_spiking", "metrics", "reason")


@dataclass
class Unit:
    """One sorted unit of one electrode."""

    electrode: int
    solution: int = -1
    """The clustering solution it was chosen from (1 = auto-sort's template assignment)."""
    clusters: tuple[int, ...] = ()
    """Its clusters in that solution (several: a merge)."""
    indices: np.ndarray | None = None
    """Its events among the electrode's events (sorted); None for a unit read from the store."""
    single_unit: bool = False
    regular_spiking: bool = False
    fast_spiking: bool = False
    label: str = ""
    """The sort-file notation of its clusters: "5", "1+5", "4 split 7: 0+2"."""
    source: str = ""
    """'autosort' or 'sort file row N'."""
    row: int | None = None
    """The sort-file row that chose it."""
    metrics: dict[str, Any] = field(default_factory=dict)
    """Quality metrics (core.metrics.unit_metrics); None or NaN where undefined."""
    reason: str = ""
    """Why auto-sort kept it."""
    times: np.ndarray | None = None
    """int64 sample indices of its spikes (once taken from the electrode's events, or read)."""
    waveforms: np.ndarray | None = None
    """n x samples, microvolts."""
    snr: float = 0.0
    name: str = ""
    """unitNNN once stored."""
    hash: str = ""

    @property
    def unit_type(self) -> str:
        """'r' (regular spiking), 'f' (fast spiking) or '' (the sort file's Type column)."""
        return "r" if self.regular_spiking else "f" if self.fast_spiking else ""

    def record(self) -> dict[str, Any]:
        """The JSON-able record of an auto-sort unit in a work file (its events are ``auto_labels``)."""
        return dict(solution=int(self.solution), clusters=[int(c) for c in self.clusters],
                    single_unit=bool(self.single_unit), regular_spiking=bool(self.regular_spiking),
                    fast_spiking=bool(self.fast_spiking), metrics=self.metrics, reason=self.reason)

    @classmethod
    def from_record(cls, record: dict[str, Any], electrode: int, indices: np.ndarray) -> "Unit":
        """An auto-sort unit back from its work-file record."""
        clusters = tuple(int(c) for c in record["clusters"])
        return cls(electrode=electrode, solution=int(record["solution"]), clusters=clusters, indices=indices,
                   single_unit=bool(record["single_unit"]), regular_spiking=bool(record["regular_spiking"]),
                   fast_spiking=bool(record["fast_spiking"]), label="+".join(map(str, clusters)),
                   source="autosort", metrics=record["metrics"], reason=str(record.get("reason", "")))
