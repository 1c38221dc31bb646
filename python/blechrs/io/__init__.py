"""Reading Intan recordings and the experiment layout (``<name>.info``, electrode layout CSV)."""

from blechrs.io.recording import (
    FILE_TYPES,
    AmplifierView,
    Recording,
    RecordingError,
    RecordingWarning,
    copy_raw,
    open_recording,
)

__all__ = [
    "FILE_TYPES",
    "AmplifierView",
    "Recording",
    "RecordingError",
    "RecordingWarning",
    "copy_raw",
    "open_recording",
]
