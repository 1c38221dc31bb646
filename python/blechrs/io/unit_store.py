"""The unit store ``DIR/<name>.h5``: the one reader and writer of sorted units.

The HDF5 layout is blech_clust's (spec 7.3), so its tools read blechrs's units:

- ``/sorted_units/unitNNN/times``: int64 sample indices of the unit's spikes;
- ``/sorted_units/unitNNN/waveforms``: n x samples, microvolts (float32: the precision of the
  engine's waveforms; blech_clust writes float64, its readers accept either);
- ``/sorted_units/unitNNN/unit_metadata``: one-row table electrode_number, single_unit,
  regular_spiking, fast_spiking, waveform_count, hash, snr;
- ``/unit_descriptor``: one row per unit, unit_number first, then the same fields.

blechrs adds, beside them, ``/sorted_units/unitNNN/quality`` (one-row table of its quality
metrics) and the attributes ``solution``, ``clusters`` and ``source`` on each unit group saying
where the unit came from. Units are numbered in electrode order.

Every write is atomic: the new file is written next to the old one and renamed over it, so a
crash leaves the previous results intact and readable.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
import hashlib
import os
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np
import tables

from blechrs.mapped import MappedRows
from blechrs.io.atomic import atomic_path
from blechrs.model import Unit
from blechrs.io.paths import h5_path

#: Nodes computed from the units; a new set of units makes them stale, so they are not carried over.
DERIVED_FROM_UNITS = ("sorted_units", "unit_descriptor", "spike_trains", "unit_distances")

class sorted_unit_metadata(tables.IsDescription):  # noqa: N801 - blech_clust's name
    electrode_number = tables.Int32Col()
    single_unit = tables.Int32Col()
    regular_spiking = tables.Int32Col()
    fast_spiking = tables.Int32Col()
    waveform_count = tables.Int32Col()
    hash = tables.StringCol(10)
    snr = tables.Float32Col()


class unit_descriptor(sorted_unit_metadata):  # noqa: N801 - blech_clust's name
    """One row per unit: its number first, then the fields of its unit_metadata."""
    unit_number = tables.Int32Col(pos=0)


#: blechrs's quality metrics, stored per unit beside blech_clust's metadata.
QUALITY_FIELDS = (
    "firing_rate", "snr", "amplitude_uv", "isi_violations_1ms", "isi_violations_2ms",
    "contamination", "isolation_distance", "l_ratio", "width_ms", "threshold_share",
)


def unit_hash(electrode: int, waveform_count: int, taken: set[str] | None = None) -> str:
    """blech_clust HEAD's hash: sha256("{electrode}_{count}")[:10]; made unique within a file."""
    text = f"{electrode}_{waveform_count}"
    h = hashlib.sha256(text.encode()).hexdigest()[:10]
    k = 1
    while taken is not None and h in taken:
        # blech_clust refuses the second unit; blechrs keeps both units and disambiguates.
        h = hashlib.sha256(f"{text}_{k}".encode()).hexdigest()[:10]
        k += 1
    return h


def write_units(path: str | os.PathLike, units: Iterable[Unit], attrs: dict[str, Any] | None = None) -> list[str]:
    """Replace the sorted units of ``path`` by ``units`` (atomically). Returns the unit names.

    Units are numbered unit000, unit001, ... in electrode order (stable within an electrode).
    Other nodes of an existing file (for example ``/raw_emg``) are carried over, except those
    derived from the units (``/spike_trains``, ``/unit_distances``), which would be stale.
    ``attrs`` are set on the root group (e.g. ``units_from``).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # A list is put in electrode order here; an iterator must come in that order (it is written
    # as it comes, so its units need not all be in memory at once).
    units = sorted(units, key=lambda u: u.electrode) if isinstance(units, (list, tuple)) else _in_order(units)
    names: list[str] = []
    with atomic_path(path, suffix=".h5") as tmp:
        with tables.open_file(str(tmp), "w", title="blechrs sorted units") as out:
            if path.exists():
                with tables.open_file(str(path), "r") as old:
                    for node in old.root._f_iter_nodes():
                        if node._v_name not in DERIVED_FROM_UNITS:
                            node._f_copy(newparent=out.root, recursive=True)
            for key, value in (attrs or {}).items():
                out.root._v_attrs[key] = value
            group = out.create_group("/", "sorted_units")
            descriptor = out.create_table("/", "unit_descriptor", description=unit_descriptor)
            taken: set[str] = set()
            qdesc = {k: tables.Float64Col(pos=i) for i, k in enumerate(QUALITY_FIELDS)}
            for number, unit in enumerate(units):
                name = f"unit{number:03d}"
                names.append(name)
                times = np.ascontiguousarray(unit.times, dtype=np.int64)
                waveforms = (unit.waveforms if isinstance(unit.waveforms, MappedRows)
                             else np.ascontiguousarray(unit.waveforms, dtype=np.float32))
                if waveforms.ndim != 2 or len(waveforms) != len(times):
                    raise ValueError(f"{name}: {len(times)} times but waveforms of shape {waveforms.shape}")
                g = out.create_group(group, name)
                _write_waveforms(out, g, waveforms)
                out.create_array(g, "times", times)
                h = unit_hash(unit.electrode, len(times), taken)
                taken.add(h)
                row_values = dict(
                    electrode_number=int(unit.electrode), single_unit=int(bool(unit.single_unit)),
                    regular_spiking=int(bool(unit.regular_spiking)), fast_spiking=int(bool(unit.fast_spiking)),
                    waveform_count=len(times), hash=h.encode(), snr=float(unit.snr),
                )
                meta = out.create_table(g, "unit_metadata", description=sorted_unit_metadata)
                meta.append([tuple(row_values[c] for c in meta.colnames)])
                meta.flush()
                row_values["unit_number"] = number
                descriptor.append([tuple(row_values[c] for c in descriptor.colnames)])
                quality = {k: float(unit.metrics.get(k, np.nan)) for k in QUALITY_FIELDS}
                quality["snr"] = float(unit.snr)
                qt = out.create_table(g, "quality", description=qdesc)
                qt.append([tuple(quality[k] for k in qt.colnames)])
                qt.flush()
                g._v_attrs.solution = int(unit.solution)
                g._v_attrs.clusters = str(unit.label)
                g._v_attrs.source = str(unit.source)
            descriptor.flush()
    return names


def _in_order(units: Iterable[Unit]) -> Iterator[Unit]:
    last = None
    for u in units:
        if last is not None and u.electrode < last:
            raise ValueError(f"units must come in electrode order: electrode {u.electrode} after {last}")
        last = u.electrode
        yield u


def units_from(path: str | os.PathLike) -> str | None:
    """Where the store's units came from (its ``units_from`` attribute: "autosort", "sort file X"),
    None for no store or an unreadable one."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        with tables.open_file(str(path), "r") as f:
            attrs = f.root._v_attrs
            return str(attrs.units_from) if "units_from" in attrs._v_attrnames else None
    except Exception:  # an unreadable store is replaced like a missing one
        return None


def _write_waveforms(out, group, waveforms: np.ndarray | MappedRows) -> None:
    """A unit's ``waveforms`` array (float32); a long electrode's unit (MappedRows) a block at a
    time into the same plain, contiguous HDF5 dataset."""
    if not isinstance(waveforms, MappedRows):
        out.create_array(group, "waveforms", waveforms)
        return
    node = out.create_array(group, "waveforms", atom=tables.Float32Atom(), shape=waveforms.shape)
    start = 0
    for block in waveforms.blocks():
        node[start:start + len(block)] = block.astype(np.float32, copy=False)
        start += len(block)


def read_units(path: str | os.PathLike, waveforms: bool = True, electrode: int | None = None,
               metrics: bool = True) -> list[Unit]:
    """Every unit of a unit store (or those of one electrode), in unit order; empty if none.
    ``metrics``: read each unit's quality table (opening a PyTables table costs ~4 ms: pictures
    of 100 units spent ~1 s on tables they did not use)."""
    path = Path(path)
    if not path.exists():
        return []
    out: list[Unit] = []
    with tables.open_file(str(path), "r") as f:
        if "/sorted_units" not in f:
            return []
        # The descriptor holds every unit's metadata row: one table read instead of one per unit.
        described = _descriptor_rows(f)
        if electrode is not None and described is not None:
            names = [f"unit{k:03d}" for k, row in described.items() if int(row["electrode_number"]) == electrode]
            groups = [(n, f.get_node(f"/sorted_units/{n}")) for n in names if f"/sorted_units/{n}" in f]
        else:
            groups = sorted((g._v_name, g) for g in f.list_nodes("/sorted_units", classname="Group"))
        for name, g in groups:
            k = _unit_number(name)
            meta = described[k] if described is not None and k in described else g.unit_metadata[0]
            if electrode is not None and int(meta["electrode_number"]) != electrode:
                continue
            quality = {}
            if metrics and "quality" in g:
                q = g.quality[0]
                quality = {k: float(q[k]) for k in g.quality.colnames}
            attrs = g._v_attrs
            out.append(Unit(
                name=name, electrode=int(meta["electrode_number"]), times=g.times[:],
                waveforms=g.waveforms[:] if waveforms else np.zeros((0, 0), np.float32),
                single_unit=bool(meta["single_unit"]), regular_spiking=bool(meta["regular_spiking"]),
                fast_spiking=bool(meta["fast_spiking"]), snr=float(meta["snr"]),
                hash=meta["hash"].decode(), metrics=quality,
                solution=int(getattr(attrs, "solution", -1)) if "solution" in attrs._v_attrnames else -1,
                label=str(attrs.clusters) if "clusters" in attrs._v_attrnames else "",
                source=str(attrs.source) if "source" in attrs._v_attrnames else "",
            ))
    return out


def _descriptor_rows(f: tables.File, fields=tuple(sorted_unit_metadata.columns)) -> dict[int, Any] | None:
    """unit number -> its /unit_descriptor row, when the descriptor numbers the units and carries
    ``fields`` (blechrs writes all of unit_metadata's there too); None otherwise (then each unit's
    own table is read). /unit_descriptor is one table: opening every unit's small metadata table
    costs ~4 ms a unit."""
    if "/unit_descriptor" not in f:
        return None
    desc = f.root.unit_descriptor.read()
    if not {"unit_number", *fields} <= set(desc.dtype.names or ()):
        return None
    return {int(row["unit_number"]): row for row in desc}


def _unit_number(name: str) -> int:
    """unitNNN -> NNN (-1 for a name of another form)."""
    return int(name[4:]) if name.startswith("unit") and name[4:].isdigit() else -1


def existing_store(directory: str | os.PathLike) -> Path:
    """The unit store of a recording folder, which must exist."""
    p = h5_path(directory)
    if not p.exists():
        raise FileNotFoundError(f"{p}: no unit store (run the sort first)")
    return p


@dataclass
class UnitSpikes:
    """A stored unit's spikes, without its metadata: what trials and quality checks need."""

    name: str
    electrode: int
    """-1 if the store does not say."""
    times: np.ndarray
    """int64 sample indices."""
    waveforms: np.ndarray
    """n x samples, or 0 x 0 when not read (or not stored)."""


def read_unit_spikes(path: str | os.PathLike, waveforms: bool = False) -> list[UnitSpikes]:
    """Every unit's name, electrode and spike times (and waveforms), in unit order; cheaper than
    :func:`read_units` and content with stores of blech_clust's layout (no blechrs attributes)."""
    with tables.open_file(str(path), "r") as h5:
        if "/sorted_units" not in h5:
            return []
        groups = sorted(h5.list_nodes("/sorted_units", classname="Group"), key=lambda g: g._v_name)
        electrodes = _unit_electrodes(h5, groups)
        return [UnitSpikes(name=g._v_name, electrode=e, times=np.asarray(g.times.read(), dtype=np.int64).reshape(-1),
                           waveforms=g.waveforms.read() if waveforms and "waveforms" in g else np.zeros((0, 0)))
                for g, e in zip(groups, electrodes)]


def _unit_electrodes(h5: tables.File, groups: list) -> list[int]:
    numbers = [_unit_number(g._v_name) for g in groups]
    described = _descriptor_rows(h5, ("electrode_number",))
    if described is not None and all(k in described for k in numbers):
        return [int(described[k]["electrode_number"]) for k in numbers]
    out = []
    for g in groups:
        meta = g.unit_metadata.read() if "unit_metadata" in g else None
        out.append(int(meta["electrode_number"][0]) if meta is not None and len(meta) else -1)
    return out


class StoredWaveforms:
    """A stored unit's waveforms, read a block of rows at a time: ``shape``, ``rows[index]`` for
    a sorted index array, and ``blocks()`` (consecutive row blocks; their bytes joined are the
    array's). A unit of a long recording never has to be in memory whole."""

    ROWS = 8192

    def __init__(self, node: Any):
        self.node = node
        self.shape = tuple(node.shape)

    def __getitem__(self, rows: np.ndarray) -> np.ndarray:
        rows = np.asarray(rows, dtype=np.int64)
        out = np.empty((len(rows),) + self.shape[1:], dtype=self.node.dtype)
        for start in range(0, self.shape[0], self.ROWS):
            i0, i1 = np.searchsorted(rows, [start, start + self.ROWS])
            if i1 > i0:
                out[i0:i1] = self.node.read(start, min(start + self.ROWS, self.shape[0]))[rows[i0:i1] - start]
        return out

    def blocks(self) -> Iterator[np.ndarray]:
        for start in range(0, self.shape[0], self.ROWS):
            yield self.node.read(start, min(start + self.ROWS, self.shape[0]))


@contextlib.contextmanager
def stored_waveforms(path: str | os.PathLike) -> Iterator[Callable[[str], StoredWaveforms | np.ndarray]]:
    """``with stored_waveforms(h5) as waveforms_of:`` ``waveforms_of(unit name)`` is that unit's
    :class:`StoredWaveforms` (an empty 0 x 0 array if it has none) while the store is open."""
    with tables.open_file(str(path), "r") as h5:
        def waveforms_of(name: str) -> StoredWaveforms | np.ndarray:
            where = f"/sorted_units/{name}/waveforms"
            return StoredWaveforms(h5.get_node(where)) if where in h5 else np.zeros((0, 0), np.float32)

        yield waveforms_of


@contextlib.contextmanager
def edit_store(path: str | os.PathLike) -> Iterator[tables.File]:
    """``with edit_store(path) as h5:`` edits a copy of the store, which replaces it only when the
    block succeeds: a crash leaves the original intact."""
    with atomic_path(path, suffix=".h5", copy_from_target=True) as tmp, tables.open_file(str(tmp), "a") as h5:
        yield h5


def write_unit_distances(path: str | os.PathLike, similarity: np.ndarray, names: list[str], window_ms: float) -> None:
    """Replace ``/unit_distances`` (the unit QA's similarity matrix, attribute ``units``)."""
    with edit_store(path) as h5:
        if "/unit_distances" in h5:
            h5.remove_node("/unit_distances")
        arr = h5.create_array("/", "unit_distances", similarity, title="% of row unit's spikes within "
                              f"{window_ms:g} ms of a column unit's spike")
        arr.attrs.units = names
