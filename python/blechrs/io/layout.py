"""The experiment layout: the three files people edit, written once by ``blechrs init DIR``.

* ``<name>.info``: JSON metadata (spec 2.5): file type, sampling rate, ports, digital inputs with
  their pulse counts, taste and laser inputs, EMG, recording parameters from the header.
* ``<name>_electrode_layout.csv``: one row per amplifier channel: ``filename, electrode_ind,
  electrode_num, port, CAR_group``. The CAR group defaults to the port; ``none`` skips the
  channel; a group whose name contains ``emg`` is EMG (referenced and sorted never).
* ``<name>.params``: every :class:`~blechrs.params.SortParams` field with its default and the
  header's sampling rate.

``<name>`` is the directory's name. Nothing prompts. An existing file is never overwritten unless
``force=True``: :func:`init_experiment` skips it and says so.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from blechrs.errors import LayoutError
from blechrs.io.recording import Recording, open_recording
from blechrs.io.atomic import write_text_atomic
from blechrs.io.params_file import load_params, save_params
from blechrs.io.paths import info_path, layout_path, params_path, recording_name
from blechrs.params import ExtractParams, SortParams

INFO_VERSION = "0.0.3"
LAYOUT_COLUMNS = ("filename", "electrode_ind", "electrode_num", "port", "CAR_group")




# ----------------------------------------------------------------------------------------------
@dataclass
class LayoutRow:
    filename: str
    electrode_ind: int
    """The channel's index in the recording (names /raw/electrodeNN and the sort file's Chan)."""
    electrode_num: str
    port: str
    car_group: str
    extra: dict[str, str] = field(default_factory=dict)
    """Other columns (mad_val, threshold, original_CAR_group ...) kept as text."""

    @property
    def skipped(self) -> bool:
        return self.car_group.strip().lower() in ("none", "na", "")

    @property
    def is_emg(self) -> bool:
        return "emg" in self.car_group.lower()

    @property
    def sorted(self) -> bool:
        """Sorted = neither skipped nor EMG."""
        return not (self.skipped or self.is_emg)


def default_layout(rec: Recording) -> list[LayoutRow]:
    return [
        LayoutRow(filename=f, electrode_ind=i, electrode_num=num, port=port, car_group=port)
        for i, (f, num, port) in enumerate(zip(rec.filenames, rec.electrode_nums, rec.ports))
    ]


def layout_csv(rows: list[LayoutRow]) -> str:
    extra = list(dict.fromkeys(k for r in rows for k in r.extra))
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(list(LAYOUT_COLUMNS) + extra)
    for r in rows:
        w.writerow([r.filename, r.electrode_ind, r.electrode_num, r.port, r.car_group] + [r.extra.get(k, "") for k in extra])
    return buf.getvalue()


def save_layout(directory, rows: list[LayoutRow]) -> Path:
    """Write the layout CSV atomically (callers decide whether overwriting is allowed)."""
    p = layout_path(directory)
    write_text_atomic(p, layout_csv(rows))
    return p


def load_layout(directory: str | os.PathLike, n_channels: int | None = None) -> list[LayoutRow]:
    """Read ``<name>_electrode_layout.csv``. Errors name the file and row. If the layout has an
    ``original_CAR_group`` column (an automatic CAR split), ``CAR_group`` is kept as written."""
    p = layout_path(directory)
    if not p.exists():
        raise LayoutError(f"{p}: no electrode layout; run `blechrs init {directory}` first")
    with open(p, newline="") as fh:
        reader = csv.DictReader(fh)
        cols = reader.fieldnames or []
        missing = [c for c in ("electrode_ind", "CAR_group") if c not in cols]
        if missing:
            raise LayoutError(f"{p}: missing column {', '.join(missing)} (expected {', '.join(LAYOUT_COLUMNS)})")
        rows = []
        seen: dict[int, int] = {}
        for line, r in enumerate(reader, start=2):
            try:
                ind = int(float(r["electrode_ind"]))
            except (TypeError, ValueError):
                raise LayoutError(f"{p}: line {line}: electrode_ind {r['electrode_ind']!r} is not a number") from None
            if ind in seen:
                raise LayoutError(f"{p}: line {line}: electrode_ind {ind} repeats line {seen[ind]}")
            if ind < 0 or (n_channels is not None and ind >= n_channels):
                raise LayoutError(f"{p}: line {line}: electrode_ind {ind} is not a channel of the recording"
                                     + (f" (0..{n_channels - 1})" if n_channels else ""))
            seen[ind] = line
            rows.append(LayoutRow(
                filename=(r.get("filename") or "").strip(), electrode_ind=ind,
                electrode_num=(r.get("electrode_num") or "").strip(), port=(r.get("port") or "").strip(),
                car_group=(r.get("CAR_group") or "").strip(),
                extra={k: v for k, v in r.items() if k not in LAYOUT_COLUMNS and k is not None},
            ))
    return rows


def car_groups(rows: list[LayoutRow], n_channels: int, use_car: bool = True) -> list[int]:
    """CAR group id per recording channel for ``kernels.extract_electrodes``: groups numbered in
    order of first appearance; -1 = not referenced (``none``, EMG, channels missing from the
    layout, or ``use_car=False``)."""
    ids = [-1] * n_channels
    if not use_car:
        return ids
    names: dict[str, int] = {}
    for r in rows:
        if r.sorted and 0 <= r.electrode_ind < n_channels:
            ids[r.electrode_ind] = names.setdefault(r.car_group, len(names))
    return ids


def auto_car_layout(rows: list[LayoutRow], corr, max_clusters: int = 10, seed: int = 42) -> list[LayoutRow]:
    """A copy of the layout with each CAR group split by channel correlation
    (:func:`blechrs.rawqa.auto_car_groups`, ``corr`` = raw channel r matrix indexed by
    electrode_ind). The groups before the split go to an ``original_CAR_group`` column; a layout
    that already has one is split again from those original groups. Nothing is written."""
    from blechrs.quality.raw_qa import auto_car_groups

    base = [r.extra.get("original_CAR_group") or r.car_group for r in rows]
    import numpy as np

    corr = np.asarray(corr)
    idx = [r.electrode_ind for r in rows]
    new = auto_car_groups(corr[np.ix_(idx, idx)], base, max_clusters=max_clusters, seed=seed)
    out = []
    for r, b, g in zip(rows, base, new):
        extra = dict(r.extra)
        extra["original_CAR_group"] = b
        out.append(LayoutRow(r.filename, r.electrode_ind, r.electrode_num, r.port, g, extra))
    return out


def sorted_electrodes(rows: list[LayoutRow]) -> list[int]:
    return sorted(r.electrode_ind for r in rows if r.sorted)


def emg_electrodes(rows: list[LayoutRow]) -> list[int]:
    return sorted(r.electrode_ind for r in rows if r.is_emg and not r.skipped)


# ----------------------------------------------------------------------------------------------
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
    info = _name_fields(recording_name(directory))
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


@dataclass
class InitResult:
    directory: Path
    recording: Recording
    written: list[Path] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)
    """Existing files left as they are (pass force=True to overwrite them)."""
    warnings: list[str] = field(default_factory=list)
    qa: Any = None
    """The raw QA result (:class:`blechrs.rawqa.RawQAResult`) when init ran it."""

    def lines(self) -> list[str]:
        r = self.recording
        din = r.digital_inputs
        out = [f"{r.file_type}: {r.n_channels} channels on ports {', '.join(r.port_names)}, "
               f"{r.duration_s:.1f} s at {r.sampling_rate:g} Hz"]
        if din:
            out.append("digital inputs: " + ", ".join(f"{k} ({len(v[0])} pulses)" for k, v in din.items()))
        else:
            out.append("digital inputs: none")
        out += [f"wrote {p}" for p in self.written]
        out += [f"kept {p} (exists; --force overwrites it)" for p in self.skipped]
        out += [f"warning: {w}" for w in self.warnings]
        if self.qa is not None:
            out += self.qa.lines()
        return out

    def __str__(self) -> str:
        return "\n".join(self.lines())


def init_experiment(directory: str | os.PathLike, force: bool = False, qa: bool = False,
                    auto_car: bool = False) -> InitResult:
    """Write ``<name>.info``, ``<name>_electrode_layout.csv`` and ``<name>.params`` for the
    recording in ``directory``; existing files are kept unless ``force``. The .info is built from
    the layout on disk when the layout is kept, so edited CAR groups and EMG rows carry over.
    ``qa=True`` also runs the raw-data QA (:func:`blechrs.rawqa.raw_qa`, files in
    ``DIR/QA_output``) on the channels the layout sorts; its summary is part of the result.
    ``auto_car=True`` (implies ``qa``) splits each CAR group by raw channel correlation
    (:func:`auto_car_layout`, spec 3.4) in a layout this call writes; a kept layout is never changed."""
    directory = Path(directory)
    rec = open_recording(directory)
    res = InitResult(directory=directory, recording=rec, warnings=list(rec.warnings))

    lp = layout_path(directory)
    if lp.exists() and not force:
        res.skipped.append(lp)
        rows = load_layout(directory, n_channels=rec.n_channels)
    else:
        rows = default_layout(rec)
        save_layout(directory, rows)
        res.written.append(lp)

    ip = info_path(directory)
    if ip.exists() and not force:
        res.skipped.append(ip)
    else:
        write_text_atomic(ip, json.dumps(build_info(directory, rec, rows), indent=2) + "\n")
        res.written.append(ip)

    pp = params_path(directory)
    if pp.exists() and not force:
        res.skipped.append(pp)
        try:
            saved = load_params(pp)
            if saved.sampling_rate != rec.sampling_rate:
                res.warnings.append(f"{pp}: sampling_rate {saved.sampling_rate:g} differs from the recording's "
                                    f"{rec.sampling_rate:g} Hz")
        except ValueError as e:
            res.warnings.append(str(e))
    else:
        save_params(pp, SortParams(extract=ExtractParams(sampling_rate=rec.sampling_rate)))
        res.written.append(pp)
    if qa or auto_car:
        from blechrs.quality.raw_qa import raw_qa

        try:
            params = load_params(pp)
        except ValueError:
            params = SortParams(extract=ExtractParams(sampling_rate=rec.sampling_rate))
        res.qa = raw_qa(directory, recording=rec, params=params, channels_in_use=sorted_electrodes(rows))
        if auto_car and lp in res.written:
            rows = auto_car_layout(rows, res.qa.raw_corr, seed=params.cluster.random_seed)
            save_layout(directory, rows)
            if ip in res.written:
                write_text_atomic(ip, json.dumps(build_info(directory, rec, rows), indent=2) + "\n")
            split = sorted({r.car_group for r in rows} - {r.extra["original_CAR_group"] for r in rows})
            res.warnings.append(f"automatic CAR groups: {', '.join(split) if split else 'no group split'}")
    return res
