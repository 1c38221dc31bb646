"""Per-electrode spike features in which amplitude matters.

blech_clust z-scores every waveform before its PCA (its issue #767), which throws away the one
property that best tells apart units sharing a microwire: their size. blechrs instead projects the
waveforms *in microvolts* on their principal components and adds the signed peak amplitude and the
RMS energy. All columns are divided by one common per-electrode scale (not one scale per column), so
the geometry between features (a large unit is far from a small one) is kept, and the numbers are of
order one for the Gaussian mixtures.

Columns: ``n_pca`` principal components (default 3), peak amplitude (signed, at the extremum index),
RMS energy. Always ``n_pca + 2`` columns, also for 0 or very few events.
"""

from __future__ import annotations

import numpy as np

from blechrs.core.rows import rows, spans
from blechrs.params import SortParams

N_PCA = 3


def training_indices(n: int, max_events: int, seed: int) -> np.ndarray:
    """Sorted indices of at most ``max_events`` of ``n`` events, drawn without replacement."""
    if n <= max_events:
        return np.arange(n)
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n, size=max_events, replace=False))


def peak_index(params, n_samples: int) -> int:
    """Index of the extremum in each waveform (``samples_before``), clipped to the window."""
    fs = float(params.extract.sampling_rate)
    before = float(params.extract.spike_snapshot_before)
    return int(min(max(int(round(before * fs / 1000.0)), 0), max(n_samples - 1, 0)))


def compute_features(waveforms: np.ndarray, params: SortParams) -> np.ndarray:
    """Features of one electrode's waveforms (n x L, microvolts) -> n x (N_PCA + 2) float64."""
    w = np.asarray(waveforms)  # float32 as extracted: read in float64 a chunk at a time (core/rows.py)
    if w.ndim != 2:
        raise ValueError(f"waveforms must be 2-D (events x samples), got shape {w.shape}")
    n, length = w.shape
    d = N_PCA + 2
    if n == 0 or length == 0:
        return np.zeros((n, d), dtype=np.float64)
    seed = int(params.cluster.random_seed)
    max_train = int(params.cluster.max_training_events)

    amplitude = rows(w[:, peak_index(params, length)])
    energy = np.empty(n)
    for a, b in spans(n):
        block = rows(w, slice(a, b))
        energy[a:b] = np.sqrt(np.mean(block * block, axis=1))

    # PCA fitted on a training subset (fast on long recordings), applied to every event.
    train = rows(w, training_indices(n, max_train, seed))
    mean = train.mean(axis=0)
    pcs = np.zeros((n, N_PCA))
    if len(train) >= 2:
        # Principal axes from the L x L scatter matrix (7x cheaper than an SVD of the events;
        # the leading axes of spike waveforms are well separated, so nothing is lost).
        centred = train - mean
        _, evecs = np.linalg.eigh(centred.T @ centred)
        k = min(N_PCA, len(train), length)
        vt = evecs[:, ::-1][:, :k].T
        # Fix each component's sign (an eigenvector's is arbitrary) so results are reproducible across BLAS.
        signs = np.sign(vt[:k, np.argmax(np.abs(vt[:k]), axis=1)].diagonal())
        signs[signs == 0] = 1.0
        axes = vt[:k].T * signs
        for a, b in spans(n):
            pcs[a:b, :k] = (rows(w, slice(a, b)) - mean) @ axes

    feats = np.column_stack([pcs, amplitude, energy])
    # One common scale: the spread of the events along the first PC (in uV). Dividing every column
    # by it keeps amplitude differences as large as they are relative to shape differences.
    scale = float(np.std(pcs[:, 0])) if n > 1 else 0.0
    if not np.isfinite(scale) or scale <= 0:
        scale = float(np.max(np.abs(feats))) or 1.0
    return np.ascontiguousarray(feats / scale)
