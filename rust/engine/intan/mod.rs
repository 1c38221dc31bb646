//! Intan RHD2000 file formats: header parsing and block / .dat reading.
//!
//! `header` parses info.rhd and .rhd headers (versions 1.x-3.x); `dat` reads the headerless
//! layouts (one file per channel, one file per signal type); `rhd` reads traditional .rhd files.
//! Every reader implements `crate::signal::source::SampleSource`.
pub mod dat;
pub mod header;
pub mod rhd;

/// Microvolts per int16 count of an RHD2000 amplifier channel, the same in every file format.
pub const MICROVOLTS_PER_BIT: f64 = 0.195;
