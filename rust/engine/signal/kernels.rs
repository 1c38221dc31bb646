//! The whole-array kernels (`blechrs._native`'s `bandpass`, `common_average_reference`,
//! `noise_level`, `detect_spikes`, `extract_waveforms`, `recording_cutoff`): argument checks,
//! threading and the computation, on array views of int16, float32 or float64 samples, 1-D (one
//! channel) or 2-D (channels x samples), any strides. Channels run in parallel.
//!
//! No argument makes them panic or abort: shapes, sizes and times are checked (every buffer
//! sized by an argument comes from [`crate::limits`]), samples must be finite and at most
//! [`MAX_ABS_SAMPLE`] in magnitude, and a band-pass that comes out non-finite is an error.

use std::borrow::Cow;

use ndarray::{Array2, ArrayD, ArrayView1, ArrayViewD, Axis, Ix1, IxDyn};
use rayon::prelude::*;

use super::cutoff::{self, CutoffParams};
use super::detect::{self, Polarity};
use super::filter::{BandPass, RowBlock, Sample};
use super::reference;
use super::threshold::{self, MedianScratch};
use super::waveforms;
use super::{thread_count, with_threads};
use crate::error::{EngineError, Result};
use crate::limits::{self, MAX_ABS_SAMPLE, MAX_SNIPPET_SAMPLES};

/// Input samples of a kernel: a view of one of the sample types the engine reads.
pub enum Samples<'a> {
    I16(ArrayViewD<'a, i16>),
    F32(ArrayViewD<'a, f32>),
    F64(ArrayViewD<'a, f64>),
}

impl Samples<'_> {
    pub fn shape(&self) -> &[usize] {
        match self {
            Samples::I16(a) => a.shape(),
            Samples::F32(a) => a.shape(),
            Samples::F64(a) => a.shape(),
        }
    }
}

/// Detection thresholds: one for every window, or one per window.
pub enum Thresholds<'a> {
    One(f64),
    PerWindow(ArrayView1<'a, f64>),
}

fn value_err(msg: impl Into<String>) -> EngineError {
    EngineError::Value(msg.into())
}

/// A sample type whose values can be checked against a magnitude bound.
pub trait Finite: Sample {
    /// Largest magnitude of the type (a bound at least this large needs no check).
    const MAX_ABS: f64;
    /// `|self| <= lim` (false for NaN and infinities; `lim` is finite).
    fn within(self, lim: f64) -> bool;
}
impl Finite for i16 {
    const MAX_ABS: f64 = 32768.0;
    #[inline(always)]
    fn within(self, lim: f64) -> bool {
        (self as f64).abs() <= lim
    }
}
impl Finite for f32 {
    const MAX_ABS: f64 = f64::INFINITY;
    #[inline(always)]
    fn within(self, lim: f64) -> bool {
        self.abs() <= lim.min(f32::MAX as f64) as f32
    }
}
impl Finite for f64 {
    const MAX_ABS: f64 = f64::INFINITY;
    #[inline(always)]
    fn within(self, lim: f64) -> bool {
        self.abs() <= lim
    }
}

/// Every sample finite with `|x * scale| <= MAX_ABS_SAMPLE`, else an error naming the channel.
fn check_samples<T: Finite>(x: &[T], channel: usize, name: &str, scale: f64) -> Result<()> {
    let lim = (MAX_ABS_SAMPLE / scale.abs()).min(f64::MAX);
    if T::MAX_ABS <= lim {
        return Ok(());
    }
    if let Some(i) = x.iter().position(|v| !v.within(lim)) {
        let v = x[i].to_f64();
        let scaled = if scale == 1.0 { "" } else { " * scale" };
        return Err(value_err(if v.is_finite() {
            format!(
                "{name}: channel {channel} has the value {v:e} (at sample {i}): \
                 |{name}{scaled}| must be at most {MAX_ABS_SAMPLE:e}"
            )
        } else {
            format!("{name}: channel {channel} has a NaN or infinite value (at sample {i})")
        }));
    }
    Ok(())
}

/// Shape check shared by every kernel: 1-D (one channel) or 2-D (channels x samples).
fn rows_cols(shape: &[usize], name: &str) -> Result<(usize, usize)> {
    match shape {
        [n] => Ok((1, *n)),
        [c, n] => Ok((*c, *n)),
        _ => Err(value_err(format!(
            "{name} must be 1-D (samples) or 2-D (channels x samples), not {}-D",
            shape.len()
        ))),
    }
}

/// Row `i` of a 1-D or 2-D view: borrowed when its samples are contiguous, copied otherwise.
fn row_cow<'a, T: Copy>(v: &ArrayViewD<'a, T>, i: usize, name: &str) -> Result<Cow<'a, [T]>> {
    let r = if v.ndim() == 1 {
        v.clone().into_dimensionality::<Ix1>().expect("1-D")
    } else {
        v.clone()
            .index_axis_move(Axis(0), i)
            .into_dimensionality::<Ix1>()
            .expect("row")
    };
    Ok(match r.to_slice() {
        Some(s) => Cow::Borrowed(s),
        None => {
            let mut o = limits::with_capacity(r.len(), name)?;
            o.extend(r.iter().copied());
            Cow::Owned(o)
        }
    })
}

/// Row `i` as a slice borrowed from the array when its samples are contiguous (a copy
/// otherwise: only called once the channels x samples output, larger, has been allocated).
fn with_row<T: Copy, R>(v: &ArrayViewD<'_, T>, i: usize, f: impl FnOnce(&[T]) -> R) -> R {
    let r = if v.ndim() == 1 {
        v.view().into_dimensionality().unwrap()
    } else {
        v.index_axis(Axis(0), i)
    };
    match r.as_slice() {
        Some(s) => f(s),
        None => {
            let owned: Vec<T> = r.iter().copied().collect();
            f(&owned)
        }
    }
}

/// `scipy.signal.filtfilt(b, a, x * scale)` of a Butterworth band-pass, float32 of `x`'s shape.
pub fn bandpass(
    x: &Samples<'_>,
    fs: f64,
    low: f64,
    high: f64,
    order: usize,
    scale: f64,
) -> Result<ArrayD<f32>> {
    let f = BandPass::new(order, low, high, fs)?;
    if !scale.is_finite() {
        return Err(value_err(format!("scale must be finite, not {scale}")));
    }
    let shape = x.shape().to_vec();
    let (rows, cols) = rows_cols(&shape, "x")?;
    let out = match x {
        Samples::I16(v) => bandpass_rows(v, &f, scale, rows, cols)?,
        Samples::F32(v) => bandpass_rows(v, &f, scale, rows, cols)?,
        Samples::F64(v) => bandpass_rows(v, &f, scale, rows, cols)?,
    };
    ArrayD::from_shape_vec(IxDyn(&shape), out).map_err(|e| value_err(e.to_string()))
}

fn bandpass_rows<T: Finite>(
    v: &ArrayViewD<'_, T>,
    f: &BandPass,
    scale: f64,
    rows: usize,
    cols: usize,
) -> Result<Vec<f32>> {
    if cols <= f.padlen {
        return Err(value_err(format!(
            "x has {cols} samples per channel, too short to filter: it must be longer than the padding of {} samples",
            f.padlen
        )));
    }
    let mut out = limits::zeroed::<f32>(limits::count(&[rows, cols], "x")?, "x")?;
    // Channels are filtered in groups of up to 8 (SIMD lanes), groups in parallel.
    let threads = thread_count(0);
    let group = rows.div_ceil(threads).clamp(1, 8);
    with_threads(0, || {
        out.par_chunks_mut(cols * group)
            .enumerate()
            .try_for_each(|(gi, o)| {
                let r0 = gi * group;
                let n = o.len() / cols;
                let rs = (r0..r0 + n)
                    .map(|i| row_cow(v, i, "x"))
                    .collect::<Result<Vec<_>>>()?;
                for (k, r) in rs.iter().enumerate() {
                    check_samples(r, r0 + k, "x", scale)?;
                }
                let refs: Vec<&[T]> = rs.iter().map(|r| r.as_ref()).collect();
                let mut outs: Vec<&mut [f32]> = o.chunks_mut(cols).collect();
                let job = RowBlock {
                    rows: &refs,
                    scale,
                    left_edge: true,
                    right_edge: true,
                    keep: (0, cols),
                };
                f.filtfilt_rows(job, &mut outs);
                // (bounded finite input gives a finite output unless the filter is unstable)
                for (k, o) in outs.iter().enumerate() {
                    if let Some(i) = o.iter().position(|y| !y.is_finite()) {
                        return Err(value_err(format!(
                            "x: the band-pass of channel {} is not finite (at sample {i}): the \
                             filter is numerically unstable at this order and band",
                            r0 + k
                        )));
                    }
                }
                Ok(())
            })
    })?;
    Ok(out)
}

/// Channel rows of a 1-D or 2-D array as f32 (borrowed when already contiguous float32), each
/// checked for NaN/inf; and whether the array is 1-D.
fn f32_rows<'a>(a: &Samples<'a>, name: &str) -> Result<(Vec<Cow<'a, [f32]>>, bool)> {
    let (rows, _) = rows_cols(a.shape(), name)?;
    // Rows are copied (all of them) unless they are contiguous float32: check the total first.
    let copied = match a {
        Samples::F32(v) => !v.is_standard_layout(),
        _ => true,
    };
    if copied {
        limits::check::<f32>(limits::count(a.shape(), name)?, name)?;
    }
    limits::check::<Cow<'_, [f32]>>(rows, name)?;
    fn conv<'a, T: Finite>(
        v: ArrayViewD<'a, T>,
        rows: usize,
        name: &str,
    ) -> Result<Vec<Cow<'a, [f32]>>> {
        (0..rows)
            .map(|i| {
                let r = row_cow(&v, i, name)?;
                check_samples(&r, i, name, 1.0)?;
                let mut out = limits::with_capacity(r.len(), name)?;
                out.extend(r.iter().map(|&x| x.to_f64() as f32));
                Ok(Cow::Owned(out))
            })
            .collect()
    }
    let out = match a {
        Samples::F32(v) => (0..rows)
            .map(|i| {
                let c = row_cow(v, i, name)?;
                check_samples(&c, i, name, 1.0)?;
                Ok(c)
            })
            .collect::<Result<Vec<_>>>(),
        Samples::F64(v) => conv(v.clone(), rows, name),
        Samples::I16(v) => conv(v.clone(), rows, name),
    }?;
    Ok((out, a.shape().len() == 1))
}

/// The one channel of a 1-D input, as f32.
fn one_channel<'a>(x: &Samples<'a>) -> Result<Cow<'a, [f32]>> {
    if x.shape().len() != 1 {
        return Err(value_err("x must be 1-D (one filtered channel)"));
    }
    let (rows, _) = f32_rows(x, "x")?;
    Ok(rows.into_iter().next().expect("one row"))
}

/// Samples per noise window (None: the whole trace), checking `fs` and `window_s`.
fn window_samples(fs: f64, window_s: Option<f64>) -> Result<Option<usize>> {
    if !(fs.is_finite() && fs > 0.0) {
        return Err(value_err(format!("fs must be a positive number, not {fs}")));
    }
    match window_s {
        None => Ok(None),
        Some(w) if w.is_finite() && w > 0.0 => Ok(Some(((w * fs).round() as usize).max(1))),
        Some(w) => Err(value_err(format!(
            "window_s must be > 0 seconds or None, not {w}"
        ))),
    }
}

fn check_subsample(subsample: i64, name: &str) -> Result<usize> {
    if subsample < 1 {
        return Err(value_err(format!(
            "{name} must be an integer >= 1 (1 = every sample), not {subsample}"
        )));
    }
    Ok(subsample as usize)
}

/// Noise `median(|x - median(x)|) / 0.6745` per window: 1-D `x` gives one value per window,
/// 2-D channels x windows; medians over every `subsample`-th sample of each window.
pub fn noise_level(
    x: &Samples<'_>,
    fs: f64,
    window_s: Option<f64>,
    subsample: i64,
) -> Result<ArrayD<f64>> {
    let step = check_subsample(subsample, "subsample")?;
    let w = window_samples(fs, window_s)?;
    let (rows, one) = f32_rows(x, "x")?;
    let n = rows.first().map(|r| r.len()).unwrap_or(0);
    if n == 0 {
        return Err(value_err("x has no samples"));
    }
    let bounds = threshold::window_bounds(n, w);
    let out: Vec<Vec<f64>> = with_threads(0, || {
        rows.par_iter()
            .map(|r| {
                threshold::noise_per_window(r, &bounds, step)
                    .into_iter()
                    .map(|v| v.0)
                    .collect()
            })
            .collect()
    });
    let shape = if one {
        vec![bounds.len()]
    } else {
        vec![rows.len(), bounds.len()]
    };
    ArrayD::from_shape_vec(IxDyn(&shape), out.concat()).map_err(|e| value_err(e.to_string()))
}

/// Events of one filtered channel: (times, polarity), sorted by time.
#[allow(clippy::too_many_arguments)]
pub fn detect_spikes(
    x: &Samples<'_>,
    thresholds: Thresholds<'_>,
    fs: f64,
    window_s: Option<f64>,
    polarity: &str,
    dead_time_ms: f64,
    subsample: i64,
) -> Result<(Vec<i64>, Vec<i8>)> {
    let step = check_subsample(subsample, "subsample")?;
    let y = one_channel(x)?;
    let pol = Polarity::parse(polarity)?;
    if !(dead_time_ms.is_finite() && dead_time_ms >= 0.0) {
        return Err(value_err(format!(
            "dead_time_ms must be >= 0, not {dead_time_ms}"
        )));
    }
    let w = window_samples(fs, window_s)?;
    let bounds = threshold::window_bounds(y.len(), w);
    let ths = window_thresholds(thresholds, bounds.len())?;
    let ds = detect::dead_samples(dead_time_ms, fs);
    let mut sc = MedianScratch::default();
    let ct: Vec<(f64, f64)> = bounds
        .iter()
        .zip(&ths)
        .map(|(&(a, b), &th)| (threshold::median_step(&y[a..b], step, &mut sc), th))
        .collect();
    let ev = detect::detect(&y, &bounds, &ct, pol, ds);
    Ok(ev.iter().map(|e| (e.0, e.1)).unzip())
}

/// One threshold per window, each finite and >= 0.
fn window_thresholds(thresholds: Thresholds<'_>, windows: usize) -> Result<Vec<f64>> {
    let ths = match thresholds {
        Thresholds::One(v) => vec![v; windows],
        Thresholds::PerWindow(t) if t.len() != windows => {
            return Err(value_err(format!(
                "thresholds has {} values but x has {windows} noise windows",
                t.len()
            )))
        }
        Thresholds::PerWindow(t) => t.to_vec(),
    };
    if let Some(t) = ths.iter().find(|t| !t.is_finite() || **t < 0.0) {
        return Err(value_err(format!(
            "thresholds must be finite and >= 0, not {t}"
        )));
    }
    Ok(ths)
}

/// Snippets `x[t - before : t + after]` of one channel: (n x (before + after) float32, times,
/// number dropped at the edges). `before` and `after` are at most [`MAX_SNIPPET_SAMPLES`] and
/// together at most the length of `x`; every time must be a sample of `x`.
pub fn extract_waveforms(
    x: &Samples<'_>,
    times: ArrayView1<'_, i64>,
    before: usize,
    after: usize,
    align: bool,
) -> Result<(Array2<f32>, Vec<f64>, usize)> {
    for (name, v) in [("before", before), ("after", after)] {
        if v > MAX_SNIPPET_SAMPLES {
            return Err(value_err(format!(
                "{name} must be at most {MAX_SNIPPET_SAMPLES} samples (2**20), not {v}"
            )));
        }
    }
    let l = before + after;
    if l == 0 {
        return Err(value_err("before + after must be > 0 samples"));
    }
    let y = one_channel(x)?;
    let n = y.len();
    if l > n {
        return Err(value_err(format!(
            "before + after ({l} samples) must be at most the length of x ({n} samples)"
        )));
    }
    if let Some(t) = times.iter().find(|&&t| t < 0 || t as u64 >= n as u64) {
        return Err(value_err(format!(
            "times: {t} is not a sample of x (0 to {})",
            n - 1
        )));
    }
    let p = waveforms::pad(align);
    let kept = times
        .iter()
        .filter(|&&t| t as usize >= before + p && t as usize + after + p <= n)
        .count();
    let mut wf = limits::with_capacity(limits::count(&[kept, l], "times")?, "times")?;
    let mut tt = limits::with_capacity(kept, "times")?;
    let mut buf = vec![0f32; l];
    for &t in times.iter() {
        if let Some(d) = waveforms::cut(&y, t, before, after, align, &mut buf) {
            wf.extend_from_slice(&buf);
            tt.push(t as f64 + d);
        }
    }
    debug_assert_eq!(tt.len(), kept);
    let wf = Array2::from_shape_vec((kept, l), wf).map_err(|e| value_err(e.to_string()))?;
    Ok((wf, tt, times.len() - kept))
}

/// Samples kept of one filtered channel by blech_clust's headstage-fell-off test.
pub fn recording_cutoff(x: &Samples<'_>, fs: f64, p: &CutoffParams) -> Result<usize> {
    let y = one_channel(x)?;
    window_samples(fs, None)?;
    Ok(cutoff::recording_cutoff(&y, fs, p))
}

/// Common average reference by groups (channels x samples in, float32 out) and the dead
/// (flat) channels; `groups[i]` is channel i's group (-1 = not referenced); `method` and `clip`
/// as the `reference_method` and `reference_clip` parameters. The first `skip` samples count
/// for the channels' medians and MADs but are not referenced (nor returned): each sample's
/// reference depends on its own column and those statistics only, so the columns returned are
/// those of the whole output.
pub fn common_average_reference(
    x: &Samples<'_>,
    groups: &[i64],
    method: &str,
    clip: f64,
    skip: usize,
) -> Result<(Array2<f32>, Vec<usize>)> {
    let method = reference::Method::parse(method, clip).ok_or_else(|| {
        value_err(format!(
            "method must be 'mean', 'median' or 'clipped_mean' (with clip > 0), not {method:?} (clip {clip})"
        ))
    })?;
    let shape = x.shape();
    if shape.len() != 2 {
        return Err(value_err(format!(
            "x must be 2-D (channels x samples), not {}-D",
            shape.len()
        )));
    }
    let (rows, cols) = (shape[0], shape[1]);
    if cols == 0 && rows > 0 {
        return Err(value_err(format!(
            "x has no samples (shape ({rows}, 0)): the channels' medians are undefined"
        )));
    }
    if groups.len() != rows {
        return Err(value_err(format!(
            "groups has {} entries but x has {rows} channels",
            groups.len()
        )));
    }
    if skip > cols {
        return Err(value_err(format!(
            "skip is {skip} but x has {cols} samples"
        )));
    }
    let (out, dead) = match x {
        Samples::I16(v) => car_rows(v, groups, rows, cols, skip, method)?,
        Samples::F32(v) => car_rows(v, groups, rows, cols, skip, method)?,
        Samples::F64(v) => car_rows(v, groups, rows, cols, skip, method)?,
    };
    let out = Array2::from_shape_vec((rows, cols - skip), out).map_err(|e| value_err(e.to_string()))?;
    Ok((out, dead))
}

/// Whole-array CAR: the same statistics (every 100th sample) and arithmetic as the stream;
/// statistics from all `cols` samples, output for samples `skip..cols`.
fn car_rows<T: Finite>(
    v: &ArrayViewD<'_, T>,
    groups: &[i64],
    rows: usize,
    cols: usize,
    skip: usize,
    method: reference::Method,
) -> Result<(Vec<f32>, Vec<usize>)> {
    let len = cols - skip;
    let mut out = limits::zeroed::<f32>(limits::count(&[rows, len], "x")?, "x")?;
    let stats = car_stats(v, rows, cols)?;
    let (gs, dead) = reference::make_groups(groups, &stats, method);
    with_threads(0, || {
        out.par_chunks_mut(len.max(1))
            .enumerate()
            .for_each(|(c, o)| {
                with_row(v, c, |x| {
                    for (d, s) in o.iter_mut().zip(x.iter().skip(skip)) {
                        *d = s.to_f64() as f32;
                    }
                })
            })
    });
    let mut r = Vec::new();
    for (_, g) in &gs {
        reference::group_reference(
            g,
            len,
            |c| with_row(v, c, |x| x.iter().skip(skip).map(|s| s.to_f64()).collect()),
            &mut r,
        );
        for &(c, mad, _) in &g.live {
            with_row(v, c, |x| {
                for ((d, s), rf) in out[c * len..(c + 1) * len]
                    .iter_mut()
                    .zip(x.iter().skip(skip))
                    .zip(r.iter())
                {
                    *d = (s.to_f64() - mad * rf) as f32;
                }
            });
        }
    }
    Ok((out, dead))
}

/// (median, MAD) of every channel from every `STATS_STEP`-th sample, exact f64 medians (the
/// int16 path in the stream gives the same values); checks every sample for NaN/inf.
fn car_stats<T: Finite>(
    v: &ArrayViewD<'_, T>,
    rows: usize,
    cols: usize,
) -> Result<Vec<(f64, f64)>> {
    let m = cols.div_ceil(reference::STATS_STEP);
    let mut dec = limits::zeroed::<f64>(limits::count(&[rows, m], "x")?, "x")?;
    for c in 0..rows {
        with_row(v, c, |x| -> Result<()> {
            check_samples(x, c, "x", 1.0)?;
            for (j, s) in x.iter().step_by(reference::STATS_STEP).enumerate() {
                dec[c * m + j] = s.to_f64();
            }
            Ok(())
        })?;
    }
    Ok(dec
        .chunks(m.max(1))
        .map(|r| {
            let mut s: Vec<f64> = r.to_vec();
            let med = threshold::median_f64(&mut s);
            let mut d: Vec<f64> = r.iter().map(|v| (v - med).abs()).collect();
            (med, threshold::median_f64(&mut d))
        })
        .collect())
}
