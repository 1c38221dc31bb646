"""The signal engine (Rust, multi-threaded, GIL released) as plain numpy functions.

Every kernel is ``blechrs._native``'s own function, documented there (``help(kernels.bandpass)``)
and typed in ``_native.pyi``. Only :func:`extract_electrodes` is Python: it turns the stage's
parameter object into ``_native.ExtractParams``. Threads: ``BLECHRS_THREADS`` (unset or 0 = all
cores); ``extract_electrodes`` takes ``threads`` first.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

from blechrs import _native
from blechrs._native import (
    MICROVOLTS_PER_BIT as MICROVOLTS_PER_BIT,
    ExtractParams as ExtractParams,
    SampleSource as SampleSource,
    bandpass as bandpass,
    butter_bandpass as butter_bandpass,
    common_average_reference as common_average_reference,
    detect_spikes as detect_spikes,
    extract_waveforms as extract_waveforms,
    interleaved_file_source as interleaved_file_source,
    matched_filter_detect as matched_filter_detect,
    noise_level as noise_level,
    recording_cutoff as recording_cutoff,
)


def extract_electrodes(
    source: Any,
    electrodes: Sequence[int],
    car_groups: Sequence[int],
    params: Any,
    threads: int = 0,
    progress: Callable[[int, int], None] | None = None,
    scale: float = MICROVOLTS_PER_BIT,
    spill: Sequence[str] | None = None,
) -> list[dict[str, Any]]:
    """``_native.extract_electrodes`` with ``params`` any object carrying the extraction stage's
    parameters as attributes (``ExtractParams.FIELDS``, e.g. the stage's dataclass), or an
    ``ExtractParams``. ``scale``: the recording's microvolts per count (``Recording.gain``).
    ``spill``: a file prefix per electrode, to write the events to instead of memory.
    See ``help(blechrs._native.extract_electrodes)``."""
    if not isinstance(params, ExtractParams):
        params = ExtractParams(**{name: getattr(params, name) for name in ExtractParams.FIELDS})
    return _native.extract_electrodes(source, electrodes, car_groups, params, threads, progress, scale,
                                      None if spill is None else [str(p) for p in spill])
