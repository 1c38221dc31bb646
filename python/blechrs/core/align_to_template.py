"""Move a unit's template to an event, or an event to the template, by a sub-sample shift.

Spikes are detected on whole samples, so one neuron's events sit up to half a sample apart from
its template; the shape tests of split_units compare shapes only after this shift (Catmull-Rom
cubic resampling, the engine's interpolation).
"""

from __future__ import annotations

import functools

import numpy as np

#: Samples either side of the extremum compared when moving the template to an event.
REALIGN_HALF_WIDTH = 15
#: Sub-sample shifts (samples) tried when moving a unit's template to an event.
REALIGN_SHIFTS = np.arange(-1.0, 1.001, 0.125)


def _shift(x: np.ndarray, shift: float) -> np.ndarray:
    """Rows of x resampled at i + shift (Catmull-Rom cubic, the engine's interpolation; edges
    held)."""
    n = x.shape[-1]
    pos = np.arange(n) + shift
    base = np.floor(pos).astype(np.int64)
    f = pos - base
    p0, p1, p2, p3 = (x[..., np.clip(base + k, 0, n - 1)] for k in (-1, 0, 1, 2))
    return p1 + 0.5 * f * (p2 - p0 + f * (2 * p0 - 5 * p1 + 4 * p2 - p3 + f * (3 * (p1 - p2) + p3 - p0)))


@functools.lru_cache(maxsize=256)
def _shift_operator(n: int, shift: float) -> np.ndarray:
    """The n x n matrix M with x @ M == _shift(x, shift) for rows x of length n (cached: a few
    window lengths and shifts recur for every unit)."""
    m = _shift(np.eye(n), shift)
    m.setflags(write=False)
    return m


def realign(w: np.ndarray, template: np.ndarray, peak: int) -> np.ndarray:
    """Each event shifted by the sub-sample amount whose samples around the extremum (the
    template's steep part, +-REALIGN_HALF_WIDTH) best fit the scaled template."""
    lo, hi = max(0, peak - REALIGN_HALF_WIDTH), min(w.shape[1], peak + REALIGN_HALF_WIDTH)
    t = template[lo:hi]
    tt = float(t @ t)
    # shift only the compared samples, with the 3 either side the cubic reaches for |shift| <= 1;
    # every shift at once as one product with the stacked resampling matrices
    a, b = max(0, lo - 3), min(w.shape[1], hi + 3)
    ops = np.stack([_shift_operator(b - a, float(s))[:, lo - a:hi - a] for s in REALIGN_SHIFTS])
    ws = np.einsum("ij,sjk->isk", w[:, a:b], ops, optimize=True)   # events x shifts x samples
    along = ws @ t
    dist = np.einsum("isk,isk->is", ws, ws) - along**2 / tt          # |residual|^2 after scaling
    chosen = np.argmin(dist, axis=1)                                 # first best shift on ties
    out = np.empty_like(w)
    for j in np.unique(chosen):
        rows = chosen == j
        out[rows] = w[rows] @ _shift_operator(w.shape[1], float(REALIGN_SHIFTS[j]))
    return out


def aligned_residuals(w: np.ndarray, template: np.ndarray, peak: int) -> np.ndarray:
    """Each event minus the template moved to it: the template resampled at the sub-sample shift
    (REALIGN_SHIFTS) whose samples around the extremum (+-REALIGN_HALF_WIDTH), scaled, best fit
    the event. The template moves, not the event: resampling an event would smooth its noise by
    an amount that depends on the shift, and one neuron would look like two noise textures."""
    n = w.shape[1]
    lo, hi = max(0, peak - REALIGN_HALF_WIDTH), min(n, peak + REALIGN_HALF_WIDTH)
    moved = np.stack([template @ _shift_operator(n, -float(s)) for s in REALIGN_SHIFTS])
    part = moved[:, lo:hi]
    fit = (w[:, lo:hi] @ part.T) ** 2 / np.einsum("ij,ij->i", part, part)[None, :]
    return w - moved[np.argmax(fit, axis=1)]   # least residual = largest explained power
