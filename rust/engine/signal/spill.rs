//! An electrode's events written to files as they are cut, instead of kept in memory: with it
//! the extraction's memory no longer grows with the recording's length (a 64-channel, 2-hour
//! recording has ~2.4 GB of waveforms), so every electrode of a CAR group is extracted in one
//! pass however long the recording.
//!
//! Four raw little-endian files per electrode, named `<prefix>.<what>`: `times` (i64),
//! `times_subsample` (f64), `polarity` (i8) and `waveforms` (f32, `waveform_len` per event), in
//! event (time) order. The caller reads them back and removes them.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};

use crate::error::{EngineError, Result};

/// The files' suffixes, in the order of [`Spill`]'s writers.
pub const SPILL_FILES: [&str; 4] = ["times", "times_subsample", "polarity", "waveforms"];

/// Bytes per value of each file.
const WIDTH: [usize; 4] = [8, 8, 1, 4];

/// The open files of one electrode.
pub struct Spill {
    prefix: String,
    files: Vec<BufWriter<File>>,
    /// Events written.
    pub n: usize,
    err: Option<(usize, std::io::Error)>,
    bytes: Vec<u8>,
}

impl Spill {
    /// Create (or empty) the four files of `prefix`.
    pub fn create(prefix: &str) -> Result<Self> {
        let mut files = Vec::with_capacity(SPILL_FILES.len());
        for what in SPILL_FILES {
            let path = format!("{prefix}.{what}");
            let f = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .open(&path)
                .map_err(|source| EngineError::Io { path, source })?;
            files.push(BufWriter::with_capacity(1 << 16, f));
        }
        Ok(Spill {
            prefix: prefix.to_string(),
            files,
            n: 0,
            err: None,
            bytes: Vec::new(),
        })
    }

    /// Append one event. A write error is kept and returned by [`Spill::flush`].
    pub fn push(&mut self, t: i64, t_sub: f64, polarity: i8, waveform: &[f32]) {
        if self.err.is_some() {
            return;
        }
        self.bytes.clear();
        for v in waveform {
            self.bytes.extend_from_slice(&v.to_le_bytes());
        }
        let parts: [&[u8]; 4] = [
            &t.to_le_bytes(),
            &t_sub.to_le_bytes(),
            &polarity.to_le_bytes(),
            &self.bytes,
        ];
        for (k, part) in parts.iter().enumerate() {
            if let Err(e) = self.files[k].write_all(part) {
                self.err = Some((k, e));
                return;
            }
        }
        self.n += 1;
    }

    fn io_error(&self, k: usize, source: std::io::Error) -> EngineError {
        EngineError::Io {
            path: format!("{}.{}", self.prefix, SPILL_FILES[k]),
            source,
        }
    }

    /// Write out what is buffered; the first write error, naming its file.
    pub fn flush(&mut self) -> Result<()> {
        if let Some((k, e)) = self.err.take() {
            return Err(self.io_error(k, e));
        }
        for k in 0..self.files.len() {
            if let Err(e) = self.files[k].flush() {
                return Err(self.io_error(k, e));
            }
        }
        Ok(())
    }

    /// The event times written so far (read back; call [`Spill::flush`] first).
    pub fn read_times(&mut self) -> Result<Vec<i64>> {
        let f = self.files[0].get_mut();
        let mut raw = Vec::new();
        let r = f
            .seek(SeekFrom::Start(0))
            .and_then(|_| f.read_to_end(&mut raw));
        if let Err(e) = r {
            return Err(self.io_error(0, e));
        }
        Ok(raw
            .chunks_exact(8)
            .map(|b| i64::from_le_bytes(b.try_into().expect("8 bytes")))
            .collect())
    }

    /// Keep only the first `keep` events (`waveform_len` samples each).
    pub fn truncate(&mut self, keep: usize, waveform_len: usize) -> Result<()> {
        for k in 0..self.files.len() {
            let width = if k == 3 {
                WIDTH[k] * waveform_len
            } else {
                WIDTH[k]
            };
            let f = self.files[k].get_mut();
            let r = f
                .set_len((keep * width) as u64)
                .and_then(|_| f.seek(SeekFrom::End(0)).map(|_| ()));
            if let Err(e) = r {
                return Err(self.io_error(k, e));
            }
        }
        self.n = keep.min(self.n);
        Ok(())
    }
}
