//! "The headstage fell off": blech_clust's recording-cutoff test (spec 4.2).
//!
//! Only positive excursions above `voltage_cutoff` count. If the overall breach rate (per second),
//! the number of seconds with any breach, and the mean breaches per such second all reach their
//! limits, the recording is cut at the start of the first second with more than
//! `max_mean_breach_rate_persec` breaches; otherwise it is kept whole.

#[derive(Clone, Copy, Debug)]
pub struct CutoffParams {
    pub voltage_cutoff: f64,
    pub max_breach_rate: f64,
    pub max_secs_above_cutoff: f64,
    pub max_mean_breach_rate_persec: f64,
}

/// blech_clust's values, for tests (the real defaults live in Python's parameter object).
#[cfg(test)]
impl Default for CutoffParams {
    fn default() -> Self {
        CutoffParams {
            voltage_cutoff: 10000.0,
            max_breach_rate: 1.0,
            max_secs_above_cutoff: 60.0,
            max_mean_breach_rate_persec: 100.0,
        }
    }
}

/// Per-second breach counts accumulated over a stream.
#[derive(Clone, Debug, Default)]
pub struct BreachCounter {
    per_sec: Vec<u32>,
    total: u64,
}

impl BreachCounter {
    /// An f32 bound never above the f64 cutoff: every breach is `> bound` (so a pre-test with it
    /// misses nothing; the exact test follows).
    pub fn prefilter_bound(cutoff: f64) -> f32 {
        match cutoff as f32 {
            f if (f as f64) > cutoff => f.next_down(),
            f => f,
        }
    }

    /// Count samples `t0 .. t0 + x.len()` above `cutoff`, with seconds of `sec` samples.
    #[inline(always)]
    pub fn push(&mut self, t0: usize, x: &[f32], cutoff: f64, sec: usize) {
        let c = Self::prefilter_bound(cutoff);
        // Breaches are rare: a vectorised any-above test per block skips almost every block.
        for (k, blk) in x.chunks(64).enumerate() {
            if !blk.iter().fold(false, |a, &v| a | (v > c)) {
                continue;
            }
            for (j, &v) in blk.iter().enumerate() {
                if v > c && (v as f64) > cutoff {
                    let s = (t0 + k * 64 + j) / sec;
                    if s >= self.per_sec.len() {
                        self.per_sec.resize(s + 1, 0);
                    }
                    self.per_sec[s] += 1;
                    self.total += 1;
                }
            }
        }
    }

    /// Samples to keep out of `n` at sampling rate `fs`.
    pub fn decide(&self, n: usize, fs: f64, p: &CutoffParams) -> usize {
        let sec = (fs.round() as usize).max(1);
        let full = n / sec;
        if n == 0 || full == 0 {
            return n;
        }
        let breach_rate = self.total as f64 * fs / n as f64;
        let counts = |s: usize| self.per_sec.get(s).copied().unwrap_or(0) as f64;
        let above: Vec<f64> = (0..full).map(counts).filter(|&c| c > 0.0).collect();
        let secs_above = above.len() as f64;
        let mean = if above.is_empty() {
            0.0
        } else {
            above.iter().sum::<f64>() / secs_above
        };
        if breach_rate >= p.max_breach_rate
            && secs_above >= p.max_secs_above_cutoff
            && mean >= p.max_mean_breach_rate_persec
        {
            if let Some(s) = (0..full).find(|&s| counts(s) > p.max_mean_breach_rate_persec) {
                return s * sec;
            }
        }
        n
    }
}

/// Samples to keep of a whole filtered trace.
pub fn recording_cutoff(x: &[f32], fs: f64, p: &CutoffParams) -> usize {
    let mut b = BreachCounter::default();
    b.push(0, x, p.voltage_cutoff, (fs.round() as usize).max(1));
    b.decide(x.len(), fs, p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cut_at_the_first_bad_second() {
        let fs = 100.0;
        let mut x = vec![0f32; 100 * 200];
        assert_eq!(recording_cutoff(&x, fs, &CutoffParams::default()), x.len());
        // from second 120 on, 150 breaches a second (80 seconds >= 60)
        for s in 120..200 {
            for i in 0..150.min(100) {
                x[s * 100 + i] = 20000.0;
            }
        }
        // only 100 samples per second here: mean 100 >= 100 but none > 100 -> kept
        assert_eq!(recording_cutoff(&x, fs, &CutoffParams::default()), x.len());
        let p = CutoffParams {
            max_mean_breach_rate_persec: 50.0,
            ..Default::default()
        };
        assert_eq!(recording_cutoff(&x, fs, &p), 120 * 100);
    }
}
