//! Bindings of the signal kernels (`blechrs_engine::signal`): numpy arrays to views and back, the
//! GIL released around the work, errors as Python exceptions, panics caught at the boundary.
//! The docstrings here are the kernels' documentation (`blechrs.kernels` re-exports them).

use std::sync::{Arc, Mutex};

use numpy::ndarray::{Array2, Ix1};
use numpy::{
    AllowTypeChange, PyArray1, PyArray2, PyArrayDyn, PyArrayLike1, PyArrayLike2, PyArrayLikeDyn,
    PyArrayMethods, PyReadonlyArray2, PyReadonlyArrayDyn, PyUntypedArrayMethods,
};
use pyo3::exceptions::{PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use super::params::PyExtractParams;
use super::{run_detached, to_pyerr, PySampleSource};
use blechrs_engine::error::EngineError;
use blechrs_engine::intan::MICROVOLTS_PER_BIT;
use blechrs_engine::signal::cutoff::CutoffParams;
use blechrs_engine::signal::filter;
use blechrs_engine::signal::kernels::{self, Samples, Thresholds};
use blechrs_engine::signal::matched_filter::{self, MatchedFilter};
use blechrs_engine::signal::source::{ArraySource, InterleavedFileSource, SampleSource};
use blechrs_engine::signal::stream::{self, ElectrodeResult};

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

/// A sequence of integers as a Vec, converted only when it has at most `max` entries (a longer
/// one, e.g. a broadcast array of 2**40, would need its whole length allocated first).
fn int_list(obj: &Bound<'_, PyAny>, name: &str, max: usize, of: &str) -> PyResult<Vec<i64>> {
    let n = obj
        .len()
        .map_err(|_| PyTypeError::new_err(format!("{name} must be a sequence of integers")))?;
    if n > max {
        return Err(PyValueError::new_err(format!(
            "{name} has {n} entries but {of} has {max} channels"
        )));
    }
    obj.extract::<Vec<i64>>()
}

/// A numpy array of one of the sample types the engine reads (held for the call).
enum AnyArray<'py> {
    I16(PyReadonlyArrayDyn<'py, i16>),
    F32(PyReadonlyArrayDyn<'py, f32>),
    F64(PyReadonlyArrayDyn<'py, f64>),
}

impl AnyArray<'_> {
    fn samples(&self) -> Samples<'_> {
        match self {
            AnyArray::I16(a) => Samples::I16(a.as_array()),
            AnyArray::F32(a) => Samples::F32(a.as_array()),
            AnyArray::F64(a) => Samples::F64(a.as_array()),
        }
    }
}

fn any_array<'py>(x: &Bound<'py, PyAny>, name: &str) -> PyResult<AnyArray<'py>> {
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

/// Butterworth band-pass coefficients ``(b, a)``, float64.
///
/// The same design as ``scipy.signal.butter(order, [low, high], 'bandpass', fs=fs)`` (bilinear
/// transform, pre-warped edges); ``order`` is per edge, so the band-pass has ``2 * order`` poles.
/// Raises ValueError unless ``0 < low < high < fs / 2``.
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

/// Zero-phase Butterworth band-pass of ``x * scale``; float32 of ``x``'s shape.
///
/// Equals ``scipy.signal.filtfilt(b, a, x * scale)`` with ``(b, a) = butter_bandpass(...)`` and
/// scipy's default odd padding (``3 * (2 * order + 1)`` samples), computed in float64.
/// ``x``: int16, float32 or float64, 1-D (samples) or 2-D (channels x samples), any strides.
/// Channels run in parallel. Raises ValueError for a band at or above Nyquist, a signal not
/// longer than the padding, a NaN/inf or ``|x * scale| > 1e30`` (naming the channel), or a
/// non-finite result (an unstable order and band); TypeError for another dtype.
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
    let v = arr.samples();
    let out = run_detached(py, || kernels::bandpass(&v, fs, low, high, order, scale))?;
    Ok(PyArrayDyn::from_owned_array(py, out))
}

/// Common average reference by groups, as blech_clust HEAD (spec 3.2), float32 out.
///
/// ``groups[i]`` is channel i's group id (-1 = not referenced). Each channel is normalised as
/// ``(x - median) / MAD`` with both statistics from every 100th sample (MAD unscaled); the
/// group's reference is the mean of its normalised channels and each member becomes
/// ``x - MAD * reference`` (blech_clust's ``((x-med)/MAD - ref) * MAD + med``, not truncated to
/// int). A flat channel (MAD 0) is left out of the mean and unchanged; it is listed in the
/// returned dead channels. Groups with fewer than two live channels are unchanged.
/// ``method``: how the normalised channels are combined per sample: ``"mean"`` (blech_clust),
/// ``"median"``, or ``"clipped_mean"`` (the mean of those within ``clip`` of the median), as
/// the ``reference_method`` and ``reference_clip`` parameters. ``skip``: the first ``skip``
/// samples count for the medians and MADs but are not referenced; the output is
/// ``x[:, skip:]`` referenced (the same values as those columns of the whole output).
#[pyfunction]
#[pyo3(signature = (x, groups, method="mean", clip=3.0, skip=0))]
fn common_average_reference<'py>(
    py: Python<'py>,
    x: &Bound<'py, PyAny>,
    groups: &Bound<'py, PyAny>,
    method: &str,
    clip: f64,
    skip: usize,
) -> PyResult<(Bound<'py, PyArray2<f32>>, Vec<usize>)> {
    let arr = any_array(x, "x")?;
    let v = arr.samples();
    let rows = v.shape().first().copied().unwrap_or(0);
    let groups = int_list(groups, "groups", rows, "x")?;
    let (out, dead) = run_detached(py, || {
        kernels::common_average_reference(&v, &groups, method, clip, skip)
    })?;
    Ok((PyArray2::from_owned_array(py, out), dead))
}

/// Noise ``median(|x - median(x)|) / 0.6745`` per window, float64.
///
/// ``window_s=None``: one value for the whole trace. Otherwise consecutive windows of
/// ``round(window_s * fs)`` samples; the remainder is folded into the last window (a trace
/// shorter than two windows is one window). 2-D input gives channels x windows.
/// ``subsample=N`` takes both medians over every Nth sample of each window (numpy's
/// ``x[a:b:N]``), as ``extract_electrodes`` does with ``noise_subsample``; 1 = exact.
#[pyfunction]
#[pyo3(signature = (x, fs, window_s=None, subsample=1))]
fn noise_level<'py>(
    py: Python<'py>,
    x: &Bound<'py, PyAny>,
    fs: f64,
    window_s: Option<f64>,
    subsample: i64,
) -> PyResult<Bound<'py, PyArrayDyn<f64>>> {
    let arr = any_array(x, "x")?;
    let v = arr.samples();
    let out = run_detached(py, || kernels::noise_level(&v, fs, window_s, subsample))?;
    Ok(PyArrayDyn::from_owned_array(py, out))
}

fn bad_thresholds() -> PyErr {
    PyTypeError::new_err("thresholds must be a number or a sequence of numbers (one per window)")
}

/// `thresholds` as ``numpy.asarray(thresholds, dtype=float64)``, 0-D or 1-D (held for the call).
fn thresholds_arg<'py>(
    thresholds: &Bound<'py, PyAny>,
) -> PyResult<PyArrayLikeDyn<'py, f64, AllowTypeChange>> {
    let a = thresholds
        .extract::<PyArrayLikeDyn<'py, f64, AllowTypeChange>>()
        .map_err(|_| bad_thresholds())?;
    match a.ndim() {
        0 | 1 => Ok(a),
        _ => Err(bad_thresholds()),
    }
}

/// The engine's view of [`thresholds_arg`]'s array: a scalar or one per window.
fn thresholds_view<'a>(
    a: &'a PyArrayLikeDyn<'_, f64, AllowTypeChange>,
) -> PyResult<Thresholds<'a>> {
    let v = a.as_array();
    if v.ndim() == 0 {
        return Ok(Thresholds::One(
            v.iter().copied().next().unwrap_or(f64::NAN),
        ));
    }
    v.into_dimensionality::<Ix1>()
        .map(Thresholds::PerWindow)
        .map_err(|_| bad_thresholds())
}

/// Events of a filtered trace: ``(times int64, polarity int8)``, sorted by time.
///
/// Windows as in :func:`noise_level`; ``thresholds`` is one value or one per window, and each
/// window is centred on its median (of every ``subsample``-th sample of the window, as in
/// :func:`noise_level`). A sample is supra-threshold when ``x - centre <= -th``
/// (negative) or ``>= th`` (positive), for the polarities asked for. Supra-threshold samples
/// within ``dead_time_ms`` of the previous one (at least adjacent) are one event, whatever their
/// sign, so both lobes of a spike give one event; the event is at the largest ``|x - centre|``
/// (first on a tie) with that sample's sign. The last event is kept. A threshold of 0 detects
/// nothing in its window.
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
    let arr = any_array(x, "x")?;
    let th_arr = thresholds_arg(thresholds)?;
    let th = thresholds_view(&th_arr)?;
    let v = arr.samples();
    let (times, pols) = run_detached(py, || {
        kernels::detect_spikes(&v, th, fs, window_s, polarity, dead_time_ms, subsample)
    })?;
    Ok((PyArray1::from_vec(py, times), PyArray1::from_vec(py, pols)))
}

/// Snippets ``x[t - before : t + after]``: ``(float32 n x (before+after), times float64, n_dropped)``.
///
/// ``times``: integer sample indices (converted as ``numpy.ascontiguousarray(times, int64)``).
/// ``align=True``: a parabola through the extremum and its neighbours gives the sub-sample spike
/// time (returned), and the snippet is resampled through it with cubic (Catmull-Rom)
/// interpolation, so the extremum sits at index ``before``; the window then needs 2 extra
/// samples each side. Events whose window leaves ``x`` are dropped and counted. Raises
/// ValueError for a time that is not a sample of ``x``, ``before`` or ``after`` above 2**20, or
/// ``before + after`` longer than ``x``.
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
    let t = times
        .extract::<PyArrayLike1<'py, i64, AllowTypeChange>>()
        .map_err(|_| {
            PyTypeError::new_err("times must be a sequence of integer sample indices (int64)")
        })?;
    let t = t.as_array();
    let v = arr.samples();
    let (wf, tt, dropped) = run_detached(py, || {
        kernels::extract_waveforms(&v, t, before, after, align)
    })?;
    Ok((
        PyArray2::from_owned_array(py, wf),
        PyArray1::from_vec(py, tt),
        dropped,
    ))
}

/// Samples to keep of a filtered trace (uV): blech_clust's "headstage fell off" test (spec 4.2).
///
/// Counts samples above ``voltage_cutoff`` (positive only). If the breach rate per second
/// >= ``max_breach_rate`` and the seconds with a breach >= ``max_secs_above_cutoff`` and their
/// mean count >= ``max_mean_breach_rate_persec``, the trace is cut at the start of the first
/// second with more than ``max_mean_breach_rate_persec`` breaches; otherwise it is kept whole.
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
    let p = CutoffParams {
        voltage_cutoff,
        max_breach_rate,
        max_secs_above_cutoff,
        max_mean_breach_rate_persec,
    };
    let v = arr.samples();
    run_detached(py, || kernels::recording_cutoff(&v, fs, &p))
}

/// The recording to stream: a SampleSource or a 2-D int16 array (read in place).
enum Source<'py> {
    Shared(Arc<dyn SampleSource>),
    Array(PyReadonlyArray2<'py, i16>),
}

fn source_arg<'py>(source: &Bound<'py, PyAny>) -> PyResult<Source<'py>> {
    if let Ok(s) = source.cast::<PySampleSource>() {
        return Ok(Source::Shared(s.get().inner.clone()));
    }
    if let Ok(a) = source.extract::<PyReadonlyArray2<'py, i16>>() {
        return Ok(Source::Array(a));
    }
    if let Ok(a) = source.extract::<PyReadonlyArrayDyn<'py, i16>>() {
        return Err(PyValueError::new_err(format!(
            "source must be 2-D (channels x samples), not {}-D",
            a.ndim()
        )));
    }
    Err(PyTypeError::new_err(format!(
        "source must be an int16 array (channels x samples) or a blechrs SampleSource, not {}",
        describe(source)
    )))
}

/// Streamed CAR -> band-pass -> cutoff -> threshold -> detect -> waveforms for many electrodes.
///
/// ``source``: an int16 channels x samples array (any strides, np.memmap fine: read by chunks)
/// or a :class:`SampleSource`. ``electrodes``: channel indices to output. ``car_groups[i]``: CAR
/// group of channel i (-1 = none; empty = no CAR). ``params``: an :class:`ExtractParams`.
/// ``threads``: worker threads (0 = ``BLECHRS_THREADS`` or all cores). ``progress(done, total)``
/// is called after each chunk. Streams in chunks (one noise window each), electrodes in
/// parallel, GIL released; samples are scaled by ``scale``: the recording's microvolts per
/// count (``MICROVOLTS_PER_BIT`` for Intan, the default; finite and non-zero).
///
/// Returns one dict per electrode: ``electrode, times`` (int64, sample of the extremum),
/// ``times_subsample`` (float64), ``polarity`` (int8), ``waveforms`` (float32 n x L, uV,
/// extremum at index ``samples_before``), ``threshold`` (uV; median of the window thresholds),
/// ``mad_val`` (uV, median |x - median| of the filtered trace), ``noise`` (float64 per window),
/// ``cutoff_sample``, ``n_edge_dropped``, ``dead`` (flat channel). Window medians and MADs use
/// every ``noise_subsample``-th sample of the window (``y[a:b:N]``); ``mad_val`` and a global
/// threshold use ``y[:cutoff:S]`` with ``S = max(noise_subsample, ceil(n_samples / 2**20))``.
///
/// ``spill``: one file prefix per electrode; each electrode's events are then written as they
/// are cut to ``<prefix>.times`` (int64), ``.times_subsample`` (float64), ``.polarity`` (int8)
/// and ``.waveforms`` (float32, L per event), raw little-endian, instead of kept in memory (the
/// memory then does not grow with the recording's length); its dict has ``n_spilled`` (events
/// in the files) and empty event arrays. The caller removes the files.
#[pyfunction]
#[pyo3(signature = (source, electrodes, car_groups, params, threads=0, progress=None, scale=MICROVOLTS_PER_BIT, spill=None))]
#[allow(clippy::too_many_arguments)]
fn extract_electrodes<'py>(
    py: Python<'py>,
    source: &Bound<'py, PyAny>,
    electrodes: &Bound<'py, PyAny>,
    car_groups: &Bound<'py, PyAny>,
    params: &Bound<'py, PyExtractParams>,
    threads: i64,
    progress: Option<Py<PyAny>>,
    scale: f64,
    spill: Option<Vec<String>>,
) -> PyResult<Bound<'py, PyList>> {
    let src = source_arg(source)?;
    let nch = match &src {
        Source::Shared(s) => s.n_channels(),
        Source::Array(a) => a.shape()[0],
    };
    let electrodes = int_list(electrodes, "electrodes", nch, "the recording")?;
    let car_groups = int_list(car_groups, "car_groups", nch, "the recording")?;
    if let Some(e) = electrodes.iter().find(|&&e| e < 0) {
        return Err(PyValueError::new_err(format!(
            "electrode {e} is not a channel index"
        )));
    }
    let electrodes: Vec<usize> = electrodes.iter().map(|&e| e as usize).collect();
    let p = &params.get().inner;
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
    let spill = spill.as_deref();
    let mut extract = |src: &dyn SampleSource| {
        stream::extract_spilled(
            src,
            &electrodes,
            &car_groups,
            p,
            scale,
            threads,
            &mut prog,
            spill,
        )
    };
    let res = match &src {
        Source::Shared(s) => run_detached(py, || extract(s.as_ref())),
        Source::Array(a) => {
            let (nc, ns) = (a.shape()[0], a.shape()[1]);
            let (sc, st) = (a.strides()[0], a.strides()[1]);
            let ptr = a.data() as *const u8 as usize;
            run_detached(py, move || {
                // SAFETY: `a` (a read borrow of the array) lives until this call returns, and
                // numpy's shape and byte strides describe exactly the elements read.
                let src = unsafe { ArraySource::from_raw(ptr as *const u8, nc, ns, sc, st) };
                extract(&src)
            })
        }
    };
    if let Some(e) = cb_err.lock().unwrap_or_else(|e| e.into_inner()).take() {
        return Err(e);
    }
    let out = PyList::empty(py);
    for r in res? {
        out.append(result_dict(py, r)?)?;
    }
    Ok(out)
}

/// One electrode's result as the dict `extract_electrodes` returns.
fn result_dict<'py>(py: Python<'py>, r: ElectrodeResult) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    let shape = (r.times.len(), r.waveform_len);
    d.set_item("electrode", r.electrode)?;
    d.set_item("times", PyArray1::from_vec(py, r.times))?;
    d.set_item("times_subsample", PyArray1::from_vec(py, r.times_subsample))?;
    d.set_item("polarity", PyArray1::from_vec(py, r.polarity))?;
    let wf = Array2::from_shape_vec(shape, r.waveforms)
        .map_err(|e| PyRuntimeError::new_err(e.to_string()))?;
    d.set_item("waveforms", PyArray2::from_owned_array(py, wf))?;
    d.set_item("threshold", r.threshold)?;
    d.set_item("mad_val", r.mad_val)?;
    d.set_item("noise", PyArray1::from_vec(py, r.noise))?;
    d.set_item("cutoff_sample", r.cutoff_sample)?;
    d.set_item("n_edge_dropped", r.n_edge_dropped)?;
    d.set_item("dead", r.dead)?;
    if let Some(n) = r.n_spilled {
        d.set_item("n_spilled", n)?;
    }
    Ok(d)
}

/// A SampleSource over a flat little-endian int16 file interleaved by channel (amplifier.dat),
/// starting ``offset`` bytes in.
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

/// Matched-filter detection on one filtered trace ``x`` (float32, 1-D): for each unit ``u`` the
/// correlation ``z_u(t) = sum_j filters[u, j] * x[t - before + j]``, its local maxima above
/// ``thresholds[u]``, and across units one detection per ``half_width`` samples, the best score
/// ``weights[u] * z + biases[u]`` first (greedy). Returns (times, units, z) sorted by time.
/// Windows that would leave the trace are not looked for. Blocks of the trace run on ``threads``
/// threads (0 = ``BLECHRS_THREADS`` or all cores); memory is bounded by the blocks.
#[pyfunction]
#[pyo3(signature = (x, filters, before, thresholds, weights, biases, half_width, threads=0))]
#[allow(clippy::too_many_arguments)]
fn matched_filter_detect<'py>(
    py: Python<'py>,
    x: PyArrayLike1<'py, f32, AllowTypeChange>,
    filters: PyArrayLike2<'py, f32, AllowTypeChange>,
    before: usize,
    thresholds: Vec<f64>,
    weights: Vec<f64>,
    biases: Vec<f64>,
    half_width: usize,
    threads: usize,
) -> PyResult<(
    Bound<'py, PyArray1<i64>>,
    Bound<'py, PyArray1<i64>>,
    Bound<'py, PyArray1<f32>>,
)> {
    let xv = x.as_array();
    let xs: std::borrow::Cow<'_, [f32]> = match xv.as_slice() {
        Some(s) => s.into(),
        None => {
            // a strided or broadcast view: copied, once its size is known to fit
            let mut v = blechrs_engine::limits::with_capacity(xv.len(), "x").map_err(to_pyerr)?;
            v.extend(xv.iter().copied());
            v.into()
        }
    };
    let f = filters.as_array();
    let mf = MatchedFilter {
        filters: f,
        before,
        thresholds: &thresholds,
        weights: &weights,
        biases: &biases,
        half_width,
    };
    let found = run_detached(py, || matched_filter::detect(&xs, &mf, threads))?;
    Ok((
        PyArray1::from_iter(py, found.iter().map(|d| d.time)),
        PyArray1::from_iter(py, found.iter().map(|d| d.unit as i64)),
        PyArray1::from_iter(py, found.iter().map(|d| d.z)),
    ))
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
    m.add_function(wrap_pyfunction!(matched_filter_detect, m)?)?;
    Ok(())
}
