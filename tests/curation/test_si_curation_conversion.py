"""SpikeInterface's curation format, checked against SpikeInterface itself: the export validates
with its Curation model, and ``curated_units`` (blechrs's own reading of a curation, no SI
needed) gives the same unit ids and spike trains as ``spikeinterface.curation.apply_curation`` on
the same sorting, for removals, merges, splits (by indices and by labels, with and without new
ids), in format 1 and 2, as a dict and as SpikeInterface's model writes it to JSON (what
spikeinterface-gui's "Export JSON" writes), and sequential curations; noise-labelled units are the
only difference (SI keeps them labelled)."""

from __future__ import annotations

import json

import numpy as np
import pytest

import spikeinterface.core as si_core
from spikeinterface.curation import apply_curation
from spikeinterface.curation.curation_model import Curation, SequentialCuration

from blechrs.curation import spikeinterface as conversion
from blechrs.errors import SpikeInterfaceError
from blechrs.model import Unit


def _units(seed=0, n=8):
    """Units with disjoint spike trains (as the clusters of one solution are)."""
    rng = np.random.default_rng(seed)
    pool = rng.permutation(300000)
    units = {}
    for k in range(n):
        times, pool = np.sort(pool[:int(rng.integers(20, 200))]), pool[200:]
        units[k] = Unit(electrode=k // 3, times=times, single_unit=bool(k % 2), regular_spiking=k % 3 == 0,
                        fast_spiking=k % 3 == 1, name=f"unit{k:03d}", solution=1, label=str(k % 3))
    return units


def _sorting(units):
    return si_core.NumpySorting.from_unit_dict([{k: u.times for k, u in units.items()}], sampling_frequency=30000.0)


def _si_result(sorting, curation):
    out = apply_curation(sorting, curation)
    quality = out.get_property("quality") if "quality" in out.get_property_keys() else None
    return {uid: out.get_unit_spike_train(uid) for k, uid in enumerate(out.unit_ids)
            if quality is None or quality[k] != "noise"}


def test_export_is_a_valid_curation_that_changes_nothing():
    units = _units()
    data = conversion.units_to_curation(list(units.values()), list(units))
    model = Curation(**data)
    assert model.unit_ids == list(units) and not model.removed and not model.merges and not model.splits
    labels = {m.unit_id: m.labels for m in model.manual_labels}
    for k, u in units.items():
        assert labels[k]["quality"] == ["good" if u.single_unit else "MUA"]
        assert labels[k].get("type", [""]) == [{"r": "regular_spiking", "f": "fast_spiking"}.get(u.unit_type, "")]
    curated, notes = conversion.curated_units(data, units)
    assert notes == [] and [c.unit_id for c in curated] == list(units)
    for c in curated:
        u = units[c.unit_id]
        assert np.array_equal(c.times, u.times) and c.single_unit == u.single_unit and c.unit_type == u.unit_type
        assert c.how == "kept" and c.cluster == c.unit_id


CURATIONS = {
    "remove, merge, split by indices (v2, SI's new ids)": {
        "format_version": "2", "removed": [7], "merges": [{"unit_ids": [0, 2]}],
        "splits": [{"unit_id": 4, "mode": "indices", "indices": [[0, 3, 5, 8]]}]},
    "given new ids, split by labels": {
        "format_version": "2", "merges": [{"unit_ids": [3, 5], "new_unit_id": 30}],
        "splits": [{"unit_id": 6, "mode": "labels", "labels": None, "new_unit_ids": [60, 61, 62]}]},
    "format 1": {"format_version": "1", "merge_unit_groups": [[0, 1], [3, 4, 5]], "removed_units": [2]},
    "two merges and two splits": {
        "format_version": "2", "merges": [[0, 1], [6, 7]],
        "splits": [{"unit_id": 2, "mode": "indices", "indices": [[0, 1], [2, 3, 4]]},
                   {"unit_id": 5, "mode": "indices", "indices": [[1]]}]},
}


@pytest.mark.parametrize("name", list(CURATIONS))
def test_curated_units_equal_spikeinterfaces_apply_curation(name):
    units = _units(seed=len(name))
    data = {"unit_ids": list(units), **CURATIONS[name]}
    for s in data.get("splits", []):
        if s.get("mode") == "labels" and s["labels"] is None:  # a label per spike, 3 groups
            s["labels"] = (np.arange(len(units[s["unit_id"]].times)) % 3).tolist()
    data["label_definitions"] = conversion.LABEL_DEFINITIONS
    data["manual_labels"] = [{"unit_id": 1, "labels": {"quality": ["noise"]}}] if name.startswith("remove") else []
    expected = _si_result(_sorting(units), data)
    as_gui_writes = json.loads(Curation(**data).model_dump_json(indent=4))  # spikeinterface-gui's Export JSON
    for given in (data, as_gui_writes):
        curated, notes = conversion.curated_units(given, units)
        assert {c.unit_id: c for c in curated}.keys() == expected.keys()
        for c in curated:
            assert np.array_equal(c.times, expected[c.unit_id]), c.unit_id
            assert c.electrode == units[c.sources[0]].electrode
        assert len(notes) == (1 if name.startswith("remove") else 0)


def test_a_sequential_curation_is_applied_step_after_step():
    """spikeinterface-gui's iterative curation exports a SequentialCuration: each step with the
    ids the previous one left (new ids explicit), labels carried over, noise dropped at the end."""
    units = _units(seed=4)
    step1 = {"format_version": "2", "unit_ids": list(units), "removed": [7],
             "label_definitions": conversion.LABEL_DEFINITIONS,
             "manual_labels": [{"unit_id": 0, "labels": {"quality": ["good"], "type": ["fast_spiking"]}},
                               {"unit_id": 2, "labels": {"quality": ["good"], "type": ["fast_spiking"]}},
                               {"unit_id": 6, "labels": {"quality": ["noise"]}}],
             "merges": [{"unit_ids": [0, 2], "new_unit_id": 20}],
             "splits": [{"unit_id": 4, "mode": "indices", "indices": [[0, 2, 4, 6]], "new_unit_ids": [40, 41]}]}
    after1 = [1, 3, 5, 6, 20, 40, 41]
    step2 = {"format_version": "2", "unit_ids": after1, "label_definitions": conversion.LABEL_DEFINITIONS,
             # spikeinterface-gui carries the quality labels over to the next step (SI's apply_curation
             # forgets a label a step does not repeat; blechrs keeps it, as it keeps the stored label)
             "manual_labels": [{"unit_id": 41, "labels": {"quality": ["MUA"]}},
                               {"unit_id": 6, "labels": {"quality": ["noise"]}}],
             "merges": [{"unit_ids": [20, 1]}], "splits": [{"unit_id": 41, "mode": "indices", "indices": [[1]]}]}
    model = SequentialCuration(curation_steps=[step1, step2])
    expected = _si_result(_sorting(units), model)
    written = json.loads(model.model_dump_json())
    assert set(written) == {"curation_steps"}
    for given in (written, [step1, step2]):
        curated, notes = conversion.curated_units(given, units)
        by_id = {c.unit_id: c for c in curated}
        assert by_id.keys() == expected.keys()
        for uid, c in by_id.items():
            assert np.array_equal(c.times, expected[uid]), uid
        assert notes == ["SpikeInterface unit 6 is labelled noise: dropped"]
        merged = by_id[42]  # SI's "append": past 41
        assert merged.sources == (0, 2, 1) and merged.how == "merge of 20+1"
        assert merged.single_unit is True and units[1].single_unit and merged.unit_type == "f" == units[1].unit_type
        assert all(by_id[i].single_unit is False and by_id[i].how.startswith("split of 41") for i in (43, 44))
        assert by_id[40].single_unit == units[4].single_unit and by_id[40].sources == (4,)
    with pytest.raises(SpikeInterfaceError, match="curation step 2: its unit_ids are not the units step 1 left"):
        conversion.curated_units([step1, {**step2, "unit_ids": [1, 3, 5, 6, 20, 40]}], units)


def test_labels_merges_and_errors():
    units = _units()
    base = {"format_version": "2", "unit_ids": list(units), "label_definitions": conversion.LABEL_DEFINITIONS}
    labels = [{"unit_id": 0, "labels": {"quality": ["good"], "type": ["fast_spiking"]}},
              {"unit_id": 1, "labels": {"quality": ["good"], "type": ["fast_spiking"]}},
              {"unit_id": 3, "labels": {"quality": ["MUA"]}}, {"unit_id": 4, "labels": {"quality": ["good"]}}]
    curated, _ = conversion.curated_units({**base, "manual_labels": labels, "merges": [[0, 1], [3, 4]]}, units)
    by_id = {c.unit_id: c for c in curated}
    agree, differ = by_id[8], by_id[9]  # SI's "append" ids: past the largest (7)
    assert agree.single_unit is True and agree.unit_type == "f" and agree.sources == (0, 1)
    assert differ.single_unit is False and differ.how == "merge of 3+4"
    # Units that share spikes (from two solutions): the merge holds each spike once (SI: twice).
    shared = dict(units)
    shared[2] = Unit(electrode=0, times=np.union1d(units[2].times, units[0].times[:5]), name="unit002")
    merged = {c.unit_id: c for c in conversion.curated_units({**base, "merges": [[0, 2]]}, shared)[0]}[8]
    assert np.array_equal(merged.times, np.union1d(units[0].times, units[2].times))
    with pytest.raises(SpikeInterfaceError, match="spans electrodes 0, 1"):
        conversion.curated_units({**base, "merges": [[0, 3]]}, units)
    with pytest.raises(SpikeInterfaceError, match="store units missing: 7"):
        conversion.curated_units({**base, "unit_ids": list(units)[:-1]}, units)
    with pytest.raises(SpikeInterfaceError, match="quality label 'great'"):
        conversion.curated_units({**base, "manual_labels": [{"unit_id": 2, "labels": {"quality": ["great"]}}]}, units)
    with pytest.raises(SpikeInterfaceError, match="format_version '0'"):
        conversion.curated_units({**base, "format_version": "0"}, units)
    with pytest.raises(SpikeInterfaceError, match="spike index 999"):
        conversion.curated_units({**base, "splits": [{"unit_id": 2, "indices": [[999]]}]}, units)
