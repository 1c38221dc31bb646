#!/usr/bin/env python
"""Prove that a change (a restructuring, a refactor) leaves every sort unchanged: run a build of
blechrs on fixed recordings, dump a digest of every output, and compare two dumps.

    # dump a build: PY is the python of an environment with that build of blechrs installed
    python benchmarks/identity.py run --python /work/venv-new/bin/python --out /work/dumps/new
    # compare it with the baseline dump; exit 1 on any non-PNG difference
    python benchmarks/identity.py compare /work/dumps/base /work/dumps/new

    python benchmarks/identity.py run --python PY --out DIR --sets demo,s2_60 --jobs 2 [--replace]
    python benchmarks/identity.py run --python PY --out DIR --set c32_1h=FOLDER --sets c32_1h  # a long one

Run it with any python that has numpy and h5py (the build's own will do): it needs nothing else
and never imports blechrs. The build under test runs in its own process: ``PY -m blechrs run
FOLDER --jobs N`` (``PY -m blechrs.cli`` where the package has no ``__main__``, as at afd7594).

Sets (``--sets``, default all): ``demo`` (the recording ``blechrs demo`` sorts: blechrs.simulate,
seed 0, 32 channels, 60 s, one file per channel; written once by PY into $BENCH_DATA), ``s2_60``,
``s1_60``, ``s1_600`` (the public ground-truth sets of ../shared/bench/make_gt.py, their ``intan/``
folder, in $BENCH_DATA; make them with the README's commands, ``--formats intan`` is enough) and
the Intan files of ../shared/data/real/intan-format-fixtures-synthetic (``fix_*``; all six run).

``run`` writes into a new or empty DIR (``--replace`` empties it). For each set a fresh folder
DIR/runs/<set> holds symlinks to the recording's raw files (blechrs reads through them: the
outputs are identical to a run on copies; its outputs are regular files beside them); the default
run (pictures, arrays, unit QA) runs in a fixed environment (ENV below); DIR/runs/<set>.log keeps
its output, and DIR/<set>.json the digest: every HDF5 group, dataset (dtype, shape, chunks and
filters, sha256 of the bytes, compound tables included) and attribute; every array of every .npz
(dtype, shape, sha256; small string arrays, e.g. the work files' JSON ``__meta__``, also as text);
the sha256 of every other output file; PNGs in a section of their own; the sha256 of the raw
inputs; the exit code and wall time (recorded, never compared).

``compare A B``: per set, how many arrays, attributes and files matched and every difference
(path and what differs, with the differing JSON keys or lines, and for arrays the number of
differing elements and the largest difference when both run folders are still there). PNG
differences are listed apart and do not fail the comparison; nor does a set dumped on one side only
(``run --sets`` a few), which is reported as not compared.

Normalised or excluded: only the folder lock ``.blechrs.lock`` (added since: it holds the pid
of the run). Two runs of the same build (afd7594, /work/dumps/base and base2, different run-folder
paths) gave identical digests on every set, PNGs included, so NORMALISE is empty; NORMALISE and
EXCLUDE are the place for any output that varies from run to run (a timestamp, an elapsed time,
an absolute path, a pid), each with its reason. Not byte-compared, by
design: the ``.h5`` files themselves (HDF5 object headers record their creation time, so the
bytes differ between identical runs: they are compared by their content, as above), the run log
(stage times) and the wall time. PyTables' blosc-compressed datasets (``/spike_trains/*/
spike_array``) cannot be decoded by plain h5py: their stored chunks are hashed instead (still
exact, but a different blosc/lz4 version in the two environments would show as a difference).
"""

from __future__ import annotations

import argparse
import difflib
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import h5py
import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("BLECHRS_SHARED", REPO.parent / "shared"))
BENCH_DATA = Path(os.environ.get("BENCH_DATA", REPO.parent / "bench_data"))
FIXTURES = SHARED / "data" / "real" / "intan-format-fixtures-synthetic"

#: set name -> where its raw files are (a folder: every file in it; a file: that file alone).
SETS = {
    "demo": BENCH_DATA / "blechrs_demo_s0_c32_d60",
    "s2_60": BENCH_DATA / "gt_s2_d60_c32_sep1.3" / "intan",
    "s1_60": BENCH_DATA / "gt_s1_d60_c32" / "intan",
    "s1_600": BENCH_DATA / "gt_s1_d600_c32" / "intan",
    "fix_fpc": FIXTURES / "intan_fpc_test_231117_052630",
    "fix_fps": FIXTURES / "intan_fps_test_231117_052500",
    "fix_rhd15_digio": FIXTURES / "rhd_v1.5_32ch_digio_temp_load-rhd-notebook-python.rhd",
    "fix_rhd15": FIXTURES / "rhd_v1.5_32ch_load-rhd-notebook-r.rhd",
    "fix_rhd20_2ch": FIXTURES / "rhd_v2.0_2ch_IntanToNWB_example.rhd",
    "fix_rhd30_64ch": FIXTURES / "rhd_v3.0_64ch_load-rhd-notebook-python.rhd",
}
MAKE_GT = {
    "s2_60": "--seed 2 --duration 60 --min-snr-ratio 1.3 --name gt_s2_d60_c32_sep1.3",
    "s1_60": "--seed 1 --duration 60 --name gt_s1_d60_c32",
    "s1_600": "--seed 1 --duration 600 --name gt_s1_d600_c32",
}
DEMO_SCRIPT = ("import sys; from blechrs.simulate import Simulation; "
               "Simulation(seed=0, n_channels=32, duration_s=60.0).write(sys.argv[1], layout='one file per channel')")

#: The fixed environment of every run (the thread counts as benchmarks/pipeline.py sets them; a
#: fixed hash seed, time zone and headless matplotlib backend; PYTHONPATH dropped so that PY
#: imports its own installed blechrs).
ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
       "PYTHONHASHSEED": "0", "TZ": "UTC", "MPLBACKEND": "Agg"}
ENV_DROP = ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP")

#: Text outputs whose run-folder path is replaced by <RUN> before hashing (glob patterns; none needed).
NORMALISE: tuple[str, ...] = ()
#: Outputs left out of the digest (glob pattern relative to the run folder -> reason; none needed).
EXCLUDE: dict[str, str] = {".blechrs.lock": "the folder lock holds the pid of the run that took it"}

HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
TEXT_LIMIT = 65536  # string arrays up to this size are kept as text in the dump


# ------------------------------------------------------------------------------------------------
# Digests


def sha256_bytes(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def sha256_file(path: Path, replace: tuple[bytes, bytes] | None = None) -> str:
    if replace is not None:
        return sha256_bytes(path.read_bytes().replace(*replace))
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def dtype_name(dt: np.dtype) -> str:
    return str(dt.descr) if dt.names else dt.str


def array_record(a: np.ndarray) -> dict:
    """dtype, shape and sha256 of an array's bytes (C order); small string arrays also as text."""
    a = np.asarray(a)
    if a.dtype.hasobject:
        data = repr(a.tolist()).encode()
    else:
        data = np.ascontiguousarray(a).tobytes()
    rec = {"dtype": dtype_name(a.dtype), "shape": list(a.shape), "sha256": sha256_bytes(data)}
    if a.dtype.kind in "SU" and a.size == 1 and a.nbytes <= TEXT_LIMIT:
        v = a.reshape(())[()]
        rec["text"] = v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)
    return rec


def attr_record(value) -> dict:
    """An HDF5 attribute: dtype, shape, sha256 and a short repr to show when it differs."""
    if isinstance(value, h5py.Empty):
        return {"dtype": str(value.dtype), "shape": None, "sha256": None, "value": "Empty"}
    rec = array_record(np.asarray(value))
    rec.pop("text", None)
    rec["value"] = repr(value)[:300]
    return rec


def filters(ds: h5py.Dataset) -> list:
    """The dataset's filter pipeline (id, flags, options, name of each filter)."""
    plist = ds.id.get_create_plist()
    return [repr(plist.get_filter(i)) for i in range(plist.get_nfilters())]


def raw_chunks_sha256(ds: h5py.Dataset) -> str:
    """sha256 of a chunked dataset's stored (still compressed) chunks, with their offsets."""
    h = hashlib.sha256()
    for i in range(ds.id.get_num_chunks()):
        offset = ds.id.get_chunk_info(i).chunk_offset
        mask, data = ds.id.read_direct_chunk(offset)
        h.update(repr((offset, mask, len(data))).encode() + data)
    return h.hexdigest()


def dataset_record(ds: h5py.Dataset) -> dict:
    """An HDF5 dataset's array record plus its chunking and filters."""
    try:
        rec = array_record(ds[()])
    except OSError:  # a filter h5py lacks (PyTables' blosc): hash the stored chunks instead
        rec = {"dtype": dtype_name(ds.dtype), "shape": list(ds.shape), "sha256": raw_chunks_sha256(ds),
               "hashed": "stored chunks"}
    rec["storage"] = {"chunks": list(ds.chunks) if ds.chunks else None, "filters": filters(ds)}
    return rec


def h5_items(path: Path, rel: str) -> dict:
    """Every group, dataset, link and attribute of an HDF5 file as ``rel:/path[@attr]`` -> record."""
    out: dict[str, dict] = {}

    def walk(group: h5py.Group, prefix: str) -> None:
        out[f"{rel}:{prefix or '/'}"] = {"kind": "group"}
        add_attrs(group, prefix or "/")
        for name in group:
            link = group.get(name, getlink=True)
            p = f"{prefix}/{name}"
            if isinstance(link, (h5py.SoftLink, h5py.ExternalLink)):
                out[f"{rel}:{p}"] = {"kind": "link", "target": repr(link.path)}
                continue
            obj = group[name]
            if isinstance(obj, h5py.Group):
                walk(obj, p)
            elif isinstance(obj, h5py.Dataset):
                out[f"{rel}:{p}"] = {"kind": "array", **dataset_record(obj)}
                add_attrs(obj, p)
            else:
                out[f"{rel}:{p}"] = {"kind": "datatype", "dtype": str(obj.dtype)}

    def add_attrs(obj, p: str) -> None:
        for k in obj.attrs:
            out[f"{rel}:{p}@{k}"] = {"kind": "attr", **attr_record(obj.attrs[k])}

    with h5py.File(path, "r") as f:
        walk(f, "")
    return out


def npz_items(path: Path, rel: str) -> dict:
    """Every array of an .npz as ``rel:key`` -> record (a member that needs pickle: its raw bytes)."""
    out: dict[str, dict] = {}
    with np.load(path, allow_pickle=False) as d:
        for k in d.files:
            try:
                out[f"{rel}:{k}"] = {"kind": "array", **array_record(d[k])}
            except ValueError:
                with zipfile.ZipFile(path) as z:
                    out[f"{rel}:{k}"] = {"kind": "array", "pickled": True,
                                         "sha256": sha256_bytes(z.read(k + ".npy"))}
    return out


def matches(rel: str, patterns) -> bool:
    return any(Path(rel).match(p) for p in patterns)


def file_kind(path: Path) -> str:
    with open(path, "rb") as fh:
        head = fh.read(8)
    if head == HDF5_MAGIC:
        return "h5"
    if head == PNG_MAGIC:
        return "png"
    if path.suffix == ".npz":
        return "npz"
    return "file"


def digest_folder(run: Path) -> tuple[dict, dict, dict]:
    """(items, pngs, inputs) of a run folder: outputs are its regular files, inputs its symlinks."""
    items: dict[str, dict] = {}
    pngs: dict[str, str] = {}
    inputs: dict[str, str] = {}
    marker = (str(run.resolve()).encode(), b"<RUN>")
    for path in sorted(run.rglob("*")):
        rel = path.relative_to(run).as_posix()
        if path.is_symlink():
            inputs[rel] = sha256_file(path)
        elif not path.is_file() or matches(rel, EXCLUDE):
            continue
        elif (kind := file_kind(path)) == "png":
            pngs[rel] = sha256_file(path)
        elif kind == "h5":
            items.update(h5_items(path, rel))
        elif kind == "npz":
            items.update(npz_items(path, rel))
        else:
            norm = matches(rel, NORMALISE)
            items[rel] = {"kind": "file", "sha256": sha256_file(path, marker if norm else None),
                          "size": path.stat().st_size, "normalised": norm}
    return items, pngs, inputs


# ------------------------------------------------------------------------------------------------
# Running a build


def blechrs_command(py: str) -> list[str]:
    """``PY -m blechrs`` if the package has a __main__, else ``PY -m blechrs.cli``."""
    probe = "import importlib.util, sys; sys.exit(0 if importlib.util.find_spec('blechrs.__main__') else 1)"
    ok = subprocess.run([py, "-c", probe], env=run_env(), capture_output=True).returncode == 0
    return [py, "-m", "blechrs" if ok else "blechrs.cli"]


def build_info(py: str) -> dict:
    code = ("import json, sys, blechrs, numpy; print(json.dumps({'blechrs': blechrs.__file__, "
            "'version': getattr(blechrs, '__version__', None), 'numpy': numpy.__version__, "
            "'python': sys.version.split()[0]}))")
    res = subprocess.run([py, "-c", code], env=run_env(), capture_output=True, text=True)
    return json.loads(res.stdout) if res.returncode == 0 else {"error": res.stderr.strip()[-500:]}


def run_env() -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ENV_DROP}
    env.update(ENV)
    return env


def ensure_demo(py: str, target: Path) -> None:
    """Write the demo recording once (atomically: a temp folder renamed)."""
    if target.exists():
        return
    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    print(f"writing the demo recording into {target} ...", flush=True)
    subprocess.run([py, "-c", DEMO_SCRIPT, str(tmp)], env=run_env(), check=True)
    tmp.rename(target)


def check_sources(names: list[str]) -> None:
    missing = [n for n in names if n != "demo" and not SETS[n].exists()]
    if missing:
        hints = [f"  {n}: {SETS[n]}" + (f"\n    python {SHARED}/bench/make_gt.py {MAKE_GT[n]} --formats intan "
                                          f"--out {BENCH_DATA}" if n in MAKE_GT else "") for n in missing]
        sys.exit("missing recordings (BENCH_DATA / BLECHRS_SHARED):\n" + "\n".join(hints))


def fresh_run_folder(source: Path, run: Path) -> None:
    """A new folder of symlinks to the recording's raw files."""
    if run.exists():
        shutil.rmtree(run)
    run.mkdir(parents=True)
    for f in sorted(source.iterdir()) if source.is_dir() else [source]:
        if f.is_file():
            (run / f.name).symlink_to(f.resolve())


def prepare_out(out: Path, replace: bool) -> None:
    """An empty dump folder: an existing dump is kept unless --replace (never mix two builds)."""
    if out.exists() and any(out.iterdir()):
        if not replace:
            sys.exit(f"{out}: not empty (a dump is there); --replace empties it")
        for p in out.iterdir():
            shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()
    (out / "runs").mkdir(parents=True, exist_ok=True)


def run_set(name: str, cmd: list[str], out: Path, jobs: int, info: dict) -> dict:
    run = out / "runs" / name
    fresh_run_folder(SETS[name], run)
    argv = cmd + ["run", str(run), "--jobs", str(jobs)]
    t0 = time.perf_counter()
    with open(out / "runs" / f"{name}.log", "w") as log:
        code = subprocess.run(argv, env=run_env(), cwd=out / "runs", stdout=log, stderr=subprocess.STDOUT).returncode
    wall = time.perf_counter() - t0
    text = (out / "runs" / f"{name}.log").read_text(errors="replace")
    timings = [line for line in text.splitlines() if line.startswith("time:")]
    items, pngs, inputs = digest_folder(run)
    return {"set": name, "source": str(SETS[name]), "command": argv, "env": ENV, "build": info,
            "returncode": code, "wall_s": round(wall, 2), "timings": timings[-1] if timings else None,
            "error": None if code == 0 else text.strip().splitlines()[-1:],
            "inputs": inputs, "items": items, "png": pngs}


def cmd_run(args) -> int:
    for spec in args.set:  # a recording of one's own, e.g. a long simulated one (benchmarks/pipeline.py)
        name, _, folder = spec.partition("=")
        if not name or not folder:
            sys.exit(f"--set {spec!r}: expected NAME=FOLDER")
        SETS[name] = Path(folder).resolve()
    names = list(SETS) if args.sets == "all" else args.sets.split(",")
    unknown = [n for n in names if n not in SETS]
    if unknown:
        sys.exit(f"unknown set(s) {', '.join(unknown)}; known: {', '.join(SETS)}")
    check_sources(names)
    if "demo" in names:
        ensure_demo(args.python, SETS["demo"])
    out = args.out.resolve()
    prepare_out(out, args.replace)
    cmd, info = blechrs_command(args.python), build_info(args.python)
    print(f"build: {info}; command: {' '.join(cmd)}", flush=True)
    t0 = time.perf_counter()
    for name in names:
        dump = run_set(name, cmd, out, args.jobs, info)
        (out / f"{name}.json").write_text(json.dumps(dump, indent=1, sort_keys=True) + "\n")
        status = "ok" if dump["returncode"] == 0 else f"EXIT {dump['returncode']}: {dump['error']}"
        print(f"{name}: {dump['wall_s']:.1f} s, {len(dump['items'])} items, {len(dump['png'])} PNGs, {status}",
              flush=True)
    print(f"all sets: {time.perf_counter() - t0:.1f} s; dumps in {out}")
    return 0


# ------------------------------------------------------------------------------------------------
# Comparing two dumps


def json_diff(a, b, path: str = "") -> list[str]:
    """The key paths at which two JSON values differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for k in sorted(set(a) | set(b), key=str)
                for d in (json_diff(a.get(k), b.get(k), f"{path}.{k}") if k in a and k in b
                          else [f"{path}.{k}: only in {'A' if k in a else 'B'}"])]
    if isinstance(a, list) and isinstance(b, list):
        length = [] if len(a) == len(b) else [f"{path}: length {len(a)} != {len(b)}"]
        return length + [d for i, (x, y) in enumerate(zip(a, b)) for d in json_diff(x, y, f"{path}[{i}]")]
    return [] if a == b else [f"{path or '.'}: {json.dumps(a)[:120]} != {json.dumps(b)[:120]}"]


def text_diff(a: str, b: str, limit: int = 8) -> list[str]:
    try:
        return json_diff(json.loads(a), json.loads(b))[:limit]
    except ValueError:
        lines = [line for line in difflib.unified_diff(a.splitlines(), b.splitlines(), "A", "B", n=0, lineterm="")
                 if not line.startswith(("---", "+++", "@@"))]
        return [line[:160] for line in lines[:limit]]


def load_array(run: Path, key: str) -> np.ndarray | None:
    """The array a dump key names, read back from a run folder (None if it is gone)."""
    rel, _, inner = key.partition(":")
    path = run / rel
    if not path.exists() or "@" in inner:
        return None
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as d:
            return d[inner] if inner in d.files else None
    with h5py.File(path, "r") as f:
        try:
            return f[inner][()] if inner in f else None
        except OSError:  # a filter h5py lacks
            return None


def array_detail(a: np.ndarray | None, b: np.ndarray | None) -> str:
    """How many elements of two same-shaped arrays differ, and by how much at most."""
    if a is None or b is None or a.shape != b.shape or a.dtype != b.dtype:
        return ""
    if a.dtype.names:
        return "; fields " + ", ".join(n for n in a.dtype.names if a[n].tobytes() != b[n].tobytes())
    if a.dtype.kind not in "biuf":
        return ""
    diff = a != b
    if a.dtype.kind == "f":
        diff &= ~(np.isnan(a) & np.isnan(b))
    n = int(diff.sum())
    big = np.max(np.abs(a[diff].astype(np.float64) - b[diff].astype(np.float64))) if n else 0.0
    return f"; {n} of {a.size} elements differ, max |A-B| {big:.6g}"


def item_diff(key: str, a: dict, b: dict, runs: tuple[Path, Path]) -> str:
    """One line saying how two records of the same item differ."""
    fields = [f for f in ("kind", "dtype", "shape", "storage", "target", "sha256") if a.get(f) != b.get(f)]
    what = ", ".join(f"{f} {a.get(f)} != {b.get(f)}" if f != "sha256" else "content" for f in fields)
    if "text" in a and "text" in b:
        what += "".join(f"\n      {d}" for d in text_diff(a["text"], b["text"]))
    elif a.get("kind") == "attr":
        what += f": {a.get('value')} != {b.get('value')}"
    elif a.get("kind") == "file" and all((r / key).exists() for r in runs):
        ta, tb = ((r / key).read_text(errors="replace") for r in runs)
        what += "".join(f"\n      {d}" for d in text_diff(ta, tb))
    elif a.get("kind") == "array":
        what += array_detail(load_array(runs[0], key), load_array(runs[1], key))
    return what


def compare_set(name: str, a: dict, b: dict, runs: tuple[Path, Path]) -> tuple[list[str], list[str], str]:
    """(differences, PNG differences, counts line) of one set's two dumps."""
    diffs = [f"{f}: {a.get(f)} != {b.get(f)}" for f in ("returncode",) if a.get(f) != b.get(f)]
    diffs += [f"input {k}: differs or missing" for k in sorted(set(a["inputs"]) | set(b["inputs"]))
              if a["inputs"].get(k) != b["inputs"].get(k)]
    ia, ib = a["items"], b["items"]
    for k in sorted(set(ia) | set(ib)):
        if k not in ia or k not in ib:
            diffs.append(f"{k}: only in {'A' if k in ia else 'B'}")
        elif ia[k] != ib[k]:
            diffs.append(f"{k}: {item_diff(k, ia[k], ib[k], runs)}")
    pa, pb = a["png"], b["png"]
    png_diffs = [f"{k}: {'only in A' if k not in pb else 'only in B' if k not in pa else 'bytes'}"
                 for k in sorted(set(pa) | set(pb)) if pa.get(k) != pb.get(k)]
    kinds = [v["kind"] for k, v in ia.items() if k in ib]
    counts = (f"{kinds.count('array')} arrays, {kinds.count('attr')} attrs, {kinds.count('file')} files, "
              f"{len(set(pa) & set(pb))} PNGs compared; wall {a.get('wall_s')} s vs {b.get('wall_s')} s")
    return diffs, png_diffs, counts


def cmd_compare(args) -> int:
    a_dir, b_dir = args.a.resolve(), args.b.resolve()
    names = sorted({p.stem for p in a_dir.glob("*.json")} | {p.stem for p in b_dir.glob("*.json")})
    failed, walls = False, [0.0, 0.0]
    for name in names:
        pa, pb = a_dir / f"{name}.json", b_dir / f"{name}.json"
        if not (pa.exists() and pb.exists()):
            print(f"{name}: not compared, only in {'A' if pa.exists() else 'B'}")
            continue
        runs = (a_dir / "runs" / name, b_dir / "runs" / name)
        a, b = json.loads(pa.read_text()), json.loads(pb.read_text())
        walls = [walls[0] + a["wall_s"], walls[1] + b["wall_s"]]
        diffs, png_diffs, counts = compare_set(name, a, b, runs)
        print(f"{name}: {'IDENTICAL' if not diffs else f'{len(diffs)} DIFFERENCES'} ({counts})"
              + (f"; {len(png_diffs)} PNGs differ" if png_diffs else ""))
        for d in diffs:
            print(f"  {d}")
        for d in png_diffs:
            print(f"  png {d}")
        failed |= bool(diffs)
    print(f"{'identical (PNGs aside)' if not failed else 'DIFFERENT'}; wall time of the sets: "
          f"A {walls[0]:.1f} s, B {walls[1]:.1f} s")
    return 1 if failed else 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="run a build on every set and dump its outputs")
    r.add_argument("--python", required=True, help="the python of the build under test")
    r.add_argument("--out", type=Path, required=True, help="folder for the dumps and run folders")
    r.add_argument("--sets", default="all", help=f"comma list of {', '.join(SETS)} (default: all)")
    r.add_argument("--set", action="append", default=[], metavar="NAME=FOLDER",
                   help="also a set of one's own: a folder holding only a recording's raw files (repeatable; "
                        "name it in --sets)")
    r.add_argument("--jobs", type=int, default=2)
    r.add_argument("--replace", action="store_true", help="empty --out first if it holds a dump")
    r.set_defaults(func=cmd_run)
    c = sub.add_parser("compare", help="compare two dump folders")
    c.add_argument("a", type=Path)
    c.add_argument("b", type=Path)
    c.set_defaults(func=cmd_compare)
    args = ap.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
