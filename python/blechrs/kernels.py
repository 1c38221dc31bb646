"""The signal engine (Rust, multi-threaded, GIL released) as plain numpy functions.

Every function here touches every sample, so it runs in ``blechrs._native``; this module only
documents it. Threads: ``BLECHRS_THREADS`` (unset or 0 = all cores); ``extract_electrodes`` takes
``params["n_jobs"]`` first.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from blechrs import _native


def butter_bandpass(order: int, low: float, high: float, fs: float) -> tuple[np.ndarray, np.ndarray]:
    """Butterworth band-pass coefficients ``(b, a)``, float64.

    The same design as ``scipy.signal.butter(order, [low, high], 'bandpass', fs=fs)`` (bilinear
    transform, pre-warped edges); ``order`` is per edge, so the band-pass has ``2 * order`` poles.
    Raises ValueError unless ``0 < low < high < fs / 2``.
    """
    return _native.butter_bandpass(int(order), float(low), float(high), float(fs))


def bandpass(
    x: np.ndarray, fs: float, low: float = 300.0, high: float = 3000.0, order: int = 2, scale: float = 1.0
) -> np.ndarray:
    """Zero-phase Butterworth band-pass of ``x * scale``; float32 of ``x``'s shape.

    Equals ``scipy.signal.filtfilt(b, a, x * scale)`` with ``(b, a) = butter_bandpass(...)`` and
    scipy's default odd padding (``3 * (2 * order + 1)`` samples), computed in float64.
    ``x``: int16, float32 or float64, 1-D (samples) or 2-D (channels x samples), any strides.
    Channels run in parallel. Raises ValueError for a band at or above Nyquist, a signal not
    longer than the padding, or a NaN/inf (naming the channel); TypeError for another dtype.
    """
    return _native.bandpass(x, float(fs), float(low), float(high), int(order), float(scale))
