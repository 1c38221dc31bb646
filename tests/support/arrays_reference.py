"""Shared fixtures for the arrays/QA tests: a unit store written by the layout of spec 7.3, a
recording stand-in, and reference computations written independently of blechrs.arrays."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import tables


def write_store(path: Path, unit_times: list[np.ndarray], electrodes=None, n_wave=75, seed=0) -> None:
    """/sorted_units/unitNNN/{times, waveforms, unit_metadata} + /unit_descriptor (spec 7.3)."""
    rng = np.random.default_rng(seed)

    class Meta(tables.IsDescription):
        electrode_number = tables.Int32Col(pos=0)
        single_unit = tables.Int32Col(pos=1)
        regular_spiking = tables.Int32Col(pos=2)
        fast_spiking = tables.Int32Col(pos=3)
        waveform_count = tables.Int32Col(pos=4)
        hash = tables.StringCol(10, pos=5)
        snr = tables.Float32Col(pos=6)

    class Desc(Meta):
        unit_number = tables.Int32Col(pos=0)

    electrodes = electrodes if electrodes is not None else list(range(len(unit_times)))
    with tables.open_file(str(path), "w") as h5:
        h5.create_group("/", "sorted_units")
        for i, t in enumerate(unit_times):
            g = h5.create_group("/sorted_units", f"unit{i:03d}")
            h5.create_array(g, "times", np.asarray(t, dtype=np.int64))
            shape = np.sin(np.linspace(0, 2 * np.pi, n_wave)) * -50 * (1 + i)
            wf = shape[None, :] + rng.normal(0, 5, (len(t), n_wave))
            h5.create_array(g, "waveforms", wf.astype(np.float64).reshape(len(t), n_wave))
            meta = h5.create_table(g, "unit_metadata", Meta)
            row = meta.row
            row["electrode_number"] = electrodes[i]
            row["single_unit"] = 1
            row["waveform_count"] = len(t)
            row["hash"] = f"{i:010d}".encode()
            row["snr"] = 5.0
            row.append()
            meta.flush()
            meta.close()
        # written last: a table node evicted from PyTables' node cache while still referenced
        # here would outlive its file
        desc = h5.create_table("/", "unit_descriptor", Desc)
        for i, t in enumerate(unit_times):
            drow = desc.row
            drow["unit_number"] = i
            drow["electrode_number"] = electrodes[i]
            drow["waveform_count"] = len(t)
            drow.append()
        desc.flush()


def fake_recording(digital_inputs, n_samples, fs=30000.0, amplifier=None, gain=0.195):
    """What make_arrays reads of a recording; ``gain``: microvolts per count (Intan's 0.195)."""
    return SimpleNamespace(
        gain=gain,
        digital_inputs={k: (np.asarray(v[0], np.int64), np.asarray(v[1], np.int64)) for k, v in digital_inputs.items()},
        sampling_rate=fs,
        n_samples=n_samples,
        amplifier=amplifier,
    )


def make_dir(tmp_path: Path, name: str = "exp_test_230101_120000") -> Path:
    d = tmp_path / name
    d.mkdir()
    return d


def write_info(directory: Path, info: dict) -> None:
    (directory / f"{directory.name}.info").write_text(json.dumps(info))


def reference_spike_array(unit_times, onsets, fs, pre_ms, post_ms, bin_ms):
    """np.histogram per trial and unit over explicit bin edges (half-open, shifted by -0.5 so
    integer sample times never sit on an edge)."""
    spb = fs * bin_ms / 1000.0
    pre_bins, post_bins = round(pre_ms / bin_ms), round(post_ms / bin_ms)
    n_bins = pre_bins + post_bins
    out = np.zeros((len(onsets), len(unit_times), n_bins), dtype=np.int64)
    for k, s in enumerate(onsets):
        # integer t lies in bin j iff  s - pre + j*spb <= t < s - pre + (j+1)*spb
        edges = np.ceil(s - pre_bins * spb + np.arange(n_bins + 1) * spb - 1e-9) - 0.5
        for u, t in enumerate(unit_times):
            out[k, u] = np.histogram(np.asarray(t, dtype=np.float64), bins=edges)[0]
    return out
