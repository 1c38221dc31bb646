"""Pictures of the raw-data QA at init: the channel correlation matrices and the digital inputs'
pulses over the session."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from blechrs.figures.png import save_png


def _figure(w, h):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(w, h), dpi=80)
    FigureCanvasAgg(fig)
    return fig


def plot_channel_correlation(path: Path, r_raw: np.ndarray, r_band: np.ndarray, names: Sequence[str]) -> Path:
    """Pearson r between channels, of the raw traces and of the 300-3000 Hz band, side by side."""
    fig = _figure(11, 5)
    for k, (r, title) in enumerate([(r_raw, "raw"), (r_band, "300-3000 Hz")]):
        ax = fig.add_subplot(1, 2, k + 1)
        im = ax.imshow(r, vmin=-1, vmax=1, cmap="RdBu_r", interpolation="nearest")
        ax.set_title(f"channel correlation, {title}")
        ax.set_xlabel("channel")
        ax.set_ylabel("channel")
        fig.colorbar(im, ax=ax, shrink=0.8)
    fig.tight_layout()
    return save_png(path, fig)


def plot_digital_inputs(path: Path, din: Mapping[str, tuple[np.ndarray, np.ndarray]], fs: float,
                        n_samples: int) -> Path:
    """Every digital input's pulses (onsets, offsets in samples) over the session."""
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
    return save_png(path, fig)
