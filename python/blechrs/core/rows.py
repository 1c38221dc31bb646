"""Waveform rows in float64, a chunk at a time.

An electrode's waveforms stay float32, as extracted (4 bytes a sample); the sorting steps compute
in float64 on the rows they need. A float64 copy of every waveform (8 bytes a sample, plus its
products) was most of a clustering worker's memory on long recordings (issue 17: 519 MB for the
199 k events of one wire in an hour). The results are bit-identical to computing on the whole
float64 array: a mean over rows is summed row after row, as numpy sums down a column, and a
product is cut into row chunks of at least MIN_TAIL rows, for which BLAS gives each row the same
bits (a one-row product would take another BLAS path).
"""

from __future__ import annotations

import mmap
from typing import Iterator

import numpy as np

from blechrs.mapped import mapping

#: Rows per chunk (8192 x 75 samples x 8 bytes = 4.9 MB of float64).
CHUNK = 8192
#: A last chunk shorter than this joins the one before it.
MIN_TAIL = 1024
#: From a memory-mapped array: bytes of the file read between two releases of its pages, and rows
#: in a chunk when they are not in order (each may map 64 kB around it).
MAPPED_SPAN = 16 * 2**20
SCATTERED_ROWS = 256


def _indices(n: int, idx) -> np.ndarray:
    if idx is None:
        return np.arange(n)
    if isinstance(idx, slice):
        return np.arange(n)[idx]
    idx = np.asarray(idx)
    return np.flatnonzero(idx) if idx.dtype == bool else idx


def spans(n: int) -> Iterator[tuple[int, int]]:
    """(start, stop) of the chunks of ``n`` rows."""
    starts = list(range(0, n, CHUNK))
    if len(starts) > 1 and n - starts[-1] < MIN_TAIL:
        starts.pop()
    for i, start in enumerate(starts):
        yield start, starts[i + 1] if i + 1 < len(starts) else n


def rows(w: np.ndarray, idx=None, dtype=np.float64) -> np.ndarray:
    """The rows ``idx`` (indices or a boolean mask; None = all) of ``w`` as a ``dtype`` array.

    From a memory-mapped ``w`` (a long electrode's work file: io.work_files), a copy read a chunk
    at a time, each chunk's pages given back after it (``release``)."""
    source = mapping(w)
    if source is None:
        return np.asarray(w if idx is None else w[idx], dtype=dtype)
    take = _indices(len(w), idx)
    out = np.empty((len(take),) + w.shape[1:], dtype=dtype)
    # A page read maps its neighbours too (the kernel's fault-around, 64 kB): scattered rows are
    # read a span of the file at a time, so what is mapped between releases stays small.
    row_bytes = max(1, abs(int(w.strides[0])))
    span = max(1, MAPPED_SPAN // row_bytes)
    ordered = len(take) < 2 or bool(np.all(take[1:] >= take[:-1]))
    start = 0
    while start < len(take):
        stop = min(start + CHUNK, len(take))
        if ordered:
            stop = max(start + 1, min(stop, int(np.searchsorted(take, take[start] + span, side="left"))))
        else:
            stop = min(stop, start + SCATTERED_ROWS)
        out[start:stop] = w[take[start:stop]]
        source.madvise(mmap.MADV_DONTNEED)
        start = stop
    return out


def mean_rows(w: np.ndarray, idx=None, dtype=np.float64) -> np.ndarray:
    """``rows(w, idx, dtype).mean(axis=0)``, bit for bit, without the copy (NaN for no rows)."""
    take = _indices(len(w), idx)
    if len(take) <= CHUNK:
        return rows(w, take, dtype).mean(axis=0)
    total = None
    for start, stop in spans(len(take)):
        block = rows(w, take[start:stop], dtype)
        # continue the running sum row by row, as numpy sums a column
        total = block.sum(axis=0) if total is None else np.add.reduce(np.concatenate([total[None], block]), axis=0)
    return total / len(take)


def project_rows(w: np.ndarray, idx, *matrices: np.ndarray) -> np.ndarray:
    """``rows(w, idx) @ m1 @ m2 ...`` (left to right), bit for bit (BLAS on one thread), without
    the copy."""
    take = _indices(len(w), idx)
    ms = [np.asarray(m, dtype=np.float64) for m in matrices]

    def product(block: np.ndarray) -> np.ndarray:
        for m in ms:
            block = block @ m
        return block

    if len(take) <= CHUNK:
        return product(rows(w, take))
    out = np.empty((len(take),) + ms[-1].shape[1:], dtype=np.float64)
    for start, stop in spans(len(take)):
        out[start:stop] = product(rows(w, take[start:stop]))
    return out
