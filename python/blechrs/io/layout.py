"""The electrode layout ``<name>_electrode_layout.csv``: one row per amplifier channel:
``filename, electrode_ind, electrode_num, port, CAR_group``. The CAR group defaults to the port;
``none`` skips the channel; a group whose name contains ``emg`` is EMG (referenced and sorted
never). ``blechrs init`` writes it (with ``<name>.info`` and ``<name>.params``); people edit it.
"""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass, field
from pathlib import Path

from blechrs.errors import LayoutError
from blechrs.io.atomic import write_text_atomic
from blechrs.io.paths import layout_path
from blechrs.io.recording import Recording

LAYOUT_COLUMNS = ("filename", "electrode_ind", "electrode_num", "port", "CAR_group")


@dataclass
class LayoutRow:
    filename: str
    electrode_ind: int
    """The channel's index in the recording (names /raw/electrodeNN and the sort file's Chan)."""
    electrode_num: str
    port: str
    car_group: str
    extra: dict[str, str] = field(default_factory=dict)
    """Other columns (mad_val, threshold, original_CAR_group ...) kept as text."""

    @property
    def skipped(self) -> bool:
        return self.car_group.strip().lower() in ("none", "na", "")

    @property
    def is_emg(self) -> bool:
        return "emg" in self.car_group.lower()

    @property
    def sorted(self) -> bool:
        """Sorted = neither skipped nor EMG."""
        return not (self.skipped or self.is_emg)


def default_layout(rec: Recording) -> list[LayoutRow]:
    return [
        LayoutRow(filename=f, electrode_ind=i, electrode_num=num, port=port, car_group=port)
        for i, (f, num, port) in enumerate(zip(rec.filenames, rec.electrode_nums, rec.ports))
    ]


def layout_csv(rows: list[LayoutRow]) -> str:
    extra = list(dict.fromkeys(k for r in rows for k in r.extra))
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(list(LAYOUT_COLUMNS) + extra)
    for r in rows:
        w.writerow([r.filename, r.electrode_ind, r.electrode_num, r.port, r.car_group] + [r.extra.get(k, "") for k in extra])
    return buf.getvalue()


def save_layout(directory, rows: list[LayoutRow]) -> Path:
    """Write the layout CSV atomically (callers decide whether overwriting is allowed)."""
    p = layout_path(directory)
    write_text_atomic(p, layout_csv(rows))
    return p


def load_layout(directory: str | os.PathLike, n_channels: int | None = None) -> list[LayoutRow]:
    """Read ``<name>_electrode_layout.csv``. Errors name the file and row. If the layout has an
    ``original_CAR_group`` column (an automatic CAR split), ``CAR_group`` is kept as written."""
    p = layout_path(directory)
    if not p.exists():
        raise LayoutError(f"{p}: no electrode layout; run `blechrs init {directory}` first")
    with open(p, newline="") as fh:
        reader = csv.DictReader(fh)
        cols = reader.fieldnames or []
        missing = [c for c in ("electrode_ind", "CAR_group") if c not in cols]
        if missing:
            raise LayoutError(f"{p}: missing column {', '.join(missing)} (expected {', '.join(LAYOUT_COLUMNS)})")
        rows = []
        seen: dict[int, int] = {}
        for line, r in enumerate(reader, start=2):
            try:
                ind = int(float(r["electrode_ind"]))
            except (TypeError, ValueError):
                raise LayoutError(f"{p}: line {line}: electrode_ind {r['electrode_ind']!r} is not a number") from None
            if ind in seen:
                raise LayoutError(f"{p}: line {line}: electrode_ind {ind} repeats line {seen[ind]}")
            if ind < 0 or (n_channels is not None and ind >= n_channels):
                raise LayoutError(f"{p}: line {line}: electrode_ind {ind} is not a channel of the recording"
                                     + (f" (0..{n_channels - 1})" if n_channels else ""))
            seen[ind] = line
            rows.append(LayoutRow(
                filename=(r.get("filename") or "").strip(), electrode_ind=ind,
                electrode_num=(r.get("electrode_num") or "").strip(), port=(r.get("port") or "").strip(),
                car_group=(r.get("CAR_group") or "").strip(),
                extra={k: v for k, v in r.items() if k not in LAYOUT_COLUMNS and k is not None},
            ))
    return rows


def car_groups(rows: list[LayoutRow], n_channels: int, use_car: bool = True) -> list[int]:
    """CAR group id per recording channel for ``kernels.extract_electrodes``: groups numbered in
    order of first appearance; -1 = not referenced (``none``, EMG, channels missing from the
    layout, or ``use_car=False``)."""
    ids = [-1] * n_channels
    if not use_car:
        return ids
    names: dict[str, int] = {}
    for r in rows:
        if r.sorted and 0 <= r.electrode_ind < n_channels:
            ids[r.electrode_ind] = names.setdefault(r.car_group, len(names))
    return ids


def original_car_groups(rows: list[LayoutRow]) -> list[str]:
    """Each row's CAR group before any automatic split (its ``original_CAR_group`` column, if set)."""
    return [r.extra.get("original_CAR_group") or r.car_group for r in rows]


def with_car_groups(rows: list[LayoutRow], groups: list[str]) -> list[LayoutRow]:
    """A copy of the layout with new CAR groups; the groups before the split go to an
    ``original_CAR_group`` column, so a later split starts again from them. Nothing is written."""
    out = []
    for r, b, g in zip(rows, original_car_groups(rows), groups):
        extra = dict(r.extra)
        extra["original_CAR_group"] = b
        out.append(LayoutRow(r.filename, r.electrode_ind, r.electrode_num, r.port, g, extra))
    return out


def sorted_electrodes(rows: list[LayoutRow]) -> list[int]:
    return sorted(r.electrode_ind for r in rows if r.sorted)


def emg_electrodes(rows: list[LayoutRow]) -> list[int]:
    return sorted(r.electrode_ind for r in rows if r.is_emg and not r.skipped)
