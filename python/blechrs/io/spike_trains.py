"""Trial arrays in the unit store ``DIR/<name>.h5`` (blech_clust's layout, spec 8.1):

- ``/spike_trains/<dig_in_NN>/spike_array``: trials x units x bins (units in ``/sorted_units``
  name order; group title = the taste), ``.../valid_bins`` (trials x 2: the bins wholly inside the
  recording), with a laser ``.../laser_durations`` and ``.../laser_onset_lag`` (ms per trial);
- ``/emg_data/<dig_in_NN>/emg_array``: channels x trials x bins, float32 µV, and
  ``/emg_data/ind_electrode_map`` (rows [emg index, electrode_ind]).

Arrays use gzip, a filter every HDF5 build has, so h5py, MATLAB and h5dump read them
without a plugin; ``spike_array`` holds blech_clust's 0/1 values as float64. With
``compact_spike_arrays`` (``.params``) it holds uint8 spike counts compressed with blosc:lz4
instead (smaller and faster, but readable only through PyTables or the blosc plugin). The store is
edited on a copy that replaces it.
"""

from __future__ import annotations

import os
import zlib
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Iterable

import numpy as np
import tables

from blechrs.io.unit_store import edit_store

TRIAL_NODES = ("/spike_trains", "/emg_data")


@dataclass
class TasteArrays:
    """The arrays of one taste digital input."""

    dig_in: str
    taste: str
    spike_array: Any
    """trials x units x bins spike counts: an array, or trials.TrialBlocks (read a trial at a time)."""
    valid_bins: np.ndarray
    laser_durations: np.ndarray | None = None
    laser_onset_lag: np.ndarray | None = None
    emg_array: np.ndarray | None = None


def has_trial_arrays(path: str | os.PathLike) -> bool:
    with tables.open_file(str(path), "r") as h5:
        return any(node in h5 for node in TRIAL_NODES)


#: Readable everywhere: zlib (gzip) is built into every HDF5 library. Without shuffle: on the
#: mostly-zero 0/1 arrays it is both faster (0.60 vs 0.73 s for 40 trials x 53 units x 7000 bins)
#: and smaller (1.2 vs 1.7 MB).
PORTABLE = tables.Filters(complevel=1, complib="zlib", shuffle=False)
#: Threads compressing ``PORTABLE`` chunks (zlib at level 1: ~4.5 ms per 52 units x 7000 bins
#: trial): two halve that on a 2-core machine; more gain little, the writes being in one thread.
COMPRESS_THREADS = 2
#: blosc:lz4 (bundled with PyTables): ~4x faster than zlib, but other readers need a plugin.
COMPACT = tables.Filters(complevel=1, complib="blosc:lz4", shuffle=False)


def write_deflated_chunks(node: tables.CArray, chunks: Iterable[np.ndarray]) -> None:
    """Write ``node`` (chunked along its first axis, one row per chunk, filters ``PORTABLE``) one
    chunk at a time, compressed here with Python's zlib and stored as they are (HDF5's direct chunk
    write). The stored chunks are what HDF5's deflate filter stores (a zlib stream of the chunk's
    bytes at the filters' level), readable by any HDF5 reader. Why: PyTables' own deflate runs a
    zlib built into its extension that is ~5x slower than the system's (its adler32 and hash
    sliding unvectorised): 17-28 ms instead of 4.5 ms per 52 units x 7000 bins trial."""
    f = node.filters
    if (f.complib != "zlib" or f.shuffle or f.bitshuffle or f.fletcher32 or f.complevel < 1
            or node.chunkshape != (1,) + tuple(node.shape[1:])):
        raise ValueError(f"{node._v_pathname}: direct chunk writes need zlib alone and a chunk per row, "
                         f"not {f} with chunks {node.chunkshape}")
    stored = node.atom.dtype.newbyteorder("<" if node.byteorder == "little" else ">")  # the file's bytes
    level = int(f.complevel)

    def deflated(k: int, chunk: np.ndarray) -> bytes:
        chunk = np.ascontiguousarray(chunk, dtype=stored)
        if chunk.shape != tuple(node.shape[1:]):
            raise ValueError(f"{node._v_pathname}: chunk {k} has shape {chunk.shape}, not {node.shape[1:]}")
        return zlib.compress(memoryview(chunk).cast("B"), level)

    # zlib releases the GIL: chunks are compressed side by side, written in order, and at most
    # COMPRESS_THREADS + 1 of them are in memory at once.
    origin = (0,) * (node.ndim - 1)
    with ThreadPoolExecutor(COMPRESS_THREADS) as pool:
        pending: deque[Future[bytes]] = deque()
        written = 0
        for k, chunk in enumerate(chunks):
            pending.append(pool.submit(deflated, k, chunk))
            while len(pending) > COMPRESS_THREADS or (pending and pending[0].done()):
                node.write_chunk((written,) + origin, pending.popleft().result())
                written += 1
        while pending:
            node.write_chunk((written,) + origin, pending.popleft().result())
            written += 1


def write_trial_arrays(path: str | os.PathLike, tastes: list[TasteArrays], emg_channels: list[int],
                       compact: bool = False) -> None:
    """Replace ``/spike_trains`` and ``/emg_data`` (the latter only with ``emg_channels``).
    ``spike_array`` is given as spike counts; it is stored as 0/1 float64 unless ``compact``."""
    filters = COMPACT if compact else PORTABLE
    with edit_store(path) as h5:
        for node in TRIAL_NODES:
            if node in h5:
                h5.remove_node(node, recursive=True)
        if tastes:
            h5.create_group("/", "spike_trains")
        for t in tastes:
            _write_spike_group(h5, t, filters, compact)
        if emg_channels and tastes:
            h5.create_group("/", "emg_data")
            h5.create_array("/emg_data", "ind_electrode_map",
                            np.array([[i, ch] for i, ch in enumerate(emg_channels)], np.int64))
            for t in tastes:
                g = h5.create_group("/emg_data", t.dig_in)
                ca = h5.create_carray(g, "emg_array", atom=tables.Float32Atom(), shape=t.emg_array.shape,
                                      filters=filters)
                ca[...] = t.emg_array


def _write_spike_group(h5: tables.File, t: TasteArrays, filters: tables.Filters, compact: bool) -> None:
    arr = t.spike_array
    dtype = arr.dtype if compact else np.dtype(np.float64)
    g = h5.create_group("/spike_trains", t.dig_in, title=t.taste)
    if arr.size:  # one chunk per trial: compresses the mostly-zero array fast
        ca = h5.create_carray(g, "spike_array", atom=tables.Atom.from_dtype(dtype), shape=arr.shape,
                              filters=filters, chunkshape=(1, arr.shape[1], arr.shape[2]))
        trials = (arr[k] if compact else np.minimum(arr[k], 1).astype(np.float64) for k in range(arr.shape[0]))
        if compact or not hasattr(ca, "write_chunk"):  # (direct chunk writes: PyTables >= 3.10)
            for k, trial in enumerate(trials):
                ca[k] = trial
        else:  # a trial at a time: the float64 form is never whole in memory
            write_deflated_chunks(ca, trials)
    else:  # no units: HDF5 chunked arrays cannot have a zero dimension
        h5.create_array(g, "spike_array", np.zeros(arr.shape, dtype))
    h5.create_array(g, "valid_bins", t.valid_bins)
    if t.laser_durations is not None:
        h5.create_array(g, "laser_durations", t.laser_durations)
        h5.create_array(g, "laser_onset_lag", t.laser_onset_lag)
