//! Noise level and threshold: noise = median(|x - median(x)|) / 0.6745, threshold = k x noise,
//! over the whole channel or over consecutive windows.
//!
//! Medians are exact (numpy's definition: the mean of the two middle values for an even count)
//! and use a radix pre-selection on the f32 bit pattern, so a window costs two cheap passes
//! instead of a full selection.

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
}

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
    s.hist.resize(1 << 16, 0);
    for v in values() {
        s.hist[(key(v) >> 16) as usize] += 1;
    }
    // Bins holding the two middle ranks, and how many values lie below the lower bin.
    let (mut b_lo, mut below_lo, mut b_hi) = (0usize, 0usize, 0usize);
    let mut cum = 0usize;
    let mut found_lo = false;
    for (b, &c) in s.hist.iter().enumerate() {
        let c = c as usize;
        if !found_lo && cum + c > k_lo {
            b_lo = b;
            below_lo = cum;
            found_lo = true;
        }
        if cum + c > k_hi {
            b_hi = b;
            break;
        }
        cum += c;
    }
    let (lo, hi) = ((b_lo as u32) << 16, ((b_hi as u32) << 16) | 0xffff);
    s.keys.clear();
    s.keys
        .extend(values().map(key).filter(|&k| k >= lo && k <= hi));
    let r_lo = k_lo - below_lo;
    let r_hi = k_hi - below_lo;
    let (_, &mut a, rest) = s.keys.select_nth_unstable(r_lo);
    let a = unkey(a) as f64;
    let b = if r_hi == r_lo {
        a
    } else {
        unkey(*rest.iter().min().expect("upper middle value")) as f64
    };
    (a + b) / 2.0
}

/// (median, median |x - median|) of an f32 slice.
pub fn median_mad(x: &[f32], s: &mut MedianScratch) -> (f64, f64) {
    let m = median_by(|| x.iter().copied(), x.len(), s);
    let mad = median_by(
        || x.iter().map(move |&v| (v as f64 - m).abs() as f32),
        x.len(),
        s,
    );
    (m, mad)
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

/// Noise (median |x - median| / 0.6745) and centre (median) per window.
pub fn noise_per_window(x: &[f32], bounds: &[(usize, usize)]) -> Vec<(f64, f64)> {
    let mut s = MedianScratch::default();
    bounds
        .iter()
        .map(|&(a, b)| {
            let (m, mad) = median_mad(&x[a..b], &mut s);
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
                    state = state
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
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
    fn windows_fold_the_remainder() {
        assert_eq!(window_bounds(10, Some(3)), vec![(0, 3), (3, 6), (6, 10)]);
        assert_eq!(window_bounds(5, Some(3)), vec![(0, 5)]);
        assert_eq!(window_bounds(6, Some(3)), vec![(0, 3), (3, 6)]);
        assert_eq!(window_bounds(7, None), vec![(0, 7)]);
    }
}
