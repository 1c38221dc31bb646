"""Issue 17: the header fuzzer (benchmarks/fuzz_headers.py) in a short run: 200 mutated headers of
every version blechrs.simulate writes and of the real Intan files, each opened in a worker process
with a memory limit and a timeout; none may crash, hang or raise anything but a BlechrsError.
Run the script itself for longer (``--n 50000 --seed S --keep DIR``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import blechrs

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "fuzz_headers.py"


def test_200_mutated_headers_fail_cleanly():
    env = os.environ | {"PYTHONPATH": str(Path(blechrs.__file__).parents[1])}
    r = subprocess.run([sys.executable, str(SCRIPT), "--n", "200", "--seed", "17", "--json"], capture_output=True,
                       text=True, env=env, timeout=600)
    res = json.loads(r.stdout)
    c = res["counts"]
    assert sum(c.values()) == 200 and res["seeds"] >= 16
    assert c["blechrs"] > 0  # the mutations do break headers
    assert (c["crash"], c["hang"], c["other"]) == (0, 0, 0), res["failures"][:5]
    assert r.returncode == 0
