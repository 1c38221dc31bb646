"""A folder's outputs read back with plain h5py and numpy (not blechrs), to compare two runs
exactly: every dataset and attribute of the unit store, every array of every work file."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np


def _attr(value):
    if isinstance(value, h5py.Empty):
        return ("empty", value.dtype.str)
    a = np.asarray(value)
    return (a.dtype.str, a.shape, repr(a.tolist()) if a.dtype == object else a.tobytes())


def store_contents(h5: Path) -> dict:
    """Every group's and dataset's attributes and every dataset's dtype, shape, chunks and bytes."""
    out: dict = {}
    with h5py.File(h5, "r") as f:
        out["/ attrs"] = {k: _attr(v) for k, v in f.attrs.items()}

        def visit(name, obj):
            out[f"{name} attrs"] = {k: _attr(v) for k, v in obj.attrs.items()}
            if isinstance(obj, h5py.Dataset):
                data = np.asarray(obj[()])
                out[name] = (obj.dtype.str, obj.shape, obj.chunks, data.tobytes())

        f.visititems(visit)
    return out


def work_contents(work_dir: Path) -> dict:
    """Every array (dtype, shape, bytes) of every ``.npz`` under ``work_dir``."""
    out: dict = {}
    for path in sorted(Path(work_dir).glob("*.npz")):
        with np.load(path, allow_pickle=False) as z:
            for key in z.files:
                a = z[key]
                out[f"{path.name}:{key}"] = (a.dtype.str, a.shape, a.tobytes())
    return out
