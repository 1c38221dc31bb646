"""The pictures of a sorted folder and the index page: every stored unit has its picture and
nothing else has one; the page lists exactly the store's units, links only files that exist and
anchors that exist, loads nothing from elsewhere, and never shows a picture or a QA result of a
unit that is no longer in the store (after post-process replaced the units)."""

from __future__ import annotations

import shutil
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

import pytest

from blechrs import pipeline
from blechrs.cli.main import main as cli_main
from blechrs.figures.canvas import picture_info
from blechrs.io import paths, unit_store, work_files
from blechrs.io.qa_files import read_json
from blechrs.pipeline import pictures as plots
from blechrs.pipeline.resume import work_state
from support.sorting_reference import init_folder, simulated_folder


@pytest.fixture(scope="module")
def sim_folder(tmp_path_factory):
    d = tmp_path_factory.mktemp("sim") / "rec"
    d.mkdir()
    simulated_folder(d, seed=3, n_channels=4, duration_s=8.0)
    init_folder(d, max_clusters=4, num_restarts=2, cluster_count_threshold=10, max_autosort_clusters=6)
    return d


@pytest.fixture()
def rec(sim_folder, tmp_path):
    d = tmp_path / "rec"
    shutil.copytree(sim_folder, d)
    return d


class Page(HTMLParser):
    """Every link, image, id and table row id of a page."""

    def __init__(self, text: str):
        super().__init__()
        self.links: list[str] = []
        self.images: list[str] = []
        self.ids: set[str] = set()
        self.rows: list[str] = []
        self.tags: set[str] = set()
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.add(tag)
        if "id" in a:
            self.ids.add(a["id"])
            if tag == "tr" and a["id"].startswith("row-"):
                self.rows.append(a["id"][4:])
        if tag == "a" and "href" in a:
            self.links.append(a["href"])
        if tag == "img":
            self.images.append(a["src"])


def check_page(index: Path, store: Path) -> Page:
    """The page lists exactly the store's units, and every link goes to an existing file or anchor."""
    text = index.read_text()
    page = Page(text)
    units = unit_store.read_units(store, waveforms=False)
    assert page.rows == [u.name for u in units]
    assert not {"script", "link", "iframe"} & page.tags and "http" not in text and "@import" not in text
    for ref in page.links + page.images:
        if ref.startswith("#"):
            assert ref[1:] in page.ids, ref
        else:
            assert (index.parent / unquote(ref)).is_file(), ref
    return page


def test_every_unit_has_a_current_picture_and_the_page_links_only_current_things(rec, reference_engine):
    d = rec
    report = pipeline.run(d, jobs=1, plots=True)
    assert report.units
    store = paths.h5_path(d)
    root = paths.plot_dir(d)
    units = unit_store.read_units(store, waveforms=False)
    assert sorted(p.stem for p in (root / "units").glob("*.png")) == [u.name for u in units]
    for u in units:  # each picture says which unit it shows
        assert picture_info(root / "units" / f"{u.name}.png")[plots.UNIT_KEY] == plots.unit_identity(u)
    page = check_page(root / "index.html", store)
    assert {f"units/{u.name}.png" for u in units} <= set(page.images)
    assert {f"qa/{u.name}.png" for u in units} <= set(page.links)  # unit QA ran: its pictures are current
    for e in range(4):  # a thumbnail per electrode, and every solution picture linked
        assert f"electrode{e:02d}/units.png" in page.images
        for k in work_files.load_electrode(paths.electrode_path(d, e)).solutions:
            assert f"electrode{e:02d}/solution{k:02d}.png" in page.links

    # A person keeps one unit: after post-process (pictures redrawn, unit QA not re-run) nothing
    # on the page describes the old units.
    sort_csv = d / "one.csv"
    sort_csv.write_text("Unit,Chan,Solution,Cluster,Split,single_unit,Type,Comments\n0,2,3,0+1,,x,r,merged\n")
    assert cli_main(["post-process", str(d), "--sort-file", str(sort_csv), "-q", "-j", "1"]) == 0
    now = unit_store.read_units(store, waveforms=False)
    assert [u.name for u in now] == ["unit000"]
    assert sorted(p.stem for p in (root / "units").glob("*.png")) == ["unit000"]
    text = (root / "index.html").read_text()
    page = check_page(root / "index.html", store)
    assert not any(name in text for name in {u.name for u in units} - {"unit000"})
    qa = read_json(paths.qa_dir(d) / "unit_qa.json")
    qa_current = [r["n_spikes"] for r in qa["units"] if r["unit"] == "unit000"] == [len(now[0].times)]
    # unit QA's picture and flags are shown only if its results are of this unit000
    assert ("qa/unit000.png" in page.links) == qa_current
    assert ("no current QA" in text) == (not qa_current) and ("describe other units" in text) == (not qa_current)
    # The thumbnails of the electrodes that lost their units were redrawn.
    for e in range(4):
        assert picture_info(root / f"electrode{e:02d}" / "units.png")[plots.UNITS_KEY] == "; ".join(
            plots.unit_identity(u) for u in now if u.electrode == e)


def test_pictures_not_matching_the_store_are_not_linked(rec, reference_engine):
    d = rec
    pipeline.run(d, jobs=1, plots=True)
    root = paths.plot_dir(d)
    units = unit_store.read_units(paths.h5_path(d), waveforms=False)
    victim = units[0].name
    other = units[-1].name
    shutil.copy(root / "units" / f"{other}.png", root / "units" / f"{victim}.png")  # shows another unit
    plots.write_index(d, range(4))
    page = check_page(root / "index.html", paths.h5_path(d))
    assert f"units/{victim}.png" not in page.images and f"units/{other}.png" in page.images
    # Solution pictures of an earlier clustering are flagged and not linked from the units.
    (root / "electrode02" / "solutions.stamp").write_text("older clustering\n")
    text = plots.write_index(d, range(4)).read_text()
    assert "of an earlier clustering" in text
    for u in units:
        row = text[text.index(f"id='row-{u.name}'"):]
        row = row[:row.index("</tr>")]
        assert "electrode02/solution" not in row
        assert (f"electrode{u.electrode:02d}/solution" in row) == (u.electrode != 2)


def test_electrodes_too_short_for_a_unit_get_no_solution_pictures_and_the_page_says_why(rec, reference_engine):
    from blechrs.io.params_file import load_params, save_params

    d = rec
    pipeline.run(d, jobs=1, plots=True)
    root = paths.plot_dir(d)
    counts = {e: work_files.read_meta(paths.electrode_path(d, e)).n_events for e in range(4)}
    assert all(list((root / f"electrode{e:02d}").glob("solution*.png")) for e in range(4))
    first = {e: work_files.load_electrode(paths.electrode_path(d, e)) for e in range(4)}
    # a threshold above the smallest electrode's events: it cannot hold a unit
    small = min(counts, key=counts.get)
    least = counts[small] + 1
    assert sum(n >= least for n in counts.values()) >= 1
    params_path = paths.params_path(d)
    save_params(params_path, load_params(params_path).replace(cluster_count_threshold=least))
    # The threshold is part of the clustering's resume fingerprint of an electrode it crosses: the
    # small electrode is clustered again (now not at all), the others only auto-sorted again.
    states = {e: work_state(d, e, load_params(params_path)) for e in counts}
    assert states == {e: "autosort-stale" if n >= least else "extracted" for e, n in counts.items()}
    report = pipeline.run(d, jobs=1, plots=True)
    for e, n in counts.items():
        drawn = sorted((root / f"electrode{e:02d}").glob("solution*.png"))
        assert bool(drawn) == (n >= least), (e, n, least)
    # The small electrode has no solutions and says why; the others keep their clustering.
    why = f"{counts[small]} events, fewer than a unit needs (cluster_count_threshold {least})"
    for e, n in counts.items():
        work = work_files.load_electrode(paths.electrode_path(d, e))
        if n < least:
            assert work.solutions == {} and work.units == [] and work.status == why
        else:
            assert work.fp_cluster == first[e].fp_cluster and work.status == "ok"
            assert {k: s.labels.tolist() for k, s in work.solutions.items() if s.kind != "templates"} == \
                {k: s.labels.tolist() for k, s in first[e].solutions.items() if s.kind != "templates"}
    assert {"electrode": small, "events": counts[small], "status": why, "units": 0} .items() <= \
        next(r for r in report.quiet if r["electrode"] == small).items()
    # A person's sort file picking its clusters is told why there are none, and nothing is stored.
    stored = unit_store.read_units(paths.h5_path(d))
    sort_file = d / "mine.csv"
    sort_file.write_text(f"Unit,Chan,Solution,Cluster,Split,single_unit,Type,Comments\n0,{small},2,0,,,,mine\n")
    _, problems, _ = pipeline.post_process(d, sort_file)
    assert [p.message for p in problems] == [f"electrode {small} has no solution 2 (solutions: none: {why})"]
    assert [u.name for u in unit_store.read_units(paths.h5_path(d))] == [u.name for u in stored]
    text = (root / "index.html").read_text()
    assert (f"none drawn ({counts[small]} events, fewer than a unit needs (cluster_count_threshold {least}))"
            in text)
    page = check_page(root / "index.html", paths.h5_path(d))
    assert not any(link.startswith(f"electrode{small:02d}/solution") for link in page.links)
    # nor an empty thumbnail: no unit there, and none could be (the thumbnail of the run before is gone)
    assert not unit_store.read_units(paths.h5_path(d), electrode=small)
    assert not (root / f"electrode{small:02d}" / "units.png").exists()
    assert f"electrode{small:02d}/units.png" not in page.images
    # back to a threshold it meets: drawn again
    save_params(params_path, load_params(params_path).replace(cluster_count_threshold=10))
    assert work_state(d, small, load_params(params_path)) == "extracted"
    pipeline.run(d, jobs=1, plots=True)
    assert list((root / f"electrode{small:02d}").glob("solution*.png"))
    assert (root / f"electrode{small:02d}" / "units.png").exists()
    again = work_files.load_electrode(paths.electrode_path(d, small))
    assert again.status == "ok" and again.fp_cluster == first[small].fp_cluster
    assert {k: s.labels.tolist() for k, s in again.solutions.items()} == \
        {k: s.labels.tolist() for k, s in first[small].solutions.items()}


def test_a_no_unit_thumbnail_is_drawn_where_clustered_and_redrawn_when_a_unit_is_stored(rec, reference_engine,
                                                                                      monkeypatch):
    from blechrs.io.params_file import load_params, save_params

    d = rec
    params_path = paths.params_path(d)
    save_params(params_path, load_params(params_path).replace(min_snr=1000.0))  # no cluster can be a unit
    pipeline.run(d, jobs=1, plots=True)
    root = paths.plot_dir(d)
    assert unit_store.read_units(paths.h5_path(d)) == []
    thumbs = {e: root / f"electrode{e:02d}" / "units.png" for e in range(4)}
    for e, thumb in thumbs.items():  # every electrode has enough events for a unit (tested above)
        assert picture_info(thumb)[plots.UNITS_KEY] == ""
    page = check_page(root / "index.html", paths.h5_path(d))
    assert {f"electrode{e:02d}/units.png" for e in range(4)} <= set(page.images)
    # Current: the pictures after the store draw nothing for these electrodes.
    drawn = []
    monkeypatch.setattr(plots, "plot_electrode", lambda *a, **k: drawn.append(a[1]) or [])
    before = {e: t.read_bytes() for e, t in thumbs.items()}
    pipeline.outputs_after_store(d, load_params(params_path), pipeline.RunReport(d), pictures=True, jobs=1)
    assert drawn == [] and {e: t.read_bytes() for e, t in thumbs.items()} == before
    monkeypatch.undo()
    # A person's unit on electrode 0: its thumbnail shows it.
    sort_file = d / "mine.csv"
    sort_file.write_text("Unit,Chan,Solution,Cluster,Split,single_unit,Type,Comments\n0,0,2,0,,,,mine\n")
    report, problems, _ = pipeline.post_process(d, sort_file)
    assert problems == []
    pipeline.outputs_after_store(d, load_params(params_path), report, pictures=True, jobs=1)
    (unit,) = unit_store.read_units(paths.h5_path(d))
    assert picture_info(thumbs[0])[plots.UNITS_KEY] == plots.unit_identity(unit)
    assert all(picture_info(thumbs[e])[plots.UNITS_KEY] == "" for e in (1, 2, 3))
    check_page(root / "index.html", paths.h5_path(d))


def test_pictures_drawn_beside_unit_qa_match_those_drawn_before_it(rec, tmp_path, reference_engine):
    """With two workers, a run's unit pictures and thumbnails are drawn by a worker while the
    arrays and unit QA run here (chain.outputs_after_store); one worker draws them first, in this
    process. Both give the same pictures, bytes for bytes, and an index page linking every unit
    and QA picture."""
    other = tmp_path / "other"
    shutil.copytree(rec, other)
    pipeline.run(rec, jobs=1, plots=True)
    report = pipeline.run(other, jobs=2, plots=True)
    assert report.units and "plots" in report.timings
    for d in (rec, other):
        units = unit_store.read_units(paths.h5_path(d), waveforms=False)
        page = check_page(paths.plot_dir(d) / "index.html", paths.h5_path(d))
        assert {f"units/{u.name}.png" for u in units} <= set(page.images)
        assert {f"qa/{u.name}.png" for u in units} <= set(page.links)
    for sub in ("units", "qa"):
        a = sorted((paths.plot_dir(rec) / sub).glob("*.png"))
        b = sorted((paths.plot_dir(other) / sub).glob("*.png"))
        assert [p.name for p in a] == [p.name for p in b] and a
        assert all(x.read_bytes() == y.read_bytes() for x, y in zip(a, b))
