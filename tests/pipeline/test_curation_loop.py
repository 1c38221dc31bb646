"""The curation loop a lab runs: sort, look, overrule in a sort file, post-process. Afterwards every
output (pictures, unit QA, spike arrays, the index page) describes exactly the units in the store."""

from __future__ import annotations

import csv
import json
import os
import re
import stat

import h5py
import pytest

from blechrs.cli.main import main as cli_main
from blechrs.io import paths, unit_store
from support.sorting_reference import init_folder, simulated_folder


@pytest.fixture(scope="module")
def sorted_folder(tmp_path_factory):
    d = tmp_path_factory.mktemp("loop") / "rec"
    d.mkdir()
    simulated_folder(d, seed=5, n_channels=6, duration_s=30.0)
    init_folder(d, cluster_count_threshold=10)
    old = os.umask(0o022)
    try:
        assert cli_main(["run", str(d), "-j", "2", "-q"]) == 0
    finally:
        os.umask(old)
    return d


def _stored(d):
    return unit_store.read_units(paths.h5_path(d), waveforms=False)


def _pictures(d, sub):
    return sorted(p.stem for p in (paths.plot_dir(d) / sub).glob("unit*.png"))


def test_every_output_follows_the_units_after_post_process(sorted_folder):
    d = sorted_folder
    before = _stored(d)
    assert len(before) >= 3, "the simulated recording should give several units"
    solution_pics = sorted(paths.plot_dir(d).glob("electrode*/solution*.png"))
    stamps = {p: p.stat().st_mtime_ns for p in solution_pics}
    # Keep the first two of auto-sort's rows only.
    with open(d / f"{d.name}_autosort.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    mine = d / "mine.csv"
    with open(mine, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows[:2])
    assert cli_main(["post-process", str(d), "--sort-file", str(mine), "-j", "2", "-q"]) == 0

    after = _stored(d)
    names = [u.name for u in after]
    assert names == ["unit000", "unit001"]
    assert _pictures(d, "units") == names and _pictures(d, "qa") == names
    qa = json.loads((paths.qa_dir(d) / "unit_qa.json").read_text())
    assert sorted(u["unit"] if isinstance(u, dict) else u for u in qa["units"]) == names
    with h5py.File(paths.h5_path(d), "r") as f:
        arrays = [f[f"spike_trains/{k}/spike_array"] for k in f["spike_trains"]]
        assert arrays and all(a.shape[1] == 2 for a in arrays)
    index = (paths.plot_dir(d) / "index.html").read_text()
    shown = set(re.findall(r"unit\d{3}", index))
    assert shown == set(names)
    for link in re.findall(r'(?:href|src)="([^"#]+)"', index):
        assert (paths.plot_dir(d) / link).exists(), link
    # The clustering did not change: its pictures were not drawn again.
    assert {p: p.stat().st_mtime_ns for p in solution_pics} == stamps
    # The same sort file again: the same units, so their pictures are not drawn again either.
    def unit_pics():
        return {p: p.stat().st_mtime_ns for sub in ("units", "qa") for p in (paths.plot_dir(d) / sub).glob("unit*.png")}

    drawn = unit_pics()
    assert len(drawn) == 4
    assert cli_main(["post-process", str(d), "--sort-file", str(mine), "-j", "2", "-q"]) == 0
    assert unit_pics() == drawn


def test_outputs_honour_the_umask(sorted_folder):
    # Made under umask 022: every file is readable by the group and others, as on a shared server.
    d = sorted_folder
    modes = {p: stat.S_IMODE(p.stat().st_mode) for p in d.rglob("*") if p.is_file() and not p.is_symlink()}
    made = {p: m for p, m in modes.items() if p.suffix not in (".dat", ".rhd")}
    assert made and all(m & 0o044 == 0o044 for m in made.values()), \
        sorted(f"{p.relative_to(d)} {oct(m)}" for p, m in made.items() if m & 0o044 != 0o044)[:5]
