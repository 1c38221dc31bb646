//! The default band-pass (Butterworth order 2: a 4th-order transfer function) in float32, as a
//! cascade of two second-order sections, 8 channels per SIMD vector.
//!
//! Why it stays within 1e-4 x RMS of scipy's float64 `filtfilt(b, a, x)`: the numerator is
//! exactly `b0 * (1 - z^-2)^2`, so each section gets one `(1 - z^-2)` (a zero at DC and one at
//! Nyquist: each section is itself a band-pass, no large internal DC gain) and the all-pole
//! part `1 / (1 + a1 z^-1 + a2 z^-2)` in direct form I, whose state is the section's own past
//! outputs. The input differences `x[t] - x[t-2]` are exact for int16 (and taken in float64 for
//! float input) before the one rounding to float32, so DC offsets and hum never reach the
//! float32 state. filtfilt's `lfilter_zi * first sample` start (the steady state for a constant
//! input) is, in this form, "past inputs = first sample, past outputs = 0" (the band-pass has no
//! DC gain), which is the same start exactly. Odd-extension padding as scipy's.
//!
//! Speed: the forward pass already stores the backward pass's input difference
//! `g * (f[t] - f[t+2])` (it holds `f[t-2]` in its state), so the backward state is the outputs
//! alone (same arithmetic, bit-identical). For int16 input the differences are formed in
//! registers inside the forward loop. The work buffer goes through the last-level cache once
//! each way (the backward pass needs the whole forward pass): [`filtfilt_lanes`] leaves the
//! result there, with block extrema taken by the backward pass, instead of writing rows.

use std::mem::MaybeUninit;

use super::filter::{edge_pads, RowBlock, Sample, C64};

/// Where the backward pass also keeps every `step`-th kept sample (from kept index `first`) in
/// `tmp`, sample-major and in time order (a subsample for the noise statistics, taken while the
/// samples are in cache).
struct Sub<'a> {
    first: usize,
    step: usize,
    tmp: &'a mut Vec<[f32; LANES]>,
}

/// Lanes per vector (8 x f32 = one AVX2 register).
pub const LANES: usize = 8;
type V = [f32; LANES];

/// Samples per block of the lane-wise minimum and maximum kept by [`filtfilt_lanes`].
pub const BLOCK: usize = 64;

/// The filtered samples of up to 8 rows as the backward pass leaves them: sample-major (`buf[j]`
/// holds kept sample `j` of every row), with each row's minimum and maximum over every block of
/// [`BLOCK`] kept samples (the last block may be shorter), so a scan for rare loud samples reads
/// only the blocks that hold one.
pub struct Lanes<'a> {
    pub buf: &'a [V],
    pub min: &'a [V],
    pub max: &'a [V],
    /// The subsample asked for (every `step`-th kept sample from `first`), sample-major.
    pub sub: &'a [V],
}

impl Lanes<'_> {
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Row `l`'s samples `[lo, hi)` appended to `out`.
    #[inline]
    pub fn extend_row(&self, l: usize, lo: usize, hi: usize, out: &mut Vec<f32>) {
        out.extend(self.buf[lo..hi].iter().map(|v| v[l]));
    }
}

/// Two all-pole sections (negated denominators) after a shared gain `b0`.
#[derive(Clone, Debug)]
pub struct Sos32 {
    /// b0 of the transfer function (numerator `b0 * [1, 0, -2, 0, 1]`).
    pub b0: f64,
    /// Per section: (-a1, -a2).
    pub na: [(f32, f32); 2],
}

impl Sos32 {
    /// From the filter's z-plane poles: two complex-conjugate pairs, else None (the float64
    /// path is used).
    pub fn from_poles(b0: f64, poles: &[C64]) -> Option<Self> {
        if poles.len() != 4 {
            return None;
        }
        let mut up: Vec<C64> = poles.iter().copied().filter(|p| p.im > 1e-12).collect();
        if up.len() != 2 {
            return None;
        }
        // The pair nearer the unit circle (the low corner) first.
        up.sort_by(|a, b| b.abs().total_cmp(&a.abs()));
        let sec = |p: C64| ((2.0 * p.re) as f32, (-(p.re * p.re + p.im * p.im)) as f32);
        Some(Sos32 {
            b0,
            na: [sec(up[0]), sec(up[1])],
        })
    }
}

#[inline(always)]
fn fma<const FMA: bool>(a: f32, b: f32, c: f32) -> f32 {
    if FMA {
        a.mul_add(b, c)
    } else {
        a * b + c
    }
}

/// Tile of the fused fill + forward pass (8 lanes x 512 samples = 16 KB: stays in L1).
const TILE: usize = 512;

/// Recursive state of one direction: past outputs of both sections.
#[derive(Clone, Copy)]
struct State {
    y1: V,
    y2: V,
    w1: V,
    w2: V,
}

impl State {
    fn at_rest() -> Self {
        State {
            y1: [0.0; LANES],
            y2: [0.0; LANES],
            w1: [0.0; LANES],
            w2: [0.0; LANES],
        }
    }
}

type Coef = ((f32, f32), (f32, f32));

/// One sample of both sections from section 1's input `d` (already `g * (u[t] - u[t-2])`):
/// returns the output and the output two samples back.
#[inline(always)]
fn step<const FMA: bool>(((a11, a12), (a21, a22)): Coef, z: &mut State, d: &V) -> (V, V) {
    let mut out = [0.0; LANES];
    let back = z.w2;
    for l in 0..LANES {
        let y = fma::<FMA>(a11, z.y1[l], fma::<FMA>(a12, z.y2[l], d[l]));
        let e = y - z.y2[l];
        let w = fma::<FMA>(a21, z.w1[l], fma::<FMA>(a22, z.w2[l], e));
        out[l] = w;
        z.y2[l] = z.y1[l];
        z.y1[l] = y;
        z.w2[l] = z.w1[l];
        z.w1[l] = w;
    }
    (out, back)
}

/// Forward pass over `buf[p0..p1]` (section 1's input in place): stores at `t - 2` the
/// backward pass's input `gb * (f[t-2] - f[t])` (for t >= 2).
#[inline(always)]
fn run_forward<const FMA: bool>(
    c: Coef,
    gb: f32,
    z: &mut State,
    buf: &mut [V],
    p0: usize,
    p1: usize,
) {
    let mut st = *z;
    let mut t = p0;
    while t < p1.min(2) {
        step::<FMA>(c, &mut st, &buf[t]);
        t += 1;
    }
    assert!(p1 <= buf.len());
    for t in t..p1 {
        let (f, back) = step::<FMA>(c, &mut st, &buf[t]);
        buf[t - 2] = std::array::from_fn(|l| gb * (back[l] - f[l]));
    }
    *z = st;
}

/// Backward pass over `tile` in place (its input prepared by [`run_forward`]).
#[inline(always)]
fn run_backward<const FMA: bool>(c: Coef, z: &mut State, tile: &mut [V]) {
    let mut st = *z;
    for v in tile.iter_mut().rev() {
        *v = step::<FMA>(c, &mut st, v).0;
    }
    *z = st;
}

/// [`run_backward`] that also folds the outputs into lane-wise `min` and `max` (a NaN is not
/// folded: the input is finite).
#[inline(always)]
fn run_backward_extrema<const FMA: bool>(
    c: Coef,
    z: &mut State,
    tile: &mut [V],
    min: &mut V,
    max: &mut V,
) {
    let mut st = *z;
    let (mut lo, mut hi) = (*min, *max);
    for v in tile.iter_mut().rev() {
        let w = step::<FMA>(c, &mut st, v).0;
        for l in 0..LANES {
            lo[l] = if w[l] < lo[l] { w[l] } else { lo[l] };
            hi[l] = if w[l] > hi[l] { w[l] } else { hi[l] };
        }
        *v = w;
    }
    *z = st;
    *min = lo;
    *max = hi;
}

/// Where the kept samples go: rows, or left in the work buffer with block extrema.
enum Out<'a, 'b> {
    Rows(&'a mut [&'b mut [f32]]),
    Lanes {
        min: &'a mut Vec<V>,
        max: &'a mut Vec<V>,
    },
}

/// Forward-backward filter up to 8 equally long rows (see `BandPass::filtfilt_rows`), keeping
/// samples `[keep.0, keep.0 + keep.1)` of each row.
pub fn filtfilt_rows<T: Sample>(s: &Sos32, job: RowBlock<'_, T>, outs: &mut [&mut [f32]]) {
    let rows = job.rows;
    debug_assert!(!rows.is_empty() && rows.len() <= LANES && rows.len() == outs.len());
    if rows[0].is_empty() {
        return;
    }
    WORK.with(|w| {
        let mut w = w.borrow_mut();
        let m = rows[0].len() + 2 * PADMAX;
        if w.buf.len() < m {
            w.buf.resize(m, [0.0; LANES]);
        }
        dispatch(s, job, Out::Rows(outs), &mut w.buf, None);
    })
}

/// [`filtfilt_rows`] that hands the kept samples to `consume` as [`Lanes`] (row `r` is lane
/// `r`) instead of writing rows: no transposes, and the scan for loud samples reads only the
/// blocks whose extrema say they hold one.
pub fn filtfilt_lanes<T: Sample, R>(
    s: &Sos32,
    job: RowBlock<'_, T>,
    sub: Option<(usize, usize)>,
    consume: impl FnOnce(Lanes<'_>) -> R,
) -> R {
    let (rows, keep) = (job.rows, job.keep);
    debug_assert!(!rows.is_empty() && rows.len() <= LANES);
    WORK.with(|w| {
        let mut w = w.borrow_mut();
        let w = &mut *w;
        let m = rows[0].len() + 2 * PADMAX;
        if w.buf.len() < m {
            w.buf.resize(m, [0.0; LANES]);
        }
        let nb = keep.1.div_ceil(BLOCK);
        w.min.clear();
        w.min.resize(nb, [f32::INFINITY; LANES]);
        w.max.clear();
        w.max.resize(nb, [f32::NEG_INFINITY; LANES]);
        w.sub.clear();
        let k0 = if rows[0].is_empty() {
            0
        } else {
            let out = Out::Lanes {
                min: &mut w.min,
                max: &mut w.max,
            };
            let sub = sub.map(|(first, step)| Sub {
                first,
                step: step.max(1),
                tmp: &mut w.sub,
            });
            dispatch(s, job, out, &mut w.buf, sub)
        };
        consume(Lanes {
            buf: &w.buf[k0..k0 + if rows[0].is_empty() { 0 } else { keep.1 }],
            min: &w.min,
            max: &w.max,
            sub: &w.sub,
        })
    })
}

/// Work buffers of one thread (reused: no page faults).
#[derive(Default)]
struct Work {
    buf: Vec<V>,
    min: Vec<V>,
    max: Vec<V>,
    sub: Vec<V>,
}

/// Run the filter (AVX2 + FMA when the CPU has them); returns where the kept samples start in
/// `buf`.
fn dispatch<T: Sample>(
    s: &Sos32,
    job: RowBlock<'_, T>,
    out: Out<'_, '_>,
    buf: &mut [V],
    sub: Option<Sub<'_>>,
) -> usize {
    #[cfg(target_arch = "x86_64")]
    {
        if crate::cpu::avx2_fma() {
            // SAFETY: the CPU supports AVX2 and FMA (checked just above).
            return unsafe { rows_avx2_fma(s, job, out, buf, sub) };
        }
    }
    rows_impl::<T, false>(s, job, out, buf, sub)
}

/// scipy's padding for a 5-coefficient filter: 3 * 5.
pub const PADMAX: usize = 15;

thread_local! {
    static WORK: std::cell::RefCell<Work> = std::cell::RefCell::new(Work::default());
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn rows_avx2_fma<T: Sample>(
    s: &Sos32,
    job: RowBlock<'_, T>,
    out: Out<'_, '_>,
    buf: &mut [V],
    sub: Option<Sub<'_>>,
) -> usize {
    rows_impl::<T, true>(s, job, out, buf, sub)
}

#[inline(always)]
fn rows_impl<T: Sample, const FMA: bool>(
    s: &Sos32,
    job: RowBlock<'_, T>,
    mut out: Out<'_, '_>,
    buf: &mut [V],
    mut sub: Option<Sub<'_>>,
) -> usize {
    let (rows, scale, keep) = (job.rows, job.scale, job.keep);
    let nr = rows.len();
    let n = rows[0].len();
    let (lp, rp) = edge_pads(n, PADMAX, job.left_edge, job.right_edge);
    let m = n + lp + rp;
    let buf = &mut buf[..m];
    let gs = s.b0 * scale;
    let gs32 = gs as f32;
    let c: Coef = (s.na[0], s.na[1]);
    // Missing lanes repeat the last row (their output is discarded).
    let row = |l: usize| rows[l.min(nr - 1)];
    // The odd-extended input at extended index t, in f64.
    let ext = |l: usize, t: usize| -> f64 {
        let r = row(l);
        if t < lp {
            2.0 * r[0].to_f64() - r[lp - t].to_f64()
        } else if t < lp + n {
            r[t - lp].to_f64()
        } else {
            2.0 * r[n - 1].to_f64() - r[n - 1 - (t + 1 - lp - n)].to_f64()
        }
    };
    // Section 1's forward input g * (e[t] - e[t-2]), with e[-1] = e[-2] = e[0] (at rest).
    let slow = |t: usize| -> V {
        std::array::from_fn(|l| {
            let prev = if t >= 2 { ext(l, t - 2) } else { ext(l, 0) };
            ((ext(l, t) - prev) * gs) as f32
        })
    };
    let mut st = State::at_rest();
    let gb = s.b0 as f32;
    let (body0, body1) = (lp + 2, lp + n);
    let mut p0 = 0;
    #[cfg(target_arch = "x86_64")]
    if FMA && body0 < body1 {
        let xs: [&[T]; LANES] = std::array::from_fn(|l| &row(l)[..]);
        if let Some(xi) = as_i16(&xs) {
            // int16: the input differences are formed in registers inside the forward loop.
            for t in 0..body0 {
                buf[t] = slow(t);
            }
            run_forward::<FMA>(c, gb, &mut st, buf, 0, body0);
            // SAFETY: FMA is only set when the CPU has AVX2 and FMA (rows_avx2_fma).
            let done = unsafe { forward_i16_avx2(xi, lp, gs32, c, gb, &mut st, buf, body0, body1) };
            for t in done..body1 {
                buf[t] = std::array::from_fn(|l| {
                    i16::diff_scaled(xi[l][t - lp], xi[l][t - lp - 2], gs, gs32)
                });
            }
            for t in body1..m {
                buf[t] = slow(t);
            }
            run_forward::<FMA>(c, gb, &mut st, buf, done, m);
            p0 = m;
        } else if let Some(xf) = as_f32(&xs) {
            // float32 (referenced rows): the same, with 8x8 float transposes; the differences
            // are taken in float64 as `f32::diff_scaled` does (bit-identical).
            for t in 0..body0 {
                buf[t] = slow(t);
            }
            run_forward::<FMA>(c, gb, &mut st, buf, 0, body0);
            // SAFETY: FMA is only set when the CPU has AVX2 and FMA (rows_avx2_fma).
            let done = unsafe { forward_f32_avx2(xf, lp, gs, c, gb, &mut st, buf, body0, body1) };
            for t in done..body1 {
                buf[t] = std::array::from_fn(|l| {
                    f32::diff_scaled(xf[l][t - lp], xf[l][t - lp - 2], gs, gs32)
                });
            }
            for t in body1..m {
                buf[t] = slow(t);
            }
            run_forward::<FMA>(c, gb, &mut st, buf, done, m);
            p0 = m;
        }
    }
    while p0 < m {
        let p1 = (p0 + TILE).min(m);
        let (f0, f1) = (p0.max(body0), p1.min(body1));
        if f0 < f1 {
            for t in p0..f0 {
                buf[t] = slow(t);
            }
            let xs: [&[T]; LANES] = std::array::from_fn(|l| &row(l)[f0 - lp - 2..f1 - lp]);
            for (i, w) in buf[f0..f1].iter_mut().enumerate() {
                for l in 0..LANES {
                    w[l] = T::diff_scaled(xs[l][i + 2], xs[l][i], gs, gs32);
                }
            }
            for t in f1..p1 {
                buf[t] = slow(t);
            }
        } else {
            for t in p0..p1 {
                buf[t] = slow(t);
            }
        }
        run_forward::<FMA>(c, gb, &mut st, buf, p0, p1);
        p0 = p1;
    }
    // The backward pass starts at rest at the last forward output f[m-1], i.e. with
    // f[m] = f[m+1] = f[m-1]: its inputs at m-2 and m-1 follow from the forward state.
    if m >= 2 {
        buf[m - 2] = std::array::from_fn(|l| gb * (st.w2[l] - st.w1[l]));
    }
    buf[m - 1] = [0.0; LANES];
    let mut st = State::at_rest();
    let (k0, k1) = (lp + keep.0, lp + keep.0 + keep.1);
    let mut p1 = m;
    while p1 > 0 {
        let p0 = p1.saturating_sub(TILE);
        if let Out::Lanes { min, max } = &mut out {
            // In segments that end at block edges, with the block extrema taken as the samples
            // come out (independent work for the recursion's latency).
            let mut e = p1;
            while e > p0 {
                if e > k1 {
                    let a = k1.max(p0);
                    run_backward::<FMA>(c, &mut st, &mut buf[a..e]);
                    e = a;
                } else if e > k0 {
                    let b = (e - 1 - k0) / BLOCK;
                    let a = (k0 + b * BLOCK).max(p0);
                    run_backward_extrema::<FMA>(
                        c,
                        &mut st,
                        &mut buf[a..e],
                        &mut min[b],
                        &mut max[b],
                    );
                    e = a;
                } else {
                    run_backward::<FMA>(c, &mut st, &mut buf[p0..e]);
                    e = p0;
                }
            }
        } else {
            run_backward::<FMA>(c, &mut st, &mut buf[p0..p1]);
        }
        let (o0, o1) = (p0.max(k0), p1.min(k1));
        if let Some(sb) = sub.as_mut() {
            // kept samples j = first + i * step in this tile, newest first (reversed below)
            if o0 < o1 && o1 - k0 > sb.first {
                let top = o1 - k0 - 1;
                let mut j = sb.first + (top - sb.first) / sb.step * sb.step;
                while j + k0 >= o0 {
                    sb.tmp.push(buf[j + k0]);
                    if j < sb.first + sb.step {
                        break;
                    }
                    j -= sb.step;
                }
            }
        }
        if o0 < o1 {
            match &mut out {
                Out::Rows(outs) if nr == LANES => {
                    let mut it = outs.iter_mut();
                    #[cfg_attr(not(target_arch = "x86_64"), allow(unused_mut))]
                    let mut os: [&mut [f32]; LANES] = std::array::from_fn(|_| {
                        let o = it.next().expect("8 outputs");
                        &mut o[o0 - k0..o1 - k0]
                    });
                    #[cfg(target_arch = "x86_64")]
                    if FMA {
                        let ps = std::array::from_fn(|l| os[l].as_mut_ptr());
                        // SAFETY: FMA is only set when the CPU has AVX2 and FMA (rows_avx2_fma);
                        // each row slice holds o1 - o0 values.
                        unsafe { store_rows_avx2(&buf[o0..o1], ps) };
                    }
                    if !FMA {
                        for (j, w) in buf[o0..o1].iter().enumerate() {
                            for l in 0..LANES {
                                os[l][j] = w[l];
                            }
                        }
                    }
                }
                Out::Rows(outs) => {
                    for (l, o) in outs.iter_mut().enumerate() {
                        for (d, w) in o[o0 - k0..o1 - k0].iter_mut().zip(buf[o0..o1].iter()) {
                            *d = w[l];
                        }
                    }
                }
                // (block extrema taken in the backward pass)
                Out::Lanes { .. } => {}
            }
        }
        if p0 <= k0 {
            break;
        }
        p1 = p0;
    }
    if let Some(sb) = sub {
        sb.tmp.reverse();
    }
    k0
}

/// The forward pass over body samples `[t0, t1)` (extended index; row index = t - lp) of int16
/// rows, whole blocks of 8 samples: each block of input differences is transposed and scaled in
/// registers (one 8x8 int16 transpose per 8 samples; the same values and arithmetic as
/// `T::diff_scaled` + [`run_forward`]: bit-identical), so the transposes overlap the recursion's
/// latency and the differences never go through memory. Returns where it stopped (t0 + 8 k).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn forward_i16_avx2(
    xs: [&[i16]; LANES],
    lp: usize,
    g: f32,
    coef: Coef,
    gb: f32,
    st: &mut State,
    buf: &mut [V],
    t0: usize,
    t1: usize,
) -> usize {
    use std::arch::x86_64::*;
    debug_assert!(t0 >= lp + 2 && t0 >= 2 && t1 <= buf.len());
    debug_assert!(xs.iter().all(|x| x.len() + lp >= t1));
    let blocks = (t1 - t0) / 8;
    if blocks == 0 {
        return t0;
    }
    let gv = _mm256_set1_ps(g);
    // samples as lanes (int32): the 8 int16 of row index r .. r + 8 of every row
    let load = |r: usize| -> [__m256i; 8] {
        let a: [__m128i; 8] =
            std::array::from_fn(|l| _mm_loadu_si128(xs[l].as_ptr().add(r) as *const __m128i));
        let t0 = _mm_unpacklo_epi16(a[0], a[1]);
        let t1 = _mm_unpackhi_epi16(a[0], a[1]);
        let t2 = _mm_unpacklo_epi16(a[2], a[3]);
        let t3 = _mm_unpackhi_epi16(a[2], a[3]);
        let t4 = _mm_unpacklo_epi16(a[4], a[5]);
        let t5 = _mm_unpackhi_epi16(a[4], a[5]);
        let t6 = _mm_unpacklo_epi16(a[6], a[7]);
        let t7 = _mm_unpackhi_epi16(a[6], a[7]);
        let u0 = _mm_unpacklo_epi32(t0, t2);
        let u1 = _mm_unpackhi_epi32(t0, t2);
        let u2 = _mm_unpacklo_epi32(t1, t3);
        let u3 = _mm_unpackhi_epi32(t1, t3);
        let u4 = _mm_unpacklo_epi32(t4, t6);
        let u5 = _mm_unpackhi_epi32(t4, t6);
        let u6 = _mm_unpacklo_epi32(t5, t7);
        let u7 = _mm_unpackhi_epi32(t5, t7);
        [
            _mm256_cvtepi16_epi32(_mm_unpacklo_epi64(u0, u4)),
            _mm256_cvtepi16_epi32(_mm_unpackhi_epi64(u0, u4)),
            _mm256_cvtepi16_epi32(_mm_unpacklo_epi64(u1, u5)),
            _mm256_cvtepi16_epi32(_mm_unpackhi_epi64(u1, u5)),
            _mm256_cvtepi16_epi32(_mm_unpacklo_epi64(u2, u6)),
            _mm256_cvtepi16_epi32(_mm_unpackhi_epi64(u2, u6)),
            _mm256_cvtepi16_epi32(_mm_unpacklo_epi64(u3, u7)),
            _mm256_cvtepi16_epi32(_mm_unpackhi_epi64(u3, u7)),
        ]
    };
    let lane = |r: usize| {
        _mm256_setr_epi32(
            xs[0][r] as i32,
            xs[1][r] as i32,
            xs[2][r] as i32,
            xs[3][r] as i32,
            xs[4][r] as i32,
            xs[5][r] as i32,
            xs[6][r] as i32,
            xs[7][r] as i32,
        )
    };
    // difference at t: x[t - lp] - x[t - lp - 2]
    let diff =
        |a: __m256i, b: __m256i| _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(a, b)), gv);
    recurse_blocks(coef, gb, st, buf, t0, blocks, lp, load, lane, diff)
}

/// The two sections' recursion over `blocks` blocks of 8 samples from `t0` (shared by the int16
/// and float32 loaders): `load(r)` gives the 8 samples from row index r as lanes, `lane(r)` one
/// sample, `diff(a, b)` the scaled input difference a - b. Writes the backward pass's input into
/// `buf` at t - 2 and leaves the filter state in `st`. Returns t0 + 8 blocks.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
#[inline]
unsafe fn recurse_blocks<T: Copy>(
    ((a11, a12), (a21, a22)): Coef,
    gb: f32,
    st: &mut State,
    buf: &mut [V],
    t0: usize,
    blocks: usize,
    lp: usize,
    load: impl Fn(usize) -> [T; 8],
    lane: impl Fn(usize) -> T,
    diff: impl Fn(T, T) -> std::arch::x86_64::__m256,
) -> usize {
    use std::arch::x86_64::*;
    let gbv = _mm256_set1_ps(gb);
    let (c11, c12, c21, c22) = (
        _mm256_set1_ps(a11),
        _mm256_set1_ps(a12),
        _mm256_set1_ps(a21),
        _mm256_set1_ps(a22),
    );
    let ld = |v: &V| _mm256_loadu_ps(v.as_ptr());
    let (mut y1, mut y2, mut w1, mut w2) = (ld(&st.y1), ld(&st.y2), ld(&st.w1), ld(&st.w2));
    let r0 = t0 - lp;
    let (mut p0, mut p1) = (lane(r0 - 2), lane(r0 - 1));
    let out = buf.as_mut_ptr() as *mut f32;
    for b in 0..blocks {
        let t = t0 + 8 * b;
        let cur = load(t - lp);
        for k in 0..8 {
            let prev = match k {
                0 => p0,
                1 => p1,
                _ => cur[k - 2],
            };
            let d = diff(cur[k], prev);
            let y = _mm256_fmadd_ps(c11, y1, _mm256_fmadd_ps(c12, y2, d));
            let e = _mm256_sub_ps(y, y2);
            let w = _mm256_fmadd_ps(c21, w1, _mm256_fmadd_ps(c22, w2, e));
            let back = _mm256_mul_ps(gbv, _mm256_sub_ps(w2, w));
            _mm256_storeu_ps(out.add((t + k - 2) * LANES), back);
            y2 = y1;
            y1 = y;
            w2 = w1;
            w1 = w;
        }
        p0 = cur[6];
        p1 = cur[7];
    }
    let sv = |v: __m256| {
        let mut a = [0.0f32; LANES];
        _mm256_storeu_ps(a.as_mut_ptr(), v);
        a
    };
    (st.y1, st.y2, st.w1, st.w2) = (sv(y1), sv(y2), sv(w1), sv(w2));
    t0 + 8 * blocks
}

/// `outs[l][j] = buf[j][l]` for every lane `l < outs.len()` (8x8 transposes when all 8 lanes
/// are wanted and the CPU has AVX2). Every value of every out is written (each holds
/// `buf.len()`), so they may start uninitialised.
pub fn transpose_into(buf: &[V], outs: &mut [&mut [MaybeUninit<f32>]]) {
    assert!(outs.len() <= LANES && outs.iter().all(|o| o.len() == buf.len()));
    #[cfg(target_arch = "x86_64")]
    {
        if outs.len() == LANES && crate::cpu::avx2() {
            let ps = std::array::from_fn(|l| outs[l].as_mut_ptr() as *mut f32);
            // SAFETY: the CPU supports AVX2 (checked just above); each out holds buf.len()
            // values (asserted above).
            unsafe { store_rows_avx2(buf, ps) };
            return;
        }
    }
    for (l, o) in outs.iter_mut().enumerate() {
        for (d, v) in o.iter_mut().zip(buf) {
            d.write(v[l]);
        }
    }
}

/// The lanes as int16 rows when `T` is i16.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn as_i16<'a, T: Sample>(xs: &[&'a [T]; LANES]) -> Option<[&'a [i16]; LANES]> {
    if std::any::TypeId::of::<T>() == std::any::TypeId::of::<i16>() {
        // SAFETY: T is i16 (same type, checked just above).
        Some(std::array::from_fn(|l| unsafe {
            std::slice::from_raw_parts(xs[l].as_ptr() as *const i16, xs[l].len())
        }))
    } else {
        None
    }
}

#[cfg(target_arch = "x86_64")]
fn as_f32<'a, T: Sample>(xs: &[&'a [T]; LANES]) -> Option<[&'a [f32]; LANES]> {
    if std::any::TypeId::of::<T>() == std::any::TypeId::of::<f32>() {
        // SAFETY: T is f32 (same type, checked just above).
        Some(std::array::from_fn(|l| unsafe {
            std::slice::from_raw_parts(xs[l].as_ptr() as *const f32, xs[l].len())
        }))
    } else {
        None
    }
}

/// 8x8 float transpose: `o[k][l] = r[l][k]`. Inlined into the loaders and row stores (one
/// transpose per 8 samples in their loops).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn transpose8(r: [std::arch::x86_64::__m256; 8]) -> [std::arch::x86_64::__m256; 8] {
    use std::arch::x86_64::*;
    let t0 = _mm256_unpacklo_ps(r[0], r[1]);
    let t1 = _mm256_unpackhi_ps(r[0], r[1]);
    let t2 = _mm256_unpacklo_ps(r[2], r[3]);
    let t3 = _mm256_unpackhi_ps(r[2], r[3]);
    let t4 = _mm256_unpacklo_ps(r[4], r[5]);
    let t5 = _mm256_unpackhi_ps(r[4], r[5]);
    let t6 = _mm256_unpacklo_ps(r[6], r[7]);
    let t7 = _mm256_unpackhi_ps(r[6], r[7]);
    let u0 = _mm256_shuffle_ps::<0x44>(t0, t2);
    let u1 = _mm256_shuffle_ps::<0xEE>(t0, t2);
    let u2 = _mm256_shuffle_ps::<0x44>(t1, t3);
    let u3 = _mm256_shuffle_ps::<0xEE>(t1, t3);
    let u4 = _mm256_shuffle_ps::<0x44>(t4, t6);
    let u5 = _mm256_shuffle_ps::<0xEE>(t4, t6);
    let u6 = _mm256_shuffle_ps::<0x44>(t5, t7);
    let u7 = _mm256_shuffle_ps::<0xEE>(t5, t7);
    [
        _mm256_permute2f128_ps::<0x20>(u0, u4),
        _mm256_permute2f128_ps::<0x20>(u1, u5),
        _mm256_permute2f128_ps::<0x20>(u2, u6),
        _mm256_permute2f128_ps::<0x20>(u3, u7),
        _mm256_permute2f128_ps::<0x31>(u0, u4),
        _mm256_permute2f128_ps::<0x31>(u1, u5),
        _mm256_permute2f128_ps::<0x31>(u2, u6),
        _mm256_permute2f128_ps::<0x31>(u3, u7),
    ]
}

/// [`forward_i16_avx2`] for float32 rows: 8x8 float transposes, and each difference
/// `(x[t] - x[t-2]) * g` taken in float64 before the one rounding to float32 (the same values as
/// `f32::diff_scaled` + [`run_forward`]: bit-identical).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn forward_f32_avx2(
    xs: [&[f32]; LANES],
    lp: usize,
    g: f64,
    coef: Coef,
    gb: f32,
    st: &mut State,
    buf: &mut [V],
    t0: usize,
    t1: usize,
) -> usize {
    use std::arch::x86_64::*;
    debug_assert!(t0 >= lp + 2 && t0 >= 2 && t1 <= buf.len());
    debug_assert!(xs.iter().all(|x| x.len() + lp >= t1));
    let blocks = (t1 - t0) / 8;
    if blocks == 0 {
        return t0;
    }
    let gd = _mm256_set1_pd(g);
    let load = |r: usize| -> [__m256; 8] {
        transpose8(std::array::from_fn(|l| {
            _mm256_loadu_ps(xs[l].as_ptr().add(r))
        }))
    };
    let lane = |r: usize| {
        _mm256_setr_ps(
            xs[0][r], xs[1][r], xs[2][r], xs[3][r], xs[4][r], xs[5][r], xs[6][r], xs[7][r],
        )
    };
    // ((a - b) * g) in float64, rounded once to float32
    let diff = |a: __m256, b: __m256| -> __m256 {
        let lo = _mm256_mul_pd(
            _mm256_sub_pd(
                _mm256_cvtps_pd(_mm256_castps256_ps128(a)),
                _mm256_cvtps_pd(_mm256_castps256_ps128(b)),
            ),
            gd,
        );
        let hi = _mm256_mul_pd(
            _mm256_sub_pd(
                _mm256_cvtps_pd(_mm256_extractf128_ps::<1>(a)),
                _mm256_cvtps_pd(_mm256_extractf128_ps::<1>(b)),
            ),
            gd,
        );
        _mm256_set_m128(_mm256_cvtpd_ps(hi), _mm256_cvtpd_ps(lo))
    };
    recurse_blocks(coef, gb, st, buf, t0, blocks, lp, load, lane, diff)
}

/// `os[l][j] = buf[j][l]`: 8x8 float transposes, one 8-float store per row and 8 samples.
/// Safety: AVX2, and each `os[l]` valid for `buf.len()` writes.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn store_rows_avx2(buf: &[V], os: [*mut f32; LANES]) {
    use std::arch::x86_64::*;
    let cnt = buf.len();
    let mut j = 0;
    while j + 8 <= cnt {
        let r: [__m256; 8] = std::array::from_fn(|k| _mm256_loadu_ps(buf[j + k].as_ptr()));
        let o = transpose8(r);
        for l in 0..LANES {
            _mm256_storeu_ps(os[l].add(j), o[l]);
        }
        j += 8;
    }
    for (k, w) in buf.iter().enumerate().skip(j) {
        for l in 0..LANES {
            os[l].add(k).write(w[l]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::filter::{BandPass, RowBlock};

    /// `rows` scaled by 0.195 (int16 counts to uV), edges padded as asked, samples `keep` kept.
    fn job<'a, T>(
        rows: &'a [&'a [T]],
        left_edge: bool,
        right_edge: bool,
        keep: (usize, usize),
    ) -> RowBlock<'a, T> {
        RowBlock {
            rows,
            scale: 0.195,
            left_edge,
            right_edge,
            keep,
        }
    }

    fn signal(n: usize, seed: u64, offset: f64) -> Vec<f64> {
        let mut s = seed;
        let mut rnd = || {
            crate::signal::lcg(&mut s);
            ((s >> 33) as f64 / (1u64 << 31) as f64) - 0.5
        };
        (0..n)
            .map(|i| {
                offset
                    + 80.0 * (rnd() + rnd() + rnd() + rnd())
                    + 400.0 * (i as f64 * 2.0 * std::f64::consts::PI * 60.0 / 30000.0).sin()
                    + if i % 3001 == 1000 { -900.0 } else { 0.0 }
            })
            .collect()
    }

    /// Max |error| of `got` against `whole` within 3e-5 x the RMS of `whole`.
    fn assert_close_to_rms(whole: &[f64], got: &[f32], label: &str) {
        let n = whole.len() as f64;
        let rms = (whole.iter().map(|v| v * v).sum::<f64>() / n).sqrt();
        let err = whole
            .iter()
            .zip(got)
            .map(|(a, &b)| (a - b as f64).abs())
            .fold(0.0, f64::max);
        let erms = (whole
            .iter()
            .zip(got)
            .map(|(a, &b)| (a - b as f64).powi(2))
            .sum::<f64>()
            / n)
            .sqrt();
        eprintln!(
            "{label}: max err {:.2e} rms err {:.2e} x RMS",
            err / rms,
            erms / rms
        );
        assert!(err <= 3e-5 * rms, "{label}: {:.2e} x RMS", err / rms);
    }

    /// Max |error| / RMS of the float32 sections against the float64 transfer function, edges
    /// included, for int16 and float input.
    #[test]
    fn sections_match_float64_transfer_function() {
        for fs in [20000.0, 25000.0, 30000.0] {
            for (low, high) in [(300.0, 3000.0), (500.0, 5000.0), (300.0, 6000.0)] {
                let f = BandPass::new(2, low, high, fs).unwrap();
                assert!(f.sos.is_some());
                let n = 60011;
                let xs: Vec<Vec<f64>> = (0..8)
                    .map(|r| signal(n, r, 1500.0 * r as f64 - 3000.0))
                    .collect();
                let xi: Vec<Vec<i16>> = xs
                    .iter()
                    .map(|r| r.iter().map(|&v| v.round() as i16).collect())
                    .collect();
                // float32 input (as the referenced rows): the float64 reference filters the
                // same float32 values
                let xf: Vec<Vec<f32>> = xs
                    .iter()
                    .map(|r| r.iter().map(|&v| v as f32).collect())
                    .collect();
                let xf64: Vec<Vec<f64>> = xf
                    .iter()
                    .map(|r| r.iter().map(|&v| v as f64).collect())
                    .collect();
                for kind in [0, 1, 2] {
                    let int = kind == 1;
                    let mut outs = vec![vec![0f32; n]; 8];
                    {
                        let mut o: Vec<&mut [f32]> =
                            outs.iter_mut().map(|v| v.as_mut_slice()).collect();
                        if int {
                            let r: Vec<&[i16]> = xi.iter().map(|v| v.as_slice()).collect();
                            f.filtfilt_rows(job(&r, true, true, (0, n)), &mut o);
                        } else if kind == 2 {
                            let r: Vec<&[f32]> = xf.iter().map(|v| v.as_slice()).collect();
                            f.filtfilt_rows(job(&r, true, true, (0, n)), &mut o);
                        } else {
                            let r: Vec<&[f64]> = xs.iter().map(|v| v.as_slice()).collect();
                            f.filtfilt_rows(job(&r, true, true, (0, n)), &mut o);
                        }
                    }
                    for r in 0..8 {
                        let mut whole = vec![0.0; n];
                        if int {
                            f.filtfilt_block(
                                &xi[r],
                                0.195,
                                true,
                                true,
                                &mut whole,
                                &mut Vec::new(),
                            );
                        } else {
                            f.filtfilt_block(
                                if kind == 2 { &xf64[r] } else { &xs[r] },
                                0.195,
                                true,
                                true,
                                &mut whole,
                                &mut Vec::new(),
                            );
                        }
                        let label = format!("fs {fs} {low}-{high} kind {kind} row {r}");
                        assert_close_to_rms(&whole, &outs[r], &label);
                    }
                }
            }
        }
    }

    /// 8 lanes give bit for bit what each row gives alone, for partial groups, both edges or
    /// none, and a kept sub-range with its subsample; the lanes view holds the same samples and
    /// its block extrema are those of the rows.
    #[test]
    fn rows_and_lanes_equal_one_at_a_time() {
        let f = BandPass::new(2, 300.0, 3000.0, 30000.0).unwrap();
        let s = f.sos.as_ref().unwrap();
        let n = 20011;
        let xs: Vec<Vec<i16>> = (0..8)
            .map(|r| {
                signal(n, 40 + r, 700.0 * r as f64 - 5000.0)
                    .iter()
                    .map(|&v| v.round() as i16)
                    .collect()
            })
            .collect();
        for nr in [8, 5, 1] {
            for (left, right) in [(true, true), (false, false), (true, false)] {
                let keep = (117, n - 300);
                let mut outs = vec![vec![0f32; keep.1]; nr];
                {
                    let r: Vec<&[i16]> = xs[..nr].iter().map(|v| v.as_slice()).collect();
                    let mut o: Vec<&mut [f32]> =
                        outs.iter_mut().map(|v| v.as_mut_slice()).collect();
                    super::filtfilt_rows(s, job(&r, left, right, keep), &mut o);
                }
                for k in 0..nr {
                    let mut one = vec![vec![0f32; keep.1]];
                    {
                        let mut o: Vec<&mut [f32]> =
                            one.iter_mut().map(|v| v.as_mut_slice()).collect();
                        super::filtfilt_rows(s, job(&[&xs[k][..]], left, right, keep), &mut o);
                    }
                    assert_eq!(outs[k], one[0], "rows {nr} row {k} edges {left} {right}");
                }
                let r: Vec<&[i16]> = xs[..nr].iter().map(|v| v.as_slice()).collect();
                let mut subl = vec![Vec::new(); nr];
                super::filtfilt_lanes(s, job(&r, left, right, keep), Some((3, 10)), |v| {
                    for (k, sl) in subl.iter_mut().enumerate() {
                        sl.extend(v.sub.iter().map(|x| x[k]));
                    }
                    assert_eq!(v.len(), keep.1);
                    assert_eq!(v.min.len(), keep.1.div_ceil(super::BLOCK));
                    for k in 0..nr {
                        let mut row = Vec::new();
                        v.extend_row(k, 0, v.len(), &mut row);
                        assert_eq!(row, outs[k]);
                        for (b, blk) in outs[k].chunks(super::BLOCK).enumerate() {
                            let lo = blk.iter().copied().fold(f32::INFINITY, f32::min);
                            let hi = blk.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                            assert_eq!((v.min[b][k], v.max[b][k]), (lo, hi));
                        }
                    }
                });
                for k in 0..nr {
                    let expect: Vec<f32> = outs[k][3..].iter().step_by(10).copied().collect();
                    assert_eq!(subl[k], expect);
                }
            }
        }
    }
}
