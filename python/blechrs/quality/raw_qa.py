"""Raw-data checks before sorting: bridged channels, dead or flat channels, digital inputs.

``raw_qa(directory)`` samples the recording (``n_corr_samples`` samples in windows at seeded
random places, the same for every channel), and writes under ``DIR/QA_output/``:

* ``channel_corr.npz``: Pearson r between every pair of channels, full symmetric matrices
  (diagonal 1) of the raw traces (``raw``) and of the 300-3000 Hz band (``spike_band``);
* ``raw_channel_corr_plot.png`` and ``raw_channel_corr_table.txt``;
* ``warnings.txt``: bridged pairs, dead and flat channels;
* ``digital_inputs.png``: every digital input's pulses over the session.

Bridged channels are pairs with spike-band r > ``bridged_channel_threshold`` (0.9). blech_clust
tests the raw traces, but raw traces of healthy neighbouring wires share the LFP and the
reference, so raw r is high for them too; a short between two wires makes even their spike-band
noise identical, which healthy wires never share. Flat channels barely change at all (a
disconnected or saturated input); dead channels have less than a fifth of the median channel's
spike-band noise. The result prints as a short summary (``str(result)``, or rich).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from blechrs.io.recording import MICROVOLTS_PER_BIT
from blechrs.params import ExtractParams, SortParams

QA_DIR = "QA_output"
_PAD = 3000  # samples of padding read around each window so the band-pass edge effects fall outside


def _windows(n_samples: int, n_corr: int, n_windows: int, rng) -> list[tuple[int, int]]:
    width = max(1, n_corr // n_windows)
    if n_samples <= n_corr:
        return [(0, n_samples)]
    starts = np.sort(rng.choice(n_samples - width, size=min(n_windows, max(1, n_samples // width - 1)), replace=False))
    return [(int(s), int(s) + width) for s in starts]


def sample_channels(recording, n_corr_samples: int = 10000, seed: int = 0, n_windows: int = 20):
    """(raw, spike_band): float32 channels x n arrays of the same sampled places, microvolts."""
    from blechrs import kernels

    rng = np.random.default_rng(seed)
    n = recording.n_samples
    chans = list(range(recording.n_channels))
    raw, band = [], []
    for a, b in _windows(n, n_corr_samples, n_windows, rng):
        lo, hi = max(0, a - _PAD), min(n, b + _PAD)
        x = recording.read(chans, lo, hi).astype(np.float32) * np.float32(MICROVOLTS_PER_BIT)
        raw.append(x[:, a - lo: b - lo])
        if hi - lo > 12:  # filtfilt needs more samples than its padding
            f = kernels.bandpass(np.ascontiguousarray(x, dtype=np.float64), recording.sampling_rate)
            band.append(np.asarray(f)[:, a - lo: b - lo])
        else:
            band.append(x[:, a - lo: b - lo] - x[:, a - lo: b - lo].mean(axis=1, keepdims=True))
    return np.concatenate(raw, axis=1), np.concatenate(band, axis=1)


def correlation(x: np.ndarray) -> np.ndarray:
    """Pearson r of the rows of x, symmetric, diagonal 1; a constant row correlates 0 with all."""
    x = np.asarray(x, dtype=np.float64)
    z = x - x.mean(axis=1, keepdims=True)
    sd = np.sqrt((z**2).sum(axis=1))
    ok = sd > 0
    z[ok] /= sd[ok, None]
    z[~ok] = 0.0
    r = np.clip(z @ z.T, -1.0, 1.0)
    np.fill_diagonal(r, 1.0)
    return r


@dataclass
class RawQAResult:
    directory: Path
    n_channels: int
    channel_names: list[str]
    bridged: list[tuple[int, int, float]] = field(default_factory=list)
    """(channel i, channel j, spike-band r) for r above the threshold."""
    flat: list[int] = field(default_factory=list)
    dead: list[int] = field(default_factory=list)
    noise_uv: np.ndarray | None = None
    """Spike-band noise per channel (median |x| / 0.6745 of the sampled band), microvolts."""
    digital_inputs: dict[str, int] = field(default_factory=dict)
    """Pulses per digital input."""
    outputs: list[Path] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    raw_corr: np.ndarray | None = None
    band_corr: np.ndarray | None = None

    @property
    def ok(self) -> bool:
        return not (self.bridged or self.flat or self.dead)

    def lines(self) -> list[str]:
        out = [f"raw QA of {self.n_channels} channels: "
               + ("no bridged, dead or flat channels" if self.ok else
                  f"{len(self.bridged)} bridged pair(s), {len(self.dead)} dead, {len(self.flat)} flat")]
        if self.noise_uv is not None and len(self.noise_uv):
            out.append(f"spike-band noise {np.median(self.noise_uv):.1f} uV median "
                       f"({np.min(self.noise_uv):.1f}-{np.max(self.noise_uv):.1f})")
        if self.digital_inputs:
            out.append("digital inputs: " + ", ".join(f"{k} {v}" for k, v in self.digital_inputs.items()))
        out += self.warnings
        if self.outputs:
            out.append(f"written to {self.outputs[0].parent}")
        return out

    def __str__(self) -> str:
        return "\n".join(self.lines())

    def __rich__(self):
        from rich.text import Text

        t = Text()
        for i, line in enumerate(self.lines()):
            style = "yellow" if line in self.warnings else ("green" if i == 0 and self.ok else "")
            t.append(line + "\n", style=style)
        return t


def raw_qa(directory: str | os.PathLike, recording=None, params: SortParams | None = None, plots: bool = True,
           channels_in_use: list[int] | None = None) -> RawQAResult:
    """Check the raw recording in ``directory`` and write the QA files (see the module docstring)."""
    from blechrs.io import open_recording

    directory = Path(directory)
    rec = recording if recording is not None else open_recording(directory)
    params = params or SortParams(extract=ExtractParams(sampling_rate=rec.sampling_rate))
    raw, band = sample_channels(rec, params.quality.n_corr_samples, params.cluster.random_seed)
    r_raw, r_band = correlation(raw), correlation(band)
    res = RawQAResult(directory=directory, n_channels=rec.n_channels, channel_names=list(rec.channel_names),
                      raw_corr=r_raw, band_corr=r_band)
    names = rec.channel_names
    use = set(range(rec.n_channels) if channels_in_use is None else channels_in_use)
    thr = params.quality.bridged_channel_threshold
    iu, ju = np.triu_indices(rec.n_channels, k=1)
    for i, j in zip(iu, ju):
        if r_band[i, j] > thr and i in use and j in use:
            res.bridged.append((int(i), int(j), float(r_band[i, j])))
    noise = np.median(np.abs(band), axis=1) / 0.6745
    res.noise_uv = noise
    span = raw.max(axis=1) - raw.min(axis=1) if raw.shape[1] else np.zeros(rec.n_channels)
    res.flat = [c for c in range(rec.n_channels) if span[c] <= 2 * MICROVOLTS_PER_BIT and c in use]
    live = noise[[c for c in range(rec.n_channels) if c not in res.flat]]
    ref = float(np.median(live)) if len(live) else 0.0
    res.dead = [c for c in range(rec.n_channels) if c not in res.flat and c in use and noise[c] < 0.2 * ref]
    for i, j, r in res.bridged:
        res.warnings.append(f"bridged channels {i} ({names[i]}) and {j} ({names[j]}): spike-band r = {r:.3f}")
    for c in res.flat:
        res.warnings.append(f"flat channel {c} ({names[c]}): the signal does not change (disconnected?)")
    for c in res.dead:
        res.warnings.append(f"dead channel {c} ({names[c]}): spike-band noise {noise[c]:.2f} uV, "
                            f"median channel {ref:.2f} uV")
    din = rec.digital_inputs
    res.digital_inputs = {k: int(len(v[0])) for k, v in din.items()}

    out = directory / QA_DIR
    out.mkdir(exist_ok=True)
    _save_npz(out / "channel_corr.npz", raw=r_raw, spike_band=r_band, channel_names=np.array(names, dtype=str),
              noise_uv=noise)
    res.outputs.append(out / "channel_corr.npz")
    _atomic_text(out / "raw_channel_corr_table.txt", _corr_table(res, r_raw, r_band, thr))
    res.outputs.append(out / "raw_channel_corr_table.txt")
    _atomic_text(out / "warnings.txt", "".join(w + "\n" for w in res.warnings) or "no warnings\n")
    res.outputs.append(out / "warnings.txt")
    if plots:
        res.outputs.append(_plot_corr(out / "raw_channel_corr_plot.png", r_raw, r_band, names))
        res.outputs.append(_plot_din(out / "digital_inputs.png", din, rec.sampling_rate, rec.n_samples))
    return res


def _save_npz(path: Path, **arrays) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, path)


def _atomic_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def _corr_table(res: RawQAResult, r_raw, r_band, thr) -> str:
    lines = [f"channel pairs with spike-band r > {thr:g} (bridged):"]
    lines += [f"  {i:3d} {res.channel_names[i]:>10s}  {j:3d} {res.channel_names[j]:>10s}  "
              f"r_band {r:.3f}  r_raw {r_raw[i, j]:.3f}" for i, j, r in res.bridged] or ["  none"]
    n = res.n_channels
    if n > 1:
        off = ~np.eye(n, dtype=bool)
        lines.append(f"median off-diagonal r: raw {np.median(r_raw[off]):.3f}, spike band {np.median(r_band[off]):.3f}")
    return "\n".join(lines) + "\n"


def _figure(w, h):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(w, h), dpi=80)
    FigureCanvasAgg(fig)
    return fig


def _save_fig(fig, path: Path) -> Path:
    tmp = path.with_name(f".{path.stem}.tmp{os.getpid()}.png")
    fig.savefig(tmp)
    os.replace(tmp, path)
    return path


def _plot_corr(path: Path, r_raw, r_band, names) -> Path:
    fig = _figure(11, 5)
    for k, (r, title) in enumerate([(r_raw, "raw"), (r_band, "300-3000 Hz")]):
        ax = fig.add_subplot(1, 2, k + 1)
        im = ax.imshow(r, vmin=-1, vmax=1, cmap="RdBu_r", interpolation="nearest")
        ax.set_title(f"channel correlation, {title}")
        ax.set_xlabel("channel")
        ax.set_ylabel("channel")
        fig.colorbar(im, ax=ax, shrink=0.8)
    fig.tight_layout()
    return _save_fig(fig, path)


def _plot_din(path: Path, din, fs, n_samples) -> Path:
    fig = _figure(10, 1.2 + 0.5 * max(1, len(din)))
    ax = fig.add_subplot(1, 1, 1)
    for k, (name, (on, off)) in enumerate(din.items()):
        if len(on):
            ax.broken_barh([(a / fs, max((b - a) / fs, 0.05)) for a, b in zip(on, off)], (k - 0.35, 0.7),
                           color=f"C{k % 10}")
    ax.set_yticks(range(len(din)))
    ax.set_yticklabels([f"{k} ({len(v[0])})" for k, v in din.items()])
    ax.set_xlim(0, n_samples / fs)
    ax.set_xlabel("time (s)")
    ax.set_title("digital inputs (pulses)" if din else "no digital inputs")
    fig.tight_layout()
    return _save_fig(fig, path)


def auto_car_groups(corr: np.ndarray, groups: list[str], max_clusters: int = 10, seed: int = 42,
                    profile_noise_r: float = 0.1) -> list[str]:
    """Split each CAR group into sub-groups of channels that correlate alike (spec 3.4, fixed;
    off by default, as in blech_clust).

    ``corr`` is the symmetric Pearson r matrix of the raw traces, not blech_clust's (r+1)/2
    transform. Each channel's row of its group's sub-matrix is its correlation profile; the
    diagonal (a channel's r with itself, 1) is replaced by the mean of the row, so a channel is
    not set apart by its own self-correlation. Profiles are reduced by PCA (min(3, n-1)
    components) and clustered by a spherical Gaussian mixture for k = 1..min(max_clusters, n-1),
    the k with the lowest BIC winning. Profile differences below ``profile_noise_r`` are treated
    as noise (the mixture's variance floor), which keeps a uniform group whole (blech_clust's
    k-means BIC with SSE/(n-k) splits any group into many). ``none``/EMG groups and groups of
    fewer than 4 channels are kept. A split group's channels become ``<group>-<cluster:02>``.
    """
    import warnings

    from sklearn.decomposition import PCA
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.mixture import GaussianMixture

    corr = np.asarray(corr, dtype=np.float64)
    out = list(groups)
    for g in dict.fromkeys(groups):
        if g.strip().lower() in ("none", "na", "") or "emg" in g.lower():
            continue
        idx = [i for i, x in enumerate(groups) if x == g]
        n = len(idx)
        if n < 4:
            continue
        sub = corr[np.ix_(idx, idx)].copy()
        off = ~np.eye(n, dtype=bool)
        np.fill_diagonal(sub, [sub[i, off[i]].mean() for i in range(n)])
        d = min(3, n - 1)
        z = PCA(n_components=d, random_state=seed).fit_transform(sub)
        best, best_bic = np.zeros(n, dtype=int), np.inf
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            for k in range(1, min(max_clusters, n - 1) + 1):
                gm = GaussianMixture(k, covariance_type="spherical", n_init=3, random_state=seed,
                                     reg_covar=profile_noise_r**2).fit(z)
                bic = gm.bic(z)
                if bic < best_bic:
                    best, best_bic = gm.predict(z), bic
        if len(set(best)) > 1:
            order = {lab: i for i, lab in enumerate(dict.fromkeys(best))}  # numbered by first channel
            for i, lab in zip(idx, best):
                out[i] = f"{g}-{order[lab]:02d}"
    return out
