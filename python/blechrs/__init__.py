"""blechrs: fast, non-interactive spike sorting for Intan RHD2000 microwire recordings."""

from __future__ import annotations

import os
from typing import Any

from blechrs._native import __version__

__all__ = ["__version__", "to_spikeinterface"]


def to_spikeinterface(directory: str | os.PathLike, recording: bool | None = None) -> Any:
    """The unit store of a sorted folder as a SpikeInterface sorting, with the Intan recording
    registered when the folder holds it (extra ``spikeinterface``; see
    :func:`blechrs.interop.spikeinterface.to_spikeinterface`). SpikeInterface is imported here,
    not at ``import blechrs``."""
    from blechrs.interop.spikeinterface import to_spikeinterface as convert

    return convert(directory, recording)
