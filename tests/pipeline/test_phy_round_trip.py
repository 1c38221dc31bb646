"""The phy round trip, checked with phylib's own reader: ``blechrs export phy`` writes a folder
phylib's TemplateModel loads, consistent with the unit store; a curation saved the way phy saves
it (TemplateModel.save_spike_clusters / save_metadata) comes back through ``blechrs import phy``
as exactly the expected units; a merge across electrodes is refused and leaves everything as it was.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest

pytest.importorskip("phylib")
from phylib.io.model import load_model  # noqa: E402

from blechrs import pipeline  # noqa: E402
from blechrs.cli.main import main as cli_main  # noqa: E402
from blechrs.errors import PhyError  # noqa: E402
from blechrs.io import paths, unit_store, work_files  # noqa: E402
from blechrs.pipeline import phy  # noqa: E402
from support.sorting_reference import sorted_small_folder  # noqa: E402


@pytest.fixture(scope="module")
def sorted_folder(tmp_path_factory):
    """A small simulated recording sorted by auto-sort (extraction by the scipy reference)."""
    d = tmp_path_factory.mktemp("phy") / "rec"
    d.mkdir()
    return sorted_small_folder(d)


@pytest.fixture()
def rec(sorted_folder, tmp_path):
    d = tmp_path / "rec"
    shutil.copytree(sorted_folder, d)
    return d


def _files(d):
    """Every file of the folder (but the phy export) and its bytes."""
    return {p.relative_to(d): p.read_bytes() for p in sorted(d.rglob("*"))
            if p.is_file() and "phy" not in p.relative_to(d).parts}


def _electrode_with_units(units, n):
    by_e = {}
    for i, u in enumerate(units):
        by_e.setdefault(u.electrode, []).append(i)
    return [e for e, ids in sorted(by_e.items()) if len(ids) >= n], by_e


def test_export_loads_in_phylib_consistent_with_the_store(rec):
    units = unit_store.read_units(paths.h5_path(rec))
    done = phy.export_phy(rec)
    assert done.folder == rec / "phy" and done.units == len(units)
    model = load_model(done.folder / "params.py")
    try:
        assert model.dat_path == [] and model.traces is None  # no raw file needed
        assert model.sample_rate == pipeline.load_params(rec).extract.sampling_rate
        assert model.n_spikes == sum(len(u.times) for u in units) == done.spikes
        assert np.all(np.diff(model.spike_samples) >= 0)
        assert np.array_equal(model.spike_templates, model.spike_clusters)
        assert sorted(model.cluster_ids.tolist()) == list(range(len(units)))
        assert model.n_templates == len(units)
        assert model.metadata["group"] == {k: "good" if u.single_unit else "mua" for k, u in enumerate(units)}
        assert model.metadata["electrode"] == {k: u.electrode for k, u in enumerate(units)}
        assert model.similar_templates.shape == (len(units), len(units))
        for k, u in enumerate(units):
            spikes = model.get_cluster_spikes(k)
            assert np.array_equal(model.spike_samples[spikes], u.times)  # exactly the unit's spikes
            template = model.get_template(k)
            assert model.channel_mapping[template.best_channel] == u.electrode
            assert np.allclose(template.template[:, 0], u.waveforms.mean(axis=0), atol=1e-3)
            assert np.allclose(model.amplitudes[spikes], np.abs(u.waveforms[:, 30]))
            # The waveforms phy shows are the stored waveforms of those spikes.
            shown = np.intersect1d(spikes, model.spike_waveforms.spike_ids)
            assert len(shown) == min(len(spikes), 1000)
            channel = model.get_cluster_channels(k)
            w = model.get_waveforms(shown, channel)
            assert w.shape == (len(shown), u.waveforms.shape[1], 1)
            assert np.array_equal(w[:, :, 0], u.waveforms[np.searchsorted(spikes, shown)])
            assert model.get_features(spikes, channel).shape == (len(spikes), 1, 3)
    finally:
        model.close()


def test_phy_curation_comes_back_as_the_expected_units(rec):
    units = unit_store.read_units(paths.h5_path(rec))
    (e_merge, *_), by_e = _electrode_with_units(units, 2)
    a, b = by_e[e_merge][:2]
    split = next(i for i in range(len(units)) if units[i].electrode != e_merge and len(units[i].times) >= 20)
    noise = next(i for i in range(len(units)) if i not in (a, b, split))
    folder = phy.export_phy(rec).folder

    # What phy does: merge a and b into a new cluster, split one unit by amplitude into two new
    # clusters, label them, mark one unit noise; saved with phylib's own writers.
    model = load_model(folder / "params.py")
    clusters = model.spike_clusters.copy()
    n = len(units)
    clusters[np.isin(model.spike_templates, [a, b])] = n
    s = np.flatnonzero(model.spike_templates == split)
    big = model.amplitudes[s] >= np.median(model.amplitudes[s])
    clusters[s[big]], clusters[s[~big]] = n + 1, n + 2
    model.save_spike_clusters(clusters)
    groups = {k: ("good" if units[k].single_unit else "mua") for k in range(n) if k not in (a, b, split)}
    groups.update({noise: "noise", n: "mua", n + 1: "good", n + 2: "mua"})
    model.save_metadata("group", groups)
    times = model.spike_samples.copy()
    model.close()

    report, problems, applied = phy.import_phy(rec, folder)
    assert problems == [] and report.store_written
    got = unit_store.read_units(paths.h5_path(rec))
    source = {**{k: k for k in range(n)}, n: a, n + 1: split, n + 2: split}
    expected = {tuple(np.unique(times[clusters == c]).tolist()): (units[source[c]].electrode, groups[c])
                for c in np.unique(clusters).tolist() if groups[c] != "noise"}
    assert len(got) == len(expected) == n - 1  # a+b merged (-1), one split in two (+1), one noise (-1)
    for u in got:
        electrode, group = expected[tuple(u.times.tolist())]  # exactly the spikes phy gave it
        assert u.electrode == electrode and u.single_unit == (group == "good")
        assert len(u.waveforms) == len(u.times)
    merged = np.unique(np.concatenate([units[a].times, units[b].times]))
    assert any(np.array_equal(u.times, merged) for u in got)
    assert not any(np.array_equal(u.times, units[noise].times) for u in got)
    # The clusters are a "phy" solution of their electrode, selected by DIR/<name>_phy.csv.
    sort_file = paths.phy_sort_file_path(rec)
    assert sort_file.exists() and applied == rec / "rec_phy_applied.csv"
    data = work_files.load_electrode(paths.electrode_path(rec, e_merge))
    number = max(k for k, sol in data.solutions.items() if sol.kind == "phy")
    labels = data.labels_of(number)
    assert np.array_equal(data.times[labels == n], merged)
    # Importing the same curation again (the command, default folder DIR/phy) reuses that
    # solution and gives the same units.
    assert cli_main(["import", "phy", str(rec), "--no-plots", "-q"]) == 0
    again = work_files.load_electrode(paths.electrode_path(rec, e_merge))
    assert sorted(again.solutions) == sorted(data.solutions)
    assert [u.times.tolist() for u in unit_store.read_units(paths.h5_path(rec))] == [u.times.tolist() for u in got]


def test_merge_across_electrodes_is_refused_and_nothing_written(rec, capsys):
    units = unit_store.read_units(paths.h5_path(rec))
    a = 0
    b = next(i for i, u in enumerate(units) if u.electrode != units[a].electrode)
    folder = phy.export_phy(rec).folder
    model = load_model(folder / "params.py")
    clusters = model.spike_clusters.copy()
    clusters[np.isin(model.spike_templates, [a, b])] = len(units)
    model.save_spike_clusters(clusters)
    model.save_metadata("group", {**{k: "mua" for k in range(len(units))}, len(units): "good"})
    model.close()
    before = _files(rec)
    with pytest.raises(PhyError, match=rf"phy cluster {len(units)} merges units of electrodes "
                                       rf"{units[a].electrode}, {units[b].electrode}"):
        phy.import_phy(rec, folder)
    assert _files(rec) == before
    # The command line says it in one line and exits 1.
    assert cli_main(["import", "phy", str(rec), str(folder), "--no-plots"]) == 1
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("blechrs: error: ") and "electrodes" in lines[0]
    assert _files(rec) == before


def test_unlabelled_cluster_and_foreign_spikes_are_refused(rec):
    folder = phy.export_phy(rec).folder
    before = _files(rec)
    groups = folder / "cluster_group.tsv"
    text = groups.read_text()
    groups.write_text(text.replace("\n1\tmua\n", "\n1\tunsorted\n").replace("\n1\tgood\n", "\n1\tunsorted\n"))
    with pytest.raises(PhyError, match=r"phy cluster\(s\) 1 \(unsorted\) are not labelled good, mua or noise"):
        phy.import_phy(rec, folder)
    groups.write_text(text)
    times = np.load(folder / "spike_times.npy")
    np.save(folder / "spike_times.npy", times + 1)  # not the events of any work file
    with pytest.raises(PhyError, match="are not among the electrode's events"):
        phy.import_phy(rec, folder)
    assert _files(rec) == before


def test_a_failed_apply_puts_the_work_files_back(rec, monkeypatch):
    folder = phy.export_phy(rec).folder
    before = _files(rec)

    def broken(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(phy, "post_process", broken)
    with pytest.raises(OSError):
        phy.import_phy(rec, folder)
    assert _files(rec) == before
    assert not paths.phy_sort_file_path(rec).exists()


def test_export_keeps_a_curation_unless_forced(rec, capsys):
    assert cli_main(["export", "phy", str(rec), "--out", str(rec / "mine")]) == 0
    assert (rec / "mine" / "params.py").exists()
    assert cli_main(["export", "phy", str(rec), "--out", str(rec / "mine")]) == 0  # unchanged: rewritten
    (rec / "mine" / "cluster_group.tsv").write_text("cluster_id\tgroup\n0\tnoise\n")
    capsys.readouterr()
    assert cli_main(["export", "phy", str(rec), "--out", str(rec / "mine")]) == 1
    assert "holds a phy curation (cluster_group.tsv changed in phy)" in capsys.readouterr().err
    assert (rec / "mine" / "cluster_group.tsv").read_text() == "cluster_id\tgroup\n0\tnoise\n"
    assert cli_main(["export", "phy", str(rec), "--out", str(rec / "mine"), "--force"]) == 0
    assert "0\tnoise" not in (rec / "mine" / "cluster_group.tsv").read_text()
