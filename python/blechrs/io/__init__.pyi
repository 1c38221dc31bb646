from blechrs.io.recording import (
    FILE_TYPES as FILE_TYPES,
    AmplifierView as AmplifierView,
    Recording as Recording,
    RecordingError as RecordingError,
    RecordingWarning as RecordingWarning,
    copy_raw as copy_raw,
    open_recording as open_recording,
)
