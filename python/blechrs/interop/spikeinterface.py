"""A sorted recording folder as SpikeInterface objects (extra ``spikeinterface``).

``to_spikeinterface(DIR)``: the unit store ``DIR/<name>.h5`` as a ``NumpySorting``: one unit per
stored unit, unit id = the store's unit number (``unit007`` -> 7), spike trains in samples at the
recording's rate (``<name>.params``), and unit properties ``unit_name``, ``electrode`` (the
layout's ``electrode_ind``, the sort file's ``Chan``), ``channel_id`` and ``main_channel_id``
(the electrode's Intan channel, e.g. ``A-007``: SpikeInterface >= 0.105 takes a unit's main
channel from ``main_channel_id`` instead of guessing it from the templates), ``single_unit``, ``regular_spiking``, ``fast_spiking``, ``quality`` ("good" = single,
"MUA" = multi: spikeinterface-gui's label names), ``type`` ("regular_spiking", "fast_spiking" or
""), ``solution``, ``clusters``, ``source`` and every quality metric of the store
(``io.unit_store.QUALITY_FIELDS``). When the Intan files are in DIR, the recording is registered
with the sorting (``sorting.has_recording()``); ``read_recording(DIR)`` gives it to pass to
``create_sorting_analyzer``, as SpikeInterface's own readers return a recording and a sorting
separately.

``read_recording(DIR)``: a SpikeInterface recording read by blechrs's own Intan reader (all three
Intan layouts; neo cannot open every one): int16 samples, gains to microvolts
(``kernels.MICROVOLTS_PER_BIT``), channel ids = Intan's native channel names, property
``electrode`` = the channel's index, ``car_group`` from the layout file when there is one. A
microwire bundle has no geometry; SpikeInterface needs contact positions for some steps, so the
recording carries a dummy linear probe (contacts ``PROBE_PITCH_UM`` apart), which with SI's
default radius sparsity (100 um) around ``main_channel_id`` keeps each unit's template on its
own electrode, as blechrs sorts them; ``unit_sparsity`` gives that sparsity explicitly (for
SpikeInterface versions that do not read ``main_channel_id``).

SpikeInterface is imported inside the functions only; the extractor class is made on first use
(module ``__getattr__``) so that SpikeInterface can save, load and pickle it by name.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from blechrs.errors import MissingExtraError, PipelineError, RecordingError
from blechrs.io import layout as layout_file
from blechrs.io import paths, unit_store
from blechrs.io.params_file import load_params
from blechrs.io.recording import open_recording
from blechrs.kernels import MICROVOLTS_PER_BIT

#: Distance (um) between the dummy probe's contacts: more than twice SI's default sparsity
#: radius (100 um), so a unit's sparse channels are its own electrode's.
PROBE_PITCH_UM = 250.0
#: Radius (um) of the dummy probe's circular contacts (a 25 um microwire).
CONTACT_RADIUS_UM = 12.5
EXTRA = "pip install 'blechrs[spikeinterface]'"


def spikeinterface_core() -> Any:
    """``spikeinterface.core``, or a one-line MissingExtraError saying how to install it."""
    try:
        import spikeinterface.core as si_core
    except ImportError:
        raise MissingExtraError(f"SpikeInterface is not installed: {EXTRA}") from None
    return si_core


def unit_number(name: str) -> int:
    """``unit007`` -> 7: a stored unit's SpikeInterface unit id."""
    digits = name[4:] if name.startswith("unit") else ""
    if not digits.isdigit():
        raise PipelineError(f"{name!r} is not a unit name like unit007")
    return int(digits)


def _channel_names(directory: Path) -> dict[int, str]:
    """electrode -> Intan channel name (``A-007``), from the layout file (no raw data needed)."""
    if not paths.layout_path(directory).exists():
        return {}
    rows = layout_file.load_layout(directory)
    return {r.electrode_ind: f"{r.port}-{r.electrode_num}" for r in rows}


def unit_properties(units: list, channel_names: dict[int, str]) -> dict[str, np.ndarray]:
    """The sorting's unit properties (see the module doc), one array each, in unit order."""
    props: dict[str, Any] = {
        "unit_name": [u.name for u in units],
        "electrode": [int(u.electrode) for u in units],
        "channel_id": [channel_names.get(int(u.electrode), "") for u in units],
        "main_channel_id": [channel_names.get(int(u.electrode), "") for u in units],
        "single_unit": [bool(u.single_unit) for u in units],
        "regular_spiking": [bool(u.regular_spiking) for u in units],
        "fast_spiking": [bool(u.fast_spiking) for u in units],
        "quality": ["good" if u.single_unit else "MUA" for u in units],
        "type": ["regular_spiking" if u.regular_spiking else "fast_spiking" if u.fast_spiking else "" for u in units],
        "solution": [int(u.solution) for u in units],
        "clusters": [str(u.label) for u in units],
        "source": [str(u.source) for u in units],
    }
    for key in unit_store.QUALITY_FIELDS:
        props[key] = [float(u.snr) if key == "snr" else float(u.metrics.get(key, np.nan)) for u in units]
    return {k: np.asarray(v) for k, v in props.items()}


def to_spikeinterface(directory: str | os.PathLike, recording: bool | None = None) -> Any:
    """The unit store of a sorted folder as a SpikeInterface ``NumpySorting`` (module doc).

    ``recording``: None (default) registers the Intan recording when the folder holds it (a
    warning says why when it cannot be opened); True requires it; False never reads it."""
    si_core = spikeinterface_core()
    directory = Path(directory)
    h5 = paths.h5_path(directory)
    if not h5.exists():
        raise PipelineError(f"{h5}: no unit store; run `blechrs run {directory}` first")
    if not paths.params_path(directory).exists():
        raise PipelineError(f"{paths.params_path(directory)}: no parameter file (the sampling rate); "
                            f"run `blechrs init {directory}`")
    rate = float(load_params(paths.params_path(directory)).extract.sampling_rate)
    units = unit_store.read_units(h5, waveforms=False)
    ids = [unit_number(u.name) for u in units]
    if units:
        trains = {i: np.sort(np.asarray(u.times, dtype=np.int64)) for i, u in zip(ids, units)}
        sorting = si_core.NumpySorting.from_unit_dict([trains], sampling_frequency=rate)
    else:  # from_unit_dict infers the id type from the keys; an empty store has none
        sorting = si_core.NumpySorting.from_samples_and_labels([np.zeros(0, np.int64)], [np.zeros(0, np.int64)],
                                                               rate, unit_ids=np.zeros(0, np.int64))
    rec = None
    if recording is not False:
        try:
            rec = read_recording(directory)
        except RecordingError as err:
            if recording:
                raise
            warnings.warn(f"{directory}: sorting returned without its recording ({err})", stacklevel=2)
        else:
            if abs(rec.get_sampling_frequency() - rate) > 1e-6:
                raise PipelineError(f"{paths.params_path(directory)}: sampling_rate {rate:g} but the recording "
                                    f"is sampled at {rec.get_sampling_frequency():g} Hz")
    # The recording's channel ids when it is there (what SpikeInterface matches), else the layout's.
    names = dict(enumerate(rec.channel_ids.tolist())) if rec is not None else _channel_names(directory)
    for key, values in unit_properties(units, names).items():
        if key != "main_channel_id" or all(int(u.electrode) in names for u in units):
            sorting.set_property(key, values)
    sorting.annotate(blechrs_folder=str(directory.absolute()), blechrs_units_from=unit_store.units_from(h5) or "")
    if rec is not None:
        sorting.register_recording(rec)
    return sorting


def read_recording(directory: str | os.PathLike) -> Any:
    """The Intan recording in ``directory`` as a SpikeInterface recording (module doc)."""
    spikeinterface_core()
    return __getattr__("BlechrsRecording")(str(directory))


def unit_sparsity(sorting: Any, recording: Any) -> Any:
    """A ``ChannelSparsity`` keeping each unit on its own electrode (``sorting``'s property
    ``electrode`` indexes ``recording``'s channels), for ``create_sorting_analyzer(sparsity=...)``."""
    si_core = spikeinterface_core()
    electrodes = np.asarray(sorting.get_property("electrode"), dtype=np.int64)
    n = recording.get_num_channels()
    if len(electrodes) and (electrodes.min() < 0 or electrodes.max() >= n):
        raise PipelineError(f"electrode {int(electrodes.max())} is not a channel of the recording ({n} channels)")
    mask = np.zeros((len(electrodes), n), dtype=bool)
    mask[np.arange(len(electrodes)), electrodes] = True
    return si_core.ChannelSparsity(mask, sorting.unit_ids, recording.channel_ids)


def dummy_probe(n_channels: int) -> Any:
    """A linear probe: ``n_channels`` circular contacts ``PROBE_PITCH_UM`` apart, wired in order."""
    try:
        from probeinterface import Probe
    except ImportError:
        raise MissingExtraError(f"probeinterface is not installed: {EXTRA}") from None
    probe = Probe(ndim=2, si_units="um")
    positions = np.column_stack([np.zeros(n_channels), np.arange(n_channels) * PROBE_PITCH_UM])
    probe.set_contacts(positions=positions, shapes="circle", shape_params={"radius": CONTACT_RADIUS_UM})
    probe.set_device_channel_indices(np.arange(n_channels))
    probe.annotate(name="blechrs dummy probe (microwires have no geometry)")
    return probe


def _set_probe(recording: Any, probe: Any) -> None:
    # SI >= 0.105 sets a probe in place (and warns about ``in_place``); older versions return a copy
    if recording.set_probe(probe) is not recording and not recording.has_probe():
        recording.set_probe(probe, in_place=True)


def _make_classes() -> dict[str, type]:
    """The recording extractor classes (need SpikeInterface, so they are made on first use)."""
    si_core = spikeinterface_core()

    class BlechrsRecordingSegment(si_core.BaseRecordingSegment):
        def __init__(self, rec: Any):
            super().__init__(sampling_frequency=rec.sampling_rate, t_start=None)
            self._rec = rec

        def get_num_samples(self) -> int:
            return int(self._rec.n_samples)

        def get_traces(self, start_frame=None, end_frame=None, channel_indices=None) -> np.ndarray:
            start = 0 if start_frame is None else int(start_frame)
            stop = self._rec.n_samples if end_frame is None else int(end_frame)
            channels = np.arange(self._rec.n_channels)
            if channel_indices is not None:
                channels = channels[channel_indices]
            return np.ascontiguousarray(self._rec.read(channels.tolist(), start, stop).T)

    class BlechrsRecording(si_core.BaseRecording):
        """An Intan recording folder read by blechrs (``read_recording``)."""

        def __init__(self, folder: str):
            rec = open_recording(folder)
            super().__init__(sampling_frequency=rec.sampling_rate, channel_ids=np.array(rec.channel_names),
                             dtype="int16")
            self.add_recording_segment(BlechrsRecordingSegment(rec))
            self.set_channel_gains(MICROVOLTS_PER_BIT)
            self.set_channel_offsets(0.0)
            self.set_property("electrode", np.arange(rec.n_channels))
            _set_probe(self, dummy_probe(rec.n_channels))
            directory = Path(folder) if Path(folder).is_dir() else Path(folder).parent
            if paths.layout_path(directory).exists():
                rows = {r.electrode_ind: r.car_group for r in layout_file.load_layout(directory, rec.n_channels)}
                self.set_property("car_group", np.array([rows.get(i, "") for i in range(rec.n_channels)]))
            self._kwargs = {"folder": str(Path(folder).absolute())}

    made = {"BlechrsRecording": BlechrsRecording, "BlechrsRecordingSegment": BlechrsRecordingSegment}
    for name, cls in made.items():
        cls.__module__, cls.__qualname__ = __name__, name
    return made


_made: dict[str, type] = {}


def __getattr__(name: str) -> Any:
    # SpikeInterface (to_dict/load, pickling for its worker processes) finds the class by its
    # module and name; it is made here on first use so that importing this module needs no SI.
    if name in ("BlechrsRecording", "BlechrsRecordingSegment"):
        if not _made:
            _made.update(_make_classes())
        return _made[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
