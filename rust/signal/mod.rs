//! Per-sample signal processing: filtering, referencing, thresholds, detection, waveforms.
