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
    fn read_block(
        &self,
        channels: &[usize],
        start: usize,
        len: usize,
        out: &mut [i16],
    ) -> Result<()>;

    /// The rows of `channels` over samples `[start, start + len)` borrowed in place, when the
    /// source holds each row contiguously in memory (saves copying every sample); None otherwise.
    fn borrow_rows(&self, _channels: &[usize], _start: usize, _len: usize) -> Option<Vec<&[i16]>> {
        None
    }
}

/// Read every `step`-th sample (`0, step, 2*step, ...`) of `channels` into `out`
/// (`channels.len()` rows of `n_samples.div_ceil(step)` values). Used for statistics that need the
/// whole recording but not every sample (CAR medians); reads block by block so memory stays small.
pub fn read_strided(
    src: &dyn SampleSource,
    channels: &[usize],
    step: usize,
    out: &mut [i16],
) -> Result<()> {
    let step = step.max(1);
    let n = src.n_samples();
    let m = n.div_ceil(step);
    debug_assert_eq!(out.len(), channels.len() * m);
    if channels.is_empty() || n == 0 {
        return Ok(());
    }
    // About 8 MB of int16 per block, a whole number of steps.
    let per = ((4usize << 20) / channels.len()).max(step);
    let block = (per / step).max(1) * step;
    let mut buf = vec![0i16; channels.len() * block];
    let mut start = 0;
    while start < n {
        let len = block.min(n - start);
        let b = &mut buf[..channels.len() * len];
        src.read_block(channels, start, len, b)?;
        for (r, _) in channels.iter().enumerate() {
            let row = &b[r * len..(r + 1) * len];
            let dst = &mut out[r * m..(r + 1) * m];
            for (j, v) in row.iter().step_by(step).enumerate() {
                dst[start / step + j] = *v;
            }
        }
        start += len;
    }
    Ok(())
}

/// An in-memory channels x samples int16 array with any (even negative or unaligned) byte
/// strides: a numpy array or np.memmap passed straight from Python, read without a copy.
pub struct ArraySource<'a> {
    ptr: *const u8,
    n_channels: usize,
    n_samples: usize,
    stride_ch: isize,
    stride_t: isize,
    _life: std::marker::PhantomData<&'a [i16]>,
}

// The data is only read, and the creator guarantees it outlives the source.
unsafe impl Send for ArraySource<'_> {}
unsafe impl Sync for ArraySource<'_> {}

impl<'a> ArraySource<'a> {
    /// A C-ordered `n_channels x n_samples` slice.
    pub fn new(data: &'a [i16], n_channels: usize, n_samples: usize) -> Result<Self> {
        if data.len() != n_channels * n_samples {
            return Err(crate::error::EngineError::Value(format!(
                "array of {} values is not {n_channels} channels x {n_samples} samples",
                data.len()
            )));
        }
        Ok(ArraySource {
            ptr: data.as_ptr() as *const u8,
            n_channels,
            n_samples,
            stride_ch: (2 * n_samples) as isize,
            stride_t: 2,
            _life: std::marker::PhantomData,
        })
    }

    /// # Safety
    /// `ptr` points at element [0, 0] of a live int16 array whose element `[c, t]` is at byte
    /// offset `c * stride_ch + t * stride_t` for every `c < n_channels`, `t < n_samples`, and the
    /// array is neither freed nor written while the source exists.
    pub unsafe fn from_raw(
        ptr: *const u8,
        n_channels: usize,
        n_samples: usize,
        stride_ch: isize,
        stride_t: isize,
    ) -> Self {
        ArraySource {
            ptr,
            n_channels,
            n_samples,
            stride_ch,
            stride_t,
            _life: std::marker::PhantomData,
        }
    }
}

impl SampleSource for ArraySource<'_> {
    fn borrow_rows(&self, channels: &[usize], start: usize, len: usize) -> Option<Vec<&[i16]>> {
        if self.stride_t != 2
            || (self.ptr as usize) % std::mem::align_of::<i16>() != 0
            || self.stride_ch % 2 != 0
            || start + len > self.n_samples
            || channels.iter().any(|&c| c >= self.n_channels)
        {
            return None;
        }
        Some(
            channels
                .iter()
                .map(|&c| {
                    // SAFETY: in bounds (checked above), aligned, unit stride; from_raw's contract
                    // keeps the array alive and unwritten while the source (and so `self`) lives.
                    unsafe {
                        std::slice::from_raw_parts(
                            self.ptr
                                .offset(c as isize * self.stride_ch + start as isize * 2)
                                as *const i16,
                            len,
                        )
                    }
                })
                .collect(),
        )
    }
    fn n_channels(&self) -> usize {
        self.n_channels
    }
    fn n_samples(&self) -> usize {
        self.n_samples
    }
    fn read_block(
        &self,
        channels: &[usize],
        start: usize,
        len: usize,
        out: &mut [i16],
    ) -> Result<()> {
        check_block(self, channels, start, len, out.len())?;
        for (r, &c) in channels.iter().enumerate() {
            let dst = &mut out[r * len..(r + 1) * len];
            // SAFETY: bounds checked above; from_raw's contract covers every [c, t] in range.
            unsafe {
                let base = self
                    .ptr
                    .offset(c as isize * self.stride_ch + start as isize * self.stride_t);
                if self.stride_t == 2 {
                    std::ptr::copy_nonoverlapping(base, dst.as_mut_ptr() as *mut u8, 2 * len);
                } else {
                    for (j, d) in dst.iter_mut().enumerate() {
                        *d = (base.offset(j as isize * self.stride_t) as *const i16)
                            .read_unaligned();
                    }
                }
            }
        }
        Ok(())
    }
}

/// Validate a `read_block` request: channels exist, the samples are inside the recording and
/// `out` holds them. Every source calls this first, so the readers can index without checks.
pub fn check_block(
    src: &dyn SampleSource,
    channels: &[usize],
    start: usize,
    len: usize,
    out_len: usize,
) -> Result<()> {
    if let Some(&c) = channels.iter().find(|&&c| c >= src.n_channels()) {
        return Err(crate::error::EngineError::Value(format!(
            "channel {c} does not exist (the recording has {} channels)",
            src.n_channels()
        )));
    }
    if start.checked_add(len).is_none_or(|e| e > src.n_samples()) {
        return Err(crate::error::EngineError::Value(format!(
            "samples {start}..{} are outside the recording (0..{})",
            start.saturating_add(len),
            src.n_samples()
        )));
    }
    if out_len < channels.len() * len {
        return Err(crate::error::EngineError::Value(format!(
            "output buffer holds {out_len} values, {} needed",
            channels.len() * len
        )));
    }
    Ok(())
}

/// Bytes one `InterleavedFileSource` read may take at once.
pub(crate) const READ_BYTES: usize = 4 << 20;

/// A flat binary file of little-endian int16 samples interleaved by channel
/// (`s0c0 s0c1 ... s0cN s1c0 ...`), after `offset` header bytes: Intan's `amplifier.dat`
/// ("one file per signal type") has exactly this layout. Reads only the blocks asked for, so a
/// multi-GB file never has to be in memory.
pub struct InterleavedFileSource {
    path: String,
    file: std::fs::File,
    n_channels: usize,
    n_samples: usize,
    offset: u64,
}

impl InterleavedFileSource {
    pub fn open(path: &str, n_channels: usize, offset: u64) -> Result<Self> {
        let io = |e| crate::error::EngineError::Io {
            path: path.to_string(),
            source: e,
        };
        if n_channels == 0 {
            return Err(crate::error::EngineError::File {
                path: path.into(),
                msg: "n_channels must be > 0".into(),
            });
        }
        let file = std::fs::File::open(path).map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        if len < offset {
            return Err(crate::error::EngineError::File {
                path: path.into(),
                msg: format!("file of {len} bytes is shorter than its {offset}-byte header"),
            });
        }
        let frame = 2 * n_channels as u64;
        if (len - offset) % frame != 0 {
            return Err(crate::error::EngineError::File {
                path: path.into(),
                msg: format!(
                    "{} data bytes are not a whole number of {n_channels}-channel int16 samples",
                    len - offset
                ),
            });
        }
        Ok(InterleavedFileSource {
            path: path.into(),
            file,
            n_channels,
            n_samples: ((len - offset) / frame) as usize,
            offset,
        })
    }
}

impl SampleSource for InterleavedFileSource {
    fn n_channels(&self) -> usize {
        self.n_channels
    }
    fn n_samples(&self) -> usize {
        self.n_samples
    }
    fn read_block(
        &self,
        channels: &[usize],
        start: usize,
        len: usize,
        out: &mut [i16],
    ) -> Result<()> {
        check_block(self, channels, start, len, out.len())?;
        let nc = self.n_channels;
        // Read at most READ_BYTES at a time, so memory stays bounded whatever `len` is.
        let per = (READ_BYTES / (2 * nc)).max(1);
        let mut buf = vec![0u8; per.min(len) * nc * 2];
        let mut done = 0;
        while done < len {
            let m = per.min(len - done);
            let b = &mut buf[..m * nc * 2];
            crate::fileio::read_exact_at(
                &self.file,
                b,
                self.offset + ((start + done) * nc * 2) as u64,
            )
            .map_err(|e| crate::error::EngineError::Io {
                path: self.path.clone(),
                source: e,
            })?;
            // De-interleave in tiles that stay in L1 cache (one pass per channel over a whole
            // 4 MB buffer would stream it from memory once per channel).
            const TILE: usize = 256;
            for t0 in (0..m).step_by(TILE) {
                let t1 = (t0 + TILE).min(m);
                let tile = &b[t0 * nc * 2..t1 * nc * 2];
                for (row, &c) in channels.iter().enumerate() {
                    let dst = &mut out[row * len + done + t0..row * len + done + t1];
                    for (d, s) in dst.iter_mut().zip(tile.chunks_exact(nc * 2)) {
                        *d = i16::from_le_bytes([s[2 * c], s[2 * c + 1]]);
                    }
                }
            }
            done += m;
        }
        Ok(())
    }
}

/// Samples `[start, stop)` of `channels` (channels x samples, row-major) and the samples per
/// channel; an empty range when `stop <= start`.
pub fn read_range(
    src: &dyn SampleSource,
    channels: &[usize],
    start: usize,
    stop: usize,
) -> Result<(Vec<i16>, usize)> {
    let len = stop.saturating_sub(start);
    // checked before the allocation: a range beyond the recording is an error, not an abort
    check_block(src, channels, start, len, usize::MAX)?;
    let mut out = crate::limits::zeroed::<i16>(
        crate::limits::count(&[channels.len(), len], "the samples asked for")?,
        "the samples asked for",
    )?;
    src.read_block(channels, start, len, &mut out)?;
    Ok((out, len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn array_and_file_sources_agree() {
        let (nc, ns) = (3, 1000);
        let data: Vec<i16> = (0..nc * ns).map(|i| (i as i16).wrapping_mul(37)).collect();
        let a = ArraySource::new(&data, nc, ns).unwrap();
        // the same data interleaved in a file
        let path =
            std::env::temp_dir().join(format!("blechrs_src_test_{}.dat", std::process::id()));
        let mut bytes = vec![0u8; 10];
        for t in 0..ns {
            for c in 0..nc {
                bytes.extend_from_slice(&data[c * ns + t].to_le_bytes());
            }
        }
        std::fs::write(&path, &bytes).unwrap();
        let f = InterleavedFileSource::open(path.to_str().unwrap(), nc, 10).unwrap();
        assert_eq!(f.n_samples(), ns);
        let mut o1 = vec![0i16; 2 * 50];
        let mut o2 = vec![0i16; 2 * 50];
        a.read_block(&[2, 0], 900, 50, &mut o1).unwrap();
        f.read_block(&[2, 0], 900, 50, &mut o2).unwrap();
        assert_eq!(o1, o2);
        assert_eq!(o1[0], data[2 * ns + 900]);
        assert!(a.read_block(&[3], 0, 1, &mut [0]).is_err());
        assert!(f.read_block(&[0], 999, 2, &mut [0, 0]).is_err());
        let mut s = vec![0i16; 2 * 10];
        read_strided(&f, &[1, 2], 100, &mut s).unwrap();
        assert_eq!(s[3], data[ns + 300]);
        assert_eq!(s[10 + 9], data[2 * ns + 900]);
        std::fs::remove_file(path).ok();
    }

    #[test]
    fn a_range_beyond_the_recording_is_an_error_before_any_allocation() {
        let data = vec![1i16; 3 * 1000];
        let a = ArraySource::new(&data, 3, 1000).unwrap();
        assert!(read_range(&a, &[0], 0, 1 << 40).is_err());
        assert!(read_range(&a, &[0], 0, usize::MAX).is_err());
        assert!(read_range(&a, &[3], 0, 10).is_err());
        assert_eq!(read_range(&a, &[0], 7, 3).unwrap().1, 0);
        assert_eq!(read_range(&a, &[2, 1], 990, 1000).unwrap().0, vec![1i16; 20]);
    }
}
