"""A recording folder as the pipeline sees it: its parameters, its layout, what is sorted, whether
``init`` is still to run."""

from __future__ import annotations

import os

from blechrs.errors import LayoutError, ParamsError, PipelineError
from blechrs.io import layout, paths
from blechrs.io.params_file import load_params as load_params_file
from blechrs.params import SortParams
from blechrs.pipeline.init_recording import init_experiment


def load_params(directory: str | os.PathLike) -> SortParams:
    path = paths.params_path(directory)
    if not path.exists():
        raise PipelineError(f"{path}: no parameter file; run `blechrs init {directory}` first")
    return load_params_file(path)


def check_against_recording(directory: str | os.PathLike, params: SortParams, recording, rows=()) -> None:
    """What the parameters and the layout copied from the header must still be the header's: a
    sampling rate that disagrees would put the filter band and every ms-based setting in the wrong
    place, a layout row naming another file would sort another channel than the person chose."""
    if params.extract.sampling_rate != recording.sampling_rate:
        raise ParamsError(f"{paths.params_path(directory)}: sampling_rate is {params.extract.sampling_rate:g} but the "
                          f"recording {recording.path} was sampled at {recording.sampling_rate:g} Hz; set "
                          f"sampling_rate to {recording.sampling_rate:g} in {paths.params_path(directory).name}")
    if recording.n_channels == 0:
        raise PipelineError(f"{recording.path}: the header lists no amplifier channel; nothing to sort")
    names = recording.filenames
    for r in rows:
        if not 0 <= r.electrode_ind < recording.n_channels:
            raise LayoutError(f"{paths.layout_path(directory)}: electrode_ind {r.electrode_ind} is not a channel of "
                              f"{recording.path} ({recording.n_channels} amplifier channels)")
        if r.filename and r.filename != names[r.electrode_ind]:
            raise LayoutError(f"{paths.layout_path(directory)}: electrode_ind {r.electrode_ind} names {r.filename}, "
                              f"but that channel of {recording.path} is in {names[r.electrode_ind]}")


def read_layout(directory: str | os.PathLike):
    """The electrode layout rows (``blechrs.io.layout``): which channels are sorted, how referenced.
    A row without a CAR group is an error: it used to skip its channel without a word (write
    ``none`` to skip one)."""
    try:
        rows = layout.load_layout(directory)
    except UnicodeDecodeError:
        raise LayoutError(f"{paths.layout_path(directory)}: not a UTF-8 text file") from None
    blank = [r.electrode_ind for r in rows if not r.car_group]
    if blank:
        raise LayoutError(f"{paths.layout_path(directory)}: electrode_ind {blank[0]} has no CAR_group (write none to "
                          f"skip a channel)" + (f"; {len(blank)} such rows" if len(blank) > 1 else ""))
    return rows


def car_group_ids(rows, n_channels: int, use_car: bool) -> list[int]:
    return layout.car_groups(rows, n_channels, use_car)


def sorted_electrodes(directory: str | os.PathLike) -> list[int]:
    return sorted(r.electrode_ind for r in read_layout(directory) if r.sorted)


def init(directory: str | os.PathLike, force: bool = False, qa: bool = True, auto_car: bool = False,
         pictures: bool = True):
    """Write ``<name>.info``, the electrode layout and ``<name>.params`` (kept if they exist,
    unless ``force``) and, with ``qa``, the raw-data QA under ``DIR/QA_output`` (its pictures too
    if ``pictures``); ``auto_car`` splits CAR groups by channel correlation in a new layout.
    Returns init_recording's InitResult."""
    return init_experiment(directory, force=force, qa=qa, auto_car=auto_car, pictures=pictures)


def needs_init(directory: str | os.PathLike) -> bool:
    return not all(p.exists() for p in (paths.info_path(directory), paths.layout_path(directory),
                                        paths.params_path(directory)))
