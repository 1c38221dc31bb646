//! Headerless Intan layouts (info.rhd + .dat files): "one file per channel" (amp-A-000.dat, one
//! int16 file per amplifier channel) and "one file per signal type" (amplifier.dat, int16
//! interleaved sample-major). Reads are positioned (pread), so any number of threads can read
//! any window without shared state and memory stays bounded by the window asked for.

use std::fs::File;
use std::path::{Path, PathBuf};

use crate::error::{EngineError, Result};
use crate::signal::source::{check_block, InterleavedFileSource, SampleSource, READ_BYTES};

pub(crate) fn open(path: &Path) -> Result<File> {
    File::open(path).map_err(|e| EngineError::Io {
        path: path.display().to_string(),
        source: e,
    })
}

pub(crate) fn file_len(f: &File, path: &Path) -> Result<u64> {
    Ok(f.metadata()
        .map_err(|e| EngineError::Io {
            path: path.display().to_string(),
            source: e,
        })?
        .len())
}

pub(crate) fn read_at(f: &File, path: &Path, buf: &mut [u8], offset: u64) -> Result<()> {
    crate::fileio::read_exact_at(f, buf, offset).map_err(|e| EngineError::Io {
        path: path.display().to_string(),
        source: e,
    })
}

fn bad(path: &Path, msg: String) -> EngineError {
    EngineError::File {
        path: path.display().to_string(),
        msg,
    }
}

/// View an i16 slice as bytes to pread straight into it (the files are little-endian).
fn as_bytes_mut(x: &mut [i16]) -> &mut [u8] {
    // SAFETY: i16 has no invalid bit patterns and u8 has alignment 1.
    unsafe { std::slice::from_raw_parts_mut(x.as_mut_ptr() as *mut u8, x.len() * 2) }
}

fn fix_endian(x: &mut [i16]) {
    if cfg!(target_endian = "big") {
        for v in x.iter_mut() {
            *v = i16::from_le(*v);
        }
    }
}

/// Samples in an int16 (or uint16) .dat file of `n_words_per_sample` words per sample.
/// An odd byte count or a partial sample is an error naming the file.
pub fn dat_samples(path: &Path, n_words_per_sample: usize) -> Result<usize> {
    let f = open(path)?;
    let len = file_len(&f, path)?;
    if len % 2 != 0 {
        return Err(bad(
            path,
            format!(
                "odd length ({len} bytes): not 16-bit samples, the file is truncated or corrupt"
            ),
        ));
    }
    let words = (len / 2) as usize;
    if n_words_per_sample == 0 || words % n_words_per_sample != 0 {
        return Err(bad(
            path,
            format!(
                "{len} bytes is not a whole number of samples of {n_words_per_sample} channels (truncated file, or a channel count that does not match info.rhd)"
            ),
        ));
    }
    Ok(words / n_words_per_sample)
}

/// "One file per channel": amp-<port>-<nnn>.dat, int16, one file per channel.
pub struct PerChannelSource {
    files: Vec<(File, PathBuf)>,
    n_samples: usize,
}

impl PerChannelSource {
    /// Open every channel file; all must have the same whole number of int16 samples.
    pub fn open(paths: &[PathBuf]) -> Result<Self> {
        let mut files = Vec::with_capacity(paths.len());
        let mut n_samples = None;
        let mut first = PathBuf::new();
        for p in paths {
            let n = dat_samples(p, 1)?;
            match n_samples {
                None => {
                    n_samples = Some(n);
                    first = p.clone();
                }
                Some(m) if m != n => {
                    return Err(bad(
                        p,
                        format!(
                            "has {n} samples but {} has {m}: channel files of unequal length (a truncated copy?)",
                            first.display()
                        ),
                    ))
                }
                _ => {}
            }
            files.push((open(p)?, p.clone()));
        }
        Ok(Self {
            files,
            n_samples: n_samples.unwrap_or(0),
        })
    }
}

impl SampleSource for PerChannelSource {
    fn n_channels(&self) -> usize {
        self.files.len()
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
        for (row, &c) in channels.iter().enumerate() {
            let (f, p) = &self.files[c];
            let dst = &mut out[row * len..(row + 1) * len];
            read_at(f, p, as_bytes_mut(dst), start as u64 * 2)?;
            fix_endian(dst);
        }
        Ok(())
    }
}

/// "One file per signal type": amplifier.dat, int16 interleaved (sample-major) over channels.
/// The reading is the engine's `InterleavedFileSource`; this adds Intan's checks and messages.
pub struct PerSignalSource {
    inner: InterleavedFileSource,
}

impl PerSignalSource {
    pub fn open(path: &Path, n_channels: usize) -> Result<Self> {
        if n_channels == 0 {
            return Err(bad(path, "info.rhd declares no amplifier channels".into()));
        }
        // Validates the size (odd bytes, partial samples) with messages naming the file.
        dat_samples(path, n_channels)?;
        let inner = InterleavedFileSource::open(&path.display().to_string(), n_channels, 0)?;
        Ok(Self { inner })
    }
}

impl SampleSource for PerSignalSource {
    fn n_channels(&self) -> usize {
        self.inner.n_channels()
    }
    fn n_samples(&self) -> usize {
        self.inner.n_samples()
    }
    fn read_block(
        &self,
        channels: &[usize],
        start: usize,
        len: usize,
        out: &mut [i16],
    ) -> Result<()> {
        self.inner.read_block(channels, start, len, out)
    }
}

/// Rising/falling edges of digital lines, fed words in order. A line is high when
/// `word & mask != 0`; onset = first high sample, offset = first low sample after it (or the
/// number of samples if the line is still high at the end).
pub struct EdgeTracker {
    masks: Vec<u16>,
    high: Vec<bool>,
    pub onsets: Vec<Vec<i64>>,
    pub offsets: Vec<Vec<i64>>,
}

impl EdgeTracker {
    pub fn new(masks: &[u16]) -> Self {
        let n = masks.len();
        Self {
            masks: masks.to_vec(),
            high: vec![false; n],
            onsets: vec![Vec::new(); n],
            offsets: vec![Vec::new(); n],
        }
    }
    pub fn feed(&mut self, words: &[u16], first_index: i64) {
        for (k, &m) in self.masks.iter().enumerate() {
            let mut h = self.high[k];
            for (i, &w) in words.iter().enumerate() {
                let now = w & m != 0;
                if now != h {
                    if now {
                        self.onsets[k].push(first_index + i as i64);
                    } else {
                        self.offsets[k].push(first_index + i as i64);
                    }
                    h = now;
                }
            }
            self.high[k] = h;
        }
    }
    pub fn finish(mut self, n_samples: i64) -> Vec<Edges> {
        for k in 0..self.masks.len() {
            if self.high[k] {
                self.offsets[k].push(n_samples);
            }
        }
        self.onsets.into_iter().zip(self.offsets).collect()
    }
}

/// (onsets, offsets) of one digital line.
pub type Edges = (Vec<i64>, Vec<i64>);

/// Edges of each mask in a file of uint16 words (one per sample): digitalin.dat (mask = one bit
/// per input) or a board-DIN-NN.dat file (mask 0xFFFF: any non-zero value is high).
pub fn word_file_edges(path: &Path, masks: &[u16]) -> Result<(usize, Vec<Edges>)> {
    let n = dat_samples(path, 1)?;
    let f = open(path)?;
    let mut t = EdgeTracker::new(masks);
    let per = READ_BYTES / 2;
    let mut buf = vec![0i16; per.min(n)];
    let mut done = 0;
    while done < n {
        let m = per.min(n - done);
        read_at(&f, path, as_bytes_mut(&mut buf[..m]), done as u64 * 2)?;
        fix_endian(&mut buf[..m]);
        // SAFETY: same size and alignment.
        let w: &[u16] = unsafe { std::slice::from_raw_parts(buf.as_ptr() as *const u16, m) };
        t.feed(w, done as i64);
        done += m;
    }
    Ok((n, t.finish(n as i64)))
}

/// A place where the sample counter does not advance by exactly one: (sample index, counter
/// before, counter at the index). Intan writes one counter value per sample; a jump means
/// dropped samples (or a restart of the acquisition).
pub type Jump = (i64, i64, i64);

/// Check time.dat (int32 per sample). The counter is checked at the ends first (cheap); the whole
/// file is scanned only when the ends disagree with a contiguous count, to find where it jumps.
pub fn time_dat_jumps(path: &Path) -> Result<(usize, Vec<Jump>)> {
    let f = open(path)?;
    let len = file_len(&f, path)?;
    if len % 4 != 0 {
        return Err(bad(
            path,
            format!("{len} bytes is not a whole number of int32 time stamps (truncated file)"),
        ));
    }
    let n = (len / 4) as usize;
    if n < 2 {
        return Ok((n, vec![]));
    }
    let mut b = [0u8; 4];
    read_at(&f, path, &mut b, 0)?;
    let first = i32::from_le_bytes(b) as i64;
    read_at(&f, path, &mut b, len - 4)?;
    let last = i32::from_le_bytes(b) as i64;
    if last - first == n as i64 - 1 {
        return Ok((n, vec![]));
    }
    let mut jumps = Vec::new();
    let per = READ_BYTES / 4;
    let mut buf = vec![0u8; per.min(n) * 4];
    let mut prev: Option<i64> = None;
    let mut done = 0;
    while done < n {
        let m = per.min(n - done);
        read_at(&f, path, &mut buf[..m * 4], done as u64 * 4)?;
        for i in 0..m {
            let v = i32::from_le_bytes(buf[i * 4..i * 4 + 4].try_into().unwrap()) as i64;
            if let Some(p) = prev {
                if v != p + 1 {
                    jumps.push(((done + i) as i64, p, v));
                }
            }
            prev = Some(v);
        }
        done += m;
    }
    Ok((n, jumps))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn tmpdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("blechrs_dat_{tag}_{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn write_i16(p: &Path, x: &[i16]) {
        let mut f = File::create(p).unwrap();
        for v in x {
            f.write_all(&v.to_le_bytes()).unwrap();
        }
    }

    #[test]
    fn per_channel_and_per_signal_agree() {
        let d = tmpdir("agree");
        let (nc, n) = (3usize, 1000usize);
        let val = |c: usize, i: usize| ((c * 7919 + i * 31) % 65536) as u16 as i16;
        let mut paths = vec![];
        let mut inter = vec![0i16; nc * n];
        for c in 0..nc {
            let p = d.join(format!("amp-A-{c:03}.dat"));
            write_i16(&p, &(0..n).map(|i| val(c, i)).collect::<Vec<_>>());
            paths.push(p);
            for i in 0..n {
                inter[i * nc + c] = val(c, i);
            }
        }
        write_i16(&d.join("amplifier.dat"), &inter);
        let a = PerChannelSource::open(&paths).unwrap();
        let b = PerSignalSource::open(&d.join("amplifier.dat"), nc).unwrap();
        assert_eq!((a.n_channels(), a.n_samples()), (nc, n));
        assert_eq!((b.n_channels(), b.n_samples()), (nc, n));
        let mut oa = vec![0i16; 2 * 100];
        let mut ob = vec![0i16; 2 * 100];
        a.read_block(&[2, 0], 900, 100, &mut oa).unwrap();
        b.read_block(&[2, 0], 900, 100, &mut ob).unwrap();
        assert_eq!(oa, ob);
        assert_eq!(oa[0], val(2, 900));
        assert_eq!(oa[100], val(0, 900));
        assert!(a.read_block(&[0], 950, 100, &mut oa).is_err());
        // unequal lengths
        write_i16(&paths[1], &vec![0i16; n - 1]);
        let e = PerChannelSource::open(&paths).err().unwrap().to_string();
        assert!(e.contains("amp-A-001.dat") && e.contains("unequal"), "{e}");
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn edges_and_jumps() {
        let d = tmpdir("edges");
        let w: Vec<i16> = vec![1, 1, 0, 2, 3, 3, 0, 0, 1];
        write_i16(&d.join("digitalin.dat"), &w);
        let (n, e) = word_file_edges(&d.join("digitalin.dat"), &[1, 2, 0xFFFF]).unwrap();
        assert_eq!(n, 9);
        assert_eq!(e[0], (vec![0, 4, 8], vec![2, 6, 9]));
        assert_eq!(e[1], (vec![3], vec![6]));
        assert_eq!(e[2], (vec![0, 3, 8], vec![2, 6, 9]));
        let mut f = File::create(d.join("time.dat")).unwrap();
        for v in [0i32, 1, 2, 5, 6, 7, 9] {
            f.write_all(&v.to_le_bytes()).unwrap();
        }
        drop(f);
        let (n, j) = time_dat_jumps(&d.join("time.dat")).unwrap();
        assert_eq!(n, 7);
        assert_eq!(j, vec![(3, 2, 5), (6, 7, 9)]);
        std::fs::write(d.join("odd.dat"), [0u8; 5]).unwrap();
        let e = dat_samples(&d.join("odd.dat"), 1).unwrap_err().to_string();
        assert!(e.contains("odd.dat") && e.contains("odd length"), "{e}");
        std::fs::remove_dir_all(&d).unwrap();
    }
}
