//! Matched-filter detection: the second detection pass for the units the clustering found.
//!
//! A unit `u` with template `t_u` in noise of covariance `C` is best detected by correlating the
//! filtered trace with `f_u = C^-1 t_u / sqrt(t_u C^-1 t_u)`: `z_u(t) = sum_j f_u[j] x[t - before
//! + j]` is ~N(0, 1) on noise and ~N(d_u, 1) on a spike of `u` (`d_u` its whitened size), so a
//! spike too small to cross the amplitude threshold can still stand out of `z_u`. The caller
//! (core/matched_filter.py) builds the filters; this kernel correlates, finds each `z_u`'s local
//! maxima above the unit's threshold, and keeps, closest first by score `a_u z + b_u` (the
//! caller's log-likelihood ratio plus log prior), one candidate per `half_width` neighbourhood
//! across all units (greedy non-maximum suppression).
//!
//! Blocks of the trace run in parallel; each holds `units x BLOCK` correlations, so memory is
//! bounded by the threads, not by the trace's length (plus the candidates found).

use std::collections::BTreeSet;

use ndarray::ArrayView2;
use rayon::prelude::*;

use super::with_threads;
use crate::error::{EngineError, Result};

/// Output samples per block of work (per thread: units x BLOCK f32 correlations).
const BLOCK: usize = 1 << 15;

/// A detection: sample of the correlation peak, unit index, `z` there.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Detection {
    pub time: i64,
    pub unit: u32,
    pub z: f32,
    score: f64,
}

/// What the caller asks of the matched filter (see the module doc).
pub struct MatchedFilter<'a> {
    /// Units x window filters; `z_u(t)` correlates row `u` with `x[t - before ..]`.
    pub filters: ArrayView2<'a, f32>,
    /// Samples of the window before the event's sample.
    pub before: usize,
    /// Per unit: the least `z_u` of a candidate.
    pub thresholds: &'a [f64],
    /// Per unit: score = `weights[u] * z + biases[u]` (greedy suppression keeps the best first).
    pub weights: &'a [f64],
    pub biases: &'a [f64],
    /// Two candidates closer than this many samples are one event.
    pub half_width: usize,
}

fn value_err(msg: String) -> EngineError {
    EngineError::Value(msg)
}

impl MatchedFilter<'_> {
    fn check(&self, n_samples: usize) -> Result<()> {
        let (units, len) = self.filters.dim();
        if len == 0 || units == 0 {
            return Err(value_err(format!(
                "filters must be a non-empty units x window array, not {units} x {len}"
            )));
        }
        if self.before >= len {
            return Err(value_err(format!(
                "before ({}) must be smaller than the filters' window ({len})",
                self.before
            )));
        }
        for (name, v) in [
            ("thresholds", self.thresholds),
            ("weights", self.weights),
            ("biases", self.biases),
        ] {
            if v.len() != units {
                return Err(value_err(format!(
                    "{name} has {} entries, the filters {units} units",
                    v.len()
                )));
            }
            if v.iter().any(|x| !x.is_finite()) {
                return Err(value_err(format!("{name} must be finite")));
            }
        }
        crate::limits::check::<f32>(len, "filters' window")?;
        if self.half_width > i64::MAX as usize / 4 {
            return Err(value_err(format!(
                "half_width {} is too large",
                self.half_width
            )));
        }
        if self.filters.iter().any(|v| !v.is_finite()) {
            return Err(value_err("filters must be finite".into()));
        }
        if n_samples as u128 * units as u128 > (i64::MAX / 2) as u128 {
            return Err(value_err(format!("x has too many samples ({n_samples})")));
        }
        Ok(())
    }
}

#[inline(always)]
fn correlate_imp(x: &[f32], f: &[f32], z: &mut [f32]) {
    // z[i] = sum_j f[j] x[i + j]; the inner loop runs along z (contiguous: vectorizes)
    z.iter_mut().for_each(|v| *v = 0.0);
    let n = z.len();
    for (j, &fj) in f.iter().enumerate() {
        for (zi, &xi) in z.iter_mut().zip(&x[j..j + n]) {
            *zi += fj * xi;
        }
    }
}

avx2_dispatch! {
    /// `z[i] = sum_j f[j] x[i + j]` for every `i < z.len()` (`x` holds `z.len() + f.len() - 1`).
    fn correlate(x: &[f32], f: &[f32], z: &mut [f32]) => correlate_imp
}

/// `z_u(t) = sum_j filters[u, j] x[t - before + j]` for t in `t0..t1` (all in range), one row
/// per unit. (The correlation the detector uses; the tests compare it with numpy's.)
pub fn correlations(
    x: &[f32],
    filters: ArrayView2<'_, f32>,
    before: usize,
    t0: usize,
    t1: usize,
) -> Vec<Vec<f32>> {
    let len = filters.ncols();
    filters
        .outer_iter()
        .map(|row| {
            let f = row.to_vec();
            let mut z = vec![0.0f32; t1 - t0];
            correlate(&x[t0 - before..t1 - before + len - 1], &f, &mut z);
            z
        })
        .collect()
}

/// Candidates of one block `t0..t1`: samples where `z_u` is a local maximum (>= the sample
/// before, > the sample after) above the unit's threshold.
fn block_candidates(
    x: &[f32],
    mf: &MatchedFilter<'_>,
    t0: usize,
    t1: usize,
    lo: usize,
    hi: usize,
) -> Vec<Detection> {
    // one sample more either side for the local-maximum test, where the trace allows
    let (a, b) = (t0.saturating_sub(1).max(lo), (t1 + 1).min(hi));
    let z = correlations(x, mf.filters, mf.before, a, b);
    let mut out = Vec::new();
    for (u, zu) in z.iter().enumerate() {
        let th = mf.thresholds[u];
        for t in t0..t1 {
            let i = t - a;
            let v = zu[i];
            if (v as f64) <= th {
                continue;
            }
            let left = if t > a { zu[i - 1] } else { f32::NEG_INFINITY };
            let right = if t + 1 < b {
                zu[i + 1]
            } else {
                f32::NEG_INFINITY
            };
            if v >= left && v > right {
                out.push(Detection {
                    time: t as i64,
                    unit: u as u32,
                    z: v,
                    score: mf.weights[u] * v as f64 + mf.biases[u],
                });
            }
        }
    }
    out
}

/// The matched-filter detections of a filtered trace `x` (see the module doc), sorted by time.
/// Events whose window would leave the trace are not looked for. `threads` as everywhere (0 =
/// `BLECHRS_THREADS` or all cores).
pub fn detect(x: &[f32], mf: &MatchedFilter<'_>, threads: usize) -> Result<Vec<Detection>> {
    mf.check(x.len())?;
    if let Some(i) = x.iter().position(|v| !v.is_finite()) {
        return Err(value_err(format!(
            "x has a NaN or infinite value (at sample {i})"
        )));
    }
    let len = mf.filters.ncols();
    if x.len() < len {
        return Ok(Vec::new());
    }
    // t such that the window t - before .. t - before + len lies inside x
    let (lo, hi) = (mf.before, x.len() - len + mf.before + 1);
    let starts: Vec<usize> = (lo..hi).step_by(BLOCK).collect();
    let mut cand: Vec<Detection> = with_threads(threads, || {
        starts
            .par_iter()
            .map(|&t0| block_candidates(x, mf, t0, (t0 + BLOCK).min(hi), lo, hi))
            .collect::<Vec<_>>()
    })
    .into_iter()
    .flatten()
    .collect();
    // best score first; ties: earlier, then lower unit (deterministic)
    cand.sort_by(|p, q| {
        q.score
            .total_cmp(&p.score)
            .then(p.time.cmp(&q.time))
            .then(p.unit.cmp(&q.unit))
    });
    let w = mf.half_width as i64;
    let mut kept_times = BTreeSet::new();
    let mut kept = Vec::new();
    for c in cand {
        if kept_times.range(c.time - w..=c.time + w).next().is_some() {
            continue;
        }
        kept_times.insert(c.time);
        kept.push(c);
    }
    kept.sort_by_key(|c| (c.time, c.unit));
    Ok(kept)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    fn noise(n: usize, seed: u64) -> Vec<f32> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                super::super::lcg(&mut s);
                ((s >> 40) as f32 / (1u64 << 24) as f32) - 0.5
            })
            .collect()
    }

    #[test]
    fn correlation_matches_the_direct_sum() {
        let x = noise(5000, 1);
        let f = Array2::from_shape_fn((2, 7), |(u, j)| (u as f32 + 1.0) * (j as f32 - 3.0));
        let z = correlations(&x, f.view(), 2, 2, 4994);
        for u in 0..2 {
            for t in [2usize, 100, 4993] {
                let want: f32 = (0..7).map(|j| f[[u, j]] * x[t - 2 + j]).sum();
                assert!((z[u][t - 2] - want).abs() < 1e-4 * (1.0 + want.abs()));
            }
        }
    }

    #[test]
    fn finds_planted_templates_once_and_across_blocks() {
        let n = 3 * BLOCK + 123;
        let mut x: Vec<f32> = noise(n, 7).iter().map(|v| v * 0.2).collect();
        let shape = [0.0f32, -0.5, -1.0, -0.5, 0.2, 0.1];
        // blocks start at `before` (2): the last sample of block 0, the first of block 2
        let times = [50usize, BLOCK + 1, BLOCK + 20, 2 * BLOCK + 2, n - 10];
        for &t in &times {
            for (j, s) in shape.iter().enumerate() {
                x[t - 2 + j] += 3.0 * s;
            }
        }
        let norm = shape.iter().map(|s| s * s).sum::<f32>().sqrt();
        let f = Array2::from_shape_fn((1, 6), |(_, j)| shape[j] / norm);
        let mf = MatchedFilter {
            filters: f.view(),
            before: 2,
            thresholds: &[2.0],
            weights: &[1.0],
            biases: &[0.0],
            half_width: 10,
        };
        for threads in [1, 3] {
            let got: Vec<i64> = detect(&x, &mf, threads)
                .unwrap()
                .iter()
                .map(|d| d.time)
                .collect();
            assert_eq!(got, times.iter().map(|&t| t as i64).collect::<Vec<_>>());
        }
    }

    #[test]
    fn bad_arguments_are_errors() {
        let f = Array2::<f32>::zeros((1, 4));
        let x = vec![0.0f32; 100];
        let mk = |before, th: &'static [f64]| MatchedFilter {
            filters: f.view(),
            before,
            thresholds: th,
            weights: &[1.0],
            biases: &[0.0],
            half_width: 1,
        };
        assert!(detect(&x, &mk(4, &[1.0]), 1).is_err());
        assert!(detect(&x, &mk(1, &[1.0, 2.0]), 1).is_err());
        assert!(detect(&[f32::NAN; 10], &mk(1, &[1.0]), 1).is_err());
        assert!(detect(&x[..2], &mk(1, &[1.0]), 1).unwrap().is_empty());
    }
}
