"""The SpikeInterface curation round trip of a folder: a sort file -> post-process -> ``export
si-curation`` -> ``import si-curation`` gives back the same rows (and, for split rows, the same
spikes); a curation edited the way SpikeInterface users edit one gives the units that
SpikeInterface's own ``apply_curation`` gives on ``blechrs.to_spikeinterface``'s sorting; a
merge across electrodes is refused with nothing written; the commands never overwrite a
person's curation file."""

from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest

from spikeinterface.curation import apply_curation

import blechrs
from blechrs import pipeline
from blechrs.cli.main import main as cli_main
from blechrs.curation.sort_file import format_sort_file
from blechrs.errors import SpikeInterfaceError
from blechrs.io import paths, unit_store, work_files
from blechrs.pipeline import spikeinterface as si
from support.sorting_reference import sorted_small_folder


@pytest.fixture(scope="module")
def sorted_folder(tmp_path_factory):
    d = tmp_path_factory.mktemp("si_curation") / "rec"
    d.mkdir()
    # No common reference: on 4 wires it makes echoes, which the echo check removes, and these tests
    # need units enough to merge, split, remove and relabel (6 here).
    # (cluster_count_threshold 5: electrode 0 has 7 events, and a row below picks its clusters)
    return sorted_small_folder(d, use_car=False, cluster_count_threshold=5)


@pytest.fixture()
def rec(sorted_folder, tmp_path):
    d = tmp_path / "rec"
    shutil.copytree(sorted_folder, d)
    return d


def _rows(path):
    with open(path, newline="") as fh:
        return [{k: r[k] for k in ("Chan", "Solution", "Cluster", "Split", "single_unit", "Type")}
                for r in csv.DictReader(fh)]


def _stored(d):
    return [(u.electrode, u.single_unit, u.unit_type, u.times.tolist()) for u in unit_store.read_units(paths.h5_path(d))]


def _files(d):
    return {p.relative_to(d): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


def test_sort_file_to_curation_and_back_is_the_same_sort_file(rec):
    work = {e: work_files.load_electrode(paths.electrode_path(rec, e)) for e in range(4)}
    big = {e: np.bincount(w.labels_of(3)[w.labels_of(3) >= 0]) for e, w in work.items()}
    rows = [  # one row per electrode: a cluster, a merge, a type; and one split row
        {"Chan": 0, "Solution": 3, "Cluster": "0+1", "single_unit": "", "Type": "r"},
        {"Chan": 1, "Solution": 2, "Cluster": "0", "single_unit": "x", "Type": "f"},
        {"Chan": 2, "Solution": 3, "Cluster": "2", "single_unit": "x", "Type": ""},
        {"Chan": 3, "Solution": 1, "Cluster": "0+1", "single_unit": "", "Type": ""},
    ]
    mine = rec / "my_sort.csv"
    mine.write_text(format_sort_file(rows))
    assert pipeline.post_process(rec, mine)[0].store_written
    before = _stored(rec)
    made = si.export_si_curation(rec)
    assert made.path == rec / "rec_si_curation.json" and made.units == 4
    report, problems, _ = si.import_si_curation(rec)
    assert problems == [] and report.store_written
    expected = [{k: str(r.get(k, "")) for k in ("Chan", "Solution", "Cluster", "Split", "single_unit", "Type")}
                for r in rows]
    assert _rows(paths.si_sort_file_path(rec)) == expected  # the same rows, nothing new in the work files
    assert all(sol.kind != "si" for e in range(4)
               for sol in work_files.load_electrode(paths.electrode_path(rec, e)).solutions.values())
    assert _stored(rec) == before

    # A split row: its units come back as the same spikes, from an "si" solution.
    e = int(np.argmax([b.max() for b in big.values()]))
    cluster = int(np.argmax(big[e]))
    mine.write_text(format_sort_file([{"Chan": e, "Solution": 3, "Cluster": cluster, "Split": "2x", "single_unit": "x"}]))
    assert pipeline.post_process(rec, mine)[0].store_written
    before = _stored(rec)
    assert len(before) == 2
    si.export_si_curation(rec, force=True)
    assert si.import_si_curation(rec)[0].store_written
    assert _stored(rec) == before
    got = _rows(paths.si_sort_file_path(rec))
    solutions = work_files.load_electrode(paths.electrode_path(rec, e)).solutions
    assert {int(r["Solution"]) for r in got} == {n for n, s in solutions.items() if s.kind == "si"}


def test_an_edited_curation_gives_what_spikeinterface_gives(rec):
    units = unit_store.read_units(paths.h5_path(rec))
    by_e = {}
    for k, u in enumerate(units):
        by_e.setdefault(u.electrode, []).append(k)
    e_merge = next(e for e, ks in by_e.items() if len(ks) >= 2)
    a, b = by_e[e_merge][:2]
    others = [k for k in range(len(units)) if k not in (a, b)]
    split, removed, noise, relabel = others[0], others[1], others[2], others[3]
    curation = json.loads(si.export_si_curation(rec).path.read_text())
    curation["removed"] = [removed]
    curation["merges"] = [{"unit_ids": [a, b]}]
    n = len(units[split].times)
    curation["splits"] = [{"unit_id": split, "mode": "indices", "indices": [list(range(0, n, 2))]}]
    for label in curation["manual_labels"]:
        if label["unit_id"] == noise:
            label["labels"]["quality"] = ["noise"]
        if label["unit_id"] == relabel:
            label["labels"] = {"quality": ["MUA" if units[relabel].single_unit else "good"], "type": ["fast_spiking"]}
    mine = rec / "edited.json"
    mine.write_text(json.dumps(curation))

    # SpikeInterface's own answer on the sorting blechrs gives it.
    theirs = apply_curation(blechrs.to_spikeinterface(rec, recording=False), curation)
    quality = theirs.get_property("quality")
    kinds = theirs.get_property("type")
    expected = {tuple(theirs.get_unit_spike_train(uid).tolist()): (uid, quality[k], kinds[k])
                for k, uid in enumerate(theirs.unit_ids) if quality[k] != "noise"}

    report, problems, _ = si.import_si_curation(rec, mine)
    assert problems == [] and report.store_written
    got = unit_store.read_units(paths.h5_path(rec))
    assert len(got) == len(expected) == len(units) - 1 - 1 - 1 + 1  # removed, noise, a+b merged, split in 2
    for u in got:
        uid, q, kind = expected[tuple(u.times.tolist())]  # exactly SpikeInterface's spikes
        if q:  # SI leaves a merge of differently labelled units without a label; blechrs: multi-unit
            assert u.single_unit == (q == "good"), uid
        else:
            assert not u.single_unit
        if uid == relabel:
            assert u.fast_spiking and not u.regular_spiking
    rows = _rows(paths.si_sort_file_path(rec))
    assert sum(r["Solution"] == "1" for r in rows) == len(got) - 2  # the split's parts: an "si" solution
    # Importing it again is refused: the store it was made of has changed (its units renumbered).
    before = _files(rec)
    with pytest.raises(SpikeInterfaceError, match="made of another version of the unit store"):
        si.import_si_curation(rec, mine)
    assert _files(rec) == before
    # A curation without blechrs's key (spikeinterface-gui writes its own) is checked by unit ids only.
    del curation["blechrs_unit_store"]
    mine.write_text(json.dumps(curation))
    with pytest.raises(SpikeInterfaceError, match="not in the store"):
        si.import_si_curation(rec, mine)


def test_merge_across_electrodes_is_refused_and_nothing_written(rec, capsys):
    units = unit_store.read_units(paths.h5_path(rec))
    b = next(k for k, u in enumerate(units) if u.electrode != units[0].electrode)
    curation = json.loads(si.export_si_curation(rec).path.read_text())
    curation["merges"] = [[0, b]]
    mine = rec / "bad.json"
    mine.write_text(json.dumps(curation))
    before = _files(rec)
    with pytest.raises(SpikeInterfaceError, match=rf"bad.json: merge of units 0, {b} spans electrodes"):
        si.import_si_curation(rec, mine)
    assert _files(rec) == before
    assert cli_main(["import", "si-curation", str(rec), str(mine), "--no-plots"]) == 1
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("blechrs: error: ") and "spans electrodes" in lines[0]
    mine.write_text("{not json")
    assert cli_main(["import", "si-curation", str(rec), str(mine)]) == 1
    assert "not a JSON curation file" in capsys.readouterr().err
    assert cli_main(["import", "si-curation", str(rec), str(rec / "nothere.json")]) == 1
    assert capsys.readouterr().err.strip() == f"blechrs: error: {rec / 'nothere.json'}: no such curation file"
    del before[mine.relative_to(rec)]
    assert {k: v for k, v in _files(rec).items() if k != mine.relative_to(rec)} == before


def test_export_keeps_a_persons_curation_unless_forced(rec, capsys):
    assert cli_main(["export", "si-curation", str(rec)]) == 0
    path = paths.si_curation_path(rec)
    first = path.read_bytes()
    assert cli_main(["export", "si-curation", str(rec)]) == 0 and path.read_bytes() == first  # same content
    edited = json.loads(first)
    edited["removed"] = [0]
    path.write_text(json.dumps(edited))
    assert cli_main(["export", "si-curation", str(rec)]) == 1
    assert "kept it" in capsys.readouterr().err and json.loads(path.read_text())["removed"] == [0]
    assert cli_main(["export", "si-curation", str(rec), "--force"]) == 0 and path.read_bytes() == first
