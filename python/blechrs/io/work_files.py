"""Per-electrode work files ``DIR/blechrs_work/electrodeNN.npz``: an :class:`ElectrodeWork` as
arrays (waveforms, times, features, ``labels_<N>`` per clustering solution, ``auto_labels``) and
its other values as JSON under ``__meta__`` (``solution_kinds`` {"N": kind}, ``auto_units`` the
records of auto-sort's units, ``autosort_rejected`` what it did not keep and why), written
atomically."""

from __future__ import annotations

import json
import os
import struct
import zipfile
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from blechrs.errors import WorkFileError
from blechrs.mapped import mapping, release
from blechrs.io.atomic import atomic_path
from blechrs.model import ElectrodeWork, Solution, Unit

#: The arrays of a work file besides the solutions' ``labels_<N>`` and ``auto_labels``, in order.
_ARRAYS = ("times", "times_subsample", "polarity", "waveforms", "noise", "features", "clustered")
#: Rows of a memory-mapped array written at a time.
_WRITE_ROWS = 8192
#: The values every work file records, with their type.
_VALUES = {"electrode": int, "threshold": float, "mad_val": float, "n_edge_dropped": int, "dead": bool,
           "n_samples": int, "n_events": int, "sampling_rate": float, "stage": str}
#: The values a work file records once a stage has made them (None: not recorded).
_OPTIONAL = {"cutoff_sample": int, "fp_extract": str, "recording": str, "status": str, "fp_cluster": str,
             "fp_autosort": str}


def to_file_contents(work: ElectrodeWork) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The arrays and the JSON values of a work file."""
    arrays = {k: getattr(work, k) for k in _ARRAYS if getattr(work, k) is not None}
    for number, sol in work.solutions.items():
        arrays[f"labels_{number}"] = np.asarray(sol.labels, dtype=np.int64)
    meta: dict[str, Any] = {k: kind(getattr(work, k)) for k, kind in _VALUES.items()}
    meta.update({k: kind(getattr(work, k)) for k, kind in _OPTIONAL.items() if getattr(work, k) is not None})
    if work.stage == "clustered":
        meta["solution_kinds"] = {str(number): sol.kind for number, sol in work.solutions.items()}
    if work.units is not None:
        arrays["auto_labels"] = work.auto_labels()
        meta["auto_units"] = [u.record() for u in work.units]
    if work.rejected is not None:
        meta["autosort_rejected"] = list(work.rejected)
    return arrays, meta


def from_file_contents(arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> ElectrodeWork:
    """An :class:`ElectrodeWork` back from the arrays (all or some) and JSON values of a work file."""
    electrode = int(meta["electrode"])
    work = ElectrodeWork(electrode, **{k: arrays[k] for k in _ARRAYS if k in arrays})
    for k, kind in (_VALUES | _OPTIONAL).items():
        if k in meta and k != "electrode" and meta[k] is not None:
            setattr(work, k, kind(meta[k]))
    if "n_events" not in meta and work.times is not None:
        work.n_events = len(work.times)
    kinds = meta.get("solution_kinds", {})
    for key in arrays:
        if key.startswith("labels_"):
            number = int(key.split("_")[1])
            work.solutions[number] = Solution(number, arrays[key], kinds.get(str(number), "gmm"))
    if "auto_units" in meta:
        auto = arrays.get("auto_labels")
        work.units = [Unit.from_record(r, electrode, None if auto is None else np.flatnonzero(auto == i))
                      for i, r in enumerate(meta["auto_units"])]
    if "autosort_rejected" in meta:
        work.rejected = [dict(r) for r in meta["autosort_rejected"]]
    return work


def save_electrode(path: str | os.PathLike, work: ElectrodeWork) -> None:
    """Write one electrode's work file atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays, meta = to_file_contents(work)
    arrays["__meta__"] = np.array(json.dumps(meta, sort_keys=True, default=_json_default))
    with atomic_path(path, suffix=".npz") as tmp, open(tmp, "wb") as fh:
        _savez(fh, arrays)


def _savez(fh, arrays: dict[str, np.ndarray]) -> None:
    """``np.savez(fh, **arrays)`` (the same file), a memory-mapped array written a chunk of rows
    at a time with its pages given back (core/rows.py): saving a long electrode does not read all
    its waveforms into memory."""
    zf = zipfile.ZipFile(fh, mode="w", compression=zipfile.ZIP_STORED, allowZip64=True)
    try:
        for key, value in arrays.items():
            with zf.open(key + ".npy", "w", force_zip64=True) as out:
                if mapping(value) is None or not value.flags.c_contiguous:
                    np.lib.format.write_array(out, np.asanyarray(value), allow_pickle=False)
                    continue
                np.lib.format.write_array_header_1_0(out, np.lib.format.header_data_from_array_1_0(value))
                for a in range(0, len(value), _WRITE_ROWS):
                    out.write(np.ascontiguousarray(value[a:a + _WRITE_ROWS]).tobytes())
                    release(value)
    except BaseException:
        # Interrupted (Ctrl-C, disk full) with a member open: closing would raise over the real
        # error. The temporary file is discarded (io/atomic.py), so it is left unclosed.
        zf.fp = None
        raise
    zf.close()


def _mapped_member(path: Path, name: str) -> np.ndarray | None:
    """A read-only memory map of the array ``name`` of an .npz written uncompressed (as
    ``save_electrode`` does), or None when it is compressed."""
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo(name + ".npy")
    if info.compress_type != zipfile.ZIP_STORED:
        return None
    with open(path, "rb") as fh:
        fh.seek(info.header_offset)
        local = fh.read(30)  # the member's local header: its name and extra field follow
        if local[:4] != b"PK\x03\x04":
            raise ValueError(f"member {name} has no local header")
        n_name, n_extra = struct.unpack("<HH", local[26:30])
        fh.seek(info.header_offset + 30 + n_name + n_extra)
        version = np.lib.format.read_magic(fh)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = read_header(fh)
        offset = fh.tell()
    if dtype.hasobject or int(np.prod(shape)) == 0:
        return None
    return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape, order="F" if fortran else "C")


def load_electrode(path: str | os.PathLike, arrays: Iterable[str] | None = None,
                   map_waveforms: bool | int = False) -> ElectrodeWork:
    """Read a work file back; ``arrays``: read only these arrays (those present), e.g.
    ("times", "waveforms"); solutions need their ``labels_<N>``, units' indices ``auto_labels``.
    ``map_waveforms``: the waveforms memory-mapped (read-only) instead of read, for electrodes too
    long to hold (core/rows.py reads them a chunk at a time and gives the pages back): True, or
    a number of events (``max_refine_events``) the electrode must have more of."""
    path = Path(path)
    wanted_arrays = None if arrays is None else set(arrays)
    try:
        with np.load(path, allow_pickle=False) as z:
            wanted = [k for k in z.files if k != "__meta__" and (wanted_arrays is None or k in wanted_arrays)]
            meta = json.loads(str(z["__meta__"])) if "__meta__" in z.files else {}
            long = (map_waveforms is True or (map_waveforms is not False
                                              and int(meta.get("n_events", 0)) > int(map_waveforms)))
            mapped = _mapped_member(path, "waveforms") if long and "waveforms" in wanted else None
            data: dict[str, Any] = {k: mapped if k == "waveforms" and mapped is not None else z[k] for k in wanted}
        return from_file_contents(data, meta)
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise WorkFileError(f"{path}: unreadable work file ({e})") from None


def read_meta(path: Path) -> ElectrodeWork:
    """A work file's values (stage, fingerprints, counts), without its arrays."""
    with np.load(path, allow_pickle=False) as z:
        return from_file_contents({}, json.loads(str(z["__meta__"])))


#: dtype of each extraction file (``paths.SPILL_FILES``), raw little-endian.
_SPILL_DTYPES = {"times": "<i8", "times_subsample": "<f8", "polarity": "i1", "waveforms": "<f4"}


def read_spilled_events(prefix: str | os.PathLike, n_events: int, waveform_len: int) -> dict[str, np.ndarray]:
    """The events the engine wrote to ``<prefix>.<what>`` (``kernels.extract_electrodes``'
    ``spill``): times, times_subsample, polarity and waveforms (n x waveform_len)."""
    out = {}
    for what, dtype in _SPILL_DTYPES.items():
        path = f"{prefix}.{what}"
        a = np.fromfile(path, dtype=dtype)
        per = waveform_len if what == "waveforms" else 1
        if a.size != n_events * per:
            raise WorkFileError(f"{path}: {a.size} values, expected {n_events * per}")
        out[what] = a.reshape(n_events, waveform_len) if what == "waveforms" else a
    return out


def remove_spilled_events(prefix: str | os.PathLike) -> None:
    for what in _SPILL_DTYPES:
        Path(f"{prefix}.{what}").unlink(missing_ok=True)


def _json_default(value):
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"cannot store {type(value).__name__} in a work file")
