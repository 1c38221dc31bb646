//! blechrs signal engine: everything that touches every sample.
//!
//! The math lives in plain Rust modules (`signal`, `intan`) with no Python in them, so it can be
//! tested with `cargo test` and reused from Rust. `bindings` is the thin PyO3 layer that exposes
//! them as `blechrs._native`; it is compiled only with the `python` feature (maturin turns it on).

pub mod error;
pub mod intan;
pub mod signal;

#[cfg(feature = "python")]
mod bindings;
