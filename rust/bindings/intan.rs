//! Bindings for blechrs_engine::intan: open Intan recordings as `SampleSource`s, parse headers, find
//! digital-input edges and time-stamp jumps. File reading happens with the GIL released.

use std::path::PathBuf;
use std::sync::Arc;

use numpy::ndarray::Array2;
use numpy::{IntoPyArray, PyArray1, PyArray2};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use super::{run_detached, PySampleSource};
use blechrs_engine::intan::dat::{self, PerChannelSource, PerSignalSource};
use blechrs_engine::intan::header::{read_header, Header};
use blechrs_engine::intan::rhd::RhdSource;
use blechrs_engine::signal::source::{read_range, SampleSource};

type Edges = Vec<blechrs_engine::intan::dat::Edges>;
type Jumps = Vec<blechrs_engine::intan::dat::Jump>;

fn header_dict<'py>(py: Python<'py>, h: &Header) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("version", (h.version.0, h.version.1))?;
    d.set_item("sample_rate", h.sample_rate as f64)?;
    d.set_item("dsp_enabled", h.dsp_enabled)?;
    d.set_item("actual_dsp_cutoff_frequency", h.actual_dsp_cutoff as f64)?;
    d.set_item("actual_lower_bandwidth", h.actual_lower_bandwidth as f64)?;
    d.set_item("actual_upper_bandwidth", h.actual_upper_bandwidth as f64)?;
    d.set_item("desired_dsp_cutoff_frequency", h.desired_dsp_cutoff as f64)?;
    d.set_item("desired_lower_bandwidth", h.desired_lower_bandwidth as f64)?;
    d.set_item("desired_upper_bandwidth", h.desired_upper_bandwidth as f64)?;
    d.set_item("notch_filter_mode", h.notch_mode)?;
    d.set_item("notch_filter_frequency", h.notch_hz() as f64)?;
    d.set_item(
        "desired_impedance_test_frequency",
        h.desired_impedance_test_frequency as f64,
    )?;
    d.set_item(
        "actual_impedance_test_frequency",
        h.actual_impedance_test_frequency as f64,
    )?;
    d.set_item("notes", h.notes.to_vec())?;
    d.set_item("num_temp_sensor_channels", h.num_temp_sensors)?;
    d.set_item("eval_board_mode", h.eval_board_mode)?;
    d.set_item("reference_channel", &h.reference_channel)?;
    d.set_item("block_samples", h.block_samples())?;
    d.set_item("header_size", h.header_size)?;
    let chans = PyList::empty(py);
    for c in &h.channels {
        let cd = PyDict::new(py);
        cd.set_item("port_name", &c.port_name)?;
        cd.set_item("port_prefix", &c.port_prefix)?;
        cd.set_item("native_channel_name", &c.native_name)?;
        cd.set_item("custom_channel_name", &c.custom_name)?;
        cd.set_item("native_order", c.native_order)?;
        cd.set_item("custom_order", c.custom_order)?;
        cd.set_item("signal_type", c.signal_type)?;
        cd.set_item("chip_channel", c.chip_channel)?;
        cd.set_item("board_stream", c.board_stream)?;
        cd.set_item(
            "electrode_impedance_magnitude",
            c.impedance_magnitude as f64,
        )?;
        cd.set_item("electrode_impedance_phase", c.impedance_phase as f64)?;
        chans.append(cd)?;
    }
    d.set_item("channels", chans)?;
    Ok(d)
}

fn edges_py<'py>(py: Python<'py>, e: Edges) -> PyResult<Bound<'py, PyList>> {
    let out = PyList::empty(py);
    for (on, off) in e {
        out.append((PyArray1::from_vec(py, on), PyArray1::from_vec(py, off)))?;
    }
    Ok(out)
}

/// RHD2000 header (info.rhd or a .rhd file, versions 1.x-3.x) as a dict; ``channels`` lists
/// the enabled channels in storage order (``signal_type`` 0 amplifier ... 5 digital out).
#[pyfunction]
fn intan_read_header<'py>(py: Python<'py>, path: PathBuf) -> PyResult<Bound<'py, PyDict>> {
    let h = run_detached(py, || read_header(&path))?;
    header_dict(py, &h)
}

/// Amplifier channels from one int16 file per channel (all files the same length).
#[pyfunction]
fn intan_per_channel_source(py: Python<'_>, paths: Vec<PathBuf>) -> PyResult<PySampleSource> {
    let s = run_detached(py, || PerChannelSource::open(&paths))?;
    Ok(PySampleSource { inner: Arc::new(s) })
}

/// Amplifier channels from amplifier.dat (int16, interleaved sample-major).
#[pyfunction]
fn intan_per_signal_source(
    py: Python<'_>,
    path: PathBuf,
    n_channels: usize,
) -> PyResult<PySampleSource> {
    let s = run_detached(py, || PerSignalSource::open(&path, n_channels))?;
    Ok(PySampleSource { inner: Arc::new(s) })
}

/// Number of uint16/int16 samples in a .dat file of `n_words` words per sample (errors name the
/// file if it is odd-length or holds a partial sample).
#[pyfunction]
#[pyo3(signature = (path, n_words=1))]
fn intan_dat_samples(py: Python<'_>, path: PathBuf, n_words: usize) -> PyResult<usize> {
    run_detached(py, || dat::dat_samples(&path, n_words))
}

/// Onsets/offsets (int64 sample indices) of each mask over a file of uint16 words.
/// Returns (n_samples, [(onsets, offsets) per mask]).
#[pyfunction]
fn intan_word_file_edges<'py>(
    py: Python<'py>,
    path: PathBuf,
    masks: Vec<u16>,
) -> PyResult<(usize, Bound<'py, PyList>)> {
    let (n, e) = run_detached(py, || dat::word_file_edges(&path, &masks))?;
    Ok((n, edges_py(py, e)?))
}

/// time.dat check: (n_samples, [(sample index, counter before, counter at index)]).
#[pyfunction]
fn intan_time_dat_jumps(py: Python<'_>, path: PathBuf) -> PyResult<(usize, Jumps)> {
    run_detached(py, || dat::time_dat_jumps(&path))
}

/// Samples [start, stop) of ``channels`` from any SampleSource, int16 (channels x samples).
#[pyfunction]
fn read_source<'py>(
    py: Python<'py>,
    source: &PySampleSource,
    channels: Vec<usize>,
    start: usize,
    stop: usize,
) -> PyResult<Bound<'py, PyArray2<i16>>> {
    let inner = source.inner.clone();
    let (v, len) = run_detached(py, || read_range(inner.as_ref(), &channels, start, stop))?;
    let a = Array2::from_shape_vec((channels.len(), len), v)
        .map_err(|e| pyo3::exceptions::PyRuntimeError::new_err(e.to_string()))?;
    Ok(a.into_pyarray(py))
}

/// Traditional .rhd recording: one file or several consecutive ones, read as one.
#[pyclass(name = "RhdRecording", module = "blechrs._native", frozen)]
struct PyRhdRecording {
    inner: Arc<RhdSource>,
}

#[pymethods]
impl PyRhdRecording {
    /// Open ``paths`` (consecutive .rhd files of one recording).
    #[new]
    fn new(py: Python<'_>, paths: Vec<PathBuf>) -> PyResult<Self> {
        let s = run_detached(py, || RhdSource::open(&paths))?;
        Ok(Self { inner: Arc::new(s) })
    }
    /// The amplifier channels as a SampleSource (int16 counts, 0.195 uV/bit).
    #[getter]
    fn source(&self) -> PySampleSource {
        PySampleSource {
            inner: self.inner.clone() as Arc<dyn SampleSource>,
        }
    }
    /// The header of the first file, as ``intan_read_header`` gives it.
    #[getter]
    fn header<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        header_dict(py, &self.inner.header)
    }
    /// Samples per channel over all the files.
    #[getter]
    fn n_samples(&self) -> usize {
        self.inner.n_samples()
    }
    /// What the reader found odd (each a sentence).
    #[getter]
    fn warnings(&self) -> Vec<String> {
        self.inner.warnings.clone()
    }
    /// [(path, first sample, number of blocks)] per file.
    #[getter]
    fn parts(&self) -> Vec<(String, usize, usize)> {
        self.inner
            .parts
            .iter()
            .map(|p| (p.path.display().to_string(), p.first_sample, p.n_blocks))
            .collect()
    }
    /// Bytes per data block.
    #[getter]
    fn block_bytes(&self) -> usize {
        self.inner.layout.size
    }
    /// Time-stamp jumps: [(sample index, counter before, counter at index)].
    fn timestamp_jumps(&self, py: Python<'_>) -> PyResult<Jumps> {
        let s = self.inner.clone();
        run_detached(py, || s.timestamp_jumps())
    }
    /// [(onsets, offsets)] (int64 sample indices) of each mask over the digital-input word.
    fn digital_in_edges<'py>(
        &self,
        py: Python<'py>,
        masks: Vec<u16>,
    ) -> PyResult<Bound<'py, PyList>> {
        let s = self.inner.clone();
        let e = run_detached(py, || s.digital_in_edges(&masks))?;
        edges_py(py, e)
    }
    /// [(onsets, offsets)] (int64 sample indices) of each mask over the digital-output word.
    fn digital_out_edges<'py>(
        &self,
        py: Python<'py>,
        masks: Vec<u16>,
    ) -> PyResult<Bound<'py, PyList>> {
        let s = self.inner.clone();
        let e = run_detached(py, || s.digital_out_edges(&masks))?;
        edges_py(py, e)
    }
    /// uint16 words [start, stop) of 'adc' channel ``index``, or of the 'dig_in' / 'dig_out' word.
    fn read_board_words<'py>(
        &self,
        py: Python<'py>,
        section: String,
        index: usize,
        start: usize,
        stop: usize,
    ) -> PyResult<Bound<'py, PyArray1<u16>>> {
        let s = self.inner.clone();
        let v = run_detached(py, || {
            s.read_board_words(&section, index, start, stop.saturating_sub(start))
        })?;
        Ok(PyArray1::from_vec(py, v))
    }
    fn __repr__(&self) -> String {
        format!(
            "RhdRecording({} files, {} amplifier channels x {} samples)",
            self.inner.parts.len(),
            self.inner.n_channels(),
            self.inner.n_samples()
        )
    }
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(intan_read_header, m)?)?;
    m.add_function(wrap_pyfunction!(intan_per_channel_source, m)?)?;
    m.add_function(wrap_pyfunction!(intan_per_signal_source, m)?)?;
    m.add_function(wrap_pyfunction!(intan_dat_samples, m)?)?;
    m.add_function(wrap_pyfunction!(intan_word_file_edges, m)?)?;
    m.add_function(wrap_pyfunction!(intan_time_dat_jumps, m)?)?;
    m.add_function(wrap_pyfunction!(read_source, m)?)?;
    m.add_class::<PyRhdRecording>()?;
    Ok(())
}
