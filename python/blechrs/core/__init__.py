"""Sorting algorithms: features, clustering solutions, unit quality metrics and auto-sort.

Each electrode is sorted on its own: ``compute_features`` -> ``cluster_electrode`` ->
``autosort_electrode``. Everything here is pure numpy / scikit-learn, seeded and deterministic.
"""

from blechrs.core.autosort import UnitChoice, autosort_electrode
from blechrs.core.cluster import Solution, cluster_electrode
from blechrs.core.features import compute_features

__all__ = ["Solution", "UnitChoice", "autosort_electrode", "cluster_electrode", "compute_features"]
