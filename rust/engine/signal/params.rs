//! The extraction stage's parameters: [`ExtractParams`] as the user gives them (the names of the
//! Python extraction-stage parameters, no defaults here: Python's parameter object owns them), and
//! [`Settings`], the validated values in the engine's units (samples, the polarity enum ...).

use super::cutoff::CutoffParams;
use super::detect::Polarity;
use super::reference::Method;
use crate::error::{EngineError, Result};
use crate::intan::MICROVOLTS_PER_BIT;
use crate::limits::MAX_SNIPPET_SAMPLES;

/// Chunk length (seconds) of the streamed passes in global-threshold mode (rolling mode uses the
/// noise windows); an engine tuning, not a parameter.
pub const GLOBAL_CHUNK_S: f64 = 5.0;

/// Highest Butterworth order per edge the filter design accepts.
pub const MAX_BANDPASS_ORDER: i64 = 12;

/// The extraction stage's parameters, named and typed as the Python parameters. Check them with
/// [`ExtractParams::settings`] (every error names the parameter).
#[derive(Clone, Debug, PartialEq)]
pub struct ExtractParams {
    /// Samples per second.
    pub sampling_rate: f64,
    /// Common average reference within each CAR group.
    pub use_car: bool,
    /// How a CAR group's reference combines its channels: "mean", "median", "clipped_mean".
    pub reference_method: String,
    /// "clipped_mean": members more than this (x their MAD) from the group's median are left out.
    pub reference_clip: f64,
    pub bandpass_lower_cutoff: f64,
    pub bandpass_upper_cutoff: f64,
    /// Butterworth order of each edge (1..=12).
    pub bandpass_order: i64,
    pub voltage_cutoff: f64,
    pub max_breach_rate: f64,
    pub max_secs_above_cutoff: f64,
    pub max_mean_breach_rate_persec: f64,
    /// Detection threshold in noise units (> 0).
    pub waveform_threshold: f64,
    pub use_rolling_threshold: bool,
    /// Seconds per noise window (checked only with `use_rolling_threshold`).
    pub rolling_threshold_window: f64,
    /// Accepted for the stage's parameter set and checked (> 0 with `use_rolling_threshold`);
    /// the engine's noise windows do not overlap, so it does not use it (Python does, to map an
    /// event to its window).
    pub rolling_threshold_step: f64,
    /// Noise statistics from every this-many-th filtered sample (>= 1).
    pub noise_subsample: i64,
    /// "negative", "positive" or "both".
    pub spike_polarity: String,
    pub dead_time_ms: f64,
    /// Milliseconds of snippet before the extremum (> 0).
    pub spike_snapshot_before: f64,
    /// Milliseconds of snippet after the extremum (> 0).
    pub spike_snapshot_after: f64,
    /// Sub-sample alignment of the snippets.
    pub align_subsample: bool,
}

/// Validated extraction settings in the engine's units.
#[derive(Clone, Debug)]
pub struct Settings {
    pub fs: f64,
    /// Input units per int16 count (uV per bit).
    pub scale: f64,
    pub low: f64,
    pub high: f64,
    pub order: usize,
    pub use_car: bool,
    pub reference: Method,
    pub cutoff: CutoffParams,
    /// Threshold factor (`waveform_threshold`).
    pub k: f64,
    /// Rolling noise windows of this many seconds; None = one global threshold.
    pub window_s: Option<f64>,
    /// Noise statistics (window median and MAD, mad_val, global threshold) from every this-many-th
    /// filtered sample; 1 = every sample.
    pub noise_subsample: usize,
    pub polarity: Polarity,
    pub dead_time_ms: f64,
    pub before: usize,
    pub after: usize,
    pub align: bool,
    /// Worker threads (0 = BLECHRS_THREADS or all cores).
    pub threads: usize,
    /// Chunk length (samples) in global-threshold mode; rolling mode uses the windows.
    pub chunk: usize,
}

fn bad(name: &str, rule: &str, value: impl std::fmt::Display) -> EngineError {
    EngineError::Value(format!("{name} must be {rule}, not {value}"))
}

/// `value` if finite and > 0, else an error naming the parameter.
fn positive(name: &str, value: f64) -> Result<f64> {
    if value.is_finite() && value > 0.0 {
        Ok(value)
    } else {
        Err(bad(name, "a finite number > 0", value))
    }
}

/// `value` if not NaN (infinities are meaningful limits for the recording cutoff).
fn number(name: &str, value: f64) -> Result<f64> {
    if value.is_nan() {
        Err(bad(name, "a number", value))
    } else {
        Ok(value)
    }
}

impl ExtractParams {
    /// The field names, in declaration order (the Python class builds its keywords from them).
    pub const FIELDS: [&'static str; 21] = [
        "sampling_rate",
        "use_car",
        "reference_method",
        "reference_clip",
        "bandpass_lower_cutoff",
        "bandpass_upper_cutoff",
        "bandpass_order",
        "voltage_cutoff",
        "max_breach_rate",
        "max_secs_above_cutoff",
        "max_mean_breach_rate_persec",
        "waveform_threshold",
        "use_rolling_threshold",
        "rolling_threshold_window",
        "rolling_threshold_step",
        "noise_subsample",
        "spike_polarity",
        "dead_time_ms",
        "spike_snapshot_before",
        "spike_snapshot_after",
        "align_subsample",
    ];

    /// Check every value (errors name the parameter) and convert to the engine's units;
    /// `threads` <= 0 means BLECHRS_THREADS or all cores.
    pub fn settings(&self, threads: i64) -> Result<Settings> {
        let fs = positive("sampling_rate", self.sampling_rate)?;
        let (low, high, order) = self.band(fs)?;
        let window_s = self.window()?;
        if !(1..=i64::MAX).contains(&self.noise_subsample) {
            return Err(bad(
                "noise_subsample",
                "an integer >= 1",
                self.noise_subsample,
            ));
        }
        let polarity = Polarity::parse(&self.spike_polarity).map_err(|_| {
            bad(
                "spike_polarity",
                "'negative', 'positive' or 'both'",
                format!("{:?}", self.spike_polarity),
            )
        })?;
        if !(self.dead_time_ms.is_finite() && self.dead_time_ms >= 0.0) {
            return Err(bad(
                "dead_time_ms",
                "a finite number >= 0",
                self.dead_time_ms,
            ));
        }
        let (before, after) = self.snippet(fs)?;
        let reference =
            Method::parse(&self.reference_method, self.reference_clip).ok_or_else(|| {
                if Method::parse(&self.reference_method, 1.0).is_some() {
                    bad("reference_clip", "a finite number > 0", self.reference_clip)
                } else {
                    bad(
                        "reference_method",
                        "'mean', 'median' or 'clipped_mean'",
                        format!("{:?}", self.reference_method),
                    )
                }
            })?;
        if threads > super::MAX_THREADS as i64 {
            return Err(bad(
                "threads",
                &format!("at most {} (0 = all cores)", super::MAX_THREADS),
                threads,
            ));
        }
        Ok(Settings {
            fs,
            scale: MICROVOLTS_PER_BIT,
            low,
            high,
            order,
            use_car: self.use_car,
            reference,
            cutoff: self.cutoff()?,
            k: positive("waveform_threshold", self.waveform_threshold)?,
            window_s,
            noise_subsample: self.noise_subsample as usize,
            polarity,
            dead_time_ms: self.dead_time_ms,
            before,
            after,
            align: self.align_subsample,
            threads: threads.max(0) as usize,
            chunk: (GLOBAL_CHUNK_S * fs).round() as usize,
        })
    }

    fn band(&self, fs: f64) -> Result<(f64, f64, usize)> {
        let order = self.bandpass_order;
        if !(1..=MAX_BANDPASS_ORDER).contains(&order) {
            return Err(bad("bandpass_order", "an integer from 1 to 12", order));
        }
        let (low, high) = (self.bandpass_lower_cutoff, self.bandpass_upper_cutoff);
        let nyq = fs / 2.0;
        if !(low.is_finite() && high.is_finite() && 0.0 < low && low < high && high < nyq) {
            return Err(EngineError::Value(format!(
                "bandpass_lower_cutoff and bandpass_upper_cutoff: band {low}-{high} Hz must satisfy \
                 0 < low < high < Nyquist ({nyq} Hz at sampling_rate = {fs} Hz)"
            )));
        }
        Ok((low, high, order as usize))
    }

    fn window(&self) -> Result<Option<f64>> {
        if !self.use_rolling_threshold {
            return Ok(None);
        }
        positive("rolling_threshold_step", self.rolling_threshold_step)?;
        positive("rolling_threshold_window", self.rolling_threshold_window).map(Some)
    }

    fn cutoff(&self) -> Result<CutoffParams> {
        Ok(CutoffParams {
            voltage_cutoff: number("voltage_cutoff", self.voltage_cutoff)?,
            max_breach_rate: number("max_breach_rate", self.max_breach_rate)?,
            max_secs_above_cutoff: number("max_secs_above_cutoff", self.max_secs_above_cutoff)?,
            max_mean_breach_rate_persec: number(
                "max_mean_breach_rate_persec",
                self.max_mean_breach_rate_persec,
            )?,
        })
    }

    /// (samples before, samples after) the extremum.
    fn snippet(&self, fs: f64) -> Result<(usize, usize)> {
        let b = positive("spike_snapshot_before", self.spike_snapshot_before)?;
        let a = positive("spike_snapshot_after", self.spike_snapshot_after)?;
        let before = (b * fs / 1000.0).round() as usize;
        let after = (a * fs / 1000.0).round() as usize;
        if before == 0 {
            return Err(bad(
                "spike_snapshot_before",
                "at least one sample",
                format!("{b} ms"),
            ));
        }
        if after == 0 {
            return Err(bad(
                "spike_snapshot_after",
                "at least one sample",
                format!("{a} ms"),
            ));
        }
        // (a snippet longer than this could only exhaust memory: refused before any work)
        for (name, ms, n) in [
            ("spike_snapshot_before", b, before),
            ("spike_snapshot_after", a, after),
        ] {
            if n > MAX_SNIPPET_SAMPLES {
                return Err(bad(
                    name,
                    &format!("at most {MAX_SNIPPET_SAMPLES} samples (2**20)"),
                    format!("{ms} ms = {n} samples at {fs} Hz"),
                ));
            }
        }
        Ok((before, after))
    }

    /// blech_clust-like values for tests (the real defaults live in Python's parameter object).
    #[cfg(test)]
    pub fn for_tests(fs: f64) -> Self {
        ExtractParams {
            sampling_rate: fs,
            use_car: true,
            reference_method: "mean".into(),
            reference_clip: 3.0,
            bandpass_lower_cutoff: 300.0,
            bandpass_upper_cutoff: 3000.0,
            bandpass_order: 2,
            voltage_cutoff: 10000.0,
            max_breach_rate: 1.0,
            max_secs_above_cutoff: 60.0,
            max_mean_breach_rate_persec: 100.0,
            waveform_threshold: 5.0,
            use_rolling_threshold: true,
            rolling_threshold_window: 5.0,
            rolling_threshold_step: 5.0,
            noise_subsample: 10,
            spike_polarity: "both".into(),
            dead_time_ms: 0.5,
            spike_snapshot_before: 1.0,
            spike_snapshot_after: 1.5,
            align_subsample: true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_parameter() {
        let ok = ExtractParams::for_tests(30000.0);
        let s = ok.settings(0).unwrap();
        assert_eq!((s.before, s.after, s.chunk, s.order), (30, 45, 150000, 2));
        let cases: Vec<(&str, Box<dyn Fn(&mut ExtractParams)>)> = vec![
            ("sampling_rate", Box::new(|p| p.sampling_rate = 0.0)),
            ("bandpass_order", Box::new(|p| p.bandpass_order = 0)),
            (
                "bandpass_upper_cutoff",
                Box::new(|p| p.bandpass_upper_cutoff = 20000.0),
            ),
            ("voltage_cutoff", Box::new(|p| p.voltage_cutoff = f64::NAN)),
            (
                "waveform_threshold",
                Box::new(|p| p.waveform_threshold = -1.0),
            ),
            (
                "rolling_threshold_window",
                Box::new(|p| p.rolling_threshold_window = 0.0),
            ),
            (
                "rolling_threshold_step",
                Box::new(|p| p.rolling_threshold_step = f64::INFINITY),
            ),
            ("noise_subsample", Box::new(|p| p.noise_subsample = 0)),
            (
                "spike_polarity",
                Box::new(|p| p.spike_polarity = "up".into()),
            ),
            ("dead_time_ms", Box::new(|p| p.dead_time_ms = -0.1)),
            (
                "spike_snapshot_before",
                Box::new(|p| p.spike_snapshot_before = 0.001),
            ),
            (
                "spike_snapshot_after",
                Box::new(|p| p.spike_snapshot_after = f64::NAN),
            ),
            (
                "spike_snapshot_after",
                Box::new(|p| p.spike_snapshot_after = 1e9),
            ),
            (
                "spike_snapshot_before",
                Box::new(|p| p.spike_snapshot_before = 1e300),
            ),
        ];
        for (name, change) in cases {
            let mut p = ok.clone();
            change(&mut p);
            let e = p.settings(0).unwrap_err().to_string();
            assert!(e.contains(name), "{name}: {e}");
        }
        // the window is not checked without rolling thresholds
        let mut p = ok.clone();
        p.use_rolling_threshold = false;
        p.rolling_threshold_window = 0.0;
        assert!(p.settings(-1).unwrap().window_s.is_none());
    }
}
