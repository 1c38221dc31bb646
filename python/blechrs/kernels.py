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


def common_average_reference(x: np.ndarray, groups: Sequence[int]) -> tuple[np.ndarray, list[int]]:
    """Common average reference by groups, as blech_clust HEAD (spec 3.2), float32 out.

    ``groups[i]`` is channel i's group id (-1 = not referenced). Each channel is normalised as
    ``(x - median) / MAD`` with both statistics from every 100th sample (MAD unscaled); the
    group's reference is the mean of its normalised channels and each member becomes
    ``x - MAD * reference`` (blech_clust's ``((x-med)/MAD - ref) * MAD + med``, not truncated to
    int). A flat channel (MAD 0) is left out of the mean and unchanged; it is listed in the
    returned dead channels. Groups with fewer than two live channels are unchanged.
    """
    return _native.common_average_reference(x, [int(g) for g in groups])


def noise_level(x: np.ndarray, fs: float, window_s: float | None = None, subsample: int = 1) -> np.ndarray:
    """Noise ``median(|x - median(x)|) / 0.6745`` per window, float64.

    ``window_s=None``: one value for the whole trace. Otherwise consecutive windows of
    ``round(window_s * fs)`` samples; the remainder is folded into the last window (a trace
    shorter than two windows is one window). 2-D input gives channels x windows.
    ``subsample=N`` takes both medians over every Nth sample of each window (numpy's
    ``x[a:b:N]``), as ``extract_electrodes`` does with ``params["noise_subsample"]``; 1 = exact.
    """
    return _native.noise_level(x, float(fs), None if window_s is None else float(window_s), int(subsample))


def detect_spikes(
    x: np.ndarray,
    thresholds: float | Sequence[float] | np.ndarray,
    fs: float,
    window_s: float | None = None,
    polarity: str = "both",
    dead_time_ms: float = 0.5,
    subsample: int = 1,
) -> tuple[np.ndarray, np.ndarray]:
    """Events of a filtered trace: ``(times int64, polarity int8)``, sorted by time.

    Windows as in :func:`noise_level`; ``thresholds`` is one value or one per window, and each
    window is centred on its median (of every ``subsample``-th sample of the window, as in
    :func:`noise_level`). A sample is supra-threshold when ``x - centre <= -th``
    (negative) or ``>= th`` (positive), for the polarities asked for. Supra-threshold samples
    within ``dead_time_ms`` of the previous one (at least adjacent) are one event, whatever their
    sign, so both lobes of a spike give one event; the event is at the largest ``|x - centre|``
    (first on a tie) with that sample's sign. The last event is kept. A threshold of 0 detects
    nothing in its window.
    """
    th = np.asarray(thresholds, dtype=np.float64)
    th = float(th) if th.ndim == 0 else th.tolist()
    return _native.detect_spikes(
        x, th, float(fs), None if window_s is None else float(window_s), polarity, float(dead_time_ms), int(subsample)
    )


def extract_waveforms(
    x: np.ndarray, times: np.ndarray, before: int, after: int, align: bool = True
) -> tuple[np.ndarray, np.ndarray, int]:
    """Snippets ``x[t - before : t + after]``: ``(float32 n x (before+after), times float64, n_dropped)``.

    ``align=True``: a parabola through the extremum and its neighbours gives the sub-sample spike
    time (returned), and the snippet is resampled through it with cubic (Catmull-Rom)
    interpolation, so the extremum sits at index ``before``; the window then needs 2 extra
    samples each side. Events whose window leaves ``x`` are dropped and counted.
    """
    t = np.ascontiguousarray(times, dtype=np.int64)
    return _native.extract_waveforms(x, t, int(before), int(after), bool(align))


def recording_cutoff(
    x: np.ndarray,
    fs: float,
    voltage_cutoff: float = 10000,
    max_breach_rate: float = 1,
    max_secs_above_cutoff: float = 60,
    max_mean_breach_rate_persec: float = 100,
) -> int:
    """Samples to keep of a filtered trace (uV): blech_clust's "headstage fell off" test (spec 4.2).

    Counts samples above ``voltage_cutoff`` (positive only). If the breach rate per second
    >= ``max_breach_rate`` and the seconds with a breach >= ``max_secs_above_cutoff`` and their
    mean count >= ``max_mean_breach_rate_persec``, the trace is cut at the start of the first
    second with more than ``max_mean_breach_rate_persec`` breaches; otherwise it is kept whole.
    """
    return _native.recording_cutoff(
        x, float(fs), float(voltage_cutoff), float(max_breach_rate), float(max_secs_above_cutoff),
        float(max_mean_breach_rate_persec),
    )


def extract_electrodes(
    source: Any,
    electrodes: Sequence[int],
    car_groups: Sequence[int],
    params: dict[str, Any],
    progress: Callable[[int, int], None] | None = None,
) -> list[dict[str, Any]]:
    """CAR -> band-pass -> cutoff -> threshold -> detect -> waveforms for many electrodes.

    ``source``: an int16 channels x samples array (any strides, np.memmap fine: read by chunks)
    or a :class:`blechrs._native.SampleSource`. ``electrodes``: channel indices to output.
    ``car_groups[i]``: CAR group of channel i (-1 = none; empty = no CAR). ``params``: SortParams
    fields (missing keys take SortParams defaults). ``progress(done, total)`` is called after each
    chunk. Streams in chunks (one noise window each), electrodes in parallel (``n_jobs`` threads,
    0 = ``BLECHRS_THREADS`` or all cores), GIL released; samples are scaled by 0.195 uV/bit.

    Returns one dict per electrode: ``electrode, times`` (int64, sample of the extremum),
    ``times_subsample`` (float64), ``polarity`` (int8), ``waveforms`` (float32 n x L, uV,
    extremum at index ``samples_before``), ``threshold`` (uV; median of the window thresholds),
    ``mad_val`` (uV, median |x - median| of the filtered trace), ``noise`` (float64 per window),
    ``cutoff_sample``, ``n_edge_dropped``, ``dead`` (flat channel). Window medians and MADs use
    every ``noise_subsample``-th sample of the window (``y[a:b:N]``); ``mad_val`` and a global
    threshold use ``y[:cutoff:S]`` with ``S = max(noise_subsample, ceil(n_samples / 2**20))``.
    """
    from blechrs.params import SortParams

    full = SortParams().to_flat()
    full.update(params)
    if isinstance(source, np.ndarray):
        if source.dtype != np.int16:
            raise TypeError(f"source must be an int16 array (channels x samples), not dtype {source.dtype}")
        if source.ndim != 2:
            raise ValueError(f"source must be 2-D (channels x samples), not {source.ndim}-D")
    return _native.extract_electrodes(
        source, [int(e) for e in electrodes], [int(g) for g in car_groups], full, progress
    )
