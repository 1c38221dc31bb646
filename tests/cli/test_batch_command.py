"""``blechrs run`` over many folders, as a person types it: a quoted glob pattern or the shell's
expansion, the summary table, the exit code, and ``--scheduler`` with a Dask scheduler's address
(the same stores as the local run)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import pytest
from distributed import LocalCluster

from blechrs.cli.main import main
from blechrs.io import paths
from support.outputs_reference import store_contents, work_contents
from support.sorting_reference import broken_batch, simulated_folder


_RESULTS = {"done", "resumed", "failed", "busy", "interrupted", "not"}


def _rows(out: str) -> dict[str, list[str]]:
    """The table's rows by folder name (a long reason folds onto lines of its own, which may
    start with a path such as rec_b/info.rhd)."""
    rows = (line.split() for line in out.splitlines())
    return {r[0]: r for r in rows if len(r) > 2 and re.fullmatch(r"rec_\w+", r[0]) and r[1] in _RESULTS}


@pytest.fixture()
def scheduler():
    """A Dask scheduler with two worker processes, started in another working directory than the
    command's (as on a cluster): the tasks must get absolute paths."""
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        yield cluster.scheduler_address


def test_a_quoted_glob_sorts_a_batch_then_a_scheduler_redoes_it_identically(tmp_path, capsys, monkeypatch,
                                                                            scheduler):
    broken_batch(tmp_path)
    (tmp_path / "rec_notes.txt").write_text("matched by the pattern, not a folder")
    monkeypatch.chdir(tmp_path)
    code = main(["run", "rec_*", "-q", "--no-plots", "-j", "2"])
    out, err = capsys.readouterr()
    assert code == 1
    rows = _rows(out)
    assert sorted(rows) == ["rec_a", "rec_b", "rec_c"]
    assert rows["rec_a"][1:3] == ["done", "1"] and int(rows["rec_a"][3]) > 0
    assert rows["rec_b"][1:4] == ["failed", "2", "-"] and "info.rhd" in out
    assert rows["rec_c"][1:3] == ["done", "1"] and int(rows["rec_c"][3]) > 0
    assert "2 of 3 recordings sorted" in out
    assert "rec_b: failed:" in err and "retried once after the others" in err
    assert "Traceback" not in out + err
    local = {n: (store_contents(paths.h5_path(n)), work_contents(paths.work_dir(n))) for n in ("rec_a", "rec_c")}

    assert main(["run", "rec_[ac]", "-q", "--no-plots"]) == 0  # every one sorted (resumed): exit 0
    out, _ = capsys.readouterr()
    assert "2 of 2 recordings sorted" in out and [r[1] for r in _rows(out).values()] == ["resumed", "resumed"]

    assert main(["run", "rec_a", "rec_c", "-q", "--no-plots", "--force", "--scheduler", scheduler]) == 0
    out, err = capsys.readouterr()
    assert f"per-electrode work on the Dask cluster at {scheduler}" in err
    assert [r[1] for r in _rows(out).values()] == ["done", "done"]
    for name, (store, work) in local.items():
        assert store_contents(paths.h5_path(name)) == store and work_contents(paths.work_dir(name)) == work

    assert main(["run", "nothing_*", "-q"]) == 1
    assert "nothing_*: no recording folder matches" in capsys.readouterr().err


def test_shell_expanded_folders_through_the_command(tmp_path):
    folders = broken_batch(tmp_path)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    t0 = time.time()
    proc = subprocess.run([sys.executable, "-m", "blechrs", "run", *map(str, folders), "--no-plots", "-q",
                           "-j", "2"], capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 1, proc.stderr
    assert "2 of 3 recordings sorted" in proc.stdout
    assert [r[1:3] for r in _rows(proc.stdout).values()] == [
        ["done", "1"], ["failed", "2"], ["done", "1"]]
    for d in (folders[0], folders[2]):
        assert paths.h5_path(d).stat().st_mtime >= t0 - 1


def test_ctrl_c_during_a_batch_on_a_local_dask_cluster(tmp_path):
    """One line, exit code 130, the table so far, no worker's traceback or Dask warning, and no
    process left (the cluster's workers are in the command's process group, as in a terminal)."""
    folders = []
    for seed in (1, 2):
        d = tmp_path / f"rec_{seed}"
        d.mkdir()
        simulated_folder(d, seed=seed, n_channels=16, duration_s=40.0)
        folders.append(d)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    proc = subprocess.Popen([sys.executable, "-m", "blechrs", "run", *map(str, folders), "-j", "2", "-q",
                             "--scheduler", "local"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env, start_new_session=True)
    # Interrupted while the cluster's workers run rec_1's clustering tasks (its extraction wrote
    # the work files): they are cancelled and the workers stopped mid-task.
    deadline = time.time() + 300
    while not list(paths.work_dir(folders[0]).glob("electrode*.npz")) and time.time() < deadline:
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.1)
    time.sleep(1.0)
    assert proc.poll() is None, "the batch finished before the interrupt: make the recordings longer"
    os.killpg(proc.pid, signal.SIGINT)  # a terminal sends Ctrl-C to the whole process group
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    assert "distributed." not in err, err  # Dask's warnings as its workers are stopped: not the person's
    assert err.strip().splitlines()[-1] == "blechrs: interrupted", err
    assert "batch (interrupted)" in out and "interrupted" in _rows(out)["rec_1"]
    deadline = time.time() + 15
    while time.time() < deadline:
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.2)
    else:
        pytest.fail("worker processes outlived the interrupted batch")
