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


def add_warnings(path: str | os.PathLike, lines: list[str], replace_prefix: str | None = None) -> None:
    """Add ``lines`` not already there to a warnings file (``QA_output/warnings.txt``; its "no
    warnings" line goes when there are some). Lines starting with ``replace_prefix`` are the
    earlier run's of the same check: dropped first."""
    path = Path(path)
    old = path.read_text().splitlines() if path.exists() else []
    kept = [x for x in old if x.strip() and x != "no warnings"
            and not (replace_prefix and x.startswith(replace_prefix))]
    new = kept + [x for x in lines if x not in kept]
    if new != old:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(path, "".join(x + "\n" for x in new) or "no warnings\n")


#: Columns of ``QA_output/autosort_rejected.csv`` (pipeline/store_units.py writes it).
AUTOSORT_REJECTED_COLUMNS = ("electrode", "solution", "clusters", "events", "kind", "reason")


def autosort_rejected_csv(rows: list[dict]) -> str:
    """QA_output/autosort_rejected.csv: one row per candidate auto-sort did not keep (its
    electrode, the solution and clusters it was, its events), the criterion it failed and why,
    quoted."""
    out = [",".join(AUTOSORT_REJECTED_COLUMNS)]
    for r in rows:
        reason = str(r["reason"]).replace('"', "'")
        out.append(f"{int(r['electrode'])},{int(r['solution'])},{r['clusters']},{int(r['events'])},"
                   f"{r.get('kind', '')},\"{reason}\"")
    return "\n".join(out) + "\n"


#: Columns of ``QA_output/reference_echoes.csv`` (pipeline/store_units.py writes it).
REFERENCE_ECHO_COLUMNS = ("electrode", "solution", "clusters", "spikes", "action", "parent_electrode",
                          "parent_clusters", "shared_fraction", "correlation", "scale", "own_wire_share")


def removed_reference_echoes(path: str | os.PathLike) -> set[tuple[int, int, str]]:
    """(electrode, solution, clusters) of the auto-sort units ``reference_echoes.csv`` says were
    removed (none if there is no such file, or it is not one of ours)."""
    try:
        lines = Path(path).read_text().splitlines()
    except OSError:
        return set()
    if not lines or tuple(lines[0].split(",")) != REFERENCE_ECHO_COLUMNS:
        return set()
    out = set()
    for line in lines[1:]:
        row = dict(zip(REFERENCE_ECHO_COLUMNS, line.split(",")))
        if row.get("action") == "removed":
            try:
                out.add((int(row["electrode"]), int(row["solution"]), row["clusters"]))
            except (KeyError, ValueError):
                continue
    return out
