//! Zero-phase Butterworth band-pass, designed and applied exactly as scipy does it.
//!
//! Design follows `scipy.signal.butter(order, [low, high], 'bandpass', fs=fs)`: analog prototype
//! poles, pre-warping, low-pass -> band-pass transform, bilinear transform, then the transfer
//! function (b, a). Filtering follows `scipy.signal.filtfilt(b, a, x)`: odd extension of
//! `3 * max(len(a), len(b))` samples at each end, `lfilter_zi` initial conditions scaled by the
//! first sample of each pass, forward then backward direct-form-II-transposed passes, all in f64.
//! Using the same transfer function (not second-order sections) keeps the result equal to
//! scipy's to rounding; at order 2 (a 4th-order band-pass) it is well conditioned.

use super::sos32::{self, Sos32, LANES};
use crate::error::{EngineError, Result};

/// Minimal complex number for the filter design (a dependency for ten lines is not worth it).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct C64 {
    pub re: f64,
    pub im: f64,
}

impl C64 {
    pub const fn new(re: f64, im: f64) -> Self {
        C64 { re, im }
    }
    fn add(self, o: C64) -> C64 {
        C64::new(self.re + o.re, self.im + o.im)
    }
    fn sub(self, o: C64) -> C64 {
        C64::new(self.re - o.re, self.im - o.im)
    }
    fn mul(self, o: C64) -> C64 {
        C64::new(
            self.re * o.re - self.im * o.im,
            self.re * o.im + self.im * o.re,
        )
    }
    fn scale(self, s: f64) -> C64 {
        C64::new(self.re * s, self.im * s)
    }
    fn div(self, o: C64) -> C64 {
        let d = o.re * o.re + o.im * o.im;
        C64::new(
            (self.re * o.re + self.im * o.im) / d,
            (self.im * o.re - self.re * o.im) / d,
        )
    }
    /// Principal square root, as numpy's.
    fn sqrt(self) -> C64 {
        let r = (self.re * self.re + self.im * self.im).sqrt();
        if r == 0.0 {
            return C64::new(0.0, 0.0);
        }
        let re = ((r + self.re) / 2.0).sqrt();
        let im = ((r - self.re) / 2.0).sqrt();
        C64::new(re, if self.im < 0.0 { -im } else { im })
    }
    pub fn abs(self) -> f64 {
        self.re.hypot(self.im)
    }
}

/// Coefficients of `prod (z - root)` (numpy.poly), highest power first.
fn poly(roots: &[C64]) -> Vec<C64> {
    let mut c = vec![C64::new(1.0, 0.0)];
    for &r in roots {
        let mut next = vec![C64::new(0.0, 0.0); c.len() + 1];
        for (i, &ci) in c.iter().enumerate() {
            next[i] = next[i].add(ci);
            next[i + 1] = next[i + 1].sub(ci.mul(r));
        }
        c = next;
    }
    c
}

/// A designed IIR filter: transfer function plus its z-plane poles (for the settling length).
#[derive(Clone, Debug)]
pub struct Butter {
    pub b: Vec<f64>,
    pub a: Vec<f64>,
    pub poles: Vec<C64>,
}

/// `scipy.signal.butter(order, [low, high], btype='bandpass', fs=fs)`.
pub fn butter_bandpass(order: usize, low: f64, high: f64, fs: f64) -> Result<Butter> {
    if order == 0 || order > 12 {
        return Err(EngineError::Value(format!(
            "filter order must be 1..12, not {order}"
        )));
    }
    if !(fs.is_finite() && fs > 0.0) {
        return Err(EngineError::Value(format!(
            "sampling rate must be a positive number, not {fs}"
        )));
    }
    let nyq = fs / 2.0;
    if !(low.is_finite() && high.is_finite() && 0.0 < low && low < high && high < nyq) {
        return Err(EngineError::Value(format!(
            "band {low}-{high} Hz must satisfy 0 < low < high < Nyquist ({nyq} Hz at fs = {fs} Hz)"
        )));
    }
    let n = order;
    // Analog prototype (buttap): p = -exp(1j*pi*m/(2N)), m = -N+1, -N+3, ..., N-1.
    let proto: Vec<C64> = (0..n)
        .map(|i| {
            let m = -(n as f64) + 1.0 + 2.0 * i as f64;
            let th = std::f64::consts::PI * m / (2.0 * n as f64);
            C64::new(-th.cos(), -th.sin())
        })
        .collect();
    // Pre-warp with fs normalised to 2 (as iirfilter does when fs is given).
    let fs2 = 2.0;
    let warp = |f: f64| 2.0 * fs2 * (std::f64::consts::PI * (2.0 * f / fs) / fs2).tan();
    let (w1, w2) = (warp(low), warp(high));
    let bw = w2 - w1;
    let wo2 = w1 * w2;
    // lp2bp_zpk: no finite zeros in the prototype, so N zeros at the origin.
    let mut p_bp = Vec::with_capacity(2 * n);
    let mut p_minus = Vec::with_capacity(n);
    for &p in &proto {
        let pl = p.scale(bw / 2.0);
        let s = pl.mul(pl).sub(C64::new(wo2, 0.0)).sqrt();
        p_bp.push(pl.add(s));
        p_minus.push(pl.sub(s));
    }
    p_bp.extend(p_minus);
    let z_bp = vec![C64::new(0.0, 0.0); n];
    let k_bp = bw.powi(n as i32);
    // bilinear_zpk with fs = 2: z -> (4 + s) / (4 - s).
    let f2 = C64::new(2.0 * fs2, 0.0);
    let z_z: Vec<C64> = z_bp
        .iter()
        .map(|&z| f2.add(z).div(f2.sub(z)))
        .chain((0..n).map(|_| C64::new(-1.0, 0.0)))
        .collect();
    let p_z: Vec<C64> = p_bp.iter().map(|&p| f2.add(p).div(f2.sub(p))).collect();
    let num = z_bp
        .iter()
        .fold(C64::new(1.0, 0.0), |acc, &z| acc.mul(f2.sub(z)));
    let den = p_bp
        .iter()
        .fold(C64::new(1.0, 0.0), |acc, &p| acc.mul(f2.sub(p)));
    let k_z = k_bp * num.div(den).re;
    let b: Vec<f64> = poly(&z_z).iter().map(|c| c.re * k_z).collect();
    let a: Vec<f64> = poly(&p_z).iter().map(|c| c.re).collect();
    Ok(Butter { b, a, poles: p_z })
}

/// Solve a small dense system in place (Gaussian elimination, partial pivoting).
fn solve(mut m: Vec<Vec<f64>>, mut v: Vec<f64>) -> Vec<f64> {
    let n = v.len();
    for col in 0..n {
        let piv = (col..n)
            .max_by(|&i, &j| m[i][col].abs().total_cmp(&m[j][col].abs()))
            .unwrap_or(col);
        m.swap(col, piv);
        v.swap(col, piv);
        let d = m[col][col];
        if d == 0.0 {
            continue;
        }
        for r in col + 1..n {
            let f = m[r][col] / d;
            if f != 0.0 {
                for c in col..n {
                    m[r][c] -= f * m[col][c];
                }
                v[r] -= f * v[col];
            }
        }
    }
    let mut x = vec![0.0; n];
    for r in (0..n).rev() {
        let s: f64 = (r + 1..n).map(|c| m[r][c] * x[c]).sum();
        x[r] = if m[r][r] == 0.0 {
            0.0
        } else {
            (v[r] - s) / m[r][r]
        };
    }
    x
}

/// `scipy.signal.lfilter_zi(b, a)`: the steady-state of the filter for a unit step.
pub fn lfilter_zi(b: &[f64], a: &[f64]) -> Vec<f64> {
    let n = a.len().max(b.len());
    let mut aa = a.to_vec();
    aa.resize(n, 0.0);
    let mut bb = b.to_vec();
    bb.resize(n, 0.0);
    let a0 = aa[0];
    for v in aa.iter_mut() {
        *v /= a0;
    }
    for v in bb.iter_mut() {
        *v /= a0;
    }
    let m = n - 1;
    // I - companion(a).T: companion.T has -a[1:] in column 0 and ones on the superdiagonal.
    let mut mat = vec![vec![0.0; m]; m];
    for i in 0..m {
        mat[i][i] = 1.0;
        mat[i][0] += aa[i + 1];
        if i + 1 < m {
            mat[i][i + 1] -= 1.0;
        }
    }
    let rhs: Vec<f64> = (0..m).map(|i| bb[i + 1] - aa[i + 1] * bb[0]).collect();
    solve(mat, rhs)
}

/// Anything the filter accepts as input: converted to f64 (and scaled) on the way in.
pub trait Sample: Copy + Send + Sync + 'static {
    fn to_f64(self) -> f64;
    /// `(a - b) * g` rounded to f32, the difference taken exactly (f64 for floats).
    #[inline(always)]
    fn diff_scaled(a: Self, b: Self, g: f64, _g32: f32) -> f32 {
        ((a.to_f64() - b.to_f64()) * g) as f32
    }
}
impl Sample for i16 {
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self as f64
    }
    /// The int16 difference is exact in f32: one rounding, all in f32 lanes.
    #[inline(always)]
    fn diff_scaled(a: Self, b: Self, _g: f64, g32: f32) -> f32 {
        (a as i32 - b as i32) as f32 * g32
    }
}
impl Sample for f32 {
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self as f64
    }
}
impl Sample for f64 {
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self
    }
}

/// One multi-row forward-backward call: equally long rows (channels) of a block, the scale
/// applied on the way in, whether the block starts / ends the recording (odd padding there) and
/// the samples `[keep.0, keep.0 + keep.1)` of each row to output. One value, so the row filters
/// and their per-CPU variants pass it along instead of six arguments each.
#[derive(Clone, Copy)]
pub struct RowBlock<'a, T> {
    pub rows: &'a [&'a [T]],
    pub scale: f64,
    pub left_edge: bool,
    pub right_edge: bool,
    pub keep: (usize, usize),
}

/// Samples of odd extension before and after `n` samples: filtfilt's `padlen` (at most `n - 1`)
/// at a true recording edge, none inside the recording.
pub fn edge_pads(n: usize, padlen: usize, left_edge: bool, right_edge: bool) -> (usize, usize) {
    let pad = |edge: bool| if edge { padlen.min(n - 1) } else { 0 };
    (pad(left_edge), pad(right_edge))
}

/// A band-pass ready to run: normalised coefficients, steady-state vector and padding length.
#[derive(Clone, Debug)]
pub struct BandPass {
    pub b: Vec<f64>,
    pub a: Vec<f64>,
    zi: Vec<f64>,
    /// `3 * max(len(a), len(b))`, scipy's default `padlen`.
    pub padlen: usize,
    /// Samples after which a start-up transient has decayed below ~1e-12 of its size: the overlap
    /// a streamed chunk needs on each side to match whole-signal filtering.
    pub settle: usize,
    /// The float32 second-order-section form of the default order-2 band-pass (see `sos32`).
    pub sos: Option<Sos32>,
}

impl BandPass {
    pub fn new(order: usize, low: f64, high: f64, fs: f64) -> Result<Self> {
        let d = butter_bandpass(order, low, high, fs)?;
        let a0 = d.a[0];
        let b: Vec<f64> = d.b.iter().map(|v| v / a0).collect();
        let a: Vec<f64> = d.a.iter().map(|v| v / a0).collect();
        let zi = lfilter_zi(&b, &a);
        let padlen = 3 * a.len().max(b.len());
        let r = d
            .poles
            .iter()
            .map(|p| p.abs())
            .fold(0.0f64, f64::max)
            .min(1.0 - 1e-9);
        // r^n < 1e-13, doubled for the polynomial growth of near-repeated poles, plus the padding.
        let settle = (2.0 * (1e-13f64).ln() / r.ln()).ceil() as usize + padlen + 64;
        let sos = if a.len() == 5 && bandpass_zeros(&b) {
            Sos32::from_poles(b[0], &d.poles)
        } else {
            None
        };
        Ok(BandPass {
            b,
            a,
            zi,
            padlen,
            settle,
            sos,
        })
    }

    /// Filter a whole signal as `scipy.signal.filtfilt(b, a, x * scale)`, writing f64 into `out`.
    /// Errors (like scipy) when the signal is not longer than the padding.
    pub fn filtfilt<T: Sample>(
        &self,
        x: &[T],
        scale: f64,
        out: &mut [f64],
        work: &mut Vec<f64>,
    ) -> Result<()> {
        if x.len() <= self.padlen {
            return Err(EngineError::Value(format!(
                "signal of {} samples is too short to filter: it must be longer than the padding of {} samples",
                x.len(),
                self.padlen
            )));
        }
        self.filtfilt_block(x, scale, true, true, out, work);
        Ok(())
    }

    /// Forward-backward filter one block. At a true recording edge (`left_edge` / `right_edge`)
    /// the block is odd-extended exactly as filtfilt does; elsewhere the block is one chunk of a
    /// longer signal, the pass starts from the steady state of its first sample and the caller
    /// discards `settle` samples on that side. `x.len()` must exceed `padlen` at a padded edge.
    pub fn filtfilt_block<T: Sample>(
        &self,
        x: &[T],
        scale: f64,
        left_edge: bool,
        right_edge: bool,
        out: &mut [f64],
        work: &mut Vec<f64>,
    ) {
        let n = x.len();
        debug_assert_eq!(out.len(), n);
        if n == 0 {
            return;
        }
        let (lp, rp) = edge_pads(n, self.padlen, left_edge, right_edge);
        work.clear();
        work.reserve(n + lp + rp);
        let x0 = x[0].to_f64() * scale;
        for i in (1..=lp).rev() {
            work.push(2.0 * x0 - x[i].to_f64() * scale);
        }
        work.extend(x.iter().map(|v| v.to_f64() * scale));
        let xn = x[n - 1].to_f64() * scale;
        for i in 1..=rp {
            work.push(2.0 * xn - x[n - 1 - i].to_f64() * scale);
        }
        self.run_pass(work, false);
        self.run_pass(work, true);
        out.copy_from_slice(&work[lp..lp + n]);
    }

    /// Forward-backward filter up to `L` equally long rows at once, interleaved so the recursive
    /// dependency of one channel hides behind the others (the scalar filter is latency-bound;
    /// this is throughput-bound and uses the SIMD lanes). Same arithmetic per channel as
    /// [`BandPass::filtfilt_block`]. Row `r`'s samples `[keep.0, keep.0 + keep.1)` of the block
    /// go to `outs[r]` as f32.
    pub fn filtfilt_rows<T: Sample>(&self, job: RowBlock<'_, T>, outs: &mut [&mut [f32]]) {
        let rows = job.rows;
        if let Some(s) = &self.sos {
            for (r, o) in rows.chunks(LANES).zip(outs.chunks_mut(LANES)) {
                sos32::filtfilt_rows(s, RowBlock { rows: r, ..job }, o);
            }
            return;
        }
        let mut i = 0;
        while i < rows.len() {
            let left = rows.len() - i;
            let take = if left >= 8 {
                8
            } else if left > 4 {
                left
            } else if left >= 2 {
                left.min(4)
            } else {
                1
            };
            let (r, o) = (
                RowBlock {
                    rows: &rows[i..i + take],
                    ..job
                },
                &mut outs[i..i + take],
            );
            match take {
                1 => self.rows_lanes::<T, 1>(r, o),
                2..=4 => self.rows_lanes::<T, 4>(r, o),
                _ => self.rows_lanes::<T, 8>(r, o),
            }
            i += take;
        }
    }

    fn rows_lanes<T: Sample, const L: usize>(&self, job: RowBlock<'_, T>, outs: &mut [&mut [f32]]) {
        let (rows, keep) = (job.rows, job.keep);
        if rows[0].is_empty() {
            return;
        }
        if !matches!(self.a.len(), 3 | 5 | 7 | 9) || self.b.len() != self.a.len() {
            // High orders: one channel at a time.
            let mut tmp = vec![0.0; rows[0].len()];
            let mut work = Vec::new();
            for (x, o) in rows.iter().zip(outs.iter_mut()) {
                self.filtfilt_block(
                    x,
                    job.scale,
                    job.left_edge,
                    job.right_edge,
                    &mut tmp,
                    &mut work,
                );
                for (d, v) in o[..keep.1].iter_mut().zip(&tmp[keep.0..keep.0 + keep.1]) {
                    *d = *v as f32;
                }
            }
            return;
        }
        WORK.with(|w| {
            let mut w = w.borrow_mut();
            let m = rows[0].len() + 2 * self.padlen;
            if w.len() < m * L {
                w.resize(m * L, 0.0);
            }
            // SAFETY: [f64; L] has f64's alignment and size L * 8; the Vec holds >= m * L f64.
            let buf: &mut [[f64; L]] =
                unsafe { std::slice::from_raw_parts_mut(w.as_mut_ptr() as *mut [f64; L], m) };
            #[cfg(target_arch = "x86_64")]
            {
                if crate::cpu::avx2_fma() {
                    // SAFETY: the CPU supports AVX2 and FMA (checked just above).
                    unsafe { rows_lanes_avx2_fma::<T, L>(self, job, outs, buf) };
                    return;
                }
                if crate::cpu::avx2() {
                    // SAFETY: the CPU supports AVX2 (checked just above).
                    unsafe { rows_lanes_avx2::<T, L>(self, job, outs, buf) };
                    return;
                }
            }
            rows_lanes_impl::<T, L, false>(self, job, outs, buf)
        })
    }

    /// One direct-form-II-transposed pass in place (forward, or backward when `reverse`), starting
    /// from `zi * first sample` as filtfilt does.
    fn run_pass(&self, buf: &mut [f64], reverse: bool) {
        match self.a.len() {
            3 => pass::<3>(&self.b, &self.a, &self.zi, buf, reverse),
            5 => pass::<5>(&self.b, &self.a, &self.zi, buf, reverse),
            7 => pass::<7>(&self.b, &self.a, &self.zi, buf, reverse),
            9 => pass::<9>(&self.b, &self.a, &self.zi, buf, reverse),
            _ => pass_dyn(&self.b, &self.a, &self.zi, buf, reverse),
        }
    }
}

thread_local! {
    /// Per-thread interleaved work buffer of the multi-channel filter (reused: no page faults).
    static WORK: std::cell::RefCell<Vec<f64>> = const { std::cell::RefCell::new(Vec::new()) };
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn rows_lanes_avx2<T: Sample, const L: usize>(
    f: &BandPass,
    job: RowBlock<'_, T>,
    outs: &mut [&mut [f32]],
    buf: &mut [[f64; L]],
) {
    rows_lanes_impl::<T, L, false>(f, job, outs, buf)
}

/// As [`rows_lanes_avx2`] with fused multiply-adds (one rounding instead of two: as accurate or
/// more, and half the instructions on the recursive path).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn rows_lanes_avx2_fma<T: Sample, const L: usize>(
    f: &BandPass,
    job: RowBlock<'_, T>,
    outs: &mut [&mut [f32]],
    buf: &mut [[f64; L]],
) {
    rows_lanes_impl::<T, L, true>(f, job, outs, buf)
}

/// Tile size (samples) of the fused passes: a tile of 8 lanes stays in L1.
const TILE: usize = 256;

/// Fill, forward-filter tile by tile (while each tile is in cache), then backward-filter tile by
/// tile from the end and write the kept samples out: the block buffer is written once and read once.
#[inline(always)]
fn rows_lanes_impl<T: Sample, const L: usize, const FMA: bool>(
    f: &BandPass,
    job: RowBlock<'_, T>,
    outs: &mut [&mut [f32]],
    buf: &mut [[f64; L]],
) {
    let (rows, scale, keep) = (job.rows, job.scale, job.keep);
    let n = rows[0].len();
    let (lp, rp) = edge_pads(n, f.padlen, job.left_edge, job.right_edge);
    let m = n + lp + rp;
    let buf = &mut buf[..m];
    // Odd-extension pads (a few samples).
    for (l, x) in rows.iter().enumerate() {
        let x0 = x[0].to_f64() * scale;
        for i in 1..=lp {
            buf[lp - i][l] = 2.0 * x0 - x[i].to_f64() * scale;
        }
        let xn = x[n - 1].to_f64() * scale;
        for i in 1..=rp {
            buf[lp + n - 1 + i][l] = 2.0 * xn - x[n - 1 - i].to_f64() * scale;
        }
    }
    let mut z = [[0.0f64; L]; 8];
    let nz = f.a.len() - 1;
    let mut p0 = 0;
    while p0 < m {
        let p1 = (p0 + TILE).min(m);
        // body samples of this tile
        let (b0, b1) = (p0.max(lp), p1.min(lp + n));
        if b0 < b1 && rows.len() == L {
            // sample-major: one full vector store per sample instead of L strided lane stores
            let xs: [&[T]; L] = std::array::from_fn(|l| &rows[l][b0 - lp..b1 - lp]);
            for (i, w) in buf[b0..b1].iter_mut().enumerate() {
                for l in 0..L {
                    w[l] = xs[l][i].to_f64() * scale;
                }
            }
        } else if b0 < b1 {
            for (l, x) in rows.iter().enumerate() {
                for (w, v) in buf[b0..b1].iter_mut().zip(x[b0 - lp..b1 - lp].iter()) {
                    w[l] = v.to_f64() * scale;
                }
            }
        }
        if p0 == 0 {
            let first = buf[0];
            for i in 0..nz {
                for l in 0..L {
                    z[i][l] = f.zi[i] * first[l];
                }
            }
        }
        tile_pass::<L, FMA>(&f.b, &f.a, &mut z, &mut buf[p0..p1], false);
        p0 = p1;
    }
    let last = buf[m - 1];
    for i in 0..nz {
        for l in 0..L {
            z[i][l] = f.zi[i] * last[l];
        }
    }
    let (k0, k1) = (lp + keep.0, lp + keep.0 + keep.1);
    let mut p1 = m;
    while p1 > 0 {
        let p0 = p1.saturating_sub(TILE);
        tile_pass::<L, FMA>(&f.b, &f.a, &mut z, &mut buf[p0..p1], true);
        let (o0, o1) = (p0.max(k0), p1.min(k1));
        if o0 < o1 && outs.len() == L {
            // sample-major: one vector load per sample, L sequential output streams
            let mut it = outs.iter_mut();
            let os: [&mut [f32]; L] = std::array::from_fn(|_| {
                let o = it.next().expect("L outputs");
                &mut o[o0 - k0..o1 - k0]
            });
            for (j, w) in buf[o0..o1].iter().enumerate() {
                for l in 0..L {
                    os[l][j] = w[l] as f32;
                }
            }
        } else if o0 < o1 {
            for (l, o) in outs.iter_mut().enumerate() {
                for (d, w) in o[o0 - k0..o1 - k0].iter_mut().zip(buf[o0..o1].iter()) {
                    *d = w[l] as f32;
                }
            }
        }
        if p0 <= k0 {
            break;
        }
        p1 = p0;
    }
}

#[inline(always)]
fn tile_pass<const L: usize, const FMA: bool>(
    b: &[f64],
    a: &[f64],
    z: &mut [[f64; L]; 8],
    tile: &mut [[f64; L]],
    reverse: bool,
) {
    match a.len() {
        3 => tile_pass_n::<3, L>(b, a, z, tile, reverse),
        5 if bandpass_zeros(b) => tile_pass5_bp::<L, FMA>(b, a, z, tile, reverse),
        5 => tile_pass5::<L>(b, a, z, tile, reverse),
        7 => tile_pass_n::<7, L>(b, a, z, tile, reverse),
        _ => tile_pass_n::<9, L>(b, a, z, tile, reverse),
    }
}

/// An order-2 Butterworth band-pass has its zeros at +1 and -1 twice, so its numerator is exactly
/// `b0 * [1, 0, -2, 0, 1]` (the design multiplies integers by the gain).
#[inline(always)]
fn bandpass_zeros(b: &[f64]) -> bool {
    b.len() == 5 && b[1] == 0.0 && b[3] == 0.0 && b[2] == -2.0 * b[0] && b[4] == b[0]
}

/// `a * b + c`, fused when the caller was compiled for FMA.
#[inline(always)]
fn madd<const FMA: bool>(a: f64, b: f64, c: f64) -> f64 {
    if FMA {
        a.mul_add(b, c)
    } else {
        a * b + c
    }
}

/// The default filter with that numerator: `u = b0 * x` once and no multiplications by 0 or
/// +-1 (without FMA, the same arithmetic as [`tile_pass5`] to the last bit).
#[inline(always)]
fn tile_pass5_bp<const L: usize, const FMA: bool>(
    b: &[f64],
    a: &[f64],
    z: &mut [[f64; L]; 8],
    tile: &mut [[f64; L]],
    reverse: bool,
) {
    let b0 = b[0];
    let (na1, na2, na3, na4) = (-a[1], -a[2], -a[3], -a[4]);
    let (mut z0, mut z1, mut z2, mut z3) = (z[0], z[1], z[2], z[3]);
    // A plain loop, not a closure: a closure is a separate function that may not inherit the
    // caller's FMA target feature (mul_add would become a library call).
    let n = tile.len();
    for k in 0..n {
        let v = &mut tile[if reverse { n - 1 - k } else { k }];
        let x = *v;
        let mut y = [0.0; L];
        for l in 0..L {
            let u = b0 * x[l];
            y[l] = u + z0[l];
            z0[l] = madd::<FMA>(na1, y[l], z1[l]);
            // -2u is exact, so fusing it changes nothing
            z1[l] = madd::<FMA>(na2, y[l], madd::<FMA>(-2.0, u, z2[l]));
            z2[l] = madd::<FMA>(na3, y[l], z3[l]);
            z3[l] = madd::<FMA>(na4, y[l], u);
        }
        *v = y;
    }
    z[0] = z0;
    z[1] = z1;
    z[2] = z2;
    z[3] = z3;
}

/// The default filter (order-2 band-pass: 5 coefficients), written out so the state stays in
/// registers.
#[inline(always)]
fn tile_pass5<const L: usize>(
    b: &[f64],
    a: &[f64],
    z: &mut [[f64; L]; 8],
    tile: &mut [[f64; L]],
    reverse: bool,
) {
    let (b0, b1, b2, b3, b4) = (b[0], b[1], b[2], b[3], b[4]);
    let (a1, a2, a3, a4) = (a[1], a[2], a[3], a[4]);
    let (mut z0, mut z1, mut z2, mut z3) = (z[0], z[1], z[2], z[3]);
    let mut step = |v: &mut [f64; L]| {
        let x = *v;
        let mut y = [0.0; L];
        for l in 0..L {
            y[l] = b0 * x[l] + z0[l];
            z0[l] = b1 * x[l] + z1[l] - a1 * y[l];
            z1[l] = b2 * x[l] + z2[l] - a2 * y[l];
            z2[l] = b3 * x[l] + z3[l] - a3 * y[l];
            z3[l] = b4 * x[l] - a4 * y[l];
        }
        *v = y;
    };
    if reverse {
        tile.iter_mut().rev().for_each(&mut step);
    } else {
        tile.iter_mut().for_each(&mut step);
    }
    z[0] = z0;
    z[1] = z1;
    z[2] = z2;
    z[3] = z3;
}

#[inline(always)]
fn tile_pass_n<const N: usize, const L: usize>(
    b: &[f64],
    a: &[f64],
    z: &mut [[f64; L]; 8],
    tile: &mut [[f64; L]],
    reverse: bool,
) {
    let mut bb = [0.0; N];
    let mut aa = [0.0; N];
    bb.copy_from_slice(&b[..N]);
    aa.copy_from_slice(&a[..N]);
    let mut step = |v: &mut [f64; L]| {
        let x = *v;
        let mut y = [0.0; L];
        for l in 0..L {
            y[l] = bb[0] * x[l] + z[0][l];
        }
        for i in 0..N - 2 {
            for l in 0..L {
                z[i][l] = bb[i + 1] * x[l] + z[i + 1][l] - aa[i + 1] * y[l];
            }
        }
        for l in 0..L {
            z[N - 2][l] = bb[N - 1] * x[l] - aa[N - 1] * y[l];
        }
        *v = y;
    };
    if reverse {
        tile.iter_mut().rev().for_each(&mut step);
    } else {
        tile.iter_mut().for_each(&mut step);
    }
}

#[inline(always)]
fn pass<const N: usize>(b: &[f64], a: &[f64], zi: &[f64], buf: &mut [f64], reverse: bool) {
    let mut bb = [0.0; N];
    let mut aa = [0.0; N];
    bb.copy_from_slice(&b[..N]);
    aa.copy_from_slice(&a[..N]);
    let first = if reverse { buf[buf.len() - 1] } else { buf[0] };
    let mut z = [0.0; N];
    for i in 0..N - 1 {
        z[i] = zi[i] * first;
    }
    let step = |x: f64, z: &mut [f64; N]| -> f64 {
        let y = bb[0] * x + z[0];
        for i in 0..N - 2 {
            z[i] = bb[i + 1] * x + z[i + 1] - aa[i + 1] * y;
        }
        z[N - 2] = bb[N - 1] * x - aa[N - 1] * y;
        y
    };
    if reverse {
        for v in buf.iter_mut().rev() {
            *v = step(*v, &mut z);
        }
    } else {
        for v in buf.iter_mut() {
            *v = step(*v, &mut z);
        }
    }
}

fn pass_dyn(b: &[f64], a: &[f64], zi: &[f64], buf: &mut [f64], reverse: bool) {
    let n = a.len();
    let first = if reverse { buf[buf.len() - 1] } else { buf[0] };
    let mut z: Vec<f64> = zi.iter().map(|v| v * first).collect();
    let mut step = |x: f64| -> f64 {
        let y = b[0] * x + z[0];
        for i in 0..n - 2 {
            z[i] = b[i + 1] * x + z[i + 1] - a[i + 1] * y;
        }
        z[n - 2] = b[n - 1] * x - a[n - 1] * y;
        y
    };
    if reverse {
        for v in buf.iter_mut().rev() {
            *v = step(*v);
        }
    } else {
        for v in buf.iter_mut() {
            *v = step(*v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn design_matches_scipy_order2() {
        // scipy.signal.butter(2, [300, 3000], 'bandpass', fs=30000)
        let d = butter_bandpass(2, 300.0, 3000.0, 30000.0).unwrap();
        let b = [
            0.05644846226073644,
            0.0,
            -0.11289692452147287,
            0.0,
            0.05644846226073644,
        ];
        let a = [
            1.0,
            -3.1594633021191667,
            3.79268442285094,
            -2.0825733171836007,
            0.4504454300560407,
        ];
        for i in 0..5 {
            assert!((d.b[i] - b[i]).abs() < 1e-13, "b[{i}] = {}", d.b[i]);
            assert!((d.a[i] - a[i]).abs() < 1e-13, "a[{i}] = {}", d.a[i]);
        }
    }

    #[test]
    fn bad_band_is_an_error() {
        assert!(butter_bandpass(2, 300.0, 15000.0, 30000.0).is_err());
        assert!(butter_bandpass(2, 3000.0, 300.0, 30000.0).is_err());
        assert!(butter_bandpass(0, 300.0, 3000.0, 30000.0).is_err());
    }

    #[test]
    fn zi_is_steady_state() {
        let f = BandPass::new(2, 300.0, 3000.0, 30000.0).unwrap();
        // A constant input starting from zi*c stays at the steady-state output (0 for a band-pass).
        let mut buf = vec![5.0; 200];
        f.run_pass(&mut buf, false);
        assert!(buf.iter().all(|v| v.abs() < 1e-9));
    }

    #[test]
    fn short_signal_is_an_error() {
        let f = BandPass::new(2, 300.0, 3000.0, 30000.0).unwrap();
        let x = vec![0i16; 15];
        let mut out = vec![0.0; 15];
        assert!(f.filtfilt(&x, 1.0, &mut out, &mut Vec::new()).is_err());
    }

    #[test]
    fn lanes_equal_scalar() {
        // The float64 lanes kernel (orders other than 2; sos32 has its own test).
        let mut f = BandPass::new(2, 300.0, 3000.0, 30000.0).unwrap();
        f.sos = None;
        let n = 5000;
        let rows: Vec<Vec<i16>> = (0..11)
            .map(|r| {
                (0..n)
                    .map(|i| (((i * (r + 3) * 7919) % 1000) as i16) - 500)
                    .collect()
            })
            .collect();
        let refs: Vec<&[i16]> = rows.iter().map(|r| r.as_slice()).collect();
        let mut outs = vec![vec![0f32; n - 20]; 11];
        let mut o: Vec<&mut [f32]> = outs.iter_mut().map(|v| v.as_mut_slice()).collect();
        let job = RowBlock {
            rows: &refs,
            scale: 0.195,
            left_edge: true,
            right_edge: false,
            keep: (10, n - 20),
        };
        f.filtfilt_rows(job, &mut o);
        for (r, row) in rows.iter().enumerate() {
            let mut whole = vec![0.0; n];
            f.filtfilt_block(row, 0.195, true, false, &mut whole, &mut Vec::new());
            for i in 0..n - 20 {
                assert!(
                    (outs[r][i] as f64 - whole[10 + i]).abs()
                        <= 1e-6 * whole[10 + i].abs().max(1.0),
                    "row {r} i {i}"
                );
            }
        }
    }

    #[test]
    fn bandpass_structure_kernel_equals_general() {
        for fs in [20000.0, 30000.0] {
            let f = BandPass::new(2, 300.0, 3000.0, fs).unwrap();
            assert!(bandpass_zeros(&f.b));
            let x: Vec<[f64; 4]> = (0..3000)
                .map(|i| {
                    let v = ((i * 7919) % 1000) as f64 - 500.0;
                    [v, -v, v * 0.5 + 100.0, (i as f64 * 0.3).sin() * 50.0]
                })
                .collect();
            for reverse in [false, true] {
                let (mut g, mut q, mut r) = (x.clone(), x.clone(), x.clone());
                let mut zg = [[1.0f64; 4]; 8];
                let (mut zq, mut zr) = (zg, zg);
                tile_pass5::<4>(&f.b, &f.a, &mut zg, &mut g, reverse);
                tile_pass5_bp::<4, false>(&f.b, &f.a, &mut zq, &mut q, reverse);
                tile_pass5_bp::<4, true>(&f.b, &f.a, &mut zr, &mut r, reverse);
                assert_eq!(g, q, "unfused kernel is bit-identical");
                let rms = (g.iter().flatten().map(|v| v * v).sum::<f64>() / 12000.0).sqrt();
                let err = g
                    .iter()
                    .flatten()
                    .zip(r.iter().flatten())
                    .map(|(a, b)| (a - b).abs())
                    .fold(0.0, f64::max);
                assert!(err < 1e-9 * rms, "fused kernel error {err}");
            }
        }
    }

    #[test]
    fn chunked_equals_whole() {
        let f = BandPass::new(2, 300.0, 3000.0, 30000.0).unwrap();
        let n = 20000;
        let x: Vec<f64> = (0..n)
            .map(|i| ((i * 7919) % 1000) as f64 - 500.0 + (i as f64 * 0.01).sin() * 300.0)
            .collect();
        let mut whole = vec![0.0; n];
        f.filtfilt(&x, 1.0, &mut whole, &mut Vec::new()).unwrap();
        let (s, e) = (6000, 13000);
        let (rs, re) = (s - f.settle, e + f.settle);
        let mut part = vec![0.0; re - rs];
        f.filtfilt_block(&x[rs..re], 1.0, false, false, &mut part, &mut Vec::new());
        let rms = (whole.iter().map(|v| v * v).sum::<f64>() / n as f64).sqrt();
        for i in s..e {
            assert!((part[i - rs] - whole[i]).abs() < 1e-9 * rms);
        }
    }
}
