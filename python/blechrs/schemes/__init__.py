"""Sorting schemes: each composes the steps of blechrs.core into the sorting of one electrode.

``autosort_electrode`` (schemes/autosort.py): from clustering solutions to units.
"""

from blechrs.schemes.autosort import autosort_electrode

__all__ = ["autosort_electrode"]
