"""Per-electrode work files ``DIR/blechrs_work/electrodeNN.npz``: waveforms, times, features, every
clustering solution and the electrode's metadata (JSON under ``__meta__``), written atomically."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from blechrs.errors import WorkFileError
from blechrs.io.atomic import atomic_path



def save_electrode(path: str | os.PathLike, data: dict[str, Any]) -> None:
    """Write one electrode's work file atomically. Values: numpy arrays, numbers, strings, or
    JSON-able dicts/lists (stored as JSON text under their key)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, np.ndarray] = {}
    meta: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, np.ndarray):
            arrays[key] = value
        else:
            meta[key] = value
    arrays["__meta__"] = np.array(json.dumps(meta, sort_keys=True, default=_json_default))
    with atomic_path(path, suffix=".npz") as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **arrays)


def load_electrode(path: str | os.PathLike, arrays: Iterable[str] | None = None) -> dict[str, Any]:
    """Read a work file back into a dict (arrays plus the scalar/JSON values); ``arrays``: read
    only these arrays (those present), e.g. ("times", "waveforms")."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            wanted = [k for k in z.files if k != "__meta__" and (arrays is None or k in arrays)]
            data: dict[str, Any] = {k: z[k] for k in wanted}
            meta = json.loads(str(z["__meta__"])) if "__meta__" in z.files else {}
    except (OSError, ValueError, KeyError) as e:
        raise WorkFileError(f"{path}: unreadable work file ({e})") from None
    data.update(meta)
    return data


def read_meta(path: Path) -> dict[str, Any]:
    """The scalar part of a work file, without loading its arrays."""
    with np.load(path, allow_pickle=False) as z:
        return json.loads(str(z["__meta__"]))


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
