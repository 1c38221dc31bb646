"""The trial table ``DIR/trial_info_frame.csv``: blech_clust's columns (so its tools read it), plus
``truncated``, ``valid_first_bin``, ``valid_end_bin``; laser columns only with a laser input."""

from __future__ import annotations

import csv
import math
import os
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from blechrs.errors import TrialsError
from blechrs.io.atomic import atomic_path

#: Columns every trial table has.
REQUIRED_COLUMNS = ("dig_in_name_taste", "taste", "start_taste", "end_taste", "abs_trial_num", "taste_rel_trial_num")


def _cell(v: Any) -> str:
    if isinstance(v, (bool, np.bool_)):
        return "True" if v else "False"
    if isinstance(v, (float, np.floating)):
        return "" if math.isnan(v) else repr(float(v))  # repr: the shortest text that reads back exactly
    return str(v)


def write_trial_table(path: str | os.PathLike, columns: Mapping[str, np.ndarray]) -> None:
    """One row per trial, columns in the given order, written atomically."""
    n = len(next(iter(columns.values()))) if columns else 0
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(columns)
        for i in range(n):
            w.writerow([_cell(c[i]) for c in columns.values()])


def read_trial_table(path: str | os.PathLike) -> list[dict[str, str]]:
    """The rows of a trial table as text, checked for the columns every trial table has."""
    path = Path(path)
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    if rows and any(k not in rows[0] for k in REQUIRED_COLUMNS):
        raise TrialsError(f"{path}: not a trial table (needs columns {', '.join(REQUIRED_COLUMNS)})")
    return rows
