"""Sorting steps: features, clustering solutions, unit quality metrics and the steps of auto-sort.

One short module per step, named for what it does: features (``compute_features``), cluster
(``cluster_electrode``), then auto-sort's steps: choose_base_solution, merge_clusters, echoes,
judge_units, assign_templates (on noise_model), split_units (on align_to_template), merge_units
(on refractory), noise_units. blechrs.schemes composes them (``autosort_electrode``). Everything
here is pure numpy / scikit-learn, seeded and deterministic.
"""

from blechrs.core.cluster import Solution, cluster_electrode
from blechrs.core.features import compute_features

__all__ = ["Solution", "cluster_electrode", "compute_features"]
