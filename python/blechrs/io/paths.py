"""Where every file of a recording folder lives: the one place that names them.

``DIR/<name>.h5`` (unit store), ``<name>.params``, ``<name>.info``, ``<name>_electrode_layout.csv``,
``blechrs_work/electrodeNN.npz`` (per-electrode work), ``blechrs_plots/`` (pictures, index.html),
``QA_output/`` (raw and unit QA), ``trial_info_frame.csv`` (the trial table), ``phy/`` (the
export for phy's template-gui) and ``<name>_phy.csv`` (the sort file an import from phy applied).
``<name>`` is the folder's name.
"""

from __future__ import annotations

import os
from pathlib import Path

WORK_DIR = "blechrs_work"
PLOT_DIR = "blechrs_plots"
QA_DIR = "QA_output"
TRIAL_TABLE_NAME = "trial_info_frame.csv"
PHY_DIR = "phy"


def recording_name(directory: str | os.PathLike) -> str:
    return Path(directory).resolve().name


def h5_path(directory: str | os.PathLike) -> Path:
    return Path(directory) / f"{recording_name(directory)}.h5"


def params_path(directory: str | os.PathLike) -> Path:
    return Path(directory) / f"{recording_name(directory)}.params"


def info_path(directory: str | os.PathLike) -> Path:
    return Path(directory) / f"{recording_name(directory)}.info"


def layout_path(directory: str | os.PathLike) -> Path:
    return Path(directory) / f"{recording_name(directory)}_electrode_layout.csv"


def work_dir(directory: str | os.PathLike) -> Path:
    return Path(directory) / WORK_DIR


def electrode_path(directory: str | os.PathLike, electrode: int) -> Path:
    return work_dir(directory) / f"electrode{int(electrode):02d}.npz"


def plot_dir(directory: str | os.PathLike) -> Path:
    return Path(directory) / PLOT_DIR


def qa_dir(directory: str | os.PathLike) -> Path:
    return Path(directory) / QA_DIR


def trial_table_path(directory: str | os.PathLike) -> Path:
    return Path(directory) / TRIAL_TABLE_NAME


def phy_dir(directory: str | os.PathLike) -> Path:
    """The default folder of ``blechrs export phy``."""
    return Path(directory) / PHY_DIR


def phy_sort_file_path(directory: str | os.PathLike) -> Path:
    """The sort file ``blechrs import phy`` writes and applies."""
    return Path(directory) / f"{recording_name(directory)}_phy.csv"
