"""Issue 17: init writes its files only when it succeeds (a bad header leaves nothing a later run
would keep), every command that writes into a recording folder takes the folder lock, and
QA_output/warnings.txt carries the recording's own warnings."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from blechrs import pipeline
from blechrs.cli.main import main as cli_main
from blechrs.errors import BlechrsError
from blechrs.io import atomic, paths
from blechrs.pipeline.init_recording import init_experiment
from blechrs.simulate import Simulation, rhd_header
from support.sorting_reference import init_folder, simulated_folder

PYTHON_PATH = os.pathsep.join([str(Path(pipeline.__file__).parents[2]), str(Path(__file__).parents[1])])


def _init_files(d: Path) -> list[Path]:
    return [paths.params_path(d), paths.info_path(d), paths.layout_path(d)]


# --- init: all or nothing -------------------------------------------------------------------------
def test_run_on_a_bad_header_writes_nothing_and_the_fixed_header_sorts(tmp_path, capsys):
    d = tmp_path / "rec"
    # 1000 Hz is a rate the header may hold, but the 300-3000 Hz band is above its Nyquist.
    Simulation(seed=2, n_channels=2, duration_s=3.0, sampling_rate=1000.0).write(d, "traditional",
                                                                                 save_ground_truth=False)
    rhd = next(d.glob("*.rhd"))
    assert cli_main(["run", str(d), "-q", "--no-plots", "-j", "1"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and str(rhd) in err and "1000 Hz" in err and "Nyquist" in err, err
    assert not any(p.exists() for p in _init_files(d))
    assert not paths.qa_dir(d).exists() and not paths.work_dir(d).exists()

    rhd.unlink()  # the header fixed: the recording written again, at 20 kHz
    Simulation(seed=2, n_channels=2, duration_s=3.0, sampling_rate=20000.0).write(d, "traditional",
                                                                                  save_ground_truth=False)
    assert cli_main(["run", str(d), "-q", "--no-plots", "-j", "1"]) == 0
    assert json.loads(paths.params_path(d).read_text())["sampling_rate"] == 20000.0
    assert json.loads(paths.info_path(d).read_text())["recording_params"]["sampling_rate"] == 20000.0
    assert paths.h5_path(d).exists()


def test_init_refuses_a_header_rate_outside_the_allowed_range(tmp_path):
    d = tmp_path / "rec"
    Simulation(seed=2, n_channels=2, duration_s=0.2, sampling_rate=250000.0).write(d, "one file per signal type",
                                                                                   save_ground_truth=False)
    with pytest.raises(BlechrsError, match=r"info\.rhd \(sampling rate 250000 Hz in its header\): sampling_rate "
                                           r"must be a number >= 1000 and <= 200000"):
        init_experiment(d, qa=True)
    assert not any(p.exists() for p in _init_files(d)) and not paths.qa_dir(d).exists()


def test_a_failed_write_puts_back_what_init_wrote(tmp_path, monkeypatch):
    d = tmp_path / "rec"
    simulated_folder(d, n_channels=2, duration_s=2.0)
    real = atomic.write_text_atomic

    def full_disk_at_params(path, text):
        if str(path).endswith(".params"):
            raise OSError(28, "No space left on device", str(path))
        real(path, text)

    monkeypatch.setattr(atomic, "write_text_atomic", full_disk_at_params)
    with pytest.raises(OSError, match="No space"):
        init_experiment(d)
    assert not any(p.exists() for p in _init_files(d))  # layout and .info removed again

    monkeypatch.setattr(atomic, "write_text_atomic", real)
    init_experiment(d)
    before = {p: p.read_bytes() for p in _init_files(d)}
    paths.layout_path(d).write_text(paths.layout_path(d).read_text().replace(",A\n", ",none\n", 1))
    before[paths.layout_path(d)] = paths.layout_path(d).read_bytes()
    monkeypatch.setattr(atomic, "write_text_atomic", full_disk_at_params)
    with pytest.raises(OSError):
        init_experiment(d, force=True)
    assert {p: p.read_bytes() for p in _init_files(d)} == before  # overwritten files put back


# --- the folder lock, taken by every command that writes into the folder --------------------------
HOLD = """
import sys, time
from blechrs.pipeline.lock import folder_lock
with folder_lock(sys.argv[1]):
    print("locked", flush=True)
    time.sleep(60)
"""


def test_every_command_stops_at_once_on_a_busy_folder(tmp_path, capsys):
    d = tmp_path / "rec"
    simulated_folder(d, n_channels=2, duration_s=2.0)
    init_folder(d)
    written = {p: p.stat().st_mtime_ns for p in _init_files(d)}
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(d)], stdout=subprocess.PIPE, text=True,
                              env=os.environ | {"PYTHONPATH": PYTHON_PATH})
    try:
        assert holder.stdout.readline().strip() == "locked"
        for command in (["init", "--force"], ["plot"], ["arrays"], ["qa"], ["export", "phy"], ["import", "phy"]):
            t = time.perf_counter()
            assert cli_main(["-q", *command, str(d)]) == 1, command
            assert time.perf_counter() - t < 2, command
            err = capsys.readouterr().err.strip()
            assert err.count("\n") == 0 and str(d) in err and f"pid {holder.pid}" in err, (command, err)
    finally:
        holder.kill()
        holder.wait()
    assert {p: p.stat().st_mtime_ns for p in _init_files(d)} == written  # init --force wrote nothing


def test_init_does_not_create_the_work_folder(tmp_path):
    # The lock is DIR/.blechrs.lock: locking creates no blechrs_work/ (only extraction does).
    d = tmp_path / "rec"
    simulated_folder(d, n_channels=2, duration_s=2.0)
    init_experiment(d)
    assert not paths.work_dir(d).exists() and paths.lock_path(d).exists()


# --- QA_output/warnings.txt -----------------------------------------------------------------------
def test_warnings_txt_has_the_recordings_warnings(tmp_path):
    d = tmp_path / "rec"
    sim = Simulation(seed=2, n_channels=2, duration_s=2.0, n_digital_inputs=0)
    sim.write(d, "traditional", rhd_file_seconds=0.5, save_ground_truth=False)
    last = sorted(d.glob("*.rhd"))[-1]
    b = bytearray(last.read_bytes())
    hs, block = len(rhd_header(sim)), 4 * 128 + 2 * 128 * 2  # time stamps + 2 amplifier channels
    for o in range(hs, len(b), block):  # the last file starts 10 samples late: samples were dropped
        b[o:o + 512] = (np.frombuffer(bytes(b[o:o + 512]), dtype="<i4") + 10).astype("<i4").tobytes()
    last.write_bytes(bytes(b))
    with pytest.warns(UserWarning):
        res = pipeline.init(d)
    assert res.recording.warnings and res.qa.warnings == []  # no bridged, dead or flat channel
    text = (paths.qa_dir(d) / "warnings.txt").read_text()
    assert text != "no warnings\n"
    for w in res.recording.warnings:
        assert w in text
    assert "dropped" in text or "jump" in text, text
