"""What a command did: the electrodes, the units, notes and timings, for the CLI to print."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from blechrs.io import unit_store
from blechrs.model import ElectrodeWork, Unit


@dataclass
class RunReport:
    directory: Path
    electrodes: list[dict[str, Any]] = field(default_factory=list)
    units: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[int] = field(default_factory=list)
    """Electrodes whose earlier extraction was reused (resume)."""
    clustered_before: list[int] = field(default_factory=list)
    """Electrodes whose earlier clustering and auto-sort were reused (resume)."""
    notes: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    h5: Path | None = None
    summaries: list[Any] = field(default_factory=list)
    """Printable results of the later steps (raw QA, arrays, unit QA), in order."""
    store_written: bool = False
    """The unit store was (re)written by this command (False: left as it was)."""

    @property
    def quiet(self) -> list[dict[str, Any]]:
        return [e for e in self.electrodes if e["status"] != "ok"]


def electrode_summary(work: ElectrodeWork) -> dict[str, Any]:
    """The summary row of one electrode's work (its values alone will do: ``work_files.read_meta``)."""
    return dict(electrode=work.electrode, events=work.n_events, status=work.status or "ok",
                units=len(work.units or []), threshold=work.threshold)


def unit_rows(named_units: Iterable[tuple[str, Any]]) -> list[dict[str, Any]]:
    """The summary row of each (name, unit) pair."""
    rows = []
    for name, u in named_units:
        m = u.metrics
        rows.append(dict(unit=name, electrode=u.electrode, spikes=len(u.times),
                         rate=m.get("firing_rate", np.nan), snr=u.snr,
                         isi_1ms=m.get("isi_violations_1ms", np.nan), isi_2ms=m.get("isi_violations_2ms", np.nan),
                         single_unit=u.single_unit,
                         kind="RS" if u.regular_spiking else "FS" if u.fast_spiking else "",
                         source=u.source, clusters=u.label, solution=u.solution))
    return rows


def stored_units_table(h5: Path) -> list[dict[str, Any]]:
    """The summary rows of the units already in a unit store."""
    return unit_rows((u.name, u) for u in unit_store.read_units(h5, waveforms=False))


def units_table(units: Sequence[Unit], names: Sequence[str]) -> list[dict[str, Any]]:
    """The summary rows of units just stored under ``names``."""
    return unit_rows(zip(names, units))
