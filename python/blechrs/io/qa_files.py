"""Files of the quality checks under ``DIR/QA_output/`` (blech_clust's folder): the raw QA's
``channel_corr.npz`` and the unit QA's ``unit_qa.json``; their text reports are plain text."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from blechrs.io.atomic import atomic_path, write_text_atomic


def write_channel_corr(path: str | os.PathLike, **arrays: np.ndarray) -> None:
    """``channel_corr.npz``: the named arrays, written atomically."""
    with atomic_path(path, suffix=".npz") as tmp:
        np.savez(tmp, **arrays)


def jsonable(v: Any) -> Any:
    """``v`` with numpy values as Python ones, NaN and infinity as null (JSON has neither): for
    every JSON blechrs writes (QA files, the metrics in work files)."""
    if isinstance(v, dict):
        return {k: jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [jsonable(x) for x in v]
    if isinstance(v, np.ndarray):
        return jsonable(v.tolist())
    if isinstance(v, (np.floating, float)):
        f = float(v)
        return None if math.isnan(f) or math.isinf(f) else f
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.bool_):
        return bool(v)
    if isinstance(v, Path):
        return str(v)
    return v


def write_json(path: str | os.PathLike, doc: Any) -> None:
    """``doc`` as JSON (one space indents: the similarity matrix stays readable), atomically."""
    write_text_atomic(path, json.dumps(jsonable(doc), indent=1) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    """A JSON file written by :func:`write_json`; None if it is missing or unreadable."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
