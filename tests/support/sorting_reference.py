"""Test helpers of the sort tests: a plain numpy/scipy extractor (the engine's contract, written
independently) and small recording folders made with blechrs.simulate."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.signal import butter, filtfilt

from blechrs.io.recording import MICROVOLTS_PER_BIT
from blechrs.io.params_file import load_params, save_params
from blechrs.io import paths
from blechrs.params import SortParams


def reference_extract(recording, electrodes, car_groups, params: dict, progress=None):
    """CAR (group mean) -> filtfilt band-pass -> 5 x MAD threshold -> extrema with dead time ->
    waveforms [t - before, t + after), in microvolts. Returns the engine's dicts."""
    p = SortParams.from_flat(params)
    fs = p.extract.sampling_rate
    n = recording.n_samples
    groups = np.asarray(car_groups)
    b, a = butter(p.extract.bandpass_order, [p.extract.bandpass_lower_cutoff, p.extract.bandpass_upper_cutoff], "bandpass", fs=fs)
    nb, na = p.extract.samples_before, p.extract.samples_after
    dead = int(round(p.extract.dead_time_ms * fs / 1000))
    out = []
    for e in electrodes:
        x = recording.read([e], 0, n)[0].astype(np.float64) * MICROVOLTS_PER_BIT
        if groups[e] >= 0:
            members = np.flatnonzero(groups == groups[e])
            x = x - recording.read(list(members), 0, n).astype(np.float64).mean(axis=0) * MICROVOLTS_PER_BIT
        f = filtfilt(b, a, x)
        med = np.median(f)
        mad = np.median(np.abs(f - med))
        th = p.extract.waveform_threshold * mad / 0.6745
        times, pol = [], []
        above = np.abs(f - med) > th
        edges = np.flatnonzero(np.diff(np.concatenate([[0], above.astype(np.int8), [0]])))
        last = -10**9
        for s, t in zip(edges[::2], edges[1::2]):
            seg = f[s:t] - med
            k = s + int(np.argmax(np.abs(seg)))
            if k - last <= dead:
                continue
            last = k
            times.append(k)
            pol.append(1 if f[k] > med else -1)
        times = np.array(times, dtype=np.int64)
        pol = np.array(pol, dtype=np.int8)
        ok = (times - nb >= 0) & (times + na <= n)
        wf = np.stack([f[t - nb:t + na] for t in times[ok]]).astype(np.float32) if ok.any() else np.zeros((0, nb + na), np.float32)
        out.append(dict(electrode=int(e), times=times[ok], times_subsample=times[ok].astype(np.float64),
                        polarity=pol[ok], waveforms=wf, threshold=float(th), mad_val=float(mad),
                        noise=np.array([mad / 0.6745]), cutoff_sample=n, n_edge_dropped=int((~ok).sum()),
                        dead=bool(mad == 0)))
    return out


def init_folder(directory: Path, **params) -> None:
    """`blechrs init` on a recording folder, then the given parameters written into <name>.params."""
    from blechrs import pipeline

    pipeline.init(directory)
    path = paths.params_path(directory)
    save_params(path, load_params(path).replace(**params))


def simulated_folder(directory: Path, seed=3, n_channels=4, duration_s=8.0, **kw):
    from blechrs.simulate import Simulation

    sim = Simulation(seed=seed, n_channels=n_channels, duration_s=duration_s, **kw)
    gt = sim.write(directory, layout="one file per channel")
    return gt


def sorted_small_folder(directory: Path, **params) -> Path:
    """The 4-channel, 8 s simulation (seed 3) in ``directory``, initialised with small-recording
    parameters (and ``params``), run whole without pictures, extraction by ``reference_extract``."""
    import pytest

    from blechrs import pipeline

    simulated_folder(directory, seed=3, n_channels=4, duration_s=8.0)
    init_folder(directory, **dict(dict(max_clusters=4, num_restarts=2, cluster_count_threshold=10,
                                       max_autosort_clusters=6), **params))
    with pytest.MonkeyPatch.context() as mp:
        use_reference_engine(mp)
        pipeline.run(directory, jobs=1, plots=False)
    return directory


def use_reference_engine(monkeypatch) -> None:
    """Replace the engine's extraction, where the extraction stage calls it, by the scipy reference
    (``reference_extract``): the sorting stages are then tested against an independent extraction."""
    import blechrs.pipeline.extraction as extract_stage

    monkeypatch.setattr(extract_stage, "extract_events",
                        lambda recording, electrodes, groups, params, progress=None, spill=None:
                        reference_extract(recording, electrodes, groups, params.to_flat()))


def broken_batch(root, broken="rec_b"):
    """rec_a, rec_b, rec_c: small simulated recordings; ``broken`` has a truncated header."""
    folders = []
    for seed, name in enumerate(("rec_a", "rec_b", "rec_c"), start=11):
        d = root / name
        d.mkdir()
        simulated_folder(d, seed=seed, n_channels=4, duration_s=5.0)
        if name == broken:
            with open(d / "info.rhd", "r+b") as f:
                f.truncate(40)
        else:
            init_folder(d, max_clusters=4, num_restarts=1, max_autosort_clusters=5, cluster_count_threshold=10)
        folders.append(d)
    return folders
