//! RHD2000 header (info.rhd, or the start of every traditional .rhd file), versions 1.0 to 3.x.
//!
//! Layout as in Intan's "RHD2000 data file format" document (and neo's IntanRawIO): magic
//! 0xC6912702, version, sample rate, filter settings, notes, then signal groups of channels.
//! Only enabled groups carry channel records, and only enabled channels are stored in the data.

use std::path::Path;

use crate::error::{EngineError, Result};

pub const RHD_MAGIC: u32 = 0xC691_2702;

/// Signal types of a channel record.
pub const AMPLIFIER: i16 = 0;
pub const AUX_INPUT: i16 = 1;
pub const SUPPLY_VOLTAGE: i16 = 2;
pub const BOARD_ADC: i16 = 3;
pub const BOARD_DIG_IN: i16 = 4;
pub const BOARD_DIG_OUT: i16 = 5;

/// Most enabled channels of each signal type (by type number) a header may declare, beyond any
/// Intan RHD2000 system: 8 ports x 128 amplifier channels, 3 auxiliary inputs and 1 supply
/// voltage per chip (at most 64 chips), and a few board channels (8 ADC, 16 digital in and
/// 16 out). A header declaring more is corrupt, and is refused before its channels are built
/// (64 groups x 32767 channels would otherwise take gigabytes).
pub const MAX_CHANNELS: [usize; 6] = [1024, 256, 64, 64, 64, 64];

/// Most channel records one signal group may declare (a port's amplifier, auxiliary and supply
/// channels are far fewer).
pub const MAX_GROUP_CHANNELS: i16 = 1024;

/// Names of the signal types, for messages.
const SIGNAL_NAMES: [&str; 6] = [
    "amplifier",
    "auxiliary input",
    "supply voltage",
    "board ADC",
    "digital input",
    "digital output",
];

#[derive(Debug, Clone, PartialEq)]
pub struct Channel {
    pub port_name: String,
    pub port_prefix: String,
    pub native_name: String,
    pub custom_name: String,
    pub native_order: i16,
    pub custom_order: i16,
    pub signal_type: i16,
    pub chip_channel: i16,
    pub board_stream: i16,
    pub impedance_magnitude: f32,
    pub impedance_phase: f32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Header {
    pub version: (i16, i16),
    pub sample_rate: f32,
    pub dsp_enabled: bool,
    pub actual_dsp_cutoff: f32,
    pub actual_lower_bandwidth: f32,
    pub actual_upper_bandwidth: f32,
    pub desired_dsp_cutoff: f32,
    pub desired_lower_bandwidth: f32,
    pub desired_upper_bandwidth: f32,
    /// 0 = off, 1 = 50 Hz, 2 = 60 Hz.
    pub notch_mode: i16,
    pub desired_impedance_test_frequency: f32,
    pub actual_impedance_test_frequency: f32,
    pub notes: [String; 3],
    pub num_temp_sensors: i16,
    pub eval_board_mode: i16,
    pub reference_channel: String,
    /// Enabled channels in header order (the order data are stored in).
    pub channels: Vec<Channel>,
    /// Bytes of header before the first data block.
    pub header_size: usize,
}

impl Header {
    /// Samples per data block: 128 from version 2.0 on, 60 before.
    pub fn block_samples(&self) -> usize {
        if self.version.0 > 1 {
            128
        } else {
            60
        }
    }
    pub fn notch_hz(&self) -> f32 {
        match self.notch_mode {
            1 => 50.0,
            2 => 60.0,
            _ => 0.0,
        }
    }
    pub fn channels_of(&self, signal_type: i16) -> impl Iterator<Item = &Channel> {
        self.channels
            .iter()
            .filter(move |c| c.signal_type == signal_type)
    }
    pub fn count(&self, signal_type: i16) -> usize {
        self.channels_of(signal_type).count()
    }
    /// Byte layout of one data block of a traditional .rhd file.
    pub fn block_layout(&self) -> BlockLayout {
        let s = self.block_samples();
        let n_amp = self.count(AMPLIFIER);
        let n_aux = self.count(AUX_INPUT);
        let n_supply = self.count(SUPPLY_VOLTAGE);
        let n_adc = self.count(BOARD_ADC);
        let has_din = self.count(BOARD_DIG_IN) > 0;
        let has_dout = self.count(BOARD_DIG_OUT) > 0;
        let timestamp = 0;
        let amplifier = timestamp + 4 * s;
        let aux = amplifier + 2 * s * n_amp;
        let supply = aux + 2 * (s / 4) * n_aux;
        let temp = supply + 2 * n_supply;
        let adc = temp + 2 * self.num_temp_sensors.max(0) as usize;
        let dig_in = adc + 2 * s * n_adc;
        let dig_out = dig_in + if has_din { 2 * s } else { 0 };
        let size = dig_out + if has_dout { 2 * s } else { 0 };
        BlockLayout {
            samples: s,
            n_amplifier: n_amp,
            n_aux,
            n_supply,
            n_adc,
            amplifier,
            aux,
            supply,
            temp,
            adc,
            dig_in: has_din.then_some(dig_in),
            dig_out: has_dout.then_some(dig_out),
            size,
            signed_timestamps: self.version >= (1, 2),
        }
    }
}

/// Byte offsets of each section inside one data block (`samples` samples of every signal).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BlockLayout {
    pub samples: usize,
    pub n_amplifier: usize,
    pub n_aux: usize,
    pub n_supply: usize,
    pub n_adc: usize,
    pub amplifier: usize,
    pub aux: usize,
    pub supply: usize,
    pub temp: usize,
    pub adc: usize,
    pub dig_in: Option<usize>,
    pub dig_out: Option<usize>,
    pub size: usize,
    pub signed_timestamps: bool,
}

struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
    path: &'a str,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8]> {
        if self.pos + n > self.buf.len() {
            return Err(EngineError::File {
                path: self.path.to_string(),
                msg: format!(
                    "header ends early (truncated while reading {what} at byte {})",
                    self.pos
                ),
            });
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    fn i16(&mut self, what: &str) -> Result<i16> {
        Ok(i16::from_le_bytes(self.take(2, what)?.try_into().unwrap()))
    }
    fn u32(&mut self, what: &str) -> Result<u32> {
        Ok(u32::from_le_bytes(self.take(4, what)?.try_into().unwrap()))
    }
    fn f32(&mut self, what: &str) -> Result<f32> {
        Ok(f32::from_le_bytes(self.take(4, what)?.try_into().unwrap()))
    }
    /// Qt QString: u32 byte length (0xFFFFFFFF = null) then UTF-16LE.
    fn qstring(&mut self, what: &str) -> Result<String> {
        let n = self.u32(what)?;
        if n == 0xFFFF_FFFF {
            return Ok(String::new());
        }
        let n = n as usize;
        if n % 2 != 0 || n > 1 << 20 {
            return Err(EngineError::File {
                path: self.path.to_string(),
                msg: format!("corrupt header: {what} has an impossible length {n}"),
            });
        }
        let b = self.take(n, what)?;
        let units: Vec<u16> = b
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect();
        Ok(String::from_utf16_lossy(&units))
    }
}

/// Parse a header from the first bytes of a file (`buf` may hold more than the header).
pub fn parse_header(buf: &[u8], path: &str) -> Result<Header> {
    let mut c = Cursor { buf, pos: 0, path };
    let version = c.magic_and_version()?;
    let sample_rate = c.f32("sample rate")?;
    if !(sample_rate.is_finite() && sample_rate > 0.0) {
        return Err(c.bad(format!("corrupt header: sample rate {sample_rate}")));
    }
    Ok(Header {
        version,
        sample_rate,
        dsp_enabled: c.i16("dsp_enabled")? != 0,
        actual_dsp_cutoff: c.f32("dsp cutoff")?,
        actual_lower_bandwidth: c.f32("bandwidth")?,
        actual_upper_bandwidth: c.f32("bandwidth")?,
        desired_dsp_cutoff: c.f32("dsp cutoff")?,
        desired_lower_bandwidth: c.f32("bandwidth")?,
        desired_upper_bandwidth: c.f32("bandwidth")?,
        notch_mode: c.i16("notch mode")?,
        desired_impedance_test_frequency: c.f32("impedance frequency")?,
        actual_impedance_test_frequency: c.f32("impedance frequency")?,
        notes: [
            c.qstring("note 1")?,
            c.qstring("note 2")?,
            c.qstring("note 3")?,
        ],
        num_temp_sensors: if version >= (1, 1) {
            c.i16("temperature sensors")?
        } else {
            0
        },
        eval_board_mode: if version >= (1, 3) {
            c.i16("eval board mode")?
        } else {
            0
        },
        reference_channel: if version >= (2, 0) {
            c.qstring("reference channel")?
        } else {
            String::new()
        },
        channels: c.signal_groups()?,
        header_size: c.pos,
    })
}

impl Cursor<'_> {
    fn bad(&self, msg: String) -> EngineError {
        EngineError::File {
            path: self.path.to_string(),
            msg,
        }
    }

    /// The magic number and the (supported) version.
    fn magic_and_version(&mut self) -> Result<(i16, i16)> {
        if self.buf.len() < 4 {
            return Err(self.bad(format!(
                "too short to be an Intan RHD file ({} bytes)",
                self.buf.len()
            )));
        }
        let magic = self.u32("magic number")?;
        if magic != RHD_MAGIC {
            return Err(self.bad(format!(
                "not an Intan RHD2000 file: magic number 0x{magic:08X}, expected 0x{RHD_MAGIC:08X}"
            )));
        }
        let major = self.i16("version")?;
        let minor = self.i16("version")?;
        if !(1..=3).contains(&major) || minor < 0 {
            return Err(self.bad(format!(
                "unsupported RHD header version {major}.{minor} (blechrs reads 1.x to 3.x)"
            )));
        }
        Ok((major, minor))
    }

    /// The enabled channels of every signal group, in storage order.
    fn signal_groups(&mut self) -> Result<Vec<Channel>> {
        let n_groups = self.i16("number of signal groups")?;
        if !(0..=64).contains(&n_groups) {
            return Err(self.bad(format!("corrupt header: {n_groups} signal groups")));
        }
        let mut channels = Vec::new();
        let mut counts = [0usize; 6];
        for g in 0..n_groups {
            let port_name = self.qstring("signal group name")?;
            let port_prefix = self.qstring("signal group prefix")?;
            let enabled = self.i16("signal group")? != 0;
            let n_chan = self.i16("signal group")?;
            let _n_amp = self.i16("signal group")?;
            if !(0..=MAX_GROUP_CHANNELS).contains(&n_chan) {
                return Err(self.bad(format!(
                    "corrupt header: signal group {} ({port_name:?}) has {n_chan} channels \
                     (at most {MAX_GROUP_CHANNELS})",
                    g + 1
                )));
            }
            if !(enabled && n_chan > 0) {
                continue;
            }
            for _ in 0..n_chan {
                if let Some(ch) = self.channel(&port_name, &port_prefix)? {
                    let t = ch.signal_type as usize;
                    counts[t] += 1;
                    if counts[t] > MAX_CHANNELS[t] {
                        return Err(self.bad(format!(
                            "corrupt header: more than {} enabled {} channels (no Intan \
                             RHD2000 system records that many)",
                            MAX_CHANNELS[t], SIGNAL_NAMES[t]
                        )));
                    }
                    channels.push(ch);
                }
            }
        }
        Ok(channels)
    }

    /// One channel record; None when the channel is disabled.
    fn channel(&mut self, port_name: &str, port_prefix: &str) -> Result<Option<Channel>> {
        let native_name = self.qstring("channel name")?;
        let custom_name = self.qstring("channel name")?;
        let native_order = self.i16("channel record")?;
        let custom_order = self.i16("channel record")?;
        let signal_type = self.i16("channel record")?;
        let ch_enabled = self.i16("channel record")? != 0;
        let chip_channel = self.i16("channel record")?;
        let board_stream = self.i16("channel record")?;
        for _ in 0..4 {
            self.i16("channel trigger settings")?;
        }
        let impedance_magnitude = self.f32("channel impedance")?;
        let impedance_phase = self.f32("channel impedance")?;
        if !(0..=5).contains(&signal_type) {
            return Err(self.bad(format!(
                "corrupt header: channel {native_name} has signal type {signal_type}"
            )));
        }
        Ok(ch_enabled.then(|| Channel {
            port_name: port_name.to_string(),
            port_prefix: port_prefix.to_string(),
            native_name,
            custom_name,
            native_order,
            custom_order,
            signal_type,
            chip_channel,
            board_stream,
            impedance_magnitude,
            impedance_phase,
        }))
    }
}

/// Read and parse the header at the start of `path`.
pub fn read_header(path: &Path) -> Result<Header> {
    let p = path.display().to_string();
    let io = |e| EngineError::Io {
        path: p.clone(),
        source: e,
    };
    let f = std::fs::File::open(path).map_err(io)?;
    let file_len = f.metadata().map_err(io)?.len() as usize;
    // Headers are a few kB; 64 kB covers hundreds of channels, and we grow the buffer if needed.
    let mut limit = 1usize << 16;
    loop {
        let n = limit.min(file_len);
        let mut buf = vec![0u8; n];
        crate::fileio::read_exact_at(&f, &mut buf, 0).map_err(io)?;
        match parse_header(&buf, &p) {
            Err(EngineError::File { msg, .. })
                if msg.starts_with("header ends early") && n < file_len =>
            {
                limit *= 4;
            }
            other => return other,
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn qs(out: &mut Vec<u8>, s: &str) {
        if s.is_empty() {
            out.extend_from_slice(&0xFFFF_FFFFu32.to_le_bytes());
        } else {
            let u: Vec<u16> = s.encode_utf16().collect();
            out.extend_from_slice(&((u.len() * 2) as u32).to_le_bytes());
            for x in u {
                out.extend_from_slice(&x.to_le_bytes());
            }
        }
    }

    /// A header with `n_amp` amplifier channels on port A, 3 aux, 1 supply, 1 ADC, 2 dig-in, 1 dig-out.
    pub(crate) fn make_header(version: (i16, i16), n_amp: usize, n_temp: i16) -> Vec<u8> {
        let mut o = Vec::new();
        o.extend_from_slice(&RHD_MAGIC.to_le_bytes());
        o.extend_from_slice(&version.0.to_le_bytes());
        o.extend_from_slice(&version.1.to_le_bytes());
        o.extend_from_slice(&20000f32.to_le_bytes());
        o.extend_from_slice(&1i16.to_le_bytes());
        for v in [1.0f32, 0.1, 7500.0, 1.0, 0.1, 7500.0] {
            o.extend_from_slice(&v.to_le_bytes());
        }
        o.extend_from_slice(&2i16.to_le_bytes());
        o.extend_from_slice(&1000f32.to_le_bytes());
        o.extend_from_slice(&1000f32.to_le_bytes());
        qs(&mut o, "hello");
        qs(&mut o, "");
        qs(&mut o, "");
        if version >= (1, 1) {
            o.extend_from_slice(&n_temp.to_le_bytes());
        }
        if version >= (1, 3) {
            o.extend_from_slice(&0i16.to_le_bytes());
        }
        if version >= (2, 0) {
            qs(&mut o, "");
        }
        let groups: Vec<(&str, &str, Vec<(String, i16, i16)>)> = vec![
            (
                "Port A",
                "A",
                (0..n_amp)
                    .map(|c| (format!("A-{c:03}"), 0i16, c as i16))
                    .chain((0..3).map(|k| (format!("A-AUX{}", k + 1), 1, k)))
                    .chain(std::iter::once(("A-VDD1".to_string(), 2, 0)))
                    .collect(),
            ),
            ("Board ADC", "ADC", vec![("ADC-00".to_string(), 3, 0)]),
            (
                "Board Digital Inputs",
                "DIN",
                vec![("DIN-00".to_string(), 4, 0), ("DIN-03".to_string(), 4, 3)],
            ),
            (
                "Board Digital Outputs",
                "DOUT",
                vec![("DOUT-00".to_string(), 5, 0)],
            ),
            ("Disabled", "X", vec![]),
        ];
        o.extend_from_slice(&(groups.len() as i16).to_le_bytes());
        for (name, prefix, chans) in &groups {
            qs(&mut o, name);
            qs(&mut o, prefix);
            o.extend_from_slice(&(if chans.is_empty() { 0i16 } else { 1 }).to_le_bytes());
            o.extend_from_slice(&(chans.len() as i16).to_le_bytes());
            o.extend_from_slice(&0i16.to_le_bytes());
            for (n, t, order) in chans {
                qs(&mut o, n);
                qs(&mut o, n);
                for v in [*order, *order, *t, 1, *order, 0, 0, 0, 0, 0] {
                    o.extend_from_slice(&v.to_le_bytes());
                }
                o.extend_from_slice(&0f32.to_le_bytes());
                o.extend_from_slice(&0f32.to_le_bytes());
            }
        }
        o
    }

    #[test]
    fn parses_every_version() {
        for v in [(1, 0), (1, 1), (1, 2), (1, 3), (2, 0), (3, 0), (3, 2)] {
            let b = make_header(v, 4, 1);
            let h = parse_header(&b, "x").unwrap();
            assert_eq!(h.version, v);
            assert_eq!(h.header_size, b.len());
            assert_eq!(h.count(AMPLIFIER), 4);
            assert_eq!(h.count(BOARD_DIG_IN), 2);
            assert_eq!(h.notes[0], "hello");
            assert_eq!(h.notch_hz(), 60.0);
            assert_eq!(h.num_temp_sensors, if v >= (1, 1) { 1 } else { 0 });
            let l = h.block_layout();
            let s = if v.0 > 1 { 128 } else { 60 };
            assert_eq!(l.samples, s);
            let t = if v >= (1, 1) { 1 } else { 0 };
            assert_eq!(
                l.size,
                4 * s + 2 * s * 4 + 2 * (s / 4) * 3 + 2 + 2 * t + 2 * s + 2 * s + 2 * s
            );
        }
    }

    #[test]
    fn rejects_bad_magic_and_version() {
        let mut b = make_header((3, 0), 2, 0);
        b[0] = 0;
        let e = parse_header(&b, "f.rhd").unwrap_err().to_string();
        assert!(e.contains("f.rhd") && e.contains("magic"), "{e}");
        let mut b = make_header((3, 0), 2, 0);
        b[4] = 7;
        let e = parse_header(&b, "f.rhd").unwrap_err().to_string();
        assert!(e.contains("version 7.0"), "{e}");
        let b = make_header((3, 0), 2, 0);
        let e = parse_header(&b[..b.len() - 3], "f.rhd")
            .unwrap_err()
            .to_string();
        assert!(e.contains("truncated"), "{e}");
    }

    #[test]
    fn refuses_absurd_channel_counts() {
        // the largest real port (128 amplifier channels + aux + supply) parses
        assert!(parse_header(&make_header((3, 0), 128, 0), "f.rhd").is_ok());
        let b = make_header((3, 0), 1025, 0);
        let e = parse_header(&b, "f.rhd").unwrap_err().to_string();
        assert!(
            e.starts_with("f.rhd: ") && e.contains("1029 channels"),
            "{e}"
        );
    }
}
