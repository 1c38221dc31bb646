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
        let n = g.live.len();
        let mut z = vec![0.0f64; n * len];
        for (j, &(r, mad, med)) in g.live.iter().enumerate() {
            for (i, v) in row(r).iter().enumerate().take(len) {
                z[i * n + j] = (v - med) / mad;
            }
        }
        out.par_iter_mut()
            .zip(z.par_chunks_mut(n))
            .for_each(|(o, zs)| *o = g.method.combine(zs));
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

/// [`group_reference_rows`] for the median and clipped mean: each sample's normalised values
/// gathered (blocks of samples, in the pool) and combined; same values whatever the pool.
fn robust_rows(method: Method, rows: &[(&[i16], f64, f64)], out: &mut [f32]) {
    const B: usize = 1024;
    let n = rows.len();
    out.par_chunks_mut(B).enumerate().for_each(|(b, o)| {
        let mut z = vec![0.0f64; n * o.len()];
        for (j, &(x, inv, med)) in rows.iter().enumerate() {
            for (i, &v) in x[b * B..b * B + o.len()].iter().enumerate() {
                z[i * n + j] = (v as f64 - med) * inv;
            }
        }
        for (o, zs) in o.iter_mut().zip(z.chunks_mut(n)) {
            *o = method.combine(zs) as f32;
        }
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
}
