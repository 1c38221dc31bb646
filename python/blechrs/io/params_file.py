"""The ``<name>.params`` file: every parameter under its blech_clust key, as one JSON object."""

from __future__ import annotations

import json
import os
from pathlib import Path

from blechrs.errors import ParamsError
from blechrs.io.atomic import write_text_atomic
from blechrs.params import SortParams


def load_params(path: str | os.PathLike) -> SortParams:
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ParamsError(f"{path}: not valid JSON ({e.msg} at line {e.lineno})") from None
    except UnicodeDecodeError:
        raise ParamsError(f"{path}: not a UTF-8 text file") from None
    if not isinstance(data, dict):
        raise ParamsError(f"{path}: expected a JSON object of parameters")
    return SortParams.from_flat(data, source=str(path))


def params_text(params: SortParams) -> str:
    """The file's text (init writes it together with the layout and .info, all or nothing)."""
    return json.dumps(params.to_flat(), indent=2) + "\n"


def save_params(path: str | os.PathLike, params: SortParams) -> None:
    write_text_atomic(path, params_text(params))
