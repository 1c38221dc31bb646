"""Arrays read from memory-mapped files: a long electrode's waveforms stay in its work file
(``io.work_files.load_electrode(map_waveforms=True)``) and are read a chunk of rows at a time
(``core.rows``). Pages a process has read count as its memory until given back; ``release``
gives them back (they stay in the page cache), so memory does not grow with the file."""

from __future__ import annotations

import mmap

import numpy as np


def mapping(w) -> mmap.mmap | None:
    """The memory map ``w`` reads from (through views of a ``np.memmap``), or None."""
    while isinstance(w, np.ndarray):
        m = getattr(w, "_mmap", None)
        if m is not None:
            return m
        w = w.base
    return w if isinstance(w, mmap.mmap) else None


def release(w) -> None:
    """Give back the pages of a memory-mapped ``w`` this process has read. Nothing for others."""
    m = mapping(w)
    if m is not None:
        m.madvise(mmap.MADV_DONTNEED)


class MappedRows:
    """Some rows (``index``) of a memory-mapped 2-D array, read only when asked for: a long
    electrode's unit, whose waveforms go to the unit store a block at a time
    (``io.unit_store.write_units``) without a copy of them all in memory."""

    def __init__(self, source: np.ndarray, index: np.ndarray):
        self.source = source
        self.index = np.asarray(index)

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self.index),) + tuple(self.source.shape[1:])

    @property
    def dtype(self) -> np.dtype:
        return self.source.dtype

    @property
    def ndim(self) -> int:
        return self.source.ndim

    def __len__(self) -> int:
        return len(self.index)

    def blocks(self, size: int = 8192):
        """The rows in order, ``size`` at a time, as arrays (each block's pages given back)."""
        for start in range(0, len(self.index), size):
            block = np.asarray(self.source[self.index[start:start + size]])
            release(self.source)
            yield block

    def __array__(self, dtype=None, copy=None):
        out = np.empty(self.shape, dtype=dtype or self.dtype)
        start = 0
        for block in self.blocks():
            out[start:start + len(block)] = block
            start += len(block)
        return out
