//! The streaming workhorse: CAR -> band-pass -> cutoff -> threshold -> detect -> waveforms for
//! many electrodes of one recording, chunk by chunk, electrodes in parallel.
//!
//! Memory is bounded by the chunk (one noise window, 5 s by default) times the channels read, not
//! by the recording length. Each chunk is read with `BandPass::settle` extra samples on both
//! sides, so its filtered samples equal whole-signal filtfilt to ~1e-12 (at the recording's true
//! edges the block is odd-padded exactly as filtfilt). CAR statistics come once from every 100th
//! sample of the whole recording, so a streamed CAR equals the whole-array one. With rolling
//! thresholds chunks are the noise windows and one pass suffices; a global threshold needs a
//! first pass for the median and MAD of the filtered trace.

use std::collections::VecDeque;
use std::mem::MaybeUninit;

use rayon::prelude::*;

use super::cutoff::BreachCounter;
use super::detect::{dead_samples, Detector, Polarity, BLOCK};
use super::filter::{BandPass, RowBlock, Sample};
use super::params::{ExtractParams, Settings};
use super::reference::{self, Group, STATS_STEP};
use super::sos32::{self, Lanes};
use super::source::{read_strided, SampleSource};
use super::spill::Spill;
use super::threshold::{
    median_by, median_mad, median_mad_shared, median_mad_step, median_mad_windows, window_bounds,
    MedianScratch, SharedBins, MAD_PER_SD,
};
use super::waveforms::{cut, pad};
use crate::error::{EngineError, Result};

/// Filtered samples kept per electrode for global statistics (mad_val, global threshold): every
/// `noise_subsample`-th sample (absolute sample index a multiple of the stride), the stride grown
/// so that at most this many are kept.
pub const SUBSAMPLE_MAX: usize = 1 << 20;

#[derive(Clone, Debug, Default)]
pub struct ElectrodeResult {
    pub electrode: usize,
    pub times: Vec<i64>,
    pub times_subsample: Vec<f64>,
    pub polarity: Vec<i8>,
    /// n x `waveform_len`, row-major, scaled units (uV).
    pub waveforms: Vec<f32>,
    /// Samples per waveform (before + after).
    pub waveform_len: usize,
    pub threshold: f64,
    pub mad_val: f64,
    pub noise: Vec<f64>,
    pub cutoff_sample: usize,
    pub n_edge_dropped: usize,
    pub dead: bool,
    /// Events written to this electrode's spill files (see [`extract_spilled`]); the event
    /// vectors above are then empty.
    pub n_spilled: Option<usize>,
}

/// What a chunk of raw data looks like after reading: rows of `len` int16 values for `channels`,
/// covering samples `[start, start + len)`, plus each referenced group's reference over it.
#[derive(Default)]
struct Block<'a> {
    start: usize,
    len: usize,
    raw: Vec<i16>,
    /// The rows borrowed from the source instead of `raw`, when it allows (no CAR).
    direct: Vec<&'a [i16]>,
    refs: Vec<Vec<f32>>,
}

impl Block<'_> {
    fn row(&self, r: usize) -> &[i16] {
        if self.direct.is_empty() {
            &self.raw[r * self.len..(r + 1) * self.len]
        } else {
            self.direct[r]
        }
    }
}

/// One electrode's filtered samples of a chunk: a row, or one lane of the filter's buffer.
trait Trace {
    fn len(&self) -> usize;
    /// Samples `[lo, hi)` of the chunk appended to `out`.
    fn extend_to(&self, lo: usize, hi: usize, out: &mut Vec<f32>);
}

impl Trace for &[f32] {
    fn len(&self) -> usize {
        <[f32]>::len(self)
    }
    fn extend_to(&self, lo: usize, hi: usize, out: &mut Vec<f32>) {
        out.extend_from_slice(&self[lo..hi]);
    }
}

struct Lane<'a> {
    v: &'a Lanes<'a>,
    l: usize,
}

impl Trace for Lane<'_> {
    fn len(&self) -> usize {
        self.v.len()
    }
    fn extend_to(&self, lo: usize, hi: usize, out: &mut Vec<f32>) {
        self.v.extend_row(self.l, lo, hi, out);
    }
}

/// Every electrode's noise subsample for the whole recording (up to [`SUBSAMPLE_MAX`] values
/// each, 23 MB for 32 ch x 60 s) in one allocation on whole transparent huge pages (asked for):
/// fresh memory otherwise costs a page fault per 4 kB page (~5 600 per call here; a cold 1-thread
/// call took ~68 ms instead of ~49 on the benchmark VM), and this is one per 2 MB. Left
/// uninitialised: values are written once, as they are appended (a zeroing allocation would
/// also clear reused memory, on the calling thread and serially).
struct SubStore {
    vec: Vec<f32>,
    /// Where the values start: the first 2 MB boundary in the allocation (on Linux), so that
    /// huge pages cover all of them.
    start: usize,
}

/// Bytes of a transparent huge page (x86-64 and most others).
const HUGE: usize = 2 << 20;

impl SubStore {
    fn new(len: usize) -> Self {
        // (room to start on a huge page boundary and end on one)
        let vec: Vec<f32> = Vec::with_capacity(len + 2 * HUGE / 4);
        let a = vec.as_ptr() as usize;
        let start = (a.next_multiple_of(HUGE) - a) / 4;
        #[cfg(target_os = "linux")]
        if len > 0 {
            // SAFETY: from the boundary, the whole huge pages holding `len` values lie inside
            // the allocation (reserved above); advice changes no data.
            unsafe {
                let p = vec.as_ptr().add(start) as *mut libc::c_void;
                libc::madvise(p, (len * 4).next_multiple_of(HUGE), libc::MADV_HUGEPAGE);
            }
        }
        SubStore { vec, start }
    }

    /// `k` buffers of `cap` values each.
    fn split(&mut self, k: usize, cap: usize) -> Vec<SubBuf<'_>> {
        self.vec.spare_capacity_mut()[self.start..self.start + k * cap]
            .chunks_mut(cap.max(1))
            .map(|buf| SubBuf { buf, len: 0 })
            .collect()
    }
}

/// One electrode's part of the [`SubStore`], filled from the front (`buf[..len]` initialised).
struct SubBuf<'s> {
    buf: &'s mut [MaybeUninit<f32>],
    len: usize,
}

impl SubBuf<'_> {
    fn len(&self) -> usize {
        self.len
    }

    fn kept(&self) -> &[f32] {
        let kept = &self.buf[..self.len];
        // SAFETY: the first `len` values were written (`extend`, `commit`); MaybeUninit<f32> has
        // f32's layout.
        unsafe { &*(kept as *const [MaybeUninit<f32>] as *const [f32]) }
    }

    /// Append `vals`.
    fn extend(&mut self, vals: impl ExactSizeIterator<Item = f32>) {
        let k = vals.len();
        for (d, v) in self.buf[self.len..self.len + k].iter_mut().zip(vals) {
            d.write(v);
        }
        self.len += k;
    }

    /// Room for the next `k` values (see `commit`).
    fn room(&mut self, k: usize) -> &mut [MaybeUninit<f32>] {
        &mut self.buf[self.len..self.len + k]
    }

    /// The next `k` values count as kept.
    /// Safety: they were written (all of `room(k)`).
    unsafe fn commit(&mut self, k: usize) {
        self.len += k;
    }
}

struct Electrode<'s> {
    res: ElectrodeResult,
    row: usize,
    /// (group index, MAD, median) when the electrode is referenced.
    car: Option<(usize, f64, f64)>,
    det: Detector,
    hist: Vec<f32>,
    hist_start: usize,
    pending: VecDeque<(i64, i8)>,
    breaches: BreachCounter,
    sub: SubBuf<'s>,
    win_th: Vec<(usize, f64)>,
    centre: f64,
    threshold: f64,
    /// This chunk's filtered samples.
    y: Vec<f32>,
    /// This chunk's referenced input minus the channel's median, in float32 (CAR electrodes
    /// only; see [`referenced_into`]).
    input: Vec<f32>,
    scratch: MedianScratch,
    /// Histogram bins shared by the noise windows (for `mad_val`).
    bins: SharedBins,
    /// Where the events go when they are not kept in memory.
    spill: Option<Spill>,
}

struct Plan<'a> {
    src: &'a dyn SampleSource,
    p: &'a Settings,
    f: BandPass,
    n: usize,
    channels: Vec<usize>,
    groups: Vec<Group>,
    sub_step: usize,
    sec: usize,
    dead_samples: usize,
}

impl<'a> Plan<'a> {
    /// Read chunk [s, e) plus the settling margins into `b` (buffers reused across chunks).
    fn read(&self, s: usize, e: usize, b: &mut Block<'a>) -> Result<()> {
        let rs = s.saturating_sub(self.f.settle);
        let re = (e + self.f.settle).min(self.n);
        let len = re - rs;
        b.start = rs;
        b.len = len;
        match self.src.borrow_rows(&self.channels, rs, len) {
            Some(rows) => b.direct = rows,
            None => {
                b.direct.clear();
                b.raw.resize(self.channels.len() * len, 0);
                self.src.read_block(&self.channels, rs, len, &mut b.raw)?;
            }
        }
        b.refs.resize(self.groups.len(), Vec::new());
        if self.groups.is_empty() {
            return Ok(());
        }
        let b = &mut *b;
        let (raw, direct) = (&b.raw, &b.direct);
        let row = |r: usize| -> &[i16] {
            if direct.is_empty() {
                &raw[r * len..(r + 1) * len]
            } else {
                direct[r]
            }
        };
        // (in the pool: the calling thread would otherwise do it alone between chunks)
        super::with_threads(self.p.threads, || {
            for (g, out) in self.groups.iter().zip(b.refs.iter_mut()) {
                reference::group_reference_rows(g, row, len, out);
            }
        });
        Ok(())
    }

    /// Filter a group of electrodes' samples of chunk [s, e) into each `el.y` (several channels
    /// at once: see `BandPass::filtfilt_rows`).
    fn filter(&self, els: &mut [Electrode], b: &Block, s: usize, e: usize) {
        for el in els.iter_mut() {
            el.y.resize(e - s, 0.0);
            if let Some((g, mad, med)) = el.car {
                referenced_into(b.row(el.row), &b.refs[g], mad, med, &mut el.input);
            }
        }
        let (mut car, mut plain): (Vec<&mut Electrode>, Vec<&mut Electrode>) =
            els.iter_mut().partition(|el| el.car.is_some());
        // Outputs are taken out of the electrodes while their input rows are borrowed.
        if !plain.is_empty() {
            let mut ys = take_outputs(&mut plain);
            let rows: Vec<&[i16]> = plain.iter().map(|el| b.row(el.row)).collect();
            self.filter_rows(self.row_block(&rows, b, s, e), &mut ys);
            put_outputs(&mut plain, ys);
        }
        if !car.is_empty() {
            let mut ys = take_outputs(&mut car);
            let rows: Vec<&[f32]> = car.iter().map(|el| el.input.as_slice()).collect();
            self.filter_rows(self.row_block(&rows, b, s, e), &mut ys);
            put_outputs(&mut car, ys);
        }
    }

    /// `rows` (a group's rows of block `b`) to filter, keeping chunk [s, e); the recording's
    /// own edges are padded.
    fn row_block<'r, T>(
        &self,
        rows: &'r [&'r [T]],
        b: &Block,
        s: usize,
        e: usize,
    ) -> RowBlock<'r, T> {
        RowBlock {
            rows,
            scale: self.p.scale,
            left_edge: b.start == 0,
            right_edge: b.start + b.len == self.n,
            keep: (s - b.start, e - s),
        }
    }

    /// One band-pass call over `rows` into `ys`.
    fn filter_rows<T: Sample>(&self, job: RowBlock<'_, T>, ys: &mut [Vec<f32>]) {
        let mut outs: Vec<&mut [f32]> = ys.iter_mut().map(|y| y.as_mut_slice()).collect();
        self.f.filtfilt_rows(job, &mut outs);
    }

    /// Detection pass over chunk [s, e) for a group of electrodes: filter, then statistics,
    /// detection and waveforms. With the float32 sections the filtered samples stay in the
    /// filter's buffer (see `sos32::filtfilt_lanes`): no rows are written, and detection reads
    /// only the blocks whose extrema reach a threshold.
    fn filter_detect(&self, els: &mut [Electrode], b: &Block, s: usize, e: usize, rolling: bool) {
        let Some(sos) = self.f.sos.as_ref() else {
            self.filter(els, b, s, e);
            for el in els.iter_mut() {
                self.window(el, s, rolling);
            }
            return;
        };
        let first = s.div_ceil(self.sub_step) * self.sub_step - s;
        let sub = rolling.then_some((first, self.sub_step));
        let (mut car, mut plain): (Vec<&mut Electrode>, Vec<&mut Electrode>) =
            els.iter_mut().partition(|el| el.car.is_some());
        if !plain.is_empty() {
            let rows: Vec<&[i16]> = plain.iter().map(|el| b.row(el.row)).collect();
            sos32::filtfilt_lanes(sos, self.row_block(&rows, b, s, e), sub, |v| {
                let first = append_subsample(&mut plain, &v);
                self.detect_lanes(&mut plain, s, rolling, &v, &first);
            });
        }
        if !car.is_empty() {
            let mut inputs: Vec<Vec<f32>> = car
                .iter_mut()
                .map(|el| {
                    let mut input = std::mem::take(&mut el.input);
                    let (g, mad, med) = el.car.expect("referenced");
                    referenced_into(b.row(el.row), &b.refs[g], mad, med, &mut input);
                    input
                })
                .collect();
            let rows: Vec<&[f32]> = inputs.iter().map(|v| v.as_slice()).collect();
            sos32::filtfilt_lanes(sos, self.row_block(&rows, b, s, e), sub, |v| {
                let first = append_subsample(&mut car, &v);
                self.detect_lanes(&mut car, s, rolling, &v, &first);
            });
            for (el, input) in car.iter_mut().zip(inputs.iter_mut()) {
                el.input = std::mem::take(input);
            }
        }
    }

    /// [`Plan::window`] for the lanes of the filter's buffer (lane `l`'s share of this chunk's
    /// subsample starts at `els[l].sub[first[l]]`): each lane's statistics, then one pass over
    /// the block extrema lists the blocks each lane must look at.
    fn detect_lanes(
        &self,
        els: &mut [&mut Electrode],
        s: usize,
        rolling: bool,
        v: &Lanes,
        first: &[usize],
    ) {
        let p = self.p;
        let above = if rolling {
            BreachCounter::prefilter_bound(p.cutoff.voltage_cutoff)
        } else {
            f32::INFINITY
        };
        let mut ct = Vec::with_capacity(els.len());
        // lanes without an electrode never list a block
        let (mut lo, mut hi, mut ab) = (
            [f32::NEG_INFINITY; 8],
            [f32::INFINITY; 8],
            [f32::INFINITY; 8],
        );
        for (l, el) in els.iter_mut().enumerate() {
            let (c, th) = self.lane_stats(el, s, rolling, &Lane { v, l }, first[l]);
            (lo[l], hi[l], ab[l]) = el.det.quiet_bounds(c, th, above);
            ct.push((c, th));
        }
        let mut listed: Vec<Vec<usize>> = vec![Vec::new(); els.len()];
        for (k, (mn, mx)) in v.min.iter().zip(v.max.iter()).enumerate() {
            let mut m = 0u32;
            for l in 0..8 {
                m |= (!((mn[l] > lo[l]) & (mx[l] < hi[l]) & (mx[l] <= ab[l])) as u32) << l;
            }
            while m != 0 {
                listed[m.trailing_zeros() as usize].push(k);
                m &= m - 1;
            }
        }
        let n = v.len();
        for (l, el) in els.iter_mut().enumerate() {
            let y = Lane { v, l };
            let (c, th) = ct[l];
            let mut evs = Vec::new();
            let fetch = |k: usize, buf: &mut Vec<f32>| {
                y.extend_to(k * BLOCK, ((k + 1) * BLOCK).min(n), buf)
            };
            let cutoff = p.cutoff.voltage_cutoff;
            let sec = self.sec;
            let bc = &mut el.breaches;
            // loud blocks count towards the cutoff only with rolling thresholds
            el.det.push_listed(
                s as i64,
                n,
                c,
                th,
                &mut evs,
                above,
                &listed[l],
                fetch,
                |off, blk| {
                    if rolling {
                        bc.push(s + off, blk, cutoff, sec);
                    }
                },
            );
            el.pending.extend(evs);
            debug_assert_eq!(el.hist_start + el.hist.len(), s);
            self.drain(el, &y, false);
        }
    }

    /// One lane's (centre, threshold) for this chunk (rolling: from its window; see
    /// [`Plan::window`]).
    fn lane_stats(
        &self,
        el: &mut Electrode,
        s: usize,
        rolling: bool,
        y: &Lane,
        first: usize,
    ) -> (f64, f64) {
        let p = self.p;
        if !rolling {
            return (el.centre, el.threshold);
        }
        let (m, mad) = if self.sub_step == p.noise_subsample.max(1) && s % self.sub_step == 0 {
            median_mad_shared(&el.sub.kept()[first..], &mut el.scratch, &mut el.bins)
        } else {
            el.bins.disable();
            let step = p.noise_subsample.max(1);
            let mut g = std::mem::take(&mut el.y);
            g.clear();
            g.extend(y.v.buf.iter().step_by(step).map(|v| v[y.l]));
            let r = median_mad(&g, &mut el.scratch);
            el.y = g;
            r
        };
        let th = p.k * mad / MAD_PER_SD;
        el.res.noise.push(mad / MAD_PER_SD);
        el.win_th.push((s, th));
        (m, th)
    }

    /// Detection-pass work for one electrode's chunk starting at `s` (filtered samples in
    /// `el.y`): rolling statistics when `rolling`, detection, waveforms. Compiled for AVX2 when
    /// the CPU has it (the scans vectorise 8 wide).
    fn window(&self, el: &mut Electrode, s: usize, rolling: bool) {
        #[cfg(target_arch = "x86_64")]
        {
            if crate::cpu::avx2() {
                // SAFETY: the CPU supports AVX2 (checked just above).
                unsafe { self.window_avx2(el, s, rolling) };
                return;
            }
        }
        self.window_impl(el, s, rolling)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn window_avx2(&self, el: &mut Electrode, s: usize, rolling: bool) {
        self.window_impl(el, s, rolling)
    }

    #[inline(always)]
    fn window_impl(&self, el: &mut Electrode, s: usize, rolling: bool) {
        let p = self.p;
        let y = std::mem::take(&mut el.y);
        let (c, th) = if rolling {
            let first = self.keep_subsample(el, s, &y);
            // The window's subsample is the one just kept for mad_val when the strides agree.
            let (m, mad) = if self.sub_step == p.noise_subsample.max(1) && s % self.sub_step == 0 {
                median_mad_shared(&el.sub.kept()[first..], &mut el.scratch, &mut el.bins)
            } else {
                el.bins.disable();
                median_mad_step(&y, p.noise_subsample, &mut el.scratch)
            };
            let th = p.k * mad / MAD_PER_SD;
            el.res.noise.push(mad / MAD_PER_SD);
            el.win_th.push((s, th));
            (m, th)
        } else {
            (el.centre, el.threshold)
        };
        self.detect(el, s, &y, c, th, rolling);
        el.y = y;
    }

    /// Statistics pass work for one chunk: breaches and the subsample (returns where this
    /// chunk's part of `el.sub` starts).
    fn observe(&self, el: &mut Electrode, s: usize, y: &[f32]) -> usize {
        el.breaches
            .push(s, y, self.p.cutoff.voltage_cutoff, self.sec);
        self.keep_subsample(el, s, y)
    }

    /// Append this chunk's share of the subsample to `el.sub` (returns where it starts).
    #[inline(always)]
    fn keep_subsample(&self, el: &mut Electrode, s: usize, y: &[f32]) -> usize {
        let start = el.sub.len();
        let first = s.div_ceil(self.sub_step) * self.sub_step;
        if first < s + y.len() {
            el.sub
                .extend(y[first - s..].iter().step_by(self.sub_step).copied());
        }
        start
    }

    /// Detection pass work for one chunk [s, e) with filtered samples `y`.
    #[inline(always)]
    /// With `breaches`, the same scan also counts the cutoff's breaches.
    fn detect(
        &self,
        el: &mut Electrode,
        s: usize,
        y: &[f32],
        centre: f64,
        th: f64,
        breaches: bool,
    ) {
        let mut evs = Vec::new();
        if breaches {
            let cutoff = self.p.cutoff.voltage_cutoff;
            let sec = self.sec;
            let bc = &mut el.breaches;
            el.det.push_scan(
                s as i64,
                y,
                centre,
                th,
                &mut evs,
                BreachCounter::prefilter_bound(cutoff),
                |off, blk| bc.push(s + off, blk, cutoff, sec),
            );
        } else {
            el.det.push(s as i64, y, centre, th, &mut evs);
        }
        el.pending.extend(evs);
        debug_assert_eq!(
            el.hist_start + el.hist.len(),
            s,
            "history ends where the chunk starts"
        );
        // Cut every event whose window is now complete (from the kept history and this chunk).
        self.drain(el, &y, false);
    }

    /// Cut the pending events whose windows end within the history (which ends where `y`, the
    /// newest filtered samples, starts) plus `y`; then keep as history only the samples later
    /// windows can still need, so most samples are never copied.
    fn drain(&self, el: &mut Electrode, y: &impl Trace, end: bool) {
        let pd = pad(self.p.align) as i64;
        let (before, after) = (self.p.before as i64, self.p.after as i64);
        let s = el.hist_start + el.hist.len();
        let hist_end = (s + y.len()) as i64;
        let l = self.p.before + self.p.after;
        let mut buf = vec![0f32; l];
        let mut joined: Vec<f32> = Vec::new();
        while let Some(&(t, pol)) = el.pending.front() {
            if t - before - pd < 0 || t + after + pd > self.n as i64 {
                el.res.n_edge_dropped += 1;
                el.pending.pop_front();
                continue;
            }
            if t + after + pd > hist_end {
                debug_assert!(!end);
                break;
            }
            let (lo, hi) = ((t - before - pd) as usize, (t + after + pd) as usize);
            let local: &[f32] = if hi <= s {
                &el.hist[lo - el.hist_start..hi - el.hist_start]
            } else {
                joined.clear();
                if lo < s {
                    joined.extend_from_slice(&el.hist[lo - el.hist_start..]);
                }
                y.extend_to(lo.max(s) - s, hi - s, &mut joined);
                &joined
            };
            let d = cut(
                local,
                before + pd,
                self.p.before,
                self.p.after,
                self.p.align,
                &mut buf,
            )
            .unwrap_or(0.0);
            if let Some(sp) = el.spill.as_mut() {
                sp.push(t, t as f64 + d, pol, &buf);
            } else {
                el.res.times.push(t);
                el.res.times_subsample.push(t as f64 + d);
                el.res.polarity.push(pol);
                el.res.waveforms.extend_from_slice(&buf);
            }
            el.pending.pop_front();
        }
        // Keep only the history still needed: the open event's window, pending events, and
        // enough past samples for events not yet seen.
        let mut keep = hist_end - before - pd - 2;
        if let Some(t) = el.det.open_event() {
            keep = keep.min(t - before - pd);
        }
        if let Some(&(t, _)) = el.pending.front() {
            keep = keep.min(t - before - pd);
        }
        let keep = (keep.max(el.hist_start as i64) as usize).min(hist_end as usize);
        if keep >= s {
            el.hist.clear();
            y.extend_to(keep - s, y.len(), &mut el.hist);
        } else {
            el.hist.drain(..keep - el.hist_start);
            y.extend_to(0, y.len(), &mut el.hist);
        }
        el.hist_start = keep;
    }
}

/// Run the whole extraction with the user's parameters (checked first: every error names the
/// parameter). `group_of[c]` is channel c's CAR group (-1 = none; empty = no CAR); `threads` <= 0
/// means BLECHRS_THREADS or all cores; `progress` is called with (samples done, samples total)
/// after each chunk and may abort by returning Err. `scale`: the recording's gain, microvolts
/// per int16 count (Intan: `MICROVOLTS_PER_BIT`; other systems their own), finite and non-zero.
pub fn extract_electrodes(
    src: &dyn SampleSource,
    electrodes: &[usize],
    group_of: &[i64],
    params: &ExtractParams,
    scale: f64,
    threads: i64,
    progress: &mut Progress<'_>,
) -> Result<Vec<ElectrodeResult>> {
    extract_spilled(
        src, electrodes, group_of, params, scale, threads, progress, None,
    )
}

/// [`extract_electrodes`], with each electrode's events written to files as they are cut when
/// `spill` is given (`spill[i]` is electrode i's file prefix, see [`super::spill`]) instead of
/// kept in memory: the results then carry `n_spilled` and empty event vectors, and memory no
/// longer grows with the recording's length beyond the noise subsample (at most
/// [`SUBSAMPLE_MAX`] values each).
#[allow(clippy::too_many_arguments)]
pub fn extract_spilled(
    src: &dyn SampleSource,
    electrodes: &[usize],
    group_of: &[i64],
    params: &ExtractParams,
    scale: f64,
    threads: i64,
    progress: &mut Progress<'_>,
    spill: Option<&[String]>,
) -> Result<Vec<ElectrodeResult>> {
    if let Some(spill) = spill {
        if spill.len() != electrodes.len() {
            return Err(EngineError::Value(format!(
                "spill has {} file prefixes for {} electrodes",
                spill.len(),
                electrodes.len()
            )));
        }
    }
    let mut settings = params.settings(threads)?;
    settings.scale = scale;
    extract_inner(src, electrodes, group_of, &settings, progress, spill)
}

/// The progress callback of a run: (samples done, samples total); an Err aborts the run.
pub type Progress<'f> = dyn FnMut(usize, usize) -> Result<()> + Send + 'f;

/// [`extract_electrodes`] with validated settings: check the inputs, plan the reads and the CAR
/// groups, run the passes, finish each electrode.
pub fn extract_with(
    src: &dyn SampleSource,
    electrodes: &[usize],
    group_of: &[i64],
    p: &Settings,
    progress: &mut Progress<'_>,
) -> Result<Vec<ElectrodeResult>> {
    extract_inner(src, electrodes, group_of, p, progress, None)
}

fn extract_inner(
    src: &dyn SampleSource,
    electrodes: &[usize],
    group_of: &[i64],
    p: &Settings,
    progress: &mut Progress<'_>,
    spill: Option<&[String]>,
) -> Result<Vec<ElectrodeResult>> {
    let f = BandPass::new(p.order, p.low, p.high, p.fs)?;
    check_inputs(src, electrodes, group_of, &f)?;
    if electrodes.is_empty() {
        return Ok(Vec::new());
    }
    check_settings(p)?;
    let n = src.n_samples();
    let reads = Reads::new(src.n_channels(), electrodes, group_of, p.use_car);
    let mut car = car_statistics(src, group_of, &reads, p.reference)?;
    let rolling = p
        .window_s
        .map(|w| (w * p.fs).round() as usize)
        .filter(|&w| w > 0);
    let chunks = match rolling {
        Some(w) => window_bounds(n, Some(w)),
        None => window_bounds(n, Some(p.chunk.max(f.settle).max(1))),
    };
    let plan = Plan {
        src,
        p,
        n,
        channels: reads.channels.clone(),
        groups: std::mem::take(&mut car.groups),
        sub_step: n.div_ceil(SUBSAMPLE_MAX).max(p.noise_subsample).max(1),
        sec: (p.fs.round() as usize).max(1),
        dead_samples: dead_samples(p.dead_time_ms, p.fs),
        f,
    };
    // (room for all of it: no regrowth)
    let sub_cap = n.div_ceil(plan.sub_step) + 16;
    let mut store = SubStore::new(electrodes.len() * sub_cap);
    let subs = store.split(electrodes.len(), sub_cap);
    let mut els = new_electrodes(&plan, &reads, electrodes, group_of, &car, subs);
    if let Some(prefixes) = spill {
        for (el, prefix) in els.iter_mut().zip(prefixes) {
            el.spill = Some(Spill::create(prefix)?);
        }
    }
    let threads = super::thread_count(p.threads);
    let passes = Passes {
        plan: &plan,
        chunks: &chunks,
        rolling: rolling.is_some(),
        threads,
        // Electrodes filtered together (SIMD lanes), while still giving every thread work.
        group: els.len().div_ceil(threads).clamp(1, 8),
        total: n * if rolling.is_some() { 1 } else { 2 },
    };
    if !passes.rolling {
        passes.global_threshold(&mut els, progress)?;
    }
    passes.detect(&mut els, progress)?;
    super::with_threads(p.threads, || {
        els.into_par_iter()
            .map(|el| plan.finish(el, passes.rolling))
            .collect()
    })
}

/// The arguments' consistency with the recording and the filter.
fn check_inputs(
    src: &dyn SampleSource,
    electrodes: &[usize],
    group_of: &[i64],
    f: &BandPass,
) -> Result<()> {
    let (n, nch) = (src.n_samples(), src.n_channels());
    if let Some(&c) = electrodes.iter().find(|&&c| c >= nch) {
        return Err(EngineError::Value(format!(
            "electrode {c} out of range: the recording has {nch} channels"
        )));
    }
    let mut seen = std::collections::HashSet::with_capacity(electrodes.len());
    if let Some(&c) = electrodes.iter().find(|&&c| !seen.insert(c)) {
        return Err(EngineError::Value(format!(
            "electrode {c} is listed twice in electrodes"
        )));
    }
    if !group_of.is_empty() && group_of.len() != nch {
        return Err(EngineError::Value(format!(
            "car_groups has {} entries but the recording has {nch} channels",
            group_of.len()
        )));
    }
    if n <= f.padlen {
        return Err(EngineError::Value(format!(
            "recording of {n} samples is too short to filter (needs more than {})",
            f.padlen
        )));
    }
    Ok(())
}

/// What [`ExtractParams::settings`] guarantees, checked again for settings built by hand.
fn check_settings(p: &Settings) -> Result<()> {
    if p.before == 0 || p.after == 0 {
        return Err(EngineError::Value(
            "waveform window must have samples before and after the extremum".into(),
        ));
    }
    if !(p.k > 0.0 && p.k.is_finite()) {
        return Err(EngineError::Value(format!(
            "threshold factor must be > 0, not {}",
            p.k
        )));
    }
    if !(p.scale.is_finite() && p.scale != 0.0) {
        return Err(EngineError::Value(format!(
            "scale must be finite and non-zero, not {}",
            p.scale
        )));
    }
    Ok(())
}

/// The channels to read (sorted): the electrodes plus the members of their CAR groups.
struct Reads {
    channels: Vec<usize>,
    /// The CAR groups of the electrodes (none without CAR).
    groups_used: Vec<i64>,
}

impl Reads {
    fn new(nch: usize, electrodes: &[usize], group_of: &[i64], use_car: bool) -> Self {
        let groups_used: Vec<i64> = if use_car && !group_of.is_empty() {
            let mut g: Vec<i64> = electrodes
                .iter()
                .map(|&c| group_of[c])
                .filter(|&g| g >= 0)
                .collect();
            g.dedup();
            g
        } else {
            Vec::new()
        };
        let mut channels: Vec<usize> = electrodes.to_vec();
        for c in 0..nch {
            if !group_of.is_empty() && groups_used.contains(&group_of[c]) {
                channels.push(c);
            }
        }
        channels.sort_unstable();
        channels.dedup();
        Reads {
            channels,
            groups_used,
        }
    }

    /// Row of channel `c` in a block.
    fn row_of(&self, c: usize) -> usize {
        self.channels.binary_search(&c).expect("channel read")
    }
}

/// The referenced groups (members as block rows), their ids, and the flat (dead) channels.
#[derive(Default)]
struct Car {
    groups: Vec<Group>,
    ids: Vec<i64>,
    dead: Vec<usize>,
}

/// CAR statistics once for the whole recording, from every `STATS_STEP`-th sample.
fn car_statistics(
    src: &dyn SampleSource,
    group_of: &[i64],
    reads: &Reads,
    method: reference::Method,
) -> Result<Car> {
    let mut car = Car::default();
    if reads.groups_used.is_empty() {
        return Ok(car);
    }
    let (n, nch) = (src.n_samples(), src.n_channels());
    let car_ch: Vec<usize> = reads
        .channels
        .iter()
        .copied()
        .filter(|&c| reads.groups_used.contains(&group_of[c]))
        .collect();
    let m = n.div_ceil(STATS_STEP);
    let mut dec = vec![0i16; car_ch.len() * m];
    read_strided(src, &car_ch, STATS_STEP, &mut dec)?;
    let st = reference::channel_stats(&dec, m);
    let mut stats = vec![(0.0, 0.0); nch];
    let mut gof = vec![-1i64; nch];
    for (i, &c) in car_ch.iter().enumerate() {
        stats[c] = st[i];
        gof[c] = group_of[c];
    }
    let (gs, dead) = reference::make_groups(&gof, &stats, method);
    car.dead = dead;
    for (id, mut g) in gs {
        for m in g.live.iter_mut() {
            m.0 = reads.row_of(m.0);
        }
        car.ids.push(id);
        car.groups.push(g);
    }
    Ok(car)
}

/// One [`Electrode`] per output channel, each with its part of the subsample store.
fn new_electrodes<'s>(
    plan: &Plan,
    reads: &Reads,
    electrodes: &[usize],
    group_of: &[i64],
    car: &Car,
    subs: Vec<SubBuf<'s>>,
) -> Vec<Electrode<'s>> {
    let p = plan.p;
    electrodes
        .iter()
        .zip(subs)
        .map(|(&c, sub)| {
            let member = if group_of.is_empty() || !p.use_car {
                None
            } else {
                let g = group_of[c];
                car.ids.iter().position(|&id| id == g).and_then(|gi| {
                    plan.groups[gi]
                        .live
                        .iter()
                        .find(|m| m.0 == reads.row_of(c))
                        .map(|m| (gi, m.1, m.2))
                })
            };
            let res = ElectrodeResult {
                electrode: c,
                waveform_len: p.before + p.after,
                dead: car.dead.contains(&c),
                ..Default::default()
            };
            Electrode::new(
                res,
                reads.row_of(c),
                member,
                sub,
                p.polarity,
                plan.dead_samples,
            )
        })
        .collect()
}

impl<'s> Electrode<'s> {
    fn new(
        res: ElectrodeResult,
        row: usize,
        car: Option<(usize, f64, f64)>,
        sub: SubBuf<'s>,
        polarity: Polarity,
        dead_samples: usize,
    ) -> Self {
        Electrode {
            res,
            row,
            car,
            det: Detector::new(polarity, dead_samples),
            hist: Vec::new(),
            hist_start: 0,
            pending: VecDeque::new(),
            breaches: BreachCounter::default(),
            sub,
            win_th: Vec::new(),
            centre: 0.0,
            threshold: 0.0,
            y: Vec::new(),
            input: Vec::new(),
            scratch: MedianScratch::default(),
            bins: SharedBins::default(),
            spill: None,
        }
    }
}

/// The streamed passes over the chunks. Reading and progress run on the calling thread (so
/// Ctrl-C reaches Python's check), the per-electrode work in the pool.
struct Passes<'p, 'a> {
    plan: &'p Plan<'a>,
    chunks: &'p [(usize, usize)],
    /// Rolling thresholds: one pass; else a first pass for the global threshold.
    rolling: bool,
    threads: usize,
    /// Electrodes per SIMD group.
    group: usize,
    /// Samples of all passes (progress total).
    total: usize,
}

impl<'a> Passes<'_, 'a> {
    /// Pass 1 (global threshold): breaches and the subsample of the filtered trace, then each
    /// electrode's centre and threshold.
    fn global_threshold(&self, els: &mut [Electrode], progress: &mut Progress<'_>) -> Result<()> {
        let (plan, p) = (self.plan, self.plan.p);
        let mut blk = Block::default();
        for &(s, e) in self.chunks {
            plan.read(s, e, &mut blk)?;
            let b = &blk;
            super::with_threads(p.threads, || {
                els.par_chunks_mut(self.group).for_each(|g| {
                    plan.filter(g, b, s, e);
                    for el in g.iter_mut() {
                        let y = std::mem::take(&mut el.y);
                        plan.observe(el, s, &y);
                        el.y = y;
                    }
                })
            });
            progress(e, self.total)?;
        }
        super::with_threads(p.threads, || {
            els.par_iter_mut().for_each(|el| {
                let cut = el.breaches.decide(plan.n, p.fs, &p.cutoff);
                let keep = cut.div_ceil(plan.sub_step).min(el.sub.len());
                let (m, mad) = median_mad(&el.sub.kept()[..keep], &mut el.scratch);
                el.centre = m;
                el.threshold = p.k * mad / MAD_PER_SD;
            })
        });
        Ok(())
    }

    /// Progress reported before the detection pass.
    fn base(&self) -> usize {
        if self.rolling {
            0
        } else {
            self.plan.n
        }
    }

    /// The detection pass (the only pass with rolling thresholds). When the rows are borrowed
    /// and there is no shared CAR reference, every group of electrodes runs through all the
    /// chunks on its own (see [`Passes::detect_free`]); else chunk by chunk.
    fn detect(&self, els: &mut [Electrode], progress: &mut Progress<'_>) -> Result<()> {
        let plan = self.plan;
        let free = plan.groups.is_empty()
            && self.threads > 1
            && plan.src.borrow_rows(&plan.channels, 0, 1).is_some();
        // (the work goes to the pool from the calling thread: no thread is started per call)
        if let Some(tp) = super::pool(plan.p.threads).filter(|_| free) {
            return self.detect_free(&tp, els, progress);
        }
        let mut blk = Block::default();
        for &(s, e) in self.chunks {
            plan.read(s, e, &mut blk)?;
            let b = &blk;
            super::with_threads(plan.p.threads, || {
                els.par_chunks_mut(self.group)
                    .for_each(|g| plan.filter_detect(g, b, s, e, self.rolling))
            });
            progress(self.base() + e, self.total)?;
        }
        Ok(())
    }

    /// Detection with no barrier per chunk (the threads never wait for each other), while the
    /// calling thread reports progress (and so sees Ctrl-C) until they are done.
    fn detect_free(
        &self,
        tp: &rayon::ThreadPool,
        els: &mut [Electrode],
        progress: &mut Progress<'_>,
    ) -> Result<()> {
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
        let ngroups = els.len().div_ceil(self.group);
        let done = AtomicUsize::new(0);
        let abort = AtomicBool::new(false);
        let finished = AtomicBool::new(false);
        let caller = std::thread::current();
        let mut outcome = Ok(());
        tp.in_place_scope(|sc| {
            let (done, abort, finished) = (&done, &abort, &finished);
            sc.spawn(move |_| {
                els.par_chunks_mut(self.group).for_each(|g| {
                    self.run_group(g, done, abort);
                });
                // set before the wake-up, so the caller never sleeps the whole timeout
                finished.store(true, Ordering::Release);
                caller.unpark();
            });
            loop {
                let finished = finished.load(Ordering::Acquire);
                let d = done.load(Ordering::Relaxed) / ngroups;
                if outcome.is_ok() {
                    if let Err(err) = progress(self.base() + d, self.total) {
                        abort.store(true, Ordering::Relaxed);
                        outcome = Err(err);
                    }
                }
                if finished {
                    break;
                }
                std::thread::park_timeout(std::time::Duration::from_millis(50));
            }
        });
        if outcome.is_ok() && abort.load(Ordering::Relaxed) {
            outcome = Err(EngineError::Value("reading the recording failed".into()));
        }
        outcome
    }

    /// One group of electrodes through every chunk (for [`Passes::detect_free`]).
    fn run_group(
        &self,
        g: &mut [Electrode],
        done: &std::sync::atomic::AtomicUsize,
        abort: &std::sync::atomic::AtomicBool,
    ) {
        use std::sync::atomic::Ordering;
        let mut blk = Block::default();
        for &(s, e) in self.chunks {
            if abort.load(Ordering::Relaxed) {
                return;
            }
            // (borrowing rows cannot fail here: checked by the caller)
            if self.plan.read(s, e, &mut blk).is_err() {
                abort.store(true, Ordering::Relaxed);
                return;
            }
            self.plan.filter_detect(g, &blk, s, e, self.rolling);
            done.fetch_add(e - s, Ordering::Relaxed);
        }
    }
}

impl Plan<'_> {
    /// Finish an electrode: last events, cutoff, summary statistics.
    fn finish(&self, mut el: Electrode, rolling: bool) -> Result<ElectrodeResult> {
        let (p, n) = (self.p, self.n);
        let mut evs = Vec::new();
        el.det.finish(&mut evs);
        el.pending.extend(evs);
        self.drain(&mut el, &[].as_slice(), true);
        let cut = el.breaches.decide(n, p.fs, &p.cutoff);
        el.res.cutoff_sample = cut;
        if let Some(sp) = el.spill.as_mut() {
            sp.flush()?;
            if cut < n {
                let times = sp.read_times()?;
                let keep = self.kept_before_cutoff(&times, cut);
                let kept = keep.iter().take_while(|&&k| k).count();
                if keep[kept..].iter().any(|&k| k) {
                    return Err(EngineError::Value("events out of time order".into()));
                }
                el.res.n_edge_dropped += self.edge_dropped(&times, cut);
                sp.truncate(kept, p.before + p.after)?;
            }
            el.res.n_spilled = Some(sp.n);
        } else if cut < n {
            self.trim_past_cutoff(&mut el.res, cut);
        }
        let keep_sub = cut.div_ceil(self.sub_step).min(el.sub.len());
        let kk = keep_sub.max(1).min(el.sub.len());
        // With rolling windows, `sub` is their concatenation: their histograms add up.
        let (_, mad) = if rolling {
            median_mad_windows(
                &el.sub.kept()[..kk],
                &el.sub.kept()[kk..],
                &mut el.scratch,
                &el.bins,
            )
        } else {
            median_mad(&el.sub.kept()[..kk], &mut el.scratch)
        };
        el.res.mad_val = mad;
        if rolling {
            let kept: Vec<usize> = (0..el.win_th.len())
                .filter(|&i| el.win_th[i].0 < cut.max(1))
                .collect();
            el.res.noise = kept.iter().map(|&i| el.res.noise[i]).collect();
            let ths: Vec<f32> = kept.iter().map(|&i| el.win_th[i].1 as f32).collect();
            let mut sc = MedianScratch::default();
            el.res.threshold = median_by(|| ths.iter().copied(), ths.len(), &mut sc);
        } else {
            el.res.threshold = el.threshold;
            el.res.noise = vec![el.threshold / p.k];
        }
        el.res.dead |= mad == 0.0;
        el.res.waveforms.shrink_to_fit();
        el.res.times.shrink_to_fit();
        el.res.times_subsample.shrink_to_fit();
        el.res.polarity.shrink_to_fit();
        Ok(el.res)
    }

    /// Events past the cutoff are gone; those whose window crosses it are edge drops.
    fn trim_past_cutoff(&self, res: &mut ElectrodeResult, cut: usize) {
        let l = self.p.before + self.p.after;
        let keep = self.kept_before_cutoff(&res.times, cut);
        res.n_edge_dropped += self.edge_dropped(&res.times, cut);
        retain_kept(&mut res.times, &keep);
        retain_kept(&mut res.times_subsample, &keep);
        retain_kept(&mut res.polarity, &keep);
        let mut w = Vec::with_capacity(res.waveforms.len());
        for (j, row) in res.waveforms.chunks(l).enumerate() {
            if keep[j] {
                w.extend_from_slice(row);
            }
        }
        res.waveforms = w;
    }
}

impl Plan<'_> {
    /// Which events end before the cutoff.
    fn kept_before_cutoff(&self, times: &[i64], cut: usize) -> Vec<bool> {
        let end = self.p.after as i64 + pad(self.p.align) as i64;
        times.iter().map(|&t| t + end <= cut as i64).collect()
    }

    /// Events before the cutoff whose window crosses it.
    fn edge_dropped(&self, times: &[i64], cut: usize) -> usize {
        let end = self.p.after as i64 + pad(self.p.align) as i64;
        times
            .iter()
            .filter(|&&t| t < cut as i64 && t + end > cut as i64)
            .count()
    }
}

/// Keep `v[i]` where `keep[i]`.
fn retain_kept<T>(v: &mut Vec<T>, keep: &[bool]) {
    let mut i = 0;
    v.retain(|_| {
        i += 1;
        keep[i - 1]
    });
}

#[cfg(test)]
mod tests {
    use super::super::detect::detect;
    use super::super::source::ArraySource;
    use super::super::threshold::noise_per_window;
    use super::super::waveforms::extract;
    use super::*;

    fn synth(nch: usize, n: usize, seed: u64) -> Vec<i16> {
        let mut s = seed;
        let mut rnd = || {
            crate::signal::lcg(&mut s);
            ((s >> 33) as f64 / (1u64 << 31) as f64) - 0.5
        };
        let mut x = vec![0i16; nch * n];
        for c in 0..nch {
            for t in 0..n {
                let mut v = 100.0 * (rnd() + rnd() + rnd());
                if t % 997 == 500 {
                    v -= 1500.0;
                }
                x[c * n + t] = v.round() as i16 + 300;
            }
        }
        x
    }

    /// Groups running through the chunks on their own (several threads, no CAR) give what one
    /// thread gives, and progress reaches the total.
    #[test]
    fn threads_without_barriers_equal_one_thread() {
        let (nch, n, fs) = (20, 60000, 10000.0);
        let x = synth(nch, n, 3);
        let src = ArraySource::new(&x, nch, n).unwrap();
        let els: Vec<usize> = (0..nch).collect();
        for window in [Some(1.0), None] {
            let mut p = ExtractParams::for_tests(fs).settings(0).unwrap();
            p.use_car = false;
            p.window_s = window;
            p.threads = 1;
            let one = extract_with(&src, &els, &[], &p, &mut |_, _| Ok(())).unwrap();
            p.threads = 3;
            let mut last = (0, 0);
            let many = extract_with(&src, &els, &[], &p, &mut |d, t| {
                assert!(d >= last.0 && d <= t);
                last = (d, t);
                Ok(())
            })
            .unwrap();
            assert_eq!(last.0, last.1);
            for (a, b) in one.iter().zip(&many) {
                assert_eq!(a.times, b.times);
                assert_eq!(a.waveforms, b.waveforms);
                assert_eq!((a.mad_val, a.threshold), (b.mad_val, b.threshold));
                assert_eq!(a.noise, b.noise);
                assert!(a.times.len() > 30);
            }
            // an error from progress stops the run and comes back
            let r = extract_with(&src, &els, &[], &p, &mut |_, _| {
                Err(EngineError::Value("stop".into()))
            });
            assert!(r.is_err());
        }
    }

    #[test]
    fn streamed_equals_whole_without_car() {
        let (nch, n, fs) = (3, 40000, 10000.0);
        let x = synth(nch, n, 7);
        let src = ArraySource::new(&x, nch, n).unwrap();
        let mut p = ExtractParams::for_tests(fs).settings(0).unwrap();
        p.use_car = false;
        p.window_s = Some(1.0);
        let res = extract_with(&src, &[0, 2], &[], &p, &mut |_, _| Ok(())).unwrap();
        // whole-array reference
        let f = BandPass::new(2, 300.0, 3000.0, fs).unwrap();
        for r in &res {
            let mut y = vec![0.0; n];
            f.filtfilt(
                &x[r.electrode * n..(r.electrode + 1) * n],
                0.195,
                &mut y,
                &mut Vec::new(),
            )
            .unwrap();
            let y: Vec<f32> = y.iter().map(|&v| v as f32).collect();
            let w = window_bounds(n, Some(10000));
            let ct: Vec<(f64, f64)> = noise_per_window(&y, &w, p.noise_subsample)
                .iter()
                .map(|&(nz, m)| (m, 5.0 * nz))
                .collect();
            let ev = detect(&y, &w, &ct, Polarity::Both, 5);
            let times: Vec<i64> = ev.iter().map(|e| e.0).collect();
            let (wf, _, dropped) = extract(&y, &times, p.before, p.after, true);
            assert_eq!(
                r.times,
                times
                    .iter()
                    .copied()
                    .filter(|&t| t >= 12 && t + 17 <= n as i64)
                    .collect::<Vec<_>>()
            );
            assert_eq!(r.n_edge_dropped, dropped);
            assert!(r.times.len() > 30);
            let maxdiff = r
                .waveforms
                .iter()
                .zip(wf.iter())
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            assert!(maxdiff < 1e-3, "{maxdiff}");
        }
    }
}

/// A referenced row `x - mad * reference` as the band-pass takes it: minus the channel's median
/// (a constant: the band-pass output is the same, as it has no DC gain and the padding and start
/// follow the first sample), in float32 (`x - median` is exact; the product and the difference
/// are rounded, relative 6e-8 each). Centred, the values are noise-sized, so the rounding stays
/// far below the filter's own error.
fn referenced_into(x: &[i16], r: &[f32], mad: f64, med: f64, out: &mut Vec<f32>) {
    let (mad, med) = (mad as f32, med as f32);
    out.clear();
    out.extend(
        x.iter()
            .zip(r.iter())
            .map(|(&v, &c)| (v as f32 - med) - mad * c),
    );
}

/// Append each lane's share of the filter's subsample to its electrode's `sub` (one pass over
/// the sample-major subsample); where each share starts.
fn append_subsample(group: &mut [&mut Electrode], v: &Lanes) -> Vec<usize> {
    let first: Vec<usize> = group.iter().map(|el| el.sub.len()).collect();
    let k = v.sub.len();
    let mut dst: Vec<&mut [MaybeUninit<f32>]> = group.iter_mut().map(|el| el.sub.room(k)).collect();
    sos32::transpose_into(v.sub, &mut dst);
    for el in group.iter_mut() {
        // SAFETY: transpose_into wrote all of each room.
        unsafe { el.sub.commit(k) };
    }
    first
}

/// The filtered output buffers of a group of electrodes, taken out so the electrodes' input
/// rows can be borrowed while the filter writes them.
fn take_outputs(group: &mut [&mut Electrode]) -> Vec<Vec<f32>> {
    group
        .iter_mut()
        .map(|el| std::mem::take(&mut el.y))
        .collect()
}

/// The buffers back into their electrodes.
fn put_outputs(group: &mut [&mut Electrode], ys: Vec<Vec<f32>>) {
    for (el, y) in group.iter_mut().zip(ys) {
        el.y = y;
    }
}
