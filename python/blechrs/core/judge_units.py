"""Judge a set of events as a unit: keep it or not, single or multi, regular or fast spiking.

1. Keep it as a unit when it has >= ``cluster_count_threshold`` events, fires at
   >= ``min_firing_rate`` Hz, has SNR >= ``min_snr``, at most ``max_threshold_share`` of its
   events just above the detection threshold (more: the upper tail of background activity below
   it; ``max_multi_threshold_share`` when it would be a multi-unit) and an L-ratio
   <= ``autosort_max_l_ratio`` (a higher one is a mixture of its neighbours; the template step's
   units skip this test).
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


def rejection(number: int, clusters, n_events: int, kind: str, reason: str) -> dict:
    """What auto-sort did not keep as a unit (clusters of solution ``number``), which criterion
    (``kind``: one of REJECTION_KINDS) and why in words: a row of QA_output/autosort_rejected.csv."""
    return dict(solution=int(number), clusters="+".join(str(int(c)) for c in clusters), events=int(n_events),
                kind=kind, reason=reason)


#: The criteria a candidate can fail (``rejection``'s ``kind``), in the order they are tested.
REJECTION_KINDS = ("echo", "too few events", "too slow", "low SNR", "background", "mixture")


def why_not_a_unit(m: dict, params, check_isolation: bool = True, final: bool = True) -> tuple[str, str] | None:
    """Which keep criterion (step 1 of the module doc) the metrics ``m`` fail: (its kind, why in
    words); None if they pass them all. ``final`` False: the candidate goes on to the template
    assignment, which judges it again, so the multi-unit background test waits for then (a hash
    cluster dropped before the assignment would give its events to the unit nearest them)."""
    a = params.autosort
    if m["n_events"] < int(a.cluster_count_threshold):
        return "too few events", f"{m['n_events']} events, fewer than cluster_count_threshold ({a.cluster_count_threshold})"
    if m["firing_rate"] < float(a.min_firing_rate):
        return "too slow", f"{m['firing_rate']:.3f} Hz, slower than min_firing_rate ({a.min_firing_rate:g})"
    if m["snr"] < float(a.min_snr):
        return "low SNR", f"SNR {m['snr']:.2f}, below min_snr ({a.min_snr:g})"
    share = m["threshold_share"]
    if share > float(a.max_threshold_share):
        return "background", (f"{100 * share:.0f} % of its events above the threshold within 1 noise "
                              f"SD of it, more than max_threshold_share ({a.max_threshold_share:g}): the tail of "
                              f"activity below the threshold (background), not a neuron")
    if final and share > float(a.max_multi_threshold_share) and not is_single_unit(m, params):
        return "background", (f"a multi-unit with {100 * share:.0f} % of its events above the threshold within 1 "
                              f"noise SD of it, more than max_multi_threshold_share ({a.max_multi_threshold_share:g}): "
                              f"a hash of background units at the threshold, not a neuron")
    if check_isolation and np.isfinite(m["l_ratio"]) and m["l_ratio"] > float(a.autosort_max_l_ratio):
        return "mixture", f"L-ratio {m['l_ratio']:.2f}, above autosort_max_l_ratio ({a.autosort_max_l_ratio:g}): a mixture"
    return None


def is_single_unit(m: dict, params) -> bool:
    """Step 2 of the module doc: whether the metrics ``m`` are a single unit's."""
    isi_limits = list(params.autosort.ISI_violations_thresholds)
    isi_ok = m["isi_violations_1ms"] < isi_limits[0] and m["isi_violations_2ms"] < isi_limits[1]
    return bool(isi_ok and m["contamination"] <= float(params.autosort.single_unit_max_contamination))


def judge_unit(waveforms, times, features, member, params, fs, mad_val, duration_s, number, clusters,
               origin, check_isolation: bool = True, dtype=None, rejected: list | None = None,
               final: bool = True) -> Unit | None:
    """The events where ``member`` is True as a unit: None when they fail a keep criterion (step 1
    of the module doc; with ``rejected``, a ``rejection`` saying which is appended to it), else the
    unit with its single/multi and RS/FS labels (step 2). The metrics read the waveforms as
    ``dtype`` (default: theirs); ``final``: see ``why_not_a_unit``."""
    peak = peak_index(params, waveforms.shape[1] if waveforms.ndim == 2 else 0)
    m = unit_metrics(waveforms, times, features, member, fs, mad_val, duration_s, peak, dtype,
                     threshold_sds=float(params.extract.waveform_threshold))
    why = why_not_a_unit(m, params, check_isolation, final)
    if why is not None:
        if rejected is not None:
            rejected.append(rejection(number, clusters, m["n_events"], *why))
        return None
    single = is_single_unit(m, params)
    fs_width = float(params.autosort.fast_spiking_max_width_ms)
    unit_type = "f" if np.isfinite(m["width_ms"]) and m["width_ms"] < fs_width else "r"
    reason = (f"{origin}: {m['n_events']} events, "
              f"{m['firing_rate']:.2f} Hz, SNR {m['snr']:.1f}, ISI<1ms {m['isi_violations_1ms']:.2f}% "
              f"ISI<2ms {m['isi_violations_2ms']:.2f}%, contamination {m['contamination']:.2f} -> "
              f"{'single' if single else 'multi'} unit, width {m['width_ms']:.2f} ms -> {unit_type}")
    # The electrode is the caller's to set: the events alone do not say which it is.
    return Unit(-1, int(number), tuple(int(c) for c in clusters), single_unit=single,
                regular_spiking=unit_type == "r", fast_spiking=unit_type == "f", metrics=m, reason=reason)
