"""Sort-file parsing and application, checked against expectations computed here."""

from __future__ import annotations

import csv
import hashlib

import numpy as np
import pytest

from blechrs.curation import sort_file as sf
from blechrs.model import ElectrodeWork, Solution, Unit
from blechrs.params import SortParams

HEADER = "Unit,Chan,Solution,Cluster,Split,single_unit,Type,Comments\n"


def _electrode(electrode, seed=0, n_per=(300, 200, 150, 250)):
    """Synthetic electrode: clusters of waveforms of different sizes; cluster 2 is itself made of
    three blobs of clearly different amplitude (for splits)."""
    rng = np.random.default_rng(seed)
    L, peak = 75, 30
    shape = -np.exp(-0.5 * ((np.arange(L) - peak) / 3.0) ** 2)
    wfs, labels, blob = [], [], []
    amps = {0: 60.0, 1: 120.0, 3: 200.0}
    for c, n in enumerate(n_per):
        if c == 2:
            for b, a in enumerate((300.0, 420.0, 560.0)):
                m = n // 3 if b < 2 else n - 2 * (n // 3)
                wfs.append(shape * a * rng.normal(1, 0.03, (m, 1)) + rng.normal(0, 3, (m, L)))
                labels += [2] * m
                blob += [b] * m
        else:
            wfs.append(shape * amps[c] * rng.normal(1, 0.05, (n, 1)) + rng.normal(0, 3, (n, L)))
            labels += [c] * n
            blob += [-1] * n
    w = np.concatenate(wfs).astype(np.float32)
    order = rng.permutation(len(w))
    w, labels, blob = w[order], np.array(labels)[order], np.array(blob)[order]
    times = np.sort(rng.choice(30000 * 60, len(w), replace=False)).astype(np.int64)
    feats = np.column_stack([w[:, peak], np.sqrt((w.astype(float) ** 2).mean(1)), w[:, peak + 5]]).astype(float) / 100
    labels_4 = labels.astype(np.int64)
    labels_4[:5] = -1  # a few outliers
    labels_2 = (labels >= 2).astype(np.int64)
    work = ElectrodeWork(electrode, times=times, waveforms=w, features=feats, stage="clustered",
                         solutions={4: Solution(4, labels_4, "gmm"), 2: Solution(2, labels_2, "gmm")})
    return work, blob


@pytest.fixture()
def electrodes():
    d3, blob = _electrode(3, 0)
    d5, _ = _electrode(5, 1)
    return {3: d3, 5: d5}, blob


def _apply(tmp_path, text, electrodes, params=None):
    path = tmp_path / "my_sort.csv"
    path.write_text(text)
    before = path.read_bytes()
    rows, problems, cells, _ = sf.read_sort_file(path)
    sels, more, by_row = sf.apply_sort_rows(rows, electrodes.get, params or SortParams())
    assert path.read_bytes() == before
    return path, rows, sorted(problems + more, key=lambda p: p.row), cells, sels, by_row


def test_single_and_merge(tmp_path, electrodes):
    el, _ = electrodes
    text = HEADER + "1,3,4,1,,x,r,good\n2,3,4,0+3,,,,MU\n3,5,4,\"0,2\",,x,f,\n4,5,2,1,,,,\n"
    _, rows, problems, _, sels, _ = _apply(tmp_path, text, el)
    assert problems == []
    assert len(sels) == 4
    lab3, lab5 = el[3].labels_of(4), el[5].labels_of(4)
    np.testing.assert_array_equal(sels[0].indices, np.where(lab3 == 1)[0])
    np.testing.assert_array_equal(sels[1].indices, np.where((lab3 == 0) | (lab3 == 3))[0])
    np.testing.assert_array_equal(sels[2].indices, np.where((lab5 == 0) | (lab5 == 2))[0])
    np.testing.assert_array_equal(sels[3].indices, np.where(el[5].labels_of(2) == 1)[0])
    assert (sels[0].single_unit, sels[0].regular_spiking, sels[0].fast_spiking) == (True, True, False)
    assert (sels[1].single_unit, sels[1].regular_spiking, sels[1].fast_spiking) == (False, False, False)
    assert (sels[2].single_unit, sels[2].regular_spiking, sels[2].fast_spiking) == (True, False, True)
    assert sels[1].clusters == (0, 3) and sels[2].clusters == (0, 2)
    assert [s.row for s in sels] == [2, 3, 4, 5]


def test_split_recovers_blobs_ordered_by_size(tmp_path, electrodes):
    el, blob = electrodes
    lab = el[3].labels_of(4)
    _, _, problems, _, sels, _ = _apply(tmp_path, HEADER + "1,3,4,2,3x,,,\n", el)
    assert problems == []
    assert len(sels) == 3
    members = np.where(lab == 2)[0]
    # Together the sub-clusters are exactly the cluster; each is one blob, largest amplitude first.
    np.testing.assert_array_equal(np.sort(np.concatenate([s.indices for s in sels])), members)
    for k, s in enumerate(sels):
        expected_blob = 2 - k  # blob 2 has the largest amplitude
        np.testing.assert_array_equal(s.indices, members[blob[members] == expected_blob])
    # Keeping chosen sub-clusters gives the same split (seeded); "0+2" merges two of them.
    _, _, problems, _, kept, _ = _apply(tmp_path, HEADER + "1,3,4,2,3x:0+2,x,,\n2,3,4,2,3x:1,,,\n", el)
    assert problems == []
    np.testing.assert_array_equal(kept[0].indices, np.sort(np.concatenate([sels[0].indices, sels[2].indices])))
    np.testing.assert_array_equal(kept[1].indices, sels[1].indices)
    assert kept[0].single_unit and not kept[1].single_unit


@pytest.mark.parametrize("row, message", [
    ("1,7,4,1,,,,", "electrode 7"),
    ("1,3,6,1,,,,", "no solution 6"),
    ("1,3,4,9,,,,", "no cluster 9"),
    ("1,3,4,abc,,,,", "Cluster 'abc'"),
    ("1,3,4,1-2,,,,", "Cluster '1-2'"),
    ("1,3,4,,,,,", "Cluster is empty"),
    ("1,three,4,1,,,,", "Chan 'three'"),
    ("1,3,4.5,1,,,,", "Solution '4.5'"),
    ("1,3,4,1,7y,,,", "Split '7y'"),
    ("1,3,4,1,3x:5,,,", "sub-cluster 5"),
    ("1,3,4,1,1x,,,", "at least 2"),
    ("1,3,4,1,,maybe,,", "single_unit 'maybe'"),
    ("1,3,4,1,,x,z,", "Type 'z'"),
    ("1,3,4,1,,,,,extra", "cells"),
])
def test_bad_rows_reported_with_row_number_and_save_nothing(tmp_path, electrodes, row, message):
    el, _ = electrodes
    text = HEADER + "1,3,4,0,,,,\n" + row + "\n" + "1,3,4,3,,,,\n"
    path, _, problems, cells, sels, by_row = _apply(tmp_path, text, el)
    assert len(problems) == 1
    assert problems[0].row == 3
    assert message in str(problems[0]) and str(problems[0]).startswith("row 3:")
    assert [s.row for s in sels] == [2, 4]
    assert 3 not in by_row
    report = sf.write_applied_report(tmp_path / "my_sort_applied.csv", path, cells, problems, by_row, {})
    with open(report) as fh:
        out = list(csv.DictReader(fh))
    assert [r["status"] for r in out] == ["saved", "rejected", "saved"]
    assert message in out[1]["message"]


def test_duplicate_selection_is_rejected(tmp_path, electrodes):
    el, _ = electrodes
    _, _, problems, _, sels, _ = _apply(tmp_path, HEADER + "1,3,4,1,,,,\n2,3,4,1,,x,,\n", el)
    assert [str(p) for p in problems] == ["row 3: selects the same events as row 2"]
    assert len(sels) == 1


def test_whole_file_errors(tmp_path):
    with pytest.raises(sf.SortFileError, match="not found"):
        sf.read_sort_file(tmp_path / "nope.csv")
    p = tmp_path / "bad.csv"
    p.write_text("Unit,Chan,Cluster\n1,2,3\n")
    with pytest.raises(sf.SortFileError, match="missing column.*Solution"):
        sf.read_sort_file(p)
    p.write_text("")
    with pytest.raises(sf.SortFileError, match="empty"):
        sf.read_sort_file(p)


def test_lenient_header_and_blank_lines(tmp_path, electrodes):
    el, _ = electrodes
    text = "unit, chan ,solution,CLUSTER,split,Single Unit,type,comments\n\n,,,,,,,\n1,3,4,1,,x,r,\n"
    _, rows, problems, _, sels, _ = _apply(tmp_path, text, el)
    assert problems == [] and len(sels) == 1 and sels[0].single_unit and sels[0].row == 4


def test_writer_round_trips(tmp_path, electrodes):
    el, _ = electrodes
    lab = el[3].labels_of(4)
    sels = [Unit(3, 4, (0, 3), np.where(np.isin(lab, (0, 3)))[0], single_unit=True, fast_spiking=True),
            Unit(3, 4, (1,), np.where(lab == 1)[0])]
    text = sf.format_sort_file([sf.unit_row(i, s, "auto") for i, s in enumerate(sels)])
    assert text.splitlines()[0] == HEADER.strip()
    _, _, problems, _, back, _ = _apply(tmp_path, text, el)
    assert problems == []
    for a, b in zip(sels, back):
        np.testing.assert_array_equal(a.indices, b.indices)
        assert (a.single_unit, a.regular_spiking, a.fast_spiking) == (b.single_unit, b.regular_spiking, b.fast_spiking)


@pytest.mark.parametrize("delimiter", [";", "\t"])
def test_excel_on_windows_cp1252_and_other_separators(tmp_path, electrodes, delimiter):
    # Excel in a European locale: ';' (or tab) separators, a BOM-less cp1252 file with "µV" in a comment.
    el, _ = electrodes
    lines = [HEADER.strip().split(","), ["1", "3", "4", "1", "", "x", "r", "big, 120 µV"], ["2", "3", "4", "0+3", "", "", "", "MU"]]
    path = tmp_path / "excel.csv"
    path.write_bytes("\r\n".join(delimiter.join(f'"{c}"' if "," in c else c for c in row) for row in lines).encode("cp1252"))
    rows, problems, cells, how = sf.read_sort_file(path)
    assert problems == [] and [r.clusters for r in rows] == [(1,), (0, 3)]
    assert cells[0]["Comments"] == "big, 120 µV"
    assert how == "cp1252, " + ("';'" if delimiter == ";" else "tab") + "-separated"
    sels, more, _ = sf.apply_sort_rows(rows, el.get, SortParams())
    assert more == [] and len(sels) == 2


def test_utf8_with_bom_reads_plainly(tmp_path):
    path = tmp_path / "bom.csv"
    path.write_bytes(("\ufeff" + HEADER + "1,3,4,1,,x,r,µV\n").encode("utf-8"))
    rows, problems, cells, how = sf.read_sort_file(path)
    assert problems == [] and len(rows) == 1 and cells[0]["Comments"] == "µV" and how == ""
