"""The real recordings of ../shared/data/real (beside the repository) as tests use them: copied
into a test's own folder (the shared copies are read-only and never written into), read
independently of blechrs (neo directly, numpy on the raw file), or written into Intan folders
with blechrs.simulate's writers (the samples as they are: no simulation) for tests that sort them."""

from __future__ import annotations

import gzip
import shutil
import stat
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from blechrs.simulate.intan_files import open_writer

REPO = Path(__file__).resolve().parents[2]
REAL = REPO.parent / "shared" / "data" / "real"
OPEN_EPHYS = REAL / "openephys-mouse-barrel-stereotrode" / "OpenEphys_SampleData_1"
NEURALYNX = REAL / "neuralynx-digitallynx-hamburg-2013" / "original_data"
LOCUST_RAW = REAL / "locust-tridesclous-tetrode" / "locust_trial_01.raw"
POUZAT = REAL / "locust-pouzat-tetrode"
LOCUST = REAL / "locust-tridesclous-tetrode"


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


def locust_tetrode() -> tuple[np.ndarray, float, int]:
    """The two 28.8 s trials of the locust tetrode, one after the other: (samples x 4 int16, each
    channel less its median (the ADC's offset), the sampling rate, the first sample of trial 2)."""
    parts = [np.fromfile(LOCUST / f"locust_trial_0{k}.raw", dtype="<i2").reshape(-1, 4) for k in (1, 2)]
    x = np.concatenate(parts).astype(np.int32)
    x -= np.median(x, axis=0).astype(np.int32)
    return x.astype(np.int16), 15000.0, len(parts[0])


def pouzat_tetrode() -> tuple[np.ndarray, float, int]:
    """Pouzat's locust tetrode (Locust_1..4, 20 s, 15 kHz, float64 already scaled to unit SD):
    samples x 4 int16 at 100 counts per SD (noise ~0.5 SD: ~10 uV in Intan units), the sampling
    rate, and the middle sample (the two halves the stability check compares)."""
    x = np.stack([np.frombuffer(gzip.open(POUZAT / f"Locust_{k}.dat.gz").read(), dtype="<f8") for k in range(1, 5)],
                 axis=1)
    return np.round(x * 100).astype(np.int16), 15000.0, len(x) // 2


def write_intan_folder(directory: Path, samples: np.ndarray, sampling_rate: float) -> Path:
    """``samples`` (samples x channels, int16 Intan units) as a one-file-per-channel Intan folder
    (info.rhd, time.dat, amp-A-NNN.dat), no digital inputs."""
    n_ch = samples.shape[1]
    sim = SimpleNamespace(fs=float(sampling_rate), seed=0, n_channels=n_ch, n_din=0, din_names=[], din_style="legacy",
                          channel_names=[f"A-{c:03d}" for c in range(n_ch)])
    w = open_writer(Path(directory), "one file per channel", sim, (3, 0), None, False, 0)
    try:
        w.write(0, np.ascontiguousarray(samples), np.zeros(len(samples), np.uint16))
    finally:
        w.close()
    return Path(directory)
