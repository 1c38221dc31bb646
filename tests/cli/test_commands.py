"""What a person sees from the commands: help that fits each command, advice that fits the folder,
and a demo whose results stay to look at."""

from __future__ import annotations

import pytest

from blechrs.cli.main import build_parser, main as cli_main
from support.sorting_reference import init_folder, simulated_folder


def _help(capsys, *argv) -> str:
    with pytest.raises(SystemExit):
        build_parser().parse_args([*argv, "--help"])
    return capsys.readouterr().out


def test_each_command_lists_only_its_options_and_what_it_reads_and_writes(capsys):
    init = _help(capsys, "init")
    assert "reads:" in init and "writes:" in init and ".params" in init
    assert "--jobs" not in init and "--no-plots" not in init  # init has no workers and draws nothing
    arrays = _help(capsys, "arrays")
    assert "--force" not in arrays and "/spike_trains" in arrays
    post = _help(capsys, "post-process")
    assert "--check" in post and "--sort-file" in post and "_applied.csv" in post
    assert "--check" not in _help(capsys, "run")


def test_post_process_before_run_says_to_run(tmp_path, capsys):
    d = tmp_path / "rec"
    d.mkdir()
    simulated_folder(d, seed=1, n_channels=2, duration_s=2.0)
    init_folder(d)
    sort = tmp_path / "mine.csv"
    sort.write_text("Unit,Chan,Solution,Cluster,Split,single_unit,Type,Comments\n1,0,2,0,,,,\n")
    assert cli_main(["post-process", str(d), "--sort-file", str(sort), "-q"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"blechrs: error: {d}: not sorted yet; run `blechrs run {d}` before post-process"]


def test_demo_keeps_its_results_and_replaces_only_its_own_folder(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = ["demo", "--seconds", "3", "--channels", "2", "-j", "1", "-q", "--no-plots"]
    assert cli_main(args) == 0
    out = capsys.readouterr().out
    kept = tmp_path / "blechrs_demo"
    assert "kept in blechrs_demo" in out and (kept / "blechrs_demo.h5").exists()
    # Its .info says what NWB needs (the demo's placeholders) and the export passes DANDI's inspection.
    assert "blechrs export nwb blechrs_demo" in out
    from nwbinspector import Importance, inspect_nwbfile, load_config
    assert cli_main(["export", "nwb", "blechrs_demo", "-q"]) == 0
    nwb = kept / "blechrs_demo.nwb"
    messages = list(inspect_nwbfile(nwbfile_path=str(nwb), config=load_config("dandi")))
    assert not [m for m in messages if m.importance.value >= Importance.BEST_PRACTICE_VIOLATION.value], messages
    assert cli_main(args) == 0  # a second demo replaces the first demo's folder
    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    assert cli_main([*args, "--out", str(other)]) == 1  # a folder the demo did not make is left alone
    assert (other / "notes.txt").read_text() == "mine"
