"""Resume: which electrodes' work is still valid.

A work file records the fingerprint of each stage's parameters (``SortParams.fingerprint``); a
stage is redone when its fingerprint, or an earlier stage's, no longer matches.
"""

from __future__ import annotations

from blechrs.io import paths, work_files
from blechrs.params import SortParams


def work_state(directory, electrode: int, params: SortParams) -> str:
    """'none', 'extracted', 'autosort-stale' (clustered, but auto-sort's parameters changed) or
    'clustered': how far the electrode's work file is valid for the current parameters."""
    path = paths.electrode_path(directory, electrode)
    if not path.exists():
        return "none"
    try:
        meta = work_files.read_meta(path)
    except Exception:  # an unreadable work file is redone
        return "none"
    if meta.fp_extract != params.fingerprint("extract"):
        return "none"
    if meta.stage == "clustered" and meta.fp_cluster == params.fingerprint("cluster"):
        if meta.fp_autosort == params.fingerprint("autosort"):
            return "clustered"
        return "autosort-stale"
    return "extracted"
