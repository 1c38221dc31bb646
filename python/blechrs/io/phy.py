"""The phy folder: the files phy's template-gui (phylib's ``TemplateModel``) opens, and the files
it saves after a person's curation.

Written by ``blechrs export phy`` (every file atomically):

- ``params.py``: ``dat_path = []`` (no raw file: waveforms come from the subset below),
  ``n_channels_dat``, ``dtype``, ``offset``, ``sample_rate``, ``hp_filtered``;
- ``spike_times.npy`` (int64 samples, increasing), ``spike_templates.npy`` and
  ``spike_clusters.npy`` (int32), ``amplitudes.npy`` (float32);
- ``templates.npy`` (n_templates x samples x channels_per_template, float32) with
  ``template_ind.npy`` (each template's channels), ``channel_map.npy`` (each channel's electrode),
  ``channel_positions.npy``, ``whitening_mat.npy`` and ``whitening_mat_inv.npy`` (identity);
- ``pc_features.npy`` (n_spikes x PCs x channels_per_template) with ``pc_feature_ind.npy``;
- ``similar_templates.npy``;
- ``_phy_spikes_subset.waveforms.npy`` / ``.spikes.npy`` / ``.channels.npy``: the waveforms phy
  shows, so it needs no raw file;
- ``cluster_group.tsv`` (good / mua) and one ``cluster_<field>.tsv`` per extra column phy shows;
- ``blechrs_export.json``: what blechrs needs back on import and phy ignores.

Read back by ``blechrs import phy``: ``spike_times.npy``, ``spike_templates.npy``,
``template_ind.npy``, ``channel_map.npy`` (which electrode each spike came from),
``spike_clusters.npy`` and ``cluster_group.tsv`` (or a legacy ``cluster_groups.csv``) as phy saved them.
"""

from __future__ import annotations

import ast
import csv
import hashlib
import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from blechrs.errors import PhyError
from blechrs.io.atomic import atomic_path, write_text_atomic

EXPORT_RECORD = "blechrs_export.json"
CURATION_FILES = ("spike_clusters.npy", "cluster_group.tsv")
#: phy's own cache folder inside the phy folder (stale after a new export).
PHY_CACHE = ".phy"


@dataclass
class PhyFolder:
    """The content of a phy folder, as arrays (names are phy's file names without ``.npy``)."""

    arrays: dict[str, np.ndarray]
    params: dict[str, Any]
    """params.py's variables."""
    groups: dict[int, str]
    """cluster_group.tsv: cluster id -> good / mua / noise."""
    columns: dict[str, dict[int, Any]] = field(default_factory=dict)
    """Extra cluster columns phy shows, one ``cluster_<field>.tsv`` each."""
    record: dict[str, Any] = field(default_factory=dict)
    """blechrs_export.json."""


def save_npy(path: Path, array: np.ndarray) -> None:
    with atomic_path(path, suffix=".npy") as tmp, open(tmp, "wb") as fh:
        np.save(fh, np.ascontiguousarray(array))


def params_text(params: dict[str, Any]) -> str:
    """params.py as phy reads it (Python assignments of literals)."""
    return "".join(f"{k} = {v!r}\n" for k, v in params.items())


def read_params_py(path: Path) -> dict[str, Any]:
    """The variables of a params.py, without executing it (literals only)."""
    try:
        tree = ast.parse(path.read_text())
    except (OSError, SyntaxError, ValueError) as e:
        raise PhyError(f"{path}: cannot read phy's params.py ({e})") from None
    out: dict[str, Any] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            try:
                out[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:
                continue
    return out


def tsv_text(field_name: str, values: dict[int, Any]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, delimiter="\t", lineterminator="\n")
    w.writerow(["cluster_id", field_name])
    for cluster in sorted(values):
        w.writerow([int(cluster), values[cluster]])
    return buf.getvalue()


def _sha256(path: Path) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else None


def curated_files(folder: Path) -> list[str]:
    """The curation files (spike_clusters.npy, cluster_group.tsv) phy changed since blechrs wrote
    them (blechrs_export.json keeps their checksums); a folder blechrs did not write counts as
    curated when it has them."""
    try:
        written = json.loads((folder / EXPORT_RECORD).read_text()).get("written", {})
    except (OSError, ValueError):
        written = {}
    return [name for name in CURATION_FILES
            if (folder / name).exists() and _sha256(folder / name) != written.get(name)]


def write_phy_folder(folder: str | os.PathLike, content: PhyFolder, force: bool = False) -> Path:
    """Write a phy folder. A folder whose curation files phy changed is refused unless ``force``
    (a person's work is saved there); phy's cache (``.phy/``) is removed, it describes the old export."""
    folder = Path(folder)
    changed = curated_files(folder) if folder.is_dir() else []
    if changed and not force:
        raise PhyError(f"{folder}: holds a phy curation ({', '.join(changed)} changed in phy); import it with "
                       "`blechrs import phy`, or export again with --force to replace it")
    folder.mkdir(parents=True, exist_ok=True)
    cache = folder / PHY_CACHE
    if cache.is_dir():
        for p in sorted(cache.rglob("*"), reverse=True):
            p.rmdir() if p.is_dir() else p.unlink()
        cache.rmdir()
    for name, array in content.arrays.items():
        save_npy(folder / f"{name}.npy", array)
    write_text_atomic(folder / "params.py", params_text(content.params))
    write_text_atomic(folder / "cluster_group.tsv", tsv_text("group", content.groups))
    for name, values in content.columns.items():
        write_text_atomic(folder / f"cluster_{name}.tsv", tsv_text(name, values))
    record = dict(content.record, written={name: _sha256(folder / name) for name in CURATION_FILES})
    write_text_atomic(folder / EXPORT_RECORD, json.dumps(record, indent=1, sort_keys=True) + "\n")
    return folder


def read_groups(folder: Path) -> dict[int, str]:
    """cluster_group.tsv (phy 2), else cluster_groups.csv (phy 1): cluster id -> label."""
    for name, delimiter in (("cluster_group.tsv", "\t"), ("cluster_groups.csv", "\t")):
        path = folder / name
        if path.exists():
            break
    else:
        raise PhyError(f"{folder}: no cluster_group.tsv (label the clusters good, mua or noise in phy and save)")
    out: dict[int, str] = {}
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh, delimiter=delimiter))
    header = [h.strip() for h in rows[0]] if rows else []
    if "cluster_id" not in header or "group" not in header:
        raise PhyError(f"{path}: expected the columns cluster_id and group")
    ci, gi = header.index("cluster_id"), header.index("group")
    for number, row in enumerate(rows[1:], start=2):
        if not any(c.strip() for c in row):
            continue
        try:
            cluster = int(row[ci])
        except (ValueError, IndexError):
            raise PhyError(f"{path}: line {number}: {row!r} is not a cluster id and a group") from None
        out[cluster] = row[gi].strip().lower() if gi < len(row) else ""
    return out


def _load(folder: Path, name: str) -> np.ndarray:
    path = folder / f"{name}.npy"
    try:
        return np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise PhyError(f"{folder}: no {name}.npy (not a phy folder written by `blechrs export phy`?)") from None
    except (OSError, ValueError) as e:
        raise PhyError(f"{path}: unreadable ({e})") from None


def read_phy_folder(folder: str | os.PathLike) -> PhyFolder:
    """What ``import phy`` needs of a phy folder: the spikes, the template -> channel -> electrode
    map, phy's spike_clusters and cluster groups, params.py and blechrs's export record."""
    folder = Path(folder)
    if not folder.is_dir():
        raise PhyError(f"{folder}: no such phy folder")
    arrays = {name: _load(folder, name) for name in
              ("spike_times", "spike_templates", "spike_clusters", "template_ind", "channel_map")}
    for name in ("spike_times", "spike_templates", "spike_clusters"):
        arrays[name] = arrays[name].reshape(-1)
    if not np.issubdtype(arrays["spike_clusters"].dtype, np.integer):
        raise PhyError(f"{folder}/spike_clusters.npy: not integers ({arrays['spike_clusters'].dtype})")
    n = len(arrays["spike_times"])
    bad = [k for k in ("spike_templates", "spike_clusters") if len(arrays[k]) != n]
    if bad:
        raise PhyError(f"{folder}: {', '.join(f'{k}.npy' for k in bad)} and spike_times.npy differ in length")
    record_path = folder / EXPORT_RECORD
    record = json.loads(record_path.read_text()) if record_path.exists() else {}
    return PhyFolder(arrays=arrays, params=read_params_py(folder / "params.py"), groups=read_groups(folder),
                     record=record)
