//! Bindings for crate::signal: numpy in and out, GIL released around the work, errors as Python
//! exceptions, panics caught at the boundary.

use numpy::ndarray::{ArrayViewD, Axis};
use numpy::{PyArray1, PyArrayDyn, PyReadonlyArrayDyn, PyUntypedArrayMethods};
use pyo3::exceptions::{PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use rayon::prelude::*;

use super::to_pyerr;
use crate::error::EngineError;
use crate::signal::filter::{self, BandPass, Sample};
use crate::signal::with_threads;

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
            Err(PyRuntimeError::new_err(format!("internal error in the blechrs engine: {msg}")))
        }
    }
}

fn describe(x: &Bound<'_, PyAny>) -> String {
    match x.getattr("dtype") {
        Ok(dt) => format!("an array of dtype {}", dt.str().map(|s| s.to_string()).unwrap_or_default()),
        Err(_) => format!("a {}", x.get_type().name().map(|s| s.to_string()).unwrap_or_default()),
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
pub(crate) fn with_row<T: Copy, R>(v: &ArrayViewD<'_, T>, i: usize, f: impl FnOnce(&[T]) -> R) -> R {
    let r = if v.ndim() == 1 { v.view().into_dimensionality().unwrap() } else { v.index_axis(Axis(0), i) };
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

pub(crate) fn check_finite<T: Finite>(x: &[T], channel: usize, name: &str) -> Result<(), EngineError> {
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
    with_threads(0, || {
        out.par_chunks_mut(cols.max(1)).enumerate().try_for_each_init(
            || (Vec::new(), vec![0f64; cols]),
            |(work, tmp), (i, o)| {
                with_row(v, i, |x| {
                    check_finite(x, i, "x")?;
                    f.filtfilt(x, scale, tmp, work)?;
                    for (d, s) in o.iter_mut().zip(tmp.iter()) {
                        *d = *s as f32;
                    }
                    Ok(())
                })
            },
        )
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
        return Err(PyValueError::new_err(format!("scale must be finite, not {scale}")));
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

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(butter_bandpass, m)?)?;
    m.add_function(wrap_pyfunction!(bandpass, m)?)?;
    Ok(())
}
