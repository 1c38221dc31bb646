"""Where every file of a recording folder lives: the one place that names them.

``DIR/<name>.h5`` (unit store), ``<name>.params``, ``<name>.info``, ``<name>_electrode_layout.csv``,
``blechrs_work/electrodeNN.npz`` (per-electrode work), ``blechrs_plots/`` (pictures, index.html),
``QA_output/`` (raw and unit QA), ``trial_info_frame.csv`` (the trial table), ``phy/`` (the
export for phy's template-gui), ``<name>_phy.csv`` (the sort file an import from phy applied),
``<name>.nwb`` (``blechrs export nwb``), ``<name>_si_curation.json`` (the export as a SpikeInterface
curation), ``<name>_si.csv`` (the sort file an import of a SpikeInterface curation applied) and
``.blechrs.lock`` (the folder lock).
``<name>`` is the folder's name, or the name of the files the folder already holds
(``recording_name``).
"""

from __future__ import annotations

import os
from pathlib import Path

from blechrs.errors import LayoutError

WORK_DIR = "blechrs_work"
PLOT_DIR = "blechrs_plots"
QA_DIR = "QA_output"
AUTOSORT_REJECTED_NAME = "autosort_rejected.csv"
TRIAL_TABLE_NAME = "trial_info_frame.csv"
PHY_DIR = "phy"
LOCK_NAME = ".blechrs.lock"
#: The endings of the files that make a folder a blechrs recording (after <name>).
_OWN_FILES = (".params", ".info", "_electrode_layout.csv")


def recording_name(directory: str | os.PathLike) -> str:
    """The recording's name: the folder's, unless the folder holds one set of files of another name
    (``<name>.params``, ``.info``, ``_electrode_layout.csv``): then theirs, so a renamed or copied
    folder keeps using its files (and its edits) instead of getting fresh defaults beside them."""
    d = Path(directory).resolve()
    if any((d / f"{d.name}{end}").exists() for end in _OWN_FILES):
        return d.name
    stems = {p.name[: -len(end)] for end in _OWN_FILES for p in d.glob(f"*{end}")}
    if len(stems) > 1:
        raise LayoutError(f"{d}: holds the files of several recordings ({', '.join(sorted(stems))}); "
                          f"keep one set of <name>.params, <name>.info, <name>_electrode_layout.csv")
    return stems.pop() if stems else d.name


def h5_path(directory: str | os.PathLike) -> Path:
    return Path(directory) / f"{recording_name(directory)}.h5"


def params_path(directory: str | os.PathLike) -> Path:
    return Path(directory) / f"{recording_name(directory)}.params"


def info_path(directory: str | os.PathLike) -> Path:
    return Path(directory) / f"{recording_name(directory)}.info"


def layout_path(directory: str | os.PathLike) -> Path:
    return Path(directory) / f"{recording_name(directory)}_electrode_layout.csv"


def lock_path(directory: str | os.PathLike) -> Path:
    """The folder lock's file (:mod:`blechrs.pipeline.lock`). In the folder itself, not in
    ``blechrs_work/``: every stage takes the lock, and ``init``, ``plot`` or ``export phy`` on a
    folder should not create the work folder just to hold it."""
    return Path(directory) / LOCK_NAME


def autosort_sort_file_path(directory: str | os.PathLike) -> Path:
    """``<name>_autosort.csv``: the sort file auto-sort applied, for a person to edit."""
    return Path(directory) / f"{recording_name(directory)}_autosort.csv"


def autosort_stamp_path(directory: str | os.PathLike) -> Path:
    """The hash of the auto-sort file as blechrs wrote it: an edited file is never replaced."""
    return work_dir(directory) / "autosort_csv.sha256"


def work_dir(directory: str | os.PathLike) -> Path:
    return Path(directory) / WORK_DIR


def electrode_path(directory: str | os.PathLike, electrode: int) -> Path:
    return work_dir(directory) / f"electrode{int(electrode):02d}.npz"


#: The files the engine writes an electrode's events to while it extracts (``<prefix>.<what>``).
SPILL_FILES = ("times", "times_subsample", "polarity", "waveforms")


def spill_prefix(directory: str | os.PathLike, electrode: int) -> Path:
    """Where the extraction writes an electrode's events before its work file is made (see
    ``kernels.extract_electrodes``' ``spill``); removed once the work file is written."""
    return work_dir(directory) / f"electrode{int(electrode):02d}.extracting"


def spill_files(directory: str | os.PathLike) -> list[Path]:
    """Every extraction file left in the work folder (by a run that was killed)."""
    return sorted(p for what in SPILL_FILES for p in work_dir(directory).glob(f"electrode*.extracting.{what}"))


def plot_dir(directory: str | os.PathLike) -> Path:
    return Path(directory) / PLOT_DIR


def qa_dir(directory: str | os.PathLike) -> Path:
    return Path(directory) / QA_DIR


def reference_echoes_path(directory: str | os.PathLike) -> Path:
    """``QA_output/reference_echoes.csv``: the units auto-sort removed or flagged as reference echoes."""
    return qa_dir(directory) / "reference_echoes.csv"


def autosort_rejected_path(directory: str | os.PathLike) -> Path:
    """``QA_output/autosort_rejected.csv``: what auto-sort judged and did not keep as a unit, and why."""
    return qa_dir(directory) / AUTOSORT_REJECTED_NAME


def qa_warnings_path(directory: str | os.PathLike) -> Path:
    """``QA_output/warnings.txt``: the recording's and the referencing's warnings."""
    return qa_dir(directory) / "warnings.txt"


def trial_table_path(directory: str | os.PathLike) -> Path:
    return Path(directory) / TRIAL_TABLE_NAME


def phy_dir(directory: str | os.PathLike) -> Path:
    """The default folder of ``blechrs export phy``."""
    return Path(directory) / PHY_DIR


def nwb_path(directory: str | os.PathLike) -> Path:
    """The default file of ``blechrs export nwb``."""
    return Path(directory) / f"{recording_name(directory)}.nwb"


def nwb_stamp_path(directory: str | os.PathLike) -> Path:
    """What ``blechrs export nwb`` wrote (path, size, modification time): a file it wrote and
    nobody changed since is replaced by the next export; any other needs ``--force``."""
    return work_dir(directory) / "nwb_exports.json"


def phy_sort_file_path(directory: str | os.PathLike) -> Path:
    """The sort file ``blechrs import phy`` writes and applies."""
    return Path(directory) / f"{recording_name(directory)}_phy.csv"


def si_curation_path(directory: str | os.PathLike) -> Path:
    """The default file of ``blechrs export si-curation``."""
    return Path(directory) / f"{recording_name(directory)}_si_curation.json"


def si_sort_file_path(directory: str | os.PathLike) -> Path:
    """The sort file ``blechrs import si-curation`` writes and applies."""
    return Path(directory) / f"{recording_name(directory)}_si.csv"


#: A raw binary recording's description (``blechrs init DIR --format binary ...`` writes it; a
#: person may write it by hand): which file, sampling rate, channels, dtype, offset, gain.
BINARY_SPEC_NAME = "blechrs_binary.json"


def binary_spec_path(directory: str | os.PathLike) -> Path:
    return Path(directory) / BINARY_SPEC_NAME


def converted_recording_path(directory: str | os.PathLike) -> Path:
    """A recording of another format as blechrs's engine reads it: int16, interleaved by channel
    (``io.foreign_recording`` writes it once; ``converted_recording_meta_path`` says from what)."""
    return work_dir(directory) / "recording_int16.dat"


def converted_recording_meta_path(directory: str | os.PathLike) -> Path:
    return work_dir(directory) / "recording_int16.json"
