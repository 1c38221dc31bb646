//! PyO3 binding layer: converts numpy arrays and errors, releases the GIL, calls the plain-Rust
//! modules. No signal math lives here.

use pyo3::prelude::*;

mod intan;
mod signal;

pub(crate) fn to_pyerr(e: crate::error::EngineError) -> PyErr {
    use crate::error::EngineError::*;
    match e {
        Value(_) => pyo3::exceptions::PyValueError::new_err(e.to_string()),
        File { .. } => pyo3::exceptions::PyValueError::new_err(e.to_string()),
        Io { .. } => pyo3::exceptions::PyOSError::new_err(e.to_string()),
    }
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    signal::register(m)?;
    intan::register(m)?;
    Ok(())
}
