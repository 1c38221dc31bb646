//! Per-sample signal processing: filtering, referencing, thresholds, detection, waveforms.
pub mod source;
