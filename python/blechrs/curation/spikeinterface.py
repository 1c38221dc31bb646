"""SpikeInterface's curation format <-> the stored units and sort-file rows (plain dicts and
arrays: no SpikeInterface needed).

A curation is relative to a sorting; here that is the unit store as ``blechrs.to_spikeinterface``
gives it: unit id = the store's unit number (``unit007`` -> 7).

Export (``units_to_curation``): format_version "2", every unit id, the label definitions
``quality`` (good / MUA / noise, exclusive: spikeinterface-gui's) and ``type`` (regular_spiking /
fast_spiking, exclusive), each unit's labels from the store (single unit = good, multi-unit =
MUA), nothing removed, merged or split; and, under ``blechrs_unit_store`` (a key SpikeInterface
ignores), a digest of the store, so that a curation is never applied by unit id to a store that
changed since (an import renumbers the units).

Import (``curated_units``): the curation applied as SpikeInterface's ``apply_curation`` applies
it (format_version 1 or 2; labels of the original ids, then ``removed``, then ``merges``, then
``splits``; new ids as given, else SpikeInterface's "append" strategy: past the largest id), to
the stored units' spike trains; a sequential curation (``{"curation_steps": [...]}``, what
spikeinterface-gui exports after "Apply curation") step after step. Labels: good -> single unit, MUA -> multi-unit, noise -> dropped
(SpikeInterface keeps a noise unit with its label; blechrs drops it, as its phy import does); no
quality label -> the stored unit's. A merge takes its units' label when they agree, else MUA, and
their type when they agree, else none; a split's parts keep their unit's labels. A merge of units
of two electrodes is refused (blechrs sorts each electrode on its own).

Rows (``provenance``, ``sort_entries``): a curated unit that is a stored unit, or a merge of
stored units of one solution, is selected by the row that made them (Chan, Solution, Cluster
"a+b") when that row still selects exactly its spikes; any other (a split, a merge across
solutions) becomes a cluster of a new solution of kind ``"si"`` (``curation.phy.new_solutions``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from blechrs.curation.sort_file import parse_clusters
from blechrs.errors import SpikeInterfaceError
from blechrs.model import Unit

FORMAT_VERSION = "2"
QUALITY, TYPE = "quality", "type"
LABEL_DEFINITIONS = {
    QUALITY: {"label_options": ["good", "MUA", "noise"], "exclusive": True},
    TYPE: {"label_options": ["regular_spiking", "fast_spiking"], "exclusive": True},
}
#: Quality labels (lower case) -> single unit (True), multi-unit (False) or dropped (None).
QUALITY_KEEPS = {"good": True, "mua": False, "noise": None}
TYPE_OF = {"regular_spiking": "r", "rs": "r", "regular": "r", "r": "r",
           "fast_spiking": "f", "fs": "f", "fast": "f", "f": "f"}
SOLUTION_KIND = "si"
#: The key (ignored by SpikeInterface) under which the export names the unit store it was made of.
STORE_KEY = "blechrs_unit_store"


def store_digest(units: Sequence[Unit]) -> str:
    """A short hash of the store's units (names, electrodes, spike times): a curation made of
    another store (an older sort, or one already imported) must not be applied by unit id."""
    h = hashlib.sha256()
    for u in units:
        h.update(f"{u.name}:{int(u.electrode)}:".encode())
        h.update(np.ascontiguousarray(u.times, dtype=np.int64).tobytes())
    return h.hexdigest()[:16]


def units_to_curation(units: Sequence[Unit], ids: Sequence[int], store: str = "") -> dict[str, Any]:
    """The curation that keeps every stored unit as it is, with its labels (module doc), and
    under ``STORE_KEY`` the store's file name ``store`` and ``store_digest``."""
    labels = []
    for uid, u in zip(ids, units):
        unit_labels = {QUALITY: ["good" if u.single_unit else "MUA"]}
        if u.unit_type:
            unit_labels[TYPE] = ["regular_spiking" if u.unit_type == "r" else "fast_spiking"]
        labels.append({"unit_id": int(uid), "labels": unit_labels})
    return {"format_version": FORMAT_VERSION, "unit_ids": [int(i) for i in ids],
            "label_definitions": {k: dict(v) for k, v in LABEL_DEFINITIONS.items()},
            "manual_labels": labels, "removed": [], "merges": [], "splits": [],
            STORE_KEY: {"file": store, "digest": store_digest(units)}}


# ------------------------------------------------------------------------------------------------
# Reading a curation


def _id(value: Any) -> int | str:
    """A unit id as SpikeInterface writes it to JSON: an int (or a string of digits) or a name."""
    if isinstance(value, bool):
        raise SpikeInterfaceError(f"unit id {value!r} is not a unit id")
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, str):
        return int(value) if value.strip().isdigit() else value
    raise SpikeInterfaceError(f"unit id {value!r} is not a unit id")


@dataclass
class SplitStep:
    unit_id: int | str
    parts: list[np.ndarray] | None
    """Spike indices of each part (mode "indices"; the rest of the unit is one more part)."""
    labels: np.ndarray | None
    """A label per spike (mode "labels")."""
    new_ids: list[int | str] | None


@dataclass
class Curation:
    """A curation dict read into plain values (format_version 1 and 2 alike)."""

    unit_ids: list[int | str]
    labels: dict[int | str, dict[str, list[str]]]
    removed: list[int | str]
    merges: list[tuple[list[int | str], int | str | None]]
    splits: list[SplitStep]


def _manual_labels(entries: Any) -> dict[int | str, dict[str, list[str]]]:
    out: dict[int | str, dict[str, list[str]]] = {}
    for entry in entries or []:
        if not isinstance(entry, dict) or "unit_id" not in entry:
            raise SpikeInterfaceError(f"manual_labels entry {entry!r} has no unit_id")
        labels = entry.get("labels")
        if labels is None:  # format 1: {"unit_id": 3, "quality": ["good"]}
            labels = {k: v for k, v in entry.items() if k != "unit_id"}
        out[_id(entry["unit_id"])] = {str(k): [str(x) for x in (v if isinstance(v, list) else [v])]
                                      for k, v in labels.items()}
    return out


def _merges(data: dict) -> list[tuple[list[int | str], int | str | None]]:
    merges = data.get("merges")
    if merges is None and "merge_unit_groups" in data:
        merges = [list(g) for g in data["merge_unit_groups"]]
    if isinstance(merges, dict):
        merges = [{"unit_ids": list(g), "new_unit_id": k} for k, g in merges.items()]
    out = []
    for m in merges or []:
        ids, new = (m.get("unit_ids"), m.get("new_unit_id")) if isinstance(m, dict) else (m, None)
        if not isinstance(ids, list) or len(ids) < 2:
            raise SpikeInterfaceError(f"merge {m!r} does not name at least two units")
        out.append(([_id(i) for i in ids], None if new is None else _id(new)))
    return out


def _splits(data: dict) -> list[SplitStep]:
    splits = data.get("splits") or []
    if isinstance(splits, dict):
        splits = [{"unit_id": k, "mode": "indices" if v and isinstance(v[0], list) else "labels",
                   ("indices" if v and isinstance(v[0], list) else "labels"): v} for k, v in splits.items()]
    out = []
    for s in splits:
        if not isinstance(s, dict) or "unit_id" not in s:
            raise SpikeInterfaceError(f"split {s!r} has no unit_id")
        mode = s.get("mode", "indices")
        new = s.get("new_unit_ids")
        new_ids = None if new is None else [_id(i) for i in new]
        if mode == "indices" and s.get("indices"):
            parts = [np.asarray(p, dtype=np.int64) for p in s["indices"]]
            out.append(SplitStep(_id(s["unit_id"]), parts, None, new_ids))
        elif mode == "labels" and s.get("labels"):
            out.append(SplitStep(_id(s["unit_id"]), None, np.asarray(s["labels"]), new_ids))
        else:
            raise SpikeInterfaceError(f"split of unit {s['unit_id']!r}: mode {mode!r} without its {mode}")
    return out


def read_curation(data: Any) -> Curation:
    """A curation dict (as json.load gives it) -> Curation; SpikeInterfaceError if it is not one."""
    if not isinstance(data, dict) or "unit_ids" not in data:
        raise SpikeInterfaceError("not a SpikeInterface curation (a JSON object with unit_ids)")
    version = str(data.get("format_version", ""))
    if version not in ("1", "2"):
        raise SpikeInterfaceError(f"format_version {version or 'missing'!r}: only 1 and 2 are read "
                                  "(spikeinterface.curation.load_curation reads older ones)")
    removed = data.get("removed", data.get("removed_units")) or []
    return Curation(unit_ids=[_id(i) for i in data["unit_ids"]], labels=_manual_labels(data.get("manual_labels")),
                    removed=[_id(i) for i in removed], merges=_merges(data), splits=_splits(data))


# ------------------------------------------------------------------------------------------------
# Applying it to the stored units


@dataclass
class CuratedUnit:
    unit_id: int | str
    """Its id in the curated SpikeInterface sorting."""
    cluster: int
    """Its cluster number in a new solution (the id when a whole number, else one past the others)."""
    electrode: int
    times: np.ndarray
    """Sample indices, increasing, each once."""
    single_unit: bool | None
    """None: labelled noise (dropped)."""
    unit_type: str
    """'r', 'f' or ''."""
    sources: tuple[int, ...]
    """The stored units (ids) it came from."""
    how: str
    """"kept", "merge of 3+4", "split of 5 (part 2 of 3)"."""


def _quality(curation: Curation, uid: int | str, unit: CuratedUnit) -> bool | None:
    values = curation.labels.get(uid, {}).get(QUALITY, [])
    if not values:
        return unit.single_unit
    key = values[0].lower()
    if key not in QUALITY_KEEPS:
        raise SpikeInterfaceError(f"unit {uid}: quality label {values[0]!r} is not good, MUA or noise")
    return QUALITY_KEEPS[key]


def _type(curation: Curation, uid: int | str, unit: CuratedUnit) -> str:
    values = curation.labels.get(uid, {}).get(TYPE, [])
    if not values:
        return unit.unit_type
    if values[0].lower() not in TYPE_OF:
        raise SpikeInterfaceError(f"unit {uid}: type label {values[0]!r} is not regular_spiking or fast_spiking")
    return TYPE_OF[values[0].lower()]


def _check_ids(curation: Curation, stored: set[int]) -> None:
    named = set(curation.unit_ids)
    missing, unknown = sorted(stored - named), sorted(named - stored, key=str)
    if missing or unknown:
        raise SpikeInterfaceError(
            "its unit_ids are not the unit store's (" + "; ".join(
                ([f"store units missing: {', '.join(map(str, missing[:8]))}"] if missing else [])
                + ([f"not in the store: {', '.join(map(str, unknown[:8]))}"] if unknown else []))
            + "): was it made on another sort of this recording? export again")
    for step, ids in (("removed", curation.removed), ("merges", [i for g, _ in curation.merges for i in g]),
                      ("splits", [s.unit_id for s in curation.splits]), ("manual_labels", list(curation.labels))):
        bad = [i for i in ids if i not in named]
        if bad:
            raise SpikeInterfaceError(f"{step} names unit {bad[0]!r}, which is not in unit_ids")


def _next_ids(current: Sequence[int | str], n: int) -> list[int | str]:
    """SpikeInterface's "append" strategy: ``n`` new ids past the largest (integer ids)."""
    numbers = [i for i in current if isinstance(i, int)]
    if len(numbers) != len(current):
        raise SpikeInterfaceError("a merge or split without new unit ids on a sorting with non-integer ids")
    top = max(numbers, default=-1)
    return list(range(top + 1, top + 1 + n))


def _split_parts(step: SplitStep, n_spikes: int) -> list[np.ndarray]:
    if step.labels is not None:
        if len(step.labels) != n_spikes:
            raise SpikeInterfaceError(f"split of unit {step.unit_id}: {len(step.labels)} labels for {n_spikes} spikes")
        return [np.flatnonzero(step.labels == v) for v in np.unique(step.labels)]
    parts = list(step.parts or [])
    used = np.concatenate(parts) if parts else np.zeros(0, np.int64)
    if len(used) and (used.min() < 0 or used.max() >= n_spikes):
        raise SpikeInterfaceError(f"split of unit {step.unit_id}: spike index {int(used.max())} but the unit "
                                  f"has {n_spikes} spikes")
    if len(np.unique(used)) != len(used):
        raise SpikeInterfaceError(f"split of unit {step.unit_id}: a spike is in two parts")
    if len(used) != n_spikes:
        parts.append(np.setdiff1d(np.arange(n_spikes), used))
    return parts


def _merge(curation: Curation, current: dict) -> None:
    groups = [g for g, _ in curation.merges]
    given = [new for _, new in curation.merges]
    if any(n is None for n in given) and any(n is not None for n in given):
        raise SpikeInterfaceError("some merges have a new_unit_id and others not (SpikeInterface needs all or none)")
    new_ids = _next_ids(list(current), len(groups)) if given and given[0] is None else given
    for group, new in zip(groups, new_ids):
        members = [current[i] for i in group]
        electrodes = sorted({m.electrode for m in members})
        if len(electrodes) > 1:
            raise SpikeInterfaceError(f"merge of units {', '.join(map(str, group))} spans electrodes "
                                      f"{', '.join(map(str, electrodes))} (a unit comes from one electrode)")
        qualities = {m.single_unit for m in members}
        types = {m.unit_type for m in members}
        for i in group:
            del current[i]
        current[new] = CuratedUnit(
            unit_id=new, cluster=-1, electrode=electrodes[0], times=np.unique(np.concatenate([m.times for m in members])),
            single_unit=qualities.pop() if len(qualities) == 1 else False, unit_type=types.pop() if len(types) == 1 else "",
            sources=tuple(s for m in members for s in m.sources), how=f"merge of {'+'.join(map(str, group))}")


def _steps(data: Any) -> list[Any]:
    """The curation steps: one curation, or SpikeInterface's SequentialCuration (``{"curation_steps":
    [...]}``, what spikeinterface-gui exports after "Apply curation"; or a list of curations)."""
    if isinstance(data, dict) and "curation_steps" in data:
        data = data["curation_steps"]
    if isinstance(data, list):
        if not data:
            raise SpikeInterfaceError("a sequential curation without curation_steps")
        return data
    return [data]


def _apply_step(curation: Curation, current: dict[int | str, CuratedUnit]) -> dict[int | str, CuratedUnit]:
    """One curation applied to the current units, as SpikeInterface applies it: labels, removed,
    merges, splits (noise-labelled units stay, labelled, as in SpikeInterface)."""
    current = dict(current)
    for uid, unit in current.items():
        unit.single_unit, unit.unit_type = _quality(curation, uid, unit), _type(curation, uid, unit)
    for uid in curation.removed:
        current.pop(uid, None)
    _merge(curation, current)
    for step in curation.splits:
        if step.unit_id not in current:
            raise SpikeInterfaceError(f"split of unit {step.unit_id}, which was removed or merged")
        unit = current.pop(step.unit_id)
        parts = _split_parts(step, len(unit.times))
        new_ids = step.new_ids if step.new_ids is not None else _next_ids([*current, unit.unit_id], len(parts))
        if len(new_ids) != len(parts):
            raise SpikeInterfaceError(f"split of unit {step.unit_id}: {len(new_ids)} new ids for {len(parts)} parts")
        for k, (new, part) in enumerate(zip(new_ids, parts)):
            current[new] = CuratedUnit(new, -1, unit.electrode, unit.times[np.sort(part)], unit.single_unit,
                                       unit.unit_type, unit.sources, f"split of {step.unit_id} (part {k + 1} of {len(parts)})")
    return current


def curated_units(data: Any, stored: dict[int, Unit]) -> tuple[list[CuratedUnit], list[str]]:
    """Apply a curation (dict; or a sequential curation: its steps one after the other) to the
    stored units (id -> Unit with times): the curated units (noise ones left out) in the curated
    sorting's order, and one note per dropped unit."""
    steps = _steps(data)
    made_of = data.get(STORE_KEY, {}).get("digest") if isinstance(data, dict) and isinstance(data.get(STORE_KEY), dict) else None
    if made_of is not None and made_of != store_digest(list(stored.values())):
        raise SpikeInterfaceError("made of another version of the unit store (it changed since the export, "
                                  "e.g. this curation was imported already): export again and redo it")
    current: dict[int | str, CuratedUnit] = {}
    for k, step_data in enumerate(steps):
        curation = read_curation(step_data)
        if k == 0:
            _check_ids(curation, set(stored))
            current = {uid: CuratedUnit(uid, -1, int(u.electrode), np.unique(np.asarray(u.times, dtype=np.int64)),
                                        bool(u.single_unit), u.unit_type, (int(uid),), "kept")
                       for uid, u in ((uid, stored[uid]) for uid in curation.unit_ids)}  # type: ignore[index]
        elif set(curation.unit_ids) != set(current):
            raise SpikeInterfaceError(f"curation step {k + 1}: its unit_ids are not the units step {k} left")
        else:
            _check_ids(curation, set(current))  # type: ignore[arg-type]
        current = _apply_step(curation, current)
    notes = [f"SpikeInterface unit {c.unit_id} is labelled noise: dropped" for c in current.values() if c.single_unit is None]
    kept = [c for c in current.values() if c.single_unit is not None and len(c.times)]
    numbers = [c.unit_id for c in kept if isinstance(c.unit_id, int) and c.unit_id >= 0]
    extra = max(numbers, default=-1) + 1
    for c in kept:
        if isinstance(c.unit_id, int) and c.unit_id >= 0:
            c.cluster = c.unit_id
        else:
            c.cluster, extra = extra, extra + 1
    return kept, notes


# ------------------------------------------------------------------------------------------------
# Sort-file rows


def provenance(unit: CuratedUnit, stored: dict[int, Unit]) -> tuple[int, tuple[int, ...]] | None:
    """(solution, clusters) of the sort-file row that would make ``unit`` from the stored units it
    came from: when it is not a split and they all come from one solution without a split."""
    if unit.how.startswith("split"):
        return None
    solutions, clusters = set(), []
    for s in unit.sources:
        u = stored[s]
        if u.solution < 1 or " split " in u.label or not u.label:
            return None
        solutions.add(int(u.solution))
        try:
            clusters.extend(parse_clusters(u.label))
        except ValueError:
            return None
    if len(solutions) != 1:
        return None
    return solutions.pop(), tuple(dict.fromkeys(clusters))


def sort_entry(unit: CuratedUnit, solution: int, clusters: Sequence[int], stored: dict[int, Unit]) -> dict[str, Any]:
    """The sort-file row (curation.sort_file.COLUMNS keys) that saves ``unit``."""
    names = "+".join(stored[s].name for s in dict.fromkeys(unit.sources))
    what = {"kept": names}.get(unit.how, f"{unit.how}: {names}")
    return {"Unit": f"si {unit.unit_id}", "Chan": unit.electrode, "Solution": solution,
            "Cluster": "+".join(map(str, clusters)), "Split": "", "single_unit": "x" if unit.single_unit else "",
            "Type": unit.unit_type,
            "Comments": f"SpikeInterface unit {unit.unit_id} ({'good' if unit.single_unit else 'MUA'}, "
                        f"{len(unit.times)} spikes): {what}"}


def event_indices(event_times: np.ndarray, units: Sequence[CuratedUnit]) -> list[np.ndarray]:
    """Each unit's spikes as indices into its electrode's events (``event_times``); raises
    SpikeInterfaceError if some spike is not an event."""
    event_times = np.asarray(event_times, dtype=np.int64)
    order = np.argsort(event_times, kind="stable")
    sorted_times = event_times[order]
    out, missing = [], {}
    for u in units:
        if not len(sorted_times):
            missing[u.unit_id] = len(u.times)
            continue
        pos = np.minimum(np.searchsorted(sorted_times, u.times), len(sorted_times) - 1)
        found = sorted_times[pos] == u.times
        if not found.all():
            missing[u.unit_id] = int((~found).sum())
        out.append(np.sort(order[pos[found]]))
    if missing:
        raise SpikeInterfaceError(f"electrode {units[0].electrode}: {sum(missing.values())} spike(s) of unit(s) "
                                  f"{', '.join(map(str, missing))} are not among the electrode's events "
                                  "(a curation of another sort of this recording? export again)")
    return out
