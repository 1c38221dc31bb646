//! `blechrs._native`: the PyO3 binding of the plain-Rust engine (the `blechrs-engine` crate,
//! rust/engine). It only converts: numpy arrays to views and slices and back, Python values to
//! the engine's typed parameters, engine errors and panics to one-line Python exceptions; and it
//! releases the GIL around the engine's work. No computation or parameter rule lives here.

use std::sync::Arc;

use pyo3::exceptions::{PyOSError, PyRuntimeError, PyValueError};
use pyo3::prelude::*;

use blechrs_engine::error::EngineError;
use blechrs_engine::signal::source::SampleSource;

mod intan;
mod params;
mod signal;

pub(crate) fn to_pyerr(e: EngineError) -> PyErr {
    match e {
        EngineError::Value(_) | EngineError::File { .. } => PyValueError::new_err(e.to_string()),
        EngineError::Io { .. } => PyOSError::new_err(e.to_string()),
    }
}

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

/// A readable recording handed to the streaming engine (from an Intan folder or a flat file).
#[pyclass(name = "SampleSource", module = "blechrs._native", frozen)]
pub(crate) struct PySampleSource {
    pub inner: Arc<dyn SampleSource>,
}

#[pymethods]
impl PySampleSource {
    /// Channels in the recording.
    #[getter]
    fn n_channels(&self) -> usize {
        self.inner.n_channels()
    }
    /// Samples per channel.
    #[getter]
    fn n_samples(&self) -> usize {
        self.inner.n_samples()
    }
    fn __repr__(&self) -> String {
        format!(
            "SampleSource({} channels x {} samples)",
            self.inner.n_channels(),
            self.inner.n_samples()
        )
    }
}

/// Which loops the kernels take on this CPU: "avx2+fma", "avx2", "avx" or "baseline" (any
/// x86-64, and every other CPU). Chosen at run time; ``BLECHRS_SIMD=off`` (or ``nofma``), set
/// before the first kernel call, narrows the choice (for tests).
#[pyfunction]
fn simd_level() -> &'static str {
    blechrs_engine::cpu::simd_level()
}

/// The blechrs signal engine (Rust, multi-threaded, GIL released): Intan readers and the
/// kernels that touch every sample. Threads: ``BLECHRS_THREADS`` (unset or 0 = all cores);
/// ``extract_electrodes`` takes ``threads`` first.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add(
        "MICROVOLTS_PER_BIT",
        blechrs_engine::intan::MICROVOLTS_PER_BIT,
    )?;
    m.add_function(wrap_pyfunction!(simd_level, m)?)?;
    m.add_class::<PySampleSource>()?;
    m.add_class::<params::PyExtractParams>()?;
    signal::register(m)?;
    intan::register(m)?;
    Ok(())
}
