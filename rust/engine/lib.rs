//! blechrs signal engine: everything that touches every sample, as plain Rust (no Python).
//!
//! `intan` reads the Intan RHD2000 formats; `signal` filters, references, thresholds, detects and
//! cuts waveforms; `error` is the one error type; `fileio` the positioned reads (Unix and Windows); `cpu` the run-time choice of AVX2/FMA loops; `limits` checks the sizes an argument asks for. The PyO3 crate at the repository root
//! (`rust/bindings`) exposes this crate as `blechrs._native` and only converts.

pub mod cpu;
pub mod error;
pub mod fileio;
pub mod intan;
pub mod limits;
pub mod signal;
