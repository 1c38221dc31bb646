"""Automatic CAR groups: split each common-average-reference group into channels that correlate
alike (spec 3.4, fixed; off by default, as in blech_clust)."""

from __future__ import annotations

import numpy as np


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


#: How every small-CAR-group warning starts (a later run replaces the earlier run's).
SMALL_GROUP_PREFIX = "CAR group "


def small_group_warnings(sizes: dict[str, int], smallest: int, method: str, params_file: str) -> list[str]:
    """One warning per referenced CAR group (``sizes``: name -> wires) of fewer than ``smallest``
    wires, saying what to do."""
    out = []
    for name, n in sizes.items():
        if 2 <= n < smallest:
            copies = (f"puts an inverted 1/{n} copy of every spike onto the other {n - 1} wires" if method == "mean" else
                      f"({method}) still holds a spike seen on half its wires at once, as a tetrode sees one")
            out.append(f"{SMALL_GROUP_PREFIX}{name} has only {n} wires (< {smallest}): its common reference {copies} "
                       f"and adds 1/{n} of their noise, so referencing may hurt more than it helps (auto-sort removes "
                       f"the copies it finds: QA_output/reference_echoes.csv). Compare a run with use_car false in "
                       f"{params_file}; keep referencing only if the wires share noise or hum, or join the group to "
                       f"others of the same headstage in the electrode layout")
    return out
