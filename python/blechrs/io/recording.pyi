import os
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import numpy.typing as npt

from blechrs._native import SampleSource

PER_CHANNEL: str
PER_SIGNAL: str
TRADITIONAL: str
FILE_TYPES: tuple[str, str, str]

class RecordingError(ValueError): ...
class RecordingWarning(UserWarning): ...

def din_name(native_name: str) -> str: ...

class AmplifierView:
    dtype: np.dtype
    ndim: int
    source: SampleSource
    @property
    def shape(self) -> tuple[int, int]: ...
    def __len__(self) -> int: ...
    def read(self, channels: Iterable[int], start: int = 0, stop: int | None = None) -> npt.NDArray[np.int16]: ...
    def __getitem__(self, key: Any) -> npt.NDArray[np.int16]: ...
    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray: ...

class Recording:
    path: Path
    file_type: str
    sampling_rate: float
    n_samples: int
    channel_names: list[str]
    custom_channel_names: list[str]
    ports: list[str]
    native_orders: list[int]
    header: dict[str, Any]
    amplifier: AmplifierView
    files: list[Path]
    warnings: list[str]
    gain: float
    segment_starts: list[int]
    def identity(self) -> str: ...
    @property
    def source(self) -> SampleSource: ...
    @property
    def header_file(self) -> Path: ...
    @property
    def n_channels(self) -> int: ...
    @property
    def duration_s(self) -> float: ...
    @property
    def port_names(self) -> list[str]: ...
    @property
    def electrode_nums(self) -> list[str]: ...
    @property
    def filenames(self) -> list[str]: ...
    @property
    def digital_inputs(self) -> dict[str, tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]]: ...
    def read(self, channels: Iterable[int], start: int = 0, stop: int | None = None) -> npt.NDArray[np.int16]: ...
    def microvolts(self, channels: Iterable[int], start: int = 0, stop: int | None = None) -> npt.NDArray[np.float32]: ...

def open_recording(path: str | os.PathLike[str]) -> Recording: ...
def copy_raw(
    recording: Recording,
    h5_path: str | os.PathLike[str],
    electrodes: Iterable[int] | None = None,
    chunk_samples: int = ...,
    progress: Callable[[int, int], None] | None = None,
) -> list[str]: ...
