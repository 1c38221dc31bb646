"""Fuzz the Intan header reader: mutated headers must give a BlechrsError, never a crash.

Seeds: the headers blechrs.simulate writes (versions 1.0-3.0, with and without the optional
sections, traditional .rhd and info.rhd of both .dat layouts) and the real Intan files in
/work/shared/data/real/intan-format-fixtures-synthetic/. Each case stacks 1-4 mutations (bit
flips, random bytes, extreme integers and floats, truncation, inserted or deleted bytes), mostly
in the header, and is opened with ``blechrs.io.open_recording`` (then a few samples and the digital
inputs are read) in a worker subprocess with an address-space limit and a timeout.

Counted: ok, blechrs (a BlechrsError: the intended outcome of a bad header), other (any other
exception: a bug), crash (the worker died of a signal: abort, segfault, Rust panic-abort), hang
(no answer within the timeout). Every case that is not ok or blechrs is copied into ``--keep``.

    python benchmarks/fuzz_headers.py --n 20000 --seed 1 --keep /tmp/fuzz_failures

Exit code 1 when any case crashed, hung or raised something other than a BlechrsError.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import select
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REAL = Path("/work/shared/data/real/intan-format-fixtures-synthetic")
VERSIONS = [(1, 0), (1, 1), (1, 2), (1, 3), (1, 5), (2, 0), (3, 0)]
INTS = [0, 1, -1, 2, 0x7F, 0x80, 0xFF, 0x7FFF, 0x8000, 0xFFFF, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF]
FLOATS = [0.0, -1.0, 1e-30, 1e30, 3.4e38, float("nan"), float("inf"), float("-inf"), 1000.0, 30000.0]

# The worker: one path per stdin line, one JSON answer per stdout line.
WORKER = r"""
import json, sys, traceback, warnings
warnings.simplefilter("ignore")
from blechrs.errors import BlechrsError
from blechrs.io import open_recording
print("ready", flush=True)
for line in sys.stdin:
    path = line.rstrip("\n")
    try:
        rec = open_recording(path)
        if rec.n_channels and rec.n_samples:
            rec.read([0, rec.n_channels - 1], 0, min(rec.n_samples, 256))
        rec.digital_inputs
        out = {"kind": "ok"}
    except BlechrsError as e:
        out = {"kind": "blechrs", "msg": str(e)[:300]}
    except BaseException as e:
        out = {"kind": "other", "msg": f"{type(e).__name__}: {e}"[:300], "tb": traceback.format_exc()[-2000:]}
    print(json.dumps(out), flush=True)
"""


@dataclass
class Seed:
    """A valid recording: ``files`` (name -> bytes) to mutate, ``target`` the one mutated, the header's
    length in it, and ``links`` (name -> path) of unchanged data files beside it."""

    name: str
    files: dict[str, bytes]
    target: str
    header_len: int
    links: dict[str, Path]
    open_file: bool  # open the .rhd file itself (else the directory)


def simulated_seeds(workdir: Path) -> list[Seed]:
    from blechrs.simulate import Simulation, rhd_header

    seeds = []
    sim = Simulation(seed=7, n_channels=3, duration_s=0.07, n_digital_inputs=2)
    for version in VERSIONS:
        for extra in (False, True):
            temp = 1 if extra and version >= (1, 1) else 0
            d = workdir / f"sim_{version[0]}_{version[1]}_{int(extra)}"
            sim.write(d, "traditional", rhd_version=version, rhd_extra_sections=extra, rhd_temp_sensors=temp,
                      save_ground_truth=False)
            (rhd,) = sorted(d.glob("*.rhd"))
            n = len(rhd_header(sim, version, extra, temp_sensors=temp))
            seeds.append(Seed(f"rhd v{version[0]}.{version[1]}{' +sections' if extra else ''}",
                              {rhd.name: rhd.read_bytes()}, rhd.name, n, {}, True))
    for layout in ("one file per channel", "one file per signal type"):
        d = workdir / layout.replace(" ", "_")
        sim.write(d, layout, save_ground_truth=False)
        seeds.append(_folder_seed(f"info.rhd ({layout})", d))
    return seeds


def real_seeds() -> list[Seed]:
    if not REAL.is_dir():
        return []
    seeds = []
    for f in sorted(REAL.glob("*.rhd")):
        # The header ends before the first data block; 8 KB covers the 64-channel ones.
        seeds.append(Seed(f"real {f.name}", {f.name: f.read_bytes()}, f.name, min(8192, f.stat().st_size), {}, True))
    for d in sorted(p for p in REAL.iterdir() if p.is_dir()):
        seeds.append(_folder_seed(f"real {d.name}", d))
    return seeds


def _folder_seed(name: str, d: Path) -> Seed:
    info = (d / "info.rhd").read_bytes()
    links = {p.name: p for p in d.iterdir() if p.is_file() and p.name != "info.rhd"}
    return Seed(name, {"info.rhd": info}, "info.rhd", len(info), links, False)


# --- mutations -------------------------------------------------------------------------------------
def _offset(rng: random.Random, data: bytearray, header_len: int, width: int = 1) -> int:
    hi = header_len if rng.random() < 0.9 else len(data)  # mostly the header
    return rng.randrange(0, max(1, min(hi, len(data)) - width + 1))


def mutate(rng: random.Random, data: bytes, header_len: int) -> tuple[bytes, list[str]]:
    b = bytearray(data)
    done = []
    for _ in range(rng.choice((1, 1, 2, 3, 4))):
        if not b:
            break
        kind = rng.choice(("bit", "byte", "int16", "int32", "float", "truncate", "insert", "delete"))
        if kind == "bit":
            i = _offset(rng, b, header_len)
            b[i] ^= 1 << rng.randrange(8)
        elif kind == "byte":
            i = _offset(rng, b, header_len)
            b[i] = rng.randrange(256)
        elif kind in ("int16", "int32"):
            w = 2 if kind == "int16" else 4
            i = _offset(rng, b, header_len, w)
            i -= i % 2
            b[i:i + w] = (rng.choice(INTS) & (0xFFFF if w == 2 else 0xFFFFFFFF)).to_bytes(w, "little")
        elif kind == "float":
            i = _offset(rng, b, header_len, 4)
            b[i:i + 4] = struct.pack("<f", rng.choice(FLOATS))
        elif kind == "truncate":
            i = _offset(rng, b, header_len)
            del b[i:]
        elif kind == "insert":
            i = _offset(rng, b, header_len)
            b[i:i] = bytes(rng.randrange(256) for _ in range(rng.choice((1, 2, 4, 7, 64))))
        else:
            i = _offset(rng, b, header_len)
            del b[i:i + rng.choice((1, 2, 4, 7, 64))]
        done.append(f"{kind}@{i}")
    return bytes(b), done


# --- the worker process ----------------------------------------------------------------------------
class Worker:
    """A long-lived Python that opens recordings, limited to ``mem_mb`` of address space."""

    def __init__(self, mem_mb: int, python_path: str):
        limit = mem_mb * 2**20

        def limits() -> None:
            try:
                resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
            except (ValueError, OSError):  # macOS does not enforce RLIMIT_AS
                resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))

        env = os.environ | {"PYTHONPATH": python_path, "RAYON_NUM_THREADS": "1", "OMP_NUM_THREADS": "1",
                            "OPENBLAS_NUM_THREADS": "1", "MALLOC_ARENA_MAX": "2"}
        self.p = subprocess.Popen([sys.executable, "-c", WORKER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.DEVNULL, text=True, env=env, preexec_fn=limits)
        if self._line(60.0) != "ready":
            raise RuntimeError("the fuzz worker did not start")

    def _line(self, timeout: float) -> str | None:
        ready, _, _ = select.select([self.p.stdout], [], [], timeout)
        if not ready:
            return None
        return self.p.stdout.readline().strip()

    def open(self, path: Path, timeout: float) -> dict:
        try:
            self.p.stdin.write(f"{path}\n")
            self.p.stdin.flush()
        except BrokenPipeError:
            pass
        line = self._line(timeout)
        if line is None and self.p.poll() is None:
            self.stop()
            return {"kind": "hang", "msg": f"no answer in {timeout:g} s"}
        if not line:
            code = self.p.wait()
            return {"kind": "crash", "msg": f"worker died, exit code {code}" + (f" (signal {-code})" if code < 0 else "")}
        return json.loads(line)

    def stop(self) -> None:
        if self.p.poll() is None:
            self.p.kill()
        self.p.wait()

    @property
    def alive(self) -> bool:
        return self.p.poll() is None


def blechrs_folder() -> str:
    """Where blechrs (with its compiled engine) is imported from: the installed package, else this
    checkout's python/ (a build in place)."""
    try:
        import blechrs._native  # noqa: F401

        import blechrs
        return str(Path(blechrs.__file__).resolve().parents[1])
    except ImportError:
        return str(Path(__file__).resolve().parents[1] / "python")


def fuzz(n: int, seed: int, timeout: float, mem_mb: int, keep: Path | None, verbose: bool) -> dict:
    python_path = os.pathsep.join([blechrs_folder(), os.environ.get("PYTHONPATH", "")])
    sys.path.insert(0, python_path.split(os.pathsep)[0])
    counts = {k: 0 for k in ("ok", "blechrs", "other", "crash", "hang")}
    per_seed: dict[str, dict[str, int]] = {}
    failures = []
    with tempfile.TemporaryDirectory(prefix="blechrs_fuzz_") as tmp:
        tmp = Path(tmp)
        seeds = simulated_seeds(tmp / "seeds") + real_seeds()
        worker = Worker(mem_mb, python_path)
        t0 = time.perf_counter()
        try:
            for i in range(n):
                rng = random.Random(f"{seed}:{i}")
                s = seeds[i % len(seeds)]
                data, how = mutate(rng, s.files[s.target], s.header_len)
                case = tmp / f"case{i}"
                case.mkdir()
                (case / s.target).write_bytes(data)
                for name, src in s.links.items():
                    (case / name).symlink_to(src)
                result = worker.open(case / s.target if s.open_file else case, timeout)
                counts[result["kind"]] += 1
                per_seed.setdefault(s.name, {}).setdefault(result["kind"], 0)
                per_seed[s.name][result["kind"]] += 1
                if result["kind"] not in ("ok", "blechrs"):
                    failures.append({"case": i, "seed": s.name, "mutations": how, **result})
                    if keep is not None:
                        shutil.copytree(case, keep / f"case{i}", symlinks=True, dirs_exist_ok=True)
                    if verbose:
                        print(f"case {i} ({s.name}, {' '.join(how)}): {result['kind']}: {result.get('msg')}",
                              file=sys.stderr)
                shutil.rmtree(case)
                if not worker.alive:
                    worker = Worker(mem_mb, python_path)
        finally:
            worker.stop()
        seconds = time.perf_counter() - t0
    return {"n": n, "seed": seed, "seconds": round(seconds, 1), "counts": counts, "seeds": len(seeds),
            "per_seed": per_seed, "failures": failures}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=1000, help="mutated cases (default 1000)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=10.0, help="seconds per case before it counts as a hang")
    ap.add_argument("--mem-mb", type=int, default=2048, help="address-space limit of the worker (MB)")
    ap.add_argument("--keep", type=Path, help="copy failing cases here")
    ap.add_argument("--json", action="store_true", help="print the full result as JSON")
    ap.add_argument("-v", "--verbose", action="store_true", help="print each failure as it happens")
    args = ap.parse_args(argv)
    if args.keep is not None:
        args.keep.mkdir(parents=True, exist_ok=True)
    res = fuzz(args.n, args.seed, args.timeout, args.mem_mb, args.keep, args.verbose)
    if args.json:
        print(json.dumps(res, indent=1))
    else:
        c = res["counts"]
        print(f"{res['n']} cases from {res['seeds']} seeds in {res['seconds']} s: {c['ok']} ok, {c['blechrs']} "
              f"BlechrsError, {c['other']} other exceptions, {c['crash']} crashes, {c['hang']} hangs")
        for f in res["failures"][:20]:
            print(f"  case {f['case']} ({f['seed']}, {' '.join(f['mutations'])}): {f['kind']}: {f.get('msg')}")
    return 1 if res["counts"]["other"] or res["counts"]["crash"] or res["counts"]["hang"] else 0


if __name__ == "__main__":
    sys.exit(main())
