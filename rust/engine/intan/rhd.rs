//! Traditional Intan .rhd files: a header, then data blocks of 60 (version 1.x) or 128 samples
//! holding every section the header declares (timestamps, amplifier, auxiliary inputs at 1/4
//! rate, supply voltage and temperature once per block, board ADC, digital inputs and outputs as
//! one 16-bit word per sample). A recording may be split over several consecutive files; they
//! are read as one. Amplifier samples are uint16 offset by 32768 and come out as int16 counts.

use std::fs::File;
use std::path::{Path, PathBuf};

use crate::error::{EngineError, Result};
use crate::intan::dat::{file_len, open, read_at, EdgeTracker, Edges, Jump};
use crate::intan::header::{read_header, BlockLayout, Header};
use crate::signal::source::{check_block, SampleSource};

/// Bytes read per pread (bounded memory, large enough for full disk / page-cache speed).
const READ_BYTES: usize = 4 << 20;

pub struct RhdPart {
    file: File,
    pub path: PathBuf,
    pub header_size: usize,
    pub n_blocks: usize,
    /// First sample of this file in the whole recording.
    pub first_sample: usize,
}

pub struct RhdSource {
    pub header: Header,
    pub layout: BlockLayout,
    pub parts: Vec<RhdPart>,
    n_samples: usize,
    /// Problems that do not stop reading (a partial last block); Python shows them as warnings.
    pub warnings: Vec<String>,
}

fn bad(path: &Path, msg: String) -> EngineError {
    EngineError::File {
        path: path.display().to_string(),
        msg,
    }
}

fn same_layout(a: &Header, b: &Header) -> bool {
    let key = |h: &Header| {
        h.channels
            .iter()
            .map(|c| (c.native_name.clone(), c.signal_type, c.native_order))
            .collect::<Vec<_>>()
    };
    a.version == b.version
        && a.sample_rate == b.sample_rate
        && a.num_temp_sensors == b.num_temp_sensors
        && key(a) == key(b)
}

impl RhdSource {
    /// Open one .rhd file or several consecutive ones (in the given order).
    pub fn open(paths: &[PathBuf]) -> Result<Self> {
        if paths.is_empty() {
            return Err(EngineError::Value("no .rhd file given".into()));
        }
        let header = read_header(&paths[0])?;
        let layout = header.block_layout();
        let mut parts = Vec::new();
        let mut warnings = Vec::new();
        let mut first_sample = 0;
        for p in paths {
            let h = if parts.is_empty() {
                header.clone()
            } else {
                read_header(p)?
            };
            if !same_layout(&h, &header) {
                return Err(bad(
                    p,
                    format!(
                        "its header (version, sample rate or channels) differs from {}: not a continuation of the same recording",
                        paths[0].display()
                    ),
                ));
            }
            let f = open(p)?;
            let len = file_len(&f, p)? as usize;
            let data = len - h.header_size;
            let n_blocks = data / layout.size;
            let extra = data % layout.size;
            if extra != 0 {
                warnings.push(format!(
                    "{}: ends with {extra} bytes of an incomplete data block (truncated file); they are ignored",
                    p.display()
                ));
            }
            parts.push(RhdPart {
                file: f,
                path: p.clone(),
                header_size: h.header_size,
                n_blocks,
                first_sample,
            });
            first_sample += n_blocks * layout.samples;
        }
        Ok(Self {
            header,
            layout,
            parts,
            n_samples: first_sample,
            warnings,
        })
    }

    /// Call `f(part, first_block, bytes)` over whole blocks `[b0, b1)` of one part, in batches.
    fn for_blocks(
        &self,
        part: &RhdPart,
        b0: usize,
        b1: usize,
        mut f: impl FnMut(usize, &[u8]) -> Result<()>,
    ) -> Result<()> {
        let size = self.layout.size;
        let per = (READ_BYTES / size).max(1);
        let mut buf = vec![0u8; per.min(b1.saturating_sub(b0)) * size];
        let mut b = b0;
        while b < b1 {
            let m = per.min(b1 - b);
            let bytes = &mut buf[..m * size];
            read_at(
                &part.file,
                &part.path,
                bytes,
                (part.header_size + b * size) as u64,
            )?;
            f(b, bytes)?;
            b += m;
        }
        Ok(())
    }

    fn timestamp(&self, block: &[u8], i: usize) -> i64 {
        let v: [u8; 4] = block[4 * i..4 * i + 4].try_into().unwrap();
        if self.layout.signed_timestamps {
            i32::from_le_bytes(v) as i64
        } else {
            u32::from_le_bytes(v) as i64
        }
    }

    /// Places where the timestamps do not advance by one, as (sample index, before, at), over
    /// all files. Each file is checked at its ends first and scanned only if they disagree.
    pub fn timestamp_jumps(&self) -> Result<Vec<Jump>> {
        let s = self.layout.samples;
        let size = self.layout.size;
        let mut jumps = Vec::new();
        let mut prev_last: Option<i64> = None;
        for part in &self.parts {
            if part.n_blocks == 0 {
                continue;
            }
            let mut b = vec![0u8; 4 * s];
            read_at(&part.file, &part.path, &mut b, part.header_size as u64)?;
            let first = self.timestamp(&b, 0);
            read_at(
                &part.file,
                &part.path,
                &mut b,
                (part.header_size + (part.n_blocks - 1) * size) as u64,
            )?;
            let last = self.timestamp(&b, s - 1);
            if let Some(p) = prev_last {
                if first != p + 1 {
                    jumps.push((part.first_sample as i64, p, first));
                }
            }
            prev_last = Some(last);
            if last - first == (part.n_blocks * s) as i64 - 1 {
                continue;
            }
            let mut prev: Option<i64> = None;
            self.for_blocks(part, 0, part.n_blocks, |b0, bytes| {
                for (k, blk) in bytes.chunks_exact(size).enumerate() {
                    for i in 0..s {
                        let v = self.timestamp(blk, i);
                        if let Some(p) = prev {
                            if v != p + 1 {
                                jumps.push(((part.first_sample + (b0 + k) * s + i) as i64, p, v));
                            }
                        }
                        prev = Some(v);
                    }
                }
                Ok(())
            })?;
        }
        Ok(jumps)
    }

    /// Onset/offset sample indices of each digital-input mask (bit = the channel's native order).
    pub fn digital_in_edges(&self, masks: &[u16]) -> Result<Vec<Edges>> {
        self.word_edges(self.layout.dig_in, masks)
    }

    pub fn digital_out_edges(&self, masks: &[u16]) -> Result<Vec<Edges>> {
        self.word_edges(self.layout.dig_out, masks)
    }

    fn word_edges(&self, section: Option<usize>, masks: &[u16]) -> Result<Vec<Edges>> {
        let mut t = EdgeTracker::new(masks);
        let s = self.layout.samples;
        if let Some(off) = section {
            let mut words = vec![0u16; s];
            for part in &self.parts {
                self.for_blocks(part, 0, part.n_blocks, |b0, bytes| {
                    for (k, blk) in bytes.chunks_exact(self.layout.size).enumerate() {
                        for (i, w) in words.iter_mut().enumerate() {
                            *w = u16::from_le_bytes([blk[off + 2 * i], blk[off + 2 * i + 1]]);
                        }
                        t.feed(&words, (part.first_sample + (b0 + k) * s) as i64);
                    }
                    Ok(())
                })?;
            }
        }
        Ok(t.finish(self.n_samples as i64))
    }

    /// Raw uint16 samples of a per-sample section (board ADC channel `index`, or the whole
    /// digital-in / digital-out word with `index` ignored), samples `[start, start + len)`.
    pub fn read_board_words(
        &self,
        section: &str,
        index: usize,
        start: usize,
        len: usize,
    ) -> Result<Vec<u16>> {
        let l = self.layout;
        let off = match section {
            "adc" if index < l.n_adc => l.adc + 2 * l.samples * index,
            "dig_in" if l.dig_in.is_some() => l.dig_in.unwrap(),
            "dig_out" if l.dig_out.is_some() => l.dig_out.unwrap(),
            _ => {
                return Err(EngineError::Value(format!(
                    "the recording has no {section} section {index}"
                )))
            }
        };
        if start + len > self.n_samples {
            return Err(EngineError::Value(format!(
                "samples {start}..{} beyond {}",
                start + len,
                self.n_samples
            )));
        }
        let mut out = vec![0u16; len];
        self.for_range(start, len, |part_block_sample, blk, i0, i1, dst0| {
            let _ = part_block_sample;
            for i in i0..i1 {
                out[dst0 + i - i0] = u16::from_le_bytes([blk[off + 2 * i], blk[off + 2 * i + 1]]);
            }
        })?;
        Ok(out)
    }

    /// Visit samples `[start, start+len)` block by block: `f(block start sample, block bytes,
    /// first index in block, end index in block, output offset)`.
    fn for_range(
        &self,
        start: usize,
        len: usize,
        mut f: impl FnMut(usize, &[u8], usize, usize, usize),
    ) -> Result<()> {
        let s = self.layout.samples;
        let end = start + len;
        for part in &self.parts {
            let p0 = part.first_sample;
            let p1 = p0 + part.n_blocks * s;
            if p1 <= start || p0 >= end {
                continue;
            }
            let a = start.max(p0) - p0;
            let b = end.min(p1) - p0;
            self.for_blocks(part, a / s, b.div_ceil(s), |b0, bytes| {
                for (k, blk) in bytes.chunks_exact(self.layout.size).enumerate() {
                    let bs = (b0 + k) * s; // block start, file-local
                    let i0 = a.max(bs) - bs;
                    let i1 = b.min(bs + s) - bs;
                    f(p0 + bs, blk, i0, i1, p0 + bs + i0 - start);
                }
                Ok(())
            })?;
        }
        Ok(())
    }
}

impl SampleSource for RhdSource {
    fn n_channels(&self) -> usize {
        self.layout.n_amplifier
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
        let s = self.layout.samples;
        let amp = self.layout.amplifier;
        self.for_range(start, len, |_, blk, i0, i1, dst0| {
            for (row, &c) in channels.iter().enumerate() {
                let src = &blk[amp + 2 * s * c + 2 * i0..amp + 2 * s * c + 2 * i1];
                let dst = &mut out[row * len + dst0..row * len + dst0 + (i1 - i0)];
                for (d, b) in dst.iter_mut().zip(src.chunks_exact(2)) {
                    // uint16 offset binary -> two's complement int16 counts
                    *d = (u16::from_le_bytes([b[0], b[1]]) ^ 0x8000) as i16;
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::intan::header::tests::make_header;
    use std::io::Write;

    /// Write a .rhd with the test header (4 amp, 3 aux, 1 supply, temp, 1 ADC, din, dout).
    fn write_rhd(p: &Path, version: (i16, i16), n_blocks: usize, t0: i64, s0: usize) {
        let h = make_header(version, 4, 1);
        let hdr = crate::intan::header::parse_header(&h, "x").unwrap();
        let l = hdr.block_layout();
        let s = l.samples;
        let mut f = File::create(p).unwrap();
        f.write_all(&h).unwrap();
        for b in 0..n_blocks {
            let mut blk = vec![0xAAu8; l.size];
            for i in 0..s {
                let t = (t0 + (b * s + i) as i64) as i32;
                blk[4 * i..4 * i + 4].copy_from_slice(&t.to_le_bytes());
                let g = s0 + b * s + i;
                for c in 0..4 {
                    let v = ((g * 13 + c * 1000) % 65536) as u16;
                    let o = l.amplifier + 2 * (s * c + i);
                    blk[o..o + 2].copy_from_slice(&v.to_le_bytes());
                }
                let w: u16 = if g % 50 < 10 { 1 } else { 0 } | if g % 70 >= 60 { 8 } else { 0 };
                let o = l.dig_in.unwrap() + 2 * i;
                blk[o..o + 2].copy_from_slice(&w.to_le_bytes());
            }
            f.write_all(&blk).unwrap();
        }
    }

    #[test]
    fn reads_blocks_across_files_for_each_version() {
        for v in [(1, 0), (1, 2), (1, 3), (2, 0), (3, 0)] {
            let d = std::env::temp_dir().join(format!(
                "blechrs_rhd_{}_{}_{}",
                v.0,
                v.1,
                std::process::id()
            ));
            std::fs::create_dir_all(&d).unwrap();
            let s = if v.0 > 1 { 128 } else { 60 };
            let p1 = d.join("a_1.rhd");
            let p2 = d.join("a_2.rhd");
            write_rhd(&p1, v, 3, 100, 0);
            write_rhd(&p2, v, 2, 100 + 3 * s as i64, 3 * s);
            let r = RhdSource::open(&[p1.clone(), p2.clone()]).unwrap();
            let n = 5 * s;
            assert_eq!((r.n_channels(), r.n_samples()), (4, n));
            let mut out = vec![0i16; 2 * n];
            r.read_block(&[3, 1], 0, n, &mut out).unwrap();
            for g in 0..n {
                assert_eq!(out[g], (((g * 13 + 3000) % 65536) as u16 ^ 0x8000) as i16);
                assert_eq!(
                    out[n + g],
                    (((g * 13 + 1000) % 65536) as u16 ^ 0x8000) as i16
                );
            }
            let mut o2 = vec![0i16; 7];
            r.read_block(&[1], 3 * s - 3, 7, &mut o2).unwrap();
            assert_eq!(&o2[..], &out[n + 3 * s - 3..n + 3 * s + 4]);
            assert!(r.timestamp_jumps().unwrap().is_empty());
            let e = r.digital_in_edges(&[1, 8]).unwrap();
            let on: Vec<i64> = (0..n as i64).filter(|g| g % 50 == 0).collect();
            let off: Vec<i64> = (0..n as i64).filter(|g| g % 50 == 10).collect();
            assert_eq!(e[0].0, on);
            assert_eq!(e[0].1, off);
            let on: Vec<i64> = (0..n as i64).filter(|g| g % 70 == 60).collect();
            assert_eq!(e[1].0, on);
            // a gap between files is reported where it happens
            write_rhd(&p2, v, 2, 100 + 3 * s as i64 + 7, 3 * s);
            let r = RhdSource::open(&[p1.clone(), p2.clone()]).unwrap();
            let j = r.timestamp_jumps().unwrap();
            assert_eq!(
                j,
                vec![(
                    (3 * s) as i64,
                    100 + 3 * s as i64 - 1,
                    100 + 3 * s as i64 + 7
                )]
            );
            std::fs::remove_dir_all(&d).unwrap();
        }
    }
}
