"""Independent numpy/scipy implementations of the engine's definitions, for the engine tests.

Written from the documented rules (kernels.py docstrings, spec sections 3.2, 4.2, 4.3), not from
the Rust code, and vectorised differently.
"""

import numpy as np
import scipy.signal as ss
from scipy.stats import median_abs_deviation


def windows(n, w):
    if w is None or n < 2 * w:
        return [(0, n)]
    k = n // w
    return [(i * w, n if i == k - 1 else (i + 1) * w) for i in range(k)]


def noise(y, bounds, step=1):
    """(noise, median) per window, both from every `step`-th sample of the window."""
    y = np.asarray(y, dtype=np.float64)
    out = []
    for a, b in bounds:
        seg = y[a:b:step]
        m = np.median(seg)
        out.append((np.median(np.abs(seg - m)) / 0.6745, m))
    return out


def detect(y, bounds, thresholds, polarity="both", dead=15, centres=None):
    y = np.asarray(y, dtype=np.float64)
    centre = np.empty_like(y)
    th = np.empty_like(y)
    for i, ((a, b), t) in enumerate(zip(bounds, thresholds)):
        centre[a:b] = np.median(y[a:b]) if centres is None else centres[i]
        th[a:b] = t
    c = y - centre
    supra = np.zeros(len(y), bool)
    if polarity in ("negative", "both"):
        supra |= (c <= -th) & (th > 0)
    if polarity in ("positive", "both"):
        supra |= (c >= th) & (th > 0)
    idx = np.flatnonzero(supra)
    if len(idx) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int8)
    groups = np.split(idx, np.flatnonzero(np.diff(idx) > max(dead, 1)) + 1)
    times = np.array([g[np.argmax(np.abs(c[g]))] for g in groups], dtype=np.int64)
    return times, np.where(c[times] < 0, -1, 1).astype(np.int8)


def waveforms(y, times, before, after, align=True):
    y = np.asarray(y, dtype=np.float64)
    pad = 2 if align else 0
    ok = (times - before - pad >= 0) & (times + after + pad <= len(y))
    t = times[ok]
    k = np.arange(-before, after)
    if not align:
        return y[t[:, None] + k].astype(np.float32), t.astype(np.float64), int((~ok).sum())
    a, b, c = y[t - 1], y[t], y[t + 1]
    d = a - 2 * b + c
    with np.errstate(divide="ignore", invalid="ignore"):
        delta = np.where(d != 0, 0.5 * (a - c) / d, 0.0)
    delta = np.clip(delta, -0.5, 0.5)
    pos = t[:, None] + delta[:, None] + k  # where each output sample lies
    i = np.floor(pos).astype(np.int64)
    f = pos - i
    p0, p1, p2, p3 = y[i - 1], y[i], y[i + 1], y[i + 2]
    # Catmull-Rom spline in its standard matrix form
    w = (
        p1
        + 0.5 * f * (p2 - p0)
        + f**2 * (p0 - 2.5 * p1 + 2 * p2 - 0.5 * p3)
        + f**3 * (-0.5 * p0 + 1.5 * p1 - 1.5 * p2 + 0.5 * p3)
    )
    return w.astype(np.float32), t + delta, int((~ok).sum())


def group_reference(z, method="mean", clip=3.0):
    """A group's reference from its normalised members ``z`` (members x samples): the mean, the
    median, or the mean of the members within ``clip`` of the median ("clipped_mean")."""
    if method == "mean":
        return z.mean(axis=0)
    med = np.median(z, axis=0)
    if method == "median":
        return med
    near = np.abs(z - med) <= clip
    k = near.sum(axis=0)
    return np.where(k > 0, np.where(near, z, 0.0).sum(axis=0) / np.maximum(k, 1), med)


def car(x, groups, method="mean", clip=3.0):
    x = np.asarray(x, dtype=np.float64)
    dec = x[:, ::100]
    med = np.median(dec, axis=1)
    mad = median_abs_deviation(dec, axis=1)
    out = x.copy()
    dead = []
    for g in dict.fromkeys(g for g in groups if g >= 0):
        members = [i for i, gi in enumerate(groups) if gi == g]
        live = [i for i in members if mad[i] > 0]
        dead += [i for i in members if mad[i] == 0]
        if len(members) < 2 or len(live) < 2:
            continue
        ref = group_reference(np.array([(x[i] - med[i]) / mad[i] for i in live]), method, clip)
        for i in live:
            out[i] = ((x[i] - med[i]) / mad[i] - ref) * mad[i] + med[i]
    return out, sorted(dead)


def cutoff(y, fs, voltage_cutoff=10000, max_breach_rate=1, max_secs_above_cutoff=60, max_mean_breach_rate_persec=100):
    fs_i = int(round(fs))
    n = len(y)
    breach_rate = np.sum(y > voltage_cutoff) * fs / n
    full = n // fs_i
    per_sec = (y[: full * fs_i].reshape(full, fs_i) > voltage_cutoff).sum(axis=1)
    secs_above = np.sum(per_sec > 0)
    mean_rate = per_sec[per_sec > 0].mean() if secs_above else 0
    if breach_rate >= max_breach_rate and secs_above >= max_secs_above_cutoff and mean_rate >= max_mean_breach_rate_persec:
        over = np.flatnonzero(per_sec > max_mean_breach_rate_persec)
        if len(over):
            return int(over[0] * fs_i)
    return n


def pipeline(x, fs, params, electrodes, car_groups, scale=0.195):
    """The whole extract_electrodes definition on in-memory arrays (``scale``: uV per count)."""
    raw = np.asarray(x, dtype=np.float64)
    if params.get("use_car", True) and len(car_groups):
        raw, dead = car(raw, car_groups, params.get("reference_method", "mean"), params.get("reference_clip", 3.0))
    else:
        dead = []
    b, a = ss.butter(params["bandpass_order"], [params["bandpass_lower_cutoff"], params["bandpass_upper_cutoff"]], "bandpass", fs=fs)
    before = int(round(params["spike_snapshot_before"] * fs / 1000))
    after = int(round(params["spike_snapshot_after"] * fs / 1000))
    dead_s = int(round(params["dead_time_ms"] * fs / 1000))
    out = []
    for e in electrodes:
        y = ss.filtfilt(b, a, raw[e] * scale).astype(np.float32)
        n = len(y)
        cut = cutoff(y, fs, params["voltage_cutoff"], params["max_breach_rate"], params["max_secs_above_cutoff"], params["max_mean_breach_rate_persec"])
        step = params["noise_subsample"]
        # global statistics (mad_val, a global threshold): y[:cut:S], S grown to keep <= 2**20 samples
        gstep = max(step, -(-n // 2**20))
        kept = y[:cut:gstep].astype(np.float64)
        if params["use_rolling_threshold"]:
            bounds = windows(n, int(round(params["rolling_threshold_window"] * fs)))
            nz = noise(y, bounds, step)
            ths = [params["waveform_threshold"] * v for v, _ in nz]
            centres = [m for _, m in nz]
        else:
            # global mode: centre and threshold from the kept part, applied everywhere
            bounds = [(0, n)]
            v, centre = noise(kept, [(0, len(kept))])[0]
            ths = [params["waveform_threshold"] * v]
            nz = [(v, centre)]
            centres = [centre]
        times, pol = detect(y, bounds, ths, params["spike_polarity"], dead_s, centres)
        pad = 2 if params["align_subsample"] else 0
        keep = times + after + pad <= cut
        n_cut_edge = int(np.sum((times < cut) & ~keep & (times - before - pad >= 0)))
        wf, tt, dropped = waveforms(y, times[keep], before, after, params["align_subsample"])
        ok_t = times[keep]
        ok_t = ok_t[(ok_t - before - pad >= 0) & (ok_t + after + pad <= n)]
        out.append(dict(electrode=e, times=ok_t, polarity=pol[keep][np.isin(times[keep], ok_t)], waveforms=wf,
                        times_subsample=tt, n_edge_dropped=dropped + n_cut_edge, cutoff_sample=cut,
                        noise=np.array([v for v, _ in nz]), dead=e in dead,
                        mad_val=np.median(np.abs(kept - np.median(kept)))))
    return out
