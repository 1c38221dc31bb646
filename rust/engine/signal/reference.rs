//! Common average reference by groups, as blech_clust HEAD does it (spec 3.2), without its bugs.
//!
//! Each channel is normalised as (x - median) / MAD, both from every 100th sample of the whole
//! recording (MAD unscaled). A group's reference is the mean of its normalised channels, and each
//! channel becomes ((x - median)/MAD - ref) * MAD + median = x - MAD * ref, kept as float (blech
//! truncates to int32). A flat channel (MAD 0) is left out of the mean, reported, and passed
//! through unchanged; a group with fewer than two live channels is not referenced.
//!
//! The mean puts an inverted 1/N copy of every large spike onto every other wire of the group,
//! which a sorter then takes for units (issue 14). Two references leave spikes out: the
//! per-sample median of the normalised channels ([`Method::Median`]), and the mean of those
//! within `clip` (normalised units, i.e. x the channel's MAD) of that median
//! ([`Method::ClippedMean`]; a member far from the group at a sample, as in a spike, is left out
//! of that sample's mean).

use rayon::prelude::*;

use super::threshold::{median_by, MedianScratch};

/// Statistics come from every `STATS_STEP`-th sample (blech_clust's choice).
pub const STATS_STEP: usize = 100;

/// Per-channel (median, MAD) of decimated int16 rows (`rows.len() / m` rows of `m`).
pub fn channel_stats(rows: &[i16], m: usize) -> Vec<(f64, f64)> {
    let mut s = MedianScratch::default();
    rows.chunks(m.max(1))
        .map(|r| {
            let med = median_by(|| r.iter().map(|&v| v as f32), r.len(), &mut s);
            let mad = median_by(
                || r.iter().map(move |&v| (v as f64 - med).abs() as f32),
                r.len(),
                &mut s,
            );
            (med, mad)
        })
        .collect()
}

/// How a group's normalised channels are combined into its reference, sample by sample.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Method {
    /// The mean (blech_clust's CAR).
    Mean,
    /// The median (the mean of the two middle values for an even count).
    Median,
    /// The mean of the values within `clip` of the median (the median if none is).
    ClippedMean(f64),
}

impl Method {
    /// From the parameter's name ("mean", "median", "clipped_mean") and `clip`.
    pub fn parse(name: &str, clip: f64) -> Option<Method> {
        match name {
            "mean" => Some(Method::Mean),
            "median" => Some(Method::Median),
            "clipped_mean" if clip.is_finite() && clip > 0.0 => Some(Method::ClippedMean(clip)),
            _ => None,
        }
    }

    /// The reference of one sample from its members' normalised values `z` (reordered).
    pub fn combine(self, z: &mut [f64]) -> f64 {
        let n = z.len();
        match self {
            Method::Mean => z.iter().sum::<f64>() / n as f64,
            Method::Median | Method::ClippedMean(_) => {
                let h = n / 2;
                let (lo, &mut hi, _) = z.select_nth_unstable_by(h, f64::total_cmp);
                let med = if n % 2 == 1 {
                    hi
                } else {
                    0.5 * (lo.iter().copied().fold(f64::NEG_INFINITY, f64::max) + hi)
                };
                let Method::ClippedMean(clip) = self else {
                    return med;
                };
                let (mut sum, mut k) = (0.0, 0usize);
                for &v in z.iter() {
                    if (v - med).abs() <= clip {
                        sum += v;
                        k += 1;
                    }
                }
                if k == 0 {
                    med
                } else {
                    sum / k as f64
                }
            }
        }
    }
}

/// One referenced group: its members' rows in the block and their MADs.
#[derive(Clone, Debug)]
pub struct Group {
    /// (row in the block, MAD, median) of each live member.
    pub live: Vec<(usize, f64, f64)>,
    /// How the members are combined.
    pub method: Method,
}

/// Build the groups from per-channel group ids (-1 = not referenced) and stats.
/// Returns (groups with >= 2 live members, dead channels among referenced ones).
pub fn make_groups(
    group_of: &[i64],
    stats: &[(f64, f64)],
    method: Method,
) -> (Vec<(i64, Group)>, Vec<usize>) {
    let mut ids: Vec<i64> = Vec::new();
    for &g in group_of {
        if g >= 0 && !ids.contains(&g) {
            ids.push(g);
        }
    }
    let mut dead = Vec::new();
    let mut groups = Vec::new();
    for g in ids {
        let members: Vec<usize> = (0..group_of.len()).filter(|&c| group_of[c] == g).collect();
        let mut live = Vec::new();
        for &c in &members {
            let (med, mad) = stats[c];
            if mad > 0.0 && mad.is_finite() {
                live.push((c, mad, med));
            } else {
                dead.push(c);
            }
        }
        if members.len() >= 2 && live.len() >= 2 {
            groups.push((g, Group { live, method }));
        }
    }
    dead.sort_unstable();
    (groups, dead)
}

/// The group's reference for samples of a block: the members' (x - median) / MAD combined by the
/// group's method. `row(r)` gives block row `r` as f64 values.
pub fn group_reference(g: &Group, len: usize, row: impl Fn(usize) -> Vec<f64>, out: &mut Vec<f64>) {
    out.clear();
    out.resize(len, 0.0);
    if g.method != Method::Mean {
        let rows: Vec<(Vec<f64>, f64, f64)> = g
            .live
            .iter()
            .map(|&(r, mad, med)| (row(r), 1.0 / mad, med))
            .collect();
        let net = Network::new(rows.len());
        out.par_chunks_mut(NET_BLOCK)
            .enumerate()
            .for_each(|(b, o)| {
                let mut z = net.buffer(o.len());
                for (j, (x, inv, med)) in rows.iter().enumerate() {
                    for (d, &v) in z[j * o.len()..(j + 1) * o.len()]
                        .iter_mut()
                        .zip(&x[b * NET_BLOCK..])
                    {
                        *d = ((v - med) * inv) as f32;
                    }
                }
                let mut r = vec![0.0f32; o.len()];
                net.combine(g.method, &mut z, &mut r);
                for (o, r) in o.iter_mut().zip(&r) {
                    *o = *r as f64;
                }
            });
        return;
    }
    for &(r, mad, med) in &g.live {
        let x = row(r);
        let inv = 1.0 / mad;
        for (o, v) in out.iter_mut().zip(x.iter()) {
            *o += (v - med) * inv;
        }
    }
    let k = 1.0 / g.live.len() as f64;
    for o in out.iter_mut() {
        *o *= k;
    }
}

/// [`group_reference`] over int16 rows, row `r` given by `row(r)` (e.g. borrowed from the
/// source), stored as float32 (summed in float64: only the stored value is rounded, relative
/// 6e-8). Blocks of samples so the sum stays in L1, shared out over the current rayon pool; the
/// same additions in the same order per sample whatever the pool.
pub fn group_reference_rows<'a>(
    g: &Group,
    row: impl Fn(usize) -> &'a [i16],
    len: usize,
    out: &mut Vec<f32>,
) {
    const B: usize = 2048;
    out.clear();
    out.resize(len, 0.0);
    let k = 1.0 / g.live.len() as f64;
    let rows: Vec<(&[i16], f64, f64)> = g
        .live
        .iter()
        .map(|&(r, mad, med)| (row(r), 1.0 / mad, med))
        .collect();
    if g.method != Method::Mean {
        return robust_rows(g.method, &rows, out);
    }
    out.par_chunks_mut(B).enumerate().for_each(|(b, o)| {
        let mut acc = [0.0f64; B];
        let acc = &mut acc[..o.len()];
        for &(x, inv, med) in &rows {
            for (a, &v) in acc.iter_mut().zip(&x[b * B..]) {
                *a += (v as f64 - med) * inv;
            }
        }
        for (o, a) in o.iter_mut().zip(acc.iter()) {
            *o = (a * k) as f32;
        }
    });
}

/// Samples per block of the sorting network (its rows stay in L1/L2).
const NET_BLOCK: usize = 256;

/// Batcher's odd-even merge sort network over a power-of-two number of rows (the members, then
/// +inf rows), applied to blocks of samples at once: each compare-exchange is a min and a max of
/// two rows, which the compiler vectorises (the per-sample sort of a median with branches cost
/// 6x the mean CAR; this ~1.5x).
struct Network {
    n: usize,
    rows: usize,
    pairs: Vec<(usize, usize)>,
}

impl Network {
    fn new(n: usize) -> Network {
        let rows = n.next_power_of_two().max(2);
        let mut pairs = Vec::new();
        let mut p = 1;
        while p < rows {
            let mut k = p;
            while k >= 1 {
                let mut j = k % p;
                while j + k < rows {
                    for i in 0..k.min(rows - j - k) {
                        if (i + j) / (2 * p) == (i + j + k) / (2 * p) {
                            pairs.push((i + j, i + j + k));
                        }
                    }
                    j += 2 * k;
                }
                k /= 2;
            }
            p *= 2;
        }
        // comparators that only touch padding rows (+inf, already in order) do nothing
        pairs.retain(|&(a, _)| a < n);
        Network { n, rows, pairs }
    }

    /// A `rows` x `len` buffer, the padding rows +inf (the caller fills the first `n`).
    fn buffer(&self, len: usize) -> Vec<f32> {
        let mut z = vec![f32::INFINITY; self.rows * len];
        z[..self.n * len].fill(0.0);
        z
    }

    /// Sort each sample's column of `z` (`rows` x `len`) and write the method's reference.
    fn combine(&self, method: Method, z: &mut [f32], out: &mut [f32]) {
        let len = out.len();
        for &(a, b) in &self.pairs {
            let (lo, hi) = z.split_at_mut(b * len);
            compare_exchange(&mut lo[a * len..(a + 1) * len], &mut hi[..len]);
        }
        let n = self.n;
        let row = |k: usize| &z[k * len..(k + 1) * len];
        if n % 2 == 1 {
            out.copy_from_slice(row(n / 2));
        } else {
            for ((o, a), b) in out.iter_mut().zip(row(n / 2 - 1)).zip(row(n / 2)) {
                *o = 0.5 * (a + b);
            }
        }
        let Method::ClippedMean(clip) = method else {
            return;
        };
        let clip = clip as f32;
        let mut sum = vec![0.0f32; len];
        let mut cnt = vec![0.0f32; len];
        for k in 0..n {
            for (((s, c), &v), &m) in sum
                .iter_mut()
                .zip(cnt.iter_mut())
                .zip(row(k))
                .zip(out.iter())
            {
                let keep = (v - m).abs() <= clip;
                *s += if keep { v } else { 0.0 };
                *c += if keep { 1.0 } else { 0.0 };
            }
        }
        for ((o, s), c) in out.iter_mut().zip(&sum).zip(&cnt) {
            if *c > 0.0 {
                *o = s / c;
            }
        }
    }
}

/// Row `x` takes the smaller, `y` the larger of each pair of values (8 at a time, so the
/// compiler emits vector min/max).
#[inline]
fn compare_exchange(x: &mut [f32], y: &mut [f32]) {
    let mut xc = x.chunks_exact_mut(8);
    let mut yc = y.chunks_exact_mut(8);
    for (a, b) in (&mut xc).zip(&mut yc) {
        let a: &mut [f32; 8] = a.try_into().expect("8");
        let b: &mut [f32; 8] = b.try_into().expect("8");
        for k in 0..8 {
            let (p, q) = (a[k], b[k]);
            a[k] = p.min(q);
            b[k] = p.max(q);
        }
    }
    for (a, b) in xc.into_remainder().iter_mut().zip(yc.into_remainder()) {
        let (p, q) = (*a, *b);
        *a = p.min(q);
        *b = p.max(q);
    }
}

/// [`group_reference_rows`] for the median and clipped mean: blocks of samples (in the pool),
/// each member's normalised values a row of a sorting network; same values whatever the pool.
fn robust_rows(method: Method, rows: &[(&[i16], f64, f64)], out: &mut [f32]) {
    let net = Network::new(rows.len());
    out.par_chunks_mut(NET_BLOCK)
        .enumerate()
        .for_each(|(b, o)| {
            let len = o.len();
            let mut z = net.buffer(len);
            for (j, &(x, inv, med)) in rows.iter().enumerate() {
                for (d, &v) in z[j * len..(j + 1) * len]
                    .iter_mut()
                    .zip(&x[b * NET_BLOCK..])
                {
                    *d = ((v as f64 - med) * inv) as f32;
                }
            }
            net.combine(method, &mut z, o);
        });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flat_channel_is_dead_and_skipped() {
        let m = 50;
        let mut rows = vec![0i16; 3 * m];
        for i in 0..m {
            rows[i] = (i % 7) as i16;
            rows[m + i] = (i % 5) as i16 * 2;
        }
        let st = channel_stats(&rows, m);
        assert_eq!(st[2], (0.0, 0.0));
        let (groups, dead) = make_groups(&[0, 0, 0], &st, Method::Mean);
        assert_eq!(dead, vec![2]);
        assert_eq!(groups.len(), 1);
        assert_eq!(groups[0].1.live.len(), 2);
        let (groups, _) = make_groups(&[0, 1, 0], &st, Method::Mean);
        assert!(groups.is_empty());
    }

    #[test]
    fn robust_methods_ignore_one_outlier() {
        let mut z = [0.1, -0.2, 50.0, 0.3];
        assert!((Method::Median.combine(&mut z.clone()) - 0.2).abs() < 1e-12);
        assert!((Method::ClippedMean(3.0).combine(&mut z) - (0.1 - 0.2 + 0.3) / 3.0).abs() < 1e-12);
        let mut odd = [5.0, -1.0, 2.0];
        assert_eq!(Method::Median.combine(&mut odd), 2.0);
        assert_eq!(Method::parse("clipped_mean", 0.0), None);
    }

    #[test]
    fn network_sorts_every_size() {
        for n in 1..=70 {
            let net = Network::new(n);
            let len = 5;
            let mut z = net.buffer(len);
            let mut x = 12345u64;
            let mut cols = vec![Vec::new(); len];
            for j in 0..n {
                for (i, col) in cols.iter_mut().enumerate() {
                    x = x
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    let v = ((x >> 33) % 1000) as f32 - 500.0;
                    z[j * len + i] = v;
                    col.push(v as f64);
                }
            }
            for m in [Method::Median, Method::ClippedMean(100.0)] {
                let mut zz = z.clone();
                let mut out = vec![0.0f32; len];
                net.combine(m, &mut zz, &mut out);
                for (i, col) in cols.iter().enumerate() {
                    let want = m.combine(&mut col.clone());
                    assert!((out[i] as f64 - want).abs() < 1e-3, "n={n} {m:?}");
                }
            }
        }
    }
}
