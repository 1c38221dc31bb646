"""io.spike_trains.write_deflated_chunks: chunks compressed in Python and written as they are must
read back, through plain h5py (HDF5's own deflate filter), as the arrays given."""

import zlib

import h5py
import numpy as np
import pytest
import tables

from blechrs.io.spike_trains import PORTABLE, write_deflated_chunks


def _carray(h5, name, shape, atom, filters=PORTABLE, chunkshape=None):
    return h5.create_carray("/", name, atom=atom, shape=shape, filters=filters,
                            chunkshape=chunkshape or (1,) + shape[1:])


@pytest.mark.parametrize("n_rows", [0, 1, 2, 3, 7])
def test_deflated_chunks_read_back_through_hdf5s_filter(tmp_path, n_rows):
    rng = np.random.default_rng(n_rows)
    want = (rng.random((n_rows, 5, 300)) < 0.05).astype(np.float64)
    want[:, 0, :3] = [0.5, -2.0, 1e300]  # any float64, not only 0/1
    ints = rng.integers(-1000, 1000, size=(n_rows, 4, 9)).astype(np.int32)
    path = tmp_path / "x.h5"
    with tables.open_file(str(path), "w") as h5:
        if n_rows:
            write_deflated_chunks(_carray(h5, "a", want.shape, tables.Float64Atom()), iter(list(want)))
            # given as float64 rows: converted to the node's type like a PyTables write
            write_deflated_chunks(_carray(h5, "b", ints.shape, tables.Int32Atom()), (r.astype(float) for r in ints))
    if not n_rows:
        return
    with h5py.File(path, "r") as f:
        np.testing.assert_array_equal(f["a"][()], want)
        np.testing.assert_array_equal(f["b"][()], ints)
        plist = f["a"].id.get_create_plist()
        assert [plist.get_filter(i)[3] for i in range(plist.get_nfilters())] == [b"deflate"]
        assert f["a"].chunks == (1, 5, 300)
        # each stored chunk is a zlib stream of the row's little-endian bytes, as HDF5's filter writes it
        for k in range(n_rows):
            mask, data = f["a"].id.read_direct_chunk((k, 0, 0))
            assert mask == 0 and zlib.decompress(data) == want[k].astype("<f8").tobytes()


def test_deflated_chunks_match_pytables_own_write(tmp_path):
    """The same values, filters and chunks as PyTables' own (slow) filtered write."""
    rng = np.random.default_rng(5)
    want = (rng.random((4, 6, 700)) < 0.01).astype(np.float64)
    with tables.open_file(str(tmp_path / "x.h5"), "w") as h5:
        fast = _carray(h5, "fast", want.shape, tables.Float64Atom())
        write_deflated_chunks(fast, want)
        slow = _carray(h5, "slow", want.shape, tables.Float64Atom())
        for k in range(len(want)):
            slow[k] = want[k]
    with h5py.File(tmp_path / "x.h5", "r") as f:
        a, b = f["fast"], f["slow"]
        np.testing.assert_array_equal(a[()], b[()])
        pa, pb = a.id.get_create_plist(), b.id.get_create_plist()
        assert ([pa.get_filter(i) for i in range(pa.get_nfilters())]
                == [pb.get_filter(i) for i in range(pb.get_nfilters())])
        assert a.chunks == b.chunks and a.dtype == b.dtype


def test_deflated_chunks_refuse_other_filters_and_shapes(tmp_path):
    with tables.open_file(str(tmp_path / "x.h5"), "w") as h5:
        shuffled = _carray(h5, "s", (2, 3, 4), tables.Float64Atom(),
                           filters=tables.Filters(complevel=1, complib="zlib", shuffle=True))
        with pytest.raises(ValueError, match="zlib alone"):
            write_deflated_chunks(shuffled, np.zeros((2, 3, 4)))
        halves = _carray(h5, "h", (2, 4, 4), tables.Float64Atom(), chunkshape=(1, 2, 4))
        with pytest.raises(ValueError, match="chunk per row"):
            write_deflated_chunks(halves, np.zeros((2, 4, 4)))
        ok = _carray(h5, "ok", (2, 3, 4), tables.Float64Atom())
        with pytest.raises(ValueError, match="shape"):
            write_deflated_chunks(ok, [np.zeros((3, 5))])
