"""Judge a set of events as a unit: keep it or not, single or multi, regular or fast spiking.

1. Keep it as a unit when it has >= ``cluster_count_threshold`` events, fires at
   >= ``min_firing_rate`` Hz, has SNR >= ``min_snr``, at most ``max_threshold_share`` of its
   events just above the detection threshold (more: the upper tail of background activity below
   it) and an L-ratio <= ``autosort_max_l_ratio`` (a higher one is a mixture of its neighbours;
   the template step's units skip this test).
2. Label it single unit when its ISI violations are within ``ISI_violations_thresholds`` (< 1 ms,
   < 2 ms) and its contamination estimate is <= ``single_unit_max_contamination``; else multi-unit.
   Fast spiking ('f') when the trough-to-peak width is below ``fast_spiking_max_width_ms``, else
   regular spiking ('r').

Each unit carries its metrics and a one-line reason, so a person can check or overrule it in the
sort file.
"""

from __future__ import annotations

import numpy as np

from blechrs.core.features import peak_index
from blechrs.core.metrics import unit_metrics
from blechrs.model import Unit


def judge_unit(waveforms, times, features, member, params, fs, mad_val, duration_s, number, clusters,
               origin, check_isolation: bool = True, dtype=None) -> Unit | None:
    """The events where ``member`` is True as a unit: None when they fail a keep criterion (step 1
    of the module doc), else the unit with its single/multi and RS/FS labels (step 2). The
    metrics read the waveforms as ``dtype`` (default: theirs)."""
    isi_limits = list(params.autosort.ISI_violations_thresholds)
    peak = peak_index(params, waveforms.shape[1] if waveforms.ndim == 2 else 0)
    m = unit_metrics(waveforms, times, features, member, fs, mad_val, duration_s, peak, dtype,
                     threshold_sds=float(params.extract.waveform_threshold))
    if m["n_events"] < int(params.autosort.cluster_count_threshold):
        return None
    if m["firing_rate"] < float(params.autosort.min_firing_rate):
        return None
    if m["snr"] < float(params.autosort.min_snr):
        return None
    if m["threshold_share"] > float(params.autosort.max_threshold_share):  # background, not a neuron
        return None
    if check_isolation and np.isfinite(m["l_ratio"]) and m["l_ratio"] > float(params.autosort.autosort_max_l_ratio):
        return None
    isi_ok = m["isi_violations_1ms"] < isi_limits[0] and m["isi_violations_2ms"] < isi_limits[1]
    single = bool(isi_ok and m["contamination"] <= float(params.autosort.single_unit_max_contamination))
    fs_width = float(params.autosort.fast_spiking_max_width_ms)
    unit_type = "f" if np.isfinite(m["width_ms"]) and m["width_ms"] < fs_width else "r"
    reason = (f"{origin}: {m['n_events']} events, "
              f"{m['firing_rate']:.2f} Hz, SNR {m['snr']:.1f}, ISI<1ms {m['isi_violations_1ms']:.2f}% "
              f"ISI<2ms {m['isi_violations_2ms']:.2f}%, contamination {m['contamination']:.2f} -> "
              f"{'single' if single else 'multi'} unit, width {m['width_ms']:.2f} ms -> {unit_type}")
    # The electrode is the caller's to set: the events alone do not say which it is.
    return Unit(-1, int(number), tuple(int(c) for c in clusters), single_unit=single,
                regular_spiking=unit_type == "r", fast_spiking=unit_type == "f", metrics=m, reason=reason)
