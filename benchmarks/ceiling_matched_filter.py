"""Supervised matched-filter detection ceiling vs the current 4 x noise ceiling.

Per wire: band-pass (filtfilt butter 2, 300-3000 Hz, float64, x*0.195), stationary noise covariance
(75 lags, from the trace with spike neighbourhoods masked), templates = mean filtered trace around
the TRUE spike times, whitened matched filter per unit z_u(t) = (C^-1 t_u) . x[t-30:t+45] / d_u,
d_u = sqrt(t_u C^-1 t_u) (z ~ N(0,1) on noise, N(d_u, ~1) on a spike of u).

Methods (all scored as accuracy.supervised_ceiling: label = GT unit within 0.4 ms, acc = tp/(n+fp)):
  base            engine extraction (4 x noise) + assign_to_templates from the true labels (= --ceiling)
  mfA:th          MF peaks z_u > th, greedy NMS across units by LLR_u + log rate_u (+-W samples),
                  event -> unit with the best score (no further noise model)
  mfB:th          the same detections, windows cut (engine-style sub-sample alignment on the
                  extremum), then assign_to_templates started from the true labels
  gate:th         engine events (4 x noise), kept when max_u z_u (+-3 samples) > th, then
                  assign_to_templates from the true labels
usage: python benchmarks/ceiling_matched_filter.py s2_60,s1_60 [--th 3.5,4,4.5] [--W 15]
(the `bench` extra; BENCH_DATA as for accuracy.py; s1_600 takes ~10 min). docs/benchmarks.md,
"What limits accuracy", has the figures.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
from scipy.signal import butter, filtfilt, correlate, find_peaks

sys.path.insert(0, str(Path(__file__).resolve().parent))
import accuracy as A  # noqa: E402  (puts ../shared/bench on sys.path)
import gtio  # noqa: E402
from blechrs.params import SortParams  # noqa: E402
from blechrs.core.assign_templates import assign_to_templates  # noqa: E402

BEFORE, AFTER = 30, 45
L = BEFORE + AFTER
BAYES_KAPPA = [-2.0, 0.0, 2.0]


def bandpass(x, fs):
    b, a = butter(2, [300, 3000], btype="bandpass", fs=fs)
    return filtfilt(b, a, x.astype(np.float64) * 0.195)


def noise_cov(x, sigma, ridge=1e-2):
    """Stationary covariance (L lags) from samples away (+-2 ms) from |x| > 3.5 sigma."""
    hot = np.abs(x) > 3.5 * sigma
    m = np.ones(len(x))
    idx = np.flatnonzero(hot)
    if len(idx):
        ker = np.ones(121)
        m = (np.convolve(hot.astype(float), ker, mode="same") == 0).astype(float)
    n = len(x)
    nfft = 1 << int(np.ceil(np.log2(n + L)))
    xm = x * m
    fx = np.fft.rfft(xm, nfft)
    fm = np.fft.rfft(m, nfft)
    num = np.fft.irfft(fx * np.conj(fx), nfft)[:L]
    cnt = np.fft.irfft(fm * np.conj(fm), nfft)[:L]
    lag = num / np.maximum(cnt, 1)
    c = lag[np.abs(np.subtract.outer(np.arange(L), np.arange(L)))]
    val, vec = np.linalg.eigh(c)
    c = (vec * (np.maximum(val, 0) + ridge * lag[0])) @ vec.T
    return (c + c.T) / 2, m


def cut_aligned(x, t, sign):
    """Engine-style windows: extremum (of sign*x within +-4 samples of t), parabola vertex,
    Catmull-Rom resampling. Returns (windows, integer peak times)."""
    t = np.asarray(t, dtype=np.int64)
    off = np.arange(-4, 5)
    seg = sign[:, None] * x[t[:, None] + off[None, :]]
    p = t + off[np.argmax(seg, axis=1)]
    return A.aligned_windows(x, p, BEFORE, AFTER), p


gt_label = A.true_labels


def unit_rows(units, gt, label, pred):
    rows = []
    for u in units:
        n = np.count_nonzero(gt["spike_units"] == u)
        det = np.count_nonzero(label == u)
        tp = np.count_nonzero((pred == u) & (label == u))
        r = dict(n=n, det=det, tp=tp, missed=n - det,
                 misclass=np.count_nonzero((label == u) & (pred != u) & (pred >= 0)),
                 to_noise=np.count_nonzero((label == u) & (pred == -1)),
                 fp_noise=np.count_nonzero((pred == u) & (label == -1)),
                 fp_other=np.count_nonzero((pred == u) & (label >= 0) & (label != u)))
        r["acc"] = tp / (n + r["fp_noise"] + r["fp_other"])
        r["det_frac"] = det / n
        rows.append(r)
    return rows


def templ_assign(w, label, units, fs, duration):
    start = np.full(len(label), -1)
    for k, u in enumerate(units):
        start[label == u] = k
    got = assign_to_templates(w, start, fs, duration) if len(label) else None
    return label if got is None else np.where(got >= 0, np.asarray(units)[np.maximum(got, 0)], -1)


def fixed_classify(w, label, units, fs, duration, unit_prior=True):
    """assign_to_templates' model with templates, spreads and rates fixed from the true labels
    (no hard-EM passes); unit_prior=False: units compete on likelihood alone (equal priors), the
    unit's rate still weighs it against noise."""
    from blechrs.core import assign_templates as TT, noise_model
    n = len(units)
    lab = np.full(len(label), -1)
    for k, u in enumerate(units):
        lab[label == u] = k
    if np.count_nonzero(lab >= 0) < TT.MIN_UNIT_EVENTS:
        return label
    w = np.asarray(w, dtype=np.float64)
    d = w.shape[1]
    templates = noise_model.mean_waveforms(w, lab, n)
    Wm = noise_model.whitening(noise_model.noise_cholesky(w, lab, templates))
    z = w @ Wm
    zz = np.einsum("ij,ij->i", z, z)
    tpl, spread, counts = TT.estimate_units(w, z, Wm, lab, n, templates)
    maha, ll = TT.unit_loglik(z, zz, tpl @ Wm, spread)
    with np.errstate(divide="ignore"):
        log_rate = np.log(counts / duration)
    best = np.argmax(ll + (log_rate[None, :] if unit_prior else 0.0), axis=1)
    rows = np.arange(len(best))
    keep = (ll[rows, best] + log_rate[best] > -0.5 * zz + np.log(fs / d)) & (maha[rows, best] <= d + TT.OUTLIER_SDS * np.sqrt(2.0 * d))
    return np.where(keep, np.asarray(units)[best], -1)


def mf_detect(Z, D, lograte, th, W):
    """Candidates: peaks of each z_u above th; greedy NMS by score LLR_u + log rate_u.
    Returns (times, unit index k, z)."""
    cand_t, cand_k, cand_s, cand_z = [], [], [], []
    for k, z in enumerate(Z):
        pk, _ = find_peaks(z, height=th)
        cand_t.append(pk)
        cand_k.append(np.full(len(pk), k))
        cand_z.append(z[pk])
        cand_s.append(D[k] * z[pk] - 0.5 * D[k] ** 2 + lograte[k])
    t = np.concatenate(cand_t); k = np.concatenate(cand_k); s = np.concatenate(cand_s); zz = np.concatenate(cand_z)
    order = np.argsort(-s, kind="stable")
    t, k, s, zz = t[order], k[order], s[order], zz[order]
    taken = np.zeros(Z.shape[1] + 2 * W + 2, dtype=bool)
    keep = np.zeros(len(t), dtype=bool)
    for i in range(len(t)):
        ti = t[i]
        if taken[ti + W]:  # taken is offset by W
            continue
        keep[i] = True
        taken[ti: ti + 2 * W + 1] = True
    o = np.argsort(t[keep], kind="stable")
    return t[keep][o], k[keep][o], zz[keep][o]


def run_set(key, ths, gate_ths, W, data=None, out=None):
    data = data or os.environ.get("BENCH_DATA", str(A.REPO.parent / "bench_data"))
    folder = A.ensure_set(key, data)
    meta = gtio.load_meta(folder)
    gt = gtio.load_gt_arrays(folder)
    fs = meta["fs"]
    nch = meta["n_channels"]
    duration = meta["n_samples"] / fs
    window = int(round(0.4e-3 * fs))
    rec = np.memmap(Path(folder) / "recording.bin", dtype="<i2", mode="r").reshape(-1, nch)
    params = SortParams().replace(sampling_rate=fs)
    t0 = time.time()
    pw = A.engine_extract(rec, params)
    print(f"[{key}] engine extract {time.time() - t0:.1f}s", flush=True)
    n_on_wire = np.bincount(gt["unit_channel"], minlength=nch)
    res = {}  # method -> list of row dicts (with units_per_wire, snr, d)
    noise_stats = {}

    def add(method, rows, units, dvals):
        for r, u, dv in zip(rows, units, dvals):
            r.update(unit=int(u), per=int(n_on_wire[gt["unit_channel"][u]]), snr=float(gt["unit_snr"][u]), d=float(dv))
        res.setdefault(method, []).extend(rows)

    for c in range(nch):
        units = [u for u in range(len(gt["unit_ids"])) if gt["unit_channel"][u] == c]
        if not units:
            continue
        tw = time.time()
        x = bandpass(np.asarray(rec[:, c]), fs)
        sigma = np.median(np.abs(x - np.median(x))) / 0.6745
        C, mask = noise_cov(x, sigma)
        kept_frac = mask.mean()
        Ci = np.linalg.inv(C)
        # templates from the true spike times
        T, D, F, rates, signs = [], [], [], [], []
        for u in units:
            s = gt["spike_times"][gt["spike_units"] == u]
            s = s[(s >= BEFORE + 10) & (s + AFTER + 10 < len(x))]
            tu = x[s[:, None] + np.arange(-BEFORE, AFTER)[None, :]].mean(axis=0)
            f = Ci @ tu
            d = float(np.sqrt(tu @ f))
            T.append(tu); D.append(d); F.append(f / d); rates.append(len(s) / duration)
            signs.append(np.sign(tu[BEFORE]) or -1.0)
        D = np.array(D); signs = np.array(signs)
        lograte = np.log(np.array(rates) / fs)
        Z = np.zeros((len(units), len(x)))
        for k in range(len(units)):
            Z[k, BEFORE:len(x) - AFTER + 1] = correlate(x, F[k], mode="valid", method="fft")
        # noise std of z in masked (spike-free) stretches
        zsd = [float(np.std(Z[k][mask > 0])) for k in range(len(units))]
        # --- baseline: engine events + assign_to_templates from the true labels
        w_e, t_e = pw[c][0], np.asarray(pw[c][1], dtype=np.int64)
        lab_e = gt_label(t_e, units, gt, window)
        pred_e = templ_assign(w_e, lab_e, units, fs, duration)
        add("base (engine 4x, templates)", unit_rows(units, gt, lab_e, pred_e), units, D)
        # --- the same ceiling on the scipy reference extraction (4 x MAD, no CAR: as the MF path)
        w_s, t_s = A.scipy_extract(np.asarray(rec[:, c]), fs, params)[:2]
        lab_s = gt_label(t_s, units, gt, window)
        add("base-scipy (scipy 4x no CAR, templates)", unit_rows(units, gt, lab_s, templ_assign(w_s, lab_s, units, fs, duration)), units, D)
        add("base-scipy fixed prior=True", unit_rows(units, gt, lab_s, fixed_classify(w_s, lab_s, units, fs, duration, True)), units, D)
        # --- gate: engine events kept if max z > th
        off = np.arange(-3, 4)
        te_c = np.clip(t_e, 3, len(x) - 4)
        zmax_e = Z[:, te_c[:, None] + off[None, :]].max(axis=2).max(axis=0) if len(t_e) else np.zeros(0)
        for th in gate_ths:
            keep = zmax_e > th
            pred = np.full(len(t_e), -1)
            if keep.any():
                pred[keep] = templ_assign(w_e[keep], lab_e[keep], units, fs, duration)
            add(f"gate:{th} (engine 4x, z>th, templates)", unit_rows(units, gt, lab_e, pred), units, D)
        # --- oracle: windows at the GT times (perfect detection), true labels, templates
        sg = gt["spike_times"][np.isin(gt["spike_units"], units)]
        su = gt["spike_units"][np.isin(gt["spike_units"], units)]
        okg = (sg >= BEFORE + 10) & (sg + AFTER + 10 < len(x))
        sg, su = sg[okg], su[okg]
        sgn_of = {u: signs[k] for k, u in enumerate(units)}
        w_o, p_o = cut_aligned(x, sg, np.array([sgn_of[u] for u in su]))
        lab_o = gt_label(p_o, units, gt, window)
        lab_o = np.where(lab_o >= 0, su, -1)  # the true unit (overlaps: the event's own)
        pred_o = templ_assign(w_o, lab_o, units, fs, duration)
        add("oracle (GT times, templates)", unit_rows(units, gt, lab_o, pred_o), units, D)
        for up in (True, False):
            add(f"oracle fixed prior={up}", unit_rows(units, gt, lab_o, fixed_classify(w_o, lab_o, units, fs, duration, up)), units, D)
        # --- Bayes per-unit rule and per-unit best threshold, from candidates at z > 3.5
        t_c, k_c, z_c = mf_detect(Z, D, lograte, 3.5, W)
        okc = (t_c >= BEFORE + 10) & (t_c + AFTER + 10 < len(x))
        t_c, k_c, z_c = t_c[okc], k_c[okc], z_c[okc]
        lab_c = gt_label(t_c, units, gt, window)
        sc_c = D[k_c] * z_c - 0.5 * D[k_c] ** 2 + lograte[k_c]
        for kappa in BAYES_KAPPA:
            pred = np.where(sc_c > kappa, np.asarray(units)[k_c], -1)
            add(f"mfC:{kappa} (MF, Bayes LLR+log p>k)", unit_rows(units, gt, lab_c, pred), units, D)
        rows_best = []
        for k, u in enumerate(units):
            best = None
            for thu in np.arange(3.5, 8.01, 0.125):
                pred = np.where((k_c == k) & (z_c > thu), u, -1)
                r = unit_rows([u], gt, lab_c, pred)[0]
                if best is None or r["acc"] > best["acc"]:
                    best = r; best["th_u"] = float(thu)
            rows_best.append(best)
        add("mfU (MF, per-unit best th, supervised)", rows_best, units, D)
        # --- MF detection
        for th in ths:
            t_m, k_m, z_m = mf_detect(Z, D, lograte, th, W)
            ok = (t_m >= BEFORE + 10) & (t_m + AFTER + 10 < len(x))
            t_m, k_m, z_m = t_m[ok], k_m[ok], z_m[ok]
            lab_m = gt_label(t_m, units, gt, window)
            predA = np.asarray(units)[k_m]
            add(f"mfA:{th} (MF detect, best filter)", unit_rows(units, gt, lab_m, predA), units, D)
            w_m, p_m = cut_aligned(x, t_m, signs[k_m])
            lab_p = gt_label(p_m, units, gt, window)
            predB = templ_assign(w_m, lab_p, units, fs, duration)
            add(f"mfB:{th} (MF detect, templates)", unit_rows(units, gt, lab_p, predB), units, D)
            for up in (True, False):
                add(f"mfF:{th} fixed prior={up}", unit_rows(units, gt, lab_p, fixed_classify(w_m, lab_p, units, fs, duration, up)), units, D)
            noise_stats.setdefault(th, []).append(np.count_nonzero(lab_m == -1) / duration)
            if th == ths[len(ths) // 2]:
                nz = lab_p == -1
                w_on = np.concatenate([w_o, w_m[nz]]); lab_on = np.concatenate([lab_o, lab_p[nz]])
                pred_on = templ_assign(w_on, lab_on, units, fs, duration)
                add(f"oracle+MF noise:{th}", unit_rows(units, gt, lab_on, pred_on), units, D)
        print(f"  wire {c:2d} units {len(units)} d/snr " + " ".join(f"{d:.1f}/{gt['unit_snr'][u]:.1f}" for d, u in zip(D, units))
              + f"  z-noise sd {' '.join(f'{v:.2f}' for v in zsd)} ({time.time() - tw:.1f}s, mask kept {kept_frac:.2f})", flush=True)
    report(key, res, noise_stats)
    if out:
        Path(out).write_text(json.dumps(dict(res=res, noise=noise_stats), default=float))
    return res


def report(key, res, noise_stats):
    print(f"\n=== {key} ===")
    print(f"{'method':44s} {'well':>6s} {'mean':>6s} {'det80':>6s}  split (n,well,mean) | tot missed/misclass/to_noise/fp_noise/fp_other")
    for m, rows in res.items():
        acc = np.array([r["acc"] for r in rows]); per = np.array([r["per"] for r in rows])
        det = np.array([r["det_frac"] for r in rows])
        split = " / ".join(f"{k}:{np.sum(per == k)},{np.sum(acc[per == k] >= 0.8)},{acc[per == k].mean():.2f}" for k in np.unique(per))
        tot = {k: sum(r[k] for r in rows) for k in ("n", "missed", "misclass", "to_noise", "fp_noise", "fp_other")}
        print(f"{m:44s} {np.sum(acc >= 0.8):3d}/{len(acc):2d} {acc.mean():6.3f} {np.sum(det >= 0.8):3d}  {split} | "
              f"{tot['missed']}/{tot['misclass']}/{tot['to_noise']}/{tot['fp_noise']}/{tot['fp_other']} of {tot['n']}")
    for th, v in noise_stats.items():
        print(f"  MF th {th}: noise detections {np.mean(v):.2f} /s per wire (mean)")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("sets")
    ap.add_argument("--th", default="3.5,4,4.5,5")
    ap.add_argument("--gate", default="3,3.5,4")
    ap.add_argument("--W", type=int, default=15)
    ap.add_argument("--out", default=None, help="per-unit results as JSON (one file per set: {set} is replaced)")
    a = ap.parse_args()
    for key in a.sets.split(","):
        run_set(key, [float(v) for v in a.th.split(",")], [float(v) for v in a.gate.split(",")], a.W,
                out=a.out.replace("{set}", key) if a.out else None)
