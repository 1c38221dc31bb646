from typing import Any, Callable, Sequence

import numpy as np
import numpy.typing as npt

__version__: str

class SampleSource:
    """A readable recording handed to the streaming engine (from an Intan folder or an array)."""
    @property
    def n_channels(self) -> int: ...
    @property
    def n_samples(self) -> int: ...

# --- signal engine (rust/bindings/signal.rs); documented in blechrs/kernels.py -----------------
def butter_bandpass(order: int, low: float, high: float, fs: float) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]: ...
def bandpass(x: npt.NDArray[Any], fs: float, low: float = 300.0, high: float = 3000.0, order: int = 2, scale: float = 1.0) -> npt.NDArray[np.float32]: ...
def noise_level(x: npt.NDArray[Any], fs: float, window_s: float | None = None) -> npt.NDArray[np.float64]: ...
def detect_spikes(x: npt.NDArray[Any], thresholds: float | Sequence[float], fs: float, window_s: float | None = None, polarity: str = "both", dead_time_ms: float = 0.5) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int8]]: ...
def extract_waveforms(x: npt.NDArray[Any], times: npt.NDArray[np.int64], before: int, after: int, align: bool = True) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float64], int]: ...
def recording_cutoff(x: npt.NDArray[Any], fs: float, voltage_cutoff: float = 10000.0, max_breach_rate: float = 1.0, max_secs_above_cutoff: float = 60.0, max_mean_breach_rate_persec: float = 100.0) -> int: ...
def common_average_reference(x: npt.NDArray[Any], groups: Sequence[int]) -> tuple[npt.NDArray[np.float32], list[int]]: ...
def extract_electrodes(source: npt.NDArray[np.int16] | SampleSource, electrodes: Sequence[int], car_groups: Sequence[int], params: dict[str, Any], progress: Callable[[int, int], None] | None = None) -> list[dict[str, Any]]: ...
def interleaved_file_source(path: str, n_channels: int, offset: int = 0) -> SampleSource:
    """A SampleSource over a flat little-endian int16 file interleaved by channel (amplifier.dat)."""

# --- Intan readers (rust/bindings/intan.rs); documented in blechrs/io/recording.py ---------------
import os

_Path = str | os.PathLike[str]
_Edges = list[tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]]

def intan_read_header(path: _Path) -> dict[str, Any]:
    """RHD2000 header (info.rhd or a .rhd file, versions 1.x-3.x) as a dict; ``channels`` lists
    the enabled channels in storage order (``signal_type`` 0 amplifier ... 5 digital out)."""

def intan_per_channel_source(paths: list[_Path]) -> SampleSource:
    """Amplifier channels from one int16 file per channel (all of equal length)."""

def intan_per_signal_source(path: _Path, n_channels: int) -> SampleSource:
    """Amplifier channels from amplifier.dat (int16, interleaved sample-major)."""

def intan_dat_samples(path: _Path, n_words: int = 1) -> int:
    """Samples in a 16-bit .dat file of ``n_words`` words per sample (errors if odd or partial)."""

def intan_word_file_edges(path: _Path, masks: list[int]) -> tuple[int, _Edges]:
    """(n_samples, [(onsets, offsets)] per mask) over a file of uint16 words; high = word & mask."""

def intan_time_dat_jumps(path: _Path) -> tuple[int, list[tuple[int, int, int]]]:
    """(n_samples, [(sample index, counter before, counter at index)]) of time.dat."""

def read_source(source: SampleSource, channels: list[int], start: int, stop: int) -> npt.NDArray[np.int16]:
    """Samples [start, stop) of ``channels`` from any SampleSource, int16 (channels x samples)."""

class RhdRecording:
    """Traditional .rhd recording: one file or several consecutive ones, read as one."""
    def __init__(self, paths: list[_Path]) -> None: ...
    @property
    def source(self) -> SampleSource: ...
    @property
    def header(self) -> dict[str, Any]: ...
    @property
    def n_samples(self) -> int: ...
    @property
    def warnings(self) -> list[str]: ...
    @property
    def parts(self) -> list[tuple[str, int, int]]:
        """(path, first sample, number of blocks) per file."""
    @property
    def block_bytes(self) -> int: ...
    def timestamp_jumps(self) -> list[tuple[int, int, int]]: ...
    def digital_in_edges(self, masks: list[int]) -> _Edges: ...
    def digital_out_edges(self, masks: list[int]) -> _Edges: ...
    def read_board_words(self, section: str, index: int, start: int, stop: int) -> npt.NDArray[np.uint16]:
        """uint16 words of 'adc' channel ``index``, or of the 'dig_in' / 'dig_out' word."""
