"""Auto-sort: which clusters of an electrode are units, merged how, single or multi, RS or FS.

Transparent criteria, all computed in core (no downloaded classifier), composed here:

1. Start from an over-clustered solution (core/choose_base_solution.py): more clusters than units
   is the safe side, splitting one unit in two can be undone, lumping two cannot.
2. Merge clusters that are one unit, closest pair first, on refractory evidence and on their
   separation and valley along their discriminant (core/merge_clusters.py).
3. Drop echoes: second detections of the same spikes (core/echoes.py).
4. Keep a (merged) cluster as a unit when it passes the keep criteria, and label it single or
   multi-unit, regular or fast spiking (core/judge_units.py).
5. With ``template_assignment`` (default), refine: the kept units are re-decided event by event
   against their mean waveforms and a noise model (core/assign_templates.py); units that cannot
   be told from noise crossings are dropped (core/noise_units.py), a burst's later spikes given to
   a smaller neighbour go back to the unit of its first spike, and units of one shape and one
   amplitude mode merged (core/merge_units.py); then units with bimodal amplitudes or two shapes
   are split (core/split_units.py), and assigned and merged again, up to ``SPLIT_ROUNDS`` rounds;
   last, noise-like units and, as in step 3, echoes are dropped. The units are then those of the
   template solution, judged by step 4 without the L-ratio test.

The template assignment is a solution of its own (number ``TEMPLATE_SOLUTION``, kind
``"templates"``): cluster ``k`` is unit ``k``, -1 is noise, so the sort file can select or
overrule it like any other solution. ``template_assignment = False`` turns the step off.

Each choice carries its metrics and a one-line reason, so a person can check or overrule it in the
sort file.

Across the electrodes of a CAR group, once every electrode is sorted: units that are reference
echoes of a larger unit on another wire of the group are removed, units with echoes mixed in
flagged (:func:`drop_reference_echoes`, core/echoes.py).
"""

from __future__ import annotations

import numpy as np

from blechrs.core.assign_templates import assign_to_templates, assign_with_model
from blechrs.core.choose_base_solution import choose_base_solution
from blechrs.core.cluster import Solution
from blechrs.core.echoes import REFERENCE_OWN_SHARE, ReferenceEcho, is_echo, reference_echoes
from blechrs.core.features import peak_index
from blechrs.core.judge_units import judge_unit, rejection, why_not_a_unit
from blechrs.model import Unit
from blechrs.core.merge_clusters import merge_clusters
from blechrs.core.merge_units import burst_members, merge_same_units
from blechrs.core.rows import rows
from blechrs.core.noise_model import one_noise_model_per_assignment
from blechrs.core.noise_units import drop_noise_like, noise_like_units
from blechrs.core.split_units import split_by_amplitude, split_by_shape

#: Solution number of the template assignment (GMM solutions start at K = 2).
TEMPLATE_SOLUTION = 1
#: Why an echo (step 3) is not a unit, as QA_output/autosort_rejected.csv says it.
ECHO_REASON = "second detections of a larger unit's spikes (the rebound re-crossing the threshold): an echo"
#: Auto-sort's refinement works on a float64 copy of the waveforms up to this size (MB; 56 k
#: events of 75 samples), on the float32 waveforms above it.
FLOAT64_COPY_MB = 32
#: Runs of consecutive events the refinement of an electrode above ``max_refine_events`` works on.
REFINE_STRETCHES = 16
#: Rounds of split (amplitude, then shape), assign, merge: a wire's third or fourth unit is often
#: found inside a part split off in the round before.
SPLIT_ROUNDS = 3


def autosort_electrode(waveforms, times, features, solutions, params, sampling_rate=None, mad_val=0.0,
                       duration_s: float | None = None, clustered: np.ndarray | None = None,
                       rejected: list | None = None) -> list[Unit]:
    """Units of one electrode chosen from its clustering ``solutions`` (see the module doc).

    ``sampling_rate`` defaults to ``params.extract.sampling_rate``; ``duration_s`` (the recording's length,
    for firing rates) defaults to the span of ``times``. ``clustered`` marks the events the
    clustering saw (default: all); the others (label -1 in every solution) can join a unit only
    through the template assignment, which also adds the template solution to ``solutions``.
    ``rejected``: a list to which each candidate not kept as a unit is appended, with why
    (core.judge_units.rejection).
    """
    waveforms = np.asarray(waveforms)
    times = np.asarray(times)
    features = np.asarray(features, dtype=np.float64)
    n = len(times)
    if n == 0 or not solutions:
        return []
    fs = float(sampling_rate if sampling_rate is not None else params.extract.sampling_rate)
    if duration_s is None or duration_s <= 0:
        duration_s = max(float(times.max() - times.min()) / fs, 1.0 / fs)
    choices = _units_of_clusters(waveforms, times, features, solutions, params, fs, mad_val, duration_s,
                                 rejected)
    if choices and bool(params.autosort.template_assignment):
        solution, choices = refine_choices(waveforms, times, features, choices, solutions, params, fs,
                                           mad_val, duration_s, clustered, rejected)
        if solution is not None:
            solutions[solution.number] = solution
    return choices


def drop_reference_echoes(units: list[Unit], group_of: dict[int, int], sampling_rate: float,
                          own_share: dict[int, float] | None = None, means=None, shared_mean=None,
                          candidates=None) -> tuple[list[Unit], list[tuple[Unit, Unit | None, ReferenceEcho]]]:
    """The units (with times and waveforms) less those that are reference echoes of larger units
    on other wires of their CAR group (``group_of``: electrode -> group id, -1 or missing = not
    referenced): by coincidence with one larger unit in its inverted shape, or (``own_share``:
    unit index -> core.echoes.own_wire_share) because their own wire, unreferenced, does not
    carry them. Also returns (unit, the parent it shares most with or None, the finding) for
    each removed or flagged unit; a flagged unit is kept and its reason says so. ``means`` and
    ``shared_mean``: the units' waveforms summarised (core.echoes.reference_echoes) when they are
    not in memory; ``candidates``: core.echoes.echo_candidates of the units, if already found."""
    waveforms = None if means is not None else [u.waveforms for u in units]
    found = {f.unit: f for f in reference_echoes([u.times for u in units], waveforms,
                                                 [u.electrode for u in units],
                                                 [group_of.get(u.electrode, -1) for u in units], sampling_rate,
                                                 means=means, shared_mean=shared_mean, candidates=candidates)}
    for i, share in (own_share or {}).items():
        if i in found:
            found[i].own_share = share  # measured: the CSV says so even for a flagged unit
        if group_of.get(units[i].electrode, -1) < 0 or share >= REFERENCE_OWN_SHARE:
            continue
        f = found.get(i) or ReferenceEcho(i, -1, 0.0, float("nan"), float("nan"), True)
        f.removed, f.own_share = True, share
        found[i] = f
    names = [f"electrode {x.electrode:02d} {x.label}" for x in units]
    for f in found.values():
        if not f.removed:
            u = units[f.unit]
            note = f.reason(names)
            u.reason = f"{u.reason}; {note}" if u.reason else note
    gone = {i for i, f in found.items() if f.removed}
    return ([u for i, u in enumerate(units) if i not in gone],
            [(units[i], units[f.parent] if f.parent >= 0 else None, f) for i, f in sorted(found.items())])


def _units_of_clusters(waveforms, times, features, solutions, params, fs, mad_val, duration_s, rejected=None
                       ) -> list[Unit]:
    """Steps 1-4 of the module doc: the units among the merged clusters of the base solution."""
    n = len(times)
    number = choose_base_solution(features, solutions, params)
    labels = np.asarray(solutions[number].labels)
    max_dprime = float(params.autosort.autosort_merge_dprime)
    min_valley = float(params.autosort.autosort_merge_valley)
    peak = peak_index(params, waveforms.shape[1] if waveforms.ndim == 2 else 0)

    groups = merge_clusters(features, times, labels, fs, max_dprime, min_valley, duration_s)
    amplitude = rows(waveforms[:, peak], dtype=waveforms.dtype) if len(waveforms) else np.zeros(n)
    choices = []
    for group in groups:
        member = np.isin(labels, group)
        if is_echo(times, amplitude, member, fs):
            if rejected is not None:
                rejected.append(rejection(number, group, int(member.sum()), "echo", ECHO_REASON))
            continue
        merged = "+".join(str(c) for c in group)
        choice = judge_unit(waveforms, times, features, member, params, fs, mad_val, duration_s,
                            number, list(group), f"clusters {merged} of solution {number}", rejected=rejected,
                            final=not bool(params.autosort.template_assignment))
        if choice is not None:
            choices.append(choice)
    return choices


def refine_choices(waveforms, times, features, choices, solutions, params, sampling_rate, mad_val,
                   duration_s, clustered=None, rejected=None):
    """Auto-sort's units re-decided by template assignment, with bimodal units split (step 5).

    Returns (the template solution, the new unit choices on it); (None, auto-sort's choices less
    those indistinguishable from noise crossings) when the electrode has too few unit events for
    the noise model."""
    with one_noise_model_per_assignment():
        return _refine_choices(waveforms, times, features, choices, solutions, params, sampling_rate, mad_val,
                               duration_s, clustered, rejected)


def _refine_choices(waveforms, times, features, choices, solutions, params, sampling_rate, mad_val,
                    duration_s, clustered=None, rejected=None):
    n = len(times)
    cap = int(params.autosort.max_refine_events)
    if n > cap:
        return _refine_on_stretches(waveforms, times, features, choices, solutions, params, sampling_rate,
                                    mad_val, duration_s, clustered, refinement_events(n, cap), rejected)
    # Every step below reads the rows it needs in float64 (core/rows.py): from one float64 copy when
    # it is small (faster: the steps read rows many times), from the float32 waveforms as extracted
    # when it is not (memory). The results are the same bits either way.
    w = _refinement_rows(np.asarray(waveforms))
    t = np.asarray(times)
    assigned = _refined_assignment(w, t, choices, solutions, params, sampling_rate, mad_val, duration_s,
                                   clustered)
    if not isinstance(assigned, np.ndarray):
        return None, _final_judgement(assigned, params, rejected)
    return _template_units(w, t, features, assigned, params, sampling_rate, mad_val, duration_s, rejected)


def refinement_events(n: int, cap: int) -> np.ndarray:
    """The events (sorted indices) the refinement of an electrode with ``n`` > ``cap`` events
    works on: REFINE_STRETCHES runs of consecutive events, evenly spread over the session, ``cap``
    in all. Consecutive, so that ISIs and bursts within them stay as they are; spread, so that a
    drifting unit is seen at every stage of its drift."""
    size = max(1, cap // REFINE_STRETCHES)
    starts = np.round(np.linspace(0, n - size, REFINE_STRETCHES)).astype(np.int64)
    return np.unique((starts[:, None] + np.arange(size)[None, :]).ravel())


def _refine_on_stretches(waveforms, times, features, choices, solutions, params, sampling_rate, mad_val,
                         duration_s, clustered, sample, rejected=None):
    """``_refine_choices`` of an electrode with more events than ``max_refine_events``: the
    refinement on the events ``sample``; every other event then goes to its units (or noise) a
    chunk at a time (core/assign_templates.assign_with_model); the units are judged on all."""
    n = len(times)
    t = np.asarray(times)
    w_sample = _refinement_rows(rows(waveforms, sample, waveforms.dtype))
    # the sample spans this share of the session: its rates are the session's
    sample_duration = duration_s * len(sample) / n
    sub = {k: Solution(k, np.asarray(s.labels)[sample], s.kind) for k, s in solutions.items()}
    assigned = _refined_assignment(w_sample, t[sample], choices, sub, params, sampling_rate, mad_val,
                                   sample_duration, None if clustered is None else np.asarray(clustered)[sample])
    if not isinstance(assigned, np.ndarray):
        return None, _final_judgement(assigned, params, rejected)
    others = np.ones(n, dtype=bool)
    others[sample] = False
    rest = np.flatnonzero(others)
    _, eligible = _choices_as_labels(choices, solutions, n, clustered)
    labels = np.full(n, -1, dtype=np.int64)
    labels[sample] = assigned
    labels[rest] = assign_with_model(w_sample, assigned, sampling_rate, sample_duration, waveforms, rest,
                                     eligible, str(params.autosort.amplitude_model))
    del w_sample
    return _template_units(np.asarray(waveforms), t, features, labels, params, sampling_rate, mad_val,
                           duration_s, rejected)


def _final_judgement(choices, params, rejected=None) -> list[Unit]:
    """Step 4's ``choices`` kept as they are (no template assignment ran) less those that fail the
    criteria step 4 left to the assignment's judgement (judge_units.why_not_a_unit, ``final``)."""
    kept = []
    for c in choices:
        why = why_not_a_unit(c.metrics, params, check_isolation=False)
        if why is None:
            kept.append(c)
        elif rejected is not None:
            rejected.append(rejection(c.solution, c.clusters, int(c.metrics["n_events"]), *why))
    return kept


def _refinement_rows(w: np.ndarray) -> np.ndarray:
    """The waveforms the refinement reads: a float64 copy when it is small, else as they are."""
    return w.astype(np.float64) if w.size * 8 <= FLOAT64_COPY_MB * 2**20 else w


def _refined_assignment(w, t, choices, solutions, params, sampling_rate, mad_val, duration_s, clustered):
    """Step 5 of the module doc up to the units' judgement: each event's unit (-1: none) after
    assignment, splits and merges; or, when the electrode has too few unit events for the noise
    model, auto-sort's ``choices`` less those indistinguishable from noise crossings (a list)."""
    peak = peak_index(params, w.shape[1])
    sds = float(params.extract.waveform_threshold)
    unit_labels, eligible = _choices_as_labels(choices, solutions, len(w), clustered)
    model = dict(amplitude_model=str(params.autosort.amplitude_model))
    burst = bool(params.autosort.burst_merge)
    assigned = assign_to_templates(w, unit_labels, sampling_rate, duration_s, eligible, **model)
    if assigned is None:  # too few events for the model: auto-sort's units, less noise crossings
        noise = set(noise_like_units(w, unit_labels, peak, sampling_rate, duration_s, sds))
        return [c for k, c in enumerate(choices) if k not in noise]
    threshold = sds * float(mad_val) / 0.6745
    if burst:
        assigned = burst_members(w, assigned, t, sampling_rate)
    assigned = merge_same_units(w, drop_noise_like(w, assigned, peak, sampling_rate, duration_s, sds), t,
                                sampling_rate, duration_s, burst_merge=burst)
    assigned = _split_rounds(w, t, assigned, eligible, threshold, peak, sampling_rate, duration_s, model, burst)
    return drop_noise_like(w, assigned, peak, sampling_rate, duration_s, sds)


def _template_units(w, t, features, assigned, params, sampling_rate, mad_val, duration_s, rejected=None):
    """The template solution of an assignment (units numbered by size) and its units that pass
    step 4's judgement (without the L-ratio test) and are not echoes."""
    if assigned.max() < 0:
        return Solution(TEMPLATE_SOLUTION, assigned, "templates"), []
    peak = peak_index(params, w.shape[1])
    labels, n_units = _numbered_by_size(assigned)
    amplitude = rows(w[:, peak])
    new = []
    for k in range(n_units):
        # the rebound of a larger unit's spikes re-crossing the threshold (step 3's echo test)
        if is_echo(t, amplitude, labels == k, sampling_rate):
            if rejected is not None:
                rejected.append(rejection(TEMPLATE_SOLUTION, [k], int(np.count_nonzero(labels == k)), "echo",
                                          ECHO_REASON))
            continue
        choice = judge_unit(w, t, features, labels == k, params, sampling_rate, mad_val, duration_s,
                            TEMPLATE_SOLUTION, [k], f"unit {k} of the template assignment (solution "
                            f"{TEMPLATE_SOLUTION})",
                            # split neighbours are close in feature space by construction: their
                            # L-ratio says nothing about a mixture
                            check_isolation=False, dtype=np.float64, rejected=rejected)
        if choice is not None:
            new.append(choice)
    return Solution(TEMPLATE_SOLUTION, labels, "templates"), new


def _choices_as_labels(choices, solutions, n, clustered) -> tuple[np.ndarray, np.ndarray]:
    """The unit index of each event under auto-sort's choices (-1 = none), and the events the
    template assignment may give to a unit."""
    unit_labels = np.full(n, -1, dtype=np.int64)
    for k, c in enumerate(choices):
        sel = np.isin(solutions[c.solution].labels, c.clusters) & (unit_labels < 0)
        unit_labels[sel] = k
    # the clustering's amplitude outliers (artifacts) stay out of every unit; events the
    # clustering did not see (below cluster_threshold) are all candidates
    eligible = np.asarray(solutions[choices[0].solution].labels) >= 0
    if clustered is not None:
        eligible |= ~np.asarray(clustered, dtype=bool)
    return unit_labels, eligible


def _split_rounds(w, t, assigned, eligible, threshold, peak, sampling_rate, duration_s, model, burst
                  ) -> np.ndarray:
    """Split (amplitude, then shape), assign, merge, until nothing splits or SPLIT_ROUNDS rounds."""
    for _ in range(SPLIT_ROUNDS):
        split = split_by_shape(w, split_by_amplitude(w, assigned, threshold, peak))
        if split.max() == assigned.max():
            break
        again = assign_to_templates(w, split, sampling_rate, duration_s, eligible, **model)
        if again is not None and burst:
            again = burst_members(w, again, t, sampling_rate)
        assigned = merge_same_units(w, again if again is not None else split, t, sampling_rate, duration_s,
                                    burst_merge=burst)
    return assigned


def _numbered_by_size(assigned: np.ndarray) -> tuple[np.ndarray, int]:
    """Units renumbered by size (largest first) so the solution reads like the others; and their
    count."""
    ids, counts = np.unique(assigned[assigned >= 0], return_counts=True)
    order = ids[np.argsort(-counts, kind="stable")]
    remap = np.full(int(assigned.max()) + 2 if assigned.size else 1, -1, dtype=np.int64)
    remap[order] = np.arange(len(order))
    labels = np.where(assigned >= 0, remap[np.maximum(assigned, 0)], -1)
    return labels, len(order)
