"""A sorted recording as an NWB file (Neurodata Without Borders 2.x, what DANDI archives).

What goes in: the electrodes table (one row per channel of the electrode layout: Intan channel
name, blechrs electrode number, port, CAR group as the electrode group, location from the
layout's ``location`` column or "unknown"), the Units table (spike times in s, the electrode,
mean and SD waveform in volts, single/multi unit, regular/fast spiking, the unit store's quality
metrics as columns, where each unit came from), the trials (one row per taste delivery, with
its taste's name), the device and subject (from the ``.info`` file's ``subject``, ``session``
and ``device`` sections, :mod:`blechrs.io.info`), and with ``raw`` the amplifier channels as an
ElectricalSeries of int16 counts with the conversion to volts, streamed in chunks.

pynwb is imported inside the functions: the base install never needs it.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from blechrs.errors import MissingExtraError, NwbError
from blechrs.io.atomic import atomic_path
from blechrs.io.layout import LayoutRow
from blechrs.io.recording import MICROVOLTS_PER_BIT, Recording
from blechrs.io.unit_store import QUALITY_FIELDS
from blechrs.model import Unit

Progress = Callable[[str, int, int], None]

#: What each quality column of the Units table holds (the unit store's ``quality`` fields).
METRIC_DESCRIPTIONS = {
    "firing_rate": "mean firing rate over the recording (Hz)",
    "snr": "signal-to-noise ratio: mean waveform's peak amplitude / the electrode's noise (MAD / 0.6745)",
    "amplitude_uv": "mean waveform's peak amplitude (microvolts)",
    "isi_violations_1ms": "percent of inter-spike intervals shorter than 1 ms",
    "isi_violations_2ms": "percent of inter-spike intervals shorter than 2 ms",
    "contamination": "estimated fraction of spikes from other neurons (refractory-period violations)",
    "isolation_distance": "isolation distance in feature space (NaN when undefined)",
    "l_ratio": "L-ratio in feature space (NaN when undefined)",
    "width_ms": "trough-to-peak width of the mean waveform (ms)",
    "threshold_share": "of the spikes above the detection threshold, the share within 1 noise SD of it "
                       "(~0.68 when half the unit's spikes are undetected)",
}

#: Trial columns the pipeline may pass, and what they mean.
TRIAL_COLUMN_DESCRIPTIONS = {
    "dig_in": "the digital input of the delivery (dig_in_NN)",
    "taste": "the taste delivered (the .info file's taste_params.tastes)",
    "taste_trial": "the trial's number among its taste's trials, from 0 (its row in the taste's spike array)",
    "laser": "whether a laser pulse went with the trial",
    "laser_lag_ms": "laser onset after the taste onset (ms; 0 without laser)",
    "laser_duration_ms": "laser pulse duration (ms; 0 without laser)",
}

#: Intan's amplifier resolution in volts per count (the ElectricalSeries' ``conversion``).
VOLTS_PER_COUNT = float(MICROVOLTS_PER_BIT) / 1e6
_AGE = re.compile(r"P(?!$)(\d+(\.\d+)?Y)?(\d+(\.\d+)?M)?(\d+(\.\d+)?W)?(\d+(\.\d+)?D)?"
                  r"(T(?=\d)(\d+(\.\d+)?H)?(\d+(\.\d+)?M)?(\d+(\.\d+)?S)?)?")
_SPECIES = re.compile(r"[A-Z][a-z]+ [a-z.]+( [a-z]+)?|https?://\S+")
_WEIGHT = re.compile(r"\d+(\.\d+)? ?(kg|g|mg)")


def require_pynwb() -> Any:
    """The pynwb module, or a one-line error saying how to install it."""
    try:
        import pynwb
    except ImportError:
        raise MissingExtraError("NWB export needs pynwb: pip install 'blechrs[nwb]'") from None
    return pynwb


# ------------------------------------------------------------------------------------------------
# Metadata from the .info file


@dataclass
class NwbMetadata:
    """The session, subject and device fields of an NWB file, checked."""

    session_description: str
    session_start_time: dt.datetime
    subject: dict[str, Any]
    """pynwb Subject's keyword arguments."""
    device: dict[str, str]
    session: dict[str, Any] = field(default_factory=dict)
    """Optional NWBFile keyword arguments (experimenter, institution, lab, ...)."""
    notes: str = ""


def _text(section: Mapping[str, Any], key: str) -> str:
    v = section.get(key)
    return "" if v is None else str(v).strip()


def _start_time(info: Mapping[str, Any], session: Mapping[str, Any], source: str) -> dt.datetime | None:
    text = _text(session, "start_time")
    if text:
        try:
            t = dt.datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)  # "Z": Python < 3.11
        except ValueError:
            raise NwbError(f"{source}: session.start_time {text!r} is not an ISO 8601 date and time "
                           "(e.g. \"2024-03-01T14:05:00-05:00\")") from None
    else:
        date, clock = _text(info, "date"), _text(info, "timestamp")
        if not (re.fullmatch(r"\d{6}", date) and re.fullmatch(r"\d{6}", clock)):
            return None
        try:  # Intan names its folders <prefix>_YYMMDD_HHMMSS
            t = dt.datetime.strptime(date + clock, "%y%m%d%H%M%S")
        except ValueError:
            return None
    t = t if t.tzinfo is not None else t.astimezone()  # a naive time is local time
    if not dt.datetime(1980, 1, 1, tzinfo=dt.timezone.utc) <= t <= dt.datetime.now(dt.timezone.utc):
        raise NwbError(f"{source}: session start time {t.isoformat()} is "
                       f"{'in the future' if t.year >= 1980 else 'before 1980'}: set session.start_time")
    return t


def _subject(subject: Mapping[str, Any], source: str, missing: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in ("subject_id", "species", "sex"):
        if not _text(subject, key):
            missing.append(f"subject.{key}")
        out[key] = _text(subject, key)
    age, born = _text(subject, "age"), _text(subject, "date_of_birth")
    if not age and not born:
        missing.append("subject.age (or subject.date_of_birth)")
    wrong = []
    if out["species"] and not _SPECIES.fullmatch(out["species"]):
        wrong.append(f"subject.species {out['species']!r} is not a Latin name (e.g. \"Rattus norvegicus\")")
    if out["sex"] and out["sex"] not in ("M", "F", "U", "O"):
        wrong.append(f"subject.sex {out['sex']!r} is not one of M, F, U (unknown), O (other)")
    if age:
        if not all(_AGE.fullmatch(a) for a in age.split("/") if a) or age.count("/") > 1:
            wrong.append(f"subject.age {age!r} is not an ISO 8601 duration (e.g. \"P90D\" for 90 days)")
        out["age"] = age
    if born:
        try:
            b = dt.datetime.fromisoformat(born)
            out["date_of_birth"] = b if b.tzinfo is not None else b.astimezone()
        except ValueError:
            wrong.append(f"subject.date_of_birth {born!r} is not an ISO 8601 date (e.g. \"2024-01-31\")")
    weight = _text(subject, "weight")
    if weight:
        if not _WEIGHT.fullmatch(weight):
            wrong.append(f"subject.weight {weight!r} is not a number and a unit (e.g. \"0.35 kg\")")
        out["weight"] = weight
    for key in ("strain", "description"):
        if _text(subject, key):
            out[key] = _text(subject, key)
    if wrong:
        raise NwbError(f"{source}: {'; '.join(wrong)}")
    return out


def _section(info: Mapping[str, Any], key: str, source: str) -> Mapping[str, Any]:
    section = info.get(key) or {}
    if not isinstance(section, Mapping):
        raise NwbError(f"{source}: \"{key}\" should be an object of fields, not {section!r}")
    return section


def _names(value: Any) -> list[str]:
    if value in (None, ""):
        return []
    return [str(v) for v in ([value] if isinstance(value, str) else value)]


def nwb_metadata(info: Mapping[str, Any], source: str | os.PathLike) -> NwbMetadata:
    """The NWB fields of a ``.info`` file (``source`` names it in errors). Raises NwbError listing
    every missing required field, or the first values in the wrong form."""
    source = str(source)
    subject_section = _section(info, "subject", source)
    session = _section(info, "session", source)
    device = _section(info, "device", source)
    missing: list[str] = []
    subject = _subject(subject_section, source, missing)
    description = _text(session, "description")
    if not description:
        missing.append("session.description")
    start = _start_time(info, session, source)
    if start is None:
        missing.append("session.start_time (or a folder name ending _YYMMDD_HHMMSS)")
    if missing:
        raise NwbError(f"{source}: missing {', '.join(missing)} (NWB/DANDI needs them); "
                       "fill them in and export again")
    assert start is not None
    extra: dict[str, Any] = {}
    for key in ("institution", "lab", "experiment_description"):
        if _text(session, key):
            extra[key] = _text(session, key)
    for key in ("experimenter", "keywords"):
        if _names(session.get(key)):
            extra[key] = _names(session.get(key))
    dev = {"name": _text(device, "name") or "Intan RHD2000",
           "manufacturer": _text(device, "manufacturer") or "Intan Technologies",
           "description": _text(device, "description") or "Intan RHD2000 amplifier chips and recording controller"}
    return NwbMetadata(session_description=description, session_start_time=start, subject=subject, device=dev,
                       session=extra, notes=_text(info, "notes"))


# ------------------------------------------------------------------------------------------------
# Electrodes


@dataclass
class Electrode:
    """One row of the electrodes table: a channel of the electrode layout."""

    electrode: int
    """blechrs's electrode number (the layout's ``electrode_ind``; the store's ``electrode_number``)."""
    channel_name: str
    port: str
    group: str
    """The CAR group (the NWB electrode group)."""
    location: str
    filename: str


def electrodes_from_layout(rows: Sequence[LayoutRow], channel_names: Sequence[str] | None = None) -> list[Electrode]:
    """The electrodes of a layout, in electrode order. ``channel_names``: the recording's (A-000 ...)
    by electrode number; without them, port and number from the layout."""
    out = []
    for r in sorted(rows, key=lambda r: r.electrode_ind):
        if channel_names is not None and r.electrode_ind < len(channel_names):
            name = str(channel_names[r.electrode_ind])
        else:
            name = f"{r.port}-{r.electrode_num}" if r.port and r.electrode_num else f"electrode{r.electrode_ind:02d}"
        location = (r.extra.get("location") or "").strip() or "unknown"
        out.append(Electrode(electrode=r.electrode_ind, channel_name=name, port=r.port,
                             group=r.car_group.strip() or "none", location=location, filename=r.filename))
    return out


def _add_electrodes(nwbfile: Any, electrodes: Sequence[Electrode], device: Any) -> tuple[dict[int, int], dict[str, Any]]:
    """Electrode groups and rows; returns electrode number -> row, and group name -> group."""
    groups: dict[str, Any] = {}
    for name in dict.fromkeys(e.group for e in electrodes):
        members = [e for e in electrodes if e.group == name]
        locations = {e.location for e in members}
        kind = ("not sorted (CAR group none in the layout)" if name.lower() in ("none", "na")
                else "EMG channels" if "emg" in name.lower() else "sorted electrodes referenced together")
        groups[name] = nwbfile.create_electrode_group(
            name=name, description=f"CAR group {name}: {kind}",
            location=locations.pop() if len(locations) == 1 else "unknown", device=device)
    nwbfile.add_electrode_column(name="channel_name", description="Intan's channel name (port-number)")
    nwbfile.add_electrode_column(name="electrode_number", description="blechrs's electrode number "
                                 "(the layout's electrode_ind, the unit store's electrode_number)")
    nwbfile.add_electrode_column(name="port", description="Intan headstage port")
    nwbfile.add_electrode_column(name="filename", description="the raw file holding the channel's samples")
    rows = {}
    for i, e in enumerate(electrodes):
        nwbfile.add_electrode(location=e.location, group=groups[e.group], channel_name=e.channel_name,
                              electrode_number=e.electrode, port=e.port, filename=e.filename)
        rows[e.electrode] = i
    return rows, groups


# ------------------------------------------------------------------------------------------------
# Units, trials, raw data


@dataclass
class NwbContent:
    """Everything an NWB file of a sorted recording holds but the raw samples."""

    name: str
    """The recording's name (the file's session_id)."""
    sampling_rate: float
    units: list[Unit]
    """The unit store's units, with waveforms (µV) and metrics."""
    electrodes: list[Electrode]
    metadata: NwbMetadata
    trials: Mapping[str, np.ndarray] | None = None
    """``start_time``, ``stop_time`` (s) and columns of :data:`TRIAL_COLUMN_DESCRIPTIONS`; None: no trials."""
    duration_s: float | None = None
    """The recording's length: every unit's observation interval [0, duration_s]."""
    units_from: str = ""
    """Where the units came from (the store's ``units_from``: "autosort", "sort file X")."""
    samples_before: int = 0
    """Waveform samples before the spike's peak."""


def _metric_columns(units: Sequence[Unit]) -> list[str]:
    have = {k for u in units for k in (u.metrics or {})} | {"snr"}
    return [k for k in QUALITY_FIELDS if k in have]


def _waveform_stats(unit: Unit) -> tuple[np.ndarray, np.ndarray]:
    """Mean and SD (ddof 0, as blech_clust) of a unit's waveforms, in volts."""
    w = np.asarray(unit.waveforms if unit.waveforms is not None else np.zeros((0, 0)), dtype=np.float64)
    if w.ndim != 2 or not len(w):
        n = w.shape[1] if w.ndim == 2 else 0
        return np.full(n, np.nan), np.full(n, np.nan)
    return w.mean(axis=0) * 1e-6, w.std(axis=0) * 1e-6


def _add_units(nwbfile: Any, content: NwbContent, rows: Mapping[int, int], groups: Mapping[str, Any]) -> None:
    from pynwb.misc import Units

    fs = float(content.sampling_rate)
    description = (f"units sorted by blechrs ({content.units_from or 'unit store'}); waveforms aligned with "
                   f"{content.samples_before} samples before the peak, band-passed")
    nwbfile.units = Units(name="units", description=description, electrode_table=nwbfile.electrodes,
                                     waveform_rate=fs, waveform_unit="volts", resolution=1.0 / fs)
    metrics = _metric_columns(content.units)
    columns = {
        "unit_name": "the unit's name in the unit store (/sorted_units/unitNNN)",
        "single_unit": "True: a single unit; False: a multi-unit",
        "regular_spiking": "regular-spiking (putative pyramidal) unit",
        "fast_spiking": "fast-spiking (putative interneuron) unit",
        **{m: METRIC_DESCRIPTIONS.get(m, m) for m in metrics},
        "solution": "the clustering solution the unit was chosen from (1: auto-sort's template assignment)",
        "clusters": "its clusters in that solution, in sort-file notation (\"1+5\": merged)",
        "source": "what chose it (auto-sort, or the sort-file row)",
        "hash": "blech_clust's unit hash",
    }
    for name, text in columns.items():
        nwbfile.add_unit_column(name=name, description=text)
    by_group = {e.electrode: groups[e.group] for e in content.electrodes}
    for u in content.units:
        if u.electrode not in rows:
            raise NwbError(f"unit {u.name} is on electrode {u.electrode}, which the electrode layout has no row for")
        mean, sd = _waveform_stats(u)
        values = {m: float((u.metrics or {}).get(m, u.snr if m == "snr" else np.nan)) for m in metrics}
        extra = {} if content.duration_s is None else {"obs_intervals": [[0.0, float(content.duration_s)]]}
        nwbfile.add_unit(spike_times=np.asarray(u.times, dtype=np.float64) / fs, electrodes=[rows[u.electrode]],
                         electrode_group=by_group[u.electrode], waveform_mean=mean, waveform_sd=sd,
                         unit_name=u.name, single_unit=bool(u.single_unit), regular_spiking=bool(u.regular_spiking),
                         fast_spiking=bool(u.fast_spiking), solution=int(u.solution), clusters=str(u.label),
                         source=str(u.source), hash=str(u.hash), **values, **extra)


def _add_trials(nwbfile: Any, trials: Mapping[str, np.ndarray]) -> None:
    names = [k for k in trials if k not in ("start_time", "stop_time")]
    for name in names:
        nwbfile.add_trial_column(name=name, description=TRIAL_COLUMN_DESCRIPTIONS.get(name, name))
    for i in range(len(trials["start_time"])):
        values = {k: trials[k][i].item() if isinstance(trials[k][i], np.generic) else trials[k][i] for k in names}
        nwbfile.add_trial(start_time=float(trials["start_time"][i]), stop_time=float(trials["stop_time"][i]), **values)


def amplifier_chunks(recording: Recording, channels: Sequence[int], progress: Progress | None = None,
                     chunk_bytes: int = 1 << 21, chunks_per_buffer: int = 4) -> Any:
    """An hdmf ``GenericDataChunkIterator`` over the amplifier channels ``channels`` as samples x
    channels int16: HDF5 chunks of ~``chunk_bytes`` (all the channels, consecutive samples), read
    ``chunks_per_buffer`` chunks at a time, so only one buffer is ever in memory.
    ``progress("raw data", samples done, total)`` after each buffer."""
    from hdmf.data_utils import GenericDataChunkIterator

    chans = [int(c) for c in channels]
    n, nch = int(recording.n_samples), len(chans)

    class AmplifierChunks(GenericDataChunkIterator):
        def _get_data(self, selection: tuple[slice, slice]) -> np.ndarray:
            t, c = selection
            data = recording.read(chans[c], t.start, t.stop).T
            if progress is not None:
                progress("raw data", int(t.stop), n)
            return np.ascontiguousarray(data)

        def _get_maxshape(self) -> tuple[int, int]:
            return (n, nch)

        def _get_dtype(self) -> np.dtype:
            return np.dtype(np.int16)

    chunk = max(1, min(n, chunk_bytes // (2 * max(nch, 1))))
    return AmplifierChunks(chunk_shape=(chunk, nch), buffer_shape=(min(n, chunk * chunks_per_buffer), nch))


def _add_raw(nwbfile: Any, recording: Recording, electrodes: Sequence[Electrode],
             progress: Progress | None) -> None:
    from hdmf.backends.hdf5 import H5DataIO
    from pynwb.ecephys import ElectricalSeries

    region = nwbfile.create_electrode_table_region(region=list(range(len(electrodes))),
                                                   description="every channel of the electrode layout")
    h = recording.header
    series = ElectricalSeries(
        name="ElectricalSeries", electrodes=region, rate=float(recording.sampling_rate), starting_time=0.0,
        data=H5DataIO(amplifier_chunks(recording, [e.electrode for e in electrodes], progress), compression="gzip",
                      compression_opts=1, shuffle=True),  # built-in filters only: any HDF5 reader opens it
        conversion=VOLTS_PER_COUNT,
        filtering=(f"Intan hardware band-pass {h['actual_lower_bandwidth']:g}-{h['actual_upper_bandwidth']:g} Hz"
                   + (f", DSP high-pass {h['actual_dsp_cutoff_frequency']:g} Hz" if h["dsp_enabled"] else "")),
        description=f"the raw amplifier channels as Intan recorded them (int16 counts of "
                    f"{MICROVOLTS_PER_BIT} µV; not referenced or filtered by blechrs)")
    nwbfile.add_acquisition(series)


def _add_device(nwbfile: Any, device: Mapping[str, str]) -> Any:
    """The amplifier; its manufacturer on a DeviceModel where pynwb has them (>= 3.1: the
    Device's own field is deprecated there)."""
    if hasattr(nwbfile, "create_device_model"):
        model = nwbfile.create_device_model(name=device["name"], manufacturer=device["manufacturer"],
                                            description=device["description"])
        return nwbfile.create_device(name=device["name"], description=device["description"], model=model)
    return nwbfile.create_device(**device)


def write_nwb(target: str | os.PathLike, content: NwbContent, recording: Recording | None = None,
              progress: Progress | None = None) -> Path:
    """Write ``content`` (and with ``recording`` its raw amplifier channels) as the NWB file
    ``target``, atomically (a temporary file renamed over it; mode from the umask)."""
    pynwb = require_pynwb()
    from pynwb.file import Subject

    meta = content.metadata
    nwbfile = pynwb.NWBFile(session_description=meta.session_description, identifier=str(uuid.uuid4()),
                            session_start_time=meta.session_start_time, session_id=content.name,
                            notes=meta.notes or None, subject=Subject(**meta.subject), **meta.session)
    device = _add_device(nwbfile, meta.device)
    rows, groups = _add_electrodes(nwbfile, content.electrodes, device)
    if content.units:  # an empty Units table cannot be written (its columns have no type)
        _add_units(nwbfile, content, rows, groups)
    if content.trials is not None and len(content.trials["start_time"]):
        _add_trials(nwbfile, content.trials)
    if recording is not None:
        _add_raw(nwbfile, recording, content.electrodes, progress)
    target = Path(target)
    with atomic_path(target, suffix=".nwb") as tmp:
        with pynwb.NWBHDF5IO(str(tmp), "w") as io:
            io.write(nwbfile)
    return target
