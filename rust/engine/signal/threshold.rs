//! Noise level and threshold: noise = median(|x - median(x)|) / 0.6745, threshold = k x noise,
//! over the whole channel or over consecutive windows.
//!
//! Medians are exact (numpy's definition: the mean of the two middle values for an even count)
//! and use a radix pre-selection on the f32 bit pattern, so a window costs two cheap passes
//! instead of a full selection. The statistics may be taken on every `step`-th sample of a window
//! (`x[a..b].step_by(step)`, as numpy's `x[a:b:step]`): a 5 s window at 30 kHz with step 10
//! still has 15 000 samples, whose MAD scatters ~1 % around the whole window's, at a tenth of
//! the cost (blech_clust's CAR statistics already use every 100th sample).

/// MAD of Gaussian noise = 0.6745 SD.
pub const MAD_PER_SD: f64 = 0.6745;

/// Order-preserving map from f32 to u32 (NaN-free input).
#[inline(always)]
fn key(v: f32) -> u32 {
    let b = v.to_bits();
    if b & 0x8000_0000 != 0 {
        !b
    } else {
        b | 0x8000_0000
    }
}

#[inline(always)]
fn unkey(k: u32) -> f32 {
    if k & 0x8000_0000 != 0 {
        f32::from_bits(k & 0x7fff_ffff)
    } else {
        f32::from_bits(!k)
    }
}

/// Reusable buffers for [`median_by`].
#[derive(Default)]
pub struct MedianScratch {
    hist: Vec<u32>,
    keys: Vec<u32>,
    vals: Vec<f32>,
    dist: Vec<f64>,
    prefix: Vec<usize>,
    gather: Vec<f32>,
}

/// Coarse bins of the radix pre-selection: the top 12 bits of the key (sign, exponent and 3
/// mantissa bits, i.e. eighths of a binade), counted in 4 interleaved histograms so runs of
/// similar values (a smooth filtered trace) do not serialise on one counter.
const SHIFT: u32 = 20;
const BINS: usize = 1 << (32 - SHIFT);
const SUB: usize = 4;

/// Exact median of the `n` values yielded by `values()` (called twice), numpy semantics.
pub fn median_by<I: Iterator<Item = f32>>(
    values: impl Fn() -> I,
    n: usize,
    s: &mut MedianScratch,
) -> f64 {
    if n == 0 {
        return f64::NAN;
    }
    let (k_lo, k_hi) = ((n - 1) / 2, n / 2);
    s.hist.clear();
    s.hist.resize(BINS * SUB, 0);
    for (i, v) in values().enumerate() {
        s.hist[((key(v) >> SHIFT) as usize) * SUB + (i & (SUB - 1))] += 1;
    }
    // Bins holding the two middle ranks, and how many values lie below the lower bin.
    let (mut b_lo, mut below_lo, mut b_hi, mut below_hi) = (0usize, 0usize, 0usize, 0usize);
    let mut cum = 0usize;
    let mut found_lo = false;
    for b in 0..BINS {
        let c: usize = s.hist[b * SUB..(b + 1) * SUB]
            .iter()
            .map(|&v| v as usize)
            .sum();
        if !found_lo && cum + c > k_lo {
            b_lo = b;
            below_lo = cum;
            found_lo = true;
        }
        if cum + c > k_hi {
            b_hi = b;
            below_hi = cum + c;
            break;
        }
        cum += c;
    }
    let (lo, hi) = (
        (b_lo as u32) << SHIFT,
        ((b_hi as u32) << SHIFT) | ((1u32 << SHIFT) - 1),
    );
    // Branch-free compaction of the values in those bins.
    let m = below_hi - below_lo;
    s.keys.clear();
    s.keys.resize(m + 1, 0);
    let mut j = 0usize;
    for v in values() {
        let k = key(v);
        s.keys[j.min(m)] = k;
        j += (k >= lo && k <= hi) as usize;
    }
    let keys = &mut s.keys[..m];
    let r_lo = k_lo - below_lo;
    let r_hi = k_hi - below_lo;
    let (_, &mut a, rest) = keys.select_nth_unstable(r_lo);
    let a = unkey(a) as f64;
    let b = if r_hi == r_lo {
        a
    } else {
        unkey(*rest.iter().min().expect("upper middle value")) as f64
    };
    (a + b) / 2.0
}

/// (median, median |x - median|) of an f32 slice, exact (the MAD of the f64 differences).
///
/// Two passes instead of four: one histogram of the values brackets both the median and, using
/// the histogram's prefix sums, the MAD; one more pass keeps only the values that can still
/// matter (those near the median, and those whose distance from it is near the MAD), counts
/// those surely closer than the MAD, and exact selections finish the job.
pub fn median_mad(x: &[f32], s: &mut MedianScratch) -> (f64, f64) {
    let n = x.len();
    if n == 0 {
        return (f64::NAN, f64::NAN);
    }
    if let Some(r) = median_mad_linear(x, s) {
        return r;
    }
    match median_mad_fast(x, s) {
        Some(r) => r,
        None => median_mad_slow(x, s),
    }
}

/// (bin of rank k_lo, bin of rank k_hi, count below the first).
#[inline(always)]
fn ranks_bins(h: &[u32], k_lo: usize, k_hi: usize) -> (usize, usize, usize) {
    let (mut b_lo, mut below_lo) = (usize::MAX, 0usize);
    let mut cum = 0usize;
    for (b, &c) in h.iter().enumerate() {
        let c = c as usize;
        if b_lo == usize::MAX && cum + c > k_lo {
            b_lo = b;
            below_lo = cum;
        }
        if cum + c > k_hi {
            return (b_lo, b, below_lo);
        }
        cum += c;
    }
    (usize::MAX, usize::MAX, 0)
}

/// Regular bins of the linear histogram (plus one underflow and one overflow bin).
const LIN_BINS: usize = 4096;
/// Slack (in bins) for the f32 rounding of the bin index.
const SLACK: f64 = 0.02;
/// Values sampled (evenly) to place the linear histogram.
const LIN_PROBE: usize = 255;

/// [`median_mad`] in two passes over the values: a linear histogram placed from a small sorted
/// probe (bins of ~1/512 MAD around the median) brackets the median and, through its prefix
/// sums, the MAD to a few bins; one more pass keeps the few hundred values in those brackets
/// (and counts those surely below), and exact selections on them finish the job. Every bracket
/// is checked against exact counts, so the result is exact; None when a check fails (the probe
/// misjudged the spread) or n is small.
fn median_mad_linear(x: &[f32], s: &mut MedianScratch) -> Option<(f64, f64)> {
    median_mad_linear_impl(x, s)
}

#[inline(always)]
fn median_mad_linear_impl(x: &[f32], s: &mut MedianScratch) -> Option<(f64, f64)> {
    let (lo, inv) = placement(x)?;
    hist_pass(x, lo, inv, &mut s.hist);
    from_hist(x, lo, inv, s)
}

/// Bins: 0 below lo; 1..=LIN_BINS regular (width 1 / inv); LIN_BINS + 1 above.
const LIN_NB: usize = LIN_BINS + 2;

/// Where the linear histogram goes (lo, 1 / bin width), from a small sorted probe of `x`.
fn placement(x: &[f32]) -> Option<(f32, f32)> {
    let n = x.len();
    if n < 4 * LIN_PROBE {
        return None;
    }
    // Probe: every (n / LIN_PROBE)-th value, sorted.
    let stride = n / LIN_PROBE;
    let mut probe: [f32; LIN_PROBE] = std::array::from_fn(|i| x[i * stride]);
    probe.sort_unstable_by(|a, b| a.total_cmp(b));
    let mid = probe[LIN_PROBE / 2];
    // Quartiles of the probe: the median +- 2 inter-quartile ranges holds both the median
    // and median +- MAD with a wide margin for anything near symmetric.
    let iqr = probe[3 * LIN_PROBE / 4] - probe[LIN_PROBE / 4];
    if !(iqr > 0.0 && iqr.is_finite() && mid.is_finite()) {
        return None;
    }
    let half = 2.0 * iqr;
    let lo = mid - half;
    let inv = LIN_BINS as f32 / (2.0 * half);
    if !(inv.is_finite() && inv > 0.0 && lo.is_finite()) {
        return None;
    }
    Some((lo, inv))
}

/// Monotone in v (max() maps a NaN to 0, so the cast is in range).
#[inline(always)]
fn lin_bin(v: f32, lo: f32, inv: f32) -> usize {
    let top = (LIN_BINS + 1) as f32;
    // SAFETY: max() maps NaN to 0 and the value is clamped to [0, top]: in i32 range.
    unsafe {
        ((v - lo) * inv + 1.0)
            .max(0.0)
            .min(top)
            .to_int_unchecked::<i32>() as usize
    }
}

avx2_dispatch! {
    /// The histogram of `x` over the linear bins into `hist[..LIN_NB]`.
    fn hist_pass(x: &[f32], lo: f32, inv: f32, hist: &mut Vec<u32>) => hist_pass_impl
}

#[inline(always)]
fn hist_pass_impl(x: &[f32], lo: f32, inv: f32, hist: &mut Vec<u32>) {
    let nb = LIN_NB;
    // Two interleaved counters, so runs of one bin do not serialise.
    hist.clear();
    hist.resize(2 * nb, 0);
    let (h0, h1) = hist.split_at_mut(nb);
    let mut it = x.chunks_exact(8);
    for c in &mut it {
        let b: [usize; 8] = std::array::from_fn(|i| lin_bin(c[i], lo, inv));
        debug_assert!(b.iter().all(|&b| b < nb));
        // SAFETY: lin_bin() clamps to [0, LIN_BINS + 1] = [0, nb - 1].
        unsafe {
            for k in 0..4 {
                *h0.get_unchecked_mut(b[2 * k]) += 1;
                *h1.get_unchecked_mut(b[2 * k + 1]) += 1;
            }
        }
    }
    for &v in it.remainder() {
        h0[lin_bin(v, lo, inv)] += 1;
    }
    for b in 0..nb {
        h0[b] += h1[b];
    }
    hist.truncate(nb);
}

avx2_dispatch! {
    /// Median and MAD of `x` from its histogram in `s.hist[..LIN_NB]` (placement lo, inv) and one
    /// more pass (see [`median_mad_linear`]).
    fn from_hist(x: &[f32], lo: f32, inv: f32, s: &mut MedianScratch) -> Option<(f64, f64)>
        => from_hist_impl
}

#[inline(always)]
fn from_hist_impl(x: &[f32], lo: f32, inv: f32, s: &mut MedianScratch) -> Option<(f64, f64)> {
    let n = x.len();
    let nb = LIN_NB;
    if n == 0 || s.hist.len() < nb {
        return None;
    }
    let h = &s.hist[..nb];
    let (k_lo, k_hi) = ((n - 1) / 2, n / 2);
    let (b_lo, b_hi, _) = ranks_bins(h, k_lo, k_hi);
    if b_lo == 0 || b_hi >= nb - 1 {
        return None;
    }
    let pre = &mut s.prefix;
    pre.clear();
    pre.push(0usize);
    let mut acc = 0usize;
    pre.extend(h.iter().map(|&c| {
        acc += c as usize;
        acc
    }));
    // Values in bins a..=b (clamped to the bins that exist).
    let count = |a: i64, b: i64| -> usize {
        let (a, b) = (a.max(0) as usize, b.min(nb as i64 - 1));
        if b < a as i64 {
            0
        } else {
            pre[b as usize + 1] - pre[a]
        }
    };
    // Bin b holds values in [lo + (b - 1) w, lo + b w) up to f32 rounding (~1e-3 bin at the
    // far edge); with SLACK bins of slack on each side for sure. The median m lies in [m0, m1].
    // (A bracket that were still wrong fails the exact checks below: never a wrong result.)
    let (lo64, w) = (lo as f64, 1.0 / inv as f64);
    let (bl, bh) = (b_lo as i64, b_hi as i64);
    let m0 = lo64 + (bl as f64 - 1.0 - SLACK) * w;
    let m1 = lo64 + (bh as f64 + SLACK) * w;
    // MAD bracket in whole bins R: at least k_hi + 1 values surely within R w of any such m
    // (regular bins inside [m1 - R w, m0 + R w]) gives the MAD <= R w; at most k_lo possibly
    // within (bins touching [m0 - R w, m1 + R w]) gives the MAD > R w.
    let surely = |r: i64| count((bh + 2 - r).max(1), (bl - 2 + r).min(LIN_BINS as i64));
    let possibly = |r: i64| count(bl - 1 - r, bh + 1 + r);
    let r_hi = (0..=(LIN_BINS as i64 + 4)).find(|&r| surely(r) > k_hi)?;
    let r_lo = (0..r_hi)
        .take_while(|&r| possibly(r) <= k_lo)
        .last()
        .unwrap_or(-1);
    let (d_lo, d_hi) = (r_lo as f64 * w, r_hi as f64 * w);
    // Pass 2: the values near the median, those whose distance from it may be near the MAD,
    // and counts of those surely below either (f32 bounds rounded outwards: still exact).
    let (a, b) = (f32_down(m0), f32_up(m1));
    let (sbl, sbh) = if r_lo >= 0 {
        (f32_up(m1 - d_lo), f32_down(m0 + d_lo))
    } else {
        (1.0, -1.0)
    };
    let (ol, oh) = (f32_down(m0 - d_hi), f32_up(m1 + d_hi));
    // Room for the kept values, from the histogram with two bins of slack (written
    // branch-free at min(index, room): an overflow means a misjudged bracket, checked below).
    let (rl, rh) = (r_lo.max(0), r_hi);
    let room_m = count(bl - 3, bh + 3);
    let room_c = count(bl - 3 - rh, bh + 3 - rl) + count(bl - 3 + rl, bh + 3 + rh);
    s.vals.clear();
    s.vals.resize(room_m + 1, 0.0);
    s.gather.clear();
    s.gather.resize(room_c + 1, 0.0);
    let (vals, cand) = (&mut s.vals[..], &mut s.gather[..]);
    let (mut jm, mut jc) = (0usize, 0usize);
    let (mut below, mut surely_in) = (0usize, 0usize);
    let mut keep = |v: f32, jm: &mut usize, jc: &mut usize| {
        let inside = (v >= sbl) & (v <= sbh);
        let m_in = (v >= a) & (v <= b);
        let c_in = !inside & (v >= ol) & (v <= oh);
        vals[(*jm).min(room_m)] = v;
        *jm += m_in as usize;
        cand[(*jc).min(room_c)] = v;
        *jc += c_in as usize;
    };
    let mut it = x.chunks_exact(8);
    for c in &mut it {
        let mut any = false;
        for &v in c {
            let inside = (v >= sbl) & (v <= sbh);
            below += (v < a) as usize;
            surely_in += inside as usize;
            any |= ((v >= a) & (v <= b)) | (!inside & (v >= ol) & (v <= oh));
        }
        if any {
            for &v in c {
                keep(v, &mut jm, &mut jc);
            }
        }
    }
    for &v in it.remainder() {
        below += (v < a) as usize;
        surely_in += ((v >= sbl) & (v <= sbh)) as usize;
        keep(v, &mut jm, &mut jc);
    }
    if jm > room_m || jc > room_c {
        return None;
    }
    s.vals.truncate(jm);
    s.gather.truncate(jc);
    // The median: ranks k_lo, k_hi among the values in [a, b].
    if below > k_lo || below + s.vals.len() <= k_hi {
        return None;
    }
    let (r0, r1) = (k_lo - below, k_hi - below);
    let (_, &mut va, rest) = s.vals.select_nth_unstable_by(r0, |p, q| p.total_cmp(q));
    let vb = if r1 == r0 {
        va
    } else {
        rest.iter().copied().fold(f32::INFINITY, f32::min)
    };
    let m = (va as f64 + vb as f64) / 2.0;
    if !(m >= m0 && m <= m1) {
        return None;
    }
    // The MAD: ranks k_lo, k_hi of |v - m| (f64, as numpy on the f64 differences); the values
    // surely within d_lo come first, those outside [ol, oh] are beyond d_hi.
    let d = &mut s.dist;
    d.clear();
    d.extend(s.gather.iter().map(|&v| (v as f64 - m).abs()));
    let le_lo = if r_lo >= 0 {
        d.iter().filter(|&&v| v <= d_lo).count()
    } else {
        0
    };
    let le_hi = d.iter().filter(|&&v| v <= d_hi).count();
    if surely_in + le_lo > k_lo || surely_in + le_hi <= k_hi {
        return None;
    }
    let (t0, t1) = (k_lo - surely_in, k_hi - surely_in);
    let (_, &mut da, rest) = d.select_nth_unstable_by(t0, |p, q| p.total_cmp(q));
    let db = if t1 == t0 {
        da
    } else {
        rest.iter().copied().fold(f64::INFINITY, f64::min)
    };
    Some((m, (da + db) / 2.0))
}

/// Linear-histogram bins shared by consecutive windows of one trace, so that the statistics of
/// their concatenation (`mad_val`) reuse the windows' histograms: one pass over all the values
/// instead of two.
#[derive(Clone, Debug, Default)]
pub struct SharedBins {
    /// (lo, 1 / bin width), placed from the first window.
    place: Option<(f32, f32)>,
    /// Sum of the windows' histograms.
    acc: Vec<u32>,
    /// Every window so far went through `acc` (else the concatenation is done from scratch).
    broken: bool,
}

impl SharedBins {
    /// A window went elsewhere: the concatenation will be done from scratch.
    pub fn disable(&mut self) {
        self.broken = true;
    }
}

/// [`median_mad`] of one window, adding its histogram to `sh` (same result).
pub fn median_mad_shared(x: &[f32], s: &mut MedianScratch, sh: &mut SharedBins) -> (f64, f64) {
    if !sh.broken && sh.place.is_none() {
        sh.place = placement(x);
        sh.acc = vec![0; LIN_NB];
    }
    match sh.place {
        Some((lo, inv)) if !sh.broken => {
            hist_pass(x, lo, inv, &mut s.hist);
            for (a, &h) in sh.acc.iter_mut().zip(&s.hist) {
                *a += h;
            }
            if let Some(r) = from_hist(x, lo, inv, s) {
                return r;
            }
        }
        _ => sh.broken = true,
    }
    median_mad(x, s)
}

/// [`median_mad`] of `x` when `x` followed by `rest` is the concatenation of the windows passed
/// to [`median_mad_shared`] (same result).
pub fn median_mad_windows(
    x: &[f32],
    rest: &[f32],
    s: &mut MedianScratch,
    sh: &SharedBins,
) -> (f64, f64) {
    if let (Some((lo, inv)), false) = (sh.place, sh.broken) {
        let mut h = sh.acc.clone();
        if !rest.is_empty() {
            hist_pass(rest, lo, inv, &mut s.hist);
            for (a, &r) in h.iter_mut().zip(&s.hist) {
                *a -= r;
            }
        }
        debug_assert_eq!(h.iter().map(|&c| c as usize).sum::<usize>(), x.len());
        s.hist = h;
        if let Some(r) = from_hist(x, lo, inv, s) {
            return r;
        }
    }
    median_mad(x, s)
}

/// [`median_mad`] of every `step`-th sample of `x` (from the first); step 1 (or 0) = all.
pub fn median_mad_step(x: &[f32], step: usize, s: &mut MedianScratch) -> (f64, f64) {
    if step <= 1 {
        return median_mad(x, s);
    }
    let mut g = std::mem::take(&mut s.gather);
    g.clear();
    g.extend(x.iter().step_by(step).copied());
    let r = median_mad(&g, s);
    s.gather = g;
    r
}

/// Exact median of every `step`-th sample of `x` (from the first).
pub fn median_step(x: &[f32], step: usize, s: &mut MedianScratch) -> f64 {
    let step = step.max(1);
    median_by(
        || x.iter().step_by(step).copied(),
        x.len().div_ceil(step),
        s,
    )
}

fn median_mad_slow(x: &[f32], s: &mut MedianScratch) -> (f64, f64) {
    let m = median_by(|| x.iter().copied(), x.len(), s);
    let mut d: Vec<f64> = x.iter().map(|&v| (v as f64 - m).abs()).collect();
    (m, median_f64(&mut d))
}

/// numpy median of f64 values (reorders them).
pub fn median_f64(v: &mut [f64]) -> f64 {
    let n = v.len();
    if n == 0 {
        return f64::NAN;
    }
    let (_, &mut a, rest) = v.select_nth_unstable_by((n - 1) / 2, |a, b| a.total_cmp(b));
    if n % 2 == 1 {
        a
    } else {
        let b = rest.iter().copied().fold(f64::INFINITY, f64::min);
        (a + b) / 2.0
    }
}

/// Smallest f32 >= v.
fn f32_up(v: f64) -> f32 {
    let f = v as f32;
    if (f as f64) >= v || !f.is_finite() {
        f
    } else if f == 0.0 {
        f32::from_bits(1)
    } else if f > 0.0 {
        f32::from_bits(f.to_bits() + 1)
    } else {
        f32::from_bits(f.to_bits() - 1)
    }
}

/// Largest f32 <= v.
fn f32_down(v: f64) -> f32 {
    -f32_up(-v)
}

#[inline(always)]
fn bin_of(v: f64) -> usize {
    (key(v as f32) >> SHIFT) as usize
}

fn median_mad_fast(x: &[f32], s: &mut MedianScratch) -> Option<(f64, f64)> {
    s.hist.clear();
    s.hist.resize(BINS * SUB, 0);
    for (i, &v) in x.iter().enumerate() {
        s.hist[((key(v) >> SHIFT) as usize) * SUB + (i & (SUB - 1))] += 1;
    }
    // prefix[b] = values in bins < b
    let mut prefix = std::mem::take(&mut s.prefix);
    prefix.clear();
    prefix.resize(BINS + 1, 0);
    let r = median_mad_select(x, s, &mut prefix);
    s.prefix = prefix;
    r
}

fn median_mad_select(x: &[f32], s: &mut MedianScratch, prefix: &mut [usize]) -> Option<(f64, f64)> {
    median_mad_select_inner(x, s, prefix)
}

#[inline(always)]
fn median_mad_select_inner(
    x: &[f32],
    s: &mut MedianScratch,
    prefix: &mut [usize],
) -> Option<(f64, f64)> {
    let n = x.len();
    let (k_lo, k_hi) = ((n - 1) / 2, n / 2);
    for b in 0..BINS {
        let c: usize = s.hist[b * SUB..(b + 1) * SUB]
            .iter()
            .map(|&v| v as usize)
            .sum();
        prefix[b + 1] = prefix[b] + c;
    }
    let b_lo = prefix.partition_point(|&p| p <= k_lo) - 1;
    let b_hi = prefix.partition_point(|&p| p <= k_hi) - 1;
    let (below_lo, below_hi) = (prefix[b_lo], prefix[b_hi + 1]);
    let (key_lo, key_hi) = (
        (b_lo as u32) << SHIFT,
        ((b_hi as u32) << SHIFT) | ((1u32 << SHIFT) - 1),
    );
    let (m_lo, m_hi) = (unkey(key_lo) as f64, unkey(key_hi) as f64);
    if !(m_lo.is_finite() && m_hi.is_finite()) {
        return None;
    }
    let (d_lo, d_hi) = mad_bracket(prefix, m_lo, m_hi, k_lo, k_hi)?;
    // One pass: the median bin's keys, the candidates for the MAD, and how many are surely below.
    let (sb_lo, sb_hi) = if d_lo >= 0.0 {
        (m_hi - d_lo, m_lo + d_lo)
    } else {
        (1.0, -1.0)
    };
    let (out_lo, out_hi) = (m_lo - d_hi, m_hi + d_hi);
    let nm = below_hi - below_lo;
    s.keys.clear();
    s.keys.resize(nm + 1, 0);
    s.vals.clear();
    s.vals.resize(n + 1, 0.0);
    // f32 bounds rounded so "surely below" only shrinks and "keep" only grows: still exact.
    let (sbl, sbh) = if d_lo >= 0.0 {
        (f32_up(sb_lo), f32_down(sb_hi))
    } else {
        (1.0, -1.0)
    };
    let (ol, oh) = (f32_down(out_lo), f32_up(out_hi));
    let (mut j, mut c, mut surely_below) = (0usize, 0usize, 0usize);
    let keys = &mut s.keys[..nm + 1];
    let vals = &mut s.vals[..n + 1];
    for &v in x {
        // branch-free: these tests are unpredictable
        let k = key(v);
        keys[j.min(nm)] = k;
        j += ((k >= key_lo) & (k <= key_hi)) as usize;
        let below = (v >= sbl) & (v <= sbh);
        let keep = !below & (v >= ol) & (v <= oh);
        vals[c.min(n)] = v;
        c += keep as usize;
        surely_below += below as usize;
    }
    if j != nm {
        return None;
    }
    let r = Ranks {
        k_lo,
        k_hi,
        below_lo,
        surely_below,
        candidates: c,
    };
    select_median_mad(s, nm, r, (d_lo, d_hi))
}

/// The bracket (d_lo, d_hi] of the MAD from the histogram's prefix counts, for a median in
/// [m_lo, m_hi] (ranks k_lo, k_hi): d_lo is -1 when no d is surely low enough.
#[inline(always)]
fn mad_bracket(
    prefix: &[usize],
    m_lo: f64,
    m_hi: f64,
    k_lo: usize,
    k_hi: usize,
) -> Option<(f64, f64)> {
    // Counts of |x - m| <= d for any m in [m_lo, m_hi]: an upper bound (bins touching the
    // interval, one bin of slack) and a lower bound (bins surely inside, one bin of slack).
    let upper = |d: f64| -> usize {
        let a = bin_of(m_lo - d).saturating_sub(1);
        let b = (bin_of(m_hi + d) + 2).min(BINS);
        prefix[b] - prefix[a]
    };
    let lower = |d: f64| -> usize {
        let a = bin_of(m_hi - d) + 2;
        let b = bin_of(m_lo + d).saturating_sub(1);
        if b > a {
            prefix[b] - prefix[a]
        } else {
            0
        }
    };
    // d_hi: a d with at least k_hi + 1 values surely within it (exponential search, bisection).
    let mut hi = 1e-30f64;
    while lower(hi) < k_hi + 1 {
        hi *= 2.0;
        if hi > 1e300 {
            return None;
        }
    }
    let mut lo = 0.0f64;
    for _ in 0..64 {
        let mid = 0.5 * (lo + hi);
        if lower(mid) >= k_hi + 1 {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    let d_hi = hi;
    // d_lo: a d with at most k_lo values possibly within it (-1 when none).
    let d_lo = if upper(0.0) > k_lo {
        -1.0
    } else {
        let (mut lo, mut hi) = (0.0f64, d_hi);
        for _ in 0..64 {
            let mid = 0.5 * (lo + hi);
            if upper(mid) <= k_lo {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        lo
    };
    Some((d_lo, d_hi))
}

/// Ranks of the median and MAD selection: the median's (k_lo, k_hi), the values in bins below
/// the median's, the values surely nearer the median than the MAD, the MAD candidates kept.
struct Ranks {
    k_lo: usize,
    k_hi: usize,
    below_lo: usize,
    surely_below: usize,
    candidates: usize,
}

/// The exact median (from the `nm` keys of its bins in `s.keys`) and MAD (from the candidates in
/// `s.vals`); None when the bracket does not hold the answer (a bug: the caller recomputes).
#[inline(always)]
fn select_median_mad(
    s: &mut MedianScratch,
    nm: usize,
    r: Ranks,
    (d_lo, d_hi): (f64, f64),
) -> Option<(f64, f64)> {
    let Ranks {
        k_lo,
        k_hi,
        below_lo,
        surely_below,
        candidates: c,
    } = r;
    let keys = &mut s.keys[..nm];
    let (r_lo, r_hi) = (k_lo - below_lo, k_hi - below_lo);
    let (_, &mut a, rest) = keys.select_nth_unstable(r_lo);
    let a = unkey(a) as f64;
    let b = if r_hi == r_lo {
        a
    } else {
        unkey(*rest.iter().min()?) as f64
    };
    let m = (a + b) / 2.0;
    if k_lo < surely_below || k_hi - surely_below >= c {
        return None;
    }
    let mut d = std::mem::take(&mut s.dist);
    d.clear();
    d.extend(s.vals[..c].iter().map(|&v| (v as f64 - m).abs()));
    let (t_lo, t_hi) = (k_lo - surely_below, k_hi - surely_below);
    let (_, &mut da, rest) = d.select_nth_unstable_by(t_lo, |p, q| p.total_cmp(q));
    let db = if t_hi == t_lo {
        da
    } else {
        rest.iter().copied().fold(f64::INFINITY, f64::min)
    };
    let mad = (da + db) / 2.0;
    s.dist = d;
    // The bracket guarantees the answer lies in (d_lo, d_hi]; anything else means a bug: recompute.
    if !(mad > d_lo && mad <= d_hi) {
        return None;
    }
    Some((m, mad))
}

/// Noise windows over `n` samples: consecutive windows of `window` samples, the remainder folded
/// into the last one (so no window is a short, noisy estimate); one window when `window` is None
/// or longer than the signal.
pub fn window_bounds(n: usize, window: Option<usize>) -> Vec<(usize, usize)> {
    match window {
        Some(w) if w > 0 && n >= 2 * w => {
            let k = n / w;
            (0..k)
                .map(|i| (i * w, if i + 1 == k { n } else { (i + 1) * w }))
                .collect()
        }
        _ => vec![(0, n)],
    }
}

/// Noise (median |x - median| / 0.6745) and centre (median) per window, from every `step`-th
/// sample of each window (step 1 = exact).
pub fn noise_per_window(x: &[f32], bounds: &[(usize, usize)], step: usize) -> Vec<(f64, f64)> {
    let mut s = MedianScratch::default();
    bounds
        .iter()
        .map(|&(a, b)| {
            let (m, mad) = median_mad_step(&x[a..b], step, &mut s);
            (mad / MAD_PER_SD, m)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive_median(v: &[f32]) -> f64 {
        let mut s: Vec<f32> = v.to_vec();
        s.sort_by(|a, b| a.total_cmp(b));
        let n = s.len();
        (s[(n - 1) / 2] as f64 + s[n / 2] as f64) / 2.0
    }

    #[test]
    fn median_matches_sorting() {
        let mut sc = MedianScratch::default();
        let mut state = 12345u64;
        for n in [1usize, 2, 3, 4, 5, 10, 101, 1000, 4097] {
            let v: Vec<f32> = (0..n)
                .map(|_| {
                    crate::signal::lcg(&mut state);
                    ((state >> 33) as f32 / 2e9 - 1.0) * 50.0
                })
                .collect();
            assert_eq!(
                median_by(|| v.iter().copied(), n, &mut sc),
                naive_median(&v),
                "n={n}"
            );
        }
        let ties = [3.0f32, 3.0, 3.0, -0.0, 0.0, 7.0];
        assert_eq!(median_by(|| ties.iter().copied(), 6, &mut sc), 3.0);
    }

    #[test]
    fn fast_median_mad_equals_slow() {
        let mut sc = MedianScratch::default();
        let mut state = 99u64;
        for n in [1usize, 2, 3, 7, 64, 1000, 10001, 150000] {
            for shape in 0..4 {
                let v: Vec<f32> = (0..n)
                    .map(|i| {
                        crate::signal::lcg(&mut state);
                        let u = (state >> 33) as f32 / 2e9 - 1.0;
                        match shape {
                            0 => u * 30.0,
                            1 => u * 30.0 + 1000.0, // offset
                            2 => (i % 5) as f32,    // heavy ties
                            _ => {
                                if i % 100 == 0 {
                                    1e6
                                } else {
                                    u
                                }
                            } // outliers
                        }
                    })
                    .collect();
                let slow = median_mad_slow(&v, &mut sc);
                let fast = median_mad_fast(&v, &mut sc);
                assert_eq!(fast.unwrap_or(slow), slow, "n={n} shape={shape}");
                assert_eq!(median_mad(&v, &mut sc), slow);
                if n > 100 && shape != 2 {
                    assert!(fast.is_some(), "fast path declined n={n} shape={shape}");
                }
            }
        }
        let flat = vec![3.0f32; 1000];
        assert_eq!(median_mad(&flat, &mut sc), (3.0, 0.0));
    }

    #[test]
    fn linear_median_mad_equals_slow() {
        let mut sc = MedianScratch::default();
        let mut state = 5u64;
        let mut taken = 0;
        for n in [1020usize, 1021, 2000, 15000, 15001, 40000] {
            for shape in 0..6 {
                let v: Vec<f32> = (0..n)
                    .map(|i| {
                        crate::signal::lcg(&mut state);
                        let u = (state >> 33) as f32 / 2e9 - 1.0;
                        let g = u + ((state >> 7) & 0xffff) as f32 / 65536.0 - 0.5;
                        match shape {
                            0 => g * 30.0,
                            1 => g * 30.0 + 1000.0,
                            2 => (i % 5) as f32,
                            3 => (g * 8.0).round() * 0.195, // quantised, many ties
                            4 => {
                                if g > 0.0 {
                                    g * g * 100.0
                                } else {
                                    g
                                }
                            } // skewed
                            _ => {
                                if i % 100 == 0 {
                                    1e6
                                } else {
                                    g
                                }
                            }
                        }
                    })
                    .collect();
                let slow = median_mad_slow(&v, &mut sc);
                if let Some(r) = median_mad_linear(&v, &mut sc) {
                    taken += 1;
                    assert_eq!(r, slow, "n={n} shape={shape}");
                }
                assert_eq!(median_mad(&v, &mut sc), slow, "n={n} shape={shape}");
            }
        }
        assert!(taken >= 20, "linear path taken {taken} times");
        // Noise with spikes, heavy tails and quantisation, many seeds: the two-pass path is
        // taken and exact.
        let mut taken = 0;
        for seed in 0..60u64 {
            let mut st = seed.wrapping_mul(0x9E3779B97F4A7C15) | 1;
            let mut rnd = || {
                crate::signal::lcg(&mut st);
                (st >> 11) as f64 / (1u64 << 53) as f64
            };
            let n = [15000usize, 15001, 180000][seed as usize % 3];
            let v: Vec<f32> = (0..n)
                .map(|i| {
                    let g = (0..4).map(|_| rnd()).sum::<f64>() - 2.0;
                    let x = match seed % 4 {
                        0 => g * 20.0 + if i % 3000 < 20 { -150.0 } else { 0.0 },
                        1 => 5.0 * (g / (rnd() + 0.05)),
                        2 => (g * 40.0 / 0.195).round() * 0.195,
                        _ => g * 3.0 + 77.0,
                    };
                    x as f32
                })
                .collect();
            let slow = median_mad_slow(&v, &mut sc);
            if let Some(r) = median_mad_linear(&v, &mut sc) {
                taken += 1;
                assert_eq!(r, slow, "seed={seed} n={n}");
            }
        }
        assert!(taken >= 55, "two-pass path taken {taken} of 60 times");
    }

    /// Windows through shared bins give their own statistics, and any prefix of their
    /// concatenation gets the statistics of that prefix, whatever the windows look like.
    #[test]
    fn shared_bins_equal_slow() {
        let mut sc = MedianScratch::default();
        let mut st = 17u64;
        let mut rnd = || {
            crate::signal::lcg(&mut st);
            (st >> 11) as f64 / (1u64 << 53) as f64
        };
        for case in 0..4 {
            let mut all: Vec<f32> = Vec::new();
            let mut sh = SharedBins::default();
            for w in 0..9 {
                let len = 15000 + (w % 3);
                // drifting noise level and offset; a flat first window (case 1: no bins to
                // share), spikes (case 2), a window far beyond the shared bins (case 3)
                let (sd, off) = (
                    10.0 * (1.0 + 0.3 * w as f64 * (case % 2) as f64),
                    5.0 * w as f64,
                );
                let x: Vec<f32> = (0..len)
                    .map(|i| {
                        if case == 1 && w == 0 {
                            return 2.0;
                        }
                        let g = (0..4).map(|_| rnd()).sum::<f64>() - 2.0;
                        if case == 3 && w == 4 {
                            return (g * 1e4) as f32;
                        }
                        let spike = if case == 2 && i % 2000 < 30 {
                            -200.0
                        } else {
                            0.0
                        };
                        (g * sd + off + spike) as f32
                    })
                    .collect();
                assert_eq!(
                    median_mad_shared(&x, &mut sc, &mut sh),
                    median_mad_slow(&x, &mut sc)
                );
                all.extend_from_slice(&x);
            }
            for keep in [all.len(), all.len() - 1, all.len() / 2 + 7, 40000] {
                let want = median_mad_slow(&all[..keep], &mut sc);
                let got = median_mad_windows(&all[..keep], &all[keep..], &mut sc, &sh);
                assert_eq!(got, want, "case {case} keep {keep}");
            }
            assert_eq!(sh.broken, case == 1, "case {case}");
        }
    }

    #[test]
    fn strided_statistics_are_those_of_the_subsample() {
        let mut sc = MedianScratch::default();
        let mut state = 7u64;
        let v: Vec<f32> = (0..100_003)
            .map(|_| {
                crate::signal::lcg(&mut state);
                ((state >> 33) as f32 / 2e9 - 1.0) * 40.0
            })
            .collect();
        for step in [1usize, 2, 7, 10] {
            let sub: Vec<f32> = v.iter().step_by(step).copied().collect();
            let exact = median_mad_slow(&sub, &mut sc);
            assert_eq!(median_mad_step(&v, step, &mut sc), exact, "step={step}");
            assert_eq!(median_step(&v, step, &mut sc), exact.0, "step={step}");
        }
    }

    #[test]
    fn windows_fold_the_remainder() {
        assert_eq!(window_bounds(10, Some(3)), vec![(0, 3), (3, 6), (6, 10)]);
        assert_eq!(window_bounds(5, Some(3)), vec![(0, 5)]);
        assert_eq!(window_bounds(6, Some(3)), vec![(0, 3), (3, 6)]);
        assert_eq!(window_bounds(7, None), vec![(0, 7)]);
    }
}
