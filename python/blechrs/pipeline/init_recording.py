"""``blechrs init DIR``: the three files people edit, written once, and the raw-data QA.

* ``<name>.info`` (:mod:`blechrs.io.info`): file type, sampling rate, ports, digital inputs with
  their pulse counts, taste and laser inputs, EMG, recording parameters from the header;
* ``<name>_electrode_layout.csv`` (:mod:`blechrs.io.layout`): one row per amplifier channel;
* ``<name>.params``: every :class:`~blechrs.params.SortParams` field with its default and the
  header's sampling rate.

Nothing prompts. An existing file is never overwritten unless ``force=True``:
:func:`init_experiment` skips it and says so. It writes the three files only when it succeeds
(everything is checked first), under the folder's lock (:mod:`blechrs.pipeline.lock`). The raw QA
(:func:`raw_qa`) writes under ``DIR/QA_output/``: ``channel_corr.npz`` (Pearson r between every
pair of channels, full symmetric matrices of the raw traces, ``raw``, and of the 300-3000 Hz band,
``spike_band``), ``raw_channel_corr_plot.png``, ``raw_channel_corr_table.txt``, ``warnings.txt``
(the recording's warnings, such as dropped samples, then bridged pairs, dead and flat channels)
and ``digital_inputs.png`` (every input's pulses over the session).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from blechrs.errors import RecordingError
from blechrs.figures.raw_channels import plot_channel_correlation, plot_digital_inputs
from blechrs.io import layout, open_recording, paths
from blechrs.io.atomic import write_text_atomic, write_texts_atomic
from blechrs.io.info import build_info, info_text
from blechrs.io.params_file import load_params, params_text
from blechrs.io.qa_files import write_channel_corr
from blechrs.io.foreign_recording import BinarySpec, load_binary_spec, write_binary_spec
from blechrs.io.recording import FILE_TYPES, Recording
from blechrs.params import ExtractParams, SortParams
from blechrs.pipeline.lock import holds_folder_lock
from blechrs.quality.car_groups import auto_car_groups
from blechrs.quality.raw_channels import RawQAResult, check_channels, correlation_table


@holds_folder_lock
def raw_qa(directory: str | os.PathLike, recording=None, params: SortParams | None = None, plots: bool = True,
           channels_in_use: list[int] | None = None) -> RawQAResult:
    """Check the raw recording in ``directory`` and write the QA files (see the module docstring)."""
    directory = Path(directory)
    rec = recording if recording is not None else open_recording(directory)
    params = params or SortParams(extract=ExtractParams(sampling_rate=rec.sampling_rate))
    res = check_channels(rec, params, channels_in_use)
    res.directory = directory
    out = paths.qa_dir(directory)
    out.mkdir(exist_ok=True)
    write_channel_corr(out / "channel_corr.npz", raw=res.raw_corr, spike_band=res.band_corr,
                       channel_names=np.array(rec.channel_names, dtype=str), noise_uv=res.noise_uv)
    res.outputs.append(out / "channel_corr.npz")
    thr = params.quality.bridged_channel_threshold
    write_text_atomic(out / "raw_channel_corr_table.txt", correlation_table(res, res.raw_corr, res.band_corr, thr))
    res.outputs.append(out / "raw_channel_corr_table.txt")
    # The recording's own warnings first (samples dropped between .rhd files, a missing time.dat
    # ...): a "no warnings" here about a recording with a gap reads as a clean bill of health.
    warned = list(rec.warnings) + res.warnings
    write_text_atomic(out / "warnings.txt", "".join(w + "\n" for w in warned) or "no warnings\n")
    res.outputs.append(out / "warnings.txt")
    if plots:
        res.outputs += _draw_raw_qa(out, res.raw_corr, res.band_corr, rec)
    return res


def _draw_raw_qa(out: Path, raw_corr, band_corr, rec) -> list[Path]:
    return [plot_channel_correlation(out / RAW_QA_PICTURES[0], raw_corr, band_corr, rec.channel_names),
            plot_digital_inputs(out / RAW_QA_PICTURES[1], rec.digital_inputs, rec.sampling_rate, rec.n_samples)]


#: The raw QA's pictures in QA_output: the channel correlations and the digital inputs.
RAW_QA_PICTURES = ("raw_channel_corr_plot.png", "digital_inputs.png")


def raw_qa_pictures(directory: str | os.PathLike) -> list[Path]:
    """The raw QA's pictures (RAW_QA_PICTURES) drawn from its ``channel_corr.npz`` where they are
    missing or older than it (``run --no-plots`` leaves them out; ``blechrs plot`` draws them)."""
    out = paths.qa_dir(directory)
    corr = out / "channel_corr.npz"
    if not corr.exists():
        return []
    pictures = [out / name for name in RAW_QA_PICTURES]
    if all(p.exists() and p.stat().st_mtime >= corr.stat().st_mtime for p in pictures):
        return []
    with np.load(corr, allow_pickle=False) as z:
        raw, band = z["raw"], z["spike_band"]
    return _draw_raw_qa(out, raw, band, open_recording(directory))


def auto_car_layout(rows: list[layout.LayoutRow], corr, max_clusters: int = 10,
                    seed: int = 42) -> list[layout.LayoutRow]:
    """A copy of the layout with each CAR group split by channel correlation
    (:func:`blechrs.quality.car_groups.auto_car_groups`, ``corr`` = raw channel r matrix indexed
    by electrode_ind). The groups before the split go to an ``original_CAR_group`` column; a
    layout that already has one is split again from those original groups. Nothing is written."""
    corr = np.asarray(corr)
    idx = [r.electrode_ind for r in rows]
    new = auto_car_groups(corr[np.ix_(idx, idx)], layout.original_car_groups(rows), max_clusters=max_clusters,
                          seed=seed)
    return layout.with_car_groups(rows, new)


@dataclass
class InitResult:
    directory: Path
    recording: Recording
    written: list[Path] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)
    """Existing files left as they are (pass force=True to overwrite them)."""
    warnings: list[str] = field(default_factory=list)
    qa: Any = None
    """The raw QA result (:class:`blechrs.quality.raw_channels.RawQAResult`) when init ran it."""

    def lines(self) -> list[str]:
        r = self.recording
        din = r.digital_inputs
        intan = r.file_type in FILE_TYPES  # (another system's channels have no Intan ports)
        ports = f" on ports {', '.join(r.port_names)}" if intan else ""
        out = [f"{r.file_type}: {r.n_channels} channels{ports}, {r.duration_s:.1f} s at {r.sampling_rate:g} Hz"]
        if not intan:
            out[0] += f", {r.gain:.6g} uV per count"
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


#: Another system's recording with fewer channels than this is written without CAR (see header_params).
MIN_CAR_CHANNELS = 8


def header_params(rec: Recording) -> SortParams:
    """The parameters init writes: the defaults with the header's sampling rate, checked against
    params.py's rules before any file is written, so a header blechrs cannot sort from (1000 Hz
    puts the 300-3000 Hz band above Nyquist) fails init instead of leaving a .params a later run
    would keep after the header is fixed. Another system's recording of fewer than
    ``MIN_CAR_CHANNELS`` channels (a stereotrode, a tetrode) gets ``use_car = false``: its wires
    see the same neurons, and the mean of two to seven of them is largely their own spikes (with
    two wires, CAR leaves each minus the other, halved)."""
    few = rec.file_type not in FILE_TYPES and rec.n_channels < MIN_CAR_CHANNELS
    return SortParams(extract=ExtractParams(sampling_rate=rec.sampling_rate, use_car=not few)).validate(
        f"{rec.header_file} (sampling rate {rec.sampling_rate:g} Hz in its header)")


def _kept_params(res: InitResult, pp: Path) -> SortParams:
    """The .params on disk, kept; for the raw QA. A problem with it is a warning here: the run
    refuses it with the same message."""
    res.skipped.append(pp)
    rec = res.recording
    try:
        saved = load_params(pp)
    except ValueError as e:
        res.warnings.append(str(e))
        return header_params(rec)
    if saved.sampling_rate != rec.sampling_rate:
        res.warnings.append(f"{pp}: sampling_rate {saved.sampling_rate:g} differs from the recording's "
                            f"{rec.sampling_rate:g} Hz")
    return saved


def _layout_rows(res: InitResult, force: bool) -> tuple[list[layout.LayoutRow], bool]:
    """The layout rows and whether init writes them: the kept file's (checked against the
    recording's channels), or the default one, which must sort at least one channel."""
    directory, rec = res.directory, res.recording
    if rec.n_channels == 0:
        raise RecordingError(f"{rec.header_file}: the header lists no amplifier channel; nothing to sort")
    lp = paths.layout_path(directory)
    if lp.exists() and not force:
        res.skipped.append(lp)
        return layout.load_layout(directory, n_channels=rec.n_channels), False
    rows = layout.default_layout(rec)
    if not layout.sorted_electrodes(rows):
        raise RecordingError(f"{rec.header_file}: no amplifier channel has a port name; the electrode layout "
                             f"made from it would sort no channel")
    return rows, True


def _raw_qa_and_car(res: InitResult, rows: list[layout.LayoutRow], params: SortParams, new_layout: bool,
                    auto_car: bool, pictures: bool = True) -> list[layout.LayoutRow]:
    """The raw QA on the channels the layout sorts (with its pictures if ``pictures``); with
    ``auto_car``, a layout this call writes gets the split CAR groups (returned; a kept layout is
    never changed)."""
    res.qa = raw_qa(res.directory, recording=res.recording, params=params, plots=pictures,
                    channels_in_use=layout.sorted_electrodes(rows))
    if auto_car and new_layout:
        rows = auto_car_layout(rows, res.qa.raw_corr, seed=params.cluster.random_seed)
        split = sorted({r.car_group for r in rows} - {r.extra["original_CAR_group"] for r in rows})
        res.warnings.append(f"automatic CAR groups: {', '.join(split) if split else 'no group split'}")
    return rows


@holds_folder_lock
def init_experiment(directory: str | os.PathLike, force: bool = False, qa: bool = False,
                    auto_car: bool = False, pictures: bool = True) -> InitResult:
    """Write ``<name>.info``, ``<name>_electrode_layout.csv`` and ``<name>.params`` for the
    recording in ``directory``; existing files are kept unless ``force``. The .info is built from
    the layout on disk when the layout is kept, so edited CAR groups and EMG rows carry over.
    ``qa=True`` also runs the raw-data QA (:func:`raw_qa`, files in ``DIR/QA_output``) on the
    channels the layout sorts; its summary is part of the result. ``auto_car=True`` (implies
    ``qa``) splits each CAR group by raw channel correlation (:func:`auto_car_layout`, spec 3.4)
    in a layout this call writes; a kept layout is never changed. ``pictures=False`` leaves out
    the raw QA's pictures (:func:`raw_qa_pictures` draws them later).

    All or nothing: the recording is opened, and what would be written is built and checked (the
    parameters against params.py's rules, the layout against the channels), and the raw QA run,
    before any of the three files is written; then they are written together
    (:func:`blechrs.io.atomic.write_texts_atomic`). Files made from a header that cannot be sorted
    would be kept by the next run, even after the header is fixed."""
    directory = Path(directory)
    rec = open_recording(directory)
    res = InitResult(directory=directory, recording=rec, warnings=list(rec.warnings))
    rows, new_layout = _layout_rows(res, force)
    ip, pp = paths.info_path(directory), paths.params_path(directory)
    new_info = force or not ip.exists()
    if not new_info:
        res.skipped.append(ip)
    new_params = force or not pp.exists()
    params = header_params(rec) if new_params else _kept_params(res, pp)
    if new_params and not params.extract.use_car:
        res.warnings.append(f"use_car = false in {pp.name}: {rec.n_channels} channels of one bundle share their "
                            f"neurons, so their common average would subtract their own spikes")
    if qa or auto_car:
        rows = _raw_qa_and_car(res, rows, params, new_layout, auto_car, pictures)
    texts = {}
    if new_layout:
        texts[paths.layout_path(directory)] = layout.layout_csv(rows)
    if new_info:
        texts[ip] = info_text(build_info(directory, rec, rows))
    if new_params:
        texts[pp] = params_text(params)
    write_texts_atomic(texts)
    res.written += list(texts)
    return res


_BINARY_SUFFIXES = (".raw", ".bin", ".dat")


@holds_folder_lock
def describe_binary(directory: str | os.PathLike, sampling_rate: float, n_channels: int, file: str | None = None,
                    dtype: str = "int16", offset: int = 0, gain: float | None = None, force: bool = False) -> Path:
    """Write the folder's raw binary description (``blechrs_binary.json``) so every later command
    reads the file without being told again. ``file`` may be left out when the folder holds one
    ``.raw``/``.bin``/``.dat`` file. A different description already there is kept unless
    ``force`` (it is the person's file); the same one is left as it is."""
    directory = Path(directory)
    if file is None:
        found = sorted(p.name for p in directory.iterdir() if p.is_file() and p.suffix.lower() in _BINARY_SUFFIXES)
        if len(found) != 1:
            which = f"{len(found)} ({', '.join(found)})" if found else "none"
            raise RecordingError(f"{directory}: say which file is the recording (--file NAME): .raw/.bin/.dat files "
                                 f"found: {which}")
        file = found[0]
    spec = BinarySpec(file=str(file), sampling_rate=float(sampling_rate), n_channels=int(n_channels), dtype=dtype,
                      offset=int(offset), gain=None if gain is None else float(gain))
    p = paths.binary_spec_path(directory)
    if p.exists() and not force:
        if load_binary_spec(directory) == spec:
            return p
        raise RecordingError(f"{p}: already describes the recording differently; edit it, or give --force to "
                             f"replace it")
    return write_binary_spec(directory, spec)
