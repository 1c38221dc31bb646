"""``run`` over many recordings: a broken one in the middle is retried exactly once after the
others and reported, the others are sorted, a folder another run holds is reported busy and not
retried."""

from __future__ import annotations

import subprocess
import sys

from blechrs.io import paths, unit_store
from blechrs.pipeline import batch
from support.sorting_reference import broken_batch


def test_a_broken_recording_is_retried_once_and_the_others_are_sorted(tmp_path, monkeypatch):
    folders = broken_batch(tmp_path)
    calls = []
    real_run = batch.run
    monkeypatch.setattr(batch, "run", lambda d, **kw: (calls.append(d.name), real_run(d, **kw))[1])
    events = []
    results = batch.run_batch(folders, on_event=lambda kind, r: events.append((kind, r.directory.name)),
                              jobs=2, plots=False)
    # In order, the broken one again after the others.
    assert calls == ["rec_a", "rec_b", "rec_c", "rec_b"]
    assert [(r.directory.name, r.status, r.attempts) for r in results] == [
        ("rec_a", "done", 1), ("rec_b", "failed", 2), ("rec_c", "done", 1)]
    assert ("failed", "rec_b") in events and events[-1] == ("failed", "rec_b")
    a, b, c = results
    assert "info.rhd" in b.reason and "\n" not in b.reason and b.units is None
    for r in (a, c):
        stored = unit_store.read_units(paths.h5_path(r.directory), waveforms=False)
        assert r.units == len(stored) > 0 and r.reason == ""
    assert not paths.h5_path(b.directory).exists()

    # Again: the sorted ones resume (nothing redone), the broken one fails again.
    again = batch.run_batch(folders, jobs=2, plots=False)
    assert [r.status for r in again] == ["resumed", "failed", "resumed"]


def test_a_folder_another_run_holds_is_busy_and_not_retried(tmp_path, monkeypatch):
    folders = broken_batch(tmp_path, broken=None)[:2]
    lock = paths.lock_path(folders[0])
    holder = subprocess.Popen([sys.executable, "-c", (
        "import fcntl, os, sys, time\n"
        f"fd = os.open({str(lock)!r}, os.O_RDWR | os.O_CREAT)\n"
        "fcntl.flock(fd, fcntl.LOCK_EX)\nos.write(fd, str(os.getpid()).encode())\n"
        "print('held', flush=True)\ntime.sleep(120)\n")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        calls = []
        real_run = batch.run
        monkeypatch.setattr(batch, "run", lambda d, **kw: (calls.append(d.name), real_run(d, **kw))[1])
        results = batch.run_batch(folders, jobs=1, plots=False)
    finally:
        holder.kill()
        holder.wait()
    assert calls == ["rec_a", "rec_b"]
    assert [(r.status, r.attempts) for r in results] == [("busy", 1), ("done", 1)]
    assert f"pid {holder.pid}" in results[0].reason
