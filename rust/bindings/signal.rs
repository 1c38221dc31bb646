//! Bindings for blechrs_engine::signal: numpy in and out, GIL released around the work, errors as Python
//! exceptions, panics caught at the boundary.

use std::borrow::Cow;
use std::sync::{Arc, Mutex};

use numpy::ndarray::{Array2, ArrayViewD, Axis};
use numpy::{
    PyArray1, PyArray2, PyArrayDyn, PyArrayMethods, PyReadonlyArray2, PyReadonlyArrayDyn,
    PyUntypedArrayMethods,
};
use pyo3::exceptions::{PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use rayon::prelude::*;

use super::{to_pyerr, PySampleSource};
use blechrs_engine::error::EngineError;
use blechrs_engine::signal::cutoff::{self, CutoffParams};
use blechrs_engine::signal::detect::{self, Polarity};
use blechrs_engine::signal::filter::{self, BandPass, Sample};
use blechrs_engine::signal::reference;
use blechrs_engine::signal::source::{ArraySource, InterleavedFileSource, SampleSource};
use blechrs_engine::signal::stream::{self, ExtractParams};
use blechrs_engine::signal::threshold::{self, MedianScratch};
use blechrs_engine::signal::waveforms;
use blechrs_engine::signal::with_threads;

/// Run engine work without the GIL; a Rust panic becomes a RuntimeError instead of aborting.
pub(crate) fn run_detached<R: Send>(
    py: Python<'_>,
    f: impl FnOnce() -> Result<R, EngineError> + Send,
) -> PyResult<R> {
    let res = py.detach(|| std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)));
    match res {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(to_pyerr(e)),
        Err(p) => {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "unknown panic".into());
            Err(PyRuntimeError::new_err(format!(
                "internal error in the blechrs engine: {msg}"
            )))
        }
    }
}

fn describe(x: &Bound<'_, PyAny>) -> String {
    match x.getattr("dtype") {
        Ok(dt) => format!(
            "an array of dtype {}",
            dt.str().map(|s| s.to_string()).unwrap_or_default()
        ),
        Err(_) => format!(
            "a {}",
            x.get_type()
                .name()
                .map(|s| s.to_string())
                .unwrap_or_default()
        ),
    }
}

/// A numpy array of one of the sample types the engine reads.
pub(crate) enum AnyArray<'py> {
    I16(PyReadonlyArrayDyn<'py, i16>),
    F32(PyReadonlyArrayDyn<'py, f32>),
    F64(PyReadonlyArrayDyn<'py, f64>),
}

pub(crate) fn any_array<'py>(x: &Bound<'py, PyAny>, name: &str) -> PyResult<AnyArray<'py>> {
    if let Ok(a) = x.extract::<PyReadonlyArrayDyn<'py, i16>>() {
        return Ok(AnyArray::I16(a));
    }
    if let Ok(a) = x.extract::<PyReadonlyArrayDyn<'py, f32>>() {
        return Ok(AnyArray::F32(a));
    }
    if let Ok(a) = x.extract::<PyReadonlyArrayDyn<'py, f64>>() {
        return Ok(AnyArray::F64(a));
    }
    Err(PyTypeError::new_err(format!(
        "{name} must be a numpy array of int16, float32 or float64, not {}",
        describe(x)
    )))
}

/// Shape check shared by every kernel: 1-D (one channel) or 2-D (channels x samples).
fn rows_cols(shape: &[usize], name: &str) -> PyResult<(usize, usize)> {
    match shape {
        [n] => Ok((1, *n)),
        [c, n] => Ok((*c, *n)),
        _ => Err(PyValueError::new_err(format!(
            "{name} must be 1-D (samples) or 2-D (channels x samples), not {}-D",
            shape.len()
        ))),
    }
}

/// Row `i` as a slice borrowed from the array when its samples are contiguous.
pub(crate) fn with_row<T: Copy, R>(
    v: &ArrayViewD<'_, T>,
    i: usize,
    f: impl FnOnce(&[T]) -> R,
) -> R {
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

pub(crate) trait Finite: Sample {
    fn finite(self) -> bool;
}
impl Finite for i16 {
    fn finite(self) -> bool {
        true
    }
}
impl Finite for f32 {
    fn finite(self) -> bool {
        self.is_finite()
    }
}
impl Finite for f64 {
    fn finite(self) -> bool {
        self.is_finite()
    }
}

pub(crate) fn check_finite<T: Finite>(
    x: &[T],
    channel: usize,
    name: &str,
) -> Result<(), EngineError> {
    if let Some(i) = x.iter().position(|v| !v.finite()) {
        return Err(EngineError::Value(format!(
            "{name}: channel {channel} has a NaN or infinite value (at sample {i})"
        )));
    }
    Ok(())
}

/// butter_bandpass(order, low, high, fs) -> (b, a)
#[pyfunction]
fn butter_bandpass<'py>(
    py: Python<'py>,
    order: usize,
    low: f64,
    high: f64,
    fs: f64,
) -> PyResult<(Bound<'py, PyArray1<f64>>, Bound<'py, PyArray1<f64>>)> {
    let d = filter::butter_bandpass(order, low, high, fs).map_err(to_pyerr)?;
    Ok((PyArray1::from_vec(py, d.b), PyArray1::from_vec(py, d.a)))
}

/// Row `i` of a 1-D or 2-D view: borrowed when its samples are contiguous, copied otherwise.
fn row_cow<'a, T: Copy>(v: &ArrayViewD<'a, T>, i: usize) -> Cow<'a, [T]> {
    let r = if v.ndim() == 1 {
        v.clone()
            .into_dimensionality::<numpy::ndarray::Ix1>()
            .expect("1-D")
    } else {
        v.clone()
            .index_axis_move(Axis(0), i)
            .into_dimensionality::<numpy::ndarray::Ix1>()
            .expect("row")
    };
    match r.to_slice() {
        Some(s) => Cow::Borrowed(s),
        None => Cow::Owned(r.iter().copied().collect()),
    }
}

fn bandpass_impl<T: Finite>(
    v: &ArrayViewD<'_, T>,
    f: &BandPass,
    scale: f64,
    rows: usize,
    cols: usize,
) -> Result<Vec<f32>, EngineError> {
    if cols <= f.padlen {
        return Err(EngineError::Value(format!(
            "x has {cols} samples per channel, too short to filter: it must be longer than the padding of {} samples",
            f.padlen
        )));
    }
    let mut out = vec![0f32; rows * cols];
    // Channels are filtered in groups of up to 8 (SIMD lanes), groups in parallel.
    let threads = blechrs_engine::signal::thread_count(0);
    let group = rows.div_ceil(threads).clamp(1, 8);
    with_threads(0, || {
        out.par_chunks_mut(cols * group)
            .enumerate()
            .try_for_each(|(gi, o)| {
                let r0 = gi * group;
                let n = o.len() / cols;
                let rs: Vec<Cow<'_, [T]>> = (r0..r0 + n).map(|i| row_cow(v, i)).collect();
                for (k, r) in rs.iter().enumerate() {
                    check_finite(r, r0 + k, "x")?;
                }
                let refs: Vec<&[T]> = rs.iter().map(|r| r.as_ref()).collect();
                let mut outs: Vec<&mut [f32]> = o.chunks_mut(cols).collect();
                let job = filter::RowBlock {
                    rows: &refs,
                    scale,
                    left_edge: true,
                    right_edge: true,
                    keep: (0, cols),
                };
                f.filtfilt_rows(job, &mut outs);
                Ok(())
            })
    })?;
    Ok(out)
}

/// bandpass(x, fs, low=300, high=3000, order=2, scale=1.0) -> float32 array of x's shape
#[pyfunction]
#[pyo3(signature = (x, fs, low=300.0, high=3000.0, order=2, scale=1.0))]
fn bandpass<'py>(
    py: Python<'py>,
    x: &Bound<'py, PyAny>,
    fs: f64,
    low: f64,
    high: f64,
    order: usize,
    scale: f64,
) -> PyResult<Bound<'py, PyArrayDyn<f32>>> {
    let arr = any_array(x, "x")?;
    let f = BandPass::new(order, low, high, fs).map_err(to_pyerr)?;
    if !scale.is_finite() {
        return Err(PyValueError::new_err(format!(
            "scale must be finite, not {scale}"
        )));
    }
    let shape: Vec<usize> = match &arr {
        AnyArray::I16(a) => a.shape().to_vec(),
        AnyArray::F32(a) => a.shape().to_vec(),
        AnyArray::F64(a) => a.shape().to_vec(),
    };
    let (rows, cols) = rows_cols(&shape, "x")?;
    let out = match &arr {
        AnyArray::I16(a) => {
            let v = a.as_array();
            run_detached(py, || bandpass_impl(&v, &f, scale, rows, cols))?
        }
        AnyArray::F32(a) => {
            let v = a.as_array();
            run_detached(py, || bandpass_impl(&v, &f, scale, rows, cols))?
        }
        AnyArray::F64(a) => {
            let v = a.as_array();
            run_detached(py, || bandpass_impl(&v, &f, scale, rows, cols))?
        }
    };
    let nd = numpy::ndarray::ArrayD::from_shape_vec(numpy::ndarray::IxDyn(&shape), out)
        .map_err(|e| PyRuntimeError::new_err(e.to_string()))?;
    Ok(PyArrayDyn::from_owned_array(py, nd))
}

fn shape_of(a: &AnyArray<'_>) -> Vec<usize> {
    match a {
        AnyArray::I16(a) => a.shape().to_vec(),
        AnyArray::F32(a) => a.shape().to_vec(),
        AnyArray::F64(a) => a.shape().to_vec(),
    }
}

/// Channel rows of a 1-D or 2-D array as f32 (borrowed when already contiguous float32), each
/// checked for NaN/inf.
fn f32_rows<'a>(a: &'a AnyArray<'_>, name: &str) -> PyResult<(Vec<Cow<'a, [f32]>>, bool)> {
    let shape = shape_of(a);
    let (rows, _) = rows_cols(&shape, name)?;
    fn conv<'a, T: Finite>(
        v: ArrayViewD<'a, T>,
        rows: usize,
        name: &str,
    ) -> Result<Vec<Cow<'a, [f32]>>, EngineError> {
        (0..rows)
            .map(|i| {
                let r = if v.ndim() == 1 {
                    v.clone().into_dimensionality().unwrap()
                } else {
                    v.clone().index_axis_move(Axis(0), i)
                };
                let out: Vec<f32> = r.iter().map(|&x| x.to_f64() as f32).collect();
                check_finite(&out, i, name)?;
                Ok(Cow::Owned(out))
            })
            .collect()
    }
    let out = match a {
        AnyArray::F32(x) => {
            let v = x.as_array();
            (0..rows)
                .map(|i| {
                    let r = if v.ndim() == 1 {
                        v.clone().into_dimensionality().unwrap()
                    } else {
                        v.clone().index_axis_move(Axis(0), i)
                    };
                    let c: Cow<'a, [f32]> = match r.to_slice() {
                        Some(s) => Cow::Borrowed(s),
                        None => Cow::Owned(r.iter().copied().collect()),
                    };
                    check_finite(&c, i, name)?;
                    Ok(c)
                })
                .collect::<Result<Vec<_>, EngineError>>()
        }
        AnyArray::F64(x) => conv(x.as_array(), rows, name),
        AnyArray::I16(x) => conv(x.as_array(), rows, name),
    }
    .map_err(to_pyerr)?;
    Ok((out, shape.len() == 1))
}

fn window_samples(fs: f64, window_s: Option<f64>) -> PyResult<Option<usize>> {
    if !(fs.is_finite() && fs > 0.0) {
        return Err(PyValueError::new_err(format!(
            "fs must be a positive number, not {fs}"
        )));
    }
    match window_s {
        None => Ok(None),
        Some(w) if w.is_finite() && w > 0.0 => Ok(Some(((w * fs).round() as usize).max(1))),
        Some(w) => Err(PyValueError::new_err(format!(
            "window_s must be > 0 seconds or None, not {w}"
        ))),
    }
}

fn check_subsample(subsample: i64, name: &str) -> PyResult<usize> {
    if subsample < 1 {
        return Err(PyValueError::new_err(format!(
            "{name} must be an integer >= 1 (1 = every sample), not {subsample}"
        )));
    }
    Ok(subsample as usize)
}

/// noise_level(x, fs, window_s=None, subsample=1) -> float64 per window (1-D x) or
/// channels x windows (2-D x)
#[pyfunction]
#[pyo3(signature = (x, fs, window_s=None, subsample=1))]
fn noise_level<'py>(
    py: Python<'py>,
    x: &Bound<'py, PyAny>,
    fs: f64,
    window_s: Option<f64>,
    subsample: i64,
) -> PyResult<Bound<'py, PyAny>> {
    let step = check_subsample(subsample, "subsample")?;
    let arr = any_array(x, "x")?;
    let w = window_samples(fs, window_s)?;
    let (rows, one) = f32_rows(&arr, "x")?;
    let n = rows.first().map(|r| r.len()).unwrap_or(0);
    if n == 0 {
        return Err(PyValueError::new_err("x has no samples"));
    }
    let bounds = threshold::window_bounds(n, w);
    let out: Vec<Vec<f64>> = run_detached(py, || {
        Ok(with_threads(0, || {
            rows.par_iter()
                .map(|r| {
                    threshold::noise_per_window(r, &bounds, step)
                        .into_iter()
                        .map(|v| v.0)
                        .collect()
                })
                .collect()
        }))
    })?;
    if one {
        Ok(PyArray1::from_vec(py, out.into_iter().next().unwrap_or_default()).into_any())
    } else {
        Ok(PyArray2::from_vec2(py, &out)
            .map_err(|e| PyRuntimeError::new_err(e.to_string()))?
            .into_any())
    }
}

/// detect_spikes(x, thresholds, fs, window_s=None, polarity="both", dead_time_ms=0.5, subsample=1)
#[pyfunction]
#[pyo3(signature = (x, thresholds, fs, window_s=None, polarity="both", dead_time_ms=0.5, subsample=1))]
#[allow(clippy::too_many_arguments)]
fn detect_spikes<'py>(
    py: Python<'py>,
    x: &Bound<'py, PyAny>,
    thresholds: &Bound<'py, PyAny>,
    fs: f64,
    window_s: Option<f64>,
    polarity: &str,
    dead_time_ms: f64,
    subsample: i64,
) -> PyResult<(Bound<'py, PyArray1<i64>>, Bound<'py, PyArray1<i8>>)> {
    let step = check_subsample(subsample, "subsample")?;
    let arr = any_array(x, "x")?;
    let (rows, one) = f32_rows(&arr, "x")?;
    if !one {
        return Err(PyValueError::new_err(
            "x must be 1-D (one filtered channel)",
        ));
    }
    let pol = Polarity::parse(polarity).map_err(to_pyerr)?;
    if !(dead_time_ms.is_finite() && dead_time_ms >= 0.0) {
        return Err(PyValueError::new_err(format!(
            "dead_time_ms must be >= 0, not {dead_time_ms}"
        )));
    }
    let w = window_samples(fs, window_s)?;
    let y = &rows[0];
    let bounds = threshold::window_bounds(y.len(), w);
    let ths: Vec<f64> = match thresholds.extract::<f64>() {
        Ok(v) => vec![v; bounds.len()],
        Err(_) => {
            let t: Vec<f64> = thresholds.extract().map_err(|_| {
                PyTypeError::new_err(
                    "thresholds must be a number or a sequence of numbers (one per window)",
                )
            })?;
            if t.len() != bounds.len() {
                return Err(PyValueError::new_err(format!(
                    "thresholds has {} values but x has {} noise windows",
                    t.len(),
                    bounds.len()
                )));
            }
            t
        }
    };
    if let Some(t) = ths.iter().find(|t| !t.is_finite() || **t < 0.0) {
        return Err(PyValueError::new_err(format!(
            "thresholds must be finite and >= 0, not {t}"
        )));
    }
    let ds = detect::dead_samples(dead_time_ms, fs);
    let ev = run_detached(py, || {
        let mut sc = MedianScratch::default();
        let ct: Vec<(f64, f64)> = bounds
            .iter()
            .zip(&ths)
            .map(|(&(a, b), &th)| (threshold::median_step(&y[a..b], step, &mut sc), th))
            .collect();
        Ok(detect::detect(y, &bounds, &ct, pol, ds))
    })?;
    let times: Vec<i64> = ev.iter().map(|e| e.0).collect();
    let pols: Vec<i8> = ev.iter().map(|e| e.1).collect();
    Ok((PyArray1::from_vec(py, times), PyArray1::from_vec(py, pols)))
}

/// extract_waveforms(x, times, before, after, align=True) -> (waveforms, times float64, n_dropped)
#[pyfunction]
#[pyo3(signature = (x, times, before, after, align=true))]
fn extract_waveforms<'py>(
    py: Python<'py>,
    x: &Bound<'py, PyAny>,
    times: &Bound<'py, PyAny>,
    before: usize,
    after: usize,
    align: bool,
) -> PyResult<(Bound<'py, PyArray2<f32>>, Bound<'py, PyArray1<f64>>, usize)> {
    let arr = any_array(x, "x")?;
    let (rows, one) = f32_rows(&arr, "x")?;
    if !one {
        return Err(PyValueError::new_err(
            "x must be 1-D (one filtered channel)",
        ));
    }
    if before + after == 0 {
        return Err(PyValueError::new_err("before + after must be > 0 samples"));
    }
    let t: Vec<i64> = times.extract().map_err(|_| {
        PyTypeError::new_err("times must be a sequence of integer sample indices (int64)")
    })?;
    let y = &rows[0];
    let (wf, tt, dropped) =
        run_detached(py, || Ok(waveforms::extract(y, &t, before, after, align)))?;
    let l = before + after;
    let n = tt.len();
    let wf =
        Array2::from_shape_vec((n, l), wf).map_err(|e| PyRuntimeError::new_err(e.to_string()))?;
    Ok((
        PyArray2::from_owned_array(py, wf),
        PyArray1::from_vec(py, tt),
        dropped,
    ))
}

/// recording_cutoff(x, fs, voltage_cutoff=10000, max_breach_rate=1, max_secs_above_cutoff=60,
/// max_mean_breach_rate_persec=100) -> samples kept
#[pyfunction]
#[pyo3(signature = (x, fs, voltage_cutoff=10000.0, max_breach_rate=1.0, max_secs_above_cutoff=60.0, max_mean_breach_rate_persec=100.0))]
fn recording_cutoff<'py>(
    py: Python<'py>,
    x: &Bound<'py, PyAny>,
    fs: f64,
    voltage_cutoff: f64,
    max_breach_rate: f64,
    max_secs_above_cutoff: f64,
    max_mean_breach_rate_persec: f64,
) -> PyResult<usize> {
    let arr = any_array(x, "x")?;
    let (rows, one) = f32_rows(&arr, "x")?;
    if !one {
        return Err(PyValueError::new_err(
            "x must be 1-D (one filtered channel)",
        ));
    }
    window_samples(fs, None)?;
    let p = CutoffParams {
        voltage_cutoff,
        max_breach_rate,
        max_secs_above_cutoff,
        max_mean_breach_rate_persec,
    };
    let y = &rows[0];
    run_detached(py, || Ok(cutoff::recording_cutoff(y, fs, &p)))
}

fn car_impl<T: Finite>(
    v: &ArrayViewD<'_, T>,
    groups: &[i64],
    rows: usize,
    cols: usize,
) -> Result<(Vec<f32>, Vec<usize>), EngineError> {
    // Whole-array CAR: the same statistics (every 100th sample) and arithmetic as the stream.
    let m = cols.div_ceil(reference::STATS_STEP);
    let mut dec = vec![0f64; rows * m];
    for c in 0..rows {
        with_row(v, c, |x| -> Result<(), EngineError> {
            check_finite(x, c, "x")?;
            for (j, s) in x.iter().step_by(reference::STATS_STEP).enumerate() {
                dec[c * m + j] = s.to_f64();
            }
            Ok(())
        })?;
    }
    let stats: Vec<(f64, f64)> = dec
        .chunks(m.max(1))
        .map(|r| {
            // float input: exact f64 medians (the int16 path in the stream gives the same values)
            let mut s: Vec<f64> = r.to_vec();
            let med = threshold::median_f64(&mut s);
            let mut d: Vec<f64> = r.iter().map(|v| (v - med).abs()).collect();
            (med, threshold::median_f64(&mut d))
        })
        .collect();
    let (gs, dead) = reference::make_groups(groups, &stats);
    let mut out = vec![0f32; rows * cols];
    with_threads(0, || {
        out.par_chunks_mut(cols.max(1))
            .enumerate()
            .for_each(|(c, o)| {
                with_row(v, c, |x| {
                    for (d, s) in o.iter_mut().zip(x.iter()) {
                        *d = s.to_f64() as f32;
                    }
                })
            })
    });
    let mut r = Vec::new();
    for (_, g) in &gs {
        reference::group_reference(
            g,
            cols,
            |c| with_row(v, c, |x| x.iter().map(|s| s.to_f64()).collect()),
            &mut r,
        );
        for &(c, mad, _) in &g.live {
            with_row(v, c, |x| {
                for ((d, s), rf) in out[c * cols..(c + 1) * cols]
                    .iter_mut()
                    .zip(x.iter())
                    .zip(r.iter())
                {
                    *d = (s.to_f64() - mad * rf) as f32;
                }
            });
        }
    }
    Ok((out, dead))
}

/// common_average_reference(x, groups) -> (float32 channels x samples, dead channels)
#[pyfunction]
fn common_average_reference<'py>(
    py: Python<'py>,
    x: &Bound<'py, PyAny>,
    groups: Vec<i64>,
) -> PyResult<(Bound<'py, PyArray2<f32>>, Vec<usize>)> {
    let arr = any_array(x, "x")?;
    let shape = shape_of(&arr);
    if shape.len() != 2 {
        return Err(PyValueError::new_err(format!(
            "x must be 2-D (channels x samples), not {}-D",
            shape.len()
        )));
    }
    let (rows, cols) = (shape[0], shape[1]);
    if groups.len() != rows {
        return Err(PyValueError::new_err(format!(
            "groups has {} entries but x has {rows} channels",
            groups.len()
        )));
    }
    let (out, dead) = match &arr {
        AnyArray::I16(a) => {
            let v = a.as_array();
            run_detached(py, || car_impl(&v, &groups, rows, cols))?
        }
        AnyArray::F32(a) => {
            let v = a.as_array();
            run_detached(py, || car_impl(&v, &groups, rows, cols))?
        }
        AnyArray::F64(a) => {
            let v = a.as_array();
            run_detached(py, || car_impl(&v, &groups, rows, cols))?
        }
    };
    let out = Array2::from_shape_vec((rows, cols), out)
        .map_err(|e| PyRuntimeError::new_err(e.to_string()))?;
    Ok((PyArray2::from_owned_array(py, out), dead))
}

fn req<'py, T: for<'a> FromPyObject<'a, 'py>>(d: &Bound<'py, PyDict>, key: &str) -> PyResult<T> {
    let v = d
        .get_item(key)?
        .ok_or_else(|| PyValueError::new_err(format!("params: missing parameter {key}")))?;
    v.extract::<T>()
        .map_err(|_| PyValueError::new_err(format!("params: parameter {key} has a bad value {v}")))
}

fn extract_params(d: &Bound<'_, PyDict>) -> PyResult<ExtractParams> {
    let fs: f64 = req(d, "sampling_rate")?;
    if !(fs.is_finite() && fs > 0.0) {
        return Err(PyValueError::new_err(format!(
            "params: sampling_rate must be > 0, not {fs}"
        )));
    }
    let mut p = ExtractParams::blech_defaults(fs);
    p.scale = match d.get_item("microvolts_per_bit")? {
        Some(v) => v.extract()?,
        None => 0.195,
    };
    p.low = req(d, "bandpass_lower_cutoff")?;
    p.high = req(d, "bandpass_upper_cutoff")?;
    p.order = req(d, "bandpass_order")?;
    p.use_car = req(d, "use_car")?;
    p.cutoff = CutoffParams {
        voltage_cutoff: req(d, "voltage_cutoff")?,
        max_breach_rate: req(d, "max_breach_rate")?,
        max_secs_above_cutoff: req(d, "max_secs_above_cutoff")?,
        max_mean_breach_rate_persec: req(d, "max_mean_breach_rate_persec")?,
    };
    p.k = req(d, "waveform_threshold")?;
    let rolling: bool = req(d, "use_rolling_threshold")?;
    let w: f64 = req(d, "rolling_threshold_window")?;
    if rolling && !(w.is_finite() && w > 0.0) {
        return Err(PyValueError::new_err(format!(
            "params: rolling_threshold_window must be > 0 s, not {w}"
        )));
    }
    p.window_s = rolling.then_some(w);
    p.noise_subsample = check_subsample(req(d, "noise_subsample")?, "params: noise_subsample")?;
    let pol: String = req(d, "spike_polarity")?;
    p.polarity = Polarity::parse(&pol).map_err(to_pyerr)?;
    p.dead_time_ms = req(d, "dead_time_ms")?;
    if !(p.dead_time_ms.is_finite() && p.dead_time_ms >= 0.0) {
        return Err(PyValueError::new_err(format!(
            "params: dead_time_ms must be >= 0, not {}",
            p.dead_time_ms
        )));
    }
    let b: f64 = req(d, "spike_snapshot_before")?;
    let a: f64 = req(d, "spike_snapshot_after")?;
    if !(b > 0.0 && a > 0.0 && b.is_finite() && a.is_finite()) {
        return Err(PyValueError::new_err(
            "params: spike_snapshot_before and spike_snapshot_after must be > 0 ms",
        ));
    }
    p.before = (b * fs / 1000.0).round() as usize;
    p.after = (a * fs / 1000.0).round() as usize;
    p.align = req(d, "align_subsample")?;
    let jobs: i64 = req(d, "n_jobs")?;
    p.threads = jobs.max(0) as usize;
    Ok(p)
}

/// extract_electrodes(source, electrodes, car_groups, params, progress=None) -> list[dict]
#[pyfunction]
#[pyo3(signature = (source, electrodes, car_groups, params, progress=None))]
fn extract_electrodes<'py>(
    py: Python<'py>,
    source: &Bound<'py, PyAny>,
    electrodes: Vec<i64>,
    car_groups: Vec<i64>,
    params: &Bound<'py, PyDict>,
    progress: Option<Py<PyAny>>,
) -> PyResult<Bound<'py, PyList>> {
    let p = extract_params(params)?;
    let l = p.before + p.after;
    if let Some(e) = electrodes.iter().find(|&&e| e < 0) {
        return Err(PyValueError::new_err(format!(
            "electrode {e} is not a channel index"
        )));
    }
    let electrodes: Vec<usize> = electrodes.iter().map(|&e| e as usize).collect();
    let cb_err: Mutex<Option<PyErr>> = Mutex::new(None);
    let mut prog = |done: usize, total: usize| -> Result<(), EngineError> {
        Python::attach(|py| -> PyResult<()> {
            py.check_signals()?;
            if let Some(cb) = &progress {
                cb.call1(py, (done, total))?;
            }
            Ok(())
        })
        .map_err(|e| {
            *cb_err.lock().unwrap_or_else(|e| e.into_inner()) = Some(e);
            EngineError::Value("interrupted".into())
        })
    };
    let res = if let Ok(s) = source.cast::<PySampleSource>() {
        let src: Arc<dyn SampleSource> = s.get().inner.clone();
        run_detached(py, || {
            stream::extract_electrodes(src.as_ref(), &electrodes, &car_groups, &p, &mut prog)
        })
    } else if let Ok(a) = source.extract::<PyReadonlyArray2<'py, i16>>() {
        let (nc, ns) = (a.shape()[0], a.shape()[1]);
        let (sc, st) = (a.strides()[0], a.strides()[1]);
        let ptr = a.data() as *const u8 as usize;
        run_detached(py, move || {
            // SAFETY: `a` (a read borrow of the array) lives until this call returns, and numpy's
            // shape and byte strides describe exactly the elements read.
            let src = unsafe { ArraySource::from_raw(ptr as *const u8, nc, ns, sc, st) };
            stream::extract_electrodes(&src, &electrodes, &car_groups, &p, &mut prog)
        })
    } else {
        return Err(PyTypeError::new_err(format!(
            "source must be an int16 array (channels x samples) or a blechrs SampleSource, not {}",
            describe(source)
        )));
    };
    if let Some(e) = cb_err.lock().unwrap_or_else(|e| e.into_inner()).take() {
        return Err(e);
    }
    let res = res?;
    let out = PyList::empty(py);
    for r in res {
        let d = PyDict::new(py);
        let n = r.times.len();
        d.set_item("electrode", r.electrode)?;
        d.set_item("times", PyArray1::from_vec(py, r.times))?;
        d.set_item("times_subsample", PyArray1::from_vec(py, r.times_subsample))?;
        d.set_item("polarity", PyArray1::from_vec(py, r.polarity))?;
        let wf = Array2::from_shape_vec((n, l), r.waveforms)
            .map_err(|e| PyRuntimeError::new_err(e.to_string()))?;
        d.set_item("waveforms", PyArray2::from_owned_array(py, wf))?;
        d.set_item("threshold", r.threshold)?;
        d.set_item("mad_val", r.mad_val)?;
        d.set_item("noise", PyArray1::from_vec(py, r.noise))?;
        d.set_item("cutoff_sample", r.cutoff_sample)?;
        d.set_item("n_edge_dropped", r.n_edge_dropped)?;
        d.set_item("dead", r.dead)?;
        out.append(d)?;
    }
    Ok(out)
}

/// interleaved_file_source(path, n_channels, offset=0) -> SampleSource over a flat int16 file.
#[pyfunction]
#[pyo3(signature = (path, n_channels, offset=0))]
fn interleaved_file_source(
    path: std::path::PathBuf,
    n_channels: usize,
    offset: u64,
) -> PyResult<PySampleSource> {
    let p = path.to_string_lossy().to_string();
    let s = InterleavedFileSource::open(&p, n_channels, offset).map_err(to_pyerr)?;
    Ok(PySampleSource { inner: Arc::new(s) })
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(butter_bandpass, m)?)?;
    m.add_function(wrap_pyfunction!(bandpass, m)?)?;
    m.add_function(wrap_pyfunction!(noise_level, m)?)?;
    m.add_function(wrap_pyfunction!(detect_spikes, m)?)?;
    m.add_function(wrap_pyfunction!(extract_waveforms, m)?)?;
    m.add_function(wrap_pyfunction!(recording_cutoff, m)?)?;
    m.add_function(wrap_pyfunction!(common_average_reference, m)?)?;
    m.add_function(wrap_pyfunction!(extract_electrodes, m)?)?;
    m.add_function(wrap_pyfunction!(interleaved_file_source, m)?)?;
    Ok(())
}
