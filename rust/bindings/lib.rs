//! PyO3 binding layer: converts numpy arrays and errors, releases the GIL, calls the plain-Rust
//! modules. No signal math lives here.

use std::sync::Arc;

use pyo3::prelude::*;

use blechrs_engine::signal::source::SampleSource;

mod intan;
mod signal;

pub(crate) fn to_pyerr(e: blechrs_engine::error::EngineError) -> PyErr {
    use blechrs_engine::error::EngineError::*;
    match e {
        Value(_) => pyo3::exceptions::PyValueError::new_err(e.to_string()),
        File { .. } => pyo3::exceptions::PyValueError::new_err(e.to_string()),
        Io { .. } => pyo3::exceptions::PyOSError::new_err(e.to_string()),
    }
}

/// A readable recording (numpy array or Intan files) handed from Python to the streaming engine.
/// `bindings::intan` creates these for Intan folders; `bindings::signal` reads from them.
#[pyclass(name = "SampleSource", module = "blechrs._native", frozen)]
pub(crate) struct PySampleSource {
    pub inner: Arc<dyn SampleSource>,
}

#[pymethods]
impl PySampleSource {
    #[getter]
    fn n_channels(&self) -> usize {
        self.inner.n_channels()
    }
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

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_class::<PySampleSource>()?;
    signal::register(m)?;
    intan::register(m)?;
    Ok(())
}
