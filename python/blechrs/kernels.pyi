"""Type stubs for blechrs.kernels (the Rust signal engine); see kernels.py for the docstrings."""

from typing import Any, Callable, Sequence

import numpy as np
import numpy.typing as npt

from blechrs._native import SampleSource

def butter_bandpass(order: int, low: float, high: float, fs: float) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """scipy.signal.butter(order, [low, high], 'bandpass', fs=fs) designed in Rust."""

def bandpass(
    x: npt.NDArray[np.int16] | npt.NDArray[np.float32] | npt.NDArray[np.float64],
    fs: float,
    low: float = 300.0,
    high: float = 3000.0,
    order: int = 2,
    scale: float = 1.0,
) -> npt.NDArray[np.float32]:
    """scipy.signal.filtfilt(b, a, x * scale) as float32, 1-D or channels x samples."""

def common_average_reference(x: npt.NDArray[Any], groups: Sequence[int]) -> tuple[npt.NDArray[np.float32], list[int]]:
    """blech_clust HEAD's normalised CAR by groups (-1 = none); returns (referenced, dead channels)."""

def noise_level(
    x: npt.NDArray[Any], fs: float, window_s: float | None = None, subsample: int = 1
) -> npt.NDArray[np.float64]:
    """median(|x - median|) / 0.6745 per window (remainder folded into the last window), over
    every ``subsample``-th sample of each window."""

def detect_spikes(
    x: npt.NDArray[Any],
    thresholds: float | Sequence[float] | npt.NDArray[np.float64],
    fs: float,
    window_s: float | None = None,
    polarity: str = "both",
    dead_time_ms: float = 0.5,
    subsample: int = 1,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int8]]:
    """One event per excursion (merged within the dead time) at its extremum: (times, polarity)."""

def extract_waveforms(
    x: npt.NDArray[Any], times: npt.NDArray[np.int64], before: int, after: int, align: bool = True
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float64], int]:
    """(waveforms n x (before+after), refined times, number dropped at the edges)."""

def recording_cutoff(
    x: npt.NDArray[Any],
    fs: float,
    voltage_cutoff: float = 10000,
    max_breach_rate: float = 1,
    max_secs_above_cutoff: float = 60,
    max_mean_breach_rate_persec: float = 100,
) -> int:
    """Samples kept by blech_clust's headstage-fell-off test (spec 4.2)."""

def extract_electrodes(
    source: npt.NDArray[np.int16] | SampleSource,
    electrodes: Sequence[int],
    car_groups: Sequence[int],
    params: dict[str, Any],
    progress: Callable[[int, int], None] | None = None,
) -> list[dict[str, Any]]:
    """Streamed CAR -> band-pass -> cutoff -> threshold -> detect -> waveforms per electrode."""
