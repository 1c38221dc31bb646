"""Issue 17, item 5: a killed run leaves no worker process behind (two workers and the resource
tracker stayed for minutes, ~240 MB)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import blechrs

POOL = """
import json, time
from multiprocessing import resource_tracker
from blechrs.pipeline.executors import start_pool
pool = start_pool(2)
while len(pool._processes) < 2 or not all(p.is_alive() for p in pool._processes.values()):
    time.sleep(0.05)
pool.submit(time.sleep, 0).result()
resource_tracker.ensure_running()
print(json.dumps(sorted(pool._processes) + [resource_tracker._resource_tracker._pid]), flush=True)
time.sleep(120)
"""


def _running(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie (an orphan's zombie waits for init to reap it)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads /proc")
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_workers_exit_when_their_parent_is_killed(sig):
    env = os.environ | {"PYTHONPATH": str(Path(blechrs.__file__).parents[1])}
    parent = subprocess.Popen([sys.executable, "-c", POOL], stdout=subprocess.PIPE, text=True, env=env)
    try:
        workers = json.loads(parent.stdout.readline())
        assert len(workers) == 3 and all(_running(p) for p in workers)
    finally:
        parent.send_signal(sig)
        parent.wait()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(_running(p) for p in workers):
        time.sleep(0.1)
    left = [p for p in workers if _running(p)]
    for p in left:  # do not leave them to the next test
        os.kill(p, signal.SIGKILL)
    assert not left, f"workers or resource tracker {left} outlived their killed parent"
