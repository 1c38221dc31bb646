"""Types of ``blechrs._native`` (rust/bindings), the one stub of the Rust engine; the docstrings
are the Rust doc comments (``help(blechrs._native.bandpass)``). ``mypy.stubtest`` checks it
against the built module (scripts/test.sh)."""

import os
from typing import Any, Callable, ClassVar, Sequence

import numpy as np
import numpy.typing as npt
from typing_extensions import Self, final

__all__ = [
    "__version__",
    "MICROVOLTS_PER_BIT",
    "SampleSource",
    "ExtractParams",
    "butter_bandpass",
    "bandpass",
    "noise_level",
    "detect_spikes",
    "extract_waveforms",
    "recording_cutoff",
    "common_average_reference",
    "extract_electrodes",
    "interleaved_file_source",
    "matched_filter_detect",
    "intan_read_header",
    "intan_per_channel_source",
    "intan_per_signal_source",
    "intan_dat_samples",
    "intan_word_file_edges",
    "intan_time_dat_jumps",
    "read_source",
    "RhdRecording",
    "simd_level",
]
__version__: str

@final
class SampleSource:
    @property
    def n_channels(self) -> int: ...
    @property
    def n_samples(self) -> int: ...

# --- signal engine (rust/bindings/signal.rs); the docstrings are the Rust doc comments ---------
_Samples = npt.NDArray[np.int16] | npt.NDArray[np.float32] | npt.NDArray[np.float64]

MICROVOLTS_PER_BIT: float

@final
class ExtractParams:
    FIELDS: ClassVar[tuple[str, ...]]
    def __new__(
        cls,
        *,
        sampling_rate: float,
        use_car: bool,
        reference_method: str,
        reference_clip: float,
        bandpass_lower_cutoff: float,
        bandpass_upper_cutoff: float,
        bandpass_order: int,
        voltage_cutoff: float,
        max_breach_rate: float,
        max_secs_above_cutoff: float,
        max_mean_breach_rate_persec: float,
        waveform_threshold: float,
        use_rolling_threshold: bool,
        rolling_threshold_window: float,
        rolling_threshold_step: float,
        noise_subsample: int,
        spike_polarity: str,
        dead_time_ms: float,
        spike_snapshot_before: float,
        spike_snapshot_after: float,
        align_subsample: bool,
    ) -> Self: ...
    @property
    def sampling_rate(self) -> float: ...
    @property
    def use_car(self) -> bool: ...
    @property
    def reference_method(self) -> str: ...
    @property
    def reference_clip(self) -> float: ...
    @property
    def bandpass_lower_cutoff(self) -> float: ...
    @property
    def bandpass_upper_cutoff(self) -> float: ...
    @property
    def bandpass_order(self) -> int: ...
    @property
    def voltage_cutoff(self) -> float: ...
    @property
    def max_breach_rate(self) -> float: ...
    @property
    def max_secs_above_cutoff(self) -> float: ...
    @property
    def max_mean_breach_rate_persec(self) -> float: ...
    @property
    def waveform_threshold(self) -> float: ...
    @property
    def use_rolling_threshold(self) -> bool: ...
    @property
    def rolling_threshold_window(self) -> float: ...
    @property
    def rolling_threshold_step(self) -> float: ...
    @property
    def noise_subsample(self) -> int: ...
    @property
    def spike_polarity(self) -> str: ...
    @property
    def dead_time_ms(self) -> float: ...
    @property
    def spike_snapshot_before(self) -> float: ...
    @property
    def spike_snapshot_after(self) -> float: ...
    @property
    def align_subsample(self) -> bool: ...

def butter_bandpass(order: int, low: float, high: float, fs: float) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]: ...
def bandpass(x: _Samples, fs: float, low: float = 300.0, high: float = 3000.0, order: int = 2, scale: float = 1.0) -> npt.NDArray[np.float32]: ...
def common_average_reference(
    x: _Samples, groups: Sequence[int], method: str = "mean", clip: float = 3.0, skip: int = 0
) -> tuple[npt.NDArray[np.float32], list[int]]: ...
def noise_level(x: _Samples, fs: float, window_s: float | None = None, subsample: int = 1) -> npt.NDArray[np.float64]: ...
def detect_spikes(
    x: _Samples,
    thresholds: float | Sequence[float] | npt.NDArray[np.floating[Any]],
    fs: float,
    window_s: float | None = None,
    polarity: str = "both",
    dead_time_ms: float = 0.5,
    subsample: int = 1,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int8]]: ...
def extract_waveforms(
    x: _Samples, times: Sequence[int] | npt.NDArray[np.integer[Any]], before: int, after: int, align: bool = True
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float64], int]: ...
def matched_filter_detect(
    x: npt.ArrayLike,
    filters: npt.ArrayLike,
    before: int,
    thresholds: Sequence[float],
    weights: Sequence[float],
    biases: Sequence[float],
    half_width: int,
    threads: int = 0,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.float32]]: ...
def recording_cutoff(
    x: _Samples,
    fs: float,
    voltage_cutoff: float = 10000.0,
    max_breach_rate: float = 1.0,
    max_secs_above_cutoff: float = 60.0,
    max_mean_breach_rate_persec: float = 100.0,
) -> int: ...
def extract_electrodes(
    source: npt.NDArray[np.int16] | SampleSource,
    electrodes: Sequence[int],
    car_groups: Sequence[int],
    params: ExtractParams,
    threads: int = 0,
    progress: Callable[[int, int], None] | None = None,
    scale: float = ...,
    spill: Sequence[str] | None = None,
) -> list[dict[str, Any]]: ...
def interleaved_file_source(path: str | os.PathLike[str], n_channels: int, offset: int = 0) -> SampleSource: ...

# --- Intan readers (rust/bindings/intan.rs) ---------------------------------------------------

_Path = str | os.PathLike[str]
_Edges = list[tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]]
def intan_read_header(path: _Path) -> dict[str, Any]: ...
def intan_per_channel_source(paths: list[_Path]) -> SampleSource: ...
def intan_per_signal_source(path: _Path, n_channels: int) -> SampleSource: ...
def intan_dat_samples(path: _Path, n_words: int = 1) -> int: ...
def intan_word_file_edges(path: _Path, masks: list[int]) -> tuple[int, _Edges]: ...
def intan_time_dat_jumps(path: _Path) -> tuple[int, list[tuple[int, int, int]]]: ...
def read_source(source: SampleSource, channels: list[int], start: int, stop: int) -> npt.NDArray[np.int16]: ...

@final
class RhdRecording:
    def __new__(cls, paths: list[_Path]) -> Self: ...
    @property
    def source(self) -> SampleSource: ...
    @property
    def header(self) -> dict[str, Any]: ...
    @property
    def n_samples(self) -> int: ...
    @property
    def warnings(self) -> list[str]: ...
    @property
    def parts(self) -> list[tuple[str, int, int]]: ...
    @property
    def block_bytes(self) -> int: ...
    def timestamp_jumps(self) -> list[tuple[int, int, int]]: ...
    def digital_in_edges(self, masks: list[int]) -> _Edges: ...
    def digital_out_edges(self, masks: list[int]) -> _Edges: ...
    def read_board_words(self, section: str, index: int, start: int, stop: int) -> npt.NDArray[np.uint16]: ...

def simd_level() -> str: ...
