"""Real recordings of ../shared/data/real written into Intan folders with blechrs.simulate's
writers (the samples as they are: no simulation), for tests that sort real signals."""

from __future__ import annotations

import gzip
import os
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from blechrs.simulate.intan_files import open_writer

REAL = Path(os.environ.get("BLECHRS_SHARED", Path(__file__).resolve().parents[3] / "shared")) / "data" / "real"
LOCUST = REAL / "locust-tridesclous-tetrode"
POUZAT = REAL / "locust-pouzat-tetrode"


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
