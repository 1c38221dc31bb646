"""The ``<name>.info`` file (spec 2.5): JSON metadata of a recording, written by ``blechrs init``
and edited by people (taste and laser inputs, EMG). One reader and one writer.

Beyond blech_clust's keys, three optional sections describe the experiment for sharing
(``blechrs export nwb``; DANDI needs the subject's id, species, sex and age or date of birth, and
a session description): ``subject``, ``session`` and ``device`` (keys and defaults below). Init
writes them with empty values for a person to fill in; a file without them (an older one, or
blech_clust's) loads as before, and only the export says which field is missing.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from blechrs.errors import LayoutError
from blechrs.io.atomic import write_text_atomic
from blechrs.io.layout import LayoutRow
from blechrs.io.paths import info_path, recording_name
from blechrs.io.recording import Recording

INFO_VERSION = "0.0.3"

#: ``subject``: who was recorded. ``species`` in Latin ("Rattus norvegicus"), ``sex`` one of M, F,
#: U (unknown), O (other), ``age`` an ISO 8601 duration ("P90D") or ``date_of_birth`` an ISO date,
#: ``weight`` with its unit ("0.35 kg"). Init fills ``subject_id`` with the recording name's first
#: part (blech_clust's animal name).
SUBJECT_FIELDS: dict[str, Any] = dict(subject_id="", species="", sex="", age="", date_of_birth="", strain="",
                                      weight="", description="")
#: ``session``: ``description`` (what was done, one sentence); ``start_time`` ISO 8601 (without it,
#: the folder name's date and time, ``date`` and ``timestamp`` above, in local time);
#: ``experimenter`` a list of "Last, First" names.
SESSION_FIELDS: dict[str, Any] = dict(description="", start_time="", experimenter=[], institution="", lab="",
                                      experiment_description="", keywords=[])
#: ``device``: the amplifier (any of its keys may be left out).
DEVICE_FIELDS: dict[str, Any] = dict(name="Intan RHD2000", manufacturer="Intan Technologies",
                                     description="Intan RHD2000 amplifier chips and recording controller")


def _name_fields(name: str) -> dict[str, str]:
    parts = name.split("_")
    six = re.findall(r"(?<!\d)\d{6}(?!\d)", name)
    return dict(name=parts[0], exp_type=parts[1] if len(parts) > 1 else "",
                date=six[0] if six else "", timestamp=six[1] if len(six) > 1 else "")


def build_info(directory, rec: Recording, rows: list[LayoutRow]) -> dict[str, Any]:
    """The .info dict (spec 2.5) of a recording and its layout, with blechrs's defaults: every
    digital input with at least one pulse is a taste named after the input; no laser."""
    din = rec.digital_inputs
    names = sorted(din)
    counts = [int(len(din[n][0])) for n in names]
    tastes = [n for n, c in zip(names, counts) if c > 0]
    groups: dict[str, list[int]] = {}
    for r in rows:
        groups.setdefault(r.car_group, []).append(r.electrode_ind)
    emg = [r for r in rows if r.is_emg and not r.skipped]
    h = rec.header
    info: dict[str, Any] = _name_fields(recording_name(directory))
    info.update(
        version=INFO_VERSION,
        file_type=rec.file_type,
        sampling_rate=rec.sampling_rate,
        n_samples=rec.n_samples,
        regions=[g for g in groups if g.lower() not in ("none", "na") and "emg" not in g.lower()],
        ports=rec.port_names,
        dig_ins=dict(names=names, trial_counts=counts),
        emg=dict(port=emg[0].port if emg else None, electrodes=[r.electrode_ind for r in emg], muscle=None),
        electrode_layout={g: [v] for g, v in groups.items()},
        taste_params=dict(dig_in_names=tastes, trial_count=[c for c in counts if c > 0], tastes=list(tastes),
                          concs=[], pal_rankings=[]),
        laser_params=dict(dig_in_names=[], trial_count=[], onset_duration=[], opto_locs=[], virus_region=""),
        notes="\n".join(n for n in h.get("notes", []) if n),
        recording_params=dict(
            sampling_rate=rec.sampling_rate,
            notch_filter_frequency=h["notch_filter_frequency"],
            dsp_enabled=h["dsp_enabled"],
            actual_dsp_cutoff_frequency=h["actual_dsp_cutoff_frequency"],
            actual_lower_bandwidth=h["actual_lower_bandwidth"],
            actual_upper_bandwidth=h["actual_upper_bandwidth"],
            desired_dsp_cutoff_frequency=h["desired_dsp_cutoff_frequency"],
            desired_lower_bandwidth=h["desired_lower_bandwidth"],
            desired_upper_bandwidth=h["desired_upper_bandwidth"],
            intan_header_version=h["version"],
        ),
        subject=dict(SUBJECT_FIELDS, subject_id=info["name"]),
        session=dict(SESSION_FIELDS),
        device=dict(DEVICE_FIELDS),
    )
    return info


def load_info(directory: str | os.PathLike) -> dict[str, Any]:
    """Read ``<name>.info`` (JSON object)."""
    p = info_path(directory)
    if not p.exists():
        raise LayoutError(f"{p}: no .info file; run `blechrs init {directory}` first")
    try:
        data = json.loads(p.read_text())
    except json.JSONDecodeError as e:
        raise LayoutError(f"{p}: not valid JSON ({e.msg} at line {e.lineno})") from None
    if not isinstance(data, dict):
        raise LayoutError(f"{p}: expected a JSON object")
    return data


def find_info(directory: str | os.PathLike) -> tuple[dict[str, Any], Path | None]:
    """``<name>.info`` and its path, or ({}, None) when there is none (defaults then apply)."""
    p = info_path(directory)
    return (load_info(directory), p) if p.exists() else ({}, None)


def info_text(info: dict[str, Any]) -> str:
    """The file's text (init writes it together with the layout and .params, all or nothing)."""
    return json.dumps(info, indent=2) + "\n"


def save_info(directory: str | os.PathLike, info: dict[str, Any]) -> Path:
    """Write ``<name>.info`` atomically (callers decide whether overwriting is allowed)."""
    p = info_path(directory)
    write_text_atomic(p, info_text(info))
    return p
