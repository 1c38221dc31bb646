//! Spike detection: one event per excursion beyond the threshold, at its extremum.
//!
//! A sample is supra-threshold when `x - centre <= -threshold` (negative) or `>= threshold`
//! (positive), for the polarities asked for. Supra-threshold samples closer than the dead time to
//! the previous one (at least adjacent) belong to the same event, whatever their sign, so the two
//! lobes of one biphasic spike are one event. The event is the sample of largest |x - centre|
//! (the first one on a tie) and its polarity is that sample's sign. The detector is a state
//! machine fed block by block, so a stream gives the same events as the whole signal, and the
//! last event is kept.

use crate::error::{EngineError, Result};

/// Samples per block of [`Detector::push_listed`] (and of the first prefilter of `push_scan`).
pub const BLOCK: usize = 64;

/// A threshold as the scans use it.
struct Bounds {
    active: bool,
    neg: bool,
    pos: bool,
    centre: f64,
    threshold: f64,
    /// f32 prefilter: a value in (lo_s, hi_s) and at most `above` needs no exact test.
    lo_s: f32,
    hi_s: f32,
    above: f32,
}

impl Bounds {
    #[inline(always)]
    fn quiet(&self, min: f32, max: f32) -> bool {
        min > self.lo_s && max < self.hi_s && max <= self.above
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Polarity {
    Negative,
    Positive,
    Both,
}

impl Polarity {
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "negative" | "neg" => Ok(Polarity::Negative),
            "positive" | "pos" => Ok(Polarity::Positive),
            "both" => Ok(Polarity::Both),
            _ => Err(EngineError::Value(format!(
                "polarity must be 'negative', 'positive' or 'both', not {s:?}"
            ))),
        }
    }
}

/// Dead time in samples from milliseconds.
pub fn dead_samples(dead_time_ms: f64, fs: f64) -> usize {
    (dead_time_ms.max(0.0) * fs / 1000.0).round() as usize
}

#[derive(Clone, Debug)]
pub struct Detector {
    polarity: Polarity,
    join: i64,
    open: bool,
    best_t: i64,
    best_abs: f64,
    best_sign: i8,
    last_supra: i64,
}

impl Detector {
    pub fn new(polarity: Polarity, dead_samples: usize) -> Self {
        Detector {
            polarity,
            join: dead_samples.clamp(1, i64::MAX as usize) as i64,
            open: false,
            best_t: 0,
            best_abs: 0.0,
            best_sign: 0,
            last_supra: i64::MIN / 2,
        }
    }

    /// Time of the extremum of the event still open (its samples must be kept), if any.
    pub fn open_event(&self) -> Option<i64> {
        self.open.then_some(self.best_t)
    }

    /// Feed samples `t0 .. t0 + x.len()` with one centre and threshold; finished events go to
    /// `out` as (time, polarity). A threshold <= 0 (a flat stretch) detects nothing.
    #[inline(always)]
    pub fn push(
        &mut self,
        t0: i64,
        x: &[f32],
        centre: f64,
        threshold: f64,
        out: &mut Vec<(i64, i8)>,
    ) {
        self.push_scan(t0, x, centre, threshold, out, f32::INFINITY, |_, _| {});
    }

    /// [`Detector::push`] that also hands every block of samples holding a value above `above`
    /// to `loud(offset in x, block)` (one scan of the samples for detection and the cutoff's
    /// breach count: a block is skipped only when every value is inside the thresholds and
    /// at most `above`).
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    pub fn push_scan(
        &mut self,
        t0: i64,
        x: &[f32],
        centre: f64,
        threshold: f64,
        out: &mut Vec<(i64, i8)>,
        above: f32,
        mut loud: impl FnMut(usize, &[f32]),
    ) {
        if x.is_empty() {
            return;
        }
        let b = self.bounds(centre, threshold, above);
        #[cfg(target_arch = "x86_64")]
        let avx = crate::cpu::avx();
        let mut i = 0;
        while i < x.len() {
            // Blocks of 64 first (min and max in 8 lanes: vectorised), then of 16.
            let end = (i + 64).min(x.len());
            if end - i == 64 {
                #[cfg(target_arch = "x86_64")]
                // SAFETY: AVX is present (checked once above); 64 samples from i are in bounds.
                let (mn, mx) = if avx {
                    unsafe { min_max64_avx(x[i..i + 64].as_ptr()) }
                } else {
                    min_max(&x[i..i + 64])
                };
                #[cfg(not(target_arch = "x86_64"))]
                let (mn, mx) = min_max(&x[i..i + 64]);
                if b.quiet(mn, mx) {
                    i += 64;
                    continue;
                }
            }
            self.scan(t0 + i as i64, &x[i..end], &b, out, &mut |o, blk| {
                loud(i + o, blk)
            });
            i = end;
        }
        self.settle(t0 + x.len() as i64 - 1, out);
    }

    /// The blocks of `BLOCK` samples (of `len`; the last may be shorter) that may hold a
    /// supra-threshold or loud sample, given each block's (min, max) as `range(k)`: what
    /// [`Detector::push_listed`] needs.
    pub fn listed_blocks(
        &self,
        len: usize,
        centre: f64,
        threshold: f64,
        above: f32,
        range: impl Fn(usize) -> (f32, f32),
    ) -> Vec<usize> {
        let (lo, hi, ab) = self.quiet_bounds(centre, threshold, above);
        (0..len.div_ceil(BLOCK))
            .filter(|&k| {
                let (mn, mx) = range(k);
                !(mn > lo && mx < hi && mx <= ab)
            })
            .collect()
    }

    /// (lo, hi, above): a block whose values are all in (lo, hi) and at most `above` holds
    /// nothing for [`Detector::push_listed`].
    pub fn quiet_bounds(&self, centre: f64, threshold: f64, above: f32) -> (f32, f32, f32) {
        let b = self.bounds(centre, threshold, above);
        (b.lo_s, b.hi_s, b.above)
    }

    /// [`Detector::push_scan`] over `len` samples from `t0` given as blocks of `BLOCK` (the
    /// last may be shorter): `blocks` are those that are not quiet (increasing; any superset of
    /// them, such as [`Detector::listed_blocks`], gives the same result) and `fetch(k, buf)`
    /// appends block k's samples to `buf`, called only for those. Same events and loud blocks as
    /// `push_scan` over the samples.
    #[allow(clippy::too_many_arguments)]
    pub fn push_listed(
        &mut self,
        t0: i64,
        len: usize,
        centre: f64,
        threshold: f64,
        out: &mut Vec<(i64, i8)>,
        above: f32,
        blocks: &[usize],
        mut fetch: impl FnMut(usize, &mut Vec<f32>),
        mut loud: impl FnMut(usize, &[f32]),
    ) {
        if len == 0 {
            return;
        }
        let b = self.bounds(centre, threshold, above);
        let mut buf = Vec::with_capacity(BLOCK);
        for &k in blocks {
            buf.clear();
            fetch(k, &mut buf);
            debug_assert_eq!(buf.len(), BLOCK.min(len - k * BLOCK));
            let i = k * BLOCK;
            self.scan(t0 + i as i64, &buf, &b, out, &mut |o, blk| loud(i + o, blk));
        }
        self.settle(t0 + len as i64 - 1, out);
    }

    fn bounds(&self, centre: f64, threshold: f64, above: f32) -> Bounds {
        let active = threshold > 0.0 && threshold.is_finite();
        let (neg, pos) = match self.polarity {
            Polarity::Negative => (active, false),
            Polarity::Positive => (false, active),
            Polarity::Both => (active, active),
        };
        // f32 prefilter bounds: a value strictly inside never crosses in f64.
        let lo = (centre - threshold) as f32;
        let hi = (centre + threshold) as f32;
        Bounds {
            active,
            neg,
            pos,
            centre,
            threshold,
            lo_s: if neg {
                lo.next_up_f32()
            } else {
                f32::NEG_INFINITY
            },
            hi_s: if pos {
                hi.next_down_f32()
            } else {
                f32::INFINITY
            },
            above,
        }
    }

    /// The exact test over a block of samples from `t0`, 16 at a time (most are quiet).
    #[inline(always)]
    fn scan(
        &mut self,
        t0: i64,
        x: &[f32],
        b: &Bounds,
        out: &mut Vec<(i64, i8)>,
        loud: &mut impl FnMut(usize, &[f32]),
    ) {
        let mut i = 0;
        while i < x.len() {
            let end = (i + 16).min(x.len());
            let quiet = x[i..end].iter().fold(true, |q, &v| {
                q & (v > b.lo_s) & (v < b.hi_s) & (v <= b.above)
            });
            if !quiet {
                if b.active {
                    for j in i..end {
                        let c = x[j] as f64 - b.centre;
                        let sign: i8 = if b.neg && c <= -b.threshold {
                            -1
                        } else if b.pos && c >= b.threshold {
                            1
                        } else {
                            0
                        };
                        if sign != 0 {
                            self.supra(t0 + j as i64, c.abs(), sign, out);
                        }
                    }
                }
                loud(i, &x[i..end]);
            }
            i = end;
        }
    }

    /// After the samples up to `last`: the open event is complete once the dead time passed.
    fn settle(&mut self, last: i64, out: &mut Vec<(i64, i8)>) {
        if self.open && last - self.last_supra >= self.join {
            self.emit(out);
        }
    }

    #[inline]
    fn supra(&mut self, t: i64, a: f64, sign: i8, out: &mut Vec<(i64, i8)>) {
        if self.open && t - self.last_supra > self.join {
            self.emit(out);
        }
        if !self.open {
            self.open = true;
            self.best_t = t;
            self.best_abs = a;
            self.best_sign = sign;
        } else if a > self.best_abs {
            self.best_t = t;
            self.best_abs = a;
            self.best_sign = sign;
        }
        self.last_supra = t;
    }

    fn emit(&mut self, out: &mut Vec<(i64, i8)>) {
        out.push((self.best_t, self.best_sign));
        self.open = false;
    }

    /// End of the signal: the open event, if any, is complete.
    pub fn finish(&mut self, out: &mut Vec<(i64, i8)>) {
        if self.open {
            self.emit(out);
        }
    }
}

/// (min, max) of a slice whose length is a multiple of 8 (NaN-free input), 8 lanes at a time.
#[inline(always)]
fn min_max(x: &[f32]) -> (f32, f32) {
    let mut mn = [f32::INFINITY; 8];
    let mut mx = [f32::NEG_INFINITY; 8];
    for c in x.chunks_exact(8) {
        for l in 0..8 {
            mn[l] = if c[l] < mn[l] { c[l] } else { mn[l] };
            mx[l] = if c[l] > mx[l] { c[l] } else { mx[l] };
        }
    }
    let a = mn
        .iter()
        .copied()
        .fold(f32::INFINITY, |a, b| if b < a { b } else { a });
    let b = mx
        .iter()
        .copied()
        .fold(f32::NEG_INFINITY, |a, b| if b > a { b } else { a });
    (a, b)
}

/// (min, max) of the 64 floats at `p`, in AVX registers (a NaN makes the block look loud,
/// which only sends it to the exact test).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx")]
#[inline]
unsafe fn min_max64_avx(p: *const f32) -> (f32, f32) {
    use std::arch::x86_64::*;
    let mut mn = _mm256_loadu_ps(p);
    let mut mx = mn;
    for k in 1..8 {
        let v = _mm256_loadu_ps(p.add(8 * k));
        mn = _mm256_min_ps(mn, v);
        mx = _mm256_max_ps(mx, v);
    }
    let m4 = _mm_min_ps(_mm256_castps256_ps128(mn), _mm256_extractf128_ps::<1>(mn));
    let x4 = _mm_max_ps(_mm256_castps256_ps128(mx), _mm256_extractf128_ps::<1>(mx));
    let m2 = _mm_min_ps(m4, _mm_movehl_ps(m4, m4));
    let x2 = _mm_max_ps(x4, _mm_movehl_ps(x4, x4));
    let m1 = _mm_min_ss(m2, _mm_shuffle_ps::<1>(m2, m2));
    let x1 = _mm_max_ss(x2, _mm_shuffle_ps::<1>(x2, x2));
    (_mm_cvtss_f32(m1), _mm_cvtss_f32(x1))
}

/// Conservative bounds for the f32 prefilter: a value strictly inside never crosses in f64.
trait NextF32 {
    fn next_up_f32(self) -> f32;
    fn next_down_f32(self) -> f32;
}
impl NextF32 for f32 {
    fn next_up_f32(self) -> f32 {
        // two ulps of margin for the f64 -> f32 rounding of the bounds
        let mut v = self;
        for _ in 0..2 {
            v = if v == 0.0 {
                f32::from_bits(1)
            } else if v > 0.0 {
                f32::from_bits(v.to_bits() + 1)
            } else {
                f32::from_bits(v.to_bits() - 1)
            };
        }
        v
    }
    fn next_down_f32(self) -> f32 {
        -(-self).next_up_f32()
    }
}

/// Detect over a whole signal split into windows, each with its own (centre, threshold).
pub fn detect(
    x: &[f32],
    windows: &[(usize, usize)],
    centre_threshold: &[(f64, f64)],
    polarity: Polarity,
    dead_samples: usize,
) -> Vec<(i64, i8)> {
    let mut d = Detector::new(polarity, dead_samples);
    let mut out = Vec::new();
    for (&(a, b), &(c, th)) in windows.iter().zip(centre_threshold) {
        d.push(a as i64, &x[a..b], c, th, &mut out);
    }
    d.finish(&mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn biphasic_spike_is_one_event_and_last_event_kept() {
        let mut x = vec![0f32; 200];
        // spike 1: trough -10 at 50, peak +6 at 55
        x[49] = -6.0;
        x[50] = -10.0;
        x[51] = -7.0;
        x[55] = 6.0;
        // spike 2 at the very end
        x[198] = -8.0;
        x[199] = -9.0;
        let ev = detect(&x, &[(0, 200)], &[(0.0, 5.0)], Polarity::Both, 15);
        assert_eq!(ev, vec![(50, -1), (199, -1)]);
        // without dead time the positive lobe is its own event
        let ev = detect(&x, &[(0, 200)], &[(0.0, 5.0)], Polarity::Both, 0);
        assert_eq!(ev, vec![(50, -1), (55, 1), (199, -1)]);
        let ev = detect(&x, &[(0, 200)], &[(0.0, 5.0)], Polarity::Positive, 15);
        assert_eq!(ev, vec![(55, 1)]);
    }

    #[test]
    fn streaming_equals_whole() {
        let x: Vec<f32> = (0..5000)
            .map(|i| ((i * 7919 % 1013) as f32 - 506.0) / 40.0)
            .collect();
        let whole = detect(&x, &[(0, 5000)], &[(0.0, 10.0)], Polarity::Both, 7);
        let mut d = Detector::new(Polarity::Both, 7);
        let mut out = Vec::new();
        for s in (0..5000).step_by(333) {
            let e = (s + 333).min(5000);
            d.push(s as i64, &x[s..e], 0.0, 10.0, &mut out);
        }
        d.finish(&mut out);
        assert_eq!(whole, out);
        assert!(!out.is_empty());
    }

    /// Blocks with their extrema give the same events and loud blocks as the samples.
    #[test]
    fn blocks_equal_samples() {
        let x: Vec<f32> = (0..4100)
            .map(|i| {
                ((i * 7919 % 1013) as f32 - 506.0) / 40.0 + if i % 500 == 7 { 30.0 } else { 0.0 }
            })
            .collect();
        for (t0, th, above) in [
            (0i64, 10.0, f32::INFINITY),
            (1000, 12.4, 20.0),
            (5, -1.0, 25.0),
        ] {
            let mut a = Detector::new(Polarity::Both, 7);
            let (mut ea, mut la) = (Vec::new(), Vec::new());
            a.push_scan(t0, &x, 0.5, th, &mut ea, above, |o, b| {
                la.push((o, b.to_vec()))
            });
            let mut b = Detector::new(Polarity::Both, 7);
            let (mut eb, mut lb) = (Vec::new(), Vec::new());
            let range = |k: usize| {
                let blk = &x[k * BLOCK..((k + 1) * BLOCK).min(x.len())];
                (
                    blk.iter().copied().fold(f32::INFINITY, f32::min),
                    blk.iter().copied().fold(f32::NEG_INFINITY, f32::max),
                )
            };
            let fetch = |k: usize, buf: &mut Vec<f32>| {
                buf.extend_from_slice(&x[k * BLOCK..((k + 1) * BLOCK).min(x.len())])
            };
            let listed = b.listed_blocks(x.len(), 0.5, th, above, range);
            b.push_listed(
                t0,
                x.len(),
                0.5,
                th,
                &mut eb,
                above,
                &listed,
                fetch,
                |o, b| lb.push((o, b.to_vec())),
            );
            a.finish(&mut ea);
            b.finish(&mut eb);
            assert_eq!(ea, eb);
            assert_eq!(la, lb);
            assert!(th < 0.0 || !ea.is_empty());
            assert!(above.is_infinite() || !la.is_empty());
        }
    }
}
