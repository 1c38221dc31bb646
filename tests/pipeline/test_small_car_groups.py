"""A CAR group of fewer than ``small_car_group`` wires (a tetrode) is warned about, in the run
report and QA_output/warnings.txt, saying what to do; the warning goes when the layout or
parameters no longer call for it."""

from __future__ import annotations

import dataclasses

from blechrs import pipeline
from blechrs.io import paths
from blechrs.io.params_file import save_params
from blechrs.io.layout import load_layout, save_layout
from blechrs.params import SortParams
from blechrs.pipeline.report import RunReport
from blechrs.quality.car_groups import small_group_warnings
from support.sorting_reference import init_folder, simulated_folder


def test_small_group_warning_text():
    out = small_group_warnings({"A": 4, "B": 16, "C": 1}, 8, "mean", "rec.params")
    assert len(out) == 1  # 16 wires is enough; a 1-wire group is not referenced at all
    w = out[0]
    assert w.startswith("CAR group A has only 4 wires (< 8)")
    assert "inverted 1/4 copy" in w and "use_car false in rec.params" in w and "reference_echoes.csv" in w
    assert "inverted" not in small_group_warnings({"A": 4}, 8, "median", "rec.params")[0]
    assert "(median) still holds a spike seen on half its wires" in small_group_warnings({"A": 4}, 8, "median", "x")[0]
    assert small_group_warnings({"A": 4}, 4, "mean", "x") == []


def test_extract_warns_about_a_tetrode(tmp_path):
    d = tmp_path / "rec"
    d.mkdir()
    simulated_folder(d, seed=5, n_channels=6, duration_s=2.0)
    init_folder(d)
    rows = load_layout(d)
    # a tetrode (wires 0-3) and a stereotrode (4-5)
    save_layout(d, [dataclasses.replace(r, car_group="tet" if r.electrode_ind < 4 else "st") for r in rows])
    warnings = paths.qa_warnings_path(d)
    before = [x for x in warnings.read_text().splitlines() if x != "no warnings"]
    report = pipeline.extract(d)
    notes = [n for n in report.notes if "CAR group" in n]
    assert len(notes) == 2 and any("tet has only 4 wires" in n for n in notes) and any("st has only 2" in n for n in notes)
    lines = warnings.read_text().splitlines()
    assert lines[:len(before)] == before and sum("CAR group" in x for x in lines) == 2
    # referencing off: nothing to warn about, and the file says so
    save_params(paths.params_path(d), pipeline.load_params(d).replace(use_car=False))
    report = pipeline.extract(d, force=True)
    assert not [n for n in report.notes if "CAR group" in n]
    assert not [x for x in warnings.read_text().splitlines() if "CAR group" in x]
    # and on the default layout (one group of 6 wires < 8) it is back, once
    save_params(paths.params_path(d), pipeline.load_params(d).replace(use_car=True))
    save_layout(d, rows)
    pipeline.extract(d, force=True)
    pipeline.extract(d, force=True, report=RunReport(d))
    assert sum("CAR group" in x for x in warnings.read_text().splitlines()) == 1
    assert SortParams().quality.small_car_group == 8
