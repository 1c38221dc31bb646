"""The clustering solution auto-sort starts from: an over-clustered one.

The GMM with K = ``autosort_base_clusters`` (more clusters than units is the safe side: splitting
one unit in two can be undone, lumping two cannot), but no more than one cluster per
``MIN_EVENTS_PER_CLUSTER`` events.
"""

from __future__ import annotations

#: Fewest events per cluster of the solution auto-sort starts from.
MIN_EVENTS_PER_CLUSTER = 40


def choose_base_solution(features, solutions, params) -> int:
    """The over-clustered GMM solution auto-sort starts from: K = autosort_base_clusters, but no
    more clusters than one per ``MIN_EVENTS_PER_CLUSTER`` events (a cluster needs enough events
    for its covariance, or its merges cannot be judged)."""
    max_clusters = int(params.cluster.autosort_base_clusters)
    gmm = sorted(k for k, s in solutions.items() if s.kind == "gmm")
    if not gmm:
        return max(solutions)
    cap = max(2, len(features) // MIN_EVENTS_PER_CLUSTER)
    fitting = [k for k in gmm if k <= min(max_clusters, cap)]
    return fitting[-1] if fitting else gmm[0]
