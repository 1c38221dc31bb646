//! `ExtractParams`: the engine's typed extraction parameters as a Python class (keyword-only
//! constructor, no defaults, checked by the engine; read-only attributes).

use pyo3::prelude::*;
use pyo3::types::PyTuple;

use super::to_pyerr;
use blechrs_engine::signal::params::ExtractParams;

/// The extraction stage's parameters, each given by keyword (no defaults: they live in Python's
/// parameter object). The engine checks every value; an error names the parameter.
/// ``FIELDS`` lists the names (the Python parameter names of the extraction stage).
#[pyclass(name = "ExtractParams", module = "blechrs._native", frozen)]
pub(crate) struct PyExtractParams {
    pub inner: ExtractParams,
}

/// The constructor, the getters and `__repr__` from one list of the fields.
macro_rules! extract_params_class {
    ($($name:ident: $ty:ty),* $(,)?) => {
        #[pymethods]
        impl PyExtractParams {
            #[new]
            #[pyo3(signature = (*, $($name),*))]
            #[allow(clippy::too_many_arguments)]
            fn new($($name: $ty),*) -> PyResult<Self> {
                let inner = ExtractParams { $($name),* };
                inner.settings(0).map_err(to_pyerr)?;
                Ok(PyExtractParams { inner })
            }

            $(
                #[getter]
                fn $name(&self) -> $ty {
                    self.inner.$name.clone()
                }
            )*

            /// The parameter names, in order.
            #[classattr]
            #[allow(non_snake_case)]
            fn FIELDS(py: Python<'_>) -> PyResult<Py<PyTuple>> {
                Ok(PyTuple::new(py, ExtractParams::FIELDS)?.unbind())
            }

            fn __repr__(slf: &Bound<'_, Self>) -> PyResult<String> {
                let mut parts: Vec<String> = Vec::new();
                $(
                    let v = slf.getattr(stringify!($name))?.repr()?;
                    parts.push(format!("{}={}", stringify!($name), v));
                )*
                Ok(format!("ExtractParams({})", parts.join(", ")))
            }
        }
    };
}

extract_params_class!(
    sampling_rate: f64,
    use_car: bool,
    reference_method: String,
    reference_clip: f64,
    bandpass_lower_cutoff: f64,
    bandpass_upper_cutoff: f64,
    bandpass_order: i64,
    voltage_cutoff: f64,
    max_breach_rate: f64,
    max_secs_above_cutoff: f64,
    max_mean_breach_rate_persec: f64,
    waveform_threshold: f64,
    use_rolling_threshold: bool,
    rolling_threshold_window: f64,
    rolling_threshold_step: f64,
    noise_subsample: i64,
    spike_polarity: String,
    dead_time_ms: f64,
    spike_snapshot_before: f64,
    spike_snapshot_after: f64,
    align_subsample: bool,
);
