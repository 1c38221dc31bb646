"""Issue 17, items 2-5 on a recording folder: the .params sampling rate checked against the header,
resume keyed on the recording's files, one run per folder (a lock), and no temporary file of a
killed writer left behind."""

from __future__ import annotations

import errno
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from blechrs import pipeline
from blechrs.errors import BlechrsError, ParamsError
from blechrs.io import atomic, paths, unit_store, work_files
from blechrs.io.params_file import load_params, save_params
from blechrs.pipeline.lock import FolderBusyError, folder_lock, lock_path
from support.sorting_reference import init_folder, simulated_folder

PYTHON_PATH = os.pathsep.join([str(Path(pipeline.__file__).parents[2]), str(Path(__file__).parents[1])])


@pytest.fixture(scope="module")
def folder_5s(tmp_path_factory):
    d = tmp_path_factory.mktemp("r") / "rec"
    d.mkdir()
    simulated_folder(d, seed=5, n_channels=3, duration_s=5.0)
    init_folder(d, max_clusters=3, num_restarts=1, cluster_count_threshold=10, max_autosort_clusters=4)
    return d


@pytest.fixture()
def rec(folder_5s, tmp_path):
    d = tmp_path / "rec"
    shutil.copytree(folder_5s, d)
    return d


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


# --- item 2: values from the recording -----------------------------------------------------------
def test_params_sampling_rate_must_be_the_recordings(rec, reference_engine):
    params = paths.params_path(rec)
    save_params(params, load_params(params).replace(sampling_rate=20000.0))  # the recording is 30 kHz
    with pytest.raises(ParamsError) as err:
        pipeline.run(rec, jobs=1, plots=False)
    msg = str(err.value)
    assert msg.startswith(f"{params}: sampling_rate is 20000") and "30000 Hz" in msg, msg
    assert not list(paths.work_dir(rec).glob("electrode*.npz"))


# --- item 3: resume keyed on the recording -------------------------------------------------------
def test_replaced_raw_files_are_extracted_again(rec, reference_engine, tmp_path):
    first = pipeline.run(rec, jobs=1, plots=False)
    assert first.skipped == []
    n5 = work_files.read_meta(paths.electrode_path(rec, 0)).n_samples
    assert pipeline.run(rec, jobs=1, plots=False).skipped == [0, 1, 2]  # unchanged: resumed

    longer = tmp_path / "longer"
    longer.mkdir()
    simulated_folder(longer, seed=5, n_channels=3, duration_s=10.0)
    for f in longer.iterdir():  # the full recording replaces the 5 s copy
        shutil.copy2(f, rec / f.name)
    again = pipeline.run(rec, jobs=1, plots=False)
    assert again.skipped == []
    meta = work_files.read_meta(paths.electrode_path(rec, 0))
    assert meta.n_samples == 2 * n5
    times = np.concatenate([u.times for u in unit_store.read_units(paths.h5_path(rec), waveforms=False)])
    assert times.max() > n5  # units from the whole 10 s


def test_touched_raw_file_redoes_the_extraction(rec, reference_engine):
    pipeline.extract(rec, load_params(paths.params_path(rec)))
    amp = rec / "amp-A-001.dat"
    os.utime(amp, ns=(amp.stat().st_atime_ns, amp.stat().st_mtime_ns + 10**9))
    assert pipeline.extract(rec, load_params(paths.params_path(rec))).skipped == []


def test_cluster_refuses_work_from_other_files(rec, reference_engine):
    pipeline.extract(rec, load_params(paths.params_path(rec)))
    amp = rec / "amp-A-000.dat"
    os.utime(amp, ns=(amp.stat().st_atime_ns, amp.stat().st_mtime_ns + 10**9))
    with pytest.raises(BlechrsError, match="other recording files"):
        pipeline.cluster(rec, jobs=1)


# --- item 4: one run per folder -------------------------------------------------------------------
HOLD = """
import sys, time
from blechrs.pipeline.lock import folder_lock
with folder_lock(sys.argv[1]):
    print("locked", flush=True)
    time.sleep(60)
"""


def _holder(directory: Path) -> subprocess.Popen:
    p = subprocess.Popen([sys.executable, "-c", HOLD, str(directory)], stdout=subprocess.PIPE, text=True,
                         env=os.environ | {"PYTHONPATH": PYTHON_PATH})
    assert p.stdout.readline().strip() == "locked"
    return p


def test_second_run_on_a_folder_stops_at_once(rec, reference_engine, capsys):
    holder = _holder(rec)
    try:
        t = time.perf_counter()
        with pytest.raises(FolderBusyError) as err:
            pipeline.run(rec, jobs=1, plots=False)
        assert time.perf_counter() - t < 2
        msg = str(err.value)
        assert str(rec) in msg and f"pid {holder.pid}" in msg and "\n" not in msg, msg
        for stage in (pipeline.extract, pipeline.cluster):
            with pytest.raises(FolderBusyError):
                stage(rec)
        from blechrs.cli.main import main as cli_main

        assert cli_main(["extract", str(rec), "-q"]) == 1
        out = capsys.readouterr().err.strip()
        assert out.count("\n") == 0 and f"pid {holder.pid}" in out, out
    finally:
        holder.kill()
        holder.wait()
    assert not list(paths.work_dir(rec).glob("electrode*.npz"))


def test_lock_of_a_killed_run_is_cleared(rec, reference_engine):
    holder = _holder(rec)
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    assert lock_path(rec).read_text().strip() == str(holder.pid)  # left behind, stale
    report = pipeline.run(rec, jobs=1, plots=False)
    assert report.skipped == [] and paths.h5_path(rec).exists()
    with folder_lock(rec):
        assert lock_path(rec).read_text().strip() == str(os.getpid())


def test_lock_is_reentrant_and_released(rec):
    with folder_lock(rec):
        with folder_lock(rec):
            pass
    with folder_lock(rec):  # released: a later holder gets it
        pass
    holder = _holder(rec)  # and another process too
    holder.kill()
    holder.wait()


# --- item 5: kills leave nothing behind -----------------------------------------------------------
def test_run_removes_temporary_files_of_killed_writers(rec, reference_engine):
    dead = _dead_pid()
    (rec / "blechrs_plots" / "electrode00").mkdir(parents=True, exist_ok=True)
    (rec / "QA_output").mkdir(exist_ok=True)
    (rec / "blechrs_work").mkdir(exist_ok=True)
    stale = [rec / f".rec.h5.{dead}.k2j4h5g6.h5",  # atomic_path: a full copy of the store
             rec / "blechrs_work" / f".electrode00.npz.{dead}.abc_1234.npz",
             rec / "blechrs_plots" / "electrode00" / f".waveforms.png.{dead}.a1b2c3d4.png",
             rec / "QA_output" / f".unit_qa.json.{dead}.zyx_w987.tmp",
             rec / "blechrs_work" / ".electrode01.npz.q1w2e3r4.npz"]  # no pid: judged by age
    kept = [rec / f".rec.params.{os.getpid()}.z9y8x7w6.tmp",  # a live writer's
            rec / "blechrs_work" / ".electrode02.npz.a1b2c3d4.npz",  # no pid, just written
            rec / ".hidden_by_the_user", rec / f".notes.{dead}.txt"]
    for p in stale + kept:
        p.write_bytes(b"x" * 10)
    old = time.time() - 3600
    os.utime(stale[-1], (old, old))
    pipeline.run(rec, jobs=1, plots=False)
    assert [p for p in stale if p.exists()] == []
    assert [p for p in kept if not p.exists()] == []


def test_killed_atomic_write_is_cleaned_by_the_next_run(rec, reference_engine):
    code = ("import sys, time\nfrom blechrs.io.atomic import atomic_path\n"
            "with atomic_path(sys.argv[1], suffix='.h5') as tmp:\n"
            "    tmp.write_bytes(b'partial')\n    print(tmp, flush=True)\n    time.sleep(60)\n")
    p = subprocess.Popen([sys.executable, "-c", code, str(paths.h5_path(rec))], stdout=subprocess.PIPE, text=True,
                         env=os.environ | {"PYTHONPATH": PYTHON_PATH})
    tmp = Path(p.stdout.readline().strip())
    p.kill()
    p.wait()
    assert tmp.exists() and tmp.name.startswith(".rec.h5.")
    pipeline.run(rec, jobs=1, plots=False)
    assert not tmp.exists()


def test_disk_full_names_the_file(tmp_path, capsys):
    target = tmp_path / "rec.h5"
    with pytest.raises(OSError) as err:
        with atomic.atomic_path(target, suffix=".h5"):
            raise OSError(errno.ENOSPC, "No space left on device")
    assert err.value.filename == str(target) and err.value.errno == errno.ENOSPC
    assert not list(tmp_path.iterdir())
    with pytest.raises(OSError, match="rec.params"):
        with atomic.atomic_path(tmp_path / "rec.params") as tmp:
            raise OSError(errno.ENOSPC, "No space left on device", str(tmp))


# --- the layout and the header, on every run (issue items 2 and 4) ------------------------------
def test_layout_row_naming_another_file_is_an_error(rec, reference_engine):
    lay = paths.layout_path(rec)
    lay.write_text(lay.read_text().replace("amp-A-001.dat,1,", "amp-A-007.dat,1,"))
    with pytest.raises(BlechrsError) as err:
        pipeline.run(rec, jobs=1, plots=False)
    msg = str(err.value)
    assert msg.startswith(f"{lay}: electrode_ind 1 names amp-A-007.dat") and "amp-A-001.dat" in msg, msg


def test_layout_sorting_nothing_is_an_error(rec, reference_engine):
    lay = paths.layout_path(rec)
    lines = lay.read_text().splitlines()
    lay.write_text("\n".join([lines[0]] + [ln.rsplit(",", 1)[0] + ",none" for ln in lines[1:]]) + "\n")
    with pytest.raises(BlechrsError, match="no electrode to sort"):
        pipeline.run(rec, jobs=1, plots=False)
    assert not paths.h5_path(rec).exists()


def test_header_without_amplifier_channels_is_an_error(tmp_path, reference_engine):
    import struct

    from blechrs.simulate import Simulation

    d = tmp_path / "rec"
    sim = Simulation(seed=1, n_channels=2, duration_s=0.2, n_digital_inputs=1)
    sim.write(d, "traditional", save_ground_truth=False)
    rhd = next(d.glob("*.rhd"))
    b = bytearray(rhd.read_bytes())
    for name in sim.channel_names:  # every amplifier channel disabled
        at = b.rfind(name.encode("utf-16-le")) + len(name.encode("utf-16-le"))
        b[at + 6:at + 8] = struct.pack("<h", 0)
    rhd.write_bytes(bytes(b))
    with pytest.raises(BlechrsError, match="no amplifier channel"):
        pipeline.run(d, jobs=1, plots=False)
    assert not paths.h5_path(d).exists()


def test_layout_row_without_a_car_group_is_an_error(rec, reference_engine):
    lay = paths.layout_path(rec)
    lay.write_text(lay.read_text().replace("amp-A-002.dat,2,002,A,A", "amp-A-002.dat,2,002,A,"))
    with pytest.raises(BlechrsError, match=rf"^{lay}: electrode_ind 2 has no CAR_group \(write none"):
        pipeline.run(rec, jobs=1, plots=False)


def test_layout_not_utf8_names_the_file(rec, reference_engine):
    lay = paths.layout_path(rec)
    lay.write_bytes(lay.read_bytes().replace(b"A-002", b"\xff\xfe-002"))
    with pytest.raises(BlechrsError, match=rf"^{lay}: not a UTF-8 text file"):
        pipeline.run(rec, jobs=1, plots=False)


def test_without_file_locks_the_pid_decides(rec, monkeypatch):
    import blechrs.pipeline.lock as lock

    def no_locks(fd, op):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(lock.fcntl, "flock", no_locks)
    lock_path(rec).parent.mkdir(exist_ok=True)
    lock_path(rec).write_text(f"{_dead_pid()}\n")  # a killed run's: stale, taken over
    with folder_lock(rec):
        assert lock_path(rec).read_text().strip() == str(os.getpid())
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        lock_path(rec).write_text(f"{holder.pid}\n")  # a running one's: busy
        with pytest.raises(FolderBusyError, match=f"pid {holder.pid}"):
            with folder_lock(rec):
                pass
    finally:
        holder.kill()
        holder.wait()


def test_cluster_without_the_raw_files_uses_the_work_files(rec, reference_engine):
    pipeline.extract(rec, load_params(paths.params_path(rec)))
    for f in rec.glob("amp-*.dat"):  # raw data moved away after extraction
        f.unlink()
    report = pipeline.cluster(rec, jobs=1)
    assert [e["electrode"] for e in report.electrodes] == [0, 1, 2]


def test_disk_full_under_a_library_error_names_the_file(tmp_path, monkeypatch):
    import collections

    target = tmp_path / "rec.h5"
    with pytest.raises(RuntimeError, match="HDF5 error"):  # room left: the library's error as it is
        with atomic.atomic_path(target, suffix=".h5"):
            raise RuntimeError("HDF5 error back trace ... H5Dwrite(): can't write data")
    usage = collections.namedtuple("usage", "total used free")
    monkeypatch.setattr(atomic.shutil, "disk_usage", lambda p: usage(10**9, 10**9, 4096))
    with pytest.raises(OSError) as err:
        with atomic.atomic_path(target, suffix=".h5"):
            raise RuntimeError("HDF5 error back trace ... H5Dwrite(): can't write data")
    assert err.value.errno == errno.ENOSPC and err.value.filename == str(target)
    assert not list(tmp_path.iterdir())
