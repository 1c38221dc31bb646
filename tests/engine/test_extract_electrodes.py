"""extract_electrodes (the streaming workhorse) and CAR against whole-array numpy/scipy."""

import numpy as np
import pytest
import scipy.signal as ss
from hypothesis import given, settings, strategies as st

from support import engine_reference as ref
from blechrs import kernels
from blechrs.params import SortParams

FS = 20000.0


def recording(nch=6, seconds=5.5, fs=FS, seed=0, spikes_per_ch=40):
    """int16 channels x samples: shared noise (what CAR removes), own noise, spikes, DC offsets."""
    rng = np.random.default_rng(seed)
    n = int(seconds * fs)
    common = rng.normal(size=n) * 40
    x = np.empty((nch, n))
    truth = []
    t = np.arange(int(2e-3 * fs))
    tpl = -700 * np.exp(-(((t - 10) / 2.0) ** 2)) + 250 * np.exp(-(((t - 17) / 4.0) ** 2))
    for c in range(nch):
        x[c] = common * rng.uniform(0.8, 1.2) + rng.normal(size=n) * 30 + rng.uniform(-3000, 3000)
        starts = np.sort(rng.choice(np.arange(200, n - 200, 200), size=spikes_per_ch, replace=False))
        for s in starts:
            x[c, s : s + len(t)] += tpl
        truth.append(starts + 10)
    return np.round(x).astype(np.int16), truth


def params(**kw):
    # 5 x noise: the synthetic spikes are sized so that no noise sample crosses it
    kw = {"sampling_rate": FS, "rolling_threshold_window": 1.0, "n_jobs": 2, "waveform_threshold": 5.0} | kw
    return SortParams().replace(**kw)


def extract(source, electrodes, groups, p, **kw):
    return kernels.extract_electrodes(source, electrodes, groups, p.extract, threads=p.run.n_jobs, **kw)


def check_against_reference(got, exp, before):
    assert got["electrode"] == exp["electrode"]
    np.testing.assert_array_equal(got["times"], exp["times"])
    np.testing.assert_array_equal(got["polarity"], exp["polarity"])
    assert got["times"].dtype == np.int64 and got["polarity"].dtype == np.int8
    assert got["waveforms"].dtype == np.float32
    scale = max(1.0, float(np.abs(exp["waveforms"]).max())) if len(exp["waveforms"]) else 1.0
    np.testing.assert_allclose(got["waveforms"], exp["waveforms"], atol=1e-4 * scale)
    np.testing.assert_allclose(got["times_subsample"], exp["times_subsample"], atol=1e-4)
    assert got["n_edge_dropped"] == exp["n_edge_dropped"]
    assert got["cutoff_sample"] == exp["cutoff_sample"]
    np.testing.assert_allclose(got["noise"], exp["noise"], rtol=1e-5)
    np.testing.assert_allclose(got["mad_val"], exp["mad_val"], rtol=1e-5)
    assert got["dead"] == exp["dead"]


@pytest.mark.parametrize("use_car", [False, True])
@pytest.mark.parametrize("rolling", [True, False])
@pytest.mark.parametrize("subsample", [1, 10])
def test_extract_matches_whole_array_pipeline(use_car, rolling, subsample):
    x, truth = recording()
    groups = [0, 0, 0, 1, 1, -1]
    p = params(use_car=use_car, use_rolling_threshold=rolling, noise_subsample=subsample)
    electrodes = [0, 2, 3, 5]
    got = extract(x, electrodes, groups, p)
    exp = ref.pipeline(x, FS, p.to_flat(), electrodes, groups)
    assert len(got) == len(electrodes)
    for g, e in zip(got, exp):
        check_against_reference(g, e, int(round(FS / 1000)))
        # every inserted spike found within 1 sample, none twice
        tr = truth[g["electrode"]]
        if use_car:  # a spike shared with a group-mate is common signal, which CAR removes
            e = g["electrode"]
            mates = [c for c in range(len(groups)) if c != e and groups[c] == groups[e] and groups[e] >= 0]
            if mates:
                tr = tr[~np.isin(tr, np.concatenate([truth[c] for c in mates]))]
        d = np.abs(g["times"][:, None] - tr[None, :])
        assert np.all(d.min(axis=0) <= 1) and np.all((d <= 1).sum(axis=0) == 1)
        assert g["threshold"] > 0
        if not use_car:  # (with CAR, a group-mate's spike leaves an inverted echo)
            extra = d.min(axis=1) > 1
            if subsample == 1:
                assert not extra.any()
            else:
                # 1 s windows at 20 kHz keep 2000 samples per window, so thresholds scatter a few
                # %: an extra event can only be a noise crossing at the threshold's margin.
                before = round(FS / 1000)
                assert np.all(np.abs(g["waveforms"][extra, before]) < 1.1 * g["threshold"])
                assert extra.sum() <= 1
            true = ~extra
            assert np.all(np.argmax(np.abs(g["waveforms"][true]), axis=1) == round(FS / 1000))


def test_car_removes_common_noise_and_matches_numpy():
    x, _ = recording(nch=5)
    groups = [0, 0, 0, 1, 1]
    y, dead = kernels.common_average_reference(x, groups)
    ey, ed = ref.car(x, groups)
    assert y.dtype == np.float32 and y.shape == x.shape and dead == ed == []
    np.testing.assert_allclose(y, ey, rtol=1e-6, atol=1e-2)
    # float input gives the same
    y2, _ = kernels.common_average_reference(x.astype(np.float64), groups)
    np.testing.assert_allclose(y2, ey, rtol=1e-6, atol=1e-2)


def test_dead_channel_left_out_and_reported():
    x, _ = recording(nch=4)
    x[1] = 123  # flat: MAD 0
    groups = [0, 0, 0, -1]
    y, dead = kernels.common_average_reference(x, groups)
    ey, ed = ref.car(x, groups)
    assert dead == ed == [1]
    assert np.all(np.isfinite(y))
    np.testing.assert_allclose(y, ey, rtol=1e-6, atol=1e-2)
    np.testing.assert_array_equal(y[1], 123)
    res = extract(x, [0, 1, 2], groups, params())
    assert [r["dead"] for r in res] == [False, True, False]
    assert len(res[1]["times"]) == 0 and res[1]["waveforms"].shape == (0, 50)
    assert all(np.all(np.isfinite(r["waveforms"])) for r in res)


def test_sources_agree(tmp_path):
    """np.memmap, strided views and the interleaved-file source give identical results."""
    x, _ = recording(nch=4, seconds=3.2)
    groups = [0, 0, 1, 1]
    p = params()
    base = extract(x, [0, 1, 2, 3], groups, p)
    path = tmp_path / "amplifier.dat"
    x.T.tofile(path)  # interleaved by sample, like Intan's amplifier.dat
    mm = np.memmap(path, dtype=np.int16, mode="r").reshape(-1, 4).T  # a strided channels x samples view
    src = kernels.interleaved_file_source(str(path), 4)
    assert src.n_channels == 4 and src.n_samples == x.shape[1]
    big = np.zeros((8, x.shape[1] * 2), np.int16)
    big[::2, ::2] = x
    for s in (mm, src, np.asfortranarray(x), big[::2, ::2]):
        other = extract(s, [0, 1, 2, 3], groups, p)
        for a, b in zip(base, other):
            np.testing.assert_array_equal(a["times"], b["times"])
            np.testing.assert_array_equal(a["waveforms"], b["waveforms"])


def test_threads_and_progress_do_not_change_results():
    x, _ = recording(nch=4, seconds=3.0)
    seen = []
    a = extract(x, [0, 1, 2, 3], [0] * 4, params(n_jobs=1), progress=lambda d, t: seen.append((d, t)))
    b = extract(x, [0, 1, 2, 3], [0] * 4, params(n_jobs=2))
    assert seen and seen[-1][0] == seen[-1][1] == x.shape[1]
    for r, s in zip(a, b):
        np.testing.assert_array_equal(r["waveforms"], s["waveforms"])


def test_progress_exception_propagates():
    x, _ = recording(nch=2, seconds=3.0)

    def boom(done, total):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        extract(x, [0], [], params(), progress=boom)


def test_cutoff_in_stream():
    x, _ = recording(nch=2, seconds=8.0)
    # the "headstage falls off" at 5 s: rail-to-rail square wave on channel 0
    x[0, int(5 * FS):] = np.where((np.arange(x.shape[1] - int(5 * FS)) // 7) % 2, 30000, -30000)
    p = params(voltage_cutoff=1000.0, max_secs_above_cutoff=2.0, use_car=False)
    got = extract(x, [0, 1], [], p)
    exp = ref.pipeline(x, FS, p.to_flat(), [0, 1], [])
    assert got[0]["cutoff_sample"] == exp[0]["cutoff_sample"] == int(5 * FS)
    assert got[1]["cutoff_sample"] == x.shape[1]
    assert got[0]["times"].max() < 5 * FS
    np.testing.assert_array_equal(got[0]["times"], exp[0]["times"])
    assert got[0]["n_edge_dropped"] == exp[0]["n_edge_dropped"]
    assert len(got[0]["noise"]) == 5  # windows after the cutoff are not reported


def test_no_electrodes():
    x, _ = recording(nch=2, seconds=2.0)
    assert extract(x, [], [0, 0], params()) == []


def test_bad_input():
    x, _ = recording(nch=3, seconds=2.0)
    with pytest.raises(TypeError, match="int16"):
        extract(x.astype(np.float32), [0], [], params())
    with pytest.raises(TypeError, match="SampleSource"):
        extract([[1, 2, 3]], [0], [], params())
    with pytest.raises(ValueError, match="electrode 3 out of range"):
        extract(x, [3], [], params())
    with pytest.raises(ValueError, match="car_groups"):
        extract(x, [0], [0, 0], params())
    with pytest.raises(ValueError, match="Nyquist"):
        extract(x, [0], [], params(bandpass_upper_cutoff=10000.0))
    with pytest.raises(ValueError, match="too short"):
        extract(x[:, :10], [0], [], params())
    with pytest.raises(ValueError, match="polarity"):
        extract(x, [0], [], params(spike_polarity="up"))
    with pytest.raises(ValueError, match="groups"):
        kernels.common_average_reference(x, [0, 0])
    bad = x.astype(np.float64)
    bad[2, 7] = np.inf
    with pytest.raises(ValueError, match="channel 2"):
        kernels.common_average_reference(bad, [0, 0, 0])
    with pytest.raises(OSError):
        kernels.interleaved_file_source("/nonexistent/amplifier.dat", 4)


@settings(max_examples=12, deadline=None)
@given(
    nch=st.integers(1, 5),
    n=st.integers(3000, 45001),
    seed=st.integers(0, 2**31),
    car=st.booleans(),
    window=st.sampled_from([0.3, 0.5, 5.0]),
    polarity=st.sampled_from(["negative", "positive", "both"]),
)
def test_stream_property(nch, n, seed, car, window, polarity):
    rng = np.random.default_rng(seed)
    x = np.round(rng.standard_t(4, size=(nch, n)) * 60 + rng.uniform(-500, 500, size=(nch, 1))).astype(np.int16)
    groups = list(rng.integers(-1, 2, size=nch))
    p = params(use_car=car, rolling_threshold_window=window, spike_polarity=polarity)
    got = extract(x, list(range(nch)), groups, p)
    exp = ref.pipeline(x, FS, p.to_flat(), list(range(nch)), groups)
    for g, e in zip(got, exp):
        check_against_reference(g, e, int(round(FS / 1000)))


def test_extract_params_are_typed_keyword_only_and_checked_by_the_engine():
    import dataclasses
    import inspect

    fields = kernels.ExtractParams.FIELDS
    sig = inspect.signature(kernels.ExtractParams)
    assert tuple(sig.parameters) == fields and len(fields) == 21
    assert all(q.kind is q.KEYWORD_ONLY and q.default is q.empty for q in sig.parameters.values())
    names = tuple(f.name for f in dataclasses.fields(SortParams().extract))
    assert fields == names  # exactly the Python extraction stage's parameters
    good = {name: getattr(SortParams().extract, name) for name in fields}
    p = kernels.ExtractParams(**good)
    assert all(getattr(p, name) == good[name] for name in fields)
    assert "waveform_threshold=4.0" in repr(p)
    with pytest.raises(TypeError):
        kernels.ExtractParams(**{k: v for k, v in good.items() if k != "dead_time_ms"})
    for name, bad in [("sampling_rate", -1.0), ("bandpass_order", 0), ("noise_subsample", 0),
                      ("spike_polarity", "up"), ("waveform_threshold", 0.0), ("dead_time_ms", float("nan")),
                      ("spike_snapshot_after", 0.0), ("rolling_threshold_window", -5.0)]:
        with pytest.raises(ValueError, match=name):
            kernels.ExtractParams(**{**good, name: bad})
    assert kernels.MICROVOLTS_PER_BIT == 0.195


@pytest.mark.parametrize("scale", [0.0305185, 0.05, 1.0])
def test_extract_scales_by_the_recordings_gain(scale):
    """Another system's gain (Neuralynx 0.0305, Open Ephys 0.05, raw counts 1 uV/unit): waveforms,
    thresholds and the voltage cutoff are in its microvolts, as the scipy reference computes."""
    x, _ = recording(nch=3)
    p = params(use_car=False, voltage_cutoff=3000.0)
    got = extract(x, [0, 1, 2], [], p, scale=scale)
    exp = ref.pipeline(x, FS, p.to_flat(), [0, 1, 2], [], scale=scale)
    for g, e in zip(got, exp):
        check_against_reference(g, e, int(round(FS / 1000)))
    one_line = pytest.raises(ValueError, match="scale must be finite and non-zero")
    with one_line:
        extract(x, [0], [], p, scale=0.0)


@pytest.mark.parametrize("rolling", [True, False])
@pytest.mark.parametrize("cutoff", [False, True])
def test_spilled_events_equal_the_reference(tmp_path, rolling, cutoff):
    """Events written to files as they are cut (``spill``: bounded memory on long recordings)
    are the events of the in-memory run, which match the independent reference; the cutoff
    truncates the files."""
    from blechrs.io.work_files import read_spilled_events

    x, _ = recording(nch=4, seconds=8.0)
    kw: dict = dict(use_rolling_threshold=rolling)
    if cutoff:
        x[0, int(5 * FS):] = np.where((np.arange(x.shape[1] - int(5 * FS)) // 7) % 2, 30000, -30000)
        kw.update(voltage_cutoff=1000.0, max_secs_above_cutoff=2.0)
    p = params(**kw)
    electrodes, groups = [0, 1, 3], [0, 0, 0, 0]
    prefixes = [str(tmp_path / f"e{e}") for e in electrodes]
    spilled = extract(x, electrodes, groups, p, spill=prefixes)
    memory = extract(x, electrodes, groups, p)
    exp = ref.pipeline(x, FS, p.to_flat(), electrodes, groups)
    for s, m, e, prefix in zip(spilled, memory, exp, prefixes):
        assert len(s["times"]) == 0 and s["waveforms"].shape == (0, m["waveforms"].shape[1])
        assert s["n_spilled"] == len(m["times"]) and "n_spilled" not in m
        s.update(read_spilled_events(prefix, s["n_spilled"], m["waveforms"].shape[1]))
        for k in ("times", "times_subsample", "polarity", "waveforms", "noise"):
            assert s[k].dtype == m[k].dtype and s[k].tobytes() == m[k].tobytes(), k
        for k in ("threshold", "mad_val", "cutoff_sample", "n_edge_dropped", "dead"):
            assert s[k] == m[k], k
        if cutoff:  # (the reference reports the noise of the windows past the cutoff too)
            np.testing.assert_array_equal(s["times"], e["times"])
        else:
            check_against_reference(s, e, p.extract.samples_before)
    if cutoff:
        assert spilled[0]["cutoff_sample"] == int(5 * FS) and 0 < spilled[0]["n_spilled"]


def test_spill_errors_name_the_file(tmp_path):
    x, _ = recording(nch=2, seconds=2.0)
    missing = tmp_path / "no such folder" / "e0"
    with pytest.raises(OSError, match="no such folder"):
        extract(x, [0], [], params(), spill=[str(missing)])
    with pytest.raises(ValueError, match="spill"):
        extract(x, [0, 1], [], params(), spill=[str(tmp_path / "e0")])
