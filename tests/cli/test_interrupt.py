"""Ctrl-C during a run: one line, exit code 130, no worker tracebacks, at any stage."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from support.sorting_reference import init_folder, simulated_folder


@pytest.mark.parametrize("after_s", [1.0, 2.0, 3.0, 4.5])
def test_ctrl_c_prints_one_line(tmp_path, after_s):
    d = tmp_path / "rec"
    d.mkdir()
    simulated_folder(d, seed=2, n_channels=16, duration_s=60.0)
    init_folder(d)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    proc = subprocess.Popen([sys.executable, "-m", "blechrs", "run", str(d), "-j", "2", "-q"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            start_new_session=True)
    time.sleep(after_s)
    if proc.poll() is not None:
        pytest.skip("the run finished before the interrupt")
    os.killpg(proc.pid, signal.SIGINT)  # a terminal sends Ctrl-C to the whole process group
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    assert err.strip().splitlines() == ["blechrs: interrupted"], err
