"""``blechrs init DIR``: the three files people edit, written once, and the raw-data QA.

* ``<name>.info`` (:mod:`blechrs.io.info`): file type, sampling rate, ports, digital inputs with
  their pulse counts, taste and laser inputs, EMG, recording parameters from the header;
* ``<name>_electrode_layout.csv`` (:mod:`blechrs.io.layout`): one row per amplifier channel;
* ``<name>.params``: every :class:`~blechrs.params.SortParams` field with its default and the
  header's sampling rate.

Nothing prompts. An existing file is never overwritten unless ``force=True``:
:func:`init_experiment` skips it and says so. The raw QA (:func:`raw_qa`) writes under
``DIR/QA_output/``: ``channel_corr.npz`` (Pearson r between every pair of channels, full symmetric
matrices of the raw traces, ``raw``, and of the 300-3000 Hz band, ``spike_band``),
``raw_channel_corr_plot.png``, ``raw_channel_corr_table.txt``, ``warnings.txt`` (bridged pairs,
dead and flat channels) and ``digital_inputs.png`` (every input's pulses over the session).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from blechrs.figures.raw_channels import plot_channel_correlation, plot_digital_inputs
from blechrs.io import layout, open_recording, paths
from blechrs.io.atomic import write_text_atomic
from blechrs.io.info import build_info, save_info
from blechrs.io.params_file import load_params, save_params
from blechrs.io.qa_files import write_channel_corr
from blechrs.io.recording import Recording
from blechrs.params import ExtractParams, SortParams
from blechrs.quality.car_groups import auto_car_groups
from blechrs.quality.raw_channels import RawQAResult, check_channels, correlation_table


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
    write_text_atomic(out / "warnings.txt", "".join(w + "\n" for w in res.warnings) or "no warnings\n")
    res.outputs.append(out / "warnings.txt")
    if plots:
        res.outputs.append(plot_channel_correlation(out / "raw_channel_corr_plot.png", res.raw_corr, res.band_corr,
                                                    rec.channel_names))
        res.outputs.append(plot_digital_inputs(out / "digital_inputs.png", rec.digital_inputs, rec.sampling_rate,
                                               rec.n_samples))
    return res


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


def _write_params(res: InitResult, rec: Recording, force: bool) -> Path:
    pp = paths.params_path(res.directory)
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
    return pp


def _check_raw(res: InitResult, rows: list[layout.LayoutRow], pp: Path, auto_car: bool) -> None:
    """The raw QA on the channels the layout sorts; with ``auto_car``, a layout this call wrote
    (and the .info built from it) gets the split CAR groups."""
    directory, rec = res.directory, res.recording
    try:
        params = load_params(pp)
    except ValueError:
        params = SortParams(extract=ExtractParams(sampling_rate=rec.sampling_rate))
    res.qa = raw_qa(directory, recording=rec, params=params, channels_in_use=layout.sorted_electrodes(rows))
    lp, ip = paths.layout_path(directory), paths.info_path(directory)
    if auto_car and lp in res.written:
        rows = auto_car_layout(rows, res.qa.raw_corr, seed=params.cluster.random_seed)
        layout.save_layout(directory, rows)
        if ip in res.written:
            save_info(directory, build_info(directory, rec, rows))
        split = sorted({r.car_group for r in rows} - {r.extra["original_CAR_group"] for r in rows})
        res.warnings.append(f"automatic CAR groups: {', '.join(split) if split else 'no group split'}")


def init_experiment(directory: str | os.PathLike, force: bool = False, qa: bool = False,
                    auto_car: bool = False) -> InitResult:
    """Write ``<name>.info``, ``<name>_electrode_layout.csv`` and ``<name>.params`` for the
    recording in ``directory``; existing files are kept unless ``force``. The .info is built from
    the layout on disk when the layout is kept, so edited CAR groups and EMG rows carry over.
    ``qa=True`` also runs the raw-data QA (:func:`raw_qa`, files in ``DIR/QA_output``) on the
    channels the layout sorts; its summary is part of the result. ``auto_car=True`` (implies
    ``qa``) splits each CAR group by raw channel correlation (:func:`auto_car_layout`, spec 3.4)
    in a layout this call writes; a kept layout is never changed."""
    directory = Path(directory)
    rec = open_recording(directory)
    res = InitResult(directory=directory, recording=rec, warnings=list(rec.warnings))

    lp = paths.layout_path(directory)
    if lp.exists() and not force:
        res.skipped.append(lp)
        rows = layout.load_layout(directory, n_channels=rec.n_channels)
    else:
        rows = layout.default_layout(rec)
        layout.save_layout(directory, rows)
        res.written.append(lp)

    ip = paths.info_path(directory)
    if ip.exists() and not force:
        res.skipped.append(ip)
    else:
        save_info(directory, build_info(directory, rec, rows))
        res.written.append(ip)

    pp = _write_params(res, rec, force)
    if qa or auto_car:
        _check_raw(res, rows, pp, auto_car)
    return res
