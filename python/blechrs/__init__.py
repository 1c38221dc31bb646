"""blechrs: fast, non-interactive spike sorting for Intan RHD2000 microwire recordings."""

from blechrs._native import __version__

__all__ = ["__version__"]
