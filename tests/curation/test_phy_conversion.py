"""The phy conversions on small hand-made arrays: which phy clusters are kept, how their spikes
map to an electrode's events, how they become solutions (overlaps, reuse) and sort-file rows."""

from __future__ import annotations

import numpy as np
import pytest

from blechrs.curation import phy
from blechrs.curation.sort_file import format_sort_file, parse_row
from blechrs.errors import PhyError
from blechrs.io.phy import PhyFolder
from blechrs.model import Unit


def _folder(times, templates, clusters, template_electrodes, groups, types=None):
    electrodes = sorted(set(template_electrodes))
    return PhyFolder(
        arrays={"spike_times": np.asarray(times, np.int64), "spike_templates": np.asarray(templates, np.int32),
                "spike_clusters": np.asarray(clusters, np.int32),
                "template_ind": np.array([[electrodes.index(e)] for e in template_electrodes], np.int32),
                "channel_map": np.array(electrodes, np.int32)},
        params={}, groups=groups,
        record={"units": [{"type": t} for t in (types or [""] * len(template_electrodes))]})


def test_kept_clusters_labels_types_and_refusals():
    f = _folder(times=[10, 20, 30, 40, 50, 60], templates=[0, 1, 0, 1, 2, 2], clusters=[5, 5, 5, 5, 6, 7],
                template_electrodes=[3, 3, 4], groups={5: "good", 6: "noise", 7: "mua"}, types=["r", "r", "f"])
    kept = phy.kept_clusters(f)
    assert [(c.cluster, c.electrode, c.single_unit, c.unit_type, c.times.tolist()) for c in kept] == [
        (5, 3, True, "r", [10, 20, 30, 40]), (7, 4, False, "f", [60])]
    f.arrays["spike_clusters"][4] = 5  # cluster 5 now holds a spike of electrode 4
    f.groups[8] = "good"
    f.arrays["spike_clusters"][5] = 9  # cluster 9 has no label
    with pytest.raises(PhyError, match=r"^phy cluster 5 merges units of electrodes 3, 4 .*; "
                                       r"phy cluster\(s\) 9 \(no label\) are not labelled"):
        phy.kept_clusters(f)


def test_event_indices_exact_or_refused():
    events = np.array([100, 50, 300, 200])  # a work file's times need not be sorted here
    c = phy.PhyCluster(cluster=4, electrode=2, single_unit=True, times=np.array([50, 200]), unit_type="", group="good")
    (idx,) = phy.event_indices(events, [c])
    assert idx.tolist() == [1, 3]
    c.times = np.array([50, 201])
    with pytest.raises(PhyError, match=r"electrode 2: 1 spike\(s\) of phy cluster\(s\) 4 are not among"):
        phy.event_indices(events, [c])


def test_new_solutions_overlap_and_reuse():
    def cluster(k):
        return phy.PhyCluster(cluster=k, electrode=0, single_unit=False, times=np.zeros(0), unit_type="", group="mua")

    clusters = [cluster(3), cluster(8), cluster(9)]
    events = [np.array([0, 1]), np.array([1, 2]), np.array([4])]  # 3 and 8 share event 1
    existing = {1: ("templates", np.zeros(5)), 2: ("gmm", np.zeros(5)), 6: ("bgmm", np.zeros(5))}
    add, number_of = phy.new_solutions(5, clusters, events, existing)
    assert number_of == {3: 7, 9: 7, 8: 8}
    assert add[7].tolist() == [3, 3, -1, -1, 9] and add[8].tolist() == [-1, 8, 8, -1, -1]
    existing.update({n: ("phy", labels) for n, labels in add.items()})
    again, number_of = phy.new_solutions(5, clusters, events, existing)
    assert again == {} and number_of == {3: 7, 9: 7, 8: 8}


def test_sort_entries_parse_as_sort_file_rows():
    c = phy.PhyCluster(cluster=12, electrode=5, single_unit=True, times=np.zeros(0), unit_type="f", group="good")
    (entry,) = phy.sort_entries([c], {12: 10}, {12: 40})
    text = format_sort_file([entry])
    header, line = text.splitlines()
    row = parse_row(dict(zip(header.split(","), line.split(",", 7))), 2)
    assert (row.electrode, row.solution, row.clusters, row.single_unit, row.unit_type) == (5, 10, (12,), True, "fast")


def test_units_to_phy_orders_spikes_and_keeps_channels_apart():
    rng = np.random.default_rng(0)
    units = [Unit(electrode=e, times=np.array(t), waveforms=rng.normal(size=(len(t), 75)).astype(np.float32),
                  single_unit=s, name=f"unit{i:03d}")
             for i, (e, t, s) in enumerate([(2, [5, 40], True), (7, [5, 6, 90], False), (2, [1, 60], False)])]
    f = phy.units_to_phy(units, 30000.0, 30, waveforms_per_unit=2)
    a = f.arrays
    assert a["spike_times"].tolist() == [1, 5, 5, 6, 40, 60, 90]
    assert a["spike_templates"].tolist() == [2, 0, 1, 1, 0, 2, 1]
    assert a["channel_map"].tolist() == [2, 7] and a["template_ind"][:, 0].tolist() == [0, 1, 0]
    assert a["similar_templates"][0, 1] == 0 and a["similar_templates"][0, 0] == pytest.approx(1)
    assert a["_phy_spikes_subset.spikes"].tolist() == [0, 1, 2, 4, 5, 6]  # unit 1: its first and last
    assert f.groups == {0: "good", 1: "mua", 2: "mua"} and f.params["dat_path"] == []
    with pytest.raises(PhyError, match="no units to export"):
        phy.units_to_phy([], 30000.0, 30)
