"""Quality metrics of one unit (a set of events of one electrode).

All computed from the unit's own data, no classifier:

- ``snr``: blech_clust's SNR, mean over events of max |waveform| divided by the electrode's
  ``mad_val`` (median |x - median| of the filtered trace).
- ``isi_violations_1ms`` / ``isi_violations_2ms``: % of events followed within 1 / 2 ms by another
  (blech_clust's denominator: the event count).
- ``contamination``: fraction of the unit's events estimated to come from other neurons, from the
  refractory-period violations (Hill, Mehta & Kleinfeld 2011), between the 0.5 ms censored period
  of detection and a 2 ms refractory period.
- ``firing_rate``: events per second over the recording.
- ``isolation_distance`` and ``l_ratio`` (Schmitzer-Torbert et al. 2005) in the electrode's
  feature space.
- ``width_ms``: trough-to-peak time of the mean waveform (the extremum to the largest opposite
  deflection after it); narrow units are fast spiking.
- ``threshold_share``: of the events above the detection threshold, the share within 1 noise SD
  (``mad_val`` / 0.6745) of it: ~0 for a unit well above it, ~0.68 for one whose mean amplitude
  sits on it (half its spikes undetected), more for the upper tail of activity below it.
"""

from __future__ import annotations

import math

import numpy as np

from blechrs.core.rows import mean_rows, rows, spans

REFRACTORY_MS = 2.0
CENSORED_MS = 0.5


def isi_violations(times: np.ndarray, sampling_rate: float) -> tuple[float, float]:
    """(% of ISIs < 1 ms, % < 2 ms), relative to the number of events as blech_clust does."""
    t = np.sort(np.asarray(times, dtype=np.float64))
    if len(t) < 2:
        return 0.0, 0.0
    isi_ms = np.diff(t) * (1000.0 / sampling_rate)
    n = len(t)
    return 100.0 * np.count_nonzero(isi_ms < 1.0) / n, 100.0 * np.count_nonzero(isi_ms < 2.0) / n


def snr(waveforms: np.ndarray, mad_val: float, idx=None, dtype=None) -> float:
    """blech_clust's SNR: mean of max |waveform| over events / mad_val; the events ``idx`` (None:
    all), read as ``dtype`` (default: theirs) a chunk at a time (core/rows.py)."""
    w = np.asarray(waveforms)
    take = np.arange(len(w)) if idx is None else np.asarray(idx)
    if len(take) == 0 or not mad_val or mad_val <= 0:
        return 0.0
    dtype = w.dtype if dtype is None else dtype
    peaks = [np.max(np.abs(rows(w, take[a:b], dtype)), axis=1) for a, b in spans(len(take))]
    return float(np.mean(np.concatenate(peaks)) / mad_val)


def contamination(times: np.ndarray, sampling_rate: float, duration_s: float,
                  refractory_ms: float = REFRACTORY_MS, censored_ms: float = CENSORED_MS) -> float:
    """Estimated fraction of contaminating events (0..1) from refractory violations.

    Solves rv = 2 (tau_r - tau_c) N^2 c (1 - c) / T for c (Hill et al. 2011); 1.0 when the
    violations exceed what even half contamination would give.
    """
    t = np.sort(np.asarray(times, dtype=np.float64))
    n = len(t)
    if n < 2 or duration_s <= 0:
        return 0.0
    isi_ms = np.diff(t) * (1000.0 / sampling_rate)
    rv = np.count_nonzero(isi_ms < refractory_ms)
    tau = (refractory_ms - censored_ms) / 1000.0
    ratio = rv * duration_s / (2.0 * tau * n * n)
    if ratio >= 0.25:
        return 1.0
    return float((1.0 - math.sqrt(1.0 - 4.0 * ratio)) / 2.0)


def chi2_sf(x: np.ndarray, df: int) -> np.ndarray:
    """Survival function of the chi-square distribution with integer df (closed form, no scipy)."""
    x = np.maximum(np.asarray(x, dtype=np.float64), 0.0)
    half = x / 2.0
    if df % 2 == 0:
        term = np.ones_like(x)
        total = np.ones_like(x)
        for k in range(1, df // 2):
            term = term * half / k
            total += term
        return np.exp(-half) * total
    root = np.sqrt(x)
    flat = (root / math.sqrt(2.0)).ravel()
    sf = np.fromiter(map(math.erfc, flat.tolist()), dtype=np.float64, count=flat.size).reshape(x.shape)
    term = root * math.sqrt(2.0 / math.pi) * np.exp(-half)
    for k in range(1, (df - 1) // 2 + 1):
        sf = sf + term
        term = term * x / (2 * k + 1)
    return sf


def _mahalanobis_sq(features: np.ndarray, member: np.ndarray) -> np.ndarray | None:
    inside = features[member]
    if len(inside) <= features.shape[1] + 1:
        return None
    mu = inside.mean(axis=0)
    cov = np.cov(inside, rowvar=False)
    inv = np.linalg.pinv(np.atleast_2d(cov))
    # a chunk of events at a time: the same bits (core/rows.py), without n x d copies
    d2 = np.empty(len(features))
    for a, b in spans(len(features)):
        diff = features[a:b] - mu
        d2[a:b] = np.einsum("ij,ij->i", diff @ inv, diff)
    return d2


def isolation_distance(features: np.ndarray, member: np.ndarray, d2: np.ndarray | None = None) -> float:
    """Squared Mahalanobis distance of the n-th closest non-member (n = members); nan if there
    are fewer non-members than members, inf if there are none. ``d2``: the distances of every
    event to the members, when already computed."""
    member = np.asarray(member, dtype=bool)
    n_in, n_out = int(member.sum()), int((~member).sum())
    if n_out == 0:
        return float("inf")
    if n_in > n_out:
        return float("nan")
    if d2 is None:
        d2 = _mahalanobis_sq(np.asarray(features, dtype=np.float64), member)
    if d2 is None:
        return float("nan")
    return float(np.partition(d2[~member], n_in - 1)[n_in - 1])


def l_ratio(features: np.ndarray, member: np.ndarray, d2: np.ndarray | None = None) -> float:
    """Sum over non-members of the chi-square tail of their distance, per member event."""
    member = np.asarray(member, dtype=bool)
    n_in = int(member.sum())
    if (~member).sum() == 0:
        return 0.0
    f = np.asarray(features, dtype=np.float64)
    if d2 is None:
        d2 = _mahalanobis_sq(f, member)
    if d2 is None or n_in == 0:
        return float("nan")
    return float(np.sum(chi2_sf(d2[~member], f.shape[1])) / n_in)


def waveform_width_ms(mean_waveform: np.ndarray, peak_index: int, sampling_rate: float) -> float:
    """Trough-to-peak time (ms): from the extremum at ``peak_index`` to the largest deflection of
    the opposite sign after it."""
    w = np.asarray(mean_waveform, dtype=np.float64)
    if len(w) == 0 or not 0 <= peak_index < len(w) - 1:
        return float("nan")
    sign = 1.0 if w[peak_index] >= 0 else -1.0
    after = -sign * w[peak_index:]
    return float(np.argmax(after) * 1000.0 / sampling_rate)


def threshold_share(peak_amplitudes: np.ndarray, mad_val: float, threshold_sds: float) -> float:
    """Of the events whose |extremum| is at or above ``threshold_sds`` noise SDs (noise SD =
    ``mad_val`` / 0.6745), the share below ``threshold_sds`` + 1: how much of a unit sits just
    above the detection threshold. Events below it (a quieter noise window's detections, a
    matched filter's) say nothing about that and are left out. nan when no event is above it or
    there is no noise level."""
    a = np.abs(np.asarray(peak_amplitudes, dtype=np.float64))
    if len(a) == 0 or not mad_val or mad_val <= 0 or not np.isfinite(threshold_sds):
        return float("nan")
    sd = mad_val / 0.6745
    above = a >= threshold_sds * sd
    if not above.any():
        return float("nan")
    return float(np.count_nonzero(above & (a < (threshold_sds + 1.0) * sd)) / np.count_nonzero(above))


def unit_metrics(waveforms: np.ndarray, times: np.ndarray, features: np.ndarray, member: np.ndarray,
                 sampling_rate: float, mad_val: float, duration_s: float, peak_index: int, dtype=None,
                 threshold_sds: float = float("nan")) -> dict:
    """Every metric of the unit made of the events where ``member`` is True, its waveforms read as
    ``dtype`` (default: theirs) a chunk at a time (core/rows.py: no copy of the unit's waveforms).
    ``threshold_sds``: the detection threshold in noise SDs (``waveform_threshold``), for
    ``threshold_share``."""
    member = np.asarray(member, dtype=bool)
    waveforms = np.asarray(waveforms)
    dtype = waveforms.dtype if dtype is None else np.dtype(dtype)
    idx = np.flatnonzero(member)
    t = np.asarray(times)[member]
    v1, v2 = isi_violations(t, sampling_rate)
    mean_wf = mean_rows(waveforms, idx, dtype) if len(idx) else np.zeros(waveforms.shape[1])
    f = np.asarray(features, dtype=np.float64)
    d2 = _mahalanobis_sq(f, member) if 0 < member.sum() < len(member) else None  # shared by both
    peaks = rows(waveforms[:, peak_index], idx, dtype) if len(idx) else np.zeros(0)
    return dict(
        n_events=int(member.sum()),
        firing_rate=float(member.sum() / duration_s) if duration_s > 0 else 0.0,
        snr=snr(waveforms, mad_val, idx, dtype),
        amplitude_uv=float(np.median(np.abs(peaks))) if len(idx) else 0.0,
        isi_violations_1ms=v1,
        isi_violations_2ms=v2,
        contamination=contamination(t, sampling_rate, duration_s),
        isolation_distance=isolation_distance(f, member, d2),
        l_ratio=l_ratio(f, member, d2),
        width_ms=waveform_width_ms(mean_wf, peak_index, sampling_rate),
        threshold_share=threshold_share(peaks, mad_val, threshold_sds),
    )


def autocorrelogram(times: np.ndarray, sampling_rate: float, window_ms: float = 50.0,
                    bin_ms: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Counts of spike pairs by lag (the later spike's time minus the earlier's) in bins of
    ``bin_ms`` from -``window_ms`` to +``window_ms``: (counts, bin edges in ms). Symmetric; a spike
    is not paired with itself."""
    t = np.sort(np.asarray(times, dtype=np.int64))
    n_bins = max(1, int(round(window_ms / bin_ms)))
    edges = np.linspace(-n_bins * bin_ms, n_bins * bin_ms, 2 * n_bins + 1)
    w = window_ms * sampling_rate / 1000.0
    lags = []
    k = 1
    while k < len(t):  # offsets k = 1, 2, ... until no pair that far apart is within the window
        d = t[k:] - t[:-k]
        near = d <= w
        if not near.any():
            break
        lags.append(d[near])
        k += 1
    lag_ms = np.concatenate(lags) * (1000.0 / sampling_rate) if lags else np.zeros(0)
    half, _ = np.histogram(lag_ms, bins=edges[n_bins:])
    return np.concatenate([half[::-1], half]), edges
