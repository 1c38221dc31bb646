"""Sorting schemes: each composes the steps of blechrs.core into the sorting of one electrode.

``autosort_electrode`` (schemes/autosort.py): from clustering solutions to units.
``sort_electrode`` and the per-electrode stages (schemes/sort_electrode.py): extracted events ->
features -> clustering solutions -> auto-sort's units, as a pure function of the electrode's work.
"""

from blechrs.schemes.autosort import autosort_electrode

__all__ = ["autosort_electrode"]
