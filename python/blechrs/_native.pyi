__version__: str

class SampleSource:
    """A readable recording handed to the streaming engine (from an Intan folder or an array)."""
    @property
    def n_channels(self) -> int: ...
    @property
    def n_samples(self) -> int: ...

# --- Intan readers (rust/bindings/intan.rs) ------------------------------------------------------
import os
from typing import Any

import numpy as np
import numpy.typing as npt

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
