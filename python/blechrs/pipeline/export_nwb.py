"""``blechrs export nwb``: a sorted recording folder as one NWB file (:mod:`blechrs.interop.nwb`).

Gathers what the conversion needs: the unit store's units, the electrode layout (channel names
from the recording when its files are there), the ``.info`` file's ``subject``, ``session`` and
``device`` fields, and the trials, built from the recording's digital inputs and the ``.info``
file's tastes as ``blechrs arrays`` builds its trial table (or read from ``trial_info_frame.csv``
when the raw files are gone). Writes ``DIR/<name>.nwb`` (or ``out``).

An existing file is replaced only when this export wrote it and nobody changed it since (its
size and modification time, recorded in ``blechrs_work/nwb_exports.json``), so re-exporting after
a new sort just works; any other file (one you added to with pynwb, or someone else's) needs
``force``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from blechrs.errors import NwbError, RecordingError
from blechrs.interop import nwb
from blechrs.io import layout, open_recording, paths, unit_store
from blechrs.io.atomic import write_text_atomic
from blechrs.io.info import load_info
from blechrs.io.trial_table import read_trial_table
from blechrs.params import SortParams
from blechrs.pipeline.folder import load_params
from blechrs.pipeline.lock import holds_folder_lock
from blechrs.trials.settings import trial_config
from blechrs.trials.table import TrialTable, build_trials


@dataclass
class NwbExport:
    """What :func:`export_nwb` wrote."""

    path: Path
    units: int
    spikes: int
    electrodes: int
    trials: int
    raw: bool
    notes: list[str] = field(default_factory=list)


def trial_columns(table: TrialTable) -> dict[str, np.ndarray]:
    """The NWB trials of a trial table: onset and offset of each delivery in s, its input and
    taste, its number among its taste's trials, and the laser columns when there is a laser."""
    fs = float(table.sampling_rate)
    cols = {"start_time": np.asarray(table.start, np.float64) / fs, "stop_time": np.asarray(table.end, np.float64) / fs,
            "dig_in": np.asarray(table.dig_in, dtype=str), "taste": np.asarray(table.taste, dtype=str),
            "taste_trial": np.asarray(table.taste_rel_trial_num, np.int64)}
    if table.has_laser and table.laser is not None:
        cols.update(laser=np.asarray(table.laser, bool), laser_lag_ms=np.asarray(table.laser_lag_ms, np.float64),
                    laser_duration_ms=np.asarray(table.laser_duration_ms, np.float64))
    return cols


def _stamps(directory: Path) -> dict[str, list[int]]:
    p = paths.nwb_stamp_path(directory)
    try:
        data = json.loads(p.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _written_by_us(directory: Path, target: Path) -> bool:
    st = target.stat()
    return _stamps(directory).get(str(target.resolve())) == [st.st_size, st.st_mtime_ns]


def _remember(directory: Path, target: Path) -> None:
    stamps = _stamps(directory)
    st = target.stat()
    stamps[str(target.resolve())] = [st.st_size, st.st_mtime_ns]
    write_text_atomic(paths.nwb_stamp_path(directory), json.dumps(stamps, indent=1) + "\n")


def _trials(directory: Path, recording, info: dict, info_source: str, fs: float, notes: list[str]) -> TrialTable | None:
    if recording is not None:
        din = recording.digital_inputs
        return build_trials(din, trial_config(info, din, source=info_source), fs)
    table_path = paths.trial_table_path(directory)
    if table_path.exists():
        notes.append(f"trials from {table_path.name} (no raw files here)")
        return TrialTable.from_rows(read_trial_table(table_path), fs)
    notes.append("no trials: neither raw files nor a trial table here")
    return None


@holds_folder_lock
def export_nwb(directory: str | os.PathLike, out: str | os.PathLike | None = None, raw: bool = False,
               force: bool = False, progress: nwb.Progress | None = None, params: SortParams | None = None) -> NwbExport:
    """Write the sorted recording in ``directory`` as an NWB file (``out``, default
    ``DIR/<name>.nwb``; an existing folder: ``<name>.nwb`` in it); with ``raw``, its amplifier
    channels too (streamed in chunks)."""
    directory = Path(directory)
    target = Path(out) if out is not None else paths.nwb_path(directory)
    if target.is_dir():  # --out a folder: the file goes in it, under its usual name
        target = target / paths.nwb_path(directory).name
    if target.exists() and not force and not _written_by_us(directory, target):
        raise NwbError(f"{target}: exists and is not the file an earlier `blechrs export nwb` wrote here "
                       "(or it was changed since); --force replaces it")
    nwb.require_pynwb()
    h5 = unit_store.existing_store(directory)
    info_source = str(paths.info_path(directory))
    info = load_info(directory)
    metadata = nwb.nwb_metadata(info, info_source)  # a missing field stops here, before any reading
    params = params or load_params(directory)
    notes: list[str] = []
    try:
        recording = open_recording(directory)
    except RecordingError:
        if raw:
            raise
        recording = None
    fs = float(recording.sampling_rate) if recording is not None else float(params.extract.sampling_rate)
    n_samples = recording.n_samples if recording is not None else info.get("n_samples")
    rows = layout.load_layout(directory, recording.n_channels if recording is not None else None)
    units = unit_store.read_units(h5)
    if not units:
        notes.append(f"{h5.name} holds no sorted units: the file has no Units table")
    table = _trials(directory, recording, info, info_source, fs, notes)
    content = nwb.NwbContent(
        name=paths.recording_name(directory), sampling_rate=fs, units=units,
        electrodes=nwb.electrodes_from_layout(rows, recording.channel_names if recording is not None else None),
        metadata=metadata, trials=trial_columns(table) if table is not None else None,
        duration_s=float(n_samples) / fs if n_samples else None, units_from=unit_store.units_from(h5) or "",
        samples_before=params.extract.samples_before)
    nwb.write_nwb(target, content, recording if raw else None, progress=progress)
    _remember(directory, target)
    return NwbExport(path=target, units=len(units), spikes=int(sum(np.size(u.times) for u in units)),
                     electrodes=len(content.electrodes), trials=len(table) if table is not None else 0, raw=raw,
                     notes=notes)
