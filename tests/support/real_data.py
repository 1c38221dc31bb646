"""The real recordings of ../shared/data/real (beside the repository) as tests use them: copied
into a test's own folder (the shared copies are read-only and never written into), and read
independently of blechrs (neo directly, numpy on the raw file)."""

from __future__ import annotations

import shutil
import stat
import warnings
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
REAL = REPO.parent / "shared" / "data" / "real"
OPEN_EPHYS = REAL / "openephys-mouse-barrel-stereotrode" / "OpenEphys_SampleData_1"
NEURALYNX = REAL / "neuralynx-digitallynx-hamburg-2013" / "original_data"
LOCUST_RAW = REAL / "locust-tridesclous-tetrode" / "locust_trial_01.raw"
POUZAT = REAL / "locust-pouzat-tetrode"


def real(path: Path) -> Path:
    if not path.exists():
        pytest.fail(f"{path} is missing: the real recordings must sit in ../shared/data/real beside the repository")
    return path


def copy_folder(src: Path, dst: Path, names: list[str] | None = None) -> Path:
    """A writable copy of ``src`` (or of the files ``names`` in it) as the folder ``dst``."""
    src = real(src)
    dst.mkdir(parents=True, exist_ok=True)
    for p in sorted(src.iterdir()) if names is None else [src / n for n in names]:
        if p.is_file():
            shutil.copyfile(p, dst / p.name)
            (dst / p.name).chmod(stat.S_IRUSR | stat.S_IWUSR | stat.S_IRGRP | stat.S_IROTH)
    return dst


def neo_signal(kind: str, directory: Path) -> tuple[np.ndarray, float, list[int], list[str], np.ndarray]:
    """neo's own reading: (int16 samples x channels of every segment concatenated, sampling rate,
    first sample of each segment, channel names, gain in uV per count per channel)."""
    from neo import rawio

    if kind == "openephys":
        r = rawio.OpenEphysRawIO(dirname=str(directory))
    else:
        with warnings.catch_warnings():  # neo 0.14 renames the option; its meaning stays
            warnings.simplefilter("ignore", FutureWarning)
            r = rawio.NeuralynxRawIO(dirname=str(directory), strict_gap_mode=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        r.parse_header()
    parts = [r.get_analogsignal_chunk(block_index=0, seg_index=s, stream_index=0) for s in range(r.segment_count(0))]
    starts = list(np.cumsum([0] + [len(p) for p in parts[:-1]]).astype(int))
    ch = r.header["signal_channels"]
    assert set(ch["units"]) == {"uV"}
    return (np.concatenate(parts).astype(np.int16), float(r.get_signal_sampling_rate(0)), starts,
            [str(n) for n in ch["name"]], ch["gain"].astype(float))


def locust_raw() -> np.ndarray:
    """The tridesclous locust trial as numpy reads it: int16, samples x 4 channels."""
    return np.fromfile(real(LOCUST_RAW), dtype="<i2").reshape(-1, 4)
