"""The phy round trip's conversions: stored units -> phy's arrays, and a person's phy curation ->
new clustering solutions plus the sort-file rows that select them.

Export: phy cluster = template = one stored unit (in store order, so cluster k is unitk's k-th
unit); channel = an electrode with units (``channel_map`` holds its number); each template lives on
its electrode's channel only (electrodes are sorted on their own). ``amplitudes`` are each
spike's |waveform at the peak| in microvolts, ``templates`` the units' mean waveforms in
microvolts, ``pc_features`` the first ``N_PCS`` principal components of the waveforms of the
electrode, ``similar_templates`` the cosine similarity of two templates of one electrode (0 across
electrodes: they cannot be merged). The waveform subset holds up to ``WAVEFORMS_PER_UNIT`` spikes
per unit, evenly spread over the recording (with a second, empty channel -1: phylib squeezes the
arrays it reads, and a one-channel subset would lose its channel axis).

Import: each phy cluster's spikes are one electrode's events (phy may have merged and split them
at will, but a unit cannot span electrodes). Its label in cluster_group.tsv decides: good -> a
single unit, mua -> a multi-unit, noise -> dropped. The kept clusters of an electrode become a new
solution of kind ``"phy"`` of that electrode (cluster number = phy's cluster id, -1 elsewhere);
clusters that share events (units that overlapped in the store) go to a further solution, since a
solution gives each event one cluster. A solution identical to an earlier import's is reused.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from blechrs.errors import PhyError
from blechrs.io.phy import PhyFolder
from blechrs.model import Unit

N_PCS = 3
WAVEFORMS_PER_UNIT = 1000
#: Waveforms a principal component fit uses per electrode (evenly spread).
PCA_FIT_EVENTS = 20000
KEPT = {"good": True, "mua": False}
"""The labels that keep a cluster, and whether it is then a single unit."""
SOLUTION_KIND = "phy"


# ------------------------------------------------------------------------------------------------
# Export


def _evenly(n: int, k: int) -> np.ndarray:
    """Up to ``k`` indices of ``range(n)``, evenly spread, increasing."""
    return np.arange(n) if n <= k else np.unique(np.linspace(0, n - 1, k).round().astype(np.int64))


def principal_components(waveforms: np.ndarray, n: int = N_PCS) -> np.ndarray:
    """Projections of ``waveforms`` on their first ``n`` principal components (fitted on up to
    ``PCA_FIT_EVENTS`` of them); signs fixed so each component's largest loading is positive."""
    x = np.asarray(waveforms, dtype=np.float64)
    out = np.zeros((len(x), n), dtype=np.float32)
    if len(x) < 2:
        return out
    fit = x[_evenly(len(x), PCA_FIT_EVENTS)]
    mean = fit.mean(axis=0)
    _, _, vt = np.linalg.svd(fit - mean, full_matrices=False)
    vt = vt[:n]
    vt *= np.sign(vt[np.arange(len(vt)), np.abs(vt).argmax(axis=1)])[:, None]
    out[:, :len(vt)] = (x - mean) @ vt.T
    return out


def template_similarity(templates: np.ndarray, electrodes: np.ndarray) -> np.ndarray:
    """Cosine similarity of the templates (n x samples) of one electrode; 0 across electrodes."""
    t = np.asarray(templates, dtype=np.float64)
    norm = np.linalg.norm(t, axis=1)
    norm[norm == 0] = 1.0
    sim = (t / norm[:, None]) @ (t / norm[:, None]).T
    sim[electrodes[:, None] != electrodes[None, :]] = 0.0
    return sim


def units_to_phy(units: Sequence[Unit], sampling_rate: float, peak: int, recording: str = "",
                 waveforms_per_unit: int = WAVEFORMS_PER_UNIT) -> PhyFolder:
    """A phy folder's content for the stored ``units`` (with their times and waveforms)."""
    if not units:
        raise PhyError(f"{recording or 'the unit store'}: no units to export (sort the recording first)")
    electrodes = sorted({int(u.electrode) for u in units})
    channel_of = {e: c for c, e in enumerate(electrodes)}
    unit_electrode = np.array([u.electrode for u in units], dtype=np.int64)
    unit_times = [np.asarray(u.times if u.times is not None else (), dtype=np.int64) for u in units]
    counts = np.array([len(t) for t in unit_times], dtype=np.int64)
    times = np.concatenate(unit_times)
    owner = np.repeat(np.arange(len(units), dtype=np.int32), counts)
    waveforms = np.concatenate([np.asarray(u.waveforms, dtype=np.float32) for u in units])
    order = np.argsort(times, kind="stable")  # phy wants increasing times
    spike_id = np.empty_like(order)
    spike_id[order] = np.arange(len(order))
    features = np.zeros((len(times), N_PCS), dtype=np.float32)
    for e in electrodes:
        on_e = unit_electrode[owner] == e
        features[on_e] = principal_components(waveforms[on_e])
    templates = np.stack([np.asarray(u.waveforms, dtype=np.float64).mean(axis=0) if n
                          else np.zeros(waveforms.shape[1]) for u, n in zip(units, counts)])
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    subset = np.sort(np.concatenate([spike_id[s + _evenly(int(n), waveforms_per_unit)]
                                     for s, n in zip(starts, counts)]))
    channel = np.array([channel_of[int(e)] for e in unit_electrode], dtype=np.int32)
    template_ind = channel[:, None]
    arrays = {
        "spike_times": times[order],
        "spike_templates": owner[order],
        "spike_clusters": owner[order],
        "amplitudes": np.abs(waveforms[order, min(peak, waveforms.shape[1] - 1)]).astype(np.float32),
        "templates": templates.astype(np.float32)[:, :, None],
        "template_ind": template_ind,
        "channel_map": np.array(electrodes, dtype=np.int32),
        "channel_positions": np.array([[0.0, 20.0 * e] for e in electrodes]),
        "whitening_mat": np.eye(len(electrodes)),
        "whitening_mat_inv": np.eye(len(electrodes)),
        "pc_features": features[order][:, :, None],
        "pc_feature_ind": template_ind,
        "similar_templates": template_similarity(templates, unit_electrode).astype(np.float32),
        "_phy_spikes_subset.spikes": subset.astype(np.int64),
        # phylib squeezes what it reads: a second, empty channel (-1) keeps these 2-D / 3-D
        "_phy_spikes_subset.channels": np.stack([channel[owner[order][subset]],
                                                 np.full(len(subset), -1, np.int32)], axis=1),
        "_phy_spikes_subset.waveforms": np.stack([waveforms[order[subset]],
                                                  np.zeros((len(subset), waveforms.shape[1]), np.float32)], axis=2),
    }
    params = dict(dat_path=[], n_channels_dat=max(electrodes) + 1, dtype="int16", offset=0,
                  sample_rate=float(sampling_rate), hp_filtered=True)
    ids = range(len(units))
    return PhyFolder(
        arrays=arrays, params=params,
        groups={i: "good" if u.single_unit else "mua" for i, u in zip(ids, units)},
        columns={"electrode": {i: int(u.electrode) for i, u in zip(ids, units)},
                 "unit": {i: u.name for i, u in zip(ids, units)},
                 "snr": {i: round(float(u.snr), 2) for i, u in zip(ids, units)}},
        record={"recording": recording, "sample_rate": float(sampling_rate),
                "units": [{"unit": u.name, "electrode": int(u.electrode), "type": u.unit_type,
                           "spikes": int(n)} for u, n in zip(units, counts)]})


# ------------------------------------------------------------------------------------------------
# Import


@dataclass
class PhyCluster:
    """A cluster a person kept in phy."""

    cluster: int
    electrode: int
    single_unit: bool
    times: np.ndarray
    """Its spikes' sample indices, increasing, each once."""
    unit_type: str
    """'r', 'f' or '' (the stored units it came from, when they agree)."""
    group: str


def _spike_electrodes(folder: PhyFolder) -> np.ndarray:
    a = folder.arrays
    templates, channel_map = a["spike_templates"].astype(np.int64), a["channel_map"].reshape(-1)
    template_ind = a["template_ind"].reshape(len(a["template_ind"]), -1)
    if len(templates) and (templates.min() < 0 or templates.max() >= len(template_ind)):
        raise PhyError(f"spike_templates.npy names template {templates.max()} but template_ind.npy has "
                       f"{len(template_ind)}")
    channels = template_ind[:, 0].astype(np.int64)
    if len(channels) and (channels.min() < 0 or channels.max() >= len(channel_map)):
        raise PhyError("template_ind.npy names a channel that channel_map.npy does not have")
    return channel_map[channels][templates].astype(np.int64)


def kept_clusters(folder: PhyFolder) -> list[PhyCluster]:
    """The clusters labelled good or mua, each with its spikes; raises PhyError naming every
    cluster that spans electrodes or has no good/mua/noise label."""
    spike_clusters = folder.arrays["spike_clusters"].astype(np.int64)
    electrode = _spike_electrodes(folder)
    times = folder.arrays["spike_times"].astype(np.int64)
    types = [u.get("type", "") for u in folder.record.get("units", [])]
    templates = folder.arrays["spike_templates"].astype(np.int64)
    order = np.argsort(spike_clusters, kind="stable")
    ids, starts = np.unique(spike_clusters[order], return_index=True)
    unlabelled, spanning, out = [], [], []
    for cluster, spikes in zip(ids.tolist(), np.split(order, starts[1:])):
        group = folder.groups.get(cluster, "")
        if group == "noise":
            continue
        if group not in KEPT:
            unlabelled.append(f"{cluster} ({group or 'no label'})")
            continue
        on = np.unique(electrode[spikes])
        if len(on) > 1:
            spanning.append(f"phy cluster {cluster} merges units of electrodes {', '.join(map(str, on))}")
            continue
        kinds = {types[t] for t in np.unique(templates[spikes]).tolist() if t < len(types)}
        out.append(PhyCluster(cluster=cluster, electrode=int(on[0]), single_unit=KEPT[group],
                              times=np.unique(times[spikes]), unit_type=kinds.pop() if len(kinds) == 1 else "",
                              group=group))
    problems = []
    if spanning:
        problems.append("; ".join(spanning) + " (a unit comes from one electrode: split them in phy, or mark them noise)")
    if unlabelled:
        problems.append(f"phy cluster(s) {', '.join(unlabelled)} are not labelled good, mua or noise "
                        "(label them in phy and save)")
    if problems:
        raise PhyError("; ".join(problems))
    return out


def event_indices(event_times: np.ndarray, clusters: Sequence[PhyCluster]) -> list[np.ndarray]:
    """Each cluster's spikes as indices into its electrode's events (``event_times``): exactly
    the events at those samples; raises PhyError if some spike is not an event."""
    event_times = np.asarray(event_times, dtype=np.int64)
    order = np.argsort(event_times, kind="stable")
    sorted_times = event_times[order]
    out, missing = [], {}
    for c in clusters:
        pos = np.minimum(np.searchsorted(sorted_times, c.times), max(len(sorted_times) - 1, 0))
        found = (sorted_times[pos] == c.times) if len(sorted_times) else np.zeros(len(c.times), bool)
        if not found.all():
            missing[c.cluster] = int((~found).sum())
        out.append(np.sort(order[pos[found]]) if len(sorted_times) else np.zeros(0, np.int64))
    if missing:
        e = clusters[0].electrode
        raise PhyError(f"electrode {e}: {sum(missing.values())} spike(s) of phy cluster(s) "
                       f"{', '.join(map(str, missing))} are not among the electrode's events "
                       "(was the phy folder exported from another sort of this recording? export again)")
    return out


def new_solutions(n_events: int, clusters: Sequence[PhyCluster], events: Sequence[np.ndarray],
                  existing: dict[int, tuple[str, np.ndarray]], kind: str = SOLUTION_KIND
                  ) -> tuple[dict[int, np.ndarray], dict[int, int]]:
    """The solutions that hold ``clusters`` (labels per event = phy cluster id, -1 elsewhere) and
    each cluster's solution number. Clusters sharing events go to separate solutions; a solution
    equal to an existing one of ``kind`` reuses its number, else it takes the next free number.
    ``existing``: number -> (kind, labels). Returns ({number: labels} to add, {cluster: number})."""
    layers: list[np.ndarray] = []
    layer_of: dict[int, int] = {}
    for c, idx in sorted(zip(clusters, events), key=lambda ci: ci[0].cluster):
        for k, labels in enumerate(layers):
            if np.all(labels[idx] < 0):
                break
        else:
            layers.append(np.full(n_events, -1, dtype=np.int64))
            k = len(layers) - 1
        layers[k][idx] = c.cluster
        layer_of[c.cluster] = k
    taken = set(existing)
    number_of_layer, add = [], {}
    for labels in layers:
        same = [n for n, (old_kind, old) in sorted(existing.items())
                if old_kind == kind and np.array_equal(np.asarray(old), labels)]
        if same:
            number_of_layer.append(same[0])
            continue
        number = max(taken | {0}) + 1
        taken.add(number)
        add[number] = labels
        number_of_layer.append(number)
    return add, {c: number_of_layer[k] for c, k in layer_of.items()}


def sort_entries(clusters: Sequence[PhyCluster], number_of: dict[int, int], counts: dict[int, int]
                 ) -> list[dict[str, Any]]:
    """The sort-file rows (curation.sort_file.COLUMNS keys) that save the kept clusters, in
    electrode and cluster order; ``counts``: each cluster's events."""
    return [{"Unit": f"phy {c.cluster}", "Chan": c.electrode, "Solution": number_of[c.cluster],
             "Cluster": c.cluster, "Split": "", "single_unit": "x" if c.single_unit else "",
             "Type": c.unit_type, "Comments": f"phy cluster {c.cluster} ({c.group}, {counts[c.cluster]} spikes)"}
            for c in sorted(clusters, key=lambda c: (c.electrode, c.cluster))]
