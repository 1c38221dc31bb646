//! Where samples come from. The streaming engine reads recordings only through this trait, so it
//! never needs a whole recording in memory; `crate::intan` implements it for each Intan layout.

use crate::error::Result;

pub trait SampleSource: Send + Sync {
    /// Amplifier channels available, in the recording's native order.
    fn n_channels(&self) -> usize;
    /// Samples per channel.
    fn n_samples(&self) -> usize;
    /// Copy samples `[start, start + len)` of each channel in `channels` into `out`, row-major
    /// (`channels.len()` rows of `len` raw int16 values). `start + len` must be <= `n_samples()`.
    fn read_block(&self, channels: &[usize], start: usize, len: usize, out: &mut [i16]) -> Result<()>;
}
