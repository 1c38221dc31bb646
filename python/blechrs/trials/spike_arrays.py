"""Spike-train and EMG arrays around trial onsets (blech_clust's ``blech_make_arrays.py``, spec 8.1).

* **Bins are half-open and floor-based.** A spike at sample ``t`` of a trial with onset ``s`` goes
  to bin ``floor((t - s) / samples_per_bin) + pre_bins`` if that lies in ``[0, n_bins)``: the window
  is ``[s - pre, s + post)``. blech_clust truncates toward zero (``int()``), which makes the bin at
  the onset two bins wide, and its closed upper edge can index one past the array.
* **Counts, not 0/1.** ``spike_array`` holds the number of spikes per bin as unsigned integers
  (``uint8``; ``uint16``/``uint32`` only if a bin holds more than 255 spikes). At 1 ms bins this
  equals blech_clust's 0/1 array except for a unit firing twice within one ms; it is 8x smaller
  than float64 (64 units x 120 trials x 7000 bins is 54 MB, not 430 MB).
* **Trials near the ends of the recording are kept**, so trial ``k`` of a digital input is always
  its ``k``-th delivery. Bins outside the recording hold 0 spikes (in the EMG array: NaN);
  :func:`window_bins` gives the range of bins fully inside the recording.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from blechrs.errors import ParamsError
from blechrs.io.recording import MICROVOLTS_PER_BIT


def bin_layout(durations_ms: Sequence[float], bin_ms: float, sampling_rate: float) -> tuple[int, int, float]:
    """(bins before the onset, bins after it, samples per bin); a ParamsError for a window that is
    not a whole number of bins."""
    if len(durations_ms) != 2 or min(durations_ms) < 0:
        raise ParamsError(f"spike_array_durations must be [ms before, ms after] >= 0, not {list(durations_ms)}")
    if not bin_ms > 0:
        raise ParamsError(f"spike_array_bin_ms must be > 0, not {bin_ms}")
    pre, post = (d / bin_ms for d in durations_ms)
    if abs(pre - round(pre)) > 1e-9 or abs(post - round(post)) > 1e-9:
        raise ParamsError(f"spike_array_durations {list(durations_ms)} must be whole multiples of spike_array_bin_ms {bin_ms}")
    return int(round(pre)), int(round(post)), sampling_rate * bin_ms / 1000.0


def window_bins(
    onsets: np.ndarray,
    sampling_rate: float,
    durations_ms: Sequence[float] = (2000.0, 5000.0),
    bin_ms: float = 1.0,
    n_samples: int | None = None,
) -> np.ndarray:
    """Per trial, ``[first, end)`` of the bins lying wholly inside samples ``[0, n_samples)``."""
    pre_bins, post_bins, spb = bin_layout(durations_ms, bin_ms, sampling_rate)
    n_bins = pre_bins + post_bins
    s = np.asarray(onsets, dtype=np.int64)
    w0 = s - pre_bins * spb  # may be fractional when spb is
    first = np.clip(np.ceil(-w0 / spb - 1e-9), 0, n_bins).astype(np.int64)
    if n_samples is None:
        end = np.full(len(s), n_bins, dtype=np.int64)
    else:
        end = np.clip(np.floor((n_samples - w0) / spb + 1e-9), 0, n_bins).astype(np.int64)
    return np.stack([first, np.maximum(end, first)], axis=1) if len(s) else np.zeros((0, 2), np.int64)


def spike_array(
    unit_times: Sequence[np.ndarray],
    onsets: np.ndarray,
    sampling_rate: float,
    durations_ms: Sequence[float] = (2000.0, 5000.0),
    bin_ms: float = 1.0,
) -> np.ndarray:
    """Spike counts, ``(n_trials, n_units, n_bins)`` unsigned integers.

    ``unit_times[u]``: unit ``u``'s spike times in samples (any order). ``onsets``: trial onsets in
    samples, in trial order. Bin ``k`` of a trial with onset ``s`` covers samples
    ``[s - pre + k*spb, s - pre + (k+1)*spb)`` with ``spb = sampling_rate * bin_ms / 1000``.
    """
    pre_bins, post_bins, spb = bin_layout(durations_ms, bin_ms, sampling_rate)
    n_bins = pre_bins + post_bins
    s = np.asarray(onsets, dtype=np.int64)
    n_trials, n_units = len(s), len(unit_times)
    integral = abs(spb - round(spb)) < 1e-9
    if integral:
        spb_i = int(round(spb))
        lo_edge = s - pre_bins * spb_i
        hi_edge = s + post_bins * spb_i
    else:  # integer t >= x  <=>  t >= ceil(x);  t < x  <=>  t < ceil(x)
        lo_edge = np.ceil(s - pre_bins * spb).astype(np.int64)
        hi_edge = np.ceil(s + post_bins * spb).astype(np.int64)
    flat_parts = []
    for u, times in enumerate(unit_times):
        t = np.asarray(times, dtype=np.int64)
        if t.size == 0 or n_trials == 0:
            continue
        if np.any(t[1:] < t[:-1]):
            t = np.sort(t, kind="stable")
        lo = np.searchsorted(t, lo_edge, side="left")
        hi = np.searchsorted(t, hi_edge, side="left")
        counts = hi - lo
        total = int(counts.sum())
        if total == 0:
            continue
        trial = np.repeat(np.arange(n_trials, dtype=np.int64), counts)
        # indices lo[k] .. hi[k]-1 of every trial, concatenated
        idx = np.arange(total, dtype=np.int64) - np.repeat(np.cumsum(counts) - counts, counts) + np.repeat(lo, counts)
        rel = t[idx] - s[trial]
        if integral:
            b = (rel + pre_bins * spb_i) // spb_i
        else:
            b = np.clip(np.floor(rel / spb).astype(np.int64) + pre_bins, 0, n_bins - 1)
        flat_parts.append((trial * n_units + u) * n_bins + b)
    flat = np.concatenate(flat_parts) if flat_parts else np.zeros(0, np.int64)
    where, counts = np.unique(flat, return_counts=True)
    top = int(counts.max()) if counts.size else 0
    dtype = np.uint8 if top <= 0xFF else np.uint16 if top <= 0xFFFF else np.uint32
    out = np.zeros((n_trials, n_units, n_bins), dtype=dtype)
    out.reshape(-1)[where] = counts
    return out


class TrialBlocks:
    """``spike_array(unit_times, onsets, ...)`` read a trial at a time (``blocks[k]``, as the store
    writes it) and computed ``BLOCK`` trials at a time: the whole array of a long session (trials x
    units x bins) is too large to hold (720 trials x 120 units x 7000 bins: 600 MB). ``shape`` and
    ``dtype`` are the whole array's (``dtype`` takes one pass over the blocks)."""

    BLOCK = 32

    def __init__(self, unit_times: Sequence[np.ndarray], onsets: np.ndarray, sampling_rate: float,
                 durations_ms: Sequence[float] = (2000.0, 5000.0), bin_ms: float = 1.0):
        pre_bins, post_bins, _ = bin_layout(durations_ms, bin_ms, sampling_rate)
        self._unit_times = [np.asarray(t, dtype=np.int64) for t in unit_times]
        self._onsets = np.asarray(onsets, dtype=np.int64)
        self._bins = (sampling_rate, tuple(durations_ms), bin_ms)
        self.shape = (len(self._onsets), len(self._unit_times), pre_bins + post_bins)
        self.size = int(np.prod(self.shape))
        self._cached: tuple[int, np.ndarray] | None = None
        self._dtype: np.dtype | None = None

    def _block(self, b: int) -> np.ndarray:
        if self._cached is None or self._cached[0] != b:
            onsets = self._onsets[b * self.BLOCK:(b + 1) * self.BLOCK]
            self._cached = (b, spike_array(self._unit_times, onsets, *self._bins))
        return self._cached[1]

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, k: int) -> np.ndarray:
        return self._block(k // self.BLOCK)[k % self.BLOCK]

    @property
    def dtype(self) -> np.dtype:
        if self._dtype is None:
            n_blocks = -(-self.shape[0] // self.BLOCK)
            self._dtype = np.result_type(np.uint8, *[self._block(b).dtype for b in range(n_blocks)])
        return self._dtype

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        whole = np.zeros(self.shape, dtype=self.dtype)
        for k in range(self.shape[0]):
            whole[k] = self[k]
        return whole if dtype is None else whole.astype(dtype)


def emg_array(
    traces: Any,
    channels: Sequence[int],
    onsets: np.ndarray,
    sampling_rate: float,
    durations_ms: Sequence[float] = (2000.0, 5000.0),
    bin_ms: float = 1.0,
    n_samples: int | None = None,
    scale: float = MICROVOLTS_PER_BIT,
) -> np.ndarray:
    """EMG in microvolts averaged per bin, ``(n_channels, n_trials, n_bins)`` float32 (spec 8.1).

    ``traces``: anything indexable as ``traces[channel, a:b]`` (an int16 channels x samples array,
    a memmap, ``Recording.amplifier``). The per-bin mean is blech_clust's 30-sample averaging (a
    boxcar low-pass). Bins not wholly inside the recording are NaN.
    """
    pre_bins, post_bins, spb = bin_layout(durations_ms, bin_ms, sampling_rate)
    n_bins = pre_bins + post_bins
    s = np.asarray(onsets, dtype=np.int64)
    if n_samples is None:
        n_samples = int(np.shape(traces)[-1])
    out = np.full((len(channels), len(s), n_bins), np.nan, dtype=np.float32)
    # bin k spans samples [edge[k], edge[k+1]) relative to the window start
    edges = np.ceil(np.arange(n_bins + 1) * spb - 1e-9).astype(np.int64)
    width = int(edges[-1])
    for k, onset in enumerate(s):
        a = int(np.ceil(onset - pre_bins * spb - 1e-9))
        a0, b0 = max(a, 0), min(a + width, n_samples)
        if b0 <= a0:
            continue
        ok = (edges[:-1] + a >= 0) & (edges[1:] + a <= n_samples)
        if not ok.any():
            continue
        first, last = int(np.argmax(ok)), int(len(ok) - np.argmax(ok[::-1]))
        lo, hi = int(edges[first]) + a, int(edges[last]) + a
        x = np.asarray(traces[list(channels), lo:hi], dtype=np.float64).reshape(len(channels), hi - lo) * scale
        sums = np.add.reduceat(x, edges[first:last] - edges[first], axis=1)  # one read per trial
        out[:, k, first:last] = sums / np.diff(edges[first : last + 1])
    return out
