"""Resume: which electrodes' work is still valid.

A work file records the fingerprint of each stage's parameters (``SortParams.fingerprint``) and the
identity of the recording it was extracted from (``Recording.identity``: the raw files' names,
sizes and modification times, and the header); a stage is redone when its fingerprint, or an
earlier stage's, or the recording no longer matches.
"""

from __future__ import annotations

import os
import warnings

from blechrs.errors import RecordingError
from blechrs.io import paths, work_files
from blechrs.io.recording import open_recording
from blechrs.params import SortParams

def recording_identity(directory: str | os.PathLike) -> str | None:
    """The identity of the recording in ``directory``, None when it cannot be opened (the stages
    after extraction need only the work files: raw data moved away after extraction may still be
    clustered). Its warnings are said by the stage that reads the samples."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return open_recording(directory).identity()
    except RecordingError:
        return None


def work_state(directory, electrode: int, params: SortParams, recording: str | None = None) -> str:
    """'none', 'extracted', 'autosort-stale' (clustered, but auto-sort's parameters changed) or
    'clustered': how far the electrode's work file is valid for the current parameters and, when
    ``recording`` (its identity) is given, for the recording as it is now."""
    path = paths.electrode_path(directory, electrode)
    if not path.exists():
        return "none"
    try:
        meta = work_files.read_meta(path)
    except Exception:  # an unreadable work file is redone
        return "none"
    if meta.fp_extract != params.fingerprint("extract"):
        return "none"
    if recording is not None and meta.recording != recording:
        return "none"
    if meta.stage == "clustered" and meta.fp_cluster == params.cluster_fingerprint(meta.n_events):
        if meta.fp_autosort == params.fingerprint("autosort"):
            return "clustered"
        return "autosort-stale"
    return "extracted"
